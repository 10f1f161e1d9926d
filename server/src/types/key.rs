//! Compact key storage for the keyspace.
//!
//! Why: a `Bytes` handle is 32 bytes plus a separate heap block even for a 10-byte
//! key, and the keyspace holds one per key (see the optimisation log in
//! docs/benchmarks.md). A `Key` is 16 bytes: keys of up to [`INLINE`] bytes (most
//! real keys, e.g. `user:12345`) live inside it with no heap block at all; longer
//! keys take exactly one heap block of their length, behind a thin pointer with
//! the length next to it.
//!
//! Why unsafe: a boxed slice is a fat pointer (16 bytes) and would make the enum
//! 24 bytes, i.e. 8 more bytes for every key; a safe thin alternative (a box of a
//! boxed slice) costs a second heap block for every long key. The unsafe parts are
//! one allocation, one copy, one slice view and one deallocation of a plain byte
//! buffer this type alone owns, each next to its safety argument.
//!
//! Hashing and equality are those of the byte string, so a `Key` can be looked up
//! by `&[u8]` (`Borrow<[u8]>`).
#![allow(unsafe_code)]

use bytes::Bytes;
use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ptr::NonNull;

/// Longest key stored inline.
pub const INLINE: usize = 14;

pub enum Key {
    Inline {
        len: u8,
        data: [u8; INLINE],
    },
    /// A heap block of exactly `len` bytes (`len > INLINE`), owned by this key.
    Heap {
        len: u32,
        ptr: NonNull<u8>,
    },
    /// Keys of 4 GiB and more (not reachable with default limits): a box of a box.
    Huge(Box<Box<[u8]>>),
}

// SAFETY: a `Key` owns its heap block exclusively (never aliased, freed once in
// `drop`) and only hands out shared views of it, like a `Box<[u8]>`, which is
// `Send` and `Sync`.
unsafe impl Send for Key {}
// SAFETY: see `Send`: `&Key` gives only read access to bytes nobody mutates.
unsafe impl Sync for Key {}

impl Key {
    pub fn new(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..b.len()].copy_from_slice(b);
            return Key::Inline {
                len: b.len() as u8,
                data,
            };
        }
        let (Ok(len), Ok(layout)) = (u32::try_from(b.len()), Layout::array::<u8>(b.len())) else {
            return Key::Huge(Box::new(b.into()));
        };
        // SAFETY: `layout` has a non-zero size (b.len() > INLINE).
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        // SAFETY: `ptr` is a fresh block of b.len() bytes, `b` is b.len() readable
        // bytes, and the two cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), ptr.as_ptr(), b.len()) };
        Key::Heap { len, ptr }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, data } => &data[..*len as usize],
            // SAFETY: `ptr` points to `len` initialised bytes owned by `self`, alive
            // and unchanged for as long as `self` is borrowed.
            Key::Heap { len, ptr } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len as usize)
            },
            Key::Huge(b) => b,
        }
    }

    /// An owned copy as `Bytes` (for replies, propagation, SCAN results).
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        if let Key::Heap { len, ptr } = self {
            // SAFETY: the block was allocated in `new` with exactly this layout
            // (`Layout::array::<u8>(len)` succeeded there) and is freed only here.
            unsafe {
                dealloc(
                    ptr.as_ptr(),
                    Layout::from_size_align_unchecked(*len as usize, 1),
                )
            };
        }
    }
}

impl Clone for Key {
    fn clone(&self) -> Self {
        Key::new(self.as_bytes())
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
            assert_eq!(matches!(k, Key::Heap { .. }), n > INLINE);
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
