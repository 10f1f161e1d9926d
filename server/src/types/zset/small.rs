//! The compact shape of a sorted set (Redis's "listpack" encoding): every
//! (member, score) pair in one exactly-sized heap block, in (score, member) order,
//! scanned linearly. Used only under `zset-max-listpack-entries` /
//! `zset-max-listpack-value`, so a scan touches at most that many entries.
//!
//! Byte layout of the block, entries back to back, no header and no terminator:
//!
//! ```text
//! entry  := head [len32] member score
//! head   := u8: bits 7-6 = score kind, bits 5-0 = member length (63 = see len32)
//! len32  := u32 little-endian member length, present only when head's length is 63
//! score  := kind 0: i8 | kind 1: i16 LE | kind 2: i32 LE   (an integral score)
//!           kind 3: f64 LE bits                             (anything else)
//! ```
//!
//! Why this and not a `Vec<(f64, Str)>`: a 2-member set of 10-byte members with
//! small integral scores is 24 bytes here (one 32-byte malloc chunk), against 48
//! bytes of pairs (a 64-byte chunk) plus the vector's own 24-byte header.

/// Head length value meaning "a u32 length follows".
const LONG: u8 = 63;

/// Appends one entry.
pub(super) fn encode(out: &mut Vec<u8>, member: &[u8], score: f64) {
    let (kind, bytes, n) = score_bytes(score);
    let len = member.len();
    if len < LONG as usize {
        out.push(kind << 6 | len as u8);
    } else {
        out.push(kind << 6 | LONG);
        // Callers keep members of u32::MAX bytes and more out of this shape.
        out.extend_from_slice(&(len as u32).to_le_bytes());
    }
    out.extend_from_slice(member);
    out.extend_from_slice(&bytes[..n]);
}

/// Encoded size of one entry.
pub(super) fn encoded_len(member: &[u8], score: f64) -> usize {
    let head = if member.len() < LONG as usize { 1 } else { 5 };
    head + member.len() + score_bytes(score).2
}

/// (kind, little-endian bytes, how many of them are used).
fn score_bytes(score: f64) -> (u8, [u8; 8], usize) {
    let widen = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        w
    };
    let integral = score.fract() == 0.0 && (i32::MIN as f64..=i32::MAX as f64).contains(&score);
    if integral {
        let i = score as i32;
        if let Ok(b) = i8::try_from(i) {
            return (0, widen(&b.to_le_bytes()), 1);
        }
        if let Ok(h) = i16::try_from(i) {
            return (1, widen(&h.to_le_bytes()), 2);
        }
        return (2, widen(&i.to_le_bytes()), 4);
    }
    (3, score.to_le_bytes(), 8)
}

/// The entry starting at `off`: (member, score, offset of the next entry). None at
/// the end of the block (or, defensively, on a truncated entry).
pub(super) fn decode(buf: &[u8], off: usize) -> Option<(&[u8], f64, usize)> {
    let head = *buf.get(off)?;
    let mut at = off + 1;
    let mut len = (head & 0x3f) as usize;
    if head & 0x3f == LONG {
        let raw: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        len = u32::from_le_bytes(raw) as usize;
        at += 4;
    }
    let member = buf.get(at..at.checked_add(len)?)?;
    at += len;
    let (score, n) = match head >> 6 {
        0 => (i8::from_le_bytes([*buf.get(at)?]) as f64, 1),
        1 => (
            i16::from_le_bytes(buf.get(at..at + 2)?.try_into().ok()?) as f64,
            2,
        ),
        2 => (
            i32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?) as f64,
            4,
        ),
        _ => (f64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?), 8),
    };
    Some((member, score, at + n))
}

/// Forward walk over the entries of a block: (entry offset, member, score).
#[derive(Debug, Clone)]
pub(super) struct Entries<'a> {
    pub(super) buf: &'a [u8],
    pub(super) off: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (usize, &'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        let (m, s, next) = decode(self.buf, self.off)?;
        let at = self.off;
        self.off = next;
        Some((at, m, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_lengths_round_trip_in_every_kind() {
        let long = vec![b'x'; 300];
        let cases: Vec<(&[u8], f64)> = vec![
            (b"", 0.0),
            (b"a", -128.0),
            (b"bb", 127.0),
            (b"c", 128.0),
            (b"d", -32768.0),
            (b"e", 40000.0),
            (b"f", i32::MIN as f64),
            (b"g", i32::MAX as f64 + 1.0),
            (b"h", 1.5),
            (b"i", f64::INFINITY),
            (b"j", f64::NEG_INFINITY),
            (&long[..62], 3.0),
            (&long[..63], 4.0),
            (&long, -0.25),
        ];
        let mut buf = Vec::new();
        let mut total = 0;
        for (m, s) in &cases {
            encode(&mut buf, m, *s);
            total += encoded_len(m, *s);
        }
        assert_eq!(buf.len(), total);
        let got: Vec<(Vec<u8>, f64)> = Entries { buf: &buf, off: 0 }
            .map(|(_, m, s)| (m.to_vec(), s))
            .collect();
        let want: Vec<(Vec<u8>, f64)> = cases.iter().map(|(m, s)| (m.to_vec(), *s)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn two_short_members_with_small_scores_take_twenty_four_bytes() {
        let mut buf = Vec::new();
        encode(&mut buf, b"ma:0000001", 1.0);
        encode(&mut buf, b"mb:0000001", 2.0);
        assert_eq!(buf.len(), 24);
    }

    #[test]
    fn a_truncated_block_ends_the_walk_instead_of_panicking() {
        let mut buf = Vec::new();
        encode(&mut buf, b"member", 2.5);
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut], 0).is_none());
        }
    }
}
