//! Compact storage for string values (`Value::Str`).
//!
//! Why: the keyspace holds one value per key, and a `Bytes` handle is 32 bytes,
//! which made `Value` 40 bytes and each keyspace slot 64. A `Str` is 16 bytes (and
//! `Value` with it, see the optimisation log in docs/benchmarks.md), in one of
//! three shapes chosen by size and history:
//!
//! - `Compact`: a [`Key`]: up to [`key::INLINE`] bytes inline with no heap block
//!   (Redis's embstr idea taken further: small values cost no allocation at all),
//!   longer ones exactly one heap block of their length. Every value written whole
//!   (SET, RDB load, RESTORE...) of up to [`SHARED_MIN`] bytes.
//! - `Shared`: a boxed `Bytes`, for values of more than [`SHARED_MIN`] bytes: the
//!   request parser already copied such an argument into its own block
//!   (`resp::SLICE_MAX`), so storing it costs no copy, and handing it out
//!   (`to_bytes`, for replies and propagation) costs no copy either.
//! - `Buf`: a boxed `Vec<u8>` with spare capacity, for strings edited in place
//!   (APPEND, SETRANGE, SETBIT, PFADD...): like Redis's sds it grows with slack,
//!   so appending in a loop is amortised O(1) per byte.
//!
//! All unsafe code stays in `Key`; this type only chooses between safe shapes.

use super::key::Key;
use bytes::Bytes;

/// Values longer than this are kept as `Bytes` (no copy in or out).
pub const SHARED_MIN: usize = 4096;

/// Below this an edited string doubles its capacity when it grows; above it, it
/// grows by this much (the sds policy: bounded slack for big strings).
const GROW_DOUBLE_MAX: usize = 1024 * 1024;

#[derive(Clone)]
pub struct Str(Repr);

#[derive(Clone)]
enum Repr {
    Compact(Key),
    Shared(Box<Bytes>),
    // Boxed on purpose: an inline `Vec` (24 bytes) would make every `Str` 32.
    #[allow(clippy::box_collection)]
    Buf(Box<Vec<u8>>),
}

impl Str {
    /// A copy of `b` in the compact shape (or shared, when large).
    pub fn new(b: &[u8]) -> Self {
        if b.len() > SHARED_MIN {
            Str(Repr::Shared(Box::new(Bytes::copy_from_slice(b))))
        } else {
            Str(Repr::Compact(Key::new(b)))
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Compact(k) => k.as_bytes(),
            Repr::Shared(b) => b,
            Repr::Buf(v) => v,
        }
    }

    /// An owned `Bytes` of the value: O(1) for large values, a copy otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Shared(b) => Bytes::clone(b),
            _ => Bytes::copy_from_slice(self.as_bytes()),
        }
    }

    /// Whether the value sits inline in its handle, with no heap block.
    pub fn is_inline(&self) -> bool {
        matches!(&self.0, Repr::Compact(Key::Inline { .. }))
    }

    /// The bytes as a growable vector, for in-place edits. The first call turns the
    /// value into the `Buf` shape (one copy); later ones are free.
    pub fn vec_mut(&mut self) -> &mut Vec<u8> {
        if !matches!(self.0, Repr::Buf(_)) {
            self.0 = Repr::Buf(Box::new(self.as_bytes().to_vec()));
        }
        match &mut self.0 {
            Repr::Buf(v) => v,
            // Just set above.
            _ => unreachable!("Str::vec_mut: the value was just made a Buf"),
        }
    }

    /// Reserves room for `additional` more bytes with sds-like slack (doubling up
    /// to 1 MiB, then 1 MiB at a time), so repeated appends are amortised.
    pub fn reserve(&mut self, additional: usize) {
        let v = self.vec_mut();
        let need = v.len().saturating_add(additional);
        if need > v.capacity() {
            let target = if need < GROW_DOUBLE_MAX {
                need.saturating_mul(2)
            } else {
                need.saturating_add(GROW_DOUBLE_MAX)
            };
            v.reserve_exact(target - v.len());
        }
    }

    /// Appends `more` in place (APPEND), with amortised growth.
    pub fn append(&mut self, more: &[u8]) {
        self.reserve(more.len());
        self.vec_mut().extend_from_slice(more);
    }
}

impl Str {
    /// A string that was just edited as a vector and will likely be edited again
    /// (an HLL, a bitmap): kept in the growable shape, with no copy.
    pub fn from_buf(v: Vec<u8>) -> Self {
        Str(Repr::Buf(Box::new(v)))
    }
}

impl Default for Str {
    fn default() -> Self {
        Str::new(b"")
    }
}

impl From<&[u8]> for Str {
    fn from(b: &[u8]) -> Self {
        Str::new(b)
    }
}

impl<const N: usize> From<&[u8; N]> for Str {
    fn from(b: &[u8; N]) -> Self {
        Str::new(b)
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Str::new(s.as_bytes())
    }
}

/// Takes large values as they are and copies small ones into an exact block, so a
/// small value never keeps a larger buffer (e.g. a request's read buffer) alive.
impl From<&Bytes> for Str {
    fn from(b: &Bytes) -> Self {
        if b.len() > SHARED_MIN {
            Str(Repr::Shared(Box::new(b.clone())))
        } else {
            Str::new(b)
        }
    }
}

impl From<Bytes> for Str {
    fn from(b: Bytes) -> Self {
        Str::from(&b)
    }
}

impl From<Vec<u8>> for Str {
    fn from(v: Vec<u8>) -> Self {
        if v.len() > SHARED_MIN {
            // Exact size first: `Bytes` of a `Vec` with spare capacity would keep it
            // (and allocate a shared header).
            Str(Repr::Shared(Box::new(Bytes::from(v.into_boxed_slice()))))
        } else {
            Str::new(&v)
        }
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str::from(s.into_bytes())
    }
}

impl std::ops::Deref for Str {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Str {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::borrow::Borrow<[u8]> for Str {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Str {}

impl PartialEq<[u8]> for Str {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_bytes() == other
    }
}

impl PartialEq<Bytes> for Str {
    fn eq(&self, other: &Bytes) -> bool {
        self.as_bytes() == &other[..]
    }
}

impl std::hash::Hash for Str {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl std::fmt::Debug for Str {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::key;
    use super::*;

    #[test]
    fn sixteen_bytes_and_value_with_it() {
        assert_eq!(std::mem::size_of::<Str>(), 16);
        assert_eq!(std::mem::size_of::<super::super::Value>(), 16);
        assert_eq!(std::mem::size_of::<Option<super::super::Value>>(), 16);
    }

    #[test]
    fn shapes_follow_size_and_round_trip() {
        for n in [
            0,
            1,
            key::INLINE,
            key::INLINE + 1,
            100,
            SHARED_MIN,
            SHARED_MIN + 1,
        ] {
            let data: Vec<u8> = (0..n).map(|i| (i * 31) as u8).collect();
            let from_bytes = Str::from(Bytes::from(data.clone()));
            let from_vec = Str::from(data.clone());
            let from_slice = Str::new(&data);
            for s in [&from_bytes, &from_vec, &from_slice] {
                assert_eq!(s.as_bytes(), &data[..]);
                assert_eq!(s.to_bytes(), Bytes::from(data.clone()));
                assert_eq!(s.is_inline(), n <= key::INLINE);
                assert_eq!(matches!(s.0, Repr::Shared(_)), n > SHARED_MIN);
                assert_eq!(&s.clone(), s);
            }
        }
    }

    #[test]
    fn large_values_are_shared_not_copied() {
        let big = Bytes::from(vec![7u8; SHARED_MIN + 1]);
        let s = Str::from(&big);
        assert_eq!(s.as_bytes().as_ptr(), big.as_ptr());
        assert_eq!(s.to_bytes().as_ptr(), big.as_ptr());
    }

    #[test]
    fn small_values_do_not_pin_the_buffer_they_came_from() {
        let buf = Bytes::from(vec![1u8; 1000]);
        let s = Str::from(buf.slice(10..110));
        assert_ne!(s.as_bytes().as_ptr(), buf[10..].as_ptr());
        assert_eq!(s.as_bytes(), &buf[10..110]);
    }

    #[test]
    fn appends_grow_with_slack_not_one_copy_per_append() {
        let mut s = Str::from("x");
        let mut reallocs = 0;
        let mut last_cap = 0;
        for i in 0..10_000u32 {
            s.append(b"abc");
            let cap = s.vec_mut().capacity();
            if cap != last_cap {
                reallocs += 1;
                last_cap = cap;
            }
            assert_eq!(s.len(), 1 + 3 * (i as usize + 1));
        }
        assert!(reallocs < 20, "{reallocs} reallocations for 10k appends");
        assert!(s.starts_with(b"xabcabc") && s.ends_with(b"abc"));
    }

    #[test]
    fn in_place_edits_keep_the_contents() {
        let mut s = Str::from("hello world");
        s.vec_mut()[0] = b'J';
        assert_eq!(&s[..], b"Jello world");
        assert_eq!(s.to_bytes(), Bytes::from_static(b"Jello world"));
        assert_eq!(s.clone(), Str::from("Jello world"));
    }
}
