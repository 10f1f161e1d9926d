//! Round-trip and corruption tests for the codec.

use super::*;
use crate::db::Db;
use crate::types::stream::{self, StreamId};
use crate::types::{HashMapB, HashSetB, Stream, Value, ZSet};
use bytes::Bytes;
use std::collections::VecDeque;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn sample_dbs() -> Vec<Db> {
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    let d = &mut dbs[0];
    d.set(b("s:small"), Value::Str(b("hello").into()), 0);
    d.set(b("s:int8"), Value::Str(b("-12").into()), 0);
    d.set(b("s:int16"), Value::Str(b("12345").into()), 0);
    d.set(b("s:int32"), Value::Str(b("-2000000000").into()), 0);
    d.set(b("s:int64"), Value::Str(b("9223372036854775807").into()), 0);
    d.set(b("s:notint"), Value::Str(b("007").into()), 0);
    d.set(b("s:bin"), Value::Str(b"a\0b\r\nc\xff".into()), 0);
    d.set(
        b("s:lzf"),
        Value::Str(Bytes::from(vec![b'z'; 1000]).into()),
        0,
    );
    d.set(b("s:empty"), Value::Str(Bytes::new().into()), 0);
    d.set(b("12345"), Value::Str(b("int key").into()), 0);
    d.set_with_expire(
        b("s:ttl"),
        Value::Str(b("x").into()),
        Some(4_000_000_000_000),
        0,
    );
    let small: VecDeque<Bytes> = ["a", "1", "-5", "b"].iter().map(|s| b(s)).collect();
    d.set(b("l:small"), Value::List(Box::new(small.into())), 0);
    let big: VecDeque<Bytes> = (0..5000).map(|i| b(&format!("element-{i}"))).collect();
    d.set(b("l:big"), Value::List(Box::new(big.into())), 0);
    let huge: VecDeque<Bytes> = vec![Bytes::from(vec![b'q'; 20000]), b("tail")].into();
    d.set(b("l:hugeelem"), Value::List(Box::new(huge.into())), 0);
    let mut h = HashMapB::default();
    h.insert(b("f1"), b("v1"));
    h.insert(b("n"), b("42"));
    d.set(b("h:small"), Value::Hash(Box::new(h.into())), 0);
    let mut h = HashMapB::default();
    for i in 0..600 {
        h.insert(b(&format!("field{i}")), b(&format!("value{i}")));
    }
    d.set(b("h:big"), Value::Hash(Box::new(h.into())), 0);
    let mut h = HashMapB::default();
    h.insert(b("long"), Bytes::from(vec![b'v'; 100]));
    d.set(b("h:longval"), Value::Hash(Box::new(h.into())), 0);
    let s: HashSetB = ["1", "2", "-3", "70000", "9000000000"]
        .iter()
        .map(|x| b(x))
        .collect();
    d.set(
        b("set:int"),
        Value::Set(Box::new(crate::types::Set::from_members(
            s.iter().map(|m| &m[..]),
            512,
        ))),
        0,
    );
    let s: HashSetB = ["a", "b", "1"].iter().map(|x| b(x)).collect();
    d.set(
        b("set:str"),
        Value::Set(Box::new(crate::types::Set::from_members(
            s.iter().map(|m| &m[..]),
            512,
        ))),
        0,
    );
    let s: HashSetB = (0..1000).map(|i| b(&i.to_string())).collect();
    d.set(
        b("set:bigint"),
        Value::Set(Box::new(crate::types::Set::from_members(
            s.iter().map(|m| &m[..]),
            512,
        ))),
        0,
    );
    let mut z = ZSet::new();
    z.insert(b("a"), 1.0, crate::types::zset::Limits::ZSET);
    z.insert(b("b"), 2.5, crate::types::zset::Limits::ZSET);
    z.insert(b("c"), -3.0, crate::types::zset::Limits::ZSET);
    z.insert(b("d"), f64::INFINITY, crate::types::zset::Limits::ZSET);
    z.insert(b("e"), f64::NEG_INFINITY, crate::types::zset::Limits::ZSET);
    z.insert(b("f"), 0.1, crate::types::zset::Limits::ZSET);
    d.set(b("z:small"), Value::ZSet(Box::new(z)), 0);
    let mut z = ZSet::new();
    for i in 0..500 {
        z.insert(
            b(&format!("m{i}")),
            i as f64 / 3.0,
            crate::types::zset::Limits::ZSET,
        );
    }
    d.set(b("z:big"), Value::ZSet(Box::new(z)), 0);
    d.set(b("x:stream"), Value::Stream(Box::new(sample_stream())), 0);
    d.set(b("x:empty"), Value::Stream(Box::default()), 0);
    dbs[3].set(b("other"), Value::Str(b("db3").into()), 0);
    dbs[15].set_with_expire(
        b("last"),
        Value::Str(b("db15").into()),
        Some(4_100_000_000_000),
        0,
    );
    dbs
}

/// Two listpack nodes, a group with a PEL shared by two consumers, one with no PEL,
/// and a group whose entries_read is unknown (-1).
pub(crate) fn sample_stream() -> Stream {
    let mk = |ms: u64, n: u64| -> Vec<(StreamId, Vec<(Bytes, Bytes)>)> {
        (0..n)
            .map(|i| {
                let id = StreamId::new(ms + i, i % 3);
                let fields = if i % 4 == 3 {
                    vec![(b("other"), b(&format!("{}", i as i64 * -77)))]
                } else {
                    vec![
                        (b("name"), b(&format!("v{i}"))),
                        (b("n"), b(&i.to_string())),
                    ]
                };
                (id, fields)
            })
            .collect()
    };
    let mut st = Stream::default();
    let (m1, lp1) = stream::encode_listpack(&mk(1000, 10)).unwrap();
    let (m2, lp2) = stream::encode_listpack(&mk(5000, 7)).unwrap();
    st.listpacks.insert(m1, lp1);
    st.listpacks.insert(m2, lp2);
    st.length = 17;
    st.last_id = StreamId::new(5006, 0);
    st.first_id = StreamId::new(1000, 0);
    st.max_deleted_id = StreamId::new(900, 1);
    st.entries_added = 20;
    let mut g = stream::ConsumerGroup {
        last_id: StreamId::new(1002, 2),
        entries_read: 6,
        pel: Default::default(),
        consumers: Default::default(),
    };
    for (i, c) in ["alice", "bob", "alice"].iter().enumerate() {
        let id = StreamId::new(1000 + i as u64, i as u64 % 3);
        g.pel.insert(
            id,
            stream::PendingEntry {
                delivery_time: 1_700_000_000_000 + i as i64,
                delivery_count: i as u64 + 1,
                consumer: Some(b(c)),
            },
        );
        g.consumers
            .entry(b(c))
            .or_insert_with(|| stream::Consumer {
                seen_time: 1_700_000_000_500,
                active_time: None,
                pel: Default::default(),
            })
            .pel
            .insert(id);
    }
    g.consumers.insert(
        b("idle"),
        stream::Consumer {
            seen_time: 1_600_000_000_000,
            active_time: None,
            pel: Default::default(),
        },
    );
    st.groups.insert(b("g1"), g);
    st.groups.insert(
        b("g2"),
        stream::ConsumerGroup {
            last_id: StreamId::new(4000, 0),
            entries_read: -1,
            pel: Default::default(),
            consumers: Default::default(),
        },
    );
    st
}

fn canon(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("str {s:?}"),
        Value::List(l) => format!("list {:?}", l),
        Value::Hash(h) => {
            let mut v: Vec<_> = h
                .iter()
                .map(|(f, v)| (Bytes::copy_from_slice(f), Bytes::copy_from_slice(v)))
                .collect();
            v.sort();
            format!("hash {v:?}")
        }
        Value::Set(s) => {
            let mut v: Vec<_> = s.iter().map(|m| m.to_bytes()).collect();
            v.sort();
            format!("set {v:?}")
        }
        Value::ZSet(z) => format!(
            "zset {:?}",
            z.iter()
                .map(|(m, s)| (Bytes::copy_from_slice(m), s))
                .collect::<Vec<_>>()
        ),
        Value::Stream(st) => format!("stream {st:?}"),
    }
}

pub(crate) fn assert_same(a: &[Db], b: &[Db]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.len(), y.len(), "db {i} size");
        for (k, e) in x.iter() {
            let f = y
                .entry(k)
                .unwrap_or_else(|| panic!("db {i}: missing {k:?}"));
            assert_eq!(canon(e.value), canon(f.value), "db {i} key {k:?}");
            assert_eq!(x.expire_of(k), y.expire_of(k), "db {i} key {k:?} ttl");
        }
    }
}

fn save_vec(dbs: &[Db], opts: &SaveOptions) -> Vec<u8> {
    let mut out = Vec::new();
    save(dbs, opts, &mut out).unwrap();
    out
}

fn load_vec(data: &[u8]) -> Result<(Vec<Db>, LoadInfo), RdbError> {
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    let info = load(
        &mut &data[..],
        &mut dbs,
        &LoadOptions {
            now_ms: 1_700_000_000_000,
            drop_expired: true,
            ..Default::default()
        },
    )?;
    Ok((dbs, info))
}

#[test]
fn round_trip_every_type_and_encoding() {
    let dbs = sample_dbs();
    for compression in [true, false] {
        for checksum in [true, false] {
            let opts = SaveOptions {
                compression,
                checksum,
                repl: Some(ReplInfo {
                    replid: "a".repeat(40),
                    offset: 12345,
                    stream_db: 3,
                }),
                aof_base: true,
                functions: Vec::new(),
                key_delay: 0,
                commands: false,
                timestamp: false,
            };
            let data = save_vec(&dbs, &opts);
            assert_eq!(&data[..9], b"REDIS0010");
            let (got, info) = load_vec(&data).unwrap();
            assert_same(&dbs, &got);
            assert_eq!(
                info.keys as usize,
                dbs.iter().map(|d| d.len()).sum::<usize>()
            );
            assert_eq!(info.version, 10);
            assert_eq!(info.redis_ver.as_deref(), Some("7.0.15"));
            assert_eq!(info.repl, opts.repl);
            assert!(info.aof_base);
            assert_eq!(info.checksum_disabled, !checksum);
        }
    }
}

#[test]
fn writer_uses_compact_encodings() {
    let dbs = sample_dbs();
    let data = save_vec(&dbs, &SaveOptions::default());
    // Find the type byte preceding each key name (keys are short raw strings).
    let type_of = |key: &str| -> u8 {
        let mut pat = vec![key.len() as u8];
        pat.extend_from_slice(key.as_bytes());
        let pos = data
            .windows(pat.len())
            .position(|w| w == &pat[..])
            .unwrap_or_else(|| panic!("key {key} not found"));
        data[pos - 1]
    };
    assert_eq!(type_of("h:small"), T_HASH_LISTPACK);
    assert_eq!(type_of("h:big"), T_HASH);
    assert_eq!(type_of("h:longval"), T_HASH);
    assert_eq!(type_of("set:int"), T_SET_INTSET);
    assert_eq!(type_of("set:str"), T_SET);
    assert_eq!(type_of("set:bigint"), T_SET);
    assert_eq!(type_of("z:small"), T_ZSET_LISTPACK);
    assert_eq!(type_of("z:big"), T_ZSET_2);
    assert_eq!(type_of("l:small"), T_LIST_QUICKLIST_2);
    // Integer keys/values are int-encoded: "12345" -> C1 39 30.
    assert!(data.windows(3).any(|w| w == [0xC1, 0x39, 0x30]));
}

#[test]
fn expired_keys_dropped_on_master_kept_on_replica() {
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    dbs[0].set_with_expire(b("old"), Value::Str(b("x").into()), Some(1000), 0);
    dbs[0].set(b("live"), Value::Str(b("y").into()), 0);
    let data = save_vec(&dbs, &SaveOptions::default());
    let (got, info) = load_vec(&data).unwrap();
    assert_eq!((info.keys, info.expired), (1, 1));
    assert!(got[0].entry(b"old").is_none());
    let mut fresh: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    let info = load(
        &mut &data[..],
        &mut fresh,
        &LoadOptions {
            now_ms: 1_700_000_000_000,
            drop_expired: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((info.keys, info.expired), (2, 0));
    assert_eq!(fresh[0].expire_of(b"old"), Some(1000));
}

/// Builds an RDB by hand: header, `body`, EOF and a correct checksum.
fn hand_rdb(body: &[u8]) -> Vec<u8> {
    let mut v = b"REDIS0010".to_vec();
    v.extend_from_slice(body);
    v.push(0xFF);
    let c = crc64::crc64(&v);
    v.extend_from_slice(&c.to_le_bytes());
    v
}

/// Header + body with no EOF: the file just ends.
fn body_only(body: &[u8]) -> Vec<u8> {
    let mut v = b"REDIS0010".to_vec();
    v.extend_from_slice(body);
    v
}

fn rdb_string(s: &[u8]) -> Vec<u8> {
    assert!(s.len() < 64);
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s);
    v
}

#[test]
fn legacy_encodings_fuzz_never_panics() {
    // Every legacy encoding, also under random mutation: errors, never panics.
    let (data, _) = legacy_rdb();
    assert!(load_vec(&data).is_ok());
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    for _ in 0..400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut m = data.clone();
        let p = 9 + (x as usize) % (m.len() - 9);
        m[p] = (x >> 32) as u8;
        let _ = load_vec(&m);
        let _ = load_vec(&m[..p]);
    }
}

fn legacy_rdb() -> (Vec<u8>, Vec<u8>) {
    let mut body = Vec::new();
    // AUX, module aux (skipped), FUNCTION2 (skipped), SELECTDB 2, RESIZEDB.
    body.push(OP_AUX);
    body.extend(rdb_string(b"%custom"));
    body.extend(rdb_string(b"x"));
    body.extend([OP_MODULE_AUX, 0x05, 0x02, 0x00, 0x05]);
    body.extend(rdb_string(b"modstr"));
    body.extend([0x02, 0x07, 0x00]);
    body.push(OP_FUNCTION2);
    body.extend(rdb_string(b"#!lua name=lib\nreturn 1"));
    body.extend([OP_SELECTDB, 2, OP_RESIZEDB, 5, 1]);
    // Type 1 list with LZF-compressed element, old EXPIRETIME (seconds) + IDLE + FREQ.
    body.extend([OP_EXPIRETIME]);
    body.extend(4_000_000_000u32.to_le_bytes()); // i32 reinterpreted: negative -> past
    body.extend([OP_IDLE, 10, OP_FREQ, 5]);
    body.push(T_STRING);
    body.extend(rdb_string(b"expired-old"));
    body.extend(rdb_string(b"v"));
    body.extend([OP_EXPIRETIME]);
    body.extend(2_000_000_000i32.to_le_bytes());
    body.push(T_LIST);
    body.extend(rdb_string(b"l"));
    body.push(2);
    let long = vec![b'k'; 50];
    let c = lzf::compress(&long, 46).unwrap();
    body.extend([0xC3, c.len() as u8, 50]);
    body.extend(&c);
    body.extend([0xC0, 0xFF]); // int8 -1
                               // Type 3 zset with ASCII doubles incl. inf.
    body.push(T_ZSET);
    body.extend(rdb_string(b"z"));
    body.push(2);
    body.extend(rdb_string(b"m1"));
    body.extend(rdb_string(b"1.5"));
    body.extend(rdb_string(b"m2"));
    body.push(254);
    // Type 9 zipmap hash.
    body.push(T_HASH_ZIPMAP);
    body.extend(rdb_string(b"zm"));
    let zm = [1u8, 1, b'a', 2, 0, b'x', b'y', 0xFF];
    body.extend(rdb_string(&zm));
    // Type 13 hash ziplist: f -> 7 (immediate int).
    let mut zl_body = vec![0x00, 0x01, b'f', 0x03, 0xF8];
    let total = 10 + zl_body.len() + 1;
    let mut zl = (total as u32).to_le_bytes().to_vec();
    zl.extend(0u32.to_le_bytes());
    zl.extend(2u16.to_le_bytes());
    zl.append(&mut zl_body);
    zl.push(0xFF);
    body.push(T_HASH_ZIPLIST);
    body.extend(rdb_string(b"hz"));
    body.extend(rdb_string(&zl));
    // Type 14 quicklist with one ziplist node holding "f", 7.
    body.push(T_LIST_QUICKLIST);
    body.extend(rdb_string(b"ql"));
    body.push(1);
    body.extend(rdb_string(&zl));
    // Type 12 zset ziplist: member "f", score 7.
    body.push(T_ZSET_ZIPLIST);
    body.extend(rdb_string(b"zz"));
    body.extend(rdb_string(&zl));
    // Type 10 list ziplist.
    body.push(T_LIST_ZIPLIST);
    body.extend(rdb_string(b"lz"));
    body.extend(rdb_string(&zl));
    // Type 18 with a PLAIN node and a PACKED node.
    let mut lp = listpack::LpWriter::new();
    lp.push(b"p1");
    lp.push(b"77");
    let lp = lp.finish();
    body.push(T_LIST_QUICKLIST_2);
    body.extend(rdb_string(b"q2"));
    body.extend([2, 1]);
    body.extend(rdb_string(b"plain"));
    body.push(2);
    body.extend(rdb_string(&lp));
    // Type 20 set listpack (7.2), accepted.
    body.push(T_SET_LISTPACK);
    body.extend(rdb_string(b"slp"));
    body.extend(rdb_string(&lp));
    // An empty set is skipped.
    body.extend([T_SET]);
    body.extend(rdb_string(b"empty"));
    body.push(0);
    (hand_rdb(&body), long)
}

#[test]
fn legacy_types_and_opcodes_load() {
    let (data, long) = legacy_rdb();
    let (dbs, info) = load_vec(&data).unwrap();
    assert_eq!(info.expired, 1);
    assert_eq!(info.empty_skipped, 1);
    let d = &dbs[2];
    let show = |k: &[u8]| canon(d.entry(k).unwrap().value);
    assert_eq!(d.expire_of(b"l"), Some(2_000_000_000_000));
    assert_eq!(
        show(b"l"),
        canon(&Value::List(Box::new(
            vec![Bytes::from(long), b("-1")].into()
        )))
    );
    assert_eq!(show(b"z"), r#"zset [(b"m1", 1.5), (b"m2", inf)]"#);
    assert_eq!(show(b"zm"), r#"hash [(b"a", b"xy")]"#);
    assert_eq!(show(b"hz"), r#"hash [(b"f", b"7")]"#);
    assert_eq!(show(b"ql"), r#"list [b"f", b"7"]"#);
    assert_eq!(show(b"lz"), r#"list [b"f", b"7"]"#);
    assert_eq!(show(b"zz"), r#"zset [(b"f", 7.0)]"#);
    assert_eq!(show(b"q2"), r#"list [b"plain", b"p1", b"77"]"#);
    assert_eq!(show(b"slp"), r#"set [b"77", b"p1"]"#);
    assert_eq!(d.len(), 9);
}

#[test]
fn stream_round_trips_exactly_as_type_19() {
    let st = sample_stream();
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    dbs[0].set(b("s"), Value::Stream(Box::new(st.clone())), 0);
    let data = save_vec(&dbs, &SaveOptions::default());
    // Type byte 19 right before the key.
    assert!(data
        .windows(3)
        .any(|w| w == [T_STREAM_LISTPACKS_2, 1, b's']));
    let (got, info) = load_vec(&data).unwrap();
    assert_eq!(info.keys, 1);
    match &got[0].entry(b"s").unwrap().value {
        Value::Stream(g) => assert_eq!(**g, st),
        v => panic!("{v:?}"),
    }
    // Saving again gives the same bytes apart from the ctime/used-mem aux fields.
    let again = save_vec(&got, &SaveOptions::default());
    let tail = |d: &[u8]| {
        let start = d.iter().position(|&x| x == OP_SELECTDB).unwrap();
        d[start..d.len() - 8].to_vec()
    };
    assert_eq!(tail(&data), tail(&again));
}

fn stream_body(t: u8, st: &Stream) -> Vec<u8> {
    // Written by hand, independently of the writer, with 64-bit lengths everywhere:
    // 15 lacks first/max-deleted/entries-added/entries-read, 21 adds active time.
    let len = |n: u64| -> Vec<u8> {
        let mut v = vec![0x81];
        v.extend(n.to_be_bytes());
        v
    };
    let rdb_string = |s: &[u8]| -> Vec<u8> {
        let mut v = vec![0x80];
        v.extend((s.len() as u32).to_be_bytes());
        v.extend(s);
        v
    };
    let mut body = vec![t];
    body.extend(rdb_string(b"old"));
    body.extend(len(st.listpacks.len() as u64));
    for (m, lp) in &st.listpacks {
        body.extend(rdb_string(&m.to_be()));
        body.extend(rdb_string(lp));
    }
    body.extend(len(st.length));
    body.extend(len(st.last_id.ms));
    body.extend(len(st.last_id.seq));
    if t != T_STREAM_LISTPACKS {
        for id in [st.first_id, st.max_deleted_id] {
            body.extend(len(id.ms));
            body.extend(len(id.seq));
        }
        body.extend(len(st.entries_added));
    }
    body.extend(len(st.groups.len() as u64));
    for (name, g) in &st.groups {
        body.extend(rdb_string(name));
        body.extend(len(g.last_id.ms));
        body.extend(len(g.last_id.seq));
        if t != T_STREAM_LISTPACKS {
            body.extend(len(g.entries_read as u64));
        }
        body.extend(len(g.pel.len() as u64));
        for (id, n) in &g.pel {
            body.extend(id.to_be());
            body.extend(n.delivery_time.to_le_bytes());
            body.extend(len(n.delivery_count));
        }
        body.extend(len(g.consumers.len() as u64));
        for (c, k) in &g.consumers {
            body.extend(rdb_string(c));
            body.extend(k.seen_time.to_le_bytes());
            if t == T_STREAM_LISTPACKS_3 {
                body.extend(k.active_time.unwrap_or(0).to_le_bytes());
            }
            body.extend(len(k.pel.len() as u64));
            for id in &k.pel {
                body.extend(id.to_be());
            }
        }
    }
    body
}

#[test]
fn stream_types_19_and_21_from_a_hand_built_body() {
    let st = sample_stream();
    let (got, _) = load_vec(&hand_rdb(&stream_body(T_STREAM_LISTPACKS_2, &st))).unwrap();
    match &got[0].entry(b"old").unwrap().value {
        Value::Stream(g) => assert_eq!(**g, st),
        v => panic!("{v:?}"),
    }
    let mut st21 = st.clone();
    for g in st21.groups.values_mut() {
        for (i, c) in g.consumers.values_mut().enumerate() {
            c.active_time = Some(1_700_000_000_900 + i as i64);
        }
    }
    let (got, _) = load_vec(&hand_rdb(&stream_body(T_STREAM_LISTPACKS_3, &st21))).unwrap();
    let Value::Stream(g) = &got[0].entry(b"old").unwrap().value else {
        panic!("not a stream")
    };
    assert_eq!(**g, st21);
    // Written back as type 19 (7.0 cannot load 21): active time dropped, rest equal.
    let data = save_vec(&got, &SaveOptions::default());
    let (back, _) = load_vec(&data).unwrap();
    match &back[0].entry(b"old").unwrap().value {
        Value::Stream(g) => assert_eq!(**g, st),
        v => panic!("{v:?}"),
    }
}

#[test]
fn stream_fuzz_mutations_never_panic() {
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    dbs[0].set(b("s"), Value::Stream(Box::new(sample_stream())), 0);
    let data = save_vec(
        &dbs,
        &SaveOptions {
            checksum: false,
            compression: false,
            ..SaveOptions::default()
        },
    );
    let start = data.iter().position(|&x| x == OP_SELECTDB).unwrap();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut errors = 0;
    for _ in 0..2000 {
        let mut m = data.clone();
        for _ in 0..(next() % 3 + 1) {
            let p = start + (next() as usize) % (m.len() - start);
            m[p] = next() as u8;
        }
        if load_vec(&m).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 100, "{errors}");
}

#[test]
fn stream_type_15_derives_missing_metadata() {
    let st = sample_stream();
    let (got, _) = load_vec(&hand_rdb(&stream_body(T_STREAM_LISTPACKS, &st))).unwrap();
    let Value::Stream(g) = &got[0].entry(b"old").unwrap().value else {
        panic!("not a stream")
    };
    assert_eq!(g.listpacks, st.listpacks);
    assert_eq!(g.first_id, StreamId::new(1000, 0));
    assert_eq!(g.entries_added, 17);
    assert!(g.max_deleted_id.is_zero());
    // g1's last id is inside the stream (not first, not last): unknown.
    assert_eq!(g.groups[&b("g1")].entries_read, -1);
    assert_eq!(g.groups[&b("g1")].pel, st.groups[&b("g1")].pel);
    assert_eq!(g.groups[&b("g1")].consumers, st.groups[&b("g1")].consumers);
    assert_eq!(g.groups[&b("g2")].entries_read, -1);
    // A group at the last ID has read everything; one before the first nothing.
    let mut st2 = st.clone();
    st2.groups.get_mut(&b("g1")).unwrap().last_id = st.last_id;
    st2.groups.get_mut(&b("g2")).unwrap().last_id = StreamId::new(1, 0);
    let (got, _) = load_vec(&hand_rdb(&stream_body(T_STREAM_LISTPACKS, &st2))).unwrap();
    let Value::Stream(g) = &got[0].entry(b"old").unwrap().value else {
        panic!("not a stream")
    };
    assert_eq!(g.groups[&b("g1")].entries_read, 17);
    assert_eq!(g.groups[&b("g2")].entries_read, 0);
}

#[test]
fn corrupt_streams_are_refused() {
    let st = sample_stream();
    // Length that does not match the live entries.
    let mut bad = st.clone();
    bad.length = 16;
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    dbs[0].set(b("s"), Value::Stream(Box::new(bad)), 0);
    let e = load_vec(&save_vec(&dbs, &SaveOptions::default())).unwrap_err();
    assert!(e.to_string().contains("stream length"), "{e}");
    // A consumer PEL id missing from the group PEL.
    let mut bad = st.clone();
    let g = bad.groups.get_mut(&b("g1")).unwrap();
    g.consumers
        .get_mut(&b("idle"))
        .unwrap()
        .pel
        .insert(StreamId::new(9, 9));
    dbs[0].set(b("s"), Value::Stream(Box::new(bad)), 0);
    let e = load_vec(&save_vec(&dbs, &SaveOptions::default())).unwrap_err();
    assert!(e.to_string().contains("not found in the group PEL"), "{e}");
    // A damaged listpack (its lp-count) inside a stream.
    let mut bad = st.clone();
    let (m, lp) = bad
        .listpacks
        .iter()
        .next()
        .map(|(m, l)| (*m, l.clone()))
        .unwrap();
    let mut lp = lp.to_vec();
    let n = lp.len();
    lp[n - 3] ^= 1; // last entry's lp-count (1-byte int + 1-byte backlen + 0xFF)
    bad.listpacks.insert(m, lp);
    dbs[0].set(b("s"), Value::Stream(Box::new(bad)), 0);
    let e = load_vec(&save_vec(&dbs, &SaveOptions::default())).unwrap_err();
    assert!(matches!(e, RdbError::Corrupt { .. }), "{e}");
    // Every truncation fails cleanly.
    dbs[0].set(b("s"), Value::Stream(Box::new(st)), 0);
    let data = save_vec(
        &dbs,
        &SaveOptions {
            checksum: false,
            ..SaveOptions::default()
        },
    );
    for cut in 0..data.len() - 9 {
        assert!(load_vec(&data[..cut]).is_err(), "cut {cut}");
    }
}

#[test]
fn header_errors() {
    assert!(matches!(
        load_vec(b"RADIS0010\xff"),
        Err(RdbError::WrongSignature)
    ));
    assert!(matches!(load_vec(b"RED"), Err(RdbError::WrongSignature)));
    assert!(matches!(
        load_vec(b"REDIS0011\xff"),
        Err(RdbError::UnsupportedVersion(11))
    ));
    // No databases at all: refused, not a panic.
    let data = save_vec(&sample_dbs(), &SaveOptions::default());
    assert!(matches!(
        load(
            &mut &data[..],
            &mut [],
            &LoadOptions {
                now_ms: 0,
                drop_expired: false,
                ..Default::default()
            }
        ),
        Err(RdbError::TooManyDbs(0))
    ));
    let body = vec![OP_SELECTDB, 16];
    assert!(matches!(
        load_vec(&hand_rdb(&body)),
        Err(RdbError::TooManyDbs(16))
    ));
    let mut dup = vec![];
    for _ in 0..2 {
        dup.push(T_STRING);
        dup.extend(rdb_string(b"k"));
        dup.extend(rdb_string(b"v"));
    }
    assert!(matches!(
        load_vec(&hand_rdb(&dup)),
        Err(RdbError::DuplicateKey { .. })
    ));
}

#[test]
fn flipped_byte_is_a_checksum_error_and_truncation_is_detected() {
    let data = save_vec(&sample_dbs(), &SaveOptions::default());
    let mut bad = data.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    match load_vec(&bad) {
        Err(RdbError::BadChecksum { .. }) | Err(RdbError::Corrupt { .. }) => {}
        other => panic!(
            "expected checksum/corrupt error, got {:?}",
            other.map(|x| x.1)
        ),
    }
    // A flip inside a raw string payload is only caught by the checksum.
    let mut bad = data.clone();
    let pos = data.windows(5).position(|w| w == b"hello").unwrap();
    bad[pos] = b'j';
    assert!(matches!(load_vec(&bad), Err(RdbError::BadChecksum { .. })));
    for cut in [data.len() - 1, data.len() - 9, data.len() / 2, 10] {
        assert!(
            matches!(load_vec(&data[..cut]), Err(RdbError::Truncated(_))),
            "cut at {cut}"
        );
    }
}

#[test]
fn forged_lengths_fail_without_huge_allocation() {
    // A string claiming 2^62 bytes, a list claiming 2^32 elements.
    let mut body = vec![T_STRING, 0x81];
    body.extend((1u64 << 62).to_be_bytes());
    assert!(load_vec(&hand_rdb(&body)).is_err());
    let mut body = vec![T_LIST];
    body.extend(rdb_string(b"l"));
    body.push(0x80);
    body.extend(u32::MAX.to_be_bytes());
    assert!(load_vec(&hand_rdb(&body)).is_err());
    assert!(matches!(
        load_vec(&body_only(&body)),
        Err(RdbError::Truncated(_))
    ));
    // LZF claiming a huge uncompressed size.
    let mut body = vec![T_STRING];
    body.extend(rdb_string(b"k"));
    body.extend([0xC3, 0x02, 0x81]);
    body.extend((1u64 << 40).to_be_bytes());
    body.extend([0x00, b'a']);
    assert!(matches!(
        load_vec(&hand_rdb(&body)),
        Err(RdbError::Corrupt { .. })
    ));
}

#[test]
fn fuzz_mutations_never_panic() {
    let data = save_vec(
        &sample_dbs(),
        &SaveOptions {
            checksum: false,
            ..SaveOptions::default()
        },
    );
    // Deterministic xorshift so failures reproduce.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut errors = 0;
    for _ in 0..300 {
        let mut m = data.clone();
        for _ in 0..(next() % 4 + 1) {
            let p = (next() as usize) % m.len();
            m[p] = next() as u8;
        }
        if next() % 5 == 0 {
            let cut = (next() as usize) % m.len();
            m.truncate(cut);
        }
        if load_vec(&m).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0);
}

#[test]
fn pre_release_function_entries_load_as_library_codes() {
    // The 7.0-rc1/rc2 FUNCTION layout: name, engine, description flag (+ text), code
    // without its metadata line, which the loader rebuilds; parts end at a NUL.
    let mut body = vec![OP_FUNCTION];
    body.extend(rdb_string(b"old"));
    body.extend(rdb_string(b"LUA"));
    body.push(1);
    body.extend(rdb_string(b"dropped"));
    body.extend(rdb_string(b"return 1\0ignored"));
    body.push(OP_FUNCTION2);
    body.extend(rdb_string(b"#!lua name=new\nreturn 2"));
    let (_, info) = load_vec(&hand_rdb(&body)).unwrap();
    assert_eq!(
        info.functions,
        vec![b("#!LUA name=old\nreturn 1"), b("#!lua name=new\nreturn 2")]
    );
}
