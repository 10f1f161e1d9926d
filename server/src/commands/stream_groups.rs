//! Command family: stream consumer groups and introspection (Redis 7.0 `t_stream.c`):
//! XGROUP, XREADGROUP (with BLOCK), XACK, XPENDING, XCLAIM, XAUTOCLAIM and XINFO.
//! The group state changes live in `types::stream_group`; this file parses, answers
//! and decides what is propagated.
//!
//! Propagation follows Redis 7.0 exactly, so that a real Redis replica and ours end
//! with the same groups: XREADGROUP and the claims never propagate themselves but,
//! per entry they hand out, `XCLAIM <key> <group> <consumer> 0 <id> TIME <ms>
//! RETRYCOUNT <n> FORCE JUSTID LASTID <group last id>`; a NOACK read propagates
//! `XGROUP SETID <key> <group> <last id> ENTRIESREAD <n>` (and `XGROUP
//! CREATECONSUMER` when it created the consumer); several effects of one command
//! go out wrapped in MULTI/EXEC by the dispatch. History reads propagate nothing.

use super::connection::unknown_subcommand;
use super::streams::{id_bytes, reply_entry, reply_id, stream_r, stream_w, BLOCKED_DEFAULT_COUNT};
use super::{arg_i64, err, flags::*, is_kw, Action, CmdError, CmdResult, Command, Ctx};
use crate::notify::STREAM;
use crate::resp::Reply;
use crate::types::stream::ConsumerGroup;
use crate::types::stream::{
    parse_id, parse_id_strict, parse_range_end, parse_range_start, EntryRef, PendingEntry, Stream,
    StreamId,
};
use crate::types::stream_group::{self, DeliveryCount};
use crate::types::Value;
use bytes::Bytes;
use std::borrow::Cow;

pub const COMMANDS: &[Command] = &[
    // XGROUP and XINFO are containers in Redis 7.0 (flags per subcommand); the
    // table has one row per command, so XGROUP carries the flags its writing
    // subcommands need (READONLY rejection on replicas, propagation) and the key
    // position they share (WATCH, waking blocked readers on DESTROY).
    Command::new("xgroup", -2, WRITE, xgroup).keys(2, 2, 1),
    Command::new("xreadgroup", -7, WRITE | BLOCKING, xreadgroup).keys_with(xreadgroup_keys),
    Command::new("xack", -4, WRITE | FAST, xack).keys(1, 1, 1),
    Command::new("xpending", -3, READONLY, xpending).keys(1, 1, 1),
    Command::new("xclaim", -6, WRITE | FAST, xclaim).keys(1, 1, 1),
    Command::new("xautoclaim", -6, WRITE | FAST, xautoclaim).keys(1, 1, 1),
    Command::new("xinfo", -2, READONLY, xinfo),
];

fn lossy(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

fn no_key_or_group(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::msg(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        lossy(key),
        lossy(group)
    ))
}

fn no_group_for_key(group: &[u8], key: &[u8]) -> CmdError {
    CmdError::msg(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        lossy(group),
        lossy(key)
    ))
}

/// Redis `addReplySubcommandSyntaxError`.
fn sub_syntax(cmd: &str, sub: &[u8]) -> CmdError {
    let s: String = lossy(sub).chars().take(128).collect();
    CmdError::msg(format!(
        "ERR unknown subcommand or wrong number of arguments for '{s}'. Try {cmd} HELP."
    ))
}

fn sub_arity(cmd: &str, sub: &str, argc: usize, arity: i32) -> CmdResult {
    let ok = if arity >= 0 {
        argc == arity as usize
    } else {
        argc >= arity.unsigned_abs() as usize
    };
    if ok {
        Ok(())
    } else {
        Err(CmdError::msg(format!(
            "ERR wrong number of arguments for '{cmd}|{sub}' command"
        )))
    }
}

/// Runs `f` with the group `name` taken out of `s`, so that `f` can read the
/// stream's entries while it changes the group; the group is always put back.
fn with_group<T>(
    s: &mut Stream,
    name: &[u8],
    f: impl FnOnce(&Stream, &Bytes, &mut ConsumerGroup) -> T,
) -> Option<T> {
    let (gname, mut g) = s.groups.remove_entry(name)?;
    let out = f(s, &gname, &mut g);
    s.groups.insert(gname, g);
    Some(out)
}

// ---------------------------------------------------------------------------
// Replies

/// Answers with the entry `id` of `s`; false (nothing written) when it is not there.
fn reply_entry_at(out: &mut Reply, s: &Stream, id: StreamId) -> bool {
    match s.range(id, id, false).next() {
        Some(e) => {
            reply_entry(out, &e);
            true
        }
        None => false,
    }
}

fn reply_opt_int(out: &mut Reply, v: Option<i64>) {
    match v {
        Some(n) => out.int(n),
        None => out.null(),
    }
}

// ---------------------------------------------------------------------------
// Propagated effects

/// The XCLAIM that reproduces pending entry `p` of `id` on a replica.
fn xclaim_effect(
    key: &Bytes,
    group: &Bytes,
    id: Bytes,
    p: &PendingEntry,
    last_id: StreamId,
) -> Vec<Bytes> {
    let mut t = itoa::Buffer::new();
    let mut n = itoa::Buffer::new();
    vec![
        Bytes::from_static(b"XCLAIM"),
        key.clone(),
        group.clone(),
        p.consumer.clone().unwrap_or_default(),
        Bytes::from_static(b"0"),
        id,
        Bytes::from_static(b"TIME"),
        Bytes::copy_from_slice(t.format(p.delivery_time).as_bytes()),
        Bytes::from_static(b"RETRYCOUNT"),
        Bytes::copy_from_slice(n.format(p.delivery_count).as_bytes()),
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        id_bytes(last_id),
    ]
}

/// `XGROUP SETID <key> <group> <last id> ENTRIESREAD <n>`.
fn setid_effect(key: &Bytes, group: &Bytes, g: &ConsumerGroup) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        key.clone(),
        group.clone(),
        id_bytes(g.last_id),
        Bytes::from_static(b"ENTRIESREAD"),
        Bytes::from(g.entries_read.to_string()),
    ]
}

fn createconsumer_effect(key: &Bytes, group: &Bytes, consumer: &Bytes) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"CREATECONSUMER"),
        key.clone(),
        group.clone(),
        consumer.clone(),
    ]
}

/// Hands effects to the dispatch: they replace the command's own argv.
fn propagate(ctx: &mut Ctx, effects: Vec<Vec<Bytes>>) {
    let db = ctx.client.db;
    ctx.dirty(effects.len() as u64);
    for e in effects {
        ctx.also_propagate(db, e);
    }
}

// ---------------------------------------------------------------------------
// XGROUP

const XGROUP_HELP: &[&str] = &[
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum GroupSub {
    Create,
    SetId,
    Destroy,
    CreateConsumer,
    DelConsumer,
    Help,
}

/// The subcommand, its arity checked as Redis's table checks a subcommand's.
fn group_sub(argv: &[Bytes]) -> Result<GroupSub, CmdError> {
    let (sub, name, arity) = match argv[1].to_ascii_lowercase().as_slice() {
        b"create" => (GroupSub::Create, "create", -5),
        b"setid" => (GroupSub::SetId, "setid", -5),
        b"destroy" => (GroupSub::Destroy, "destroy", 4),
        b"createconsumer" => (GroupSub::CreateConsumer, "createconsumer", 5),
        b"delconsumer" => (GroupSub::DelConsumer, "delconsumer", 5),
        b"help" => (GroupSub::Help, "help", 2),
        _ => return Err(unknown_subcommand(&argv[1], "XGROUP")),
    };
    sub_arity("xgroup", name, argv.len(), arity)?;
    Ok(sub)
}

/// MKSTREAM (CREATE) and ENTRIESREAD (CREATE, SETID) after the ID.
fn group_opts(sub: GroupSub, argv: &[Bytes]) -> Result<(bool, i64), CmdError> {
    use crate::types::stream::INVALID_ENTRIES_READ;
    let (mut mkstream, mut entries_read) = (false, INVALID_ENTRIES_READ);
    let mut i = 5;
    while i < argv.len() {
        if sub == GroupSub::Create && is_kw(&argv[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if matches!(sub, GroupSub::Create | GroupSub::SetId)
            && is_kw(&argv[i], "entriesread")
            && i + 1 < argv.len()
        {
            entries_read = arg_i64(&argv[i + 1])?;
            if entries_read < 0 && entries_read != INVALID_ENTRIES_READ {
                return Err(CmdError::msg(
                    "ERR value for ENTRIESREAD must be positive or -1",
                ));
            }
            i += 2;
        } else {
            return Err(sub_syntax("XGROUP", &argv[1]));
        }
    }
    Ok((mkstream, entries_read))
}

fn xgroup(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = group_sub(argv)?;
    if sub == GroupSub::Help {
        super::connection::help_reply(out, "XGROUP", XGROUP_HELP);
        return Ok(());
    }
    let (key, gname) = (&argv[2], &argv[3]);
    let (mkstream, entries_read) = group_opts(sub, argv)?;
    let has_group = match stream_w(ctx, key)? {
        Some(s) => s.groups.contains_key(&gname[..]),
        None if mkstream => false,
        None => return Err(CmdError::msg(
            "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
        )),
    };
    let needs_group = matches!(
        sub,
        GroupSub::SetId | GroupSub::CreateConsumer | GroupSub::DelConsumer
    );
    if needs_group && !has_group {
        return Err(no_group_for_key(gname, key));
    }
    let now = ctx.now_ms;
    // Every subcommand below found its key (or, for CREATE MKSTREAM, made it).
    let changed = match sub {
        GroupSub::Create => group_create(ctx, key, gname, &argv[4], entries_read)?,
        GroupSub::SetId => {
            let Some(s) = stream_w(ctx, key)? else {
                return Err(err::NO_SUCH_KEY);
            };
            let id = match &argv[4][..] {
                b"$" => s.last_id,
                a => parse_id(a, 0)?,
            };
            if let Some(g) = s.groups.get_mut(&gname[..]) {
                g.last_id = id;
                g.entries_read = entries_read;
            }
            true
        }
        GroupSub::Destroy => {
            // Dirtying also marks the key ready: blocked readers of the group
            // wake up and get NOGROUP.
            stream_w(ctx, key)?.is_some_and(|s| s.groups.remove(&gname[..]).is_some())
        }
        GroupSub::CreateConsumer => stream_w(ctx, key)?
            .and_then(|s| s.groups.get_mut(&gname[..]))
            .is_some_and(|g| g.create_consumer(&argv[4], now)),
        GroupSub::DelConsumer => {
            let pending = stream_w(ctx, key)?
                .and_then(|s| s.groups.get_mut(&gname[..]))
                .and_then(|g| g.delete_consumer(&argv[4]));
            out.int(pending.unwrap_or(0) as i64);
            pending.is_some()
        }
        GroupSub::Help => false,
    };
    if changed {
        ctx.dirty(1);
        let event = match sub {
            GroupSub::Create => "xgroup-create",
            GroupSub::SetId => "xgroup-setid",
            GroupSub::Destroy => "xgroup-destroy",
            GroupSub::CreateConsumer => "xgroup-createconsumer",
            GroupSub::DelConsumer => "xgroup-delconsumer",
            GroupSub::Help => "",
        };
        if !event.is_empty() {
            ctx.notify(STREAM, event, key);
        }
    }
    match sub {
        GroupSub::Create | GroupSub::SetId => out.ok(),
        GroupSub::Destroy | GroupSub::CreateConsumer => out.int(changed as i64),
        GroupSub::DelConsumer | GroupSub::Help => {}
    }
    Ok(())
}

/// XGROUP CREATE once the key checks passed: true (it either creates or fails).
fn group_create(
    ctx: &mut Ctx,
    key: &Bytes,
    gname: &Bytes,
    id_arg: &[u8],
    entries_read: i64,
) -> Result<bool, CmdError> {
    let id = match id_arg {
        b"$" => stream_w(ctx, key)?.map_or(StreamId::MIN, |s| s.last_id),
        a => parse_id_strict(a, 0)?,
    };
    if stream_w(ctx, key)?.is_none() {
        ctx.set(key, Value::Stream(Box::default()));
    }
    let Some(s) = stream_w(ctx, key)? else {
        return Err(err::NO_SUCH_KEY);
    };
    if s.groups.contains_key(&gname[..]) {
        return Err(CmdError::msg(
            "BUSYGROUP Consumer Group name already exists",
        ));
    }
    s.groups.insert(
        crate::util::detach(gname),
        ConsumerGroup::new(id, entries_read),
    );
    Ok(true)
}

// ---------------------------------------------------------------------------
// XREADGROUP

/// Key positions: the first half of the arguments after the first STREAMS
/// option (Redis `xreadGetKeys`); none when the command is malformed.
pub fn xreadgroup_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut i = 1;
    let mut streams = None;
    while i < argv.len() {
        let a = &argv[i];
        if is_kw(a, "block") || is_kw(a, "count") {
            i += 2;
        } else if is_kw(a, "group") {
            i += 3;
        } else if is_kw(a, "noack") {
            i += 1;
        } else if is_kw(a, "streams") {
            streams = Some(i);
            break;
        } else {
            break;
        }
    }
    let Some(p) = streams else {
        return Vec::new();
    };
    let n = argv.len() - p - 1;
    if n == 0 || !n.is_multiple_of(2) {
        return Vec::new();
    }
    (p + 1..p + 1 + n / 2).collect()
}

struct ReadGroupArgs<'a> {
    group: &'a Bytes,
    consumer: &'a Bytes,
    count: usize,
    noack: bool,
    /// Milliseconds; None without BLOCK, Some(0) = forever.
    block: Option<u64>,
    keys: &'a [Bytes],
    ids: &'a [Bytes],
}

fn parse_readgroup(argv: &[Bytes], from_script: bool) -> Result<ReadGroupArgs<'_>, CmdError> {
    let mut block = None;
    let mut count = 0usize;
    let mut noack = false;
    let mut group = None;
    let mut streams = None;
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        let a = &argv[i];
        if is_kw(a, "block") && more > 0 {
            if from_script {
                return Err(super::streams::refuse_block_from_script(argv));
            }
            i += 1;
            // Like Redis 7.0, a huge timeout is accepted (it blocks for good).
            let t = super::streams::parse_block_ms(&argv[i])?;
            block = Some(t);
        } else if is_kw(a, "count") && more > 0 {
            i += 1;
            let n = arg_i64(&argv[i])?;
            count = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
        } else if is_kw(a, "streams") && more > 0 {
            let n = argv.len() - i - 1;
            if !n.is_multiple_of(2) {
                return Err(CmdError::msg(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            streams = Some(i + 1);
            break;
        } else if is_kw(a, "group") && more >= 2 {
            group = Some((&argv[i + 1], &argv[i + 2]));
            i += 2;
        } else if is_kw(a, "noack") {
            noack = true;
        } else {
            return Err(err::SYNTAX);
        }
        i += 1;
    }
    let Some(p) = streams else {
        return Err(err::SYNTAX);
    };
    let Some((group, consumer)) = group else {
        return Err(CmdError::msg("ERR Missing GROUP option for XREADGROUP"));
    };
    let n = (argv.len() - p) / 2;
    Ok(ReadGroupArgs {
        group,
        consumer,
        count,
        noack,
        block,
        keys: &argv[p..p + n],
        ids: &argv[p + n..],
    })
}

/// Where a stream is read from: new entries (`>`) or the consumer's history.
#[derive(Clone, Copy)]
enum ReadFrom {
    New,
    History(StreamId),
}

fn xreadgroup(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let mut a = parse_readgroup(argv, ctx.client.lua)?;
    // A blocked client being served again sees a vanished key or group as an
    // error, and reads a bounded batch when it gave no COUNT.
    let waiting = ctx.store.waiters.contains_key(&ctx.client.id);
    if waiting && a.count == 0 {
        a.count = BLOCKED_DEFAULT_COUNT;
    }
    let mut from = Vec::with_capacity(a.keys.len());
    for (key, id) in a.keys.iter().zip(a.ids) {
        let has_group = match stream_r(ctx, key) {
            Ok(Some(s)) => s.groups.contains_key(&a.group[..]),
            Ok(None) | Err(_) if waiting => {
                return Err(CmdError::msg("UNBLOCKED the stream key no longer exists"))
            }
            Ok(None) => false,
            Err(e) => return Err(e),
        };
        if !has_group {
            if waiting {
                return Err(CmdError::msg(
                    "NOGROUP the consumer group this client was blocked on no longer exists",
                ));
            }
            return Err(CmdError::msg(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                lossy(key),
                lossy(a.group)
            )));
        }
        from.push(match &id[..] {
            b"$" => return Err(CmdError::msg(
                "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
            )),
            b">" => ReadFrom::New,
            _ => ReadFrom::History(parse_id_strict(id, 0)?),
        });
    }
    let resp3 = ctx.client.resp3;
    let mut body = Reply::new(resp3);
    let mut served = 0;
    let mut effects = Vec::new();
    for (key, from) in a.keys.iter().zip(from) {
        // A woken reader is answered from one stream, as Redis serves it per key.
        if waiting && served > 0 {
            break;
        }
        if serve_stream(ctx, &a, key, from, &mut body, &mut effects)? {
            served += 1;
        }
    }
    if served > 0 {
        if resp3 {
            out.map(served);
        } else {
            out.array(served);
        }
        out.raw(&body.buf);
        // Every served stream counts as a change, as in Redis, even if it only
        // created the consumer; what replicas see is the effects alone.
        let db = ctx.client.db;
        ctx.dirty(served as u64);
        for e in effects {
            ctx.also_propagate(db, e);
        }
        ctx.no_propagate = true;
        return Ok(());
    }
    ctx.no_propagate = true;
    match a.block {
        Some(timeout_ms) if ctx.may_block => {
            ctx.action = Some(Action::Block {
                keys: a.keys.to_vec(),
                timeout_ms,
                argv: None,
            });
        }
        _ => out.null_array(),
    }
    Ok(())
}

/// Serves one stream of an XREADGROUP into `body` (`key` then its entries) when
/// there is something to serve; false otherwise.
fn serve_stream(
    ctx: &mut Ctx,
    a: &ReadGroupArgs<'_>,
    key: &Bytes,
    from: ReadFrom,
    body: &mut Reply,
    effects: &mut Vec<Vec<Bytes>>,
) -> Result<bool, CmdError> {
    let now = ctx.now_ms;
    let resp3 = body.resp3;
    let Some(s) = stream_w(ctx, key)? else {
        return Ok(false);
    };
    let mut created = false;
    let served = with_group(s, a.group, |s, gname, g| {
        // The greatest ID is how Redis spells `>` internally: it reads as `>`.
        let history = match from {
            ReadFrom::History(id) if id != StreamId::MAX => Some(id),
            _ => None,
        };
        let mut fresh = None;
        if history.is_none() {
            if s.length == 0 || s.last_id <= g.last_id {
                return false;
            }
            // Served only when a live entry follows the group (not just tombstones).
            let start = g.last_id.incr().unwrap_or(StreamId::MIN);
            let mut it = s.range(start, StreamId::MAX, false).peekable();
            if it.peek().is_none() {
                return false;
            }
            fresh = Some(it);
        }
        if g.touch_consumer(a.consumer, now) {
            created = true;
            if a.noack {
                effects.push(createconsumer_effect(key, gname, a.consumer));
            }
        }
        if !resp3 {
            body.array(2);
        }
        body.bulk(key);
        match (history, fresh) {
            // The range starts after the given ID; past the greatest ID it wraps
            // around to 0-0, as streamIncrID leaves it.
            (Some(id), _) => read_history(s, g, a, id.incr().unwrap_or(StreamId::MIN), now, body),
            (None, Some(it)) => read_new(s, it, (gname, g), a, key, now, body, effects),
            (None, None) => body.array(0),
        }
        true
    });
    if created {
        ctx.notify(STREAM, "xgroup-createconsumer", key);
    }
    Ok(served.unwrap_or(false))
}

/// Entries after the group's last delivered ID: they join the PELs (unless NOACK)
/// and move the group on.
#[allow(clippy::too_many_arguments)]
fn read_new<'s>(
    s: &'s Stream,
    entries_after: impl Iterator<Item = EntryRef<'s>>,
    (gname, g): (&Bytes, &mut ConsumerGroup),
    a: &ReadGroupArgs<'_>,
    key: &Bytes,
    now: i64,
    body: &mut Reply,
    effects: &mut Vec<Vec<Bytes>>,
) {
    let mut entries = Reply::new(body.resp3);
    let mut n = 0;
    let mut moved = false;
    for e in entries_after {
        if e.id > g.last_id {
            g.advance(s, e.id);
            moved = true;
        }
        reply_entry(&mut entries, &e);
        if !a.noack {
            let p = g.deliver(e.id, a.consumer, now);
            effects.push(xclaim_effect(key, gname, id_bytes(e.id), &p, g.last_id));
        }
        n += 1;
        if a.count != 0 && n == a.count {
            break;
        }
    }
    if a.noack && moved {
        effects.push(setid_effect(key, gname, g));
    }
    body.array(n);
    body.raw(&entries.buf);
}

/// The consumer's own pending entries from `start`: delivered again (count and
/// time move on); an entry deleted from the stream shows as its ID with a null.
fn read_history(
    s: &Stream,
    g: &mut ConsumerGroup,
    a: &ReadGroupArgs<'_>,
    start: StreamId,
    now: i64,
    body: &mut Reply,
) {
    let ids: Vec<StreamId> = match g.consumers.get(a.consumer) {
        Some(c) => {
            let it = c.pel.range(start..).copied();
            if a.count == 0 {
                it.collect()
            } else {
                it.take(a.count).collect()
            }
        }
        None => Vec::new(),
    };
    body.array(ids.len());
    for id in ids {
        if reply_entry_at(body, s, id) {
            g.redeliver(id, now);
        } else {
            body.array(2);
            reply_id(body, id);
            body.null_array();
        }
    }
}

// ---------------------------------------------------------------------------
// XACK

fn xack(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let (key, gname) = (&argv[1], &argv[2]);
    let has_group = stream_r(ctx, key)?.is_some_and(|s| s.groups.contains_key(&gname[..]));
    if !has_group {
        out.int(0);
        return Ok(());
    }
    let ids = argv[3..]
        .iter()
        .map(|a| parse_id_strict(a, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let acked = stream_w(ctx, key)?
        .and_then(|s| s.groups.get_mut(&gname[..]))
        .map_or(0, |g| {
            ids.iter()
                .filter(|id| g.remove_pending(**id).is_some())
                .count()
        });
    ctx.dirty(acked as u64);
    out.int(acked as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// XPENDING

fn xpending(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let argc = argv.len();
    let (key, gname) = (&argv[1], &argv[2]);
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(err::SYNTAX);
    }
    let mut range = None;
    if argc >= 6 {
        let mut at = 3;
        let mut min_idle = 0i64;
        if argc >= 8 && is_kw(&argv[3], "idle") {
            min_idle = arg_i64(&argv[4])?;
            at = 5;
        }
        let count = arg_i64(&argv[at + 2])?.max(0) as u64;
        let start = parse_range_start(&argv[at])?;
        let end = parse_range_end(&argv[at + 1])?;
        let consumer = argv.get(at + 3);
        range = Some((min_idle, start, end, count, consumer));
    }
    let now = ctx.now_ms;
    let Some(s) = stream_r(ctx, key)? else {
        return Err(no_key_or_group(key, gname));
    };
    let Some(g) = s.groups.get(&gname[..]) else {
        return Err(no_key_or_group(key, gname));
    };
    let Some((min_idle, start, end, count, consumer)) = range else {
        let sum = g.pending_summary();
        out.array(4);
        out.int(sum.count as i64);
        match sum.bounds {
            None => {
                out.null();
                out.null();
                out.null_array();
            }
            Some((lo, hi)) => {
                reply_id(out, lo);
                reply_id(out, hi);
                out.array(sum.per_consumer.len());
                for (name, n) in &sum.per_consumer {
                    out.array(2);
                    out.bulk(name);
                    out.bulk_int(*n as i64);
                }
            }
        }
        return Ok(());
    };
    let ids: Box<dyn Iterator<Item = StreamId> + '_> = match consumer {
        Some(c) => match g.consumers.get(&c[..]) {
            Some(c) => Box::new(c.pel.range(start..).copied()),
            None => {
                out.array(0);
                return Ok(());
            }
        },
        None => Box::new(g.pel.range(start..).map(|(k, _)| *k)),
    };
    let mut rows = Reply::new(out.resp3);
    let mut n = 0u64;
    for id in ids.take_while(|id| *id <= end) {
        if n >= count {
            break;
        }
        let Some(p) = g.pel.get(&id) else { continue };
        let idle = now.saturating_sub(p.delivery_time);
        if min_idle != 0 && idle < min_idle {
            continue;
        }
        rows.array(4);
        reply_id(&mut rows, id);
        rows.bulk(p.consumer.as_deref().unwrap_or_default());
        rows.int(idle);
        rows.int(p.delivery_count as i64);
        n += 1;
    }
    out.array(n as usize);
    out.raw(&rows.buf);
    Ok(())
}

// ---------------------------------------------------------------------------
// XCLAIM

struct ClaimOpts {
    force: bool,
    justid: bool,
    /// Delivery time to set (None = now).
    time: Option<i64>,
    retrycount: Option<i64>,
    last_id: StreamId,
}

fn parse_claim_opts(argv: &[Bytes], now: i64) -> Result<ClaimOpts, CmdError> {
    let mut o = ClaimOpts {
        force: false,
        justid: false,
        time: None,
        retrycount: None,
        last_id: StreamId::MIN,
    };
    let mut j = 0;
    while j < argv.len() {
        let more = argv.len() - 1 - j > 0;
        let a = &argv[j];
        let int_arg = |j: usize, what: &str| {
            crate::resp::parse_i64(&argv[j]).ok_or_else(|| {
                CmdError::msg(format!("ERR Invalid {what} option argument for XCLAIM"))
            })
        };
        if is_kw(a, "force") {
            o.force = true;
        } else if is_kw(a, "justid") {
            o.justid = true;
        } else if is_kw(a, "idle") && more {
            j += 1;
            o.time = Some(now.wrapping_sub(int_arg(j, "IDLE")?));
        } else if is_kw(a, "time") && more {
            j += 1;
            o.time = Some(int_arg(j, "TIME")?);
        } else if is_kw(a, "retrycount") && more {
            j += 1;
            o.retrycount = Some(int_arg(j, "RETRYCOUNT")?);
        } else if is_kw(a, "lastid") && more {
            j += 1;
            o.last_id = parse_id_strict(&argv[j], 0)?;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                lossy(a)
            )));
        }
        j += 1;
    }
    Ok(o)
}

fn xclaim(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let (key, gname, consumer) = (&argv[1], &argv[2], &argv[3]);
    let has_group = stream_r(ctx, key)?.is_some_and(|s| s.groups.contains_key(&gname[..]));
    if !has_group {
        return Err(no_key_or_group(key, gname));
    }
    let min_idle = crate::resp::parse_i64(&argv[4])
        .ok_or(CmdError::msg(
            "ERR Invalid min-idle-time argument for XCLAIM",
        ))?
        .max(0);
    let mut ids = Vec::new();
    for a in &argv[5..] {
        match parse_id_strict(a, 0) {
            Ok(id) => ids.push((id, a.clone())),
            Err(_) => break,
        }
    }
    let now = ctx.now_ms;
    let o = parse_claim_opts(&argv[5 + ids.len()..], now)?;
    let time = match o.time {
        Some(t) if (0..=now).contains(&t) => t,
        _ => now,
    };
    let count = match o.retrycount {
        Some(n) if n >= 0 => DeliveryCount::Set(n as u64),
        _ if o.justid => DeliveryCount::Keep,
        _ => DeliveryCount::Increment,
    };
    let resp3 = out.resp3;
    let Some(s) = stream_w(ctx, key)? else {
        return Err(no_key_or_group(key, gname));
    };
    let mut effects = Vec::new();
    let mut body = Reply::new(resp3);
    let mut n = 0;
    let mut created = false;
    with_group(s, gname, |s, gname, g| {
        let mut propagate_last_id = false;
        if o.last_id > g.last_id {
            g.last_id = o.last_id;
            propagate_last_id = true;
        }
        let mut consumer_ready = false;
        for (id, arg) in ids {
            if !s.contains(id) {
                // Gone from the stream: the pending entry goes too.
                if let Some(p) = g.remove_pending(id) {
                    effects.push(xclaim_effect(key, gname, arg, &p, g.last_id));
                    propagate_last_id = false;
                }
                continue;
            }
            // FORCE makes a pending entry for an ID nobody holds; it has no
            // owner yet, so the idle check does not apply to it.
            let forced = match g.pel.get(&id) {
                None if !o.force => continue,
                None => true,
                Some(p) => {
                    if min_idle > 0 && now.saturating_sub(p.delivery_time) < min_idle {
                        continue;
                    }
                    false
                }
            };
            if !consumer_ready {
                created = g.touch_consumer(consumer, now);
                consumer_ready = true;
            }
            if let Some(p) = g.claim(id, consumer, time, count, forced) {
                claim_reply(&mut body, s, id, o.justid);
                n += 1;
                effects.push(xclaim_effect(key, gname, arg, &p, g.last_id));
                propagate_last_id = false;
            }
        }
        if propagate_last_id {
            effects.push(setid_effect(key, gname, g));
        }
    });
    out.array(n);
    out.raw(&body.buf);
    if created {
        ctx.notify(STREAM, "xgroup-createconsumer", key);
    }
    propagate(ctx, effects);
    ctx.no_propagate = true;
    Ok(())
}

fn claim_reply(body: &mut Reply, s: &Stream, id: StreamId, justid: bool) {
    if justid || !reply_entry_at(body, s, id) {
        reply_id(body, id);
    }
}

// ---------------------------------------------------------------------------
// XAUTOCLAIM

/// Redis caps COUNT so that COUNT * 16 cannot overflow a long.
const AUTOCLAIM_MAX_COUNT: i64 = i64::MAX / 16;

/// Redis 7.0 allocates room for COUNT deleted IDs (16 bytes each) up front and
/// answers "Insufficient memory" when that fails, which on x86-64 Linux happens
/// once the request nears the 128 TiB user address space (measured between 73
/// and 102 TiB). Tandem never allocates by COUNT; it gives the same answer past
/// 96 TiB so clients see the same limit.
const AUTOCLAIM_ALLOC_COUNT: i64 = (96 << 40) / 16;

struct AutoClaimArgs {
    min_idle: i64,
    start: StreamId,
    count: i64,
    justid: bool,
}

/// XAUTOCLAIM's arguments, checked before the key as Redis does.
fn parse_autoclaim(argv: &[Bytes]) -> Result<AutoClaimArgs, CmdError> {
    let min_idle = crate::resp::parse_i64(&argv[4])
        .ok_or(CmdError::msg(
            "ERR Invalid min-idle-time argument for XAUTOCLAIM",
        ))?
        .max(0);
    let start = parse_range_start(&argv[5])?;
    let mut a = AutoClaimArgs {
        min_idle,
        start,
        count: 100,
        justid: false,
    };
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j > 0;
        if is_kw(&argv[j], "count") && more {
            a.count = crate::resp::parse_i64(&argv[j + 1])
                .filter(|n| (1..=AUTOCLAIM_MAX_COUNT).contains(n))
                .ok_or(CmdError::msg("ERR COUNT must be > 0"))?;
            j += 1;
        } else if is_kw(&argv[j], "justid") {
            a.justid = true;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    Ok(a)
}

fn xautoclaim(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let (key, gname, consumer) = (&argv[1], &argv[2], &argv[3]);
    let AutoClaimArgs {
        min_idle,
        start,
        mut count,
        justid,
    } = parse_autoclaim(argv)?;
    let has_group = stream_r(ctx, key)?.is_some_and(|s| s.groups.contains_key(&gname[..]));
    if !has_group {
        return Err(no_key_or_group(key, gname));
    }
    if count > AUTOCLAIM_ALLOC_COUNT {
        return Err(CmdError::msg(
            "ERR Insufficient memory, failed allocating transient memory, COUNT too high.",
        ));
    }
    let now = ctx.now_ms;
    let resp3 = out.resp3;
    let Some(s) = stream_w(ctx, key)? else {
        return Err(no_key_or_group(key, gname));
    };
    let mut effects = Vec::new();
    let mut body = Reply::new(resp3);
    let mut claimed = 0;
    let mut deleted = Vec::new();
    let mut created = false;
    let cursor = with_group(s, gname, |s, gname, g| {
        let mut attempts = count.saturating_mul(10);
        let mut next = Some(start);
        let mut consumer_ready = false;
        loop {
            if attempts == 0 || count == 0 {
                break;
            }
            attempts -= 1;
            let Some(id) = next.and_then(|p| g.pel.range(p..).next().map(|(k, _)| *k)) else {
                return StreamId::MIN;
            };
            next = id.incr();
            if !s.contains(id) {
                if let Some(p) = g.remove_pending(id) {
                    effects.push(xclaim_effect(key, gname, id_bytes(id), &p, g.last_id));
                }
                deleted.push(id);
                count -= 1;
                continue;
            }
            let idle = g
                .pel
                .get(&id)
                .map_or(0, |p| now.saturating_sub(p.delivery_time));
            if min_idle > 0 && idle < min_idle {
                continue;
            }
            if !consumer_ready {
                created = g.touch_consumer(consumer, now);
                consumer_ready = true;
            }
            let how = if justid {
                DeliveryCount::Keep
            } else {
                DeliveryCount::Increment
            };
            if let Some(p) = g.claim(id, consumer, now, how, false) {
                claim_reply(&mut body, s, id, justid);
                claimed += 1;
                count -= 1;
                effects.push(xclaim_effect(key, gname, id_bytes(id), &p, g.last_id));
            }
        }
        next.and_then(|p| g.pel.range(p..).next().map(|(k, _)| *k))
            .unwrap_or(StreamId::MIN)
    })
    .unwrap_or(StreamId::MIN);
    out.array(3);
    reply_id(out, cursor);
    out.array(claimed);
    out.raw(&body.buf);
    out.array(deleted.len());
    for id in deleted {
        reply_id(out, id);
    }
    if created {
        ctx.notify(STREAM, "xgroup-createconsumer", key);
    }
    propagate(ctx, effects);
    ctx.no_propagate = true;
    Ok(())
}

// ---------------------------------------------------------------------------
// XINFO

const XINFO_HELP: &[&str] = &[
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

fn xinfo(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let argc = argv.len();
    let sub = argv[1].to_ascii_lowercase();
    let (name, arity) = match sub.as_slice() {
        b"stream" => ("stream", -3),
        b"groups" => ("groups", 3),
        b"consumers" => ("consumers", 4),
        b"help" => ("help", 2),
        _ => return Err(unknown_subcommand(&argv[1], "XINFO")),
    };
    sub_arity("xinfo", name, argc, arity)?;
    if name == "help" {
        super::connection::help_reply(out, "XINFO", XINFO_HELP);
        return Ok(());
    }
    let key = &argv[2];
    // XINFO STREAM checks its options only once the key is found.
    let wall_now = ctx.now_ms;
    let Some(s) = stream_r(ctx, key)? else {
        return Err(err::NO_SUCH_KEY);
    };
    match name {
        "consumers" => {
            let Some(g) = s.groups.get(&argv[3][..]) else {
                return Err(no_group_for_key(&argv[3], key));
            };
            out.array(g.consumers.len());
            for (cname, c) in &g.consumers {
                out.map(3);
                out.bulk(b"name");
                out.bulk(cname);
                out.bulk(b"pending");
                out.int(c.pel.len() as i64);
                out.bulk(b"idle");
                out.int(wall_now.saturating_sub(c.seen_time).max(0));
            }
        }
        "groups" => {
            out.array(s.groups.len());
            for (gname, g) in &s.groups {
                out.map(6);
                out.bulk(b"name");
                out.bulk(gname);
                out.bulk(b"consumers");
                out.int(g.consumers.len() as i64);
                out.bulk(b"pending");
                out.int(g.pel.len() as i64);
                out.bulk(b"last-delivered-id");
                reply_id(out, g.last_id);
                out.bulk(b"entries-read");
                reply_opt_int(out, g.entries_read_known());
                out.bulk(b"lag");
                reply_opt_int(out, g.lag(s));
            }
        }
        _ => xinfo_stream(out, s, &argv[1], &argv[3..])?,
    }
    Ok(())
}

fn xinfo_stream(out: &mut Reply, s: &Stream, sub: &[u8], opts: &[Bytes]) -> CmdResult {
    let full = !opts.is_empty();
    let mut count: usize = 10;
    if full {
        if (opts.len() != 1 && opts.len() != 3) || !is_kw(&opts[0], "full") {
            return Err(sub_syntax("XINFO", sub));
        }
        if opts.len() == 3 {
            if !is_kw(&opts[1], "count") {
                return Err(sub_syntax("XINFO", sub));
            }
            let n = arg_i64(&opts[2])?;
            count = if n < 0 {
                10
            } else {
                usize::try_from(n).unwrap_or(usize::MAX)
            };
        }
    }
    let limit = |n: usize| if count == 0 { n } else { n.min(count) };
    out.map(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.int(s.length as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.listpacks.len() as i64);
    out.bulk(b"radix-tree-nodes");
    out.int(stream_group::rax_node_count(s.listpacks.keys()) as i64);
    out.bulk(b"last-generated-id");
    reply_id(out, s.last_id);
    out.bulk(b"max-deleted-entry-id");
    reply_id(out, s.max_deleted_id);
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    reply_id(out, s.first_id);
    if !full {
        out.bulk(b"groups");
        out.int(s.groups.len() as i64);
        for (label, rev) in [(&b"first-entry"[..], false), (&b"last-entry"[..], true)] {
            out.bulk(label);
            match s.range(StreamId::MIN, StreamId::MAX, rev).next() {
                Some(e) => reply_entry(out, &e),
                None => out.null(),
            }
        }
        return Ok(());
    }
    out.bulk(b"entries");
    let mut entries = Reply::new(out.resp3);
    let mut n = 0;
    for e in s.range(StreamId::MIN, StreamId::MAX, false) {
        if count != 0 && n == count {
            break;
        }
        reply_entry(&mut entries, &e);
        n += 1;
    }
    out.array(n);
    out.raw(&entries.buf);
    out.bulk(b"groups");
    out.array(s.groups.len());
    for (gname, g) in &s.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(gname);
        out.bulk(b"last-delivered-id");
        reply_id(out, g.last_id);
        out.bulk(b"entries-read");
        reply_opt_int(out, g.entries_read_known());
        out.bulk(b"lag");
        reply_opt_int(out, g.lag(s));
        out.bulk(b"pel-count");
        out.int(g.pel.len() as i64);
        out.bulk(b"pending");
        out.array(limit(g.pel.len()));
        for (id, p) in g.pel.iter().take(limit(g.pel.len())) {
            out.array(4);
            reply_id(out, *id);
            out.bulk(p.consumer.as_deref().unwrap_or_default());
            out.int(p.delivery_time);
            out.int(p.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers.len());
        for (cname, c) in &g.consumers {
            out.map(4);
            out.bulk(b"name");
            out.bulk(cname);
            out.bulk(b"seen-time");
            out.int(c.seen_time);
            out.bulk(b"pel-count");
            out.int(c.pel.len() as i64);
            out.bulk(b"pending");
            out.array(limit(c.pel.len()));
            for id in c.pel.iter().take(limit(c.pel.len())) {
                let p = g.pel.get(id);
                out.array(3);
                reply_id(out, *id);
                out.int(p.map_or(0, |p| p.delivery_time));
                out.int(p.map_or(0, |p| p.delivery_count as i64));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split_whitespace()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn xreadgroup_keys_are_the_first_half_after_streams() {
        assert_eq!(
            xreadgroup_keys(&args("xreadgroup group g c count 1 streams a b > >")),
            vec![7, 8]
        );
        assert_eq!(
            xreadgroup_keys(&args(
                "xreadgroup group streams c block 0 noack streams streams >"
            )),
            vec![8]
        );
        assert!(xreadgroup_keys(&args("xreadgroup group g c streams a b >")).is_empty());
        assert!(xreadgroup_keys(&args("xreadgroup group g c foo streams a >")).is_empty());
    }

    #[test]
    fn xclaim_effect_has_redis_form() {
        let p = PendingEntry {
            delivery_time: 1700,
            delivery_count: 3,
            consumer: Some(Bytes::from_static(b"c1")),
        };
        let e = xclaim_effect(
            &Bytes::from_static(b"k"),
            &Bytes::from_static(b"g"),
            Bytes::from_static(b"1-1"),
            &p,
            StreamId::new(4, 1),
        );
        let text: Vec<&[u8]> = e.iter().map(|b| &b[..]).collect();
        assert_eq!(
            text,
            [
                &b"XCLAIM"[..],
                b"k",
                b"g",
                b"c1",
                b"0",
                b"1-1",
                b"TIME",
                b"1700",
                b"RETRYCOUNT",
                b"3",
                b"FORCE",
                b"JUSTID",
                b"LASTID",
                b"4-1"
            ]
        );
    }
}
