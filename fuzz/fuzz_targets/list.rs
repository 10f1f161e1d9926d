//! The list type's packed nodes (`types::list::List`) against a `VecDeque` model.
//!
//! Byte 0 picks the node fill (`list-max-listpack-size`) from a small table, from one
//! element per node to 64 KiB nodes. The rest is a tape of 3-byte operations:
//! `op, a, b`, where `op` selects push/pop at either end, insert, set, LREM, LTRIM,
//! index and range reads, LPOS; `a` and `b` are indexes, counts or element choices.
//! Elements come from a small alphabet (so LREM and LPOS find matches) plus a few
//! long ones that do not fit a node. After every operation the list's length and
//! its forward and backward walks equal the model's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use tandem_server::types::List;

const FILLS: [i32; 8] = [-1, -2, -5, 0, 1, 2, 5, 128];

fn element(b: u8) -> Vec<u8> {
    match b % 16 {
        0 => Vec::new(),
        1 => vec![b'L'; 5000 + b as usize * 10],
        2 => vec![b'M'; 200],
        k => format!("e{}", k % 6).into_bytes(),
    }
}

fn check(l: &List, m: &VecDeque<Vec<u8>>) {
    assert_eq!(l.len(), m.len(), "length");
    assert!(l.iter().eq(m.iter().map(|v| &v[..])), "forward walk");
    assert!(l.iter_rev().eq(m.iter().rev().map(|v| &v[..])), "backward walk");
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, tape)) = data.split_first() else {
        return;
    };
    let mut l = List::new(FILLS[first as usize % FILLS.len()]);
    let mut m: VecDeque<Vec<u8>> = VecDeque::new();
    for op in tape.chunks_exact(3) {
        let (a, b) = (op[1] as usize, op[2]);
        let len = m.len();
        match op[0] % 10 {
            0 | 1 => {
                let front = op[0] % 2 == 0;
                let v = element(b);
                l.push(&v, front);
                if front {
                    m.push_front(v);
                } else {
                    m.push_back(v);
                }
            }
            2 => {
                let front = b % 2 == 0;
                let want = if front { m.pop_front() } else { m.pop_back() };
                assert_eq!(l.pop(front).map(|v| v.to_vec()), want, "pop");
            }
            3 => {
                let i = a % (len + 1);
                let v = element(b);
                l.insert(i, &v);
                m.insert(i, v);
            }
            4 => {
                let v = element(b);
                let ok = l.set(a, &v);
                assert_eq!(ok, a < len, "set in range");
                if ok {
                    m[a] = v;
                }
            }
            5 => {
                let target = element(b);
                let count = (a as i64 % 7) - 3;
                let hits: Vec<usize> = (0..len).filter(|&i| m[i] == target).collect();
                let n = if count == 0 {
                    hits.len()
                } else {
                    (count.unsigned_abs() as usize).min(hits.len())
                };
                let gone: Vec<usize> = if count >= 0 {
                    hits[..n].to_vec()
                } else {
                    hits[hits.len() - n..].to_vec()
                };
                for &i in gone.iter().rev() {
                    m.remove(i);
                }
                assert_eq!(l.remove(&target, count), n, "LREM count");
            }
            6 if len > 0 => {
                let s = a % len;
                let e = s + b as usize % (len - s);
                l.trim(s, e);
                m.truncate(e + 1);
                m.drain(..s);
            }
            7 => {
                assert_eq!(l.get(a), m.get(a).map(|v| &v[..]), "index");
                let n = b as usize;
                let got: Vec<&[u8]> = l.range(a, n).collect();
                let want: Vec<&[u8]> = m.iter().skip(a).take(n).map(|v| &v[..]).collect();
                assert_eq!(got, want, "range");
            }
            8 => {
                let target = element(b);
                let rank = (a as i64 % 5) - 2;
                let rank = if rank == 0 { 1 } else { rank };
                let want = (a / 5) % 4; // 0 = all
                let maxlen = (a / 20) % 8;
                let scan = if maxlen == 0 { len } else { maxlen.min(len) };
                let order: Vec<usize> = if rank > 0 {
                    (0..scan).collect()
                } else {
                    (len - scan..len).rev().collect()
                };
                let expect: Vec<usize> = order
                    .into_iter()
                    .filter(|&i| m[i] == target)
                    .skip(rank.unsigned_abs() as usize - 1)
                    .take(if want == 0 { usize::MAX } else { want })
                    .collect();
                let got = l.positions(&target, rank, if want == 0 { usize::MAX } else { want }, maxlen);
                assert_eq!(got, expect, "LPOS");
            }
            _ => {}
        }
        check(&l, &m);
    }
});
