//! Command family: strings (GET/SET and friends, counters, ranges).
//!
//! Relative or non-deterministic forms are propagated as absolute, deterministic
//! commands (REPLICATION.md 3.5): `SET ... EX` becomes `SET k v PXAT <abs>`, GETEX
//! becomes PEXPIREAT/DEL/PERSIST, GETDEL a DEL, GETSET a SET and INCRBYFLOAT a
//! `SET k <result> KEEPTTL`.

use super::{arg_i64, err, flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::resp::Reply;
use crate::types::Value;
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
    Command::new("append", 3, WRITE | DENYOOM, append).keys(1, 1, 1),
    Command::new("strlen", 2, READONLY | FAST, strlen).keys(1, 1, 1),
    Command::new("getrange", 4, READONLY, getrange).keys(1, 1, 1),
    Command::new("substr", 4, READONLY, getrange).keys(1, 1, 1),
    Command::new("setrange", 4, WRITE | DENYOOM, setrange).keys(1, 1, 1),
];

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

fn int_bytes(n: i64) -> Bytes {
    Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes())
}

fn string_too_long() -> CmdError {
    CmdError::msg("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

/// Redis `checkStringLength`: the master's stream is never refused.
fn check_len(ctx: &Ctx, total: Option<i64>) -> CmdResult {
    if ctx.client.is_master {
        return Ok(());
    }
    let max = ctx.server.config.read().proto_max_bulk_len;
    match total {
        Some(t) if t <= max => Ok(()),
        _ => Err(string_too_long()),
    }
}

/// Reads a string value: Ok(None) if missing, WRONGTYPE for other types.
fn read_str(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Bytes>, CmdError> {
    match ctx.get(key) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(_) => Err(err::WRONGTYPE),
    }
}

fn get(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let v = read_str(ctx, &argv[1])?;
    out.opt_bulk(v.as_deref());
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
    let found = ctx.exists(key);
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
    let lru = ctx.server.lru_clock();
    let db = ctx.client.db;
    if o.keepttl {
        ctx.store.dbs[db].set_keep_ttl(key.clone(), Value::Str(val.clone()), lru);
    } else {
        ctx.store.dbs[db].set(key.clone(), Value::Str(val.clone()), lru);
    }
    ctx.dirty(1);
    if let Some(at) = when {
        ctx.store.dbs[db].set_expire(key, at);
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

fn set(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
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
            let lazy = ctx.server.config.read().lazyfree_lazy_expire;
            let cmd = if lazy { b(b"UNLINK") } else { b(b"DEL") };
            ctx.rewrite = Some(vec![cmd, key.clone()]);
            ctx.dirty(1);
        }
        Some(at) => {
            ctx.store.dbs[db].set_expire(key, at);
            ctx.rewrite = Some(vec![b(b"PEXPIREAT"), key.clone(), int_bytes(at)]);
            ctx.dirty(1);
        }
        None if o.persist => {
            if ctx.store.dbs[db].persist(key) {
                ctx.rewrite = Some(vec![b(b"PERSIST"), key.clone()]);
                ctx.dirty(1);
            }
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
    }
    Ok(())
}

fn getset(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let old = read_str(ctx, &argv[1])?;
    out.opt_bulk(old.as_deref());
    ctx.set(argv[1].clone(), Value::Str(argv[2].clone()));
    ctx.dirty(1);
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
    if argv.len() % 2 == 0 {
        return Err(wrong_args("mset"));
    }
    for pair in argv[1..].chunks(2) {
        ctx.set(pair[0].clone(), Value::Str(pair[1].clone()));
    }
    ctx.dirty((argv.len() as u64 - 1) / 2);
    out.ok();
    Ok(())
}

fn msetnx(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len() % 2 == 0 {
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
        ctx.set(pair[0].clone(), Value::Str(pair[1].clone()));
    }
    ctx.dirty((argv.len() as u64 - 1) / 2);
    out.int(1);
    Ok(())
}

/// Redis `incrDecrCommand`: the TTL is kept.
fn incr_by(ctx: &mut Ctx, out: &mut Reply, key: &Bytes, by: i64) -> CmdResult {
    let cur = match ctx.get_mut(key) {
        None => None,
        Some(Value::Str(s)) => Some(crate::resp::parse_i64(s).ok_or(err::NOT_INT)?),
        Some(_) => return Err(err::WRONGTYPE),
    };
    let old = cur.unwrap_or(0);
    let new = old.checked_add(by).ok_or(err::OVERFLOW)?;
    let v = Value::Str(int_bytes(new));
    let lru = ctx.server.lru_clock();
    ctx.db().set_keep_ttl(key.clone(), v, lru);
    ctx.dirty(1);
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

/// A float operand as INCRBYFLOAT accepts it: no surrounding spaces, no NaN, and a
/// finite literal that overflows is rejected (only `inf` spelled out is infinite).
fn float_operand(a: &[u8]) -> Option<f64> {
    let v = super::parse_f64(a)?;
    if v.is_infinite() && !a.to_ascii_lowercase().windows(3).any(|w| w == b"inf") {
        return None;
    }
    Some(v)
}

/// An exact decimal `mant * 10^-scale`, used so that INCRBYFLOAT's results read as the
/// decimal sums Redis's long-double arithmetic prints (`0.1 + 0.2` = `0.3`).
fn parse_decimal(a: &[u8]) -> Option<(i128, u32)> {
    let s = std::str::from_utf8(a).ok()?;
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (neg, digits) = match mant.as_bytes().first() {
        Some(b'-') => (true, &mant[1..]),
        Some(b'+') => (false, &mant[1..]),
        _ => (false, mant),
    };
    let (int_part, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac.bytes())
        .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut m: i128 = 0;
    for c in int_part.bytes().chain(frac.bytes()) {
        m = m.checked_mul(10)?.checked_add((c - b'0') as i128)?;
    }
    let mut scale = frac.len() as i32 - exp;
    while scale < 0 {
        m = m.checked_mul(10)?;
        scale += 1;
    }
    if scale > 30 {
        return None;
    }
    Some((if neg { -m } else { m }, scale as u32))
}

fn decimal_sum(a: &[u8], b: &[u8]) -> Option<String> {
    let (ma, sa) = parse_decimal(a)?;
    let (mb, sb) = parse_decimal(b)?;
    let scale = sa.max(sb);
    let ma = ma.checked_mul(10i128.checked_pow(scale - sa)?)?;
    let mb = mb.checked_mul(10i128.checked_pow(scale - sb)?)?;
    let mut sum = ma.checked_add(mb)?;
    let mut scale = scale;
    // Like `%.17Lf`: at most 17 decimals, rounded half away from zero.
    if scale > 17 {
        let div = 10i128.pow(scale - 17);
        let rem = sum % div;
        sum /= div;
        if rem.abs() * 2 >= div {
            sum += if rem < 0 { -1 } else { 1 };
        }
        scale = 17;
    }
    let neg = sum < 0;
    let digits = sum.unsigned_abs().to_string();
    let scale = scale as usize;
    let (ip, fp) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("0", digits.as_str())
    };
    let fp = format!("{:0>width$}", fp, width = scale);
    let fp = fp.trim_end_matches('0');
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push_str(ip);
    if !fp.is_empty() {
        s.push('.');
        s.push_str(fp);
    }
    if s == "-0" {
        s = "0".into();
    }
    Some(s)
}

fn incrbyfloat(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let cur = match ctx.get_mut(key) {
        None => None,
        Some(Value::Str(s)) => Some(s.clone()),
        Some(_) => return Err(err::WRONGTYPE),
    };
    let cur_txt = cur.unwrap_or_else(|| b(b"0"));
    let a = float_operand(&cur_txt).ok_or(err::NOT_FLOAT)?;
    let inc = float_operand(&argv[2]).ok_or(err::NOT_FLOAT)?;
    let sum = a + inc;
    if sum.is_nan() || sum.is_infinite() {
        return Err(CmdError::msg("ERR increment would produce NaN or Infinity"));
    }
    let text = decimal_sum(&cur_txt, &argv[2]).unwrap_or_else(|| crate::resp::format_human(sum));
    let new = Bytes::from(text);
    let lru = ctx.server.lru_clock();
    ctx.db()
        .set_keep_ttl(key.clone(), Value::Str(new.clone()), lru);
    ctx.dirty(1);
    out.bulk(&new);
    ctx.rewrite = Some(vec![b(b"SET"), key.clone(), new, b(b"KEEPTTL")]);
    Ok(())
}

fn append(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let cur = match ctx.get_mut(key) {
        None => None,
        Some(Value::Str(s)) => Some(s.clone()),
        Some(_) => return Err(err::WRONGTYPE),
    };
    let new = match cur {
        None => argv[2].clone(),
        Some(s) => {
            check_len(ctx, (s.len() as i64).checked_add(argv[2].len() as i64))?;
            let mut v = Vec::with_capacity(s.len() + argv[2].len());
            v.extend_from_slice(&s);
            v.extend_from_slice(&argv[2]);
            Bytes::from(v)
        }
    };
    let len = new.len() as i64;
    let lru = ctx.server.lru_clock();
    ctx.db().set_keep_ttl(key.clone(), Value::Str(new), lru);
    ctx.dirty(1);
    out.int(len);
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
    let cur = match ctx.get_mut(key) {
        None => None,
        Some(Value::Str(s)) => Some(s.clone()),
        Some(_) => return Err(err::WRONGTYPE),
    };
    let cur_len = cur.as_ref().map_or(0, |s| s.len() as i64);
    if value.is_empty() {
        out.int(cur_len);
        return Ok(());
    }
    check_len(ctx, offset.checked_add(value.len() as i64))?;
    let off = offset as usize;
    let mut v = cur.map(|s| s.to_vec()).unwrap_or_default();
    if v.len() < off + value.len() {
        v.resize(off + value.len(), 0);
    }
    v[off..off + value.len()].copy_from_slice(value);
    let len = v.len() as i64;
    let lru = ctx.server.lru_clock();
    ctx.db()
        .set_keep_ttl(key.clone(), Value::Str(Bytes::from(v)), lru);
    ctx.dirty(1);
    out.int(len);
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
            let list = Value::List([Bytes::from_static(b"a")].into_iter().collect());
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
    fn decimal_sums_read_like_redis() {
        assert_eq!(decimal_sum(b"0.1", b"0.2").as_deref(), Some("0.3"));
        assert_eq!(decimal_sum(b"1.5", b"1.5").as_deref(), Some("3"));
        assert_eq!(decimal_sum(b"0", b"5.0e3").as_deref(), Some("5000"));
        assert_eq!(decimal_sum(b"10.5", b"-10.5").as_deref(), Some("0"));
        assert_eq!(decimal_sum(b"-1", b"0.25").as_deref(), Some("-0.75"));
        assert_eq!(
            decimal_sum(b"17179869184", b"1.5").as_deref(),
            Some("17179869185.5")
        );
        assert_eq!(decimal_sum(b"0x10", b"1"), None);
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
