//! Compact key storage for the keyspace.
//!
//! Why: a `Bytes` handle is 32 bytes plus a separate heap block even for a 10-byte
//! key, and the keyspace holds one per key (see the optimisation log in
//! docs/benchmarks.md). A `Key` is 16 bytes: keys of up to [`INLINE`] bytes (most
//! real keys, e.g. `user:12345`) live inside it with no heap block at all; longer
//! keys take one boxed slice behind a thin pointer.
//!
//! Hashing and equality are those of the byte string, so a `Key` can be looked up
//! by `&[u8]` (`Borrow<[u8]>`).

use bytes::Bytes;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// Longest key stored inline.
pub const INLINE: usize = 14;

#[derive(Clone)]
pub enum Key {
    Inline {
        len: u8,
        data: [u8; INLINE],
    },
    /// Thin pointer (a box of a boxed slice) so the enum stays 16 bytes.
    Heap(Box<Box<[u8]>>),
}

impl Key {
    pub fn new(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                data,
            }
        } else {
            Key::Heap(Box::new(b.into()))
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, data } => &data[..*len as usize],
            Key::Heap(b) => b,
        }
    }

    /// An owned copy as `Bytes` (for replies, propagation, SCAN results).
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for Key {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl PartialEq<[u8]> for Key {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_bytes() == other
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Self {
        Key::new(b)
    }
}

impl From<&Bytes> for Key {
    fn from(b: &Bytes) -> Self {
        Key::new(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bytes_and_round_trips_at_every_length() {
        assert_eq!(std::mem::size_of::<Key>(), 16);
        for n in 0..64usize {
            let s: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let k = Key::new(&s);
            assert_eq!(k.as_bytes(), &s[..]);
            assert_eq!(matches!(k, Key::Inline { .. }), n <= INLINE);
            assert_eq!(k.clone(), k);
            assert_eq!(k.to_bytes(), Bytes::from(s.clone()));
        }
        assert_ne!(Key::new(b"ab"), Key::new(b"abc"));
    }

    #[test]
    fn hashes_like_the_byte_string() {
        let s = ahash::RandomState::new();
        for k in [&b"short"[..], &b"a key longer than fourteen bytes"[..]] {
            assert_eq!(s.hash_one(Key::new(k)), s.hash_one(k));
        }
    }
}
