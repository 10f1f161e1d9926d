//! LZF (liblzf format) as used for RDB strings (string encoding 0xC3).
//!
//! Byte format of a compressed stream, a sequence of chunks:
//! * control byte `c < 32`: a literal run, the next `c + 1` bytes are copied as is.
//! * control byte `c >= 32`: a back reference. `len = c >> 5`; if `len == 7` the next
//!   byte is added to it. Then one byte `lo`; the distance is
//!   `((c & 0x1f) << 8) + lo + 1` and `len + 2` bytes are copied from that far back
//!   in the output, one at a time (the ranges may overlap).
//!
//! Distances are at most 8192 and match lengths at most 264 bytes.

/// Decompresses `input`, which must expand to exactly `out_len` bytes.
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    decompress_into(input, out_len, &mut out).then_some(out)
}

/// [`decompress`] into `out` (cleared first, its allocation reused): false if
/// the input is not valid LZF for exactly `out_len` bytes.
pub fn decompress_into(input: &[u8], out_len: usize, out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(out_len);
    decode(input, out_len, out).is_some()
}

fn decode(input: &[u8], out_len: usize, out: &mut Vec<u8>) -> Option<()> {
    let mut i = 0;
    while i < input.len() {
        let c = input[i] as usize;
        i += 1;
        if c < 32 {
            let n = c + 1;
            let lit = input.get(i..i + n)?;
            if out.len() + n > out_len {
                return None;
            }
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut len = c >> 5;
            if len == 7 {
                len += *input.get(i)? as usize;
                i += 1;
            }
            let lo = *input.get(i)? as usize;
            i += 1;
            let dist = ((c & 0x1f) << 8) + lo + 1;
            let len = len + 2;
            if dist > out.len() || out.len() + len > out_len {
                return None;
            }
            let start = out.len() - dist;
            if dist >= len {
                out.extend_from_within(start..start + len);
            } else if dist == 1 {
                // A run of one byte (zero padding, mostly).
                let b = out[start];
                out.resize(out.len() + len, b);
            } else {
                // Overlapping copy: the period-`dist` pattern, `dist` bytes at a time
                // (each step reads only bytes already written, as the bytewise copy).
                let mut done = 0;
                while done < len {
                    let n = dist.min(len - done);
                    out.extend_from_within(start + done..start + done + n);
                    done += n;
                }
            }
        }
    }
    (out.len() == out_len).then_some(())
}

const HLOG: usize = 14;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

fn flush_literals(out: &mut Vec<u8>, lit: &[u8]) {
    for chunk in lit.chunks(32) {
        out.push((chunk.len() - 1) as u8);
        out.extend_from_slice(chunk);
    }
}

/// Compresses `input`; None if the result would not be smaller than `max_len`.
pub fn compress(input: &[u8], max_len: usize) -> Option<Vec<u8>> {
    Compressor::default()
        .compress(input, max_len)
        .map(<[u8]>::to_vec)
}

/// LZF compression with its hash table and output buffer kept between calls,
/// for an RDB writer compressing a million small values: a fresh table and
/// output per value (allocation, zeroing, free) were about a quarter of a
/// snapshot's encoding time.
///
/// Table entries are positions tagged with the call they belong to: an entry
/// holds `base + pos + 1`, where `base` grows by `len + 1` with every call, so an
/// entry at or below the current `base` is a leftover of an earlier input and
/// reads as empty. Nothing is cleared between calls.
#[derive(Debug, Default)]
pub struct Compressor {
    table: Vec<u64>,
    base: u64,
    out: Vec<u8>,
}

impl Compressor {
    /// Compresses `input`; None if the result would not be smaller than `max_len`.
    /// The output lives until the next call.
    pub fn compress(&mut self, input: &[u8], max_len: usize) -> Option<&[u8]> {
        let n = input.len();
        // The hash table scales with the input (at most 2^HLOG slots), so small
        // values touch a small, cache-resident part of it.
        let hlog = (n.next_power_of_two().trailing_zeros() as usize).clamp(8, HLOG);
        if self.table.len() < 1 << hlog {
            // Zero is never above `base`: new slots read as empty.
            self.table.resize(1 << hlog, 0);
        }
        let base = self.base;
        self.base = base.saturating_add(n as u64 + 1);
        let (table, out) = (&mut self.table, &mut self.out);
        out.clear();
        let mut i = 0;
        let mut lit_start = 0;
        while i + 2 < n {
            let h = {
                let v = (input[i] as u32) << 16 | (input[i + 1] as u32) << 8 | input[i + 2] as u32;
                (v.wrapping_mul(2654435761) >> (32 - hlog)) as usize
            };
            let cand = table[h];
            table[h] = base + i as u64 + 1;
            if cand > base {
                // A position of this input, before `i`.
                let c = (cand - base - 1) as usize;
                let dist = i - c;
                if dist <= MAX_OFF && input[c..c + 3] == input[i..i + 3] {
                    let maxlen = MAX_REF.min(n - i);
                    let mut len = 3;
                    while len < maxlen && input[c + len] == input[i + len] {
                        len += 1;
                    }
                    flush_literals(out, &input[lit_start..i]);
                    let off = dist - 1;
                    let l = len - 2;
                    if l < 7 {
                        out.push(((l << 5) | (off >> 8)) as u8);
                    } else {
                        out.push(((7 << 5) | (off >> 8)) as u8);
                        out.push((l - 7) as u8);
                    }
                    out.push((off & 0xff) as u8);
                    i += len;
                    lit_start = i;
                    if out.len() >= max_len {
                        return None;
                    }
                    continue;
                }
            }
            i += 1;
        }
        flush_literals(out, &input[lit_start..]);
        (out.len() < max_len).then_some(&out[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_compresses_repetitive_data() {
        let samples: Vec<Vec<u8>> = vec![
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            b"hello world hello world hello world hello world!".to_vec(),
            (0..100_000u32).map(|i| (i % 251) as u8).collect(),
            (0..5000u32).map(|i| ((i * 7919) % 13) as u8).collect(),
        ];
        for s in samples {
            let c = compress(&s, s.len()).expect("compressible");
            assert!(c.len() < s.len());
            assert_eq!(decompress(&c, s.len()).as_deref(), Some(&s[..]));
        }
        // Incompressible data is refused.
        let noise: Vec<u8> = (0..64u32).map(|i| (i * 97 + 13) as u8).collect();
        assert!(compress(&noise, noise.len() - 4).is_none());
    }

    #[test]
    fn a_reused_compressor_matches_a_fresh_one_and_round_trips() {
        // Inputs of growing and shrinking sizes, so later calls meet table slots
        // that earlier inputs filled: a stale slot taken for a match would give a
        // different (or undecodable) output than a fresh table.
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for k in 0..200u32 {
            let len = [24usize, 100, 700, 5000, 40][k as usize % 5];
            inputs.push(
                (0..len as u32)
                    .map(|i| ((i * (k + 3)) % 17) as u8)
                    .collect(),
            );
            let mut v = format!("value:{k}").into_bytes();
            v.resize(100, 0);
            inputs.push(v);
        }
        inputs.push((0..70_000u32).map(|i| (i % 251) as u8).collect());
        inputs.push(b"abcabcabcabcabcabcabcabcabc".to_vec());
        let mut reused = Compressor::default();
        let mut compressed = 0;
        for s in &inputs {
            let fresh = compress(s, s.len());
            let again = reused.compress(s, s.len()).map(<[u8]>::to_vec);
            assert_eq!(again, fresh);
            if let Some(c) = again {
                compressed += 1;
                assert_eq!(decompress(&c, s.len()).as_deref(), Some(&s[..]));
            }
        }
        assert!(
            compressed > inputs.len() / 2,
            "{compressed} of {}",
            inputs.len()
        );
    }

    #[test]
    fn overlapping_back_references_repeat_the_pattern() {
        // "abc", then 10 bytes from 3 back: the pattern repeats over its own output.
        let c = [0x02, b'a', b'b', b'c', 7 << 5, 1, 2];
        assert_eq!(decompress(&c, 13).as_deref(), Some(&b"abcabcabcabca"[..]));
        // "x", then 5 bytes from 1 back: a run.
        let c = [0x00, b'x', 3 << 5, 0];
        assert_eq!(decompress(&c, 6).as_deref(), Some(&b"xxxxxx"[..]));
        // "hello ", then 5 bytes from 6 back: no overlap.
        let c = [0x05, b'h', b'e', b'l', b'l', b'o', b' ', 3 << 5, 5];
        assert_eq!(decompress(&c, 11).as_deref(), Some(&b"hello hello"[..]));
    }

    #[test]
    fn corrupt_input_is_refused() {
        assert!(decompress(&[0x20, 0x00], 2).is_none()); // back reference before start
        assert!(decompress(&[0x05, b'a'], 6).is_none()); // literal past the end
        assert!(decompress(&[0x00, b'a'], 5).is_none()); // wrong length
    }
}
