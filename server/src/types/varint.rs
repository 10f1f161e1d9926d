//! Keyspace layer helper: the LEB128 lengths the packed shapes store their elements
//! with (types/hash.rs's compact pairs, types/list.rs's nodes).
//!
//! ```text
//! varint     := LEB128, 7 bits a byte, low group first, high bit = more follow
//! rev_varint := the same bytes in reverse order, so that a reader walking backwards
//!               from the end of an entry meets the low group first
//! ```

/// Most bytes a `usize` takes (64 bits in 7-bit groups).
pub const MAX_LEN: usize = 10;

/// The varint bytes of `n` and how many of them are used.
#[inline]
pub fn encode(mut n: usize) -> ([u8; MAX_LEN], usize) {
    let mut out = [0u8; MAX_LEN];
    let mut i = 0;
    while n >= 0x80 {
        out[i] = (n as u8 & 0x7f) | 0x80;
        n >>= 7;
        i += 1;
    }
    out[i] = n as u8;
    (out, i + 1)
}

pub fn put_varint(out: &mut Vec<u8>, n: usize) {
    let (b, k) = encode(n);
    out.extend_from_slice(&b[..k]);
}

#[inline]
pub fn varint_len(mut n: usize) -> usize {
    let mut l = 1;
    while n >= 0x80 {
        n >>= 7;
        l += 1;
    }
    l
}

/// Reads the varint at `*pos` and moves past it; None past the end of `buf` or
/// for more groups than a `usize` holds.
#[inline]
pub fn get_varint(buf: &[u8], pos: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
        shift += 7;
        if shift >= usize::BITS {
            return None;
        }
    }
}

/// Reads the reversed varint that ends just before `*end` and moves `*end` to its
/// first byte; None if it runs past the start of `buf`.
#[inline]
pub fn get_varint_rev(buf: &[u8], end: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        *end = end.checked_sub(1)?;
        let b = *buf.get(*end)?;
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
        shift += 7;
        if shift >= usize::BITS {
            return None;
        }
    }
}

/// Reads a varint at `*pos` and the bytes it announces; None past the end (a
/// block this crate wrote never ends early).
pub fn get_item<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let n = get_varint(buf, pos)?;
    let item = buf.get(*pos..pos.checked_add(n)?)?;
    *pos += n;
    Some(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_varints_read_backwards_at_every_width() {
        for n in [0usize, 1, 127, 128, 16383, 16384, 1 << 35, usize::MAX] {
            let (b, k) = encode(n);
            assert_eq!(k, varint_len(n));
            let mut fwd = 0;
            assert_eq!(get_varint(&b[..k], &mut fwd), Some(n));
            assert_eq!(fwd, k);
            let rev: Vec<u8> = b[..k].iter().rev().copied().collect();
            let mut end = rev.len();
            assert_eq!(get_varint_rev(&rev, &mut end), Some(n));
            assert_eq!(end, 0);
        }
        // A continuation byte with nothing before it: None, not a panic.
        assert_eq!(get_varint_rev(&[0x80], &mut 1), None);
        assert_eq!(get_varint_rev(&[], &mut 0), None);
    }
}
