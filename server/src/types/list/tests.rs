//! Node logic of the list type, and a seeded model test against a `VecDeque`.
use super::*;

fn l(fill: i32, items: &[&str]) -> List {
    let mut l = List::new(fill);
    for i in items {
        l.push_back(i.as_bytes());
    }
    l
}

fn all(l: &List) -> Vec<String> {
    l.iter()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

/// What every list must satisfy between operations: the element count adds up, no
/// node is empty, each node's count matches its bytes, and no node is over its cap
/// unless it holds a single element.
fn check(l: &List) {
    let cap = l.cap();
    let mut total = 0;
    for (i, n) in l.nodes.iter().enumerate() {
        assert!(n.count > 0, "node {i} is empty");
        assert_eq!(
            NodeIter::new(n.data()).count(),
            n.count as usize,
            "node {i}"
        );
        assert!(!n.over(cap), "node {i} over {cap:?}: {} bytes", n.bytes());
        total += n.count as usize;
    }
    assert_eq!(total, l.len());
    assert_eq!(l.iter().count(), l.len());
    let mut rev: Vec<&[u8]> = l.iter_rev().collect();
    rev.reverse();
    assert!(rev.iter().copied().eq(l.iter()), "backwards walk disagrees");
}

#[test]
fn pushes_split_nodes_at_the_byte_cap() {
    for fill in [-1, -2, -5] {
        let cap = Cap::of(fill).bytes;
        let mut l = List::new(fill);
        for i in 0..5000 {
            l.push_back(format!("value-{i:04}").as_bytes());
        }
        check(&l);
        // 12-byte entries: every node but the last is full to within one entry.
        let per_node = cap / 12;
        assert_eq!(l.node_count(), 5000usize.div_ceil(per_node), "fill {fill}");
        let mut f = List::new(fill);
        for i in 0..5000 {
            f.push_front(format!("value-{i:04}").as_bytes());
        }
        check(&f);
        assert_eq!(f.node_count(), l.node_count());
        assert_eq!(f.get(0), Some(&b"value-4999"[..]));
        assert_eq!(f.get(4999), Some(&b"value-0000"[..]));
    }
}

#[test]
fn a_positive_fill_caps_elements_per_node() {
    let l = l(3, &["a", "b", "c", "d", "e", "f", "g"]);
    check(&l);
    let counts: Vec<u32> = l.nodes.iter().map(|n| n.count).collect();
    assert_eq!(counts, vec![3, 3, 1]);
    // Fill 0 admits no second element into a node.
    let z = super::tests::l(0, &["a", "b"]);
    assert_eq!(z.node_count(), 2);
}

#[test]
fn big_elements_get_a_node_of_their_own() {
    let mut l = List::new(-1);
    l.push_back(b"small");
    l.push_back(&vec![b'x'; 10_000]);
    l.push_back(b"after");
    l.push_front(&vec![b'y'; 5_000]);
    check(&l);
    assert_eq!(l.node_count(), 4);
    assert_eq!(l.get(2).map(<[u8]>::len), Some(10_000));
    assert_eq!(l.pop(true).map(|b| b.len()), Some(5_000));
    assert_eq!(l.pop(false).as_deref(), Some(&b"after"[..]));
    check(&l);
}

#[test]
fn both_ends_push_and_pop_in_order() {
    let mut l = List::new(2);
    for i in 0..10 {
        l.push_front(format!("f{i}").as_bytes());
        l.push_back(format!("b{i}").as_bytes());
    }
    check(&l);
    assert_eq!(all(&l)[..3], ["f9", "f8", "f7"]);
    assert_eq!(all(&l)[17..], ["b7", "b8", "b9"]);
    let mut got = Vec::new();
    while let Some(v) = l.pop_with(false, |e| String::from_utf8_lossy(e).into_owned()) {
        got.push(v);
    }
    assert_eq!(got.len(), 20);
    assert_eq!(got[0], "b9");
    assert_eq!(got[19], "f9");
    assert_eq!(l.node_count(), 0, "popped-empty nodes are dropped");
    assert!(l.is_empty());
}

#[test]
fn indexes_and_ranges_cross_node_boundaries() {
    let items: Vec<String> = (0..50).map(|i| format!("e{i}")).collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let mut l = l(4, &refs);
    check(&l);
    for (i, want) in items.iter().enumerate() {
        assert_eq!(l.get(i), Some(want.as_bytes()));
    }
    assert_eq!(l.get(50), None);
    let r: Vec<&[u8]> = l.range(3, 10).collect();
    assert_eq!(r.len(), 10);
    assert_eq!(r[0], b"e3");
    assert_eq!(r[9], b"e12");
    assert_eq!(l.range(45, 100).count(), 5);
    assert_eq!(l.range(50, 1).count(), 0);
    for i in [0, 3, 4, 7, 49] {
        assert!(l.set(i, format!("set{i}-longer-than-before").as_bytes()));
        assert_eq!(
            l.get(i),
            Some(format!("set{i}-longer-than-before").as_bytes())
        );
    }
    assert!(!l.set(50, b"x"));
    check(&l);
}

#[test]
fn inserts_split_full_nodes() {
    let mut l = l(2, &["a", "b", "c", "d"]);
    l.insert(2, b"X"); // between the two nodes
    l.insert(1, b"Y"); // inside a full node
    l.insert(0, b"F");
    l.insert(l.len(), b"L");
    check(&l);
    assert_eq!(all(&l), ["F", "a", "Y", "b", "X", "c", "d", "L"]);
    // Byte-capped nodes split too when an insert or a set overfills them.
    let mut b = List::new(-1);
    for _ in 0..300 {
        b.push_back(&[b'z'; 11]); // 13-byte entries: 315 fit in 4 KiB
    }
    assert_eq!(b.node_count(), 1);
    b.insert(150, &[b'q'; 200]);
    check(&b);
    assert!(b.node_count() > 1);
    b.set(10, &[b'w'; 4000]);
    check(&b);
    assert_eq!(b.get(150).map(<[u8]>::len), Some(200));
}

#[test]
fn lrem_counts_from_either_end_across_nodes() {
    let items = ["x", "a", "x", "b", "x", "c", "x", "d", "x"];
    let mut fwd = l(2, &items);
    assert_eq!(fwd.remove(b"x", 2), 2);
    assert_eq!(all(&fwd), ["a", "b", "x", "c", "x", "d", "x"]);
    check(&fwd);
    let mut back = l(2, &items);
    assert_eq!(back.remove(b"x", -3), 3);
    assert_eq!(all(&back), ["x", "a", "x", "b", "c", "d"]);
    check(&back);
    let mut every = l(2, &items);
    assert_eq!(every.remove(b"x", 0), 5);
    assert_eq!(all(&every), ["a", "b", "c", "d"]);
    check(&every);
    assert_eq!(every.remove(b"nope", 0), 0);
    // Removing everything leaves no nodes behind.
    let mut gone = l(2, &["x", "x", "x", "x", "x"]);
    assert_eq!(gone.remove(b"x", -100), 5);
    assert_eq!(gone.node_count(), 0);
    assert!(gone.is_empty());
}

#[test]
fn lrem_merges_nodes_it_left_sparse() {
    let mut l = List::new(4);
    for i in 0..40 {
        l.push_back(if i % 4 == 0 { b"keep" } else { b"drop" });
    }
    assert_eq!(l.node_count(), 10);
    assert_eq!(l.remove(b"drop", 0), 30);
    check(&l);
    assert_eq!(
        l.node_count(),
        3,
        "10 one-element nodes become 3 of up to 4"
    );
}

#[test]
fn trims_cut_whole_and_partial_nodes() {
    let items: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let mut t = l(3, &refs);
    t.trim(4, 13);
    check(&t);
    assert_eq!(all(&t), refs[4..=13]);
    assert_eq!(
        t.node_count(),
        4,
        "partial nodes at both ends, 2 whole in between"
    );
    t.trim(5, 100);
    assert_eq!(all(&t), refs[9..=13]);
    t.trim(3, 2);
    assert!(t.is_empty());
    assert_eq!(t.node_count(), 0);
}

#[test]
fn positions_follow_rank_count_and_maxlen() {
    let l = l(2, &["a", "b", "a", "c", "a", "a"]);
    assert_eq!(l.positions(b"a", 1, usize::MAX, 0), vec![0, 2, 4, 5]);
    assert_eq!(l.positions(b"a", 2, 2, 0), vec![2, 4]);
    assert_eq!(l.positions(b"a", -1, 2, 0), vec![5, 4]);
    assert_eq!(l.positions(b"a", -3, 1, 0), vec![2]);
    assert_eq!(l.positions(b"a", 1, usize::MAX, 3), vec![0, 2]);
    assert_eq!(l.positions(b"a", -1, usize::MAX, 2), vec![5, 4]);
    assert_eq!(l.positions(b"z", 1, 1, 0), Vec::<usize>::new());
}

#[test]
fn debug_and_equality_ignore_the_node_layout() {
    let a = l(1, &["a", "b\r\n"]);
    let b = l(-2, &["a", "b\r\n"]);
    assert_eq!(a, b);
    assert_eq!(format!("{a:?}"), r#"[b"a", b"b\r\n"]"#);
    assert!(a.contains(b"b\r\n"));
    assert!(!a.contains(b"b"));
}

/// Seeded random operations against a `VecDeque` model, under node caps from one
/// element per node to 64 KiB, with elements from empty to larger than a node.
#[test]
fn random_operations_match_a_vecdeque_model() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::collections::VecDeque;
    for fill in [-5, -2, -1, 0, 1, 2, 3, 7, 128] {
        let mut rng = StdRng::seed_from_u64(0x5eed ^ fill as u64);
        let mut l = List::new(fill);
        let mut m: VecDeque<Vec<u8>> = VecDeque::new();
        for step in 0..4000 {
            let v: Vec<u8> = match rng.gen_range(0..20) {
                0 => Vec::new(),
                1 => vec![b'B'; rng.gen_range(100..9000)],
                _ => format!("v{}", rng.gen_range(0..12)).into_bytes(),
            };
            let op = rng.gen_range(0..12);
            let len = m.len();
            match op {
                0..=2 => {
                    l.push_front(&v);
                    m.push_front(v);
                }
                3..=5 => {
                    l.push_back(&v);
                    m.push_back(v);
                }
                6 => {
                    let front = rng.gen_bool(0.5);
                    let want = if front { m.pop_front() } else { m.pop_back() };
                    assert_eq!(l.pop(front).map(|b| b.to_vec()), want, "step {step}");
                }
                7 => {
                    let i = rng.gen_range(0..=len);
                    l.insert(i, &v);
                    m.insert(i, v);
                }
                8 if len > 0 => {
                    let i = rng.gen_range(0..len);
                    assert!(l.set(i, &v));
                    m[i] = v;
                }
                9 => {
                    let count = rng.gen_range(-3i64..=3);
                    let target = format!("v{}", rng.gen_range(0..12)).into_bytes();
                    let matches: Vec<usize> = (0..len).filter(|&i| m[i] == target).collect();
                    let n = if count == 0 {
                        matches.len()
                    } else {
                        (count.unsigned_abs() as usize).min(matches.len())
                    };
                    let chosen: Vec<usize> = if count >= 0 {
                        matches[..n].to_vec()
                    } else {
                        matches[matches.len() - n..].to_vec()
                    };
                    for &i in chosen.iter().rev() {
                        m.remove(i);
                    }
                    assert_eq!(l.remove(&target, count), n, "step {step}");
                }
                10 if len > 0 && rng.gen_range(0..8) == 0 => {
                    let s = rng.gen_range(0..len);
                    let e = rng.gen_range(s..len);
                    l.trim(s, e);
                    m.truncate(e + 1);
                    m.drain(..s);
                }
                _ if len > 0 => {
                    let i = rng.gen_range(0..len);
                    assert_eq!(l.get(i), Some(&m[i][..]), "step {step}");
                    let n = rng.gen_range(0..20);
                    let got: Vec<&[u8]> = l.range(i, n).collect();
                    let want: Vec<&[u8]> = m.range(i..(i + n).min(len)).map(|v| &v[..]).collect();
                    assert_eq!(got, want, "step {step}");
                }
                _ => {}
            }
            assert_eq!(l.len(), m.len());
            if step % 97 == 0 {
                check(&l);
                assert!(
                    l.iter().eq(m.iter().map(|v| &v[..])),
                    "fill {fill} step {step}"
                );
            }
        }
        check(&l);
        assert!(l.iter().eq(m.iter().map(|v| &v[..])), "fill {fill}");
    }
}

#[test]
fn a_full_node_block_is_its_cap() {
    for front in [false, true] {
        let mut l = List::new(-2);
        for i in 0..2000 {
            l.push(format!("value-{i:04}").as_bytes(), front);
        }
        check(&l);
        for n in &l.nodes {
            assert!(
                n.buf.capacity() <= 8192,
                "block of {} bytes",
                n.buf.capacity()
            );
        }
        let blocks: usize = l.nodes.iter().map(|n| n.buf.capacity()).sum();
        assert!(
            blocks <= 4 * 8192,
            "{blocks} bytes of blocks for 24000 bytes of entries"
        );
    }
}

#[test]
fn a_queue_on_one_node_does_not_grow_its_block() {
    // RPUSH + LPOP keep a short list in one node whose front is always being popped.
    let mut l = List::new(-2);
    for i in 0..100_000u32 {
        l.push_back(format!("job-{i}").as_bytes());
        if l.len() > 10 {
            l.pop(true);
        }
    }
    check(&l);
    assert_eq!(l.node_count(), 1);
    let block = l.nodes[0].buf.capacity();
    assert!(
        block <= 512,
        "a 10-element queue holds a {block}-byte block"
    );
    // And the mirror: LPUSH + RPOP.
    let mut r = List::new(-2);
    for i in 0..100_000u32 {
        r.push_front(format!("job-{i}").as_bytes());
        if r.len() > 10 {
            r.pop(false);
        }
    }
    check(&r);
    assert!(r.nodes.iter().map(|n| n.buf.capacity()).sum::<usize>() <= 512);
}

#[test]
fn trims_and_removals_give_back_sparse_blocks() {
    let mut l = List::new(-2);
    for i in 0..600 {
        l.push_back(format!("value-{i:04}").as_bytes());
    }
    l.trim(300, 301);
    check(&l);
    let blocks: usize = l.nodes.iter().map(|n| n.buf.capacity()).sum();
    assert!(blocks <= 128, "2 elements kept in {blocks} bytes of blocks");
    assert_eq!(all(&l), ["value-0300", "value-0301"]);
    let mut r = List::new(-2);
    for i in 0..600 {
        r.push_back(if i == 7 { b"keep" } else { b"drop" });
    }
    r.remove(b"drop", 0);
    check(&r);
    assert!(r.nodes.iter().map(|n| n.buf.capacity()).sum::<usize>() <= 128);
}
