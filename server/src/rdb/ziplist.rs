//! Ziplist blobs (legacy RDB types 10, 12, 13, 14; only read).
//!
//! ```text
//! u32 LE zlbytes  u32 LE zltail  u16 LE zllen  entries...  0xFF
//! ```
//! Entry = prevlen (1 byte if < 254, else 0xFE + u32 LE) + encoding + data:
//! * `00pppppp`: string, 6-bit length. `01pppppp qqqqqqqq`: 14-bit length, big-endian.
//! * `10000000` + u32 big-endian length: string.
//! * `11000000` int16 LE, `11010000` int32 LE, `11100000` int64 LE, `11110000` int24 LE,
//!   `11111110` int8, `1111xxxx` (xxxx in 0001..=1101): the value xxxx - 1 (0..12).

use super::listpack::LpEntry;

pub fn parse(blob: &[u8]) -> Option<Vec<LpEntry<'_>>> {
    if blob.len() < 11 {
        return None;
    }
    let total = u32::from_le_bytes(blob[0..4].try_into().ok()?) as usize;
    if total != blob.len() || blob[total - 1] != 0xFF {
        return None;
    }
    let mut out = Vec::new();
    let mut p = 10;
    loop {
        let b = *blob.get(p)?;
        if b == 0xFF {
            if p != total - 1 {
                return None;
            }
            break;
        }
        p += if b < 254 { 1 } else { 5 };
        let e = *blob.get(p)?;
        let (entry, size) = match e >> 6 {
            0 => {
                let len = (e & 0x3f) as usize;
                (LpEntry::Str(blob.get(p + 1..p + 1 + len)?), 1 + len)
            }
            1 => {
                let len = ((e & 0x3f) as usize) << 8 | *blob.get(p + 1)? as usize;
                (LpEntry::Str(blob.get(p + 2..p + 2 + len)?), 2 + len)
            }
            2 => {
                let len = u32::from_be_bytes(blob.get(p + 1..p + 5)?.try_into().ok()?) as usize;
                let end = (p + 5).checked_add(len)?;
                (LpEntry::Str(blob.get(p + 5..end)?), 5 + len)
            }
            _ => match e {
                0xC0 => (
                    LpEntry::Int(
                        i16::from_le_bytes(blob.get(p + 1..p + 3)?.try_into().ok()?) as i64
                    ),
                    3,
                ),
                0xD0 => (
                    LpEntry::Int(
                        i32::from_le_bytes(blob.get(p + 1..p + 5)?.try_into().ok()?) as i64
                    ),
                    5,
                ),
                0xE0 => (
                    LpEntry::Int(i64::from_le_bytes(blob.get(p + 1..p + 9)?.try_into().ok()?)),
                    9,
                ),
                0xF0 => {
                    let b = blob.get(p + 1..p + 4)?;
                    let v = ((b[0] as i32) | (b[1] as i32) << 8 | (b[2] as i32) << 16) << 8 >> 8;
                    (LpEntry::Int(v as i64), 4)
                }
                0xFE => (LpEntry::Int(*blob.get(p + 1)? as i8 as i64), 2),
                0xF1..=0xFD => (LpEntry::Int((e & 0x0f) as i64 - 1), 1),
                _ => return None,
            },
        };
        p = p.checked_add(size)?;
        if p > total - 1 {
            return None;
        }
        out.push(entry);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hand_built_ziplist() {
        // entries: "ab", 5 (immediate), int16 300, int8 -3
        let mut body = vec![0x00, 0x02, b'a', b'b'];
        body.extend_from_slice(&[0x04, 0xF6]);
        body.extend_from_slice(&[0x02, 0xC0, 0x2C, 0x01]);
        body.extend_from_slice(&[0x04, 0xFE, 0xFD]);
        let total = 10 + body.len() + 1;
        let mut blob = (total as u32).to_le_bytes().to_vec();
        blob.extend_from_slice(&0u32.to_le_bytes());
        blob.extend_from_slice(&4u16.to_le_bytes());
        blob.extend_from_slice(&body);
        blob.push(0xFF);
        let got = parse(&blob).unwrap();
        assert_eq!(
            got,
            vec![
                LpEntry::Str(b"ab"),
                LpEntry::Int(5),
                LpEntry::Int(300),
                LpEntry::Int(-3)
            ]
        );
        for cut in 0..blob.len() {
            assert!(parse(&blob[..cut]).is_none());
        }
    }
}
