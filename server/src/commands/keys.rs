//! Command family: the generic keyspace (DEL, EXISTS, the EXPIRE family, TTL, TYPE,
//! RENAME, KEYS, SCAN, RANDOMKEY, DBSIZE, FLUSHDB/FLUSHALL, SWAPDB, MOVE, COPY,
//! OBJECT, TOUCH).
//!
//! Relative expiries are propagated as `PEXPIREAT k <abs-ms>`, and an expiry already
//! in the past deletes the key on a master and is propagated as `DEL`/`UNLINK`
//! (REPLICATION.md 3.4, 3.5).

use super::{arg_i64, err, flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::notify::{GENERIC, KEY_MISS};
use crate::resp::Reply;
use crate::server::{Stats, Store};
use crate::types::Value;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("del", -2, WRITE, del).keys(1, -1, 1),
    Command::new("unlink", -2, WRITE | FAST, del).keys(1, -1, 1),
    Command::new("exists", -2, READONLY | FAST, exists).keys(1, -1, 1),
    Command::new("touch", -2, READONLY | FAST, touch).keys(1, -1, 1),
    Command::new("expire", -3, WRITE | FAST, expire).keys(1, 1, 1),
    Command::new("pexpire", -3, WRITE | FAST, pexpire).keys(1, 1, 1),
    Command::new("expireat", -3, WRITE | FAST, expireat).keys(1, 1, 1),
    Command::new("pexpireat", -3, WRITE | FAST, pexpireat).keys(1, 1, 1),
    Command::new("ttl", 2, READONLY | FAST, ttl).keys(1, 1, 1),
    Command::new("pttl", 2, READONLY | FAST, pttl).keys(1, 1, 1),
    Command::new("expiretime", 2, READONLY | FAST, expiretime).keys(1, 1, 1),
    Command::new("pexpiretime", 2, READONLY | FAST, pexpiretime).keys(1, 1, 1),
    Command::new("persist", 2, WRITE | FAST, persist).keys(1, 1, 1),
    Command::new("type", 2, READONLY | FAST, type_cmd).keys(1, 1, 1),
    Command::new("rename", 3, WRITE, rename).keys(1, 2, 1),
    Command::new("renamenx", 3, WRITE | FAST, renamenx).keys(1, 2, 1),
    Command::new("keys", 2, READONLY, keys),
    Command::new("scan", -2, READONLY | TOUCHES_ARBITRARY_KEYS, scan),
    Command::new("randomkey", 1, READONLY | TOUCHES_ARBITRARY_KEYS, randomkey),
    Command::new("dbsize", 1, READONLY | FAST, dbsize),
    Command::new("flushdb", -1, WRITE, flushdb),
    Command::new("flushall", -1, WRITE, flushall),
    Command::new("swapdb", 3, WRITE | FAST, swapdb),
    Command::new("move", 3, WRITE | FAST, move_cmd).keys(1, 1, 1),
    Command::new("copy", -3, WRITE | DENYOOM, copy).keys(1, 2, 1),
    Command::new("object", -2, READONLY, object).keys(2, 2, 1),
    Command::new("memory", -2, 0, memory),
];

/// A read lookup that does not refresh the key's access time (Redis
/// `LOOKUP_NOTOUCH`: EXISTS, TYPE, TTL), still counting hits and misses and raising
/// `keymiss`.
fn exists_notouch(ctx: &mut Ctx, key: &[u8]) -> bool {
    let found = exists_notouch_nonotify(ctx, key);
    if !found {
        ctx.notify(KEY_MISS, "keymiss", key);
    }
    found
}

/// `exists_notouch` without the `keymiss` event (Redis `LOOKUP_NONOTIFY`: OBJECT).
fn exists_notouch_nonotify(ctx: &mut Ctx, key: &[u8]) -> bool {
    let found = ctx.exists(key);
    let stats = &ctx.server.stats;
    Stats::incr(
        if found {
            &stats.keyspace_hits
        } else {
            &stats.keyspace_misses
        },
        1,
    );
    found
}

fn del(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for k in &argv[1..] {
        if ctx.delete(k) {
            ctx.notify(GENERIC, "del", k);
            n += 1;
        }
    }
    ctx.dirty(n);
    out.int(n as i64);
    Ok(())
}

fn exists(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = argv[1..].iter().filter(|k| exists_notouch(ctx, k)).count();
    out.int(n as i64);
    Ok(())
}

fn touch(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = argv[1..].iter().filter(|k| ctx.get(k).is_some()).count();
    out.int(n as i64);
    Ok(())
}

fn invalid_expire(cmd: &str) -> CmdError {
    CmdError::msg(format!("ERR invalid expire time in '{cmd}' command"))
}

/// Redis `expireGenericCommand`: `base_ms` is now for relative forms, 0 for the
/// absolute ones.
fn expire_generic(
    ctx: &mut Ctx,
    out: &mut Reply,
    argv: &[Bytes],
    cmd: &str,
    base_ms: i64,
    seconds: bool,
) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &argv[3..] {
        if is_kw(a, "nx") {
            nx = true;
        } else if is_kw(a, "xx") {
            xx = true;
        } else if is_kw(a, "gt") {
            gt = true;
        } else if is_kw(a, "lt") {
            lt = true;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::msg(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::msg(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let mut when = arg_i64(&argv[2])?;
    if seconds {
        when = when.checked_mul(1000).ok_or_else(|| invalid_expire(cmd))?;
    }
    let when = when
        .checked_add(base_ms)
        .ok_or_else(|| invalid_expire(cmd))?;
    let key = &argv[1];
    if !ctx.exists(key) {
        out.int(0);
        return Ok(());
    }
    let current = ctx.db_ref().expire_of(key);
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| when <= c))
        || (lt && current.is_some_and(|c| when >= c));
    if refused {
        out.int(0);
        return Ok(());
    }
    let db = ctx.client.db;
    if when <= ctx.now_ms && !ctx.store.is_replica && !ctx.client.is_master {
        ctx.store.dbs[db].remove(key);
        let lazy = ctx.config().lazyfree_lazy_expire;
        let del: &'static [u8] = if lazy { b"UNLINK" } else { b"DEL" };
        ctx.rewrite = Some(vec![Bytes::from_static(del), key.clone()]);
        ctx.notify(GENERIC, "del", key);
    } else {
        ctx.store.dbs[db].set_expire(key, when);
        let mut v = argv.to_vec();
        v[0] = Bytes::from_static(b"PEXPIREAT");
        v[2] = Bytes::copy_from_slice(itoa::Buffer::new().format(when).as_bytes());
        ctx.rewrite = Some(v);
        ctx.notify(GENERIC, "expire", key);
    }
    ctx.dirty(1);
    out.int(1);
    Ok(())
}

fn expire(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now_ms;
    expire_generic(ctx, out, argv, "expire", now, true)
}

fn pexpire(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now_ms;
    expire_generic(ctx, out, argv, "pexpire", now, false)
}

fn expireat(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, out, argv, "expireat", 0, true)
}

fn pexpireat(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, out, argv, "pexpireat", 0, false)
}

/// TTL family: -2 missing, -1 no expiry; `ms` selects the unit, `abs` the
/// absolute form (EXPIRETIME).
fn ttl_generic(ctx: &mut Ctx, out: &mut Reply, key: &[u8], ms: bool, abs: bool) -> CmdResult {
    if !exists_notouch(ctx, key) {
        out.int(-2);
        return Ok(());
    }
    match ctx.db_ref().expire_of(key) {
        None => out.int(-1),
        Some(at) => {
            let t = if abs {
                at
            } else {
                at.saturating_sub(ctx.now_ms)
            }
            .max(0);
            // Rounded to the nearest second; widened so i64::MAX does not overflow.
            out.int(if ms {
                t
            } else {
                ((t as i128 + 500) / 1000) as i64
            });
        }
    }
    Ok(())
}

fn ttl(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, out, &argv[1], false, false)
}

fn pttl(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, out, &argv[1], true, false)
}

fn expiretime(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, out, &argv[1], false, true)
}

fn pexpiretime(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, out, &argv[1], true, true)
}

fn persist(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if ctx.exists(&argv[1]) && ctx.db().persist(&argv[1]) {
        ctx.dirty(1);
        ctx.notify(GENERIC, "persist", &argv[1]);
        out.int(1);
    } else {
        out.int(0);
    }
    Ok(())
}

fn type_cmd(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let name = if exists_notouch(ctx, &argv[1]) {
        ctx.db_ref()
            .entry(&argv[1])
            .map_or("none", |e| e.value.type_name())
    } else {
        "none"
    };
    out.simple(name);
    Ok(())
}

fn rename_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], nx: bool) -> CmdResult {
    let (src, dst) = (&argv[1], &argv[2]);
    if !ctx.exists(src) {
        return Err(err::NO_SUCH_KEY);
    }
    if src == dst {
        if nx {
            out.int(0);
        } else {
            out.ok();
        }
        return Ok(());
    }
    if ctx.exists(dst) {
        if nx {
            out.int(0);
            return Ok(());
        }
        ctx.db().remove(dst);
    }
    let db = ctx.client.db;
    let expire = ctx.store.dbs[db].expire_of(src);
    if let Some(e) = ctx.store.dbs[db].remove(src) {
        ctx.store.dbs[db].set_with_expire(dst.clone(), e.value, expire, e.meta.lru());
        carry_encoding_marks(&mut ctx.store.dbs[db], dst, e.meta);
    }
    ctx.dirty(1);
    ctx.notify(GENERIC, "rename_from", src);
    ctx.notify(GENERIC, "rename_to", dst);
    if nx {
        out.int(1);
    } else {
        out.ok();
    }
    Ok(())
}

fn rename(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    rename_generic(ctx, out, argv, false)
}

fn renamenx(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    rename_generic(ctx, out, argv, true)
}

fn keys(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let pat = &argv[1];
    let all = &pat[..] == b"*";
    let now = ctx.expiry_now_ms;
    let hide_expired = !ctx.client.is_master;
    let db = ctx.db_ref();
    let found: Vec<Bytes> = db
        .iter()
        .filter(|(k, e)| {
            !(hide_expired && e.meta.has_expire() && db.expire_of(k).is_some_and(|at| at <= now))
                && (all || crate::util::glob_match(pat, k, false))
        })
        .map(|(k, _)| k.to_bytes())
        .collect();
    out.array(found.len());
    for k in &found {
        out.bulk(k);
    }
    Ok(())
}

fn scan(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&argv[1]).ok_or_else(|| CmdError::msg("ERR invalid cursor"))?;
    let mut count: i64 = 10;
    let mut pattern: Option<Bytes> = None;
    let mut type_name: Option<Bytes> = None;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - i >= 2;
        if is_kw(&argv[i], "count") && more {
            count = arg_i64(&argv[i + 1])?;
            if count < 1 {
                return Err(err::SYNTAX);
            }
        } else if is_kw(&argv[i], "match") && more {
            let p = argv[i + 1].clone();
            pattern = if &p[..] == b"*" { None } else { Some(p) };
        } else if is_kw(&argv[i], "type") && more {
            type_name = Some(argv[i + 1].clone());
        } else {
            return Err(err::SYNTAX);
        }
        i += 2;
    }
    let (next, candidates) = ctx.db_ref().scan(cursor, count as usize);
    let mut keys = Vec::with_capacity(candidates.len());
    for k in candidates {
        if pattern
            .as_ref()
            .is_some_and(|p| !crate::util::glob_match(p, &k, false))
        {
            continue;
        }
        // Redis deletes expired keys it meets while scanning (on a master).
        if ctx.expire_if_needed(&k) {
            continue;
        }
        if let Some(t) = &type_name {
            let ty = ctx
                .db_ref()
                .entry(&k)
                .map_or("none", |e| e.value.type_name());
            if !t.eq_ignore_ascii_case(ty.as_bytes()) {
                continue;
            }
        }
        keys.push(k);
    }
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(keys.len());
    for k in &keys {
        out.bulk(k);
    }
    Ok(())
}

/// A SCAN cursor as C's `strtoul` reads it (Redis `parseScanCursorOrReply`): an
/// optional sign, decimal digits, no surrounding spaces; `-1` wraps to 2^64-1 and the
/// empty string is 0. SCAN, HSCAN, SSCAN and ZSCAN all read their cursor here.
pub fn parse_cursor(a: &[u8]) -> Option<u64> {
    if a.is_empty() {
        return Some(0);
    }
    let (neg, digits) = match a[0] {
        b'-' => (true, &a[1..]),
        b'+' => (false, &a[1..]),
        _ => (false, a),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

fn randomkey(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    // Like Redis: expired picks are deleted on a master and retried; on a replica
    // or during a CLIENT PAUSE (where they cannot be deleted) give up after a
    // bounded number of tries.
    for tries in 0.. {
        let Some(k) = ctx.db_ref().random_key().cloned() else {
            out.null();
            return Ok(());
        };
        if ctx
            .db_ref()
            .expire_of(&k)
            .is_some_and(|at| at <= ctx.expiry_now_ms)
            && !ctx.client.is_master
        {
            if ctx.store.is_replica || ctx.store.repl.fenced || ctx.server.client_pause.is_paused()
            {
                if tries < 100 {
                    continue;
                }
            } else {
                let db = ctx.client.db;
                ctx.delete_expired(db, &k);
                continue;
            }
        }
        out.bulk(&k);
        return Ok(());
    }
    out.null();
    Ok(())
}

fn dbsize(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    out.int(ctx.db_ref().len() as i64);
    Ok(())
}

/// Before `db` is emptied or replaced by `replaced_with`: like Redis, a WATCHed key
/// there counts as modified only if it exists now, or will exist after a SWAPDB. A
/// watch on a missing key survives a flush (EXEC then runs).
fn touch_watched_existing(
    store: &mut crate::server::Store,
    db: usize,
    replaced_with: Option<usize>,
) {
    let exists = |store: &crate::server::Store, d: usize, k: &Bytes| {
        store.dbs.get(d).is_some_and(|x| x.contains(k))
    };
    for ((d, key), list) in store.watched.iter() {
        if *d != db {
            continue;
        }
        if exists(store, db, key) || replaced_with.is_some_and(|o| exists(store, o, key)) {
            for (_, flag) in list {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
}

/// After a flush of `db`: the keys clients block on are looked at again. A key that is
/// gone serves no list or zset waiter, but a blocked XREADGROUP gets its error (Redis's
/// `scanDatabaseForDeletedStreams`).
fn signal_flushed_blocked_keys(store: &mut crate::server::Store, db: usize) {
    let waiting: Vec<(usize, Bytes)> = store
        .blocking_keys
        .keys()
        .filter(|k| k.0 == db && !store.ready_keys.contains(k))
        .cloned()
        .collect();
    store.ready_keys.extend(waiting);
}

/// FLUSHDB/FLUSHALL take at most one argument, ASYNC or SYNC.
fn flush_mode(argv: &[Bytes]) -> CmdResult {
    match argv.len() {
        1 => Ok(()),
        2 if is_kw(&argv[1], "async") || is_kw(&argv[1], "sync") => Ok(()),
        _ => Err(err::SYNTAX),
    }
}

fn flushdb(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    flush_mode(argv)?;
    let db = ctx.client.db;
    let n = ctx.store.dbs[db].len() as u64;
    touch_watched_existing(ctx.store, db, None);
    ctx.store.tracking_flush();
    ctx.store.dbs[db].clear();
    signal_flushed_blocked_keys(ctx.store, db);
    // Always propagated, like Redis's forced propagation of FLUSHDB.
    ctx.dirty(n.max(1));
    out.ok();
    Ok(())
}

fn flushall(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    flush_mode(argv)?;
    let mut n = 0;
    for db in 0..ctx.store.dbs.len() {
        touch_watched_existing(ctx.store, db, None);
    }
    ctx.store.tracking_flush();
    for db in ctx.store.dbs.iter_mut() {
        n += db.len() as u64;
        db.clear();
    }
    for db in 0..ctx.store.dbs.len() {
        signal_flushed_blocked_keys(ctx.store, db);
    }
    ctx.dirty(n + 1);
    crate::persist::after_flushall(ctx.server, ctx.store);
    // Propagated whatever that save did to the change counter (it resets it, as
    // Redis's does; Redis forces FLUSHALL's propagation).
    ctx.also.push((ctx.client.db, argv.to_vec()));
    ctx.no_propagate = true;
    out.ok();
    Ok(())
}

/// A DB index argument of MOVE/COPY: not an integer -> NOT_INT, out of range ->
/// `ERR DB index is out of range`.
fn db_index(ctx: &Ctx, a: &[u8]) -> Result<usize, CmdError> {
    let n = arg_i64(a)?;
    if n < i32::MIN as i64 || n > i32::MAX as i64 {
        return Err(CmdError::msg(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    if n < 0 || n as usize >= ctx.store.dbs.len() {
        return Err(err::DB_INDEX);
    }
    Ok(n as usize)
}

fn swapdb(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let parse = |a: &[u8], what: &'static str| {
        crate::resp::parse_i64(a)
            .filter(|n| *n >= i32::MIN as i64 && *n <= i32::MAX as i64)
            .ok_or_else(|| CmdError::msg(what))
    };
    let a = parse(&argv[1], "ERR invalid first DB index")?;
    let b = parse(&argv[2], "ERR invalid second DB index")?;
    let n = ctx.store.dbs.len() as i64;
    if a < 0 || b < 0 || a >= n || b >= n {
        return Err(err::DB_INDEX);
    }
    let (a, b) = (a as usize, b as usize);
    if a != b {
        expire_watched_keys_swapped_in(ctx, a, b);
        touch_watched_existing(ctx.store, a, Some(b));
        touch_watched_existing(ctx.store, b, Some(a));
        ctx.store.dbs.swap(a, b);
        // Clients blocked on keys that now exist in the swapped dbs can be served.
        let ready: Vec<(usize, Bytes)> = ctx
            .store
            .blocking_keys
            .keys()
            .filter(|(d, k)| (*d == a || *d == b) && ctx.store.dbs[*d].contains(k))
            .cloned()
            .collect();
        for r in ready {
            if !ctx.store.ready_keys.contains(&r) {
                ctx.store.ready_keys.push(r);
            }
        }
    }
    ctx.dirty(1);
    out.ok();
    Ok(())
}

/// Before SWAPDB `a` `b`: a WATCHed key of one db whose namesake in the other is past
/// its TTL sees that key expired now, as a lookup would, so that a missing key
/// replaced with one past its TTL is no change (Redis 7.0 too lets such an EXEC run:
/// logically there is still no key). WATCH itself deleted the watched db's own key if
/// it was past its TTL. On a replica, which cannot expire keys, the swap counts as
/// a change.
fn expire_watched_keys_swapped_in(ctx: &mut Ctx, a: usize, b: usize) {
    if ctx.store.watched.is_empty() {
        return;
    }
    let now = ctx.now_ms;
    let stale: Vec<(usize, Bytes)> = ctx
        .store
        .watched
        .keys()
        .filter_map(|(d, key)| {
            let other = match *d {
                d if d == a => b,
                d if d == b => a,
                _ => return None,
            };
            let past = ctx.store.dbs[other]
                .expire_of(key)
                .is_some_and(|at| at <= now);
            past.then(|| (other, key.clone()))
        })
        .collect();
    for (db, key) in stale {
        let saved = std::mem::replace(&mut ctx.client.db, db);
        ctx.expire_if_needed(&key);
        ctx.client.db = saved;
    }
}

/// Whether a live key exists in another db (expiring it there if needed).
fn exists_in(ctx: &mut Ctx, db: usize, key: &[u8]) -> bool {
    let saved = ctx.client.db;
    ctx.client.db = db;
    let e = ctx.exists(key);
    ctx.client.db = saved;
    e
}

fn same_object() -> CmdError {
    CmdError::msg("ERR source and destination objects are the same")
}

fn move_cmd(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let dst = db_index(ctx, &argv[2])?;
    let src = ctx.client.db;
    if src == dst {
        return Err(same_object());
    }
    let key = &argv[1];
    if !ctx.exists(key) || exists_in(ctx, dst, key) {
        out.int(0);
        return Ok(());
    }
    let expire = ctx.store.dbs[src].expire_of(key);
    if let Some(e) = ctx.store.dbs[src].remove(key) {
        ctx.store.dbs[dst].set_with_expire(key.clone(), e.value, expire, e.meta.lru());
        carry_encoding_marks(&mut ctx.store.dbs[dst], key, e.meta);
    }
    ctx.store.touch_key(dst, key);
    ctx.dirty(1);
    ctx.store.notify(GENERIC, "move_from", key, src);
    ctx.store.notify(GENERIC, "move_to", key, dst);
    out.int(1);
    Ok(())
}

fn copy(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let src_db = ctx.client.db;
    let mut dst_db = src_db;
    let mut replace = false;
    let mut j = 3;
    while j < argv.len() {
        if is_kw(&argv[j], "replace") {
            replace = true;
        } else if is_kw(&argv[j], "db") && j + 1 < argv.len() {
            dst_db = db_index(ctx, &argv[j + 1])?;
            j += 1;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    let (key, newkey) = (&argv[1], &argv[2]);
    if src_db == dst_db && key == newkey {
        return Err(same_object());
    }
    if ctx.get(key).is_none() {
        out.int(0);
        return Ok(());
    }
    if exists_in(ctx, dst_db, newkey) {
        if !replace {
            out.int(0);
            return Ok(());
        }
        ctx.store.dbs[dst_db].remove(newkey);
    }
    let Some(e) = ctx.store.dbs[src_db]
        .entry(key)
        .map(crate::db::EntryRef::to_entry)
    else {
        out.int(0);
        return Ok(());
    };
    let lru = ctx.lru;
    let expire = ctx.store.dbs[src_db].expire_of(key);
    let is_str = matches!(e.value, Value::Str(_));
    ctx.store.dbs[dst_db].set_with_expire(newkey.clone(), e.value, expire, lru);
    carry_encoding_marks(&mut ctx.store.dbs[dst_db], newkey, e.meta);
    // A duplicated string is an object of its own in Redis, never a shared integer.
    if is_str && !e.meta.promoted() && !e.meta.verbatim() {
        if let Some(copy) = ctx.store.dbs[dst_db].entry_mut(newkey) {
            copy.meta.set_promoted(true);
            copy.meta.set_verbatim(true);
        }
    }
    ctx.store.touch_key(dst_db, newkey);
    ctx.dirty(1);
    ctx.store.notify(GENERIC, "copy_to", newkey, dst_db);
    out.int(1);
    Ok(())
}

/// RENAME and MOVE keep the value object and COPY duplicates a string in its encoding,
/// so a string's encoding marks (`raw` after an edit in place, never `int` for an
/// INCRBYFLOAT result) follow it to its new name or db.
fn carry_encoding_marks(db: &mut crate::db::Db, key: &[u8], was: crate::db::Meta) {
    if was.promoted() || was.verbatim() {
        if let Some(e) = db.entry_mut(key) {
            e.meta.set_promoted(was.promoted());
            e.meta.set_verbatim(was.verbatim());
        }
    }
}

/// Marks a string a write left as Redis's `raw` encoding (edited in place), or re-encoded.
/// Run on each key a write touched. Hashes, sets and sorted sets need nothing here: their
/// shape is their encoding (types/hash.rs, set.rs, zset.rs convert as Redis does).
pub fn note_encoding(store: &mut Store, (db, key): (usize, &[u8]), cmd: &str, argv: &[Bytes]) {
    const EDITS: &[&str] = &["setrange", "setbit", "bitfield", "bitop"];
    // Other writes store a new value, which starts unmarked, or (the INCR family) clear
    // the mark themselves, or (APPEND) set it themselves: no lookup for them. The first
    // letter rules out most writes without a string compare (this runs on every write).
    if !matches!(cmd.as_bytes().first(), Some(b's' | b'b')) || !EDITS.contains(&cmd) {
        return;
    }
    let Some(e) = store.dbs.get_mut(db).and_then(|d| d.entry_mut(key)) else {
        return;
    };
    if let Value::Str(_) = &e.value {
        // Redis edits these in place as `raw` strings; commands that store a new value
        // re-encode it.
        match cmd {
            "setrange" | "setbit" | "bitfield" => e.meta.mark_raw(),
            // Only the destination is written; the sources keep their encoding.
            "bitop" if argv.get(2).is_some_and(|d| d[..] == *key) => e.meta.mark_raw(),
            _ => {}
        }
    }
}

/// OBJECT ENCODING of a stored entry: `encoding_of` its value, `raw` for a string edited
/// in place, never `int` for a string stored verbatim.
fn entry_encoding(e: crate::db::EntryRef<'_>) -> &'static str {
    match &e.value {
        Value::Str(_) if e.meta.promoted() && !e.meta.verbatim() => "raw",
        Value::Str(s) if e.meta.verbatim() && !e.meta.promoted() => {
            if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        v => encoding_of(v),
    }
}

pub fn encoding_of(v: &Value) -> &'static str {
    match v {
        Value::Str(s) => {
            if s.len() <= 20 && crate::types::is_canonical_int(s) {
                "int"
            } else if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        // Redis 7.0 stores every list as a quicklist (listpack lists came in 7.2).
        Value::List(_) => "quicklist",
        // The representations follow Redis's conversions (types/hash.rs, types/set.rs,
        // types/zset.rs).
        Value::Hash(h) => h.encoding(),
        Value::Set(s) => s.encoding(),
        Value::ZSet(z) => z.encoding(),
        Value::Stream(_) => "stream",
    }
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the internal representation used to store the value of <key>.",
    "FREQ <key>",
    "    Return the logarithmic access frequency counter of <key>.",
    "IDLETIME <key>",
    "    Return the approximate number of seconds since <key> was last accessed.",
    "REFCOUNT <key>",
    "    Return the number of references to the value of <key>.",
    "HELP",
    "    Print this help.",
];

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "USAGE <key> [SAMPLES <count>]",
    "    Estimated bytes held by <key> and its value (SAMPLES is accepted; every",
    "    element is counted).",
    "STATS",
    "    Memory figures of the server: allocated bytes, replication backlog, keys.",
    "DOCTOR",
    "    A short report on memory use.",
    "MALLOC-STATS",
    "    Allocator statistics (not available for Tandem's allocator).",
    "PURGE",
    "    Ask the allocator to release memory (nothing to do for Tandem's allocator).",
    "HELP",
    "    Print this help.",
];

/// An estimate of the heap bytes a key and its value hold (MEMORY USAGE): the key and
/// the per-key bookkeeping, then the value's elements (streams: their listpack nodes
/// by capacity, the index and the groups).
pub fn memory_usage(key: &[u8], v: &Value) -> usize {
    // Key string + dict entry + value object header, as Redis counts them.
    const PER_KEY: usize = 24 + 16;
    let value = match v {
        Value::Str(s) => s.len() + 16,
        Value::List(l) => l.heap_bytes(),
        Value::Set(s) => s.heap_size(),
        Value::Hash(h) => h.footprint(),
        Value::ZSet(z) => z.heap_bytes(),
        Value::Stream(st) => 64 + st.approx_size(),
    };
    key.len() + 9 + PER_KEY + value
}

/// MEMORY USAGE and MEMORY HELP (the allocator-level subcommands are not offered).
fn memory(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
    match sub.as_str() {
        "help" if argv.len() == 2 => {
            out.array(MEMORY_HELP.len());
            for l in MEMORY_HELP {
                out.simple(l);
            }
            Ok(())
        }
        "usage" if argv.len() >= 3 => {
            let mut j = 3;
            while j < argv.len() {
                if is_kw(&argv[j], "samples") && j + 1 < argv.len() {
                    if crate::resp::parse_i64(&argv[j + 1]).ok_or(err::NOT_INT)? < 0 {
                        return Err(err::SYNTAX);
                    }
                    j += 2;
                } else {
                    return Err(err::SYNTAX);
                }
            }
            let key = &argv[2];
            match ctx.db_ref().entry(key) {
                Some(e) => out.int(memory_usage(key, e.value) as i64),
                None => out.null(),
            }
            Ok(())
        }
        "purge" if argv.len() == 2 => {
            out.ok();
            Ok(())
        }
        "malloc-stats" if argv.len() == 2 => {
            // What Redis answers when built without jemalloc.
            out.bulk(b"Stats not supported for the current allocator");
            Ok(())
        }
        "doctor" if argv.len() == 2 => {
            let used = crate::evict::used_memory();
            let max = ctx.store.hot.maxmemory;
            let text = if max > 0 && used as u128 * 10 >= max as u128 * 9 {
                format!("used memory {used} bytes is at or above 90% of maxmemory ({max} bytes): expect evictions or OOM errors for writes.\n")
            } else {
                format!("used memory {used} bytes; no memory problem detected.\n")
            };
            out.verbatim(&text);
            Ok(())
        }
        "stats" if argv.len() == 2 => {
            memory_stats(ctx, out);
            Ok(())
        }
        "help" | "usage" | "purge" | "malloc-stats" | "doctor" | "stats" => Err(CmdError::msg(
            format!("ERR wrong number of arguments for 'memory|{sub}' command"),
        )),
        _ => Err(super::connection::unknown_subcommand(&argv[1], "MEMORY")),
    }
}

/// MEMORY STATS: the figures Tandem measures, under Redis's names (the allocator
/// internals Redis adds from jemalloc are not known here and are left out).
fn memory_stats(ctx: &mut Ctx, out: &mut Reply) {
    let used = crate::evict::used_memory();
    let backlog = ctx.store.repl.backlog.as_ref().map_or(0, |b| b.memory()) as u64;
    let keys: usize = ctx.store.dbs.iter().map(|d| d.len()).sum();
    let dataset = used.saturating_sub(backlog);
    let dbs: Vec<(usize, usize)> = ctx
        .store
        .dbs
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.is_empty())
        .map(|(i, d)| (i, d.len()))
        .collect();
    out.map(5 + dbs.len());
    out.bulk(b"total.allocated");
    out.int(used as i64);
    out.bulk(b"replication.backlog");
    out.int(backlog as i64);
    out.bulk(b"keys.count");
    out.int(keys as i64);
    out.bulk(b"keys.bytes-per-key");
    out.int(if keys == 0 {
        0
    } else {
        (dataset / keys as u64) as i64
    });
    out.bulk(b"dataset.bytes");
    out.int(dataset as i64);
    for (i, n) in dbs {
        out.bulk(format!("db.{i}").as_bytes());
        out.map(1);
        out.bulk(b"keys");
        out.int(n as i64);
    }
}

fn object(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
    let known = ["encoding", "freq", "idletime", "refcount", "help"];
    if !known.contains(&sub.as_str()) {
        return Err(super::connection::unknown_subcommand(&argv[1], "OBJECT"));
    }
    let want = if sub == "help" { 2 } else { 3 };
    if argv.len() != want {
        return Err(CmdError::msg(format!(
            "ERR wrong number of arguments for 'object|{sub}' command"
        )));
    }
    if sub == "help" {
        out.array(OBJECT_HELP.len());
        for l in OBJECT_HELP {
            out.simple(l);
        }
        return Ok(());
    }
    let key = &argv[2];
    let policy = ctx.config().maxmemory_policy.clone();
    let lfu = policy.contains("lfu");
    const ADJUST: &str = "Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
    if sub == "freq" && !lfu {
        // Checked after the key lookup in Redis: a missing key answers null first.
        if !ctx.exists(key) {
            out.null();
            return Ok(());
        }
        return Err(CmdError::msg(format!(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. {ADJUST}"
        )));
    }
    if sub == "idletime" && lfu {
        if !ctx.exists(key) {
            out.null();
            return Ok(());
        }
        return Err(CmdError::msg(format!(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. {ADJUST}"
        )));
    }
    if !exists_notouch_nonotify(ctx, key) {
        out.null();
        return Ok(());
    }
    let now_lru = ctx.lru;
    let cfg = ctx.config().clone();
    let Some(e) = ctx.db_ref().entry(key) else {
        out.null();
        return Ok(());
    };
    match sub.as_str() {
        "encoding" => out.bulk_str(entry_encoding(e)),
        "idletime" => out.int(now_lru.saturating_sub(e.meta.lru()) as i64),
        // The decayed counter, without counting this look as an access.
        "freq" => out.int(ctx.store.hot.lfu.map_or(crate::evict::LFU_INIT_VAL, |l| {
            l.counter(e.meta.lru(), ctx.now_ms)
        }) as i64),
        _ => {
            // Small integers are shared objects in Redis unless an LRU/LFU policy
            // needs per-object access data.
            // Strings edited in place, stored verbatim or duplicated by COPY are
            // objects of their own there.
            let own = e.meta.promoted() || e.meta.verbatim();
            let shared = matches!(&e.value, Value::Str(s) if crate::resp::parse_i64(s).is_some_and(|n| (0..10000).contains(&n)))
                && !own
                && (cfg.maxmemory == 0 || !(policy.contains("lru") || lfu));
            out.int(if shared { i32::MAX as i64 } else { 1 });
        }
    }
    Ok(())
}

/// Runs commands against an in-process server to inspect replies and what they
/// propagate (used by this family's and the strings family's unit tests).
#[cfg(test)]
pub(crate) mod test_util {
    use crate::commands::{lookup, ClientState};
    use crate::config::Config;
    use crate::resp::Reply;
    use crate::server::Server;
    use bytes::Bytes;
    use std::sync::Arc;

    pub struct Harness {
        pub server: Arc<Server>,
        pub client: ClientState,
    }

    impl Harness {
        pub fn new() -> Self {
            let mut client = ClientState::new(1);
            client.authenticated = true;
            Harness {
                server: Server::new(Config::default()),
                client,
            }
        }

        /// Runs one top-level command: its RESP2 reply and the argvs it propagated.
        pub fn run(&mut self, args: &[&str]) -> (String, Vec<Vec<String>>) {
            let argv: Vec<Bytes> = args
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            let cmd = lookup(&argv[0]).expect("known command");
            let mut store = self.server.store.lock();
            let before = store.propagated.len();
            let mut out = Reply::new(false);
            crate::exec::call(
                &self.server,
                &mut store,
                &mut self.client,
                cmd,
                &argv,
                &mut out,
                true,
            );
            crate::exec::finish_propagation(&mut store, before);
            let ops = store
                .propagated
                .drain(..)
                .map(|(_, a)| {
                    a.iter()
                        .map(|x| String::from_utf8_lossy(x).into_owned())
                        .collect()
                })
                .collect();
            (String::from_utf8_lossy(&out.buf).into_owned(), ops)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::Harness;

    #[test]
    fn scan_cursors_parse_like_strtoul() {
        assert_eq!(super::parse_cursor(b"0"), Some(0));
        assert_eq!(super::parse_cursor(b""), Some(0));
        assert_eq!(super::parse_cursor(b"+7"), Some(7));
        assert_eq!(super::parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(super::parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b"18446744073709551616"[..],
            b" 1",
            b"1 ",
            b"abc",
            b"-",
            b"1x",
        ] {
            assert_eq!(super::parse_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn expire_family_propagates_absolute_pexpireat_with_flags() {
        let mut h = Harness::new();
        h.run(&["set", "k", "v"]);
        let (r, ops) = h.run(&["expire", "k", "100", "NX"]);
        assert_eq!(r, ":1\r\n");
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0][0], "PEXPIREAT");
        assert_eq!(ops[0][3], "NX");
        let at: i64 = ops[0][2].parse().unwrap();
        assert!((at - crate::server::now_ms() - 100_000).abs() < 5000);
        let (_, ops) = h.run(&["pexpireat", "k", "99999999999999", "gt"]);
        assert_eq!(ops, vec![vec!["PEXPIREAT", "k", "99999999999999", "gt"]]);
        let (r, ops) = h.run(&["expire", "k", "5", "gt"]);
        assert_eq!(r, ":0\r\n");
        assert!(ops.is_empty());
    }

    #[test]
    fn expire_in_the_past_deletes_and_propagates_del() {
        let mut h = Harness::new();
        h.run(&["set", "k", "v"]);
        let (r, ops) = h.run(&["expire", "k", "-1"]);
        assert_eq!(r, ":1\r\n");
        assert_eq!(ops, vec![vec!["DEL", "k"]]);
        let (r, _) = h.run(&["exists", "k"]);
        assert_eq!(r, ":0\r\n");
        h.server.config.write().lazyfree_lazy_expire = true;
        h.run(&["set", "k", "v"]);
        let (_, ops) = h.run(&["expireat", "k", "1"]);
        assert_eq!(ops, vec![vec!["UNLINK", "k"]]);
    }

    #[test]
    fn writes_over_a_logically_expired_key_propagate_del_first_in_multi() {
        let mut h = Harness::new();
        h.run(&["set", "k", "v"]);
        {
            let mut store = h.server.store.lock();
            store.dbs[0].set_expire(b"k", 1);
        }
        let (_, ops) = h.run(&["set", "k", "w"]);
        assert_eq!(
            ops,
            vec![
                vec!["MULTI"],
                vec!["DEL", "k"],
                vec!["set", "k", "w"],
                vec!["EXEC"]
            ]
        );
    }

    #[test]
    fn on_a_replica_the_masters_past_expire_sets_a_ttl_instead_of_deleting() {
        let mut h = Harness::new();
        h.run(&["set", "k", "v"]);
        h.server.store.lock().is_replica = true;
        h.client.is_master = true;
        let (r, ops) = h.run(&["pexpireat", "k", "1"]);
        assert_eq!(r, ":1\r\n");
        assert_eq!(ops, vec![vec!["PEXPIREAT", "k", "1"]]);
        assert_eq!(h.server.store.lock().dbs[0].expire_of(b"k"), Some(1));
        // The master's stream still sees the key; normal clients do not.
        let (r, _) = h.run(&["exists", "k"]);
        assert_eq!(r, ":1\r\n");
        h.client.is_master = false;
        let (r, _) = h.run(&["exists", "k"]);
        assert_eq!(r, ":0\r\n");
        assert!(
            h.server.store.lock().dbs[0].contains(b"k"),
            "replicas never delete"
        );
    }

    #[test]
    fn multi_key_and_cross_db_commands_propagate_verbatim() {
        let mut h = Harness::new();
        h.run(&["mset", "a", "1", "b", "2"]);
        let (_, ops) = h.run(&["del", "a", "zz"]);
        assert_eq!(ops, vec![vec!["del", "a", "zz"]]);
        let (_, ops) = h.run(&["copy", "b", "c", "db", "3"]);
        assert_eq!(ops, vec![vec!["copy", "b", "c", "db", "3"]]);
        let (_, ops) = h.run(&["move", "b", "4"]);
        assert_eq!(ops, vec![vec!["move", "b", "4"]]);
        let (_, ops) = h.run(&["swapdb", "3", "4"]);
        assert_eq!(ops, vec![vec!["swapdb", "3", "4"]]);
        let store = h.server.store.lock();
        assert!(store.dbs[4].contains(b"c") && store.dbs[3].contains(b"b"));
    }

    #[test]
    fn introspection_does_not_refresh_the_access_time() {
        let mut h = Harness::new();
        h.run(&["set", "k", "v"]);
        let set_lru = |h: &Harness, v: u32| {
            if let Some(e) = h.server.store.lock().dbs[0].entry_mut(b"k") {
                e.meta.set_lru(v);
            }
        };
        let lru = |h: &Harness| {
            h.server.store.lock().dbs[0]
                .entry(b"k")
                .map(|e| e.meta.lru())
        };
        set_lru(&h, 12345);
        for cmd in [
            &["type", "k"][..],
            &["ttl", "k"],
            &["pttl", "k"],
            &["exists", "k"],
            &["object", "encoding", "k"],
            &["object", "idletime", "k"],
        ] {
            h.run(cmd);
            assert_eq!(lru(&h), Some(12345), "{cmd:?} touched the key");
        }
        h.run(&["get", "k"]);
        assert_ne!(lru(&h), Some(12345), "GET refreshes the access time");
    }

    #[test]
    fn reads_and_refused_writes_propagate_nothing() {
        let mut h = Harness::new();
        for cmd in [
            &["get", "x"][..],
            &["ttl", "x"],
            &["persist", "x"],
            &["del", "x"],
            &["rename", "x", "y"],
        ] {
            let (_, ops) = h.run(cmd);
            assert!(ops.is_empty(), "{cmd:?} propagated {ops:?}");
        }
        let (_, ops) = h.run(&["flushdb"]);
        assert_eq!(ops, vec![vec!["flushdb"]], "FLUSHDB is always propagated");
    }
}
