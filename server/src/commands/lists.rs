//! Command family: lists (Redis 7.0 `t_list.c` semantics), including the blocking
//! pops. A blocking command that finds nothing sets `ctx.action = Block` and writes
//! no reply; the framework re-runs it for the waiter when one of its keys is written.

use super::{arg_i64, err, flags::*, is_kw, parse_f64, Action, CmdError, CmdResult, Command, Ctx};
use crate::notify::LIST;
use crate::resp::Reply;
use crate::types::{List, Value};
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("lpush", -3, WRITE | DENYOOM | FAST, lpush).keys(1, 1, 1),
    Command::new("rpush", -3, WRITE | DENYOOM | FAST, rpush).keys(1, 1, 1),
    Command::new("lpushx", -3, WRITE | DENYOOM | FAST, lpushx).keys(1, 1, 1),
    Command::new("rpushx", -3, WRITE | DENYOOM | FAST, rpushx).keys(1, 1, 1),
    Command::new("lpop", -2, WRITE | FAST, lpop).keys(1, 1, 1),
    Command::new("rpop", -2, WRITE | FAST, rpop).keys(1, 1, 1),
    Command::new("llen", 2, READONLY | FAST, llen).keys(1, 1, 1),
    Command::new("lrange", 4, READONLY, lrange).keys(1, 1, 1),
    Command::new("lindex", 3, READONLY, lindex).keys(1, 1, 1),
    Command::new("lset", 4, WRITE | DENYOOM, lset).keys(1, 1, 1),
    Command::new("linsert", 5, WRITE | DENYOOM, linsert).keys(1, 1, 1),
    Command::new("lrem", 4, WRITE, lrem).keys(1, 1, 1),
    Command::new("ltrim", 4, WRITE, ltrim).keys(1, 1, 1),
    Command::new("lpos", -3, READONLY, lpos).keys(1, 1, 1),
    Command::new("lmove", 5, WRITE | DENYOOM, lmove).keys(1, 2, 1),
    Command::new("rpoplpush", 3, WRITE | DENYOOM, rpoplpush).keys(1, 2, 1),
    Command::new("lmpop", -4, WRITE, lmpop).keys_with(lmpop_keys),
    Command::new("blpop", -3, NO_SCRIPT | WRITE | BLOCKING, blpop).keys(1, -2, 1),
    Command::new("brpop", -3, NO_SCRIPT | WRITE | BLOCKING, brpop).keys(1, -2, 1),
    Command::new("blmove", 6, NO_SCRIPT | WRITE | DENYOOM | BLOCKING, blmove).keys(1, 2, 1),
    Command::new(
        "brpoplpush",
        4,
        NO_SCRIPT | WRITE | DENYOOM | BLOCKING,
        brpoplpush,
    )
    .keys(1, 2, 1),
    Command::new("blmpop", -5, WRITE | BLOCKING, blmpop).keys_with(blmpop_keys),
];

const NOT_POSITIVE: CmdError = CmdError(std::borrow::Cow::Borrowed(
    "ERR value is out of range, must be positive",
));

/// The list under `key` for writing; Err on a non-list value.
fn list_w<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut List>, CmdError> {
    match ctx.get_mut(key) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// The list under `key` for reading; Err on a non-list value.
fn list_r<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut List>, CmdError> {
    match ctx.get(key) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// Like `list_w` for the keys a blocking command pops from. When the command is
/// re-run for a blocked client (it is still registered as a waiter), a key that now
/// holds another type is simply not ready, as in Redis 7.0, which only serves
/// blocked clients from keys that hold a list.
fn list_ready<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut List>, CmdError> {
    let waiter = ctx.store.waiters.contains_key(&ctx.client.id);
    match ctx.get_mut(key) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) if waiter => Ok(None),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// Parses a count that must be >= 0 (`getPositiveLongFromObjectOrReply`).
fn positive(a: &[u8]) -> Result<i64, CmdError> {
    match crate::resp::parse_i64(a) {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(NOT_POSITIVE),
    }
}

/// Parses a blocking timeout in seconds (float) into milliseconds (0 = forever).
pub fn parse_timeout(a: &[u8]) -> Result<u64, CmdError> {
    let secs = parse_f64(a).ok_or(err::TIMEOUT)?;
    let ms = (secs * 1000.0).ceil();
    // Redis converts to a long long: out-of-range values come out negative.
    if ms < 0.0 || !ms.is_finite() || ms >= 9.2e18 {
        return Err(err::NEG_TIMEOUT);
    }
    Ok(ms as u64)
}

/// Parses LEFT/RIGHT; true for LEFT.
fn parse_where(a: &[u8]) -> Result<bool, CmdError> {
    if is_kw(a, "left") {
        Ok(true)
    } else if is_kw(a, "right") {
        Ok(false)
    } else {
        Err(err::SYNTAX)
    }
}

/// A new empty list value, its nodes sized by `list-max-listpack-size`.
fn new_list(ctx: &Ctx) -> Value {
    Value::List(Box::new(List::new(List::fill_of(&ctx.config()))))
}

fn push_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], left: bool, xx: bool) -> CmdResult {
    let key = &argv[1];
    // One lookup: a new list is built with its elements and stored once.
    let len = match list_w(ctx, key)? {
        Some(l) => {
            for v in &argv[2..] {
                l.push(v, left);
            }
            l.len()
        }
        None if xx => {
            out.int(0);
            return Ok(());
        }
        None => {
            let mut l = List::new(List::fill_of(&ctx.config()));
            for v in &argv[2..] {
                l.push(v, left);
            }
            let len = l.len();
            ctx.set(key.clone(), Value::List(Box::new(l)));
            len
        }
    };
    ctx.dirty((argv.len() - 2) as u64);
    ctx.notify(LIST, if left { "lpush" } else { "rpush" }, key);
    out.int(len as i64);
    Ok(())
}

fn lpush(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, out, argv, true, false)
}
fn rpush(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, out, argv, false, false)
}
fn lpushx(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, out, argv, true, true)
}
fn rpushx(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, out, argv, false, true)
}

fn pop_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], left: bool) -> CmdResult {
    if argv.len() > 3 {
        let name = if left { "lpop" } else { "rpop" };
        return Err(CmdError::msg(format!(
            "ERR wrong number of arguments for '{name}' command"
        )));
    }
    let count = match argv.get(2) {
        Some(a) => Some(positive(a)?),
        None => None,
    };
    let key = &argv[1];
    let Some(l) = list_w(ctx, key)? else {
        if count.is_some() {
            out.null_array();
        } else {
            out.null();
        }
        return Ok(());
    };
    match count {
        None => {
            if l.pop_with(left, |v| out.bulk(v)).is_none() {
                out.null();
            }
        }
        Some(0) => {
            out.array(0);
            return Ok(());
        }
        Some(n) => {
            let n = (n as u64).min(l.len() as u64) as usize;
            out.array(n);
            for _ in 0..n {
                l.pop_with(left, |v| out.bulk(v));
            }
        }
    }
    // Known from the list in hand: a pop that leaves elements needs no second
    // lookup of the key (about 5 % of an RPOP -P 16's user time).
    let emptied = l.is_empty();
    ctx.notify(LIST, if left { "lpop" } else { "rpop" }, key);
    if emptied {
        ctx.delete_if_empty(key);
    }
    ctx.dirty(1);
    Ok(())
}

fn lpop(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    pop_generic(ctx, out, argv, true)
}
fn rpop(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    pop_generic(ctx, out, argv, false)
}

fn llen(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = list_r(ctx, &argv[1])?.map_or(0, |l| l.len());
    out.int(n as i64);
    Ok(())
}

/// Converts Redis start/end (negative from the end) into a clamped inclusive range.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

fn lrange(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let start = arg_i64(&argv[2])?;
    let end = arg_i64(&argv[3])?;
    let Some(l) = list_r(ctx, &argv[1])? else {
        out.array(0);
        return Ok(());
    };
    match clamp_range(start, end, l.len()) {
        None => out.array(0),
        Some((s, e)) => {
            out.array(e - s + 1);
            for v in l.range(s, e - s + 1) {
                out.bulk(v);
            }
        }
    }
    Ok(())
}

/// A Redis index (negative from the end) into a position, if in range.
fn index_of(idx: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if idx < 0 { len.checked_add(idx)? } else { idx };
    (0..len).contains(&i).then_some(i as usize)
}

fn lindex(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let Some(l) = list_r(ctx, &argv[1])? else {
        out.null();
        return Ok(());
    };
    let len = l.len();
    let idx = arg_i64(&argv[2])?;
    out.opt_bulk(index_of(idx, len).and_then(|i| l.get(i)));
    Ok(())
}

fn lset(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let Some(l) = list_w(ctx, &argv[1])? else {
        return Err(err::NO_SUCH_KEY);
    };
    let len = l.len();
    let idx = arg_i64(&argv[2])?;
    if !index_of(idx, len).is_some_and(|i| l.set(i, &argv[3])) {
        return Err(err::OUT_OF_RANGE);
    }
    ctx.dirty(1);
    ctx.notify(LIST, "lset", &argv[1]);
    out.ok();
    Ok(())
}

fn linsert(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let after = if is_kw(&argv[2], "after") {
        true
    } else if is_kw(&argv[2], "before") {
        false
    } else {
        return Err(err::SYNTAX);
    };
    let Some(l) = list_w(ctx, &argv[1])? else {
        out.int(0);
        return Ok(());
    };
    let Some(pos) = l.position(&argv[3]) else {
        out.int(-1);
        return Ok(());
    };
    l.insert(if after { pos + 1 } else { pos }, &argv[4]);
    let len = l.len();
    ctx.dirty(1);
    ctx.notify(LIST, "linsert", &argv[1]);
    out.int(len as i64);
    Ok(())
}

fn lrem(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let count = arg_i64(&argv[2])?;
    let key = &argv[1];
    let Some(l) = list_w(ctx, key)? else {
        out.int(0);
        return Ok(());
    };
    let removed = l.remove(&argv[3], count) as u64;
    if removed > 0 {
        ctx.notify(LIST, "lrem", key);
        ctx.delete_if_empty(key);
        ctx.dirty(removed);
    }
    out.int(removed as i64);
    Ok(())
}

fn ltrim(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let start = arg_i64(&argv[2])?;
    let end = arg_i64(&argv[3])?;
    let key = &argv[1];
    let Some(l) = list_w(ctx, key)? else {
        out.ok();
        return Ok(());
    };
    let before = l.len();
    match clamp_range(start, end, l.len()) {
        None => l.clear(),
        Some((s, e)) => l.trim(s, e),
    }
    // Like Redis, the change count is the number of trimmed elements.
    let removed = (before - l.len()) as u64;
    ctx.notify(LIST, "ltrim", key);
    ctx.delete_if_empty(key);
    ctx.dirty(removed);
    out.ok();
    Ok(())
}

fn lpos(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let mut rank: i64 = 1;
    let mut count: Option<i64> = None;
    let mut maxlen: i64 = 0;
    let mut i = 3;
    while i < argv.len() {
        let opt = &argv[i];
        let Some(val) = argv.get(i + 1) else {
            return Err(err::SYNTAX);
        };
        if is_kw(opt, "rank") {
            rank = arg_i64(val)?;
            if rank == 0 || rank == i64::MIN {
                return Err(CmdError::msg(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is_kw(opt, "count") {
            // Redis reads COUNT and MAXLEN as ranges from 0: a value that is not an
            // integer gets the same message as a negative one.
            let c = arg_i64(val)
                .ok()
                .filter(|c| *c >= 0)
                .ok_or(CmdError::msg("ERR COUNT can't be negative"))?;
            count = Some(c);
        } else if is_kw(opt, "maxlen") {
            maxlen = arg_i64(val)
                .ok()
                .filter(|m| *m >= 0)
                .ok_or(CmdError::msg("ERR MAXLEN can't be negative"))?;
        } else {
            return Err(err::SYNTAX);
        }
        i += 2;
    }
    let Some(l) = list_r(ctx, &argv[1])? else {
        if count.is_some() {
            out.array(0);
        } else {
            out.null();
        }
        return Ok(());
    };
    let want = match count {
        None => 1,
        Some(0) => usize::MAX,
        Some(c) => usize::try_from(c).unwrap_or(usize::MAX),
    };
    let maxlen = usize::try_from(maxlen).unwrap_or(usize::MAX);
    let found = l.positions(&argv[2], rank, want, maxlen);
    match count {
        None => match found.first() {
            Some(&i) => out.int(i as i64),
            None => out.null(),
        },
        Some(_) => {
            out.array(found.len());
            for i in found {
                out.int(i as i64);
            }
        }
    }
    Ok(())
}

/// LMOVE core, after directions are parsed. Writes the moved element, or null if
/// `src` is missing (returns false then, so blocking variants can block).
fn move_generic(
    ctx: &mut Ctx,
    out: &mut Reply,
    src: &Bytes,
    dst: &Bytes,
    from_left: bool,
    to_left: bool,
) -> Result<bool, CmdError> {
    if list_ready(ctx, src)?.is_none() {
        return Ok(false);
    }
    // The destination must be a list too (checked before changing anything). A
    // blocking move answers WRONGTYPE here as a reply that serves it: a blocked
    // client whose destination changed type is woken with the error (as Redis does),
    // where a wrong-typed source would only keep it waiting.
    let may_block = ctx.may_block;
    let dst_exists = match list_w(ctx, dst).map(|l| l.is_some()) {
        Ok(exists) => exists,
        Err(e) if may_block => {
            out.error(&e.0);
            return Ok(true);
        }
        Err(e) => return Err(e),
    };
    let Some(v) = list_w(ctx, src)?.and_then(|l| l.pop(from_left)) else {
        return Ok(false);
    };
    if !dst_exists && src != dst {
        let l = new_list(ctx);
        ctx.set(dst.clone(), l);
    }
    match list_w(ctx, dst)? {
        Some(l) => l.push(&v, to_left),
        None => {
            // src == dst and the single element was popped: recreate the list.
            let mut l = new_list(ctx);
            if let Value::List(l) = &mut l {
                l.push(&v, to_left);
            }
            ctx.set(dst.clone(), l);
        }
    }
    ctx.notify(LIST, if to_left { "lpush" } else { "rpush" }, dst);
    ctx.notify(LIST, if from_left { "lpop" } else { "rpop" }, src);
    ctx.delete_if_empty(src);
    ctx.dirty(1);
    out.bulk(&v);
    Ok(true)
}

fn lmove(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let from = parse_where(&argv[3])?;
    let to = parse_where(&argv[4])?;
    if !move_generic(ctx, out, &argv[1], &argv[2], from, to)? {
        out.null();
    }
    Ok(())
}

fn rpoplpush(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if !move_generic(ctx, out, &argv[1], &argv[2], false, true)? {
        out.null();
    }
    Ok(())
}

fn block_or_null(ctx: &mut Ctx, out: &mut Reply, keys: Vec<Bytes>, timeout_ms: u64, array: bool) {
    if ctx.may_block {
        ctx.action = Some(Action::Block {
            keys,
            timeout_ms,
            argv: None,
        });
    } else if array {
        out.null_array();
    } else {
        out.null();
    }
}

fn blmove(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let from = parse_where(&argv[3])?;
    let to = parse_where(&argv[4])?;
    let timeout = parse_timeout(&argv[5])?;
    if move_generic(ctx, out, &argv[1], &argv[2], from, to)? {
        ctx.rewrite = Some(vec![
            Bytes::from_static(b"LMOVE"),
            argv[1].clone(),
            argv[2].clone(),
            argv[3].clone(),
            argv[4].clone(),
        ]);
    } else {
        block_or_null(ctx, out, vec![argv[1].clone()], timeout, false);
    }
    Ok(())
}

fn brpoplpush(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let timeout = parse_timeout(&argv[3])?;
    if move_generic(ctx, out, &argv[1], &argv[2], false, true)? {
        ctx.rewrite = Some(vec![
            Bytes::from_static(b"RPOPLPUSH"),
            argv[1].clone(),
            argv[2].clone(),
        ]);
    } else {
        block_or_null(ctx, out, vec![argv[1].clone()], timeout, false);
    }
    Ok(())
}

fn bpop_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], left: bool) -> CmdResult {
    let timeout = parse_timeout(&argv[argv.len() - 1])?;
    let keys = &argv[1..argv.len() - 1];
    for key in keys {
        let Some(l) = list_ready(ctx, key)? else {
            continue;
        };
        let Some(v) = l.pop(left) else {
            continue;
        };
        ctx.notify(LIST, if left { "lpop" } else { "rpop" }, key);
        ctx.delete_if_empty(key);
        ctx.dirty(1);
        out.array(2);
        out.bulk(key);
        out.bulk(&v);
        let name: &'static [u8] = if left { b"LPOP" } else { b"RPOP" };
        ctx.rewrite = Some(vec![Bytes::from_static(name), key.clone()]);
        return Ok(());
    }
    block_or_null(ctx, out, keys.to_vec(), timeout, true);
    Ok(())
}

fn blpop(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    bpop_generic(ctx, out, argv, true)
}
fn brpop(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    bpop_generic(ctx, out, argv, false)
}

const NUMKEYS: CmdError = CmdError(std::borrow::Cow::Borrowed(
    "ERR numkeys should be greater than 0",
));

/// Parsed `numkeys key... LEFT|RIGHT [COUNT n]` starting at `at` (the numkeys index).
struct MPop {
    keys: std::ops::Range<usize>,
    left: bool,
    count: i64,
}

fn parse_mpop(argv: &[Bytes], at: usize) -> Result<MPop, CmdError> {
    let numkeys = match crate::resp::parse_i64(&argv[at]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(NUMKEYS),
    };
    let first = at + 1;
    // Keys plus the direction must fit in the arguments.
    if numkeys >= (argv.len() - first) as u64 {
        return Err(err::SYNTAX);
    }
    let end = first + numkeys as usize;
    let left = parse_where(&argv[end])?;
    let mut count = None;
    let mut i = end + 1;
    while i < argv.len() {
        if is_kw(&argv[i], "count") && count.is_none() && i + 1 < argv.len() {
            match crate::resp::parse_i64(&argv[i + 1]) {
                Some(n) if n >= 1 => count = Some(n),
                _ => return Err(CmdError::msg("ERR count should be greater than 0")),
            }
            i += 2;
        } else {
            return Err(err::SYNTAX);
        }
    }
    Ok(MPop {
        keys: first..end,
        left,
        count: count.unwrap_or(1),
    })
}

fn mpop_keys_at(argv: &[Bytes], at: usize) -> Vec<usize> {
    match argv.get(at).and_then(|a| crate::resp::parse_i64(a)) {
        Some(n) if n >= 1 => {
            let n = (n as u64).min(argv.len() as u64) as usize;
            (at + 1..at + 1 + n).collect()
        }
        _ => Vec::new(),
    }
}

fn lmpop_keys(argv: &[Bytes]) -> Vec<usize> {
    mpop_keys_at(argv, 1)
}

fn blmpop_keys(argv: &[Bytes]) -> Vec<usize> {
    mpop_keys_at(argv, 2)
}

/// Pops from the first non-empty list; false if every list is missing.
fn mpop_serve(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], p: &MPop) -> Result<bool, CmdError> {
    for key in &argv[p.keys.clone()] {
        let Some(l) = list_ready(ctx, key)? else {
            continue;
        };
        if l.is_empty() {
            continue;
        }
        let n = (p.count as u64).min(l.len() as u64) as usize;
        out.array(2);
        out.bulk(key);
        out.array(n);
        for _ in 0..n {
            l.pop_with(p.left, |v| out.bulk(v));
        }
        ctx.notify(LIST, if p.left { "lpop" } else { "rpop" }, key);
        ctx.delete_if_empty(key);
        ctx.dirty(1);
        let name: &'static [u8] = if p.left { b"LPOP" } else { b"RPOP" };
        ctx.rewrite = Some(vec![
            Bytes::from_static(name),
            key.clone(),
            Bytes::from(n.to_string()),
        ]);
        return Ok(true);
    }
    Ok(false)
}

fn lmpop(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let p = parse_mpop(argv, 1)?;
    if !mpop_serve(ctx, out, argv, &p)? {
        out.null_array();
    }
    Ok(())
}

fn blmpop(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let timeout = parse_timeout(&argv[1])?;
    let p = parse_mpop(argv, 2)?;
    if !mpop_serve(ctx, out, argv, &p)? {
        let keys = argv[p.keys.clone()].to_vec();
        block_or_null(ctx, out, keys, timeout, true);
    }
    Ok(())
}

/// In-process harness for unit tests of the command families: runs commands
/// through `exec::call` and exposes what they propagated.
#[cfg(test)]
pub(crate) mod harness {
    use crate::commands::{lookup, ClientState};
    use crate::config::Config;
    use crate::exec::{self, Outcome};
    use crate::resp::Reply;
    use crate::server::{Server, Store};
    use bytes::Bytes;
    use std::sync::Arc;

    pub struct H {
        pub server: Arc<Server>,
        pub store: Store,
    }

    impl H {
        pub fn new() -> H {
            H {
                server: Server::new(Config::default()),
                store: Store::new(16),
            }
        }

        /// Runs one command as client `id`: (reply bytes, propagated ops, outcome).
        pub fn run(&mut self, id: u64, args: &[&str]) -> (String, Vec<String>, Outcome) {
            let argv: Vec<Bytes> = args
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            let Some(cmd) = lookup(&argv[0]) else {
                panic!("unknown command {}", args[0]);
            };
            let mut client = ClientState::new(id);
            client.authenticated = true;
            let mut out = Reply::new(false);
            let before = self.store.propagated.len();
            let outcome = exec::call(
                &self.server,
                &mut self.store,
                &mut client,
                cmd,
                &argv,
                &mut out,
                true,
            );
            exec::finish_propagation(&mut self.store, before);
            exec::serve_blocked(&self.server, &mut self.store);
            let ops = std::mem::take(&mut self.store.propagated)
                .into_iter()
                .map(|(_, argv)| {
                    argv.iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            (String::from_utf8_lossy(&out.buf).into_owned(), ops, outcome)
        }

        /// Runs a command the way EXEC does (blocking not allowed): the reply.
        pub fn run_no_block(&mut self, args: &[&str]) -> String {
            let argv: Vec<Bytes> = args
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            let Some(cmd) = lookup(&argv[0]) else {
                panic!("unknown command {}", args[0]);
            };
            let mut client = ClientState::new(1);
            client.authenticated = true;
            let mut out = Reply::new(false);
            exec::call(
                &self.server,
                &mut self.store,
                &mut client,
                cmd,
                &argv,
                &mut out,
                false,
            );
            String::from_utf8_lossy(&out.buf).into_owned()
        }

        /// Runs a command and returns only its propagated ops.
        pub fn ops(&mut self, args: &[&str]) -> Vec<String> {
            self.run(1, args).1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::harness::H;
    use super::*;
    use crate::exec::Outcome;

    #[test]
    fn blocking_pops_propagate_as_plain_pops() {
        let mut h = H::new();
        h.ops(&["rpush", "k", "a", "b", "c"]);
        assert_eq!(h.ops(&["blpop", "k", "0"]), vec!["LPOP k"]);
        assert_eq!(h.ops(&["brpop", "nokey", "k", "0"]), vec!["RPOP k"]);
        h.ops(&["rpush", "k", "x", "y", "z"]);
        assert_eq!(
            h.ops(&["lmpop", "1", "k", "left", "count", "10"]),
            vec!["LPOP k 4"]
        );
        h.ops(&["rpush", "k", "x", "y"]);
        assert_eq!(
            h.ops(&["blmpop", "0", "2", "no", "k", "right"]),
            vec!["RPOP k 1"]
        );
        assert_eq!(
            h.ops(&["blmove", "k", "d", "left", "right", "0"]),
            vec!["LMOVE k d left right"]
        );
        h.ops(&["rpush", "k", "x"]);
        assert_eq!(h.ops(&["brpoplpush", "k", "d", "0"]), vec!["RPOPLPUSH k d"]);
        // Nothing popped: nothing propagated.
        assert!(h.ops(&["lpop", "nokey"]).is_empty());
        // LTRIM counts trimmed elements as changes; a no-op trim propagates nothing.
        h.ops(&["rpush", "t", "a", "b", "c"]);
        assert!(h.ops(&["ltrim", "t", "0", "-1"]).is_empty());
        assert_eq!(h.ops(&["ltrim", "t", "1", "-1"]), vec!["ltrim t 1 -1"]);
    }

    #[test]
    fn blocking_commands_do_not_block_where_blocking_is_denied() {
        let mut h = H::new();
        assert_eq!(h.run_no_block(&["blpop", "k", "0"]), "*-1\r\n");
        assert_eq!(h.run_no_block(&["brpop", "a", "b", "0"]), "*-1\r\n");
        assert_eq!(
            h.run_no_block(&["blmpop", "0", "1", "k", "left"]),
            "*-1\r\n"
        );
        assert_eq!(
            h.run_no_block(&["blmove", "k", "d", "left", "left", "0"]),
            "$-1\r\n"
        );
        assert_eq!(h.run_no_block(&["brpoplpush", "k", "d", "0"]), "$-1\r\n");
        assert!(h.store.waiters.is_empty());
        h.ops(&["rpush", "k", "v"]);
        assert_eq!(
            h.run_no_block(&["blpop", "k", "0"]),
            "*2\r\n$1\r\nk\r\n$1\r\nv\r\n"
        );
    }

    #[test]
    fn waiters_are_served_first_come_first_served() {
        let mut h = H::new();
        let mut rxs = Vec::new();
        for id in [11, 12, 13] {
            let (_, _, outcome) = h.run(id, &["brpop", "q", "0"]);
            let Outcome::Blocked { rx, .. } = outcome else {
                panic!("expected to block");
            };
            rxs.push(rx);
        }
        h.run(20, &["lpush", "q", "a", "b"]);
        // Two elements: the first two waiters get them (RPOP takes "a" first).
        assert_eq!(
            rxs[0].try_recv().expect("first"),
            b"*2\r\n$1\r\nq\r\n$1\r\na\r\n"
        );
        assert_eq!(
            rxs[1].try_recv().expect("second"),
            b"*2\r\n$1\r\nq\r\n$1\r\nb\r\n"
        );
        assert!(rxs[2].try_recv().is_err(), "third waiter keeps waiting");
        assert_eq!(h.store.waiters.len(), 1);
    }

    #[test]
    fn a_waiter_keeps_waiting_when_its_key_becomes_another_type() {
        let mut h = H::new();
        let (_, _, outcome) = h.run(7, &["blpop", "q", "0"]);
        let Outcome::Blocked { mut rx, .. } = outcome else {
            panic!("expected to block");
        };
        h.run(8, &["set", "q", "str"]);
        assert!(rx.try_recv().is_err(), "must not be served an error");
        assert!(h.store.waiters.contains_key(&7));
        // A fresh BLPOP on the same key still gets WRONGTYPE.
        let (reply, _, _) = h.run(9, &["blpop", "q", "0"]);
        assert!(reply.starts_with("-WRONGTYPE"), "{reply}");
    }

    #[test]
    fn a_served_waiter_propagates_its_pop_after_the_push() {
        let mut h = H::new();
        let (reply, ops, outcome) = h.run(7, &["blpop", "q", "0"]);
        assert!(reply.is_empty());
        assert!(ops.is_empty());
        let Outcome::Blocked { mut rx, .. } = outcome else {
            panic!("expected to block");
        };
        let (reply, ops, _) = h.run(8, &["rpush", "q", "v"]);
        assert_eq!(reply, ":1\r\n");
        assert_eq!(ops, vec!["rpush q v", "LPOP q"]);
        let served = rx.try_recv().expect("served");
        assert_eq!(served, b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n");
        assert!(h.store.dbs[0].is_empty());
        assert!(h.store.waiters.is_empty());
    }

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(5, 10, 3), None);
        assert_eq!(clamp_range(0, 0, 0), None);
        assert_eq!(index_of(-1, 3), Some(2));
        assert_eq!(index_of(-4, 3), None);
        assert_eq!(index_of(3, 3), None);
        assert_eq!(index_of(i64::MIN, 3), None);
    }

    #[test]
    fn timeouts_parse_like_redis() {
        assert_eq!(parse_timeout(b"0"), Ok(0));
        assert_eq!(parse_timeout(b"0.5"), Ok(500));
        assert_eq!(parse_timeout(b"-1"), Err(err::NEG_TIMEOUT));
        assert_eq!(parse_timeout(b"abc"), Err(err::TIMEOUT));
        assert_eq!(parse_timeout(b"1e20"), Err(err::NEG_TIMEOUT));
    }
}
