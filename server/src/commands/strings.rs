//! Command family: strings (GET/SET and friends, counters, ranges).
//!
//! Relative or non-deterministic forms are propagated as absolute, deterministic
//! commands (REPLICATION.md 3.5): `SET ... EX` becomes `SET k v PXAT <abs>`, GETEX
//! becomes PEXPIREAT/DEL/PERSIST, GETDEL a DEL, GETSET a SET and INCRBYFLOAT a
//! `SET k <result> KEEPTTL`.

use super::{arg_i64, err, flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::notify::{GENERIC, STRING};
use crate::resp::Reply;
use crate::types::{Str, Value};
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("get", 2, READONLY | FAST, get).keys(1, 1, 1),
    Command::new("set", -3, WRITE | DENYOOM, set).keys(1, 1, 1),
    Command::new("setnx", 3, WRITE | DENYOOM | FAST, setnx).keys(1, 1, 1),
    Command::new("setex", 4, WRITE | DENYOOM, setex).keys(1, 1, 1),
    Command::new("psetex", 4, WRITE | DENYOOM, psetex).keys(1, 1, 1),
    Command::new("getex", -2, WRITE | FAST, getex).keys(1, 1, 1),
    Command::new("getdel", 2, WRITE | FAST, getdel).keys(1, 1, 1),
    Command::new("getset", 3, WRITE | DENYOOM | FAST, getset).keys(1, 1, 1),
    Command::new("mget", -2, READONLY | FAST, mget).keys(1, -1, 1),
    Command::new("mset", -3, WRITE | DENYOOM, mset).keys(1, -1, 2),
    Command::new("msetnx", -3, WRITE | DENYOOM, msetnx).keys(1, -1, 2),
    Command::new("incr", 2, WRITE | DENYOOM | FAST, incr).keys(1, 1, 1),
    Command::new("decr", 2, WRITE | DENYOOM | FAST, decr).keys(1, 1, 1),
    Command::new("incrby", 3, WRITE | DENYOOM | FAST, incrby).keys(1, 1, 1),
    Command::new("decrby", 3, WRITE | DENYOOM | FAST, decrby).keys(1, 1, 1),
    Command::new("incrbyfloat", 3, WRITE | DENYOOM | FAST, incrbyfloat).keys(1, 1, 1),
    Command::new("append", 3, WRITE | DENYOOM | FAST, append).keys(1, 1, 1),
    Command::new("strlen", 2, READONLY | FAST, strlen).keys(1, 1, 1),
    Command::new("getrange", 4, READONLY, getrange).keys(1, 1, 1),
    Command::new("substr", 4, READONLY, getrange).keys(1, 1, 1),
    Command::new("setrange", 4, WRITE | DENYOOM, setrange).keys(1, 1, 1),
    Command::new("lcs", -3, READONLY, lcs).keys(1, 2, 1),
];

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

fn int_bytes(n: i64) -> Bytes {
    Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes())
}

fn int_str(n: i64) -> Str {
    Str::new(itoa::Buffer::new().format(n).as_bytes())
}

fn string_too_long() -> CmdError {
    CmdError::msg("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

/// Redis `checkStringLength`. Redis exempts its master's stream; here the limit also
/// applies to it, so no client can make the server allocate an unbounded string.
/// `max` is `proto-max-bulk-len`, read before the value is borrowed for an edit.
fn check_len(max: i64, total: Option<i64>) -> CmdResult {
    match total {
        Some(t) if t <= max => Ok(()),
        _ => Err(string_too_long()),
    }
}

/// Reads a string value: Ok(None) if missing, WRONGTYPE for other types.
fn read_str(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Bytes>, CmdError> {
    match ctx.get(key) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.to_bytes())),
        Some(_) => Err(err::WRONGTYPE),
    }
}

fn get(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    // Replies from the stored bytes: cloning the `Bytes` would turn a stored value
    // into a shared one (an allocation the first time, kept for the key's life).
    match ctx.get(&argv[1]) {
        None => out.opt_bulk(None),
        Some(Value::Str(s)) => out.bulk(s),
        Some(_) => return Err(err::WRONGTYPE),
    }
    Ok(())
}

/// Options of SET / GETEX (Redis `parseExtendedStringArgumentsOrReply`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ExpireUnit {
    #[default]
    None,
    Ex,
    Px,
    ExAt,
    PxAt,
}

#[derive(Debug, Default)]
struct SetOpts {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    unit: ExpireUnit,
    expire: Option<Bytes>,
}

fn parse_set_opts(argv: &[Bytes], first: usize, is_set: bool) -> Result<SetOpts, CmdError> {
    let mut o = SetOpts::default();
    let mut j = first;
    while j < argv.len() {
        let a = &argv[j];
        let has_next = j + 1 < argv.len();
        let timed = o.unit != ExpireUnit::None;
        if is_set && is_kw(a, "nx") && !o.xx {
            o.nx = true;
        } else if is_set && is_kw(a, "xx") && !o.nx {
            o.xx = true;
        } else if is_set && is_kw(a, "get") {
            o.get = true;
        } else if is_set && is_kw(a, "keepttl") && !o.persist && !timed {
            o.keepttl = true;
        } else if !is_set && is_kw(a, "persist") && !timed && !o.keepttl {
            o.persist = true;
        } else if let Some(unit) = [
            ("ex", ExpireUnit::Ex),
            ("px", ExpireUnit::Px),
            ("exat", ExpireUnit::ExAt),
            ("pxat", ExpireUnit::PxAt),
        ]
        .iter()
        .find(|(kw, _)| is_kw(a, kw))
        .map(|(_, u)| *u)
        {
            // The same unit may repeat (the last value wins); two units may not mix.
            if o.keepttl || o.persist || (timed && o.unit != unit) || !has_next {
                return Err(err::SYNTAX);
            }
            o.unit = unit;
            o.expire = Some(argv[j + 1].clone());
            j += 1;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

fn invalid_expire(cmd: &str) -> CmdError {
    CmdError::msg(format!("ERR invalid expire time in '{cmd}' command"))
}

/// The absolute expiry (ms) of an EX/PX/EXAT/PXAT argument (Redis
/// `getExpireMillisecondsOrReply`).
fn expire_ms(ctx: &Ctx, cmd: &str, unit: ExpireUnit, arg: &[u8]) -> Result<i64, CmdError> {
    let v = arg_i64(arg)?;
    let seconds = matches!(unit, ExpireUnit::Ex | ExpireUnit::ExAt);
    if v <= 0 || (seconds && v > i64::MAX / 1000) {
        return Err(invalid_expire(cmd));
    }
    let mut ms = if seconds { v * 1000 } else { v };
    if matches!(unit, ExpireUnit::Ex | ExpireUnit::Px) {
        ms = ms
            .checked_add(ctx.now_ms)
            .ok_or_else(|| invalid_expire(cmd))?;
    }
    Ok(ms)
}

/// Redis `setGenericCommand`. `replies` = (ok, abort) replies for SETNX-style callers.
fn set_generic(
    ctx: &mut Ctx,
    out: &mut Reply,
    cmd: &str,
    key: &Bytes,
    val: &Bytes,
    o: &SetOpts,
    int_replies: bool,
) -> CmdResult {
    let when = match &o.expire {
        Some(e) => Some(expire_ms(ctx, cmd, o.unit, e)?),
        None => None,
    };
    if o.get {
        let old = read_str(ctx, key)?;
        out.opt_bulk(old.as_deref());
    }
    // Like Redis, an expired key is deleted (and the deletion propagated) first; only
    // NX/XX need to know whether the key exists, the write below looks it up anyway.
    let found = if o.nx || o.xx {
        ctx.exists(key)
    } else {
        ctx.expire_if_needed(key);
        false
    };
    if (o.nx && found) || (o.xx && !found) {
        if !o.get {
            if int_replies {
                out.int(0);
            } else {
                out.null();
            }
        }
        return Ok(());
    }
    write_value(ctx, key, val, o.keepttl);
    let db = ctx.client.db;
    if let Some(at) = when {
        ctx.store.dbs[db].set_expire(key, at);
        ctx.notify(GENERIC, "expire", key);
        ctx.rewrite = Some(vec![
            b(b"SET"),
            key.clone(),
            val.clone(),
            b(b"PXAT"),
            int_bytes(at),
        ]);
    }
    if !o.get {
        if int_replies {
            out.int(1);
        } else {
            out.ok();
        }
    }
    Ok(())
}

/// SET's write of the value (after any NX/XX/GET check).
#[inline]
fn write_value(ctx: &mut Ctx, key: &Bytes, val: &Bytes, keepttl: bool) {
    ctx.lfu_touch_before_overwrite(key);
    let lru = ctx.lru;
    let db = ctx.client.db;
    if keepttl {
        ctx.store.dbs[db].set_keep_ttl(key, Value::Str(Str::from(val)), lru);
    } else {
        ctx.store.dbs[db].set(key, Value::Str(Str::from(val)), lru);
    }
    ctx.dirty(1);
    ctx.notify(STRING, "set", key);
}

fn set(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if let [_, key, val] = argv {
        // No options (the common SET): what `set_generic` does for them, without
        // parsing options or checking them.
        ctx.expire_if_needed(key);
        write_value(ctx, key, val, false);
        out.ok();
        return Ok(());
    }
    set_with_options(ctx, out, argv)
}

#[inline(never)]
fn set_with_options(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let o = parse_set_opts(argv, 3, true)?;
    set_generic(ctx, out, "set", &argv[1], &argv[2], &o, false)?;
    if o.get && o.expire.is_none() {
        let mut v: Vec<Bytes> = argv[..3].to_vec();
        v.extend(argv[3..].iter().filter(|a| !is_kw(a, "get")).cloned());
        ctx.rewrite = Some(v);
    }
    Ok(())
}

fn setnx(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let o = SetOpts {
        nx: true,
        ..Default::default()
    };
    set_generic(ctx, out, "setnx", &argv[1], &argv[2], &o, true)
}

fn setex(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let o = SetOpts {
        unit: ExpireUnit::Ex,
        expire: Some(argv[2].clone()),
        ..Default::default()
    };
    set_generic(ctx, out, "setex", &argv[1], &argv[3], &o, false)
}

fn psetex(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let o = SetOpts {
        unit: ExpireUnit::Px,
        expire: Some(argv[2].clone()),
        ..Default::default()
    };
    set_generic(ctx, out, "psetex", &argv[1], &argv[3], &o, false)
}

fn getex(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let o = parse_set_opts(argv, 2, false)?;
    let key = &argv[1];
    let Some(val) = read_str(ctx, key)? else {
        out.null();
        return Ok(());
    };
    let when = match &o.expire {
        Some(e) => Some(expire_ms(ctx, "getex", o.unit, e)?),
        None => None,
    };
    out.bulk(&val);
    let db = ctx.client.db;
    let absolute = matches!(o.unit, ExpireUnit::ExAt | ExpireUnit::PxAt);
    match when {
        Some(at) if absolute && at <= ctx.now_ms && !ctx.store.is_replica => {
            ctx.store.dbs[db].remove(key);
            let lazy = ctx.config().lazyfree_lazy_expire;
            let cmd = if lazy { b(b"UNLINK") } else { b(b"DEL") };
            ctx.rewrite = Some(vec![cmd, key.clone()]);
            ctx.dirty(1);
            ctx.notify(GENERIC, "del", key);
        }
        Some(at) => {
            ctx.store.dbs[db].set_expire(key, at);
            ctx.rewrite = Some(vec![b(b"PEXPIREAT"), key.clone(), int_bytes(at)]);
            ctx.dirty(1);
            ctx.notify(GENERIC, "expire", key);
        }
        None if o.persist && ctx.store.dbs[db].persist(key) => {
            ctx.rewrite = Some(vec![b(b"PERSIST"), key.clone()]);
            ctx.dirty(1);
            ctx.notify(GENERIC, "persist", key);
        }
        None => {}
    }
    Ok(())
}

fn getdel(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let Some(val) = read_str(ctx, &argv[1])? else {
        out.null();
        return Ok(());
    };
    out.bulk(&val);
    if ctx.db().remove(&argv[1]).is_some() {
        ctx.rewrite = Some(vec![b(b"DEL"), argv[1].clone()]);
        ctx.dirty(1);
        ctx.notify(GENERIC, "del", &argv[1]);
    }
    Ok(())
}

fn getset(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let old = read_str(ctx, &argv[1])?;
    out.opt_bulk(old.as_deref());
    ctx.set(&argv[1], Value::Str(Str::from(&argv[2])));
    ctx.dirty(1);
    ctx.notify(STRING, "set", &argv[1]);
    let mut v = argv.to_vec();
    v[0] = b(b"SET");
    ctx.rewrite = Some(v);
    Ok(())
}

fn mget(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    out.array(argv.len() - 1);
    for k in &argv[1..] {
        match ctx.get(k) {
            Some(Value::Str(s)) => out.bulk(s),
            _ => out.null(),
        }
    }
    Ok(())
}

fn wrong_args(name: &str) -> CmdError {
    CmdError::msg(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn mset(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len().is_multiple_of(2) {
        return Err(wrong_args("mset"));
    }
    for pair in argv[1..].chunks(2) {
        ctx.set(&pair[0], Value::Str(Str::from(&pair[1])));
        ctx.notify(STRING, "set", &pair[0]);
    }
    ctx.dirty((argv.len() as u64 - 1) / 2);
    out.ok();
    Ok(())
}

fn msetnx(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len().is_multiple_of(2) {
        return Err(wrong_args("msetnx"));
    }
    let mut any = false;
    for pair in argv[1..].chunks(2) {
        any |= ctx.exists(&pair[0]);
    }
    if any {
        out.int(0);
        return Ok(());
    }
    for pair in argv[1..].chunks(2) {
        ctx.set(&pair[0], Value::Str(Str::from(&pair[1])));
        ctx.notify(STRING, "set", &pair[0]);
    }
    ctx.dirty((argv.len() as u64 - 1) / 2);
    out.int(1);
    Ok(())
}

/// Redis `incrDecrCommand`: the TTL is kept.
fn incr_by(ctx: &mut Ctx, out: &mut Reply, key: &Bytes, by: i64) -> CmdResult {
    // The value is replaced in place (one lookup, no key copy); a missing key is
    // created.
    let new = match ctx.lookup_write(key) {
        None => {
            let lru = ctx.lru;
            ctx.db().set_keep_ttl(key, Value::Str(int_str(by)), lru);
            by
        }
        Some(e) => {
            let Value::Str(s) = e.value else {
                return Err(err::WRONGTYPE);
            };
            let old = crate::resp::parse_i64(s).ok_or(err::NOT_INT)?;
            let new = old.checked_add(by).ok_or(err::OVERFLOW)?;
            *s = int_str(new);
            // An integer again, whatever edits came before (OBJECT ENCODING `int`).
            e.meta.reset_encoding();
            new
        }
    };
    ctx.dirty(1);
    ctx.notify(STRING, "incrby", key);
    out.int(new);
    Ok(())
}

fn incr(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    incr_by(ctx, out, &argv[1], 1)
}

fn decr(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    incr_by(ctx, out, &argv[1], -1)
}

fn incrby(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = arg_i64(&argv[2])?;
    incr_by(ctx, out, &argv[1], n)
}

fn decrby(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = arg_i64(&argv[2])?;
    if n == i64::MIN {
        return Err(CmdError::msg("ERR decrement would overflow"));
    }
    incr_by(ctx, out, &argv[1], -n)
}

/// INCRBYFLOAT's arithmetic as Redis does it: both operands read by `strtold` (the
/// whole long-double range, hexadecimal included), one addition in x87 extended
/// precision, the result printed with `%.17Lf` minus trailing zeros; the emulation is
/// the one HINCRBYFLOAT uses. Spelled-out infinities are valid operands whose sum is
/// refused, as in Redis.
fn long_double_sum(a: &[u8], b: &[u8]) -> Result<String, CmdError> {
    use super::hashes::long_double::{is_inf_literal, Ld};
    let operand = |x: &[u8]| match Ld::parse(x) {
        Some(v) => Ok(Some(v)),
        None if is_inf_literal(x) => Ok(None),
        None => Err(err::NOT_FLOAT),
    };
    let (a, b) = (operand(a)?, operand(b)?);
    a.zip(b)
        .and_then(|(a, b)| a.checked_add(b))
        .map(Ld::to_human)
        .ok_or_else(|| CmdError::msg("ERR increment would produce NaN or Infinity"))
}

fn incrbyfloat(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let cur = match ctx.get_mut(key) {
        None => None,
        Some(Value::Str(s)) => Some(s.clone()),
        Some(_) => return Err(err::WRONGTYPE),
    };
    let cur_txt = cur.unwrap_or_else(|| b(b"0").into());
    let text = long_double_sum(&cur_txt, &argv[2])?;
    let new = Bytes::from(text);
    let lru = ctx.lru;
    ctx.db()
        .set_keep_ttl(key.clone(), Value::Str(Str::from(&new)), lru);
    // Redis stores the printed sum as a string object without trying the integer
    // encoding: `5000` is `embstr` there.
    if let Some(e) = ctx.db().entry_mut(key) {
        e.meta.set_verbatim(true);
    }
    ctx.dirty(1);
    ctx.notify(STRING, "incrbyfloat", key);
    out.bulk(&new);
    ctx.rewrite = Some(vec![b(b"SET"), key.clone(), new, b(b"KEEPTTL")]);
    Ok(())
}

fn append(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let (key, more) = (&argv[1], &argv[2]);
    let max = ctx.config().proto_max_bulk_len;
    // An existing string grows in place, with slack (amortised, like Redis's sds).
    let len = match ctx.get_mut(key) {
        None => None,
        Some(Value::Str(s)) => {
            check_len(max, (s.len() as i64).checked_add(more.len() as i64))?;
            s.append(more);
            Some(s.len())
        }
        Some(_) => return Err(err::WRONGTYPE),
    };
    let len = match len {
        // Redis makes an appended-to string `raw` (OBJECT ENCODING), even when it
        // was empty or nothing was appended.
        Some(n) => {
            if let Some(e) = ctx.db().entry_mut(key) {
                e.meta.mark_raw();
            }
            n
        }
        // A new key stores the argument as given (re-encoded like SET's).
        None => {
            let lru = ctx.lru;
            ctx.db()
                .set_keep_ttl(key.clone(), Value::Str(Str::from(more)), lru);
            more.len()
        }
    };
    ctx.dirty(1);
    ctx.notify(STRING, "append", key);
    out.int(len as i64);
    Ok(())
}

fn strlen(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let v = read_str(ctx, &argv[1])?;
    out.int(v.map_or(0, |s| s.len() as i64));
    Ok(())
}

fn getrange(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let mut start = arg_i64(&argv[2])?;
    let mut end = arg_i64(&argv[3])?;
    let Some(s) = read_str(ctx, &argv[1])? else {
        out.bulk(b"");
        return Ok(());
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        out.bulk(b"");
        return Ok(());
    }
    if start < 0 {
        start = start.saturating_add(len);
    }
    if end < 0 {
        end = end.saturating_add(len);
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        out.bulk(b"");
    } else {
        out.bulk(&s[start as usize..=end as usize]);
    }
    Ok(())
}

fn setrange(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let offset = arg_i64(&argv[2])?;
    if offset < 0 {
        return Err(CmdError::msg("ERR offset is out of range"));
    }
    let value = &argv[3];
    let max = ctx.config().proto_max_bulk_len;
    let fits = check_len(max, offset.checked_add(value.len() as i64));
    let off = offset as usize;
    let end = off.saturating_add(value.len());
    // An existing string is edited in place (it keeps a growable buffer).
    let len = match ctx.get_mut(key) {
        Some(Value::Str(s)) if value.is_empty() => {
            out.int(s.len() as i64);
            return Ok(());
        }
        None if value.is_empty() => {
            out.int(0);
            return Ok(());
        }
        Some(Value::Str(_)) | None if fits.is_err() => return fits,
        Some(Value::Str(s)) => {
            let v = s.vec_mut();
            if v.len() < end {
                v.resize(end, 0);
            }
            v[off..end].copy_from_slice(value);
            v.len()
        }
        Some(_) => return Err(err::WRONGTYPE),
        None => {
            let mut v = vec![0u8; end];
            v[off..end].copy_from_slice(value);
            let lru = ctx.lru;
            ctx.db()
                .set_keep_ttl(key.clone(), Value::Str(Str::from(v)), lru);
            end
        }
    };
    ctx.dirty(1);
    ctx.notify(STRING, "setrange", key);
    out.int(len as i64);
    Ok(())
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: the longest common
/// subsequence by the classic dynamic-programming table, walked back from the end so
/// the IDX ranges come out last-to-first as in Redis.
fn lcs(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let not_strings = || CmdError::msg("ERR The specified keys must contain string values");
    let a = match ctx.get(&argv[1]) {
        None => Bytes::new(),
        Some(Value::Str(s)) => s.to_bytes(),
        Some(_) => return Err(not_strings()),
    };
    let b = match ctx.get(&argv[2]) {
        None => Bytes::new(),
        Some(Value::Str(s)) => s.to_bytes(),
        Some(_) => return Err(not_strings()),
    };
    let (mut want_len, mut want_idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut j = 3;
    while j < argv.len() {
        let o = &argv[j];
        if is_kw(o, "idx") {
            want_idx = true;
        } else if is_kw(o, "len") {
            want_len = true;
        } else if is_kw(o, "withmatchlen") {
            with_len = true;
        } else if is_kw(o, "minmatchlen") && j + 1 < argv.len() {
            min_len = arg_i64(&argv[j + 1])?.max(0);
            j += 1;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    if want_idx && want_len {
        return Err(CmdError::msg(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    if a.len() >= u32::MAX as usize - 1 || b.len() >= u32::MAX as usize - 1 {
        return Err(CmdError::msg("ERR String too long for LCS"));
    }
    let (n, m) = (a.len(), b.len());
    let cells = (n as u64 + 1) * (m as u64 + 1);
    if cells.saturating_mul(4) > ctx.config().proto_max_bulk_len as u64 {
        return Err(CmdError::msg(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let w = m + 1;
    let mut t = vec![0u32; cells as usize];
    for i in 1..=n {
        for k in 1..=m {
            t[i * w + k] = if a[i - 1] == b[k - 1] {
                t[(i - 1) * w + k - 1] + 1
            } else {
                t[(i - 1) * w + k].max(t[i * w + k - 1])
            };
        }
    }
    let total = t[n * w + m];
    if want_len {
        out.int(total as i64);
        return Ok(());
    }
    // Walk back from the end, collecting the common bytes and contiguous ranges.
    let mut common = vec![0u8; total as usize];
    let mut left = total as usize;
    let mut ranges: Vec<((usize, usize), (usize, usize))> = Vec::new();
    let mut cur: Option<((usize, usize), (usize, usize))> = None;
    let (mut i, mut k) = (n, m);
    while i > 0 && k > 0 {
        let mut close = false;
        if a[i - 1] == b[k - 1] {
            common[left - 1] = a[i - 1];
            left -= 1;
            match &mut cur {
                None => cur = Some(((i - 1, i - 1), (k - 1, k - 1))),
                // Stepping diagonally always extends the current range.
                Some(r) => {
                    r.0 .0 = i - 1;
                    r.1 .0 = k - 1;
                }
            }
            if cur.is_some_and(|r| r.0 .0 == 0 || r.1 .0 == 0) {
                close = true;
            }
            i -= 1;
            k -= 1;
        } else {
            if t[(i - 1) * w + k] > t[i * w + k - 1] {
                i -= 1;
            } else {
                k -= 1;
            }
            close = cur.is_some();
        }
        if close {
            if let Some(r) = cur.take() {
                let len = (r.0 .1 - r.0 .0 + 1) as i64;
                if min_len == 0 || len >= min_len {
                    ranges.push(r);
                }
            }
        }
    }
    if !want_idx {
        out.bulk(&common);
        return Ok(());
    }
    out.map(2);
    out.bulk(b"matches");
    out.array(ranges.len());
    for ((a0, a1), (b0, b1)) in &ranges {
        out.array(if with_len { 3 } else { 2 });
        out.array(2);
        out.int(*a0 as i64);
        out.int(*a1 as i64);
        out.array(2);
        out.int(*b0 as i64);
        out.int(*b1 as i64);
        if with_len {
            out.int((a1 - a0 + 1) as i64);
        }
    }
    out.bulk(b"len");
    out.int(total as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::keys::test_util::Harness;

    #[test]
    fn string_commands_on_other_types_answer_wrongtype_and_change_nothing() {
        let mut h = Harness::new();
        {
            let mut store = h.server.store.lock();
            let list = Value::List(Box::new([b"a"].into_iter().collect()));
            store.dbs[0].set(Bytes::from_static(b"l"), list, 0);
        }
        let wt = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
        for cmd in [
            &["get", "l"][..],
            &["set", "l", "v", "get"],
            &["getex", "l", "ex", "10"],
            &["getdel", "l"],
            &["getset", "l", "v"],
            &["incr", "l"],
            &["decrby", "l", "2"],
            &["incrbyfloat", "l", "1"],
            &["append", "l", "x"],
            &["strlen", "l"],
            &["getrange", "l", "0", "1"],
            &["setrange", "l", "0", "x"],
        ] {
            let (r, ops) = h.run(cmd);
            assert_eq!(r, wt, "{cmd:?}");
            assert!(ops.is_empty(), "{cmd:?}");
        }
        let (r, _) = h.run(&["lcs", "x", "l"]);
        assert_eq!(r, "-ERR The specified keys must contain string values\r\n");
        let (r, _) = h.run(&["mget", "l"]);
        assert_eq!(r, "*1\r\n$-1\r\n");
        let (r, _) = h.run(&["type", "l"]);
        assert_eq!(r, "+list\r\n");
        let (r, _) = h.run(&["set", "l", "v"]);
        assert_eq!(r, "+OK\r\n");
        let (r, _) = h.run(&["get", "l"]);
        assert_eq!(r, "$1\r\nv\r\n");
    }

    #[test]
    fn append_and_setrange_respect_proto_max_bulk_len() {
        let mut h = Harness::new();
        h.server.config.write().proto_max_bulk_len = 10;
        let too_long = "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n";
        h.run(&["set", "k", "12345"]);
        assert_eq!(h.run(&["append", "k", "67890"]).0, ":10\r\n");
        let (r, ops) = h.run(&["append", "k", "x"]);
        assert_eq!(r, too_long);
        assert!(ops.is_empty());
        assert_eq!(h.run(&["setrange", "k", "9", "x"]).0, ":10\r\n");
        assert_eq!(h.run(&["setrange", "k", "10", "x"]).0, too_long);
        assert_eq!(h.run(&["setrange", "new", "10", "x"]).0, too_long);
        assert_eq!(h.run(&["strlen", "k"]).0, ":10\r\n");
    }

    #[test]
    fn long_double_sums_match_redis_7_0_15() {
        // Expected texts produced by redis-server 7.0.15 (SET x a; INCRBYFLOAT x b).
        for (a, b, want) in [
            ("0", "5000", "5000"),
            ("5000", "0.0011", "5000.0011000000000001"),
            ("0.1", "0.2", "0.3"),
            ("10.5", "0.1", "10.6"),
            ("1", "-1.1", "-0.1"),
            ("17179869184", "1.5", "17179869185.5"),
            ("3.14159265358979323846", "0", "3.14159265358979324"),
            (
                "123456789.123456789",
                "0.000000001",
                "123456789.12345678999554366",
            ),
            ("-0.1", "0.1", "0"),
            ("1e20", "1", "100000000000000000000"),
            ("1e-20", "0", "0"),
            ("0.0000000000000000051", "0", "0.00000000000000001"),
            ("99999999999999999999", "1", "100000000000000000000"),
            ("-5.5", "-0.25", "-5.75"),
            ("12345678901234567890", "0.5", "12345678901234567890"),
            ("0.1", "0", "0.1"),
            ("2.5e-5", "1", "1.000025"),
            ("1000000.1", "0.2", "1000000.30000000000001137"),
            ("1.5", "1.5", "3"),
            ("-1", "0.25", "-0.75"),
            ("0x10", "1", "17"),
            ("0x1p-2", "0x.8", "0.75"),
            ("0e-2147483648", "1", "1"),
            ("0e999999999", "1", "1"),
        ] {
            assert_eq!(
                long_double_sum(a.as_bytes(), b.as_bytes()).ok().as_deref(),
                Some(want),
                "{a} + {b}"
            );
        }
        // Past f64's range the sum is still a long double (401 characters here).
        let big = long_double_sum(b"0", b"1e400").expect("in range");
        assert!(big.starts_with("100000000000000000002818806839"), "{big}");
        assert_eq!(big.len(), 401);
        let refused = |a: &str, b: &str| long_double_sum(a.as_bytes(), b.as_bytes()).err();
        let nan_inf = Some(CmdError::msg("ERR increment would produce NaN or Infinity"));
        assert_eq!(refused("1e4932", "1e4932"), nan_inf);
        assert_eq!(refused("inf", "1"), nan_inf);
        assert_eq!(refused("abc", "inf"), Some(err::NOT_FLOAT));
        assert_eq!(refused("0x1p16384", "0"), Some(err::NOT_FLOAT));
    }

    #[test]
    fn set_with_relative_expiry_propagates_absolute_pxat() {
        let mut h = Harness::new();
        let (_, ops) = h.run(&["set", "k", "v", "EX", "100", "NX"]);
        assert_eq!(ops.len(), 1);
        assert_eq!(&ops[0][..4], &["SET", "k", "v", "PXAT"]);
        let at: i64 = ops[0][4].parse().unwrap();
        assert!((at - crate::server::now_ms() - 100_000).abs() < 5000);
        let (_, ops) = h.run(&["setex", "k", "10", "v2"]);
        assert_eq!(&ops[0][..4], &["SET", "k", "v2", "PXAT"]);
        let (_, ops) = h.run(&["psetex", "k", "10", "v3"]);
        assert_eq!(&ops[0][..4], &["SET", "k", "v3", "PXAT"]);
    }

    #[test]
    fn set_get_without_expiry_drops_get_tokens() {
        let mut h = Harness::new();
        let (r, ops) = h.run(&["set", "k", "v", "get", "XX", "GET"]);
        assert_eq!(r, "$-1\r\n");
        assert!(ops.is_empty(), "XX on a missing key changes nothing");
        let (_, ops) = h.run(&["set", "k", "v", "get"]);
        assert_eq!(ops, vec![vec!["set", "k", "v"]]);
        let (r, ops) = h.run(&["set", "k", "w", "GET", "xx"]);
        assert_eq!(r, "$1\r\nv\r\n");
        assert_eq!(ops, vec![vec!["set", "k", "w", "xx"]]);
    }

    #[test]
    fn getex_getdel_getset_incrbyfloat_rewrites() {
        let mut h = Harness::new();
        h.run(&["set", "k", "v"]);
        let (_, ops) = h.run(&["getex", "k", "px", "5000"]);
        assert_eq!(ops.len(), 1);
        assert_eq!(&ops[0][..2], &["PEXPIREAT", "k"]);
        assert_eq!(ops[0].len(), 3);
        let (_, ops) = h.run(&["getex", "k", "persist"]);
        assert_eq!(ops, vec![vec!["PERSIST", "k"]]);
        let (_, ops) = h.run(&["getex", "k", "persist"]);
        assert!(ops.is_empty(), "no TTL to remove");
        let (_, ops) = h.run(&["getex", "k"]);
        assert!(ops.is_empty());
        let (r, ops) = h.run(&["getex", "k", "pxat", "1"]);
        assert_eq!(r, "$1\r\nv\r\n");
        assert_eq!(ops, vec![vec!["DEL", "k"]]);
        h.run(&["set", "k", "v"]);
        let (_, ops) = h.run(&["getset", "k", "x"]);
        assert_eq!(ops, vec![vec!["SET", "k", "x"]]);
        let (_, ops) = h.run(&["getdel", "k"]);
        assert_eq!(ops, vec![vec!["DEL", "k"]]);
        let (_, ops) = h.run(&["getdel", "k"]);
        assert!(ops.is_empty());
        h.run(&["set", "f", "1.5"]);
        let (r, ops) = h.run(&["incrbyfloat", "f", "1.5"]);
        assert_eq!(r, "$1\r\n3\r\n");
        assert_eq!(ops, vec![vec!["SET", "f", "3", "KEEPTTL"]]);
    }
}
