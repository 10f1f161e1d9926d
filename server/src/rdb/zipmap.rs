//! Zipmap blobs (RDB type 9, Redis <= 2.4 hashes; only read).
//!
//! ```text
//! u8 count (>= 254: unknown)
//! { len key  len free value  [free padding bytes] }*   0xFF
//! ```
//! `len` is one byte (< 254) or 0xFE + u32 little-endian; 0xFF in a length position
//! ends the map.

pub fn parse(blob: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut p = 1;
    let mut out = Vec::new();
    fn len(blob: &[u8], p: &mut usize) -> Option<Option<usize>> {
        let b = *blob.get(*p)?;
        match b {
            0xFF => Some(None),
            0xFE => {
                let v = u32::from_le_bytes(blob.get(*p + 1..*p + 5)?.try_into().ok()?) as usize;
                *p += 5;
                Some(Some(v))
            }
            _ => {
                *p += 1;
                Some(Some(b as usize))
            }
        }
    }
    while let Some(klen) = len(blob, &mut p)? {
        let key = blob.get(p..p.checked_add(klen)?)?;
        p += klen;
        let vlen = len(blob, &mut p)??;
        let free = *blob.get(p)? as usize;
        p += 1;
        let val = blob.get(p..p.checked_add(vlen)?)?;
        p += vlen + free;
        out.push((key, val));
    }
    (p == blob.len() - 1).then_some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_hand_built_zipmap() {
        let blob = [2, 1, b'a', 2, 1, b'x', b'y', 0, 1, b'b', 1, 0, b'z', 0xFF];
        let got = super::parse(&blob).unwrap();
        assert_eq!(got, vec![(&b"a"[..], &b"xy"[..]), (&b"b"[..], &b"z"[..])]);
        for cut in 0..blob.len() {
            assert!(super::parse(&blob[..cut]).is_none());
        }
    }
}
