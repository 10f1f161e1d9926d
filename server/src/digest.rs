//! DEBUG DIGEST / DIGEST-VALUE: a SHA1-based fingerprint of the dataset that equals
//! Redis 7.0's for the same data, so a Tandem replica, a Tandem master and a real
//! Redis can prove they converged by comparing one 40-hex-digit string.
//!
//! Construction (the same as Redis's `computeDatasetDigest`):
//! - `xor(d, bytes)`: `d ^= SHA1(bytes)`; order-independent accumulation.
//! - `mix(d, bytes)`: `xor(d, bytes)` then `d = SHA1(d)`; order-dependent.
//! - Per key, starting from 20 zero bytes: `mix(key)`, `mix(type as u32 big-endian)`
//!   (string 0, list 1, set 2, zset 3, hash 4, stream 6), then the value:
//!   string: `mix(bytes)`; list: `mix(element)` head to tail; set: `xor(member)`
//!   each; hash: per field an element digest `e = 0; mix(e, field); mix(e, value)`
//!   then `xor(d, e)`; zset: per member `e = 0; mix(e, member); mix(e, score)`
//!   then `xor(d, e)`, with the score printed as `%.17g`; stream (type 6): per live
//!   entry in ID order `mix("<ms>.<seq>")` then `mix(field)`, `mix(value)` for each
//!   field (integers as decimal text); consumer groups are not part of the digest.
//!   A key with a TTL additionally gets `xor(d, "!!expire!!")` (the TTL value itself
//!   is not hashed).
//! - Dataset: start from zero; for every non-empty database `mix(final, db index as
//!   u32 big-endian)`, then `xor(final, key digest)` for each of its keys.
//!
//! An empty dataset (or a missing key) therefore digests to 40 zeros.

use crate::db::{Db, EntryRef};
use crate::types::Value;

pub type Digest = [u8; 20];

fn sha1(data: &[u8]) -> Digest {
    sha1_smol::Sha1::from(data).digest().bytes()
}

/// `d ^= SHA1(data)`.
pub fn xor_digest(d: &mut Digest, data: &[u8]) {
    let h = sha1(data);
    for (a, b) in d.iter_mut().zip(h.iter()) {
        *a ^= b;
    }
}

/// `d ^= SHA1(data); d = SHA1(d)`.
pub fn mix_digest(d: &mut Digest, data: &[u8]) {
    xor_digest(d, data);
    *d = sha1(&d[..]);
}

fn type_code(v: &Value) -> u32 {
    match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    }
}

/// Mixes a value (and its expire marker) into `d`, the digest of one key.
pub fn value_digest(d: &mut Digest, entry: EntryRef<'_>) {
    let v = entry.value;
    mix_digest(d, &type_code(v).to_be_bytes());
    match v {
        Value::Str(s) => mix_digest(d, s),
        Value::List(l) => {
            for e in l.iter() {
                mix_digest(d, e);
            }
        }
        Value::Set(s) => {
            for m in s.iter() {
                m.with(|b| xor_digest(d, b));
            }
        }
        Value::Hash(h) => {
            for (f, val) in h.iter() {
                let mut e = [0u8; 20];
                mix_digest(&mut e, f);
                mix_digest(&mut e, val);
                xor_digest(d, &e);
            }
        }
        Value::ZSet(z) => {
            for (m, score) in z.iter() {
                let mut e = [0u8; 20];
                mix_digest(&mut e, m);
                mix_digest(&mut e, score_text(score).as_bytes());
                xor_digest(d, &e);
            }
        }
        Value::Stream(st) => {
            for e in st.entries() {
                mix_digest(d, format!("{}.{}", e.id.ms, e.id.seq).as_bytes());
                for (f, val) in &e.fields {
                    mix_digest(d, f);
                    mix_digest(d, val);
                }
            }
        }
    }
    if entry.meta.has_expire() {
        xor_digest(d, b"!!expire!!");
    }
}

/// The score text Redis 7.0 hashes: C's `%.17g` (`inf`, `-inf` for infinities).
fn score_text(score: f64) -> String {
    crate::resp::format_double(score)
}

/// DEBUG DIGEST-VALUE for one key (zeros when it does not exist). Like Redis, this
/// looks at logically expired keys too.
pub fn key_digest(db: &Db, key: &[u8]) -> Digest {
    let mut d = [0u8; 20];
    if let Some(e) = db.entry(key) {
        value_digest(&mut d, e);
    }
    d
}

/// DEBUG DIGEST over all databases.
pub fn dataset_digest(dbs: &[Db]) -> Digest {
    let mut fin = [0u8; 20];
    for (i, db) in dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        mix_digest(&mut fin, &(i as u32).to_be_bytes());
        for (k, e) in db.iter() {
            let mut d = [0u8; 20];
            mix_digest(&mut d, k);
            value_digest(&mut d, e);
            xor_digest(&mut fin, &d);
        }
    }
    fin
}

pub fn hex(d: &Digest) -> String {
    let mut s = String::with_capacity(40);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn empty_dataset_digests_to_zeros() {
        let dbs = vec![Db::new(), Db::new()];
        assert_eq!(hex(&dataset_digest(&dbs)), "0".repeat(40));
        assert_eq!(hex(&key_digest(&dbs[0], b"nokey")), "0".repeat(40));
    }

    #[test]
    fn populate_vector_matches_redis_7_0_15() {
        // `DEBUG POPULATE 3 k 5` on an empty Redis 7.0.15 gives this digest.
        let mut db = Db::new();
        for i in 0..3 {
            db.set(
                Bytes::from(format!("k:{i}")),
                Value::Str(b"value".into()),
                0,
            );
        }
        assert_eq!(
            hex(&dataset_digest(&[db])),
            "aecc5c22d2e4d91f443ebad5fffa3da909d7eecc"
        );
    }

    #[test]
    fn zset_scores_hash_as_printf_17g_like_redis_7_0_15() {
        // `ZADD z 0.1 a` / `ZADD z 1.5 a` then `DEBUG DIGEST-VALUE z` on Redis 7.0.15.
        for (score, want) in [
            (0.1, "b07654932c32238dbd9b8626f0dc40f18d973527"),
            (1.5, "4abede9eeefb1bae2bf5394291a39b9e34b5b2b6"),
        ] {
            let mut z = crate::types::ZSet::new();
            z.insert(
                Bytes::from_static(b"a"),
                score,
                crate::types::zset::Limits::ZSET,
            );
            let mut db = Db::new();
            db.set(Bytes::from_static(b"z"), Value::ZSet(Box::new(z)), 0);
            assert_eq!(hex(&key_digest(&db, b"z")), want, "score {score}");
        }
    }

    #[test]
    fn set_and_hash_digests_do_not_depend_on_order() {
        let mut a = Db::new();
        let mut b = Db::new();
        let mut s1 = crate::types::Set::new();
        let mut s2 = crate::types::Set::new();
        for i in 0..50 {
            s1.insert(format!("m{i}").as_bytes(), 512);
        }
        for i in (0..50).rev() {
            s2.insert(format!("m{i}").as_bytes(), 512);
        }
        a.set(Bytes::from_static(b"s"), Value::Set(Box::new(s1)), 0);
        b.set(Bytes::from_static(b"s"), Value::Set(Box::new(s2)), 0);
        assert_eq!(key_digest(&a, b"s"), key_digest(&b, b"s"));
    }
}
