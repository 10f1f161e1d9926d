//! The stream listpack codec and the operations that edit nodes in place.
//!
//! Byte 0 bit 0 picks the mode:
//! * 0 (node): the rest is one stream listpack node. `walk_listpack` must accept or
//!   refuse it without panicking; an accepted node becomes a one-node stream, which is
//!   then read (forward and reverse ranges, lookups) and edited in place (deletions,
//!   an append into the node, an exact trim), the node re-walked after every edit;
//! * 1 (ops): the rest is a tape of operations (append with explicit or generated IDs
//!   and small node limits, delete, exact or approximate trims, ranges) checked after
//!   each one against a simple ordered model of the live entries.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use tandem_server::types::stream::{
    walk_listpack, AddId, NodeLimits, Stream, StreamId, Trim,
};

/// Every node walks, holds nothing before its key, and the live entries match `model`.
fn check(s: &Stream, model: &BTreeMap<StreamId, Vec<(Bytes, Bytes)>>) {
    let mut live = Vec::new();
    for (master, blob) in &s.listpacks {
        let es = walk_listpack(*master, blob).expect("a node the stream edited must walk");
        assert!(
            es.first().is_some_and(|e| e.id >= *master),
            "node holds an entry before its key"
        );
        live.extend(es.into_iter().filter(|e| !e.deleted));
    }
    assert_eq!(live.len() as u64, s.length, "length disagrees with the nodes");
    let got: Vec<_> = live.iter().map(|e| (e.id, e.fields.clone())).collect();
    let want: Vec<_> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
    assert_eq!(got, want, "live entries disagree with the model");
    let fwd: Vec<StreamId> = s.range(StreamId::MIN, StreamId::MAX, false).map(|e| e.id).collect();
    let mut rev: Vec<StreamId> = s.range(StreamId::MIN, StreamId::MAX, true).map(|e| e.id).collect();
    rev.reverse();
    assert_eq!(fwd, rev, "reverse range is not the forward range reversed");
    assert_eq!(fwd, model.keys().copied().collect::<Vec<_>>());
    let first = model.keys().next().copied().unwrap_or(StreamId::MIN);
    if !model.is_empty() {
        assert_eq!(s.first_id, first, "first_id");
    }
}

fn node_mode(blob: &[u8]) {
    let master = StreamId::new(1000, 5);
    let Ok(entries) = walk_listpack(master, blob) else {
        return;
    };
    let mut s = Stream::default();
    if s.insert_node(master, blob.to_vec()).is_err() {
        return;
    }
    let mut model = BTreeMap::new();
    for e in entries.iter().filter(|e| !e.deleted) {
        model.insert(e.id, e.fields.clone());
    }
    s.length = model.len() as u64;
    s.entries_added = s.length;
    s.last_id = entries.last().map_or(master, |e| e.id);
    s.first_id = s.first_live_id();
    check(&s, &model);
    for (id, fields) in &model {
        assert_eq!(s.get(*id).map(|e| e.fields), Some(fields.clone()));
    }
    // Delete every other live entry (flags and counters edited in place).
    let ids: Vec<StreamId> = model.keys().copied().step_by(2).collect();
    assert_eq!(s.xdel(&ids), ids.len() as u64);
    for id in &ids {
        model.remove(id);
    }
    check(&s, &model);
    // Append into the (foreign-encoded) node, then trim exactly to half.
    if let Some(next) = s.last_id.incr() {
        let f = [Bytes::from_static(b"f"), Bytes::from_static(b"-12")];
        let lim = NodeLimits {
            max_bytes: 0,
            max_entries: 0,
        };
        if s.append(AddId::Exact(next), 0, &f, lim).is_ok() {
            model.insert(next, vec![(f[0].clone(), f[1].clone())]);
        }
        check(&s, &model);
    }
    let keep = model.len() as u64 / 2;
    s.trim(Trim::MaxLen(keep), false, 0);
    while model.len() as u64 > keep {
        model.pop_first();
    }
    check(&s, &model);
}

fn ops_mode(tape: &[u8]) {
    let mut s = Stream::default();
    let mut model: BTreeMap<StreamId, Vec<(Bytes, Bytes)>> = BTreeMap::new();
    let lim = NodeLimits {
        max_bytes: 64 + usize::from(tape.first().copied().unwrap_or(0)),
        max_entries: 1 + usize::from(tape.get(1).copied().unwrap_or(0) % 8),
    };
    let mut now = 1u64;
    for op in tape.chunks(3).skip(1).take(2000) {
        let (a, b) = (op.first().copied().unwrap_or(0), op.get(1).copied().unwrap_or(0));
        let c = op.get(2).copied().unwrap_or(0);
        match a % 8 {
            0..=3 => {
                let spec = match b % 4 {
                    0 => AddId::Auto,
                    1 => AddId::Ms(u64::from(c)),
                    _ => AddId::Exact(StreamId::new(u64::from(c) / 4, u64::from(b))),
                };
                now += u64::from(c % 3);
                let value = Bytes::from(vec![b'v'; usize::from(c % 40)]);
                let field = Bytes::from(if b & 16 == 0 { "f" } else { "g" });
                let mut fields = vec![field, value];
                if b & 32 != 0 {
                    fields.extend([Bytes::from_static(b"n"), Bytes::from(c.to_string())]);
                }
                if let Ok(id) = s.append(spec, now, &fields, lim) {
                    let pairs = fields.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
                    assert!(model.insert(id, pairs).is_none(), "ID reused");
                    assert_eq!(s.last_id, id);
                }
            }
            4 | 5 => {
                let id = StreamId::new(u64::from(b) / 4, u64::from(c));
                let had = model.remove(&id).is_some();
                assert_eq!(s.xdel(&[id]), u64::from(had));
            }
            6 => {
                let approx = b & 1 == 1;
                // Only approximate trims take a LIMIT (as in XADD/XTRIM).
                let limit = if approx { u64::from(b >> 4) } else { 0 };
                let how = if b & 2 == 0 {
                    Trim::MaxLen(u64::from(c % 32))
                } else {
                    Trim::MinId(StreamId::new(u64::from(c) / 4, 0))
                };
                let before = s.length;
                let removed = s.trim(how, approx, limit);
                assert_eq!(before - removed, s.length);
                if !approx {
                    match how {
                        Trim::MaxLen(n) => assert_eq!(s.length, before.min(n)),
                        Trim::MinId(m) => assert!(s
                            .range(StreamId::MIN, StreamId::MAX, false)
                            .all(|e| e.id >= m)),
                    }
                }
                // Trimming removes from the head: keep the model's newest entries.
                while model.len() as u64 > s.length {
                    model.pop_first();
                }
            }
            _ => {
                let lo = StreamId::new(u64::from(b) / 4, 0);
                let hi = StreamId::new(u64::from(c) / 4, u64::MAX);
                // An empty interval (BTreeMap::range panics on one) reads nothing.
                let want: Vec<StreamId> = if lo <= hi {
                    model.range(lo..=hi).map(|(k, _)| *k).collect()
                } else {
                    Vec::new()
                };
                let got: Vec<StreamId> = s.range(lo, hi, b & 1 == 1).map(|e| e.id).collect();
                let mut got_sorted = got.clone();
                got_sorted.sort();
                assert_eq!(got_sorted, want);
            }
        }
        check(&s, &model);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        node_mode(rest);
    } else {
        ops_mode(rest);
    }
});
