//! Command family: sets (Redis 7.0 `t_set.c` semantics).

use super::hashes::{empty_scan, parse_rand_count, scan_cursor, scan_options, scan_step};
use super::{err, flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::notify::{GENERIC, SET};
use crate::resp::Reply;
use crate::types::set::{Member, Set};
use crate::types::Value;
use bytes::Bytes;
use rand::seq::SliceRandom;

pub const COMMANDS: &[Command] = &[
    Command::new("sadd", -3, WRITE | DENYOOM | FAST, sadd).keys(1, 1, 1),
    Command::new("srem", -3, WRITE | FAST, srem).keys(1, 1, 1),
    Command::new("scard", 2, READONLY | FAST, scard).keys(1, 1, 1),
    Command::new("sismember", 3, READONLY | FAST, sismember).keys(1, 1, 1),
    Command::new("smismember", -3, READONLY | FAST, smismember).keys(1, 1, 1),
    Command::new("smembers", 2, READONLY, smembers).keys(1, 1, 1),
    Command::new("srandmember", -2, READONLY, srandmember).keys(1, 1, 1),
    Command::new("spop", -2, WRITE | FAST, spop).keys(1, 1, 1),
    Command::new("smove", 4, WRITE | FAST, smove).keys(1, 2, 1),
    Command::new("sinter", -2, READONLY, sinter).keys(1, -1, 1),
    Command::new("sintercard", -3, READONLY, sintercard).keys_with(sintercard_keys),
    Command::new("sunion", -2, READONLY, sunion).keys(1, -1, 1),
    Command::new("sdiff", -2, READONLY, sdiff).keys(1, -1, 1),
    Command::new("sinterstore", -3, WRITE | DENYOOM, sinterstore).keys(1, -1, 1),
    Command::new("sunionstore", -3, WRITE | DENYOOM, sunionstore).keys(1, -1, 1),
    Command::new("sdiffstore", -3, WRITE | DENYOOM, sdiffstore).keys(1, -1, 1),
    Command::new("sscan", -3, READONLY, sscan).keys(1, 1, 1),
];

fn set_w<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut Set>, CmdError> {
    match ctx.get_mut(key) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

fn set_r<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a Set>, CmdError> {
    match ctx.get(key) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// `set-max-intset-entries`, read once per command.
fn max_intset(ctx: &Ctx) -> usize {
    ctx.config().set_max_intset_entries
}

fn sadd(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let max = max_intset(ctx);
    let add = |s: &mut Set| argv[2..].iter().filter(|m| s.insert(m, max)).count() as u64;
    // One key lookup: a new set is stored once its members are in (at least one,
    // so it is never empty).
    let added = match set_w(ctx, key)? {
        Some(s) => add(s),
        None => {
            let mut s = Set::new();
            let added = add(&mut s);
            ctx.set(&key[..], Value::Set(Box::new(s)));
            added
        }
    };
    if added > 0 {
        ctx.notify(SET, "sadd", key);
        ctx.dirty(added);
    }
    out.int(added as i64);
    Ok(())
}

fn srem(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(s) = set_w(ctx, key)? else {
        out.int(0);
        return Ok(());
    };
    let mut n = 0;
    for m in &argv[2..] {
        if s.remove(m) {
            n += 1;
        }
    }
    if n > 0 {
        ctx.notify(SET, "srem", key);
        ctx.delete_if_empty(key);
        ctx.dirty(n);
    }
    out.int(n as i64);
    Ok(())
}

fn scard(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = set_r(ctx, &argv[1])?.map_or(0, |s| s.len());
    out.int(n as i64);
    Ok(())
}

fn sismember(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let e = set_r(ctx, &argv[1])?.is_some_and(|s| s.contains(&argv[2]));
    out.int(e as i64);
    Ok(())
}

fn smismember(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let s = set_r(ctx, &argv[1])?;
    out.array(argv.len() - 2);
    for m in &argv[2..] {
        out.int(s.is_some_and(|s| s.contains(m)) as i64);
    }
    Ok(())
}

/// Redis 7.0 builds the results of SUNION/SDIFF/SINTER*STORE (and SPOP of a whole
/// set) as a fresh set, an intset when every member is an integer and there are at
/// most 512, so such members come out in numeric order. Sorts `items` that way when
/// they qualify; true if it did.
fn intset_order(items: &mut [Member<'_>]) -> bool {
    if items.len() > 512 {
        return false;
    }
    let mut keyed = Vec::with_capacity(items.len());
    for m in items.iter() {
        match m {
            Member::Int(n) => keyed.push(*n),
            Member::Bytes(b) => match crate::resp::parse_i64(b) {
                Some(n) => keyed.push(n),
                None => return false,
            },
        }
    }
    keyed.sort_unstable();
    for (slot, n) in items.iter_mut().zip(keyed) {
        *slot = Member::Int(n);
    }
    true
}

fn bulk_member(out: &mut Reply, m: &Member<'_>) {
    match m {
        Member::Int(n) => out.bulk_int(*n),
        Member::Bytes(b) => out.bulk(b),
    }
}

fn reply_set<'a>(out: &mut Reply, items: impl Iterator<Item = Member<'a>>) {
    let mut items: Vec<Member<'a>> = items.collect();
    intset_order(&mut items);
    out.set(items.len());
    for m in &items {
        bulk_member(out, m);
    }
}

fn smembers(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    match set_r(ctx, &argv[1])? {
        None => out.set(0),
        Some(s) => {
            // An intset iterates in ascending order already, as Redis's does.
            out.set(s.len());
            for m in s.iter() {
                bulk_member(out, &m);
            }
        }
    }
    Ok(())
}

fn srandmember(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 3 {
        return Err(err::SYNTAX);
    }
    let mut rng = rand::thread_rng();
    if argv.len() == 2 {
        match set_r(ctx, &argv[1])?.and_then(|s| s.random(&mut rng)) {
            Some(m) => bulk_member(out, &m),
            None => out.null(),
        }
        return Ok(());
    }
    let count = parse_rand_count(&argv[2])?;
    let cap = super::hashes::RandomReplyCap::new(ctx, out);
    let Some(s) = set_r(ctx, &argv[1])? else {
        out.array(0);
        return Ok(());
    };
    if count >= 0 {
        if count as u64 >= s.len() as u64 {
            // The whole set, in its own order (ascending for an intset), as Redis
            // answers a count that covers the set.
            out.array(s.len());
            for m in s.iter() {
                bulk_member(out, &m);
            }
            return Ok(());
        }
        let members: Vec<Member<'_>> = s.iter().collect();
        let chosen = members.choose_multiple(&mut rng, count as usize);
        out.array(chosen.len());
        for m in chosen {
            bulk_member(out, m);
        }
    } else {
        if s.is_empty() {
            out.array(0);
            return Ok(());
        }
        let members: Vec<Member<'_>> = s.iter().collect();
        let n = count.unsigned_abs();
        out.array(n as usize);
        for _ in 0..n {
            if let Some(m) = members.choose(&mut rng) {
                bulk_member(out, m);
            }
            cap.check(out)?;
        }
    }
    Ok(())
}

fn spop(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    if argv.len() > 3 {
        return Err(err::SYNTAX);
    }
    if argv.len() == 2 {
        return spop_one(ctx, out, key);
    }
    let count = match crate::resp::parse_i64(&argv[2]) {
        Some(n) if n >= 0 => n as u64,
        _ => return Err(CmdError::msg("ERR value is out of range, must be positive")),
    };
    let Some(s) = set_w(ctx, key)? else {
        out.set(0);
        return Ok(());
    };
    if count == 0 {
        out.set(0);
        return Ok(());
    }
    if count >= s.len() as u64 {
        let all = std::mem::take(s);
        reply_set(out, all.iter());
        ctx.notify(SET, "spop", key);
        ctx.delete(key);
        ctx.notify(GENERIC, "del", key);
        ctx.dirty(1);
        ctx.rewrite = Some(vec![Bytes::from_static(b"DEL"), key.clone()]);
        return Ok(());
    }
    let chosen: Vec<Bytes> = {
        let members: Vec<Member<'_>> = s.iter().collect();
        members
            .choose_multiple(&mut rand::thread_rng(), count as usize)
            .map(|m| m.to_bytes())
            .collect()
    };
    for m in &chosen {
        s.remove(m);
    }
    reply_set(out, chosen.iter().map(|m| Member::Bytes(m)));
    ctx.notify(SET, "spop", key);
    let db = ctx.client.db;
    for m in &chosen {
        ctx.also_propagate(
            db,
            vec![Bytes::from_static(b"SREM"), key.clone(), m.clone()],
        );
    }
    ctx.no_propagate = true;
    ctx.dirty(chosen.len() as u64);
    Ok(())
}

fn spop_one(ctx: &mut Ctx, out: &mut Reply, key: &Bytes) -> CmdResult {
    let Some(s) = set_w(ctx, key)? else {
        out.null();
        return Ok(());
    };
    let Some(m) = s.random(&mut rand::thread_rng()).map(|m| m.to_bytes()) else {
        out.null();
        return Ok(());
    };
    s.remove(&m);
    ctx.notify(SET, "spop", key);
    ctx.delete_if_empty(key);
    ctx.dirty(1);
    ctx.rewrite = Some(vec![Bytes::from_static(b"SREM"), key.clone(), m.clone()]);
    out.bulk(&m);
    Ok(())
}

fn smove(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let (src, dst, m) = (&argv[1], &argv[2], &argv[3]);
    let max = max_intset(ctx);
    // Redis answers 0 for a missing source before type-checking the destination.
    if set_w(ctx, src)?.is_none() {
        out.int(0);
        return Ok(());
    }
    let dst_exists = set_w(ctx, dst)?.is_some();
    if src == dst {
        let e = set_w(ctx, src)?.is_some_and(|s| s.contains(m));
        out.int(e as i64);
        return Ok(());
    }
    let removed = set_w(ctx, src)?.is_some_and(|s| s.remove(m));
    if !removed {
        out.int(0);
        return Ok(());
    }
    ctx.notify(SET, "srem", src);
    ctx.delete_if_empty(src);
    if !dst_exists {
        ctx.set(dst.clone(), Value::new_set());
    }
    if set_w(ctx, dst)?.is_some_and(|d| d.insert(m, max)) {
        ctx.notify(SET, "sadd", dst);
    } else {
        // The destination already held the member: only the source changed.
        ctx.unchanged_key = Some(1);
    }
    ctx.dirty(1);
    out.int(1);
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// Computes an intersection/union/difference of the sets at `keys`, Redis-style:
/// missing keys are empty sets; WRONGTYPE for non-sets. Sorted by nothing in particular.
fn combine(ctx: &mut Ctx, keys: &[Bytes], op: Op) -> Result<Vec<Bytes>, CmdError> {
    // Every key is looked up (expired, counted) and type-checked, even after a
    // missing one; then the sets are read in place, without copies.
    for k in keys {
        set_r(ctx, k)?;
    }
    let db = ctx.db_ref();
    let sets: Vec<Option<&Set>> = keys
        .iter()
        .map(|k| match db.entry(k).map(|e| e.value) {
            Some(Value::Set(s)) => Some(&**s),
            _ => None,
        })
        .collect();
    let missing = sets.iter().any(Option::is_none);
    if missing && op == Op::Inter {
        return Ok(Vec::new());
    }
    Ok(match op {
        Op::Inter => {
            let mut order: Vec<&Set> = sets.iter().flatten().copied().collect();
            order.sort_by_key(|s| s.len());
            let Some((first, rest)) = order.split_first() else {
                return Ok(Vec::new());
            };
            first
                .iter()
                .filter(|m| m.with(|b| rest.iter().all(|s| s.contains(b))))
                .map(|m| m.to_bytes())
                .collect()
        }
        Op::Union => {
            let mut acc = crate::types::HashSetB::default();
            for s in sets.iter().flatten() {
                acc.extend(s.iter().map(|m| m.to_bytes()));
            }
            acc.into_iter().collect()
        }
        Op::Diff => {
            let Some(Some(first)) = sets.first() else {
                return Ok(Vec::new());
            };
            let rest = sets.get(1..).unwrap_or_default();
            first
                .iter()
                .filter(|m| m.with(|b| rest.iter().flatten().all(|s| !s.contains(b))))
                .map(|m| m.to_bytes())
                .collect()
        }
    })
}

fn read_op(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], op: Op) -> CmdResult {
    let items = combine(ctx, &argv[1..], op)?;
    reply_set(out, items.iter().map(|m| Member::Bytes(m)));
    Ok(())
}

fn store_op(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], op: Op) -> CmdResult {
    let items = combine(ctx, &argv[2..], op)?;
    let dst = &argv[1];
    let n = items.len();
    if n > 0 {
        let set = Set::from_members(items.iter().map(|m| &m[..]), max_intset(ctx));
        ctx.set(dst.clone(), Value::Set(Box::new(set)));
        ctx.dirty(1);
        let event = match op {
            Op::Inter => "sinterstore",
            Op::Union => "sunionstore",
            Op::Diff => "sdiffstore",
        };
        ctx.notify(SET, event, dst);
    } else {
        let deleted = ctx.delete(dst);
        if deleted {
            ctx.notify(GENERIC, "del", dst);
        }
        // Redis counts a change for an empty result unless an intersection met a
        // missing key, in which case only an actual deletion counts.
        let inter_with_missing = op == Op::Inter && argv[2..].iter().any(|k| !ctx.exists(k));
        if deleted || !inter_with_missing {
            ctx.dirty(1);
        }
    }
    out.int(n as i64);
    Ok(())
}

fn sinter(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    read_op(ctx, out, argv, Op::Inter)
}
fn sunion(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    read_op(ctx, out, argv, Op::Union)
}
fn sdiff(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    read_op(ctx, out, argv, Op::Diff)
}
fn sinterstore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    store_op(ctx, out, argv, Op::Inter)
}
fn sunionstore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    store_op(ctx, out, argv, Op::Union)
}
fn sdiffstore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    store_op(ctx, out, argv, Op::Diff)
}

fn sintercard_keys(argv: &[Bytes]) -> Vec<usize> {
    match argv.get(1).and_then(|a| crate::resp::parse_i64(a)) {
        Some(n) if n >= 1 => {
            let n = (n as u64).min(argv.len() as u64) as usize;
            (2..2 + n).collect()
        }
        _ => Vec::new(),
    }
}

fn sintercard(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let numkeys = match crate::resp::parse_i64(&argv[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(CmdError::msg("ERR numkeys should be greater than 0")),
    };
    if numkeys > (argv.len() - 2) as u64 {
        return Err(CmdError::msg(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let end = 2 + numkeys as usize;
    let mut limit = 0u64;
    let mut i = end;
    while i < argv.len() {
        if is_kw(&argv[i], "limit") && i + 1 < argv.len() {
            limit = match crate::resp::parse_i64(&argv[i + 1]) {
                Some(l) if l >= 0 => l as u64,
                _ => return Err(CmdError::msg("ERR LIMIT can't be negative")),
            };
            i += 2;
        } else {
            return Err(err::SYNTAX);
        }
    }
    let items = combine(ctx, &argv[2..end], Op::Inter)?;
    let mut n = items.len() as u64;
    if limit > 0 {
        n = n.min(limit);
    }
    out.int(n as i64);
    Ok(())
}

fn sscan(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let cursor = scan_cursor(argv)?;
    let Some(s) = set_r(ctx, &argv[1])? else {
        empty_scan(out);
        return Ok(());
    };
    let args = scan_options(argv)?;
    let mut members: Vec<Member<'_>> = s.iter().collect();
    let (next, range) = if matches!(s, Set::Ints(_)) {
        // An intset is returned whole, in its ascending order, like Redis does
        // for compact encodings.
        (0, 0..members.len())
    } else {
        members.sort_unstable_by(|a, b| a.with(|a| b.with(|b| a.cmp(b))));
        scan_step(members.len(), cursor, args.count)
    };
    let picked: Vec<&Member<'_>> = members
        .get(range)
        .unwrap_or_default()
        .iter()
        .filter(|m| {
            args.pattern
                .as_ref()
                .is_none_or(|p| m.with(|b| crate::util::glob_match(p, b, false)))
        })
        .collect();
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(picked.len());
    for m in picked {
        bulk_member(out, m);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::commands::lists::harness::H;

    #[test]
    fn spop_propagates_srem_per_member_or_del() {
        let mut h = H::new();
        h.ops(&["sadd", "s", "a"]);
        assert_eq!(h.ops(&["spop", "s"]), vec!["SREM s a"]);
        h.ops(&["sadd", "s", "a", "b", "c"]);
        let ops = h.ops(&["spop", "s", "2"]);
        assert_eq!(ops.len(), 4, "{ops:?}");
        assert_eq!(ops[0], "MULTI");
        assert!(ops[1].starts_with("SREM s "));
        assert!(ops[2].starts_with("SREM s "));
        assert_eq!(ops[3], "EXEC");
        assert_eq!(h.ops(&["spop", "s", "5"]), vec!["DEL s"]);
        assert!(h.store.dbs[0].is_empty());
        assert!(h.ops(&["spop", "s"]).is_empty());
        assert!(h.ops(&["spop", "s", "3"]).is_empty());
    }

    #[test]
    fn single_spop_with_count_is_one_srem() {
        let mut h = H::new();
        h.ops(&["sadd", "s", "a", "b"]);
        let ops = h.ops(&["spop", "s", "1"]);
        assert_eq!(ops.len(), 1);
        assert!(ops[0] == "SREM s a" || ops[0] == "SREM s b", "{ops:?}");
    }
}

#[cfg(test)]
mod store_tests {
    use crate::commands::lists::harness::H;

    #[test]
    fn store_ops_propagate_unless_nothing_changed() {
        let mut h = H::new();
        h.ops(&["sadd", "a", "1", "2"]);
        assert_eq!(
            h.ops(&["sinterstore", "d", "a", "a"]),
            vec!["sinterstore d a a"]
        );
        // Intersection with a missing key and no destination to delete: no change.
        assert!(h.ops(&["sinterstore", "x", "a", "missing"]).is_empty());
        assert_eq!(
            h.ops(&["sinterstore", "d", "a", "missing"]),
            vec!["sinterstore d a missing"]
        );
        assert!(!h.store.dbs[0].contains(b"d"));
        assert_eq!(
            h.ops(&["sdiffstore", "e", "a", "a"]),
            vec!["sdiffstore e a a"]
        );
    }
}
