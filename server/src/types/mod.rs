//! Keyspace layer: the value types a key can hold. One file per type with the
//! operations commands need; encodings reported by OBJECT ENCODING are derived
//! from size the way Redis 7.0 chooses them.

pub mod geohash;
pub mod hash;
pub mod hll;
pub mod key;
pub mod list;
pub mod set;
pub mod stream;
pub mod stream_group;
pub mod string;
pub mod varint;
pub mod zset;

use bytes::Bytes;
use std::collections::{HashMap, HashSet};

pub use hash::Hash;
pub use list::List;

/// The limits of a compact shape (Redis's `*-max-listpack-entries` and
/// `*-max-listpack-value`): at most `entries` elements of at most `value` bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub entries: usize,
    pub value: usize,
}

impl Limits {
    /// Redis 7.0's compiled-in `hash-max-listpack-*` (its sample redis.conf says 128
    /// entries).
    pub const HASH: Limits = Limits {
        entries: 512,
        value: 64,
    };
    /// Redis 7.0's `zset-max-listpack-*`.
    pub const ZSET: Limits = Limits {
        entries: 128,
        value: 64,
    };

    /// The hash limits in force (CONFIG SET applies to later writes and loads).
    pub fn hash(c: &crate::config::Config) -> Limits {
        Limits {
            entries: c.hash_max_listpack_entries,
            value: c.hash_max_listpack_value,
        }
    }

    /// The sorted-set limits in force.
    pub fn zset(c: &crate::config::Config) -> Limits {
        Limits {
            entries: c.zset_max_listpack_entries,
            value: c.zset_max_listpack_value,
        }
    }
}
pub use set::Set;
pub use stream::Stream;
pub use string::Str;
pub use zset::ZSet;

/// The keyspace's hash builder: ahash with one random seed per process.
///
/// Why a zero-sized type: `ahash::RandomState` carries its 32-byte seed in every
/// map, which made a hash or set value (and so every `Value`) 32 bytes larger.
/// The seed is still random (drawn once), so hash flooding stays impractical.
#[derive(Clone, Copy, Default, Debug)]
pub struct Hasher;

impl std::hash::BuildHasher for Hasher {
    type Hasher = ahash::AHasher;
    #[inline]
    fn build_hasher(&self) -> ahash::AHasher {
        // Not state: one random seed drawn at first use and never changed after
        // (stored in every map it would cost 32 bytes per hash value, see above).
        static SEED: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
        SEED.get_or_init(ahash::RandomState::new).build_hasher()
    }
}
pub type HashMapB = HashMap<Bytes, Bytes, Hasher>;
pub type HashSetB = HashSet<Bytes, Hasher>;

/// A value stored under a key.
///
/// 16 bytes, stored once per key (see docs/benchmarks.md, optimisation log): the
/// string handle is 16 bytes and the enum's tag fits in its spare tag values, so
/// every other variant is one pointer. Containers are boxed for that reason: a
/// key holding a container pays one more small block, every string key saves 24
/// bytes.
#[derive(Debug, Clone)]
pub enum Value {
    Str(Str),
    /// Boxed: see types/list.rs for its nodes.
    List(Box<List>),
    Hash(Box<Hash>),
    /// Boxed: `Set` is 24 bytes (see types/set.rs for its shapes).
    Set(Box<Set>),
    ZSet(Box<ZSet>),
    /// Boxed: a stream's metadata is much larger than the other variants.
    Stream(Box<Stream>),
}

impl Value {
    /// Starts loading what looking `m` up in a big set or hash would touch (see
    /// `Db::prefetch`); nothing for other values.
    #[inline]
    pub fn prefetch_member(&self, m: &[u8]) {
        match self {
            Value::Set(s) => s.prefetch(m),
            Value::Hash(h) => h.prefetch(m),
            _ => {}
        }
    }

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
        Value::Hash(Box::default())
    }

    pub fn new_set() -> Self {
        Value::Set(Box::default())
    }
}

/// True if `s` is the canonical decimal form of an i64 (what Redis stores as "int").
pub fn is_canonical_int(s: &[u8]) -> bool {
    crate::resp::parse_i64(s).is_some()
}
