//! Listpack blobs (RDB types 16, 17, 18 nodes, 19 streams, 20).
//!
//! ```text
//! u32 LE total_bytes      whole blob, header and terminator included
//! u16 LE num_elements     65535 = unknown (count by walking)
//! entries...
//! 0xFF                    terminator
//! ```
//! Entry = encoding (+ data) + backlen. Encodings, by first byte:
//! * `0xxxxxxx`: uint 0..127.
//! * `10xxxxxx`: string, length = low 6 bits.
//! * `110xxxxx b`: 13-bit signed int, u = ((b0 & 0x1f) << 8) | b, minus 8192 if u >= 4096.
//! * `1110xxxx b`: string, 12-bit length ((b0 & 0x0f) << 8) | b.
//! * `0xF0` + u32 LE length: string. `0xF1`/`F2`/`F3`/`F4`: int16/24/32/64 LE.
//! * `0xFF`: end; `0xF5..=0xFE` invalid.
//!
//! backlen: the entry size L (encoding + data) in 1..5 bytes, 7 bits per byte, most
//! significant first; every byte but the first has bit 7 set. Forward readers only
//! need its size: 1 if L <= 127, 2 if L < 16383, 3 if L < 2097151, 4 if L < 268435455,
//! else 5.

/// One listpack element.
#[derive(Debug, Clone, PartialEq)]
pub enum LpEntry<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl LpEntry<'_> {
    /// The element as bytes (integers in decimal text, as Redis reports them).
    pub fn to_bytes(&self) -> bytes::Bytes {
        match self {
            LpEntry::Int(i) => bytes::Bytes::from(i.to_string()),
            LpEntry::Str(s) => bytes::Bytes::copy_from_slice(s),
        }
    }
}

fn backlen_size(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2_097_151 {
        3
    } else if l < 268_435_455 {
        4
    } else {
        5
    }
}

/// Parses every element; None on any structural error.
pub fn parse(blob: &[u8]) -> Option<Vec<LpEntry<'_>>> {
    check_header(blob)?;
    let mut out = Vec::new();
    let mut p = FIRST;
    while let Some((entry, next)) = next_at(blob, p)? {
        out.push(entry);
        p = next;
    }
    Some(out)
}

/// Offset of the first element (after the 6-byte header).
pub const FIRST: usize = 6;

/// Checks the header and terminator of a listpack blob.
pub fn check_header(blob: &[u8]) -> Option<()> {
    if blob.len() < 7 {
        return None;
    }
    let total = u32::from_le_bytes(blob[0..4].try_into().ok()?) as usize;
    if total != blob.len() || blob[total - 1] != 0xFF {
        return None;
    }
    Some(())
}

/// Decodes the element at offset `p` of a blob whose header was checked: `Some(None)`
/// at the terminator, `Some(Some((element, offset of the next element)))`, or None
/// on a structural error.
pub fn next_at(blob: &[u8], p: usize) -> Option<Option<(LpEntry<'_>, usize)>> {
    let total = blob.len();
    let b0 = *blob.get(p)?;
    if b0 == 0xFF {
        return if p + 1 == total { Some(None) } else { None };
    }
    let (entry, size) = if b0 & 0x80 == 0 {
        (LpEntry::Int((b0 & 0x7f) as i64), 1)
    } else if b0 & 0xC0 == 0x80 {
        let len = (b0 & 0x3f) as usize;
        (LpEntry::Str(blob.get(p + 1..p + 1 + len)?), 1 + len)
    } else if b0 & 0xE0 == 0xC0 {
        let u = ((b0 & 0x1f) as i64) << 8 | *blob.get(p + 1)? as i64;
        (LpEntry::Int(if u >= 4096 { u - 8192 } else { u }), 2)
    } else if b0 & 0xF0 == 0xE0 {
        let len = ((b0 & 0x0f) as usize) << 8 | *blob.get(p + 1)? as usize;
        (LpEntry::Str(blob.get(p + 2..p + 2 + len)?), 2 + len)
    } else {
        match b0 {
            0xF0 => {
                let len = u32::from_le_bytes(blob.get(p + 1..p + 5)?.try_into().ok()?) as usize;
                let end = (p + 5).checked_add(len)?;
                (LpEntry::Str(blob.get(p + 5..end)?), 5 + len)
            }
            0xF1 => {
                let v = i16::from_le_bytes(blob.get(p + 1..p + 3)?.try_into().ok()?);
                (LpEntry::Int(v as i64), 3)
            }
            0xF2 => {
                let b = blob.get(p + 1..p + 4)?;
                let v = ((b[0] as i32) | (b[1] as i32) << 8 | (b[2] as i32) << 16) << 8 >> 8;
                (LpEntry::Int(v as i64), 4)
            }
            0xF3 => {
                let v = i32::from_le_bytes(blob.get(p + 1..p + 5)?.try_into().ok()?);
                (LpEntry::Int(v as i64), 5)
            }
            0xF4 => {
                let v = i64::from_le_bytes(blob.get(p + 1..p + 9)?.try_into().ok()?);
                (LpEntry::Int(v), 9)
            }
            _ => return None,
        }
    };
    let next = p.checked_add(size + backlen_size(size))?;
    if next > total - 1 {
        return None;
    }
    Some(Some((entry, next)))
}

fn put_backlen(buf: &mut Vec<u8>, l: usize) {
    let n = backlen_size(l);
    for k in 0..n {
        let mut b = ((l >> (7 * (n - 1 - k))) & 127) as u8;
        if k > 0 {
            b |= 128;
        }
        buf.push(b);
    }
}

/// Appends one integer element (encoding, data, backlen) to `buf`, in Redis's
/// canonical (smallest) encoding.
pub fn encode_int(buf: &mut Vec<u8>, v: i64) {
    let start = buf.len();
    if (0..=127).contains(&v) {
        buf.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        let u = if v < 0 { v + 8192 } else { v } as u16;
        buf.push(0xC0 | (u >> 8) as u8);
        buf.push((u & 0xff) as u8);
    } else if i16::try_from(v).is_ok() {
        buf.push(0xF1);
        buf.extend_from_slice(&(v as i16).to_le_bytes());
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        buf.push(0xF2);
        buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
    } else if i32::try_from(v).is_ok() {
        buf.push(0xF3);
        buf.extend_from_slice(&(v as i32).to_le_bytes());
    } else {
        buf.push(0xF4);
        buf.extend_from_slice(&v.to_le_bytes());
    }
    let l = buf.len() - start;
    put_backlen(buf, l);
}

/// Appends one element to `buf`; canonical decimal integers are stored as integers.
pub fn encode(buf: &mut Vec<u8>, s: &[u8]) {
    if s.len() < 21 {
        if let Some(v) = crate::resp::parse_i64(s) {
            if crate::types::is_canonical_int(s) {
                encode_int(buf, v);
                return;
            }
        }
    }
    let start = buf.len();
    let len = s.len();
    if len < 64 {
        buf.push(0x80 | len as u8);
    } else if len < 4096 {
        buf.push(0xE0 | (len >> 8) as u8);
        buf.push((len & 0xff) as u8);
    } else {
        buf.push(0xF0);
        buf.extend_from_slice(&(len as u32).to_le_bytes());
    }
    buf.extend_from_slice(s);
    let l = buf.len() - start;
    put_backlen(buf, l);
}

/// Builds a listpack incrementally, choosing Redis's canonical encodings.
pub struct LpWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for LpWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl LpWriter {
    pub fn new() -> Self {
        LpWriter {
            buf: vec![0, 0, 0, 0, 0, 0],
            count: 0,
        }
    }

    /// Current size including the terminator still to come.
    pub fn size(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn push_int(&mut self, v: i64) {
        encode_int(&mut self.buf, v);
        self.count += 1;
    }

    /// Appends an element; canonical decimal integers are stored as integers.
    pub fn push(&mut self, s: &[u8]) {
        encode(&mut self.buf, s);
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let n = self.count.min(65535) as u16;
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_encodings() {
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 300];
        let ints = [
            0i64,
            127,
            128,
            -1,
            4095,
            -4096,
            4096,
            32767,
            -32768,
            40000,
            8_388_607,
            -8_388_608,
            8_388_608,
            2_147_483_647,
            -2_147_483_648,
            2_147_483_648,
            i64::MAX,
            i64::MIN,
        ];
        let mut w = LpWriter::new();
        for i in ints {
            w.push(i.to_string().as_bytes());
        }
        w.push(b"");
        w.push(b"hello");
        w.push(b"007");
        w.push(&mid);
        w.push(&long);
        let blob = w.finish();
        let got = parse(&blob).unwrap();
        assert_eq!(got.len(), ints.len() + 5);
        for (k, i) in ints.iter().enumerate() {
            assert_eq!(got[k], LpEntry::Int(*i));
        }
        assert_eq!(got[ints.len()], LpEntry::Str(b""));
        assert_eq!(got[ints.len() + 2], LpEntry::Str(b"007"));
        assert_eq!(got[ints.len() + 3], LpEntry::Str(&mid));
        assert_eq!(got[ints.len() + 4], LpEntry::Str(&long));
    }

    #[test]
    fn corrupt_blobs_are_refused() {
        let mut w = LpWriter::new();
        w.push(b"abc");
        let blob = w.finish();
        for cut in 0..blob.len() {
            assert!(parse(&blob[..cut]).is_none());
        }
        let mut bad = blob.clone();
        bad[6] = 0xF7;
        assert!(parse(&bad).is_none());
    }
}
