//! Command family: HyperLogLog (PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST).
//!
//! HLLs are plain string values in Redis's exact layout (`types::hll`). Every
//! update works on a copy of the value and stores it back only when the whole
//! command succeeded, so a corrupted value answers an error and stays as it was.
//!
//! Propagation: PFADD only when a register changed or the key was created; PFMERGE
//! always; PFCOUNT of one key with a stale cache writes the fresh cardinality into
//! the header and, as in Redis 7.0, propagates itself so replicas and the AOF see
//! the same bytes (PFCOUNT is READONLY in the table, so it asks explicitly).

use super::{err, flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::notify::STRING;
use crate::resp::Reply;
use crate::types::hll::{self, Encoding, HllError};
use crate::types::{Str, Value};
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("pfadd", -2, WRITE | DENYOOM | FAST, pfadd).keys(1, 1, 1),
    // MAY_REPLICATE as in Redis: refreshing the cached cardinality is a write that
    // replicates (it propagates itself, below), so CLIENT PAUSE WRITE holds it and a
    // read-only script may not call it.
    Command::new("pfcount", -2, READONLY | MAY_REPLICATE, pfcount).keys(1, -1, 1),
    Command::new("pfmerge", -2, WRITE | DENYOOM, pfmerge).keys(1, -1, 1),
    Command::new("pfdebug", 3, WRITE | DENYOOM | ADMIN, pfdebug).keys(2, 2, 1),
    Command::new("pfselftest", 1, ADMIN, pfselftest),
];

impl From<HllError> for CmdError {
    fn from(e: HllError) -> Self {
        CmdError::msg(e.to_string())
    }
}

/// `hll-sparse-max-bytes`: the size at which a sparse value turns dense.
fn sparse_max_bytes(ctx: &Ctx) -> usize {
    ctx.server
        .config
        .read()
        .get("hll-sparse-max-bytes")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(3000)
}

/// Runs `f` on a copy of the HLL string `b`, storing the result only on success.
fn update<T>(
    b: &mut Str,
    f: impl FnOnce(&mut Vec<u8>) -> Result<T, HllError>,
) -> Result<T, CmdError> {
    hll::check(b)?;
    let mut v = b.to_vec();
    let r = f(&mut v)?;
    *b = Str::from_buf(v);
    Ok(r)
}

/// PFADD, PFMERGE and a one-key PFCOUNT take the HLL for writing, which in Redis makes
/// the string `raw` (OBJECT ENCODING) whether or not a register changed.
fn mark_raw(ctx: &mut Ctx, key: &[u8]) {
    if let Some(e) = ctx.db().entry_mut(key) {
        e.meta.mark_raw();
    }
}

fn pfadd(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let max = sparse_max_bytes(ctx);
    let (key, elements) = (&argv[1], &argv[2..]);
    let add_all = |v: &mut Vec<u8>| -> Result<bool, HllError> {
        let mut changed = false;
        for e in elements {
            changed |= hll::add(v, e, max)?;
        }
        if changed {
            hll::invalidate(v);
        }
        Ok(changed)
    };
    let changed = match ctx.get_mut(key) {
        Some(Value::Str(b)) => update(b, add_all)?,
        Some(_) => return Err(err::WRONGTYPE),
        None => {
            // Creating the key is itself a change: the cache is marked stale too.
            let mut v = hll::new_sparse();
            add_all(&mut v)?;
            hll::invalidate(&mut v);
            ctx.set(key, Value::Str(Str::from(v)));
            true
        }
    };
    mark_raw(ctx, key);
    if changed {
        ctx.dirty(1);
        ctx.notify(STRING, "pfadd", key);
    }
    out.int(changed as i64);
    Ok(())
}

fn pfcount(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 2 {
        let mut max = vec![0u8; hll::REGISTERS];
        for key in &argv[1..] {
            match ctx.get(key) {
                None => {}
                Some(Value::Str(b)) => hll::merge_into(&mut max, b)?,
                Some(_) => return Err(err::WRONGTYPE),
            }
        }
        out.int(hll::estimate(&hll::raw_histogram(&max)) as i64);
        return Ok(());
    }
    let (card, wrote) = match ctx.get(&argv[1]) {
        None => (0, false),
        Some(Value::Str(b)) => {
            hll::check(b)?;
            match hll::cached(b) {
                Some(card) => (card, false),
                None => {
                    let card = hll::count(b)?;
                    update(b, |v| {
                        hll::set_cached(v, card);
                        Ok(())
                    })?;
                    (card, true)
                }
            }
        }
        Some(_) => return Err(err::WRONGTYPE),
    };
    mark_raw(ctx, &argv[1]);
    if wrote {
        ctx.dirty(1);
        let db = ctx.client.db;
        ctx.also_propagate(db, argv.to_vec());
    }
    out.int(card as i64);
    Ok(())
}

fn pfmerge(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sparse_max = sparse_max_bytes(ctx);
    // The union of every key, the destination included.
    let mut max = vec![0u8; hll::REGISTERS];
    let mut use_dense = false;
    for key in &argv[1..] {
        match ctx.get(key) {
            None => {}
            Some(Value::Str(b)) => {
                use_dense |= hll::check(b)? == Encoding::Dense;
                hll::merge_into(&mut max, b)?;
            }
            Some(_) => return Err(err::WRONGTYPE),
        }
    }
    let write = |v: &mut Vec<u8>| -> Result<(), HllError> {
        if use_dense {
            *v = hll::to_dense(v)?;
        }
        for (i, &r) in max.iter().enumerate() {
            if r != 0 {
                hll::set_register(v, i, r, sparse_max)?;
            }
        }
        hll::invalidate(v);
        Ok(())
    };
    let dest = &argv[1];
    match ctx.get_mut(dest) {
        Some(Value::Str(b)) => update(b, write)?,
        Some(_) => return Err(err::WRONGTYPE),
        None => {
            let mut v = hll::new_sparse();
            write(&mut v)?;
            ctx.set(dest, Value::Str(Str::from(v)));
        }
    }
    mark_raw(ctx, dest);
    ctx.dirty(1);
    ctx.notify(STRING, "pfadd", dest);
    out.ok();
    Ok(())
}

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key.
fn pfdebug(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = &argv[1];
    let Some(entry) = ctx.lookup_write(&argv[2]) else {
        return Err(CmdError::msg("ERR The specified key does not exist"));
    };
    let Value::Str(b) = entry.value else {
        return Err(err::WRONGTYPE);
    };
    let enc = hll::check(b)?;
    let mut converted = false;
    if is_kw(sub, "getreg") {
        if enc == Encoding::Sparse {
            update(b, |v| hll::to_dense(v).map(|d| *v = d))?;
            converted = true;
        }
        let regs = hll::registers(b)?;
        out.array(regs.len());
        for r in regs {
            out.int(r as i64);
        }
    } else if is_kw(sub, "decode") {
        if enc != Encoding::Sparse {
            return Err(CmdError::msg("ERR HLL encoding is not sparse"));
        }
        out.bulk(hll::decode(b).as_bytes());
    } else if is_kw(sub, "encoding") {
        out.simple(enc.name());
    } else if is_kw(sub, "todense") {
        if enc == Encoding::Sparse {
            update(b, |v| hll::to_dense(v).map(|d| *v = d))?;
            converted = true;
        }
        out.int(converted as i64);
    } else {
        return Err(CmdError::msg(format!(
            "ERR Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(sub)
        )));
    }
    if converted {
        // An encoding change is a write: replicas convert too.
        ctx.dirty(1);
    }
    Ok(())
}

/// A bounded self-check of the representation: every register position of the
/// dense layout round-trips, and sparse and dense forms of the same elements give
/// the same registers and the same count.
fn pfselftest(_ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    let mut sparse = hll::new_sparse();
    for i in 0..2000u32 {
        hll::add(&mut sparse, &i.to_le_bytes(), usize::MAX)?;
    }
    let dense = hll::to_dense(&sparse)?;
    if hll::registers(&sparse)? != hll::registers(&dense)? {
        return Err(CmdError::msg(
            "TESTFAILED sparse and dense registers differ",
        ));
    }
    let (a, b) = (hll::count(&sparse)?, hll::count(&dense)?);
    if a != b {
        return Err(CmdError::msg(format!(
            "TESTFAILED sparse count {a} differs from dense count {b}"
        )));
    }
    let error = (a as f64 - 2000.0).abs() / 2000.0;
    if error > 0.05 {
        return Err(CmdError::msg(format!(
            "TESTFAILED too big error. card:{a} error:{error}"
        )));
    }
    out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::commands::keys::test_util::Harness;

    #[test]
    fn pfcount_propagates_only_when_it_refreshes_the_cache() {
        let mut h = Harness::new();
        let (r, ops) = h.run(&["pfadd", "h", "a", "b"]);
        assert_eq!(r, ":1\r\n");
        assert_eq!(ops, vec![vec!["pfadd", "h", "a", "b"]]);
        let (r, ops) = h.run(&["pfadd", "h", "a"]);
        assert_eq!(r, ":0\r\n");
        assert!(ops.is_empty(), "no register changed");
        let (r, ops) = h.run(&["pfcount", "h"]);
        assert_eq!(r, ":2\r\n");
        assert_eq!(
            ops,
            vec![vec!["pfcount", "h"]],
            "the cache write replicates"
        );
        let (_, ops) = h.run(&["pfcount", "h"]);
        assert!(ops.is_empty(), "cache already valid");
        let (_, ops) = h.run(&["pfcount", "h", "other"]);
        assert!(ops.is_empty(), "a union never writes");
        let (r, ops) = h.run(&["pfmerge", "h"]);
        assert_eq!(r, "+OK\r\n");
        assert_eq!(ops.len(), 1, "PFMERGE always propagates");
    }

    #[test]
    fn a_failed_pfadd_leaves_the_value_and_the_stream_alone() {
        let mut h = Harness::new();
        h.run(&["set", "bad", "HYLL\u{1}\0\0\0\0\0\0\0\0\0\0\0"]);
        let (r, ops) = h.run(&["pfadd", "bad", "x"]);
        assert_eq!(r, "-INVALIDOBJ Corrupted HLL object detected\r\n");
        assert!(ops.is_empty());
        let (r, _) = h.run(&["strlen", "bad"]);
        assert_eq!(r, ":16\r\n");
    }
}
