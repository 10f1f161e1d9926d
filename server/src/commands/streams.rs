//! Command family: streams without consumer groups (Redis 7.0 `t_stream.c`
//! semantics): XADD, XRANGE, XREVRANGE, XLEN, XDEL, XTRIM, XSETID and XREAD (with
//! BLOCK). The storage and the ID argument parsers are in [`crate::types::stream`];
//! the helpers here marked `pub` (stream lookup, entry replies, XREAD key positions,
//! BLOCK timeouts) are shared with the consumer-group commands.
//!
//! Propagation follows Redis 7.0: XADD is propagated with the ID it generated, and
//! approximate trimming (`~`) is rewritten to the exact threshold it reached
//! (`MAXLEN = <length after>` / `MINID = <first id>`), so replicas and the AOF end up
//! with the same entries whatever their node layout.

use super::{arg_i64, err, flags::*, is_kw, Action, CmdError, CmdResult, Command, Ctx};
use crate::notify::STREAM;
use crate::rdb::listpack::LpEntry;
use crate::resp::Reply;
use crate::types::stream::{
    self, AddId, EntryRef, NodeLimits, Stream, StreamError, StreamId, Trim,
};
use crate::types::Value;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("xadd", -5, WRITE | DENYOOM | FAST, xadd).keys(1, 1, 1),
    Command::new("xrange", -4, READONLY, xrange).keys(1, 1, 1),
    Command::new("xrevrange", -4, READONLY, xrevrange).keys(1, 1, 1),
    Command::new("xlen", 2, READONLY | FAST, xlen).keys(1, 1, 1),
    Command::new("xdel", -3, WRITE | FAST, xdel).keys(1, 1, 1),
    Command::new("xtrim", -4, WRITE, xtrim).keys(1, 1, 1),
    Command::new("xsetid", -3, WRITE | DENYOOM | FAST, xsetid).keys(1, 1, 1),
    Command::new("xread", -4, READONLY | BLOCKING, xread).keys_with(xread_keys),
];

/// Count XREAD uses for a blocked client that gave no COUNT
/// (XREAD_BLOCKED_DEFAULT_COUNT).
pub const BLOCKED_DEFAULT_COUNT: usize = 1000;

impl From<StreamError> for CmdError {
    fn from(e: StreamError) -> Self {
        CmdError::msg(e.to_string())
    }
}

fn msg(s: &'static str) -> CmdError {
    CmdError::msg(s)
}

/// The stream under `key` for reading; Err on another type.
pub fn stream_r<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut Stream>, CmdError> {
    match ctx.get(key) {
        None => Ok(None),
        Some(Value::Stream(s)) => Ok(Some(s)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// The stream under `key` for writing; Err on another type.
pub fn stream_w<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut Stream>, CmdError> {
    match ctx.get_mut(key) {
        None => Ok(None),
        Some(Value::Stream(s)) => Ok(Some(s)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// An ID as Redis prints it (`<ms>-<seq>`).
pub fn id_bytes(id: StreamId) -> Bytes {
    let mut b = itoa::Buffer::new();
    let mut v = Vec::with_capacity(42);
    v.extend_from_slice(b.format(id.ms).as_bytes());
    v.push(b'-');
    v.extend_from_slice(b.format(id.seq).as_bytes());
    Bytes::from(v)
}

/// Writes an ID as a bulk string.
pub fn reply_id(out: &mut Reply, id: StreamId) {
    out.bulk(&id_bytes(id));
}

fn reply_lp(out: &mut Reply, e: &LpEntry<'_>) {
    match e {
        LpEntry::Str(s) => out.bulk(s),
        LpEntry::Int(i) => out.bulk_int(*i),
    }
}

/// One entry as Redis replies it: `[id, [field, value, ...]]`.
pub fn reply_entry(out: &mut Reply, e: &EntryRef<'_>) {
    out.array(2);
    reply_id(out, e.id);
    out.array(e.fields.len() * 2);
    for (f, v) in &e.fields {
        reply_lp(out, f);
        reply_lp(out, v);
    }
}

/// Replies with the live entries between `start` and `end` (both inclusive), at
/// most `count` (0 = all), as an array.
pub fn reply_range(
    out: &mut Reply,
    s: &Stream,
    start: StreamId,
    end: StreamId,
    rev: bool,
    count: usize,
) {
    let limit = if count == 0 { usize::MAX } else { count };
    // The array length comes first: collect the (borrowed) entries, bounded by count.
    let entries: Vec<EntryRef<'_>> = s.range(start, end, rev).take(limit).collect();
    out.array(entries.len());
    for e in &entries {
        reply_entry(out, e);
    }
}

/// Node limits from the configuration (`stream-node-max-bytes`/`-entries`).
fn limits(ctx: &Ctx) -> NodeLimits {
    NodeLimits {
        max_bytes: ctx.store.hot.stream_node_max_bytes,
        max_entries: ctx.store.hot.stream_node_max_entries,
    }
}

// ---------------------------------------------------------------------------
// XADD / XTRIM

/// Parsed trimming options of XADD and XTRIM (streamAddTrimArgs).
#[derive(Debug, Default)]
struct TrimArgs {
    trim: Option<Trim>,
    approx: bool,
    /// Entries an approximate trim may remove (0 = no limit).
    limit: u64,
    /// Position of the threshold argument (the `~`, if any, is just before).
    threshold_idx: usize,
    nomkstream: bool,
    /// XADD: the ID argument's position and value.
    id_idx: usize,
    id: Option<AddId>,
}

/// Parses XADD (`xadd`) or XTRIM options from argv[2] (streamParseAddOrTrimArgsOrReply).
fn parse_trim_args(ctx: &Ctx, argv: &[Bytes], xadd: bool) -> Result<TrimArgs, CmdError> {
    const BOTH: &str =
        "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
    let mut a = TrimArgs::default();
    let mut limit: Option<i64> = None;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let opt = &argv[i];
        if xadd && opt.as_ref() == b"*" {
            a.id = Some(AddId::Auto);
            a.id_idx = i;
            break;
        } else if (is_kw(opt, "maxlen") || is_kw(opt, "minid")) && more > 0 {
            if a.trim.is_some() {
                return Err(msg(BOTH));
            }
            a.approx = false;
            let next = argv[i + 1].as_ref();
            if more >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let t = &argv[i + 1];
            a.trim = Some(if is_kw(opt, "maxlen") {
                let n = arg_i64(t)?;
                if n < 0 {
                    return Err(msg("ERR The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(stream::parse_id_strict(t, 0)?)
            });
            i += 1;
            a.threshold_idx = i;
        } else if is_kw(opt, "limit") && more > 0 {
            let n = arg_i64(&argv[i + 1])?;
            if n < 0 {
                return Err(msg("ERR The LIMIT argument must be >= 0."));
            }
            limit = Some(n);
            i += 1;
        } else if xadd && is_kw(opt, "nomkstream") {
            a.nomkstream = true;
        } else if xadd {
            a.id = Some(stream::parse_add_id(opt)?);
            a.id_idx = i;
            break;
        } else {
            return Err(err::SYNTAX);
        }
        i += 1;
    }
    if limit.is_some_and(|n| n > 0) && a.trim.is_none() {
        return Err(msg(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && a.trim.is_none() {
        return Err(msg(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if ctx.client.is_master {
        // The master (or the AOF) rewrote approximate trims to exact thresholds.
        a.limit = 0;
    } else {
        match limit {
            Some(_) if !a.approx => {
                return Err(msg(
                    "ERR syntax error, LIMIT cannot be used without the special ~ option",
                ))
            }
            Some(n) => a.limit = n as u64,
            None if a.approx => {
                let n = 100 * ctx.store.hot.stream_node_max_entries as u64;
                a.limit = if n == 0 || n > 10_000 { 10_000 } else { n };
            }
            None => a.limit = 0,
        }
    }
    Ok(a)
}

/// Rewrites an approximate trim to the exact threshold it reached
/// (streamRewriteApproxSpecifier + streamRewriteTrimArgument).
fn rewrite_trim(argv: &mut [Bytes], a: &TrimArgs, s: &Stream) {
    let value = match a.trim {
        Some(Trim::MaxLen(_)) => Bytes::from(s.length.to_string()),
        Some(Trim::MinId(_)) => id_bytes(s.edge_id(true, false)),
        None => return,
    };
    if let Some(x) = argv.get_mut(a.threshold_idx - 1) {
        *x = Bytes::from_static(b"=");
    }
    if let Some(x) = argv.get_mut(a.threshold_idx) {
        *x = value;
    }
}

fn xadd(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let a = parse_trim_args(ctx, argv, true)?;
    let field_pos = a.id_idx + 1;
    let nfields = argv.len().saturating_sub(field_pos);
    if a.id.is_none() || nfields < 2 || !nfields.is_multiple_of(2) {
        return Err(msg("ERR wrong number of arguments for 'xadd' command"));
    }
    let spec = a.id.unwrap_or(AddId::Auto);
    if spec == AddId::Exact(StreamId::MIN) {
        return Err(StreamError::IdZero.into());
    }
    let key = &argv[1];
    let lim = limits(ctx);
    let now = ctx.now_ms.max(0) as u64;
    if stream_w(ctx, key)?.is_none() {
        if a.nomkstream {
            out.null();
            return Ok(());
        }
        ctx.set(key.clone(), Value::Stream(Box::default()));
    }
    let Some(s) = stream_w(ctx, key)? else {
        return Ok(());
    };
    let id = s.append(spec, now, &argv[field_pos..], lim)?;
    let mut rewritten: Option<Vec<Bytes>> = None;
    let mut trimmed = 0;
    if let Some(trim) = a.trim {
        trimmed = s.trim(trim, a.approx, a.limit);
        if a.approx {
            let mut v = argv.to_vec();
            rewrite_trim(&mut v, &a, s);
            rewritten = Some(v);
        }
    }
    if !matches!(spec, AddId::Exact(_)) {
        let v = rewritten.get_or_insert_with(|| argv.to_vec());
        v[a.id_idx] = id_bytes(id);
    }
    ctx.rewrite = rewritten;
    reply_id(out, id);
    ctx.dirty(1);
    ctx.notify(STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(STREAM, "xtrim", key);
    }
    Ok(())
}

fn xtrim(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let a = parse_trim_args(ctx, argv, false)?;
    let Some(s) = stream_w(ctx, &argv[1])? else {
        out.int(0);
        return Ok(());
    };
    let Some(trim) = a.trim else {
        out.int(0);
        return Ok(());
    };
    let removed = s.trim(trim, a.approx, a.limit);
    if removed > 0 {
        if a.approx {
            let mut v = argv.to_vec();
            rewrite_trim(&mut v, &a, s);
            ctx.rewrite = Some(v);
        }
        ctx.dirty(removed);
        ctx.notify(STREAM, "xtrim", &argv[1]);
    }
    out.int(removed as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// XRANGE / XREVRANGE / XLEN / XDEL / XSETID

fn range_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], rev: bool) -> CmdResult {
    let (start_arg, end_arg) = if rev {
        (&argv[3], &argv[2])
    } else {
        (&argv[2], &argv[3])
    };
    let start = stream::parse_range_start(start_arg)?;
    let end = stream::parse_range_end(end_arg)?;
    let mut count: Option<i64> = None;
    let mut j = 4;
    while j < argv.len() {
        if is_kw(&argv[j], "count") && j + 1 < argv.len() {
            count = Some(arg_i64(&argv[j + 1])?.max(0));
            j += 2;
        } else {
            return Err(err::SYNTAX);
        }
    }
    let Some(s) = stream_r(ctx, &argv[1])? else {
        out.array(0);
        return Ok(());
    };
    match count {
        Some(0) => out.null_array(),
        Some(n) => reply_range(
            out,
            s,
            start,
            end,
            rev,
            usize::try_from(n).unwrap_or(usize::MAX),
        ),
        None => reply_range(out, s, start, end, rev, 0),
    }
    Ok(())
}

fn xrange(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    range_generic(ctx, out, argv, false)
}

fn xrevrange(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    range_generic(ctx, out, argv, true)
}

fn xlen(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = stream_r(ctx, &argv[1])?.map_or(0, |s| s.length);
    out.int(n as i64);
    Ok(())
}

fn xdel(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if stream_w(ctx, &argv[1])?.is_none() {
        out.int(0);
        return Ok(());
    }
    let ids = argv[2..]
        .iter()
        .map(|a| stream::parse_id_strict(a, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let deleted = match stream_w(ctx, &argv[1])? {
        Some(s) => s.xdel(&ids),
        None => 0,
    };
    if deleted > 0 {
        ctx.dirty(deleted);
        ctx.notify(STREAM, "xdel", &argv[1]);
    }
    out.int(deleted as i64);
    Ok(())
}

fn xsetid(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let id = stream::parse_id_strict(&argv[2], 0)?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = StreamId::MIN;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if is_kw(&argv[i], "entriesadded") && more > 0 {
            let n = arg_i64(&argv[i + 1])?;
            if n < 0 {
                return Err(msg("ERR entries_added must be positive"));
            }
            entries_added = Some(n as u64);
        } else if is_kw(&argv[i], "maxdeletedid") && more > 0 {
            max_deleted = stream::parse_id_strict(&argv[i + 1], 0)?;
            if id < max_deleted {
                return Err(msg(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
        } else {
            return Err(err::SYNTAX);
        }
        i += 2;
    }
    let Some(s) = stream_w(ctx, &argv[1])? else {
        return Err(err::NO_SUCH_KEY);
    };
    if s.length > 0 {
        if id < s.edge_id(false, true) {
            return Err(msg(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if entries_added.is_some_and(|n| s.length > n) {
            return Err(msg(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    s.last_id = id;
    if let Some(n) = entries_added {
        s.entries_added = n;
    }
    if !max_deleted.is_zero() {
        s.max_deleted_id = max_deleted;
    }
    ctx.dirty(1);
    ctx.notify(STREAM, "xsetid", &argv[1]);
    out.ok();
    Ok(())
}

// ---------------------------------------------------------------------------
// XREAD

/// Key positions of XREAD/XREADGROUP: the first half of the arguments after
/// STREAMS (none when the arguments are malformed).
pub fn xread_keys(argv: &[Bytes]) -> Vec<usize> {
    let Some(p) = argv.iter().skip(1).position(|a| is_kw(a, "streams")) else {
        return Vec::new();
    };
    let first = p + 2;
    let rest = argv.len().saturating_sub(first);
    if rest == 0 || !rest.is_multiple_of(2) {
        return Vec::new();
    }
    (first..first + rest / 2).collect()
}

/// A BLOCK timeout in milliseconds (getTimeoutFromObjectOrReply, ms unit); 0 =
/// forever.
pub fn parse_block_ms(a: &[u8]) -> Result<u64, CmdError> {
    let n = crate::resp::parse_i64(a)
        .ok_or_else(|| msg("ERR timeout is not an integer or out of range"))?;
    if n < 0 {
        return Err(err::NEG_TIMEOUT);
    }
    Ok(n as u64)
}

/// XREAD's parsed options.
struct XRead {
    block: Option<u64>,
    count: usize,
    /// Index of the first key.
    streams: usize,
    nkeys: usize,
}

/// BLOCK in a script's XREAD or XREADGROUP: refused as the option is met, with the
/// command's name as the script spelled it (Redis 7.0 keeps this error rather than
/// treating the block as timed out, for backward compatibility).
pub fn refuse_block_from_script(argv: &[Bytes]) -> CmdError {
    CmdError::msg(format!(
        "ERR {} command is not allowed with BLOCK option from scripts",
        String::from_utf8_lossy(&argv[0])
    ))
}

fn parse_xread(argv: &[Bytes], from_script: bool) -> Result<XRead, CmdError> {
    let mut r = XRead {
        block: None,
        count: 0,
        streams: 0,
        nkeys: 0,
    };
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let o = &argv[i];
        if is_kw(o, "block") && more > 0 {
            if from_script {
                return Err(refuse_block_from_script(argv));
            }
            i += 1;
            r.block = Some(parse_block_ms(&argv[i])?);
        } else if is_kw(o, "count") && more > 0 {
            i += 1;
            r.count = usize::try_from(arg_i64(&argv[i])?.max(0)).unwrap_or(usize::MAX);
        } else if is_kw(o, "streams") && more > 0 {
            r.streams = i + 1;
            let n = argv.len() - r.streams;
            if !n.is_multiple_of(2) {
                return Err(msg(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            r.nkeys = n / 2;
            break;
        } else if is_kw(o, "group") && more >= 2 {
            return Err(msg(
                "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
            ));
        } else if is_kw(o, "noack") {
            return Err(msg(
                "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
            ));
        } else {
            return Err(err::SYNTAX);
        }
        i += 1;
    }
    if r.streams == 0 {
        return Err(err::SYNTAX);
    }
    Ok(r)
}

fn xread(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let r = parse_xread(argv, ctx.client.lua)?;
    let keys = &argv[r.streams..r.streams + r.nkeys];
    let id_args = &argv[r.streams + r.nkeys..];
    // Resolve every ID first (types checked key by key, as Redis does).
    let mut ids = Vec::with_capacity(r.nkeys);
    let mut dollar = false;
    for (key, arg) in keys.iter().zip(id_args) {
        let s = stream_r(ctx, key)?;
        let id = match arg.as_ref() {
            b"$" => {
                dollar = true;
                s.map_or(StreamId::MIN, |s| s.last_id)
            }
            b">" => {
                return Err(msg(
                    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                ))
            }
            _ => stream::parse_id_strict(arg, 0)?,
        };
        ids.push(id);
    }
    // A blocked client being served uses a bounded default count.
    let served = ctx.store.waiters.contains_key(&ctx.client.id);
    let count = if r.count == 0 && served {
        BLOCKED_DEFAULT_COUNT
    } else {
        r.count
    };
    let mut ready: Vec<(usize, StreamId)> = Vec::new();
    for (k, (key, gt)) in keys.iter().zip(&ids).enumerate() {
        // A key that changed type does not serve a blocked client.
        let s = match stream_r(ctx, key) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) if !served => return Err(e),
            Err(_) => continue,
        };
        if s.length > 0 && s.edge_id(false, true) > *gt {
            if let Some(start) = gt.incr() {
                ready.push((k, start));
            }
        }
    }
    if served {
        // A woken reader is answered from one stream, as Redis serves it per ready key.
        ready.truncate(1);
    }
    if !ready.is_empty() {
        // RESP3: a map of key -> entries; RESP2: an array of [key, entries] pairs.
        if out.resp3 {
            out.map(ready.len());
        } else {
            out.array(ready.len());
        }
        for (k, start) in ready {
            if !out.resp3 {
                out.array(2);
            }
            out.bulk(&keys[k]);
            let db = ctx.client.db;
            if let Some(Value::Stream(s)) = ctx.store.dbs[db].entry(&keys[k]).map(|e| e.value) {
                reply_range(out, s, start, StreamId::MAX, false, count);
            } else {
                out.array(0);
            }
        }
        return Ok(());
    }
    match r.block {
        Some(timeout_ms) if ctx.may_block => {
            // The stored command carries `$` resolved to the IDs seen now.
            let argv_resolved = dollar.then(|| {
                let mut v = argv.to_vec();
                for (k, id) in ids.iter().enumerate() {
                    v[r.streams + r.nkeys + k] = id_bytes(*id);
                }
                v
            });
            ctx.action = Some(Action::Block {
                keys: keys.to_vec(),
                timeout_ms,
                argv: argv_resolved,
            });
        }
        _ => out.null_array(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::commands::lists::harness::H;

    #[test]
    fn xadd_star_propagates_the_generated_id() {
        let mut h = H::new();
        let (reply, ops, _) = h.run(1, &["XADD", "s", "*", "f", "v"]);
        let id = reply.lines().nth(1).unwrap_or("").to_string();
        assert!(id.contains('-'), "{reply}");
        assert_eq!(ops, vec![format!("XADD s {id} f v")]);
        let (_, ops, _) = h.run(1, &["XADD", "s", "99999999999999-*", "f", "v"]);
        assert_eq!(ops, vec!["XADD s 99999999999999-0 f v".to_string()]);
        let (_, ops, _) = h.run(1, &["XADD", "s", "99999999999999-5", "f", "v"]);
        assert_eq!(ops, vec!["XADD s 99999999999999-5 f v".to_string()]);
    }

    #[test]
    fn approximate_trims_propagate_the_exact_threshold() {
        let mut h = H::new();
        h.store.hot.stream_node_max_entries = 3;
        for i in 1..=20 {
            h.run(1, &["XADD", "s", &format!("{i}-1"), "f", "v"]);
        }
        let (_, ops, _) = h.run(1, &["XADD", "s", "MAXLEN", "~", "5", "21-1", "a", "1"]);
        assert_eq!(ops, vec!["XADD s MAXLEN = 6 21-1 a 1".to_string()]);
        let (_, ops, _) = h.run(
            1,
            &[
                "XADD", "s", "MINID", "~", "20", "LIMIT", "100", "*", "a", "1",
            ],
        );
        assert_eq!(ops.len(), 1);
        assert!(
            ops[0].starts_with("XADD s MINID = 19-1 LIMIT 100 "),
            "{ops:?}"
        );
        let (reply, ops, _) = h.run(1, &["XTRIM", "s", "MAXLEN", "~", "0"]);
        assert_eq!(reply, ":4\r\n");
        assert_eq!(ops, vec!["XTRIM s MAXLEN = 0".to_string()]);
        // Nothing removed: nothing propagated.
        let (reply, ops, _) = h.run(1, &["XTRIM", "s", "MAXLEN", "~", "0"]);
        assert_eq!(reply, ":0\r\n");
        assert!(ops.is_empty());
    }

    /// Runs `args` as the master link (or the AOF loader) would.
    fn run_as_master(h: &mut H, args: &[&str]) -> String {
        let argv: Vec<bytes::Bytes> = args
            .iter()
            .map(|a| bytes::Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        let cmd = crate::commands::lookup(&argv[0]).unwrap();
        let mut client = crate::commands::ClientState::new(99);
        client.authenticated = true;
        client.is_master = true;
        let mut out = crate::resp::Reply::new(false);
        crate::exec::call(
            &h.server,
            &mut h.store,
            &mut client,
            cmd,
            &argv,
            &mut out,
            false,
        );
        String::from_utf8_lossy(&out.buf).into_owned()
    }

    #[test]
    fn the_master_may_send_exact_trims_with_limit_and_they_are_not_limited() {
        let mut h = H::new();
        h.store.hot.stream_node_max_entries = 2;
        for i in 1..=10 {
            h.run(1, &["XADD", "s", &format!("{i}-0"), "f", "v"]);
        }
        // A client may not combine LIMIT with an exact trim...
        let (reply, _, _) = h.run(1, &["XTRIM", "s", "MAXLEN", "=", "3", "LIMIT", "1"]);
        assert!(
            reply.contains("LIMIT cannot be used without the special ~"),
            "{reply}"
        );
        // ...but what a master rewrote is applied exactly, LIMIT ignored.
        assert_eq!(
            run_as_master(&mut h, &["XTRIM", "s", "MAXLEN", "=", "3", "LIMIT", "1"]),
            ":7\r\n"
        );
        let (reply, _, _) = h.run(1, &["XLEN", "s"]);
        assert_eq!(reply, ":3\r\n");
        assert_eq!(
            run_as_master(
                &mut h,
                &["XADD", "s", "MINID", "=", "10", "LIMIT", "1", "11-0", "f", "v"]
            ),
            "$4\r\n11-0\r\n"
        );
        let (reply, _, _) = h.run(1, &["XLEN", "s"]);
        assert_eq!(reply, ":2\r\n");
    }

    #[test]
    fn xread_block_stores_the_resolved_dollar_id() {
        let mut h = H::new();
        h.run(1, &["XADD", "s", "5-5", "f", "v"]);
        let (_, _, outcome) = h.run(7, &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
        assert!(matches!(outcome, crate::exec::Outcome::Blocked { .. }));
        let w = h.store.waiters.get(&7).unwrap();
        assert_eq!(w.argv.last().unwrap().as_ref(), b"5-5");
    }
}
