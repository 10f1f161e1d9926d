//! Intset blobs (RDB type 11).
//!
//! ```text
//! u32 LE encoding   bytes per element: 2, 4 or 8
//! u32 LE length     number of elements (> 0)
//! length x signed LE integers of that width, ascending and unique
//! ```
//! The blob size must be exactly 8 + length * encoding.

pub fn parse(blob: &[u8]) -> Option<Vec<i64>> {
    let enc = u32::from_le_bytes(blob.get(0..4)?.try_into().ok()?) as usize;
    let len = u32::from_le_bytes(blob.get(4..8)?.try_into().ok()?) as usize;
    if !matches!(enc, 2 | 4 | 8) || len == 0 || blob.len() != 8 + len.checked_mul(enc)? {
        return None;
    }
    let mut out = Vec::with_capacity(len);
    for c in blob[8..].chunks_exact(enc) {
        let v = match enc {
            2 => i16::from_le_bytes([c[0], c[1]]) as i64,
            4 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
            _ => i64::from_le_bytes(c.try_into().ok()?),
        };
        if out.last().is_some_and(|&p| p >= v) {
            return None;
        }
        out.push(v);
    }
    Some(out)
}

/// Encodes `values` (any order, unique) with the smallest width that fits.
pub fn build(values: &mut [i64]) -> Vec<u8> {
    values.sort_unstable();
    let enc: usize = if values.iter().all(|v| i16::try_from(*v).is_ok()) {
        2
    } else if values.iter().all(|v| i32::try_from(*v).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + values.len() * enc);
    out.extend_from_slice(&(enc as u32).to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values.iter() {
        out.extend_from_slice(&v.to_le_bytes()[..enc]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_widths() {
        for set in [
            vec![3i64, -2, 1],
            vec![70000, -5],
            vec![i64::MIN, 0, i64::MAX],
        ] {
            let mut v = set.clone();
            let blob = super::build(&mut v);
            let mut want = set.clone();
            want.sort();
            assert_eq!(super::parse(&blob), Some(want));
        }
        assert!(super::parse(&[2, 0, 0, 0, 1, 0, 0, 0, 1]).is_none());
        // Unsorted elements are corrupt.
        assert!(super::parse(&[2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 1, 0]).is_none());
    }
}
