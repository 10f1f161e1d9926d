//! Command family: hashes (Redis 7.0 `t_hash.c` semantics).

use super::{arg_i64, err, flags::*, is_kw, parse_f64, CmdError, CmdResult, Command, Ctx};
use crate::resp::Reply;
use crate::types::{HashMapB, Value};
use bytes::Bytes;
use rand::seq::SliceRandom;
use rand::Rng;

pub const COMMANDS: &[Command] = &[
    Command::new("hset", -4, WRITE | DENYOOM | FAST, hset).keys(1, 1, 1),
    Command::new("hmset", -4, WRITE | DENYOOM | FAST, hmset).keys(1, 1, 1),
    Command::new("hsetnx", 4, WRITE | DENYOOM | FAST, hsetnx).keys(1, 1, 1),
    Command::new("hget", 3, READONLY | FAST, hget).keys(1, 1, 1),
    Command::new("hmget", -3, READONLY | FAST, hmget).keys(1, 1, 1),
    Command::new("hdel", -3, WRITE | FAST, hdel).keys(1, 1, 1),
    Command::new("hlen", 2, READONLY | FAST, hlen).keys(1, 1, 1),
    Command::new("hstrlen", 3, READONLY | FAST, hstrlen).keys(1, 1, 1),
    Command::new("hexists", 3, READONLY | FAST, hexists).keys(1, 1, 1),
    Command::new("hkeys", 2, READONLY, hkeys).keys(1, 1, 1),
    Command::new("hvals", 2, READONLY, hvals).keys(1, 1, 1),
    Command::new("hgetall", 2, READONLY, hgetall).keys(1, 1, 1),
    Command::new("hincrby", 4, WRITE | DENYOOM | FAST, hincrby).keys(1, 1, 1),
    Command::new("hincrbyfloat", 4, WRITE | DENYOOM | FAST, hincrbyfloat).keys(1, 1, 1),
    Command::new("hrandfield", -2, READONLY, hrandfield).keys(1, 1, 1),
    Command::new("hscan", -3, READONLY, hscan).keys(1, 1, 1),
];

fn hash_w<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut HashMapB>, CmdError> {
    match ctx.get_mut(key) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

fn hash_r<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut HashMapB>, CmdError> {
    match ctx.get(key) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// The hash for writing, created empty if missing (Redis `hashTypeLookupWriteOrCreate`).
fn hash_create<'a>(ctx: &'a mut Ctx, key: &Bytes) -> Result<&'a mut HashMapB, CmdError> {
    if hash_w(ctx, key)?.is_none() {
        ctx.set(key.clone(), Value::new_hash());
    }
    match hash_w(ctx, key)? {
        Some(h) => Ok(h),
        None => Err(err::NO_SUCH_KEY),
    }
}

fn hset_generic(ctx: &mut Ctx, argv: &[Bytes], name: &str) -> Result<i64, CmdError> {
    if argv.len() % 2 == 1 {
        return Err(CmdError::msg(format!(
            "ERR wrong number of arguments for '{name}' command"
        )));
    }
    let h = hash_create(ctx, &argv[1])?;
    let mut created = 0;
    for pair in argv[2..].chunks(2) {
        if h.insert(pair[0].clone(), pair[1].clone()).is_none() {
            created += 1;
        }
    }
    ctx.dirty(((argv.len() - 2) / 2) as u64);
    Ok(created)
}

fn hset(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = hset_generic(ctx, argv, "hset")?;
    out.int(n);
    Ok(())
}

fn hmset(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    hset_generic(ctx, argv, "hmset")?;
    out.ok();
    Ok(())
}

fn hsetnx(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let h = hash_create(ctx, &argv[1])?;
    if h.contains_key(&argv[2]) {
        out.int(0);
    } else {
        h.insert(argv[2].clone(), argv[3].clone());
        ctx.dirty(1);
        out.int(1);
    }
    Ok(())
}

fn hget(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let v = hash_r(ctx, &argv[1])?.and_then(|h| h.get(&argv[2]).cloned());
    out.opt_bulk(v.as_deref());
    Ok(())
}

fn hmget(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let h = hash_r(ctx, &argv[1])?;
    out.array(argv.len() - 2);
    for f in &argv[2..] {
        out.opt_bulk(h.as_ref().and_then(|h| h.get(f)).map(|v| &v[..]));
    }
    Ok(())
}

fn hdel(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(h) = hash_w(ctx, key)? else {
        out.int(0);
        return Ok(());
    };
    let mut n = 0;
    for f in &argv[2..] {
        if h.remove(f).is_some() {
            n += 1;
        }
    }
    if n > 0 {
        ctx.delete_if_empty(key);
        ctx.dirty(n);
    }
    out.int(n as i64);
    Ok(())
}

fn hlen(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = hash_r(ctx, &argv[1])?.map_or(0, |h| h.len());
    out.int(n as i64);
    Ok(())
}

fn hstrlen(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = hash_r(ctx, &argv[1])?
        .and_then(|h| h.get(&argv[2]))
        .map_or(0, |v| v.len());
    out.int(n as i64);
    Ok(())
}

fn hexists(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let e = hash_r(ctx, &argv[1])?.is_some_and(|h| h.contains_key(&argv[2]));
    out.int(e as i64);
    Ok(())
}

fn hkeys(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    match hash_r(ctx, &argv[1])? {
        None => out.array(0),
        Some(h) => {
            out.array(h.len());
            for k in h.keys() {
                out.bulk(k);
            }
        }
    }
    Ok(())
}

fn hvals(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    match hash_r(ctx, &argv[1])? {
        None => out.array(0),
        Some(h) => {
            out.array(h.len());
            for v in h.values() {
                out.bulk(v);
            }
        }
    }
    Ok(())
}

fn hgetall(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    match hash_r(ctx, &argv[1])? {
        None => out.map(0),
        Some(h) => {
            out.map(h.len());
            for (k, v) in h.iter() {
                out.bulk(k);
                out.bulk(v);
            }
        }
    }
    Ok(())
}

fn hincrby(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let incr = arg_i64(&argv[3])?;
    let h = hash_create(ctx, &argv[1])?;
    let cur = match h.get(&argv[2]) {
        None => 0,
        Some(v) => {
            crate::resp::parse_i64(v).ok_or(CmdError::msg("ERR hash value is not an integer"))?
        }
    };
    let Some(new) = cur.checked_add(incr) else {
        ctx.delete_if_empty(&argv[1]);
        return Err(err::OVERFLOW);
    };
    h.insert(argv[2].clone(), Bytes::from(new.to_string()));
    ctx.dirty(1);
    out.int(new);
    Ok(())
}

fn hincrbyfloat(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let incr = parse_f64(&argv[3]).ok_or(err::NOT_FLOAT)?;
    if !incr.is_finite() {
        return Err(CmdError::msg("ERR value is NaN or Infinity"));
    }
    let h = hash_create(ctx, &argv[1])?;
    let cur = match h.get(&argv[2]) {
        None => Ok(0.0),
        Some(v) => parse_f64(v).ok_or(CmdError::msg("ERR hash value is not a float")),
    };
    let result = cur.and_then(|cur| {
        let new = cur + incr;
        if new.is_finite() {
            Ok(new)
        } else {
            Err(CmdError::msg("ERR increment would produce NaN or Infinity"))
        }
    });
    let new = match result {
        Ok(n) => n,
        Err(e) => {
            ctx.delete_if_empty(&argv[1]);
            return Err(e);
        }
    };
    let text = Bytes::from(crate::resp::format_human(new));
    h.insert(argv[2].clone(), text.clone());
    ctx.dirty(1);
    out.bulk(&text);
    ctx.rewrite = Some(vec![
        Bytes::from_static(b"HSET"),
        argv[1].clone(),
        argv[2].clone(),
        text,
    ]);
    Ok(())
}

const RANGE_COUNT: CmdError = CmdError(std::borrow::Cow::Borrowed(
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
));

/// Parses a random-sampling count (HRANDFIELD, SRANDMEMBER): i64 except i64::MIN.
pub fn parse_rand_count(a: &[u8]) -> Result<i64, CmdError> {
    let n = arg_i64(a)?;
    if n == i64::MIN {
        return Err(RANGE_COUNT);
    }
    Ok(n)
}

fn hrandfield(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len() == 2 {
        let h = hash_r(ctx, &argv[1])?;
        let pick = h.and_then(|h| {
            if h.is_empty() {
                return None;
            }
            let i = rand::thread_rng().gen_range(0..h.len());
            h.keys().nth(i).cloned()
        });
        out.opt_bulk(pick.as_deref());
        return Ok(());
    }
    let count = parse_rand_count(&argv[2])?;
    let withvalues = match argv.len() {
        3 => false,
        4 if is_kw(&argv[3], "withvalues") => true,
        _ => return Err(err::SYNTAX),
    };
    let resp3 = out.resp3;
    let Some(h) = hash_r(ctx, &argv[1])? else {
        out.array(0);
        return Ok(());
    };
    let entries: Vec<(&Bytes, &Bytes)> = h.iter().collect();
    let emit = |out: &mut Reply, (k, v): (&Bytes, &Bytes)| {
        if withvalues && resp3 {
            out.array(2);
        }
        out.bulk(k);
        if withvalues {
            out.bulk(v);
        }
    };
    let per = if withvalues && !resp3 { 2 } else { 1 };
    let mut rng = rand::thread_rng();
    if count >= 0 {
        let n = (count as u64).min(entries.len() as u64) as usize;
        let chosen: Vec<_> = entries.choose_multiple(&mut rng, n).copied().collect();
        out.array(n * per);
        for e in chosen {
            emit(out, e);
        }
    } else {
        let n = count.unsigned_abs();
        if entries.is_empty() {
            out.array(0);
            return Ok(());
        }
        out.array((n as usize).saturating_mul(per));
        for _ in 0..n {
            let e = entries[rng.gen_range(0..entries.len())];
            emit(out, e);
        }
    }
    Ok(())
}

/// Parsed `cursor [MATCH pattern] [COUNT n]` of the *SCAN family (cursor at argv[2]).
pub struct ScanArgs {
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    pub count: usize,
}

pub fn parse_scan(argv: &[Bytes]) -> Result<ScanArgs, CmdError> {
    let cursor = std::str::from_utf8(&argv[2])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(CmdError::msg("ERR invalid cursor"))?;
    let mut pattern = None;
    let mut count = 10usize;
    let mut i = 3;
    while i < argv.len() {
        let Some(val) = argv.get(i + 1) else {
            return Err(err::SYNTAX);
        };
        if is_kw(&argv[i], "count") {
            let n = arg_i64(val)?;
            if n < 1 {
                return Err(err::SYNTAX);
            }
            count = n.min(i64::from(u32::MAX)) as usize;
        } else if is_kw(&argv[i], "match") {
            pattern = Some(val.clone());
        } else {
            return Err(err::SYNTAX);
        }
        i += 2;
    }
    Ok(ScanArgs {
        cursor,
        pattern,
        count,
    })
}

/// Containers up to this size are returned whole in one SCAN step, like Redis's
/// small (listpack/intset) encodings.
pub const SMALL_SCAN: usize = 128;

/// One SCAN step over a stable (sorted) snapshot of `items`: the next cursor and the
/// indexes of the items to return (before MATCH filtering).
pub fn scan_step(len: usize, cursor: u64, count: usize) -> (u64, std::ops::Range<usize>) {
    if len <= SMALL_SCAN {
        return (0, 0..len);
    }
    let start = (cursor.min(len as u64)) as usize;
    let end = start.saturating_add(count).min(len);
    let next = if end >= len { 0 } else { end as u64 };
    (next, start..end)
}

fn hscan(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let args = parse_scan(argv)?;
    let Some(h) = hash_r(ctx, &argv[1])? else {
        out.array(2);
        out.bulk(b"0");
        out.array(0);
        return Ok(());
    };
    let mut fields: Vec<(&Bytes, &Bytes)> = h.iter().collect();
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let (next, range) = scan_step(fields.len(), args.cursor, args.count);
    let picked: Vec<(&Bytes, &Bytes)> = fields[range]
        .iter()
        .filter(|(k, _)| {
            args.pattern
                .as_ref()
                .is_none_or(|p| crate::util::glob_match(p, k, false))
        })
        .copied()
        .collect();
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(picked.len() * 2);
    for (k, v) in picked {
        out.bulk(k);
        out.bulk(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::lists::harness::H;

    #[test]
    fn hincrbyfloat_propagates_as_hset_with_result() {
        let mut h = H::new();
        assert_eq!(
            h.ops(&["hincrbyfloat", "h", "f", "1.5"]),
            vec!["HSET h f 1.5"]
        );
        assert_eq!(
            h.ops(&["hincrbyfloat", "h", "f", "0.1"]),
            vec!["HSET h f 1.6"]
        );
        assert_eq!(h.ops(&["hincrby", "h", "n", "3"]), vec!["hincrby h n 3"]);
        // Errors propagate nothing and leave no empty key behind.
        assert!(h.ops(&["hincrby", "e", "n", "x"]).is_empty());
        assert!(h.ops(&["hincrbyfloat", "e", "n", "inf"]).is_empty());
        assert!(!h.store.dbs[0].contains(b"e"));
    }

    #[test]
    fn scan_steps_cover_everything_and_end() {
        let (next, r) = scan_step(10, 0, 3);
        assert_eq!((next, r), (0, 0..10));
        let mut cursor = 0;
        let mut seen = 0;
        for _ in 0..1000 {
            let (next, r) = scan_step(1000, cursor, 7);
            seen += r.len();
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!((cursor, seen), (0, 1000));
        // A stale cursor past the end terminates.
        assert_eq!(scan_step(200, 5000, 10).0, 0);
    }
}
