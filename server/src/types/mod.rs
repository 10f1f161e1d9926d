//! Keyspace layer: the value types a key can hold. One file per type with the
//! operations commands need; encodings reported by OBJECT ENCODING are derived
//! from size the way Redis 7.0 chooses them.

pub mod stream;
pub mod zset;

use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};

pub use stream::Stream;
pub use zset::ZSet;

pub type Hasher = ahash::RandomState;
pub type HashMapB = HashMap<Bytes, Bytes, Hasher>;
pub type HashSetB = HashSet<Bytes, Hasher>;

/// A value stored under a key.
#[derive(Debug, Clone)]
pub enum Value {
    Str(Bytes),
    List(VecDeque<Bytes>),
    Hash(HashMapB),
    Set(HashSetB),
    ZSet(ZSet),
    /// Boxed: a stream's metadata is much larger than the other variants.
    Stream(Box<Stream>),
}

impl Value {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// True for containers that became empty; Redis deletes such keys.
    pub fn is_empty_container(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            // Redis keeps streams with no entries (they carry IDs and groups).
            Value::Stream(_) => false,
        }
    }

    pub fn new_hash() -> Self {
        Value::Hash(HashMapB::default())
    }

    pub fn new_set() -> Self {
        Value::Set(HashSetB::default())
    }
}

/// True if `s` is the canonical decimal form of an i64 (what Redis stores as "int").
pub fn is_canonical_int(s: &[u8]) -> bool {
    crate::resp::parse_i64(s).is_some()
}
