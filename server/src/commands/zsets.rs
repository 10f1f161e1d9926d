//! Command family: sorted sets (ZADD, ZRANGE and its legacy variants, ZPOP*, the
//! blocking pops, set algebra, ZRANDMEMBER, ZSCAN), with Redis 7.0 replies and errors.

use super::{arg_i64, err, flags::*, is_kw, Action, CmdError, CmdResult, Command, Ctx};
use crate::notify::{GENERIC, ZSET};
use crate::resp::Reply;
use crate::types::zset::{LexBound, LexRange, Limits, Score, ScoreBound, ScoreRange};
use crate::types::{HashSetB, Value, ZSet};
use crate::util::detach;
use bytes::Bytes;
use std::collections::HashMap;

pub const COMMANDS: &[Command] = &[
    Command::new("zadd", -4, WRITE | DENYOOM | FAST, zadd).keys(1, 1, 1),
    Command::new("zincrby", 4, WRITE | DENYOOM | FAST, zincrby).keys(1, 1, 1),
    Command::new("zrem", -3, WRITE | FAST, zrem).keys(1, 1, 1),
    Command::new("zcard", 2, READONLY | FAST, zcard).keys(1, 1, 1),
    Command::new("zscore", 3, READONLY | FAST, zscore).keys(1, 1, 1),
    Command::new("zmscore", -3, READONLY | FAST, zmscore).keys(1, 1, 1),
    Command::new("zrank", 3, READONLY | FAST, zrank).keys(1, 1, 1),
    Command::new("zrevrank", 3, READONLY | FAST, zrevrank).keys(1, 1, 1),
    Command::new("zcount", 4, READONLY | FAST, zcount).keys(1, 1, 1),
    Command::new("zlexcount", 4, READONLY | FAST, zlexcount).keys(1, 1, 1),
    Command::new("zrange", -4, READONLY, zrange).keys(1, 1, 1),
    Command::new("zrangebyscore", -4, READONLY, zrangebyscore).keys(1, 1, 1),
    Command::new("zrevrangebyscore", -4, READONLY, zrevrangebyscore).keys(1, 1, 1),
    Command::new("zrangebylex", -4, READONLY, zrangebylex).keys(1, 1, 1),
    Command::new("zrevrangebylex", -4, READONLY, zrevrangebylex).keys(1, 1, 1),
    Command::new("zrevrange", -4, READONLY, zrevrange).keys(1, 1, 1),
    Command::new("zrangestore", -5, WRITE | DENYOOM, zrangestore).keys(1, 2, 1),
    Command::new("zremrangebyrank", 4, WRITE, zremrangebyrank).keys(1, 1, 1),
    Command::new("zremrangebyscore", 4, WRITE, zremrangebyscore).keys(1, 1, 1),
    Command::new("zremrangebylex", 4, WRITE, zremrangebylex).keys(1, 1, 1),
    Command::new("zpopmin", -2, WRITE | FAST, zpopmin).keys(1, 1, 1),
    Command::new("zpopmax", -2, WRITE | FAST, zpopmax).keys(1, 1, 1),
    Command::new(
        "bzpopmin",
        -3,
        NO_SCRIPT | WRITE | FAST | BLOCKING,
        bzpopmin,
    )
    .keys(1, -2, 1),
    Command::new(
        "bzpopmax",
        -3,
        NO_SCRIPT | WRITE | FAST | BLOCKING,
        bzpopmax,
    )
    .keys(1, -2, 1),
    Command::new("zmpop", -4, WRITE, zmpop).keys_with(keys_numkeys_at_1),
    Command::new("bzmpop", -5, WRITE | BLOCKING, bzmpop).keys_with(keys_numkeys_at_2),
    Command::new("zunionstore", -4, WRITE | DENYOOM, zunionstore).keys_with(keys_store),
    Command::new("zinterstore", -4, WRITE | DENYOOM, zinterstore).keys_with(keys_store),
    Command::new("zdiffstore", -4, WRITE | DENYOOM, zdiffstore).keys_with(keys_store),
    Command::new("zunion", -3, READONLY, zunion).keys_with(keys_numkeys_at_1),
    Command::new("zinter", -3, READONLY, zinter).keys_with(keys_numkeys_at_1),
    Command::new("zdiff", -3, READONLY, zdiff).keys_with(keys_numkeys_at_1),
    Command::new("zintercard", -3, READONLY, zintercard).keys_with(keys_numkeys_at_1),
    Command::new("zrandmember", -2, READONLY, zrandmember).keys(1, 1, 1),
    Command::new("zscan", -3, READONLY, zscan).keys(1, 1, 1),
];

// ---- key positions for numkeys-style commands ----

/// Keys `argv[idx+1 ..= idx+numkeys]` where `argv[idx]` is numkeys.
fn numkeys_keys(argv: &[Bytes], idx: usize) -> Vec<usize> {
    let Some(n) = argv.get(idx).and_then(|a| crate::resp::parse_i64(a)) else {
        return Vec::new();
    };
    if n < 1 {
        return Vec::new();
    }
    let n = (n as u64).min(argv.len() as u64) as usize;
    (idx + 1..idx + 1 + n).filter(|&i| i < argv.len()).collect()
}

fn keys_numkeys_at_1(argv: &[Bytes]) -> Vec<usize> {
    numkeys_keys(argv, 1)
}

fn keys_numkeys_at_2(argv: &[Bytes]) -> Vec<usize> {
    numkeys_keys(argv, 2)
}

/// `ZUNIONSTORE dst numkeys k1 .. kn`: the destination plus the inputs.
fn keys_store(argv: &[Bytes]) -> Vec<usize> {
    let mut v = vec![1];
    v.extend(numkeys_keys(argv, 2));
    v
}

// ---- shared helpers ----

/// The sorted set under `key` for reading: Ok(None) when missing.
fn read_zset<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c mut ZSet>, CmdError> {
    match ctx.get(key) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// The sorted set under `key` for writing: Ok(None) when missing.
fn write_zset<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c mut ZSet>, CmdError> {
    match ctx.get_mut(key) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

fn owned<'a>(it: impl Iterator<Item = (&'a [u8], f64)>) -> Vec<(Bytes, f64)> {
    it.map(|(m, s)| (Bytes::copy_from_slice(m), s)).collect()
}

/// The listpack limits sorted sets are shaped by now (`zset-max-listpack-*`).
pub fn limits(ctx: &Ctx) -> Limits {
    Limits::zset(&ctx.config())
}

/// Members, optionally with scores: RESP2 a flat array, RESP3 an array of pairs.
fn reply_items(out: &mut Reply, items: &[(Bytes, f64)], withscores: bool) {
    if !withscores {
        out.array(items.len());
        for (m, _) in items {
            out.bulk(m);
        }
    } else if out.resp3 {
        out.array(items.len());
        for (m, s) in items {
            out.array(2);
            out.bulk(m);
            out.double(*s);
        }
    } else {
        out.array(items.len() * 2);
        for (m, s) in items {
            out.bulk(m);
            out.double(*s);
        }
    }
}

/// Parses a score, weight or increment like Redis's `getDoubleFromObject`: values
/// that overflow to infinity or underflow to zero (`1e400`, `1e-400`) are refused,
/// as `strtod` reports them with ERANGE; `parse_f64` already applies both rules.
fn score_arg(a: &[u8]) -> Option<f64> {
    super::parse_f64(a)
}

/// Parses a float the way `strtod` inside Redis's range parser does: leading blanks
/// allowed, an empty string reads as 0, NaN refused.
fn parse_range_float(a: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(a).ok()?;
    let s = s.trim_start();
    if s.is_empty() {
        return Some(0.0);
    }
    let v = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => match s.parse::<f64>() {
            Ok(v) => v,
            Err(_) => super::hex_float(s.as_bytes())?.to_f64(),
        },
    };
    (!v.is_nan()).then_some(v)
}

fn parse_score_bound(a: &[u8]) -> Option<ScoreBound> {
    match a.first() {
        Some(b'(') => Some(ScoreBound {
            value: parse_range_float(&a[1..])?,
            exclusive: true,
        }),
        _ => Some(ScoreBound {
            value: parse_range_float(a)?,
            exclusive: false,
        }),
    }
}

const NOT_FLOAT_RANGE: CmdError =
    CmdError(std::borrow::Cow::Borrowed("ERR min or max is not a float"));
const NOT_LEX_RANGE: CmdError = CmdError(std::borrow::Cow::Borrowed(
    "ERR min or max not valid string range item",
));

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, CmdError> {
    match (parse_score_bound(min), parse_score_bound(max)) {
        (Some(min), Some(max)) => Ok(ScoreRange { min, max }),
        _ => Err(NOT_FLOAT_RANGE),
    }
}

fn parse_lex_bound(a: &Bytes) -> Option<LexBound> {
    match a.first() {
        Some(b'-') if a.len() == 1 => Some(LexBound::NegInf),
        Some(b'+') if a.len() == 1 => Some(LexBound::PosInf),
        Some(b'[') => Some(LexBound::Incl(a.slice(1..))),
        Some(b'(') => Some(LexBound::Excl(a.slice(1..))),
        _ => None,
    }
}

fn parse_lex_range(min: &Bytes, max: &Bytes) -> Result<LexRange, CmdError> {
    match (parse_lex_bound(min), parse_lex_bound(max)) {
        (Some(min), Some(max)) => Ok(LexRange { min, max }),
        _ => Err(NOT_LEX_RANGE),
    }
}

/// Clamps a Redis rank interval (negative = from the end) to `0..len`.
fn clamp_ranks(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { start + len } else { start };
    let mut end = if end < 0 { end + len } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return None;
    }
    if end >= len {
        end = len - 1;
    }
    Some((start as usize, end as usize))
}

/// Applies `LIMIT offset count` (negative offset = nothing, negative count = all).
fn window<'a>(
    it: impl Iterator<Item = (&'a [u8], f64)>,
    offset: i64,
    limit: i64,
) -> Vec<(Bytes, f64)> {
    if offset < 0 {
        return Vec::new();
    }
    let it = it.skip(offset as usize);
    if limit < 0 {
        owned(it)
    } else {
        owned(it.take(limit as usize))
    }
}

/// Parses a blocking timeout in seconds into milliseconds (0 = forever).
fn parse_timeout(a: &[u8]) -> Result<u64, CmdError> {
    let v = super::parse_f64(a).ok_or(err::TIMEOUT)?;
    let ms = (v * 1000.0).ceil();
    // Redis converts with a C cast: values beyond i64 (and -inf) come out negative.
    if ms < 0.0 || !ms.is_finite() || ms >= i64::MAX as f64 {
        return Err(err::NEG_TIMEOUT);
    }
    Ok(ms as u64)
}

// ---- ZADD / ZINCRBY ----

fn zadd(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut idx = 2;
    while idx < argv.len() {
        let a = &argv[idx];
        if is_kw(a, "nx") {
            nx = true;
        } else if is_kw(a, "xx") {
            xx = true;
        } else if is_kw(a, "gt") {
            gt = true;
        } else if is_kw(a, "lt") {
            lt = true;
        } else if is_kw(a, "ch") {
            ch = true;
        } else if is_kw(a, "incr") {
            incr = true;
        } else {
            break;
        }
        idx += 1;
    }
    let elements = argv.len() - idx;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Err(err::SYNTAX);
    }
    if nx && xx {
        return Err(CmdError::msg(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(CmdError::msg(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && elements > 2 {
        return Err(CmdError::msg(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let mut pairs = Vec::with_capacity(elements / 2);
    for p in argv[idx..].chunks(2) {
        pairs.push((score_arg(&p[0]).ok_or(err::NOT_FLOAT)?, p[1].clone()));
    }
    let opts = AddOpts {
        nx,
        xx,
        gt,
        lt,
        ch,
        incr,
    };
    add_generic(ctx, out, &argv[1], &pairs, opts)
}

fn zincrby(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let incr = score_arg(&argv[2]).ok_or(err::NOT_FLOAT)?;
    let opts = AddOpts {
        incr: true,
        ..AddOpts::default()
    };
    add_generic(ctx, out, &argv[1], &[(incr, argv[3].clone())], opts)
}

#[derive(Debug, Default, Clone, Copy)]
struct AddOpts {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// What ZADD's elements did to a set.
struct Added {
    added: u64,
    updated: u64,
    result: Option<f64>,
    failure: Option<CmdError>,
}

/// Applies ZADD's elements to `z` in order (stopping at a NaN result), one member
/// lookup each.
fn add_pairs(z: &mut ZSet, pairs: &[(f64, Bytes)], o: AddOpts, lim: Limits) -> Added {
    let mut done = Added {
        added: 0,
        updated: 0,
        result: None,
        failure: None,
    };
    for (score, member) in pairs {
        z.add_with(
            member,
            || detach(member),
            lim,
            |cur| match cur {
                Some(cur) => {
                    if o.nx {
                        return None;
                    }
                    let new = if o.incr { cur + score } else { *score };
                    if new.is_nan() {
                        done.failure =
                            Some(CmdError::msg("ERR resulting score is not a number (NaN)"));
                        return None;
                    }
                    if (o.gt && new <= cur) || (o.lt && new >= cur) {
                        return None;
                    }
                    done.result = Some(new);
                    if new == cur {
                        return None;
                    }
                    done.updated += 1;
                    Some(new)
                }
                None if o.xx => None,
                None => {
                    done.added += 1;
                    done.result = Some(*score);
                    Some(*score)
                }
            },
        );
        if done.failure.is_some() {
            break;
        }
    }
    done
}

fn add_generic(
    ctx: &mut Ctx,
    out: &mut Reply,
    key: &Bytes,
    pairs: &[(f64, Bytes)],
    o: AddOpts,
) -> CmdResult {
    let lim = limits(ctx);
    // One key lookup: a new key is stored once its set is built (never empty: a
    // new set's members are all added, and NaN needs an existing member).
    let done = match write_zset(ctx, key)? {
        Some(z) => add_pairs(z, pairs, o, lim),
        None if o.xx => {
            if o.incr {
                out.null();
            } else {
                out.int(0);
            }
            return Ok(());
        }
        None => {
            let mut z = ZSet::default();
            let done = add_pairs(&mut z, pairs, o, lim);
            if !z.is_empty() {
                ctx.set(key.clone(), Value::ZSet(Box::new(z)));
            }
            done
        }
    };
    let Added {
        added,
        updated,
        result,
        failure,
    } = done;
    if added + updated > 0 {
        ctx.notify(ZSET, if o.incr { "zincr" } else { "zadd" }, key);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if added + updated > 0 {
        ctx.dirty(added + updated);
    }
    if o.incr {
        match result {
            Some(s) => out.double(s),
            None => out.null(),
        }
    } else {
        out.int((if o.ch { added + updated } else { added }) as i64);
    }
    Ok(())
}

// ---- simple reads and removals ----

fn zrem(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let mut removed = 0;
    if let Some(z) = write_zset(ctx, &argv[1])? {
        for m in &argv[2..] {
            if z.remove(m).is_some() {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        ctx.notify(ZSET, "zrem", &argv[1]);
        ctx.delete_if_empty(&argv[1]);
        ctx.dirty(removed);
    }
    out.int(removed as i64);
    Ok(())
}

fn zcard(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = read_zset(ctx, &argv[1])?.map_or(0, |z| z.len());
    out.int(n as i64);
    Ok(())
}

fn zscore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    match read_zset(ctx, &argv[1])?.and_then(|z| z.score(&argv[2])) {
        Some(s) => out.double(s),
        None => out.null(),
    }
    Ok(())
}

fn zmscore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let z = read_zset(ctx, &argv[1])?;
    let scores: Vec<Option<f64>> = argv[2..]
        .iter()
        .map(|m| z.as_ref().and_then(|z| z.score(m)))
        .collect();
    out.array(scores.len());
    for s in scores {
        match s {
            Some(s) => out.double(s),
            None => out.null(),
        }
    }
    Ok(())
}

fn rank_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], rev: bool) -> CmdResult {
    let r = read_zset(ctx, &argv[1])?.and_then(|z| {
        let r = z.rank(&argv[2])?;
        Some(if rev { z.len() - 1 - r } else { r })
    });
    match r {
        Some(r) => out.int(r as i64),
        None => out.null(),
    }
    Ok(())
}

fn zrank(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    rank_generic(ctx, out, argv, false)
}

fn zrevrank(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    rank_generic(ctx, out, argv, true)
}

fn zcount(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let range = parse_score_range(&argv[2], &argv[3])?;
    let n = read_zset(ctx, &argv[1])?.map_or(0, |z| z.range_by_score(range).count());
    out.int(n as i64);
    Ok(())
}

fn zlexcount(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let range = parse_lex_range(&argv[2], &argv[3])?;
    let n = read_zset(ctx, &argv[1])?.map_or(0, |z| z.lex_span(&range, false).len());
    out.int(n as i64);
    Ok(())
}

// ---- ZRANGE family ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// `ZRANGE`-style request: `store` = ZRANGESTORE (dst at argv[1]); `kind`/`rev`
/// fixed by the legacy commands, chosen by options for ZRANGE.
fn zrange_generic(
    ctx: &mut Ctx,
    out: &mut Reply,
    argv: &[Bytes],
    store: bool,
    fixed_kind: Option<RangeKind>,
    fixed_rev: Option<bool>,
) -> CmdResult {
    let key_idx = if store { 2 } else { 1 };
    let (mut kind, mut rev) = (fixed_kind, fixed_rev);
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = key_idx + 3;
    while j < argv.len() {
        let a = &argv[j];
        let left = argv.len() - j - 1;
        if !store && is_kw(a, "withscores") {
            withscores = true;
        } else if is_kw(a, "limit") && left >= 2 {
            offset = arg_i64(&argv[j + 1])?;
            limit = arg_i64(&argv[j + 2])?;
            j += 2;
        } else if rev.is_none() && is_kw(a, "rev") {
            rev = Some(true);
        } else if kind.is_none() && is_kw(a, "bylex") {
            kind = Some(RangeKind::Lex);
        } else if kind.is_none() && is_kw(a, "byscore") {
            kind = Some(RangeKind::Score);
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    let kind = kind.unwrap_or(RangeKind::Rank);
    let rev = rev.unwrap_or(false);
    if withscores && kind == RangeKind::Lex {
        return Err(CmdError::msg(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // Redis tests the count only: `LIMIT <any offset> -1` on a rank range is accepted
    // (and ignored).
    if limit != -1 && kind == RangeKind::Rank {
        return Err(CmdError::msg(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    let (mut a1, mut a2) = (&argv[key_idx + 1], &argv[key_idx + 2]);
    if rev && kind != RangeKind::Rank {
        std::mem::swap(&mut a1, &mut a2);
    }
    enum Parsed {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let parsed = match kind {
        RangeKind::Rank => Parsed::Rank(arg_i64(a1)?, arg_i64(a2)?),
        RangeKind::Score => Parsed::Score(parse_score_range(a1, a2)?),
        RangeKind::Lex => Parsed::Lex(parse_lex_range(a1, a2)?),
    };
    let items: Vec<(Bytes, f64)> = match read_zset(ctx, &argv[key_idx])? {
        None => Vec::new(),
        Some(z) => match parsed {
            Parsed::Rank(start, end) => match clamp_ranks(start, end, z.len()) {
                None => Vec::new(),
                Some((s, e)) if rev => {
                    let last = z.len() - 1;
                    owned(z.range_by_rank(last - e, last - s).rev())
                }
                Some((s, e)) => owned(z.range_by_rank(s, e)),
            },
            Parsed::Score(r) if rev => window(z.range_by_score(r).rev(), offset, limit),
            Parsed::Score(r) => window(z.range_by_score(r), offset, limit),
            Parsed::Lex(r) if rev => window(z.lex_span(&r, true).rev(), offset, limit),
            Parsed::Lex(r) => window(z.lex_span(&r, false), offset, limit),
        },
    };
    if store {
        store_result(ctx, out, &argv[1], items, "zrangestore");
    } else {
        reply_items(out, &items, withscores);
    }
    Ok(())
}

/// Stores `items` under `dst` (deleting it when empty) and replies with the size.
/// `event` is the command's keyspace event for a stored result.
fn store_result(
    ctx: &mut Ctx,
    out: &mut Reply,
    dst: &Bytes,
    items: Vec<(Bytes, f64)>,
    event: &str,
) {
    let n = items.len();
    if n == 0 {
        if ctx.delete(dst) {
            ctx.dirty(1);
            ctx.notify(GENERIC, "del", dst);
        }
    } else {
        let z = ZSet::from_items(items, limits(ctx));
        ctx.set(dst.clone(), Value::ZSet(Box::new(z)));
        ctx.dirty(1);
        ctx.notify(ZSET, event, dst);
    }
    out.int(n as i64);
}

fn zrange(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, out, argv, false, None, None)
}

fn zrangestore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, out, argv, true, None, None)
}

fn zrangebyscore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, out, argv, false, Some(RangeKind::Score), Some(false))
}

fn zrevrangebyscore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, out, argv, false, Some(RangeKind::Score), Some(true))
}

fn zrangebylex(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, out, argv, false, Some(RangeKind::Lex), Some(false))
}

fn zrevrangebylex(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, out, argv, false, Some(RangeKind::Lex), Some(true))
}

fn zrevrange(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, out, argv, false, Some(RangeKind::Rank), Some(true))
}

// ---- ZREMRANGEBY* ----

fn remove_members(ctx: &mut Ctx, out: &mut Reply, key: &Bytes, members: Vec<Bytes>, event: &str) {
    let n = members.len();
    if n > 0 {
        if let Ok(Some(z)) = write_zset(ctx, key) {
            for m in &members {
                z.remove(m);
            }
        }
        ctx.notify(ZSET, event, key);
        ctx.delete_if_empty(key);
        ctx.dirty(n as u64);
    }
    out.int(n as i64);
}

fn zremrangebyrank(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let (start, end) = (arg_i64(&argv[2])?, arg_i64(&argv[3])?);
    let members = match write_zset(ctx, &argv[1])? {
        None => Vec::new(),
        Some(z) => match clamp_ranks(start, end, z.len()) {
            None => Vec::new(),
            Some((s, e)) => z
                .range_by_rank(s, e)
                .map(|(m, _)| Bytes::copy_from_slice(m))
                .collect(),
        },
    };
    remove_members(ctx, out, &argv[1], members, "zremrangebyrank");
    Ok(())
}

fn zremrangebyscore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let range = parse_score_range(&argv[2], &argv[3])?;
    let members = write_zset(ctx, &argv[1])?.map_or_else(Vec::new, |z| {
        z.range_by_score(range)
            .map(|(m, _)| Bytes::copy_from_slice(m))
            .collect()
    });
    remove_members(ctx, out, &argv[1], members, "zremrangebyscore");
    Ok(())
}

fn zremrangebylex(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let range = parse_lex_range(&argv[2], &argv[3])?;
    let members = write_zset(ctx, &argv[1])?.map_or_else(Vec::new, |z| {
        z.lex_span(&range, false)
            .map(|(m, _)| Bytes::copy_from_slice(m))
            .collect()
    });
    remove_members(ctx, out, &argv[1], members, "zremrangebylex");
    Ok(())
}

// ---- pops ----

fn zpop_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], max: bool) -> CmdResult {
    let count = match argv.len() {
        2 => None,
        3 => match crate::resp::parse_i64(&argv[2]) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return Err(CmdError::msg("ERR value is out of range, must be positive")),
        },
        _ => return Err(err::SYNTAX),
    };
    let Some(z) = write_zset(ctx, &argv[1])? else {
        out.array(0);
        return Ok(());
    };
    if count == Some(0) {
        out.array(0);
        return Ok(());
    }
    let items = z.pop(count.unwrap_or(1), max);
    ctx.notify(ZSET, if max { "zpopmax" } else { "zpopmin" }, &argv[1]);
    ctx.delete_if_empty(&argv[1]);
    ctx.dirty(items.len() as u64);
    if count.is_some() {
        reply_items(out, &items, true);
    } else {
        out.array(items.len() * 2);
        for (m, s) in &items {
            out.bulk(m);
            out.double(*s);
        }
    }
    Ok(())
}

fn zpopmin(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    zpop_generic(ctx, out, argv, false)
}

fn zpopmax(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    zpop_generic(ctx, out, argv, true)
}

/// Finds the first of `keys` holding a sorted set (WRONGTYPE stops the search, as in
/// Redis) and pops up to `count` from it.
/// A key and the members popped from it.
type Popped = (Bytes, Vec<(Bytes, f64)>);

fn pop_first_nonempty(
    ctx: &mut Ctx,
    keys: &[Bytes],
    count: usize,
    max: bool,
) -> Result<Option<Popped>, CmdError> {
    for k in keys {
        if let Some(z) = write_zset(ctx, k)? {
            let items = z.pop(count, max);
            ctx.notify(ZSET, if max { "zpopmax" } else { "zpopmin" }, k);
            ctx.delete_if_empty(k);
            ctx.dirty(items.len() as u64);
            return Ok(Some((k.clone(), items)));
        }
    }
    Ok(None)
}

fn pop_verb(max: bool) -> Bytes {
    Bytes::from_static(if max { b"ZPOPMAX" } else { b"ZPOPMIN" })
}

fn bzpop_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], max: bool) -> CmdResult {
    let timeout_ms = parse_timeout(&argv[argv.len() - 1])?;
    let keys = &argv[1..argv.len() - 1];
    match pop_first_nonempty(ctx, keys, 1, max)? {
        Some((key, items)) => {
            ctx.rewrite = Some(vec![pop_verb(max), key.clone()]);
            out.array(3);
            out.bulk(&key);
            if let Some((m, s)) = items.first() {
                out.bulk(m);
                out.double(*s);
            } else {
                out.null();
                out.null();
            }
        }
        None if ctx.may_block => {
            ctx.action = Some(Action::Block {
                keys: keys.to_vec(),
                timeout_ms,
                argv: None,
            });
        }
        None => out.null_array(),
    }
    Ok(())
}

fn bzpopmin(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    bzpop_generic(ctx, out, argv, false)
}

fn bzpopmax(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    bzpop_generic(ctx, out, argv, true)
}

/// ZMPOP / BZMPOP: `numkeys_idx` is where numkeys sits; `timeout` is Some for BZMPOP.
fn zmpop_generic(
    ctx: &mut Ctx,
    out: &mut Reply,
    argv: &[Bytes],
    numkeys_idx: usize,
    timeout_ms: Option<u64>,
) -> CmdResult {
    let numkeys = match crate::resp::parse_i64(&argv[numkeys_idx]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(CmdError::msg("ERR numkeys should be greater than 0")),
    };
    let where_idx = (numkeys_idx as u64)
        .saturating_add(numkeys)
        .saturating_add(1);
    if where_idx >= argv.len() as u64 {
        return Err(err::SYNTAX);
    }
    let where_idx = where_idx as usize;
    let max = if is_kw(&argv[where_idx], "min") {
        false
    } else if is_kw(&argv[where_idx], "max") {
        true
    } else {
        return Err(err::SYNTAX);
    };
    let mut count: Option<i64> = None;
    let mut j = where_idx + 1;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if count.is_none() && is_kw(&argv[j], "count") && more > 0 {
            j += 1;
            match crate::resp::parse_i64(&argv[j]) {
                Some(n) if n >= 1 => count = Some(n),
                _ => return Err(CmdError::msg("ERR count should be greater than 0")),
            }
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    let count = count.unwrap_or(1);
    let keys = &argv[numkeys_idx + 1..where_idx];
    let cap = usize::try_from(count).unwrap_or(usize::MAX);
    match pop_first_nonempty(ctx, keys, cap, max)? {
        Some((key, items)) => {
            // Redis propagates the number actually popped, not the COUNT asked for.
            ctx.rewrite = Some(vec![
                pop_verb(max),
                key.clone(),
                Bytes::from(items.len().to_string()),
            ]);
            out.array(2);
            out.bulk(&key);
            out.array(items.len());
            for (m, s) in &items {
                out.array(2);
                out.bulk(m);
                out.double(*s);
            }
        }
        None => match timeout_ms {
            Some(timeout_ms) if ctx.may_block => {
                ctx.action = Some(Action::Block {
                    keys: keys.to_vec(),
                    timeout_ms,
                    argv: None,
                });
            }
            _ => out.null_array(),
        },
    }
    Ok(())
}

fn zmpop(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    zmpop_generic(ctx, out, argv, 1, None)
}

fn bzmpop(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let timeout = parse_timeout(&argv[1])?;
    zmpop_generic(ctx, out, argv, 2, Some(timeout))
}

// ---- set algebra ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
    InterCard,
}

impl SetOp {
    /// The keyspace event of the STORE form.
    fn store_event(self) -> &'static str {
        match self {
            SetOp::Union => "zunionstore",
            SetOp::Inter => "zinterstore",
            SetOp::Diff | SetOp::InterCard => "zdiffstore",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, acc: f64, v: f64) -> f64 {
        match self {
            Aggregate::Sum => {
                let s = acc + v;
                // inf + -inf: Redis turns the NaN into 0.
                if s.is_nan() {
                    0.0
                } else {
                    s
                }
            }
            Aggregate::Min => acc.min(v),
            Aggregate::Max => acc.max(v),
        }
    }
}

/// A sorted set or plain set used as input (plain set members score 1).
enum Input<'a> {
    Empty,
    Z(&'a ZSet),
    S(HashSetB),
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::Empty => 0,
            Input::Z(z) => z.len(),
            Input::S(s) => s.len(),
        }
    }

    fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            Input::Empty => None,
            Input::Z(z) => z.score(m),
            Input::S(s) => s.contains(m).then_some(1.0),
        }
    }

    fn items(&self) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        match self {
            Input::Empty => Box::new(std::iter::empty()),
            Input::Z(z) => Box::new(z.iter()),
            Input::S(s) => Box::new(s.iter().map(|m| (&m[..], 1.0))),
        }
    }
}

fn weighted(w: f64, s: f64) -> f64 {
    let v = w * s;
    // 0 * inf: Redis uses 0.
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

fn setop_generic(
    ctx: &mut Ctx,
    out: &mut Reply,
    argv: &[Bytes],
    op: SetOp,
    store: bool,
) -> CmdResult {
    let numkeys_idx = if store { 2 } else { 1 };
    let n = arg_i64(&argv[numkeys_idx])?;
    if n < 1 {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        return Err(CmdError::msg(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if n as u64 > (argv.len() - numkeys_idx - 1) as u64 {
        return Err(err::SYNTAX);
    }
    let n = n as usize;
    let keys = &argv[numkeys_idx + 1..numkeys_idx + 1 + n];
    // First pass: lazy expiry and type checks (in key order, like Redis).
    let mut present = Vec::with_capacity(n);
    for k in keys {
        match ctx.get(k) {
            None => present.push(false),
            Some(Value::ZSet(_)) | Some(Value::Set(_)) => present.push(true),
            Some(_) => return Err(err::WRONGTYPE),
        }
    }
    let mut weights = vec![1.0; n];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit: u64 = 0;
    let mut j = numkeys_idx + 1 + n;
    while j < argv.len() {
        let remaining = argv.len() - j;
        let a = &argv[j];
        let algebra = matches!(op, SetOp::Union | SetOp::Inter);
        if algebra && remaining > n && is_kw(a, "weights") {
            for (i, w) in weights.iter_mut().enumerate() {
                *w = score_arg(&argv[j + 1 + i])
                    .ok_or_else(|| CmdError::msg("ERR weight value is not a float"))?;
            }
            j += n;
        } else if algebra && remaining >= 2 && is_kw(a, "aggregate") {
            let v = &argv[j + 1];
            agg = if is_kw(v, "sum") {
                Aggregate::Sum
            } else if is_kw(v, "min") {
                Aggregate::Min
            } else if is_kw(v, "max") {
                Aggregate::Max
            } else {
                return Err(err::SYNTAX);
            };
            j += 1;
        } else if op == SetOp::InterCard && remaining >= 2 && is_kw(a, "limit") {
            limit = match crate::resp::parse_i64(&argv[j + 1]) {
                Some(l) if l >= 0 => l as u64,
                _ => return Err(CmdError::msg("ERR LIMIT can't be negative")),
            };
            j += 1;
        } else if !store && op != SetOp::InterCard && is_kw(a, "withscores") {
            withscores = true;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }

    let db = ctx.db_ref();
    let inputs: Vec<(Input, f64)> = keys
        .iter()
        .zip(&present)
        .zip(&weights)
        .map(|((k, &p), &w)| {
            let input = match db.entry(k).map(|e| e.value) {
                Some(Value::ZSet(z)) if p => Input::Z(z),
                Some(Value::Set(s)) if p => Input::S(s.to_hash_set()),
                _ => Input::Empty,
            };
            (input, w)
        })
        .collect();
    let mut result: HashMap<Bytes, f64> = HashMap::new();
    let mut card: u64 = 0;
    match op {
        SetOp::Union => {
            for (input, w) in &inputs {
                for (m, s) in input.items() {
                    let v = weighted(*w, s);
                    match result.get_mut(m) {
                        Some(acc) => *acc = agg.apply(*acc, v),
                        None => {
                            result.insert(Bytes::copy_from_slice(m), v);
                        }
                    }
                }
            }
        }
        SetOp::Inter | SetOp::InterCard => {
            let mut order: Vec<&(Input, f64)> = inputs.iter().collect();
            order.sort_by_key(|(i, _)| i.len());
            if let Some(((first, w0), rest)) = order.split_first().map(|(f, r)| (*f, r)) {
                'members: for (m, s) in first.items() {
                    let mut acc = weighted(*w0, s);
                    for (other, w) in rest {
                        match other.score(m) {
                            Some(s2) => acc = agg.apply(acc, weighted(*w, s2)),
                            None => continue 'members,
                        }
                    }
                    if op == SetOp::InterCard {
                        card += 1;
                        if limit > 0 && card >= limit {
                            break;
                        }
                    } else {
                        result.insert(Bytes::copy_from_slice(m), acc);
                    }
                }
            }
        }
        SetOp::Diff => {
            if let Some(((first, _), rest)) = inputs.split_first() {
                for (m, s) in first.items() {
                    if rest.iter().all(|(o, _)| o.score(m).is_none()) {
                        result.insert(Bytes::copy_from_slice(m), s);
                    }
                }
            }
        }
    }
    if op == SetOp::InterCard {
        out.int(card as i64);
        return Ok(());
    }
    let mut items: Vec<(Bytes, f64)> = result.into_iter().collect();
    // (score, member) order, as Redis replies from its sorted result.
    items.sort_by(|a, b| Score(a.1).cmp(&Score(b.1)).then_with(|| a.0.cmp(&b.0)));
    if store {
        store_result(ctx, out, &argv[1], items, op.store_event());
    } else {
        reply_items(out, &items, withscores);
    }
    Ok(())
}

fn zunionstore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, out, argv, SetOp::Union, true)
}

fn zinterstore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, out, argv, SetOp::Inter, true)
}

fn zdiffstore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, out, argv, SetOp::Diff, true)
}

fn zunion(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, out, argv, SetOp::Union, false)
}

fn zinter(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, out, argv, SetOp::Inter, false)
}

fn zdiff(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, out, argv, SetOp::Diff, false)
}

fn zintercard(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, out, argv, SetOp::InterCard, false)
}

// ---- ZRANDMEMBER / ZSCAN ----

fn zrandmember(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    use rand::Rng;
    if argv.len() == 2 {
        let pick = read_zset(ctx, &argv[1])?.and_then(|z| {
            let i = rand::thread_rng().gen_range(0..z.len().max(1));
            z.range_by_rank(i, i)
                .next()
                .map(|(m, _)| Bytes::copy_from_slice(m))
        });
        out.opt_bulk(pick.as_deref());
        return Ok(());
    }
    let count = arg_i64(&argv[2])?;
    if count == i64::MIN {
        return Err(CmdError::msg(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let withscores = match argv.len() {
        3 => false,
        4 if is_kw(&argv[3], "withscores") => {
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
                return Err(CmdError::msg("ERR value is out of range"));
            }
            true
        }
        _ => return Err(err::SYNTAX),
    };
    let cap = super::hashes::RandomReplyCap::new(ctx, out);
    let Some(z) = read_zset(ctx, &argv[1])? else {
        out.array(0);
        return Ok(());
    };
    let all: Vec<(&[u8], f64)> = z.iter().collect();
    let mut rng = rand::thread_rng();
    if count < 0 {
        // Repetitions allowed: written straight into the reply, up to its cap.
        let want = count.unsigned_abs();
        let n = usize::try_from(want).unwrap_or(usize::MAX);
        let pair = withscores && out.resp3;
        out.array(if withscores && !out.resp3 {
            n.saturating_mul(2)
        } else {
            n
        });
        for _ in 0..want {
            let (m, s) = all[rng.gen_range(0..all.len())];
            if pair {
                out.array(2);
            }
            out.bulk(m);
            if withscores {
                out.double(s);
            }
            cap.check(out)?;
        }
        return Ok(());
    }
    let want = (count as u64).min(all.len() as u64) as usize;
    let items: Vec<(Bytes, f64)> = if want == all.len() {
        owned(all.into_iter())
    } else {
        rand::seq::index::sample(&mut rng, all.len(), want)
            .into_iter()
            .map(|i| (Bytes::copy_from_slice(all[i].0), all[i].1))
            .collect()
    };
    reply_items(out, &items, withscores);
    Ok(())
}

fn zscan(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    use super::hashes::{empty_scan, scan_cursor, scan_options};
    scan_cursor(argv)?;
    let Some(items) = read_zset(ctx, &argv[1])?.map(|z| owned(z.iter())) else {
        empty_scan(out);
        return Ok(());
    };
    let pattern = scan_options(argv)?.pattern;
    let pattern = pattern.as_ref();
    // The whole set is returned in one step with cursor 0, as Redis does for small
    // (listpack) sets; a full iteration therefore always sees every member.
    let items: Vec<(Bytes, f64)> = items
        .into_iter()
        .filter(|(m, _)| pattern.is_none_or(|p| crate::util::glob_match(p, m, false)))
        .collect();
    out.array(2);
    out.bulk(b"0");
    out.array(items.len() * 2);
    for (m, s) in &items {
        out.bulk(m);
        out.bulk(crate::resp::format_double(*s).as_bytes());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn range_floats_parse_like_strtod_in_redis() {
        assert_eq!(parse_range_float(b""), Some(0.0));
        assert_eq!(parse_range_float(b" 1.5"), Some(1.5));
        assert_eq!(parse_range_float(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_range_float(b"nan"), None);
        assert_eq!(parse_range_float(b"1x"), None);
        let b = parse_score_bound(b"(2").expect("bound");
        assert!(b.exclusive && b.value == 2.0);
    }

    #[test]
    fn rank_clamping_matches_redis() {
        assert_eq!(clamp_ranks(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_ranks(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_ranks(2, 1, 3), None);
        assert_eq!(clamp_ranks(3, 5, 3), None);
        assert_eq!(clamp_ranks(0, 0, 0), None);
    }

    #[test]
    fn numkeys_key_positions() {
        let argv: Vec<Bytes> = ["zunionstore", "d", "2", "a", "b", "weights", "1", "2"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(keys_store(&argv), vec![1, 3, 4]);
        let argv: Vec<Bytes> = ["bzmpop", "0", "9", "a"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(keys_numkeys_at_2(&argv), vec![3]);
    }

    #[test]
    fn timeouts_parse_to_milliseconds() {
        assert_eq!(parse_timeout(b"0.5"), Ok(500));
        assert_eq!(parse_timeout(b"0"), Ok(0));
        assert_eq!(parse_timeout(b"-1"), Err(err::NEG_TIMEOUT));
        assert_eq!(parse_timeout(b"x"), Err(err::TIMEOUT));
        assert_eq!(parse_timeout(b"1e30"), Err(err::NEG_TIMEOUT));
        assert_eq!(parse_timeout(b"-inf"), Err(err::NEG_TIMEOUT));
    }

    #[test]
    fn score_arguments_refuse_overflow_and_underflow() {
        assert_eq!(score_arg(b"1e400"), None);
        assert_eq!(score_arg(b"-1e400"), None);
        assert_eq!(score_arg(b"1e-400"), None);
        assert_eq!(score_arg(b"0e-400"), Some(0.0));
        assert_eq!(score_arg(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(score_arg(b"1e-310"), Some(1e-310));
        assert_eq!(score_arg(b"0.000"), Some(0.0));
    }

    /// Runs one command directly against a fresh in-process server.
    pub(crate) fn run(
        server: &std::sync::Arc<crate::server::Server>,
        client: &mut super::super::ClientState,
        line: &str,
    ) -> (Vec<u8>, Vec<Vec<Bytes>>) {
        let argv: Vec<Bytes> = line
            .split_whitespace()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        let cmd = super::super::lookup(&argv[0]).expect("known command");
        let mut store = server.store.lock();
        let mut out = Reply::new(client.resp3);
        crate::exec::call(server, &mut store, client, cmd, &argv, &mut out, true);
        let ops = std::mem::take(&mut store.propagated)
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        (out.buf, ops)
    }

    pub(crate) fn setup(
        resp3: bool,
    ) -> (
        std::sync::Arc<crate::server::Server>,
        super::super::ClientState,
    ) {
        let server = crate::server::Server::new(crate::config::Config::default());
        let mut client = super::super::ClientState::new(1);
        client.authenticated = true;
        client.resp3 = resp3;
        (server, client)
    }

    pub(crate) fn argv(line: &str) -> Vec<Bytes> {
        line.split_whitespace()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn resp3_replies_use_doubles_and_pairs_like_redis() {
        let (server, mut c) = setup(true);
        run(&server, &mut c, "ZADD z 1 a 2.5 b 3 c");
        let (out, _) = run(&server, &mut c, "ZRANGE z 0 1 WITHSCORES");
        assert_eq!(
            out,
            b"*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n"
        );
        let (out, _) = run(&server, &mut c, "ZSCORE z b");
        assert_eq!(out, b",2.5\r\n");
        let (out, _) = run(&server, &mut c, "ZPOPMIN z");
        assert_eq!(out, b"*2\r\n$1\r\na\r\n,1\r\n", "no count: flat pair");
        let (out, _) = run(&server, &mut c, "ZPOPMIN z 1");
        assert_eq!(out, b"*1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n");
        let (out, _) = run(&server, &mut c, "ZMPOP 1 nokey MIN");
        assert_eq!(out, b"_\r\n");
        let (out, _) = run(&server, &mut c, "ZADD one 1 a");
        assert_eq!(out, b":1\r\n");
        let (out, _) = run(&server, &mut c, "ZRANDMEMBER one -2 WITHSCORES");
        assert_eq!(out, b"*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\na\r\n,1\r\n");
        c.resp3 = false;
        let (out, _) = run(&server, &mut c, "ZRANDMEMBER one -2 WITHSCORES");
        assert_eq!(out, b"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\na\r\n$1\r\n1\r\n");
        c.resp3 = true;
        let (out, _) = run(&server, &mut c, "ZSCAN z 0");
        assert_eq!(out, b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n");
    }

    #[test]
    fn pops_propagate_as_plain_zpop_commands() {
        let (server, mut c) = setup(false);
        run(&server, &mut c, "ZADD z 1 a 2 b 3 c");
        let (out, ops) = run(&server, &mut c, "BZPOPMAX other z 0");
        assert_eq!(out, b"*3\r\n$1\r\nz\r\n$1\r\nc\r\n$1\r\n3\r\n");
        assert_eq!(ops, vec![argv("ZPOPMAX z")]);
        // Two members left: Redis 7.0.15 propagates the count popped.
        let (_, ops) = run(&server, &mut c, "ZMPOP 1 z MIN COUNT 5");
        assert_eq!(ops, vec![argv("ZPOPMIN z 2")]);
        let (_, ops) = run(&server, &mut c, "ZMPOP 1 z MIN");
        assert!(ops.is_empty(), "nothing popped, nothing propagated");
        let (_, ops) = run(&server, &mut c, "ZADD z XX 1 a");
        assert!(ops.is_empty(), "a no-op ZADD is not propagated");
    }

    #[test]
    fn blocking_pop_registers_its_keys_when_empty() {
        let (server, mut c) = setup(false);
        let (out, ops) = run(&server, &mut c, "BZPOPMIN k1 k2 1.5");
        assert!(out.is_empty(), "a blocked client gets no reply yet");
        assert!(ops.is_empty());
        let store = server.store.lock();
        let w = store.waiters.get(&1).expect("waiter registered");
        assert_eq!(w.keys, argv("k1 k2"));
    }

    #[test]
    fn plain_sets_are_valid_inputs_with_score_one() {
        let (server, mut c) = setup(false);
        {
            let mut store = server.store.lock();
            let mut set = crate::types::HashSetB::default();
            set.insert(Bytes::from_static(b"y"));
            set.insert(Bytes::from_static(b"w"));
            let set = crate::types::Set::from_members(set.iter().map(|m| &m[..]), 512);
            store.dbs[0].set(Bytes::from_static(b"plain"), Value::Set(Box::new(set)), 0);
        }
        run(&server, &mut c, "ZADD a 1 x 2 y");
        let (out, _) = run(&server, &mut c, "ZINTER 2 a plain WITHSCORES");
        assert_eq!(out, b"*2\r\n$1\r\ny\r\n$1\r\n3\r\n");
        let (out, _) = run(&server, &mut c, "ZUNIONSTORE d 2 plain a WEIGHTS 10 1");
        assert_eq!(out, b":3\r\n");
        let (out, _) = run(&server, &mut c, "ZRANGE d 0 -1 WITHSCORES");
        assert_eq!(
            out,
            b"*6\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\nw\r\n$2\r\n10\r\n$1\r\ny\r\n$2\r\n12\r\n"
        );
    }

    #[test]
    fn encoding_follows_listpack_limits() {
        let mut z = ZSet::new();
        z.insert(Bytes::from_static(b"a"), 1.0, Limits::ZSET);
        assert_eq!(z.encoding(), "listpack");
        z.insert(Bytes::from(vec![b'x'; 65]), 2.0, Limits::ZSET);
        assert_eq!(z.encoding(), "skiplist");
        z.remove(&[b'x'; 65]);
        assert_eq!(z.encoding(), "skiplist", "never converted back");
    }
}
