//! Keyspace layer: the HyperLogLog representation, byte for byte the one Redis 7.0
//! keeps inside an ordinary string value, so HLLs move between Tandem and Redis
//! (replication, RDB, DUMP/RESTORE, plain GET/SET) unchanged.
//!
//! Layout (all offsets in bytes):
//!
//! ```text
//! 0..4    "HYLL"
//! 4       encoding: 0 = dense, 1 = sparse (anything else is not an HLL)
//! 5..8    unused (copied along, never read)
//! 8..16   cached cardinality, u64 little-endian; bit 7 of byte 15 set = stale
//! 16..    dense:  16384 registers of 6 bits, register i at bit 6*i, LSB first
//!                 (exactly 12288 bytes: a dense value is always 12304 bytes)
//!         sparse: run-length opcodes covering the 16384 registers in order:
//!                 00llllll           ZERO:  l+1 registers (1..=64) are 0
//!                 01llllll llllllll  XZERO: l+1 registers (1..=16384) are 0
//!                 1vvvvvll           VAL:   l+1 registers (1..=4) are v+1 (1..=32)
//! ```
//!
//! An element hashes with MurmurHash64A (seed 0xadc83b19); the low 14 bits pick the
//! register, the run of zero bits above them plus one (1..=51) is the candidate value.
//! A sparse value turns dense when a register needs more than 32 or when an update
//! would grow it beyond `hll-sparse-max-bytes`. Cardinality is Ertl's estimator over
//! the register histogram (what Redis uses since 5.0).
//!
//! Where Redis reads past a truncated XZERO opcode it reads the string's hidden NUL
//! terminator; here the missing byte reads as 0, which gives the same results.

use thiserror::Error;

/// Header size.
pub const HDR: usize = 16;
/// Number of registers (2^14).
pub const REGISTERS: usize = 1 << P;
const P: u32 = 14;
/// Hash bits left after the register index.
const Q: usize = 64 - P as usize;
/// Size of a dense value, header included.
pub const DENSE_SIZE: usize = HDR + (REGISTERS * 6).div_ceil(8);
const ENC_DENSE: u8 = 0;
const ENC_SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
const STALE_BIT: u8 = 0x80;
/// 0.5 / ln 2, the bias constant of the estimator for m -> infinity.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// Why a string cannot be used as an HLL; the texts are Redis's replies.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum HllError {
    /// Not an HLL at all (too short, no magic, unknown encoding, bad dense size).
    #[error("WRONGTYPE Key is not a valid HyperLogLog string value.")]
    NotHll,
    /// Looks like an HLL but the sparse opcodes do not cover the registers.
    #[error("INVALIDOBJ Corrupted HLL object detected")]
    Corrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Dense,
    Sparse,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Dense => "dense",
            Encoding::Sparse => "sparse",
        }
    }
}

/// Checks the header (Redis `isHLLObjectOrReply`): magic, encoding, dense size.
pub fn check(s: &[u8]) -> Result<Encoding, HllError> {
    if s.len() < HDR || &s[..4] != b"HYLL" {
        return Err(HllError::NotHll);
    }
    match s[4] {
        ENC_DENSE if s.len() == DENSE_SIZE => Ok(Encoding::Dense),
        ENC_SPARSE => Ok(Encoding::Sparse),
        _ => Err(HllError::NotHll),
    }
}

/// An empty HLL: sparse, one XZERO opcode per 16384 registers, cache valid at 0.
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2);
    v.extend_from_slice(b"HYLL");
    v.push(ENC_SPARSE);
    v.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(XZERO_MAX_LEN);
        v.extend_from_slice(&xzero(n));
        left -= n;
    }
    v
}

/// MurmurHash2, 64-bit version A, reading words little-endian (as Redis does on
/// every architecture).
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let mut k = u64::from_le_bytes(w);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, &b) in rest.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element lands in and the value it proposes (1..=51).
pub fn pattern(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

// ---- dense registers -------------------------------------------------------

/// Register `i` of a dense register area (`regs` = the bytes after the header).
pub fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let b0 = regs.get(byte).copied().unwrap_or(0) as u16;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u16;
    (((b0 >> fb) | (b1 << (8 - fb))) & 63) as u8
}

fn dense_put(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let v = (val & 63) as u16;
    if let Some(b) = regs.get_mut(byte) {
        *b = ((*b as u16 & !(63u16 << fb)) | (v << fb)) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        let keep = !(63u16 >> (8 - fb));
        *b = ((*b as u16 & keep) | (v >> (8 - fb))) as u8;
    }
}

/// Raises register `i` to `val` if it is lower; true if it changed.
fn dense_set(s: &mut [u8], i: usize, val: u8) -> bool {
    let regs = s.get_mut(HDR..).unwrap_or_default();
    if val > dense_get(regs, i) {
        dense_put(regs, i, val);
        true
    } else {
        false
    }
}

// ---- sparse opcodes --------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Zero(usize),
    XZero(usize),
    Val(u8, usize),
}

impl Op {
    /// How many registers the opcode covers.
    fn span(self) -> usize {
        match self {
            Op::Zero(n) | Op::XZero(n) | Op::Val(_, n) => n,
        }
    }

    /// How many bytes the opcode takes.
    fn width(self) -> usize {
        match self {
            Op::XZero(_) => 2,
            _ => 1,
        }
    }
}

/// Decodes the opcode at `p` (which must be < `s.len()`).
fn op_at(s: &[u8], p: usize) -> Op {
    let b = s.get(p).copied().unwrap_or(0);
    match b & 0xc0 {
        0x00 => Op::Zero((b & 0x3f) as usize + 1),
        0x40 => {
            let lo = s.get(p + 1).copied().unwrap_or(0) as usize;
            Op::XZero(((((b & 0x3f) as usize) << 8) | lo) + 1)
        }
        _ => Op::Val(((b >> 2) & 0x1f) + 1, (b & 3) as usize + 1),
    }
}

fn val(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (len as u8 - 1)
}

fn zero(len: usize) -> u8 {
    (len - 1) as u8
}

fn xzero(len: usize) -> [u8; 2] {
    let l = len - 1;
    [0x40 | (l >> 8) as u8, (l & 0xff) as u8]
}

/// Appends the zero run of `len` registers with the shortest opcode.
fn push_zeros(seq: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        seq.extend_from_slice(&xzero(len));
    } else {
        seq.push(zero(len));
    }
}

/// Iterates the opcodes of a sparse value.
fn ops(s: &[u8]) -> impl Iterator<Item = Op> + '_ {
    let mut p = HDR;
    std::iter::from_fn(move || {
        if p >= s.len() {
            return None;
        }
        let op = op_at(s, p);
        p += op.width();
        Some(op)
    })
}

/// Converts a sparse value to dense (header copied, encoding changed). A sparse
/// value whose runs do not cover exactly 16384 registers is corrupted.
pub fn to_dense(s: &[u8]) -> Result<Vec<u8>, HllError> {
    if check(s)? == Encoding::Dense {
        return Ok(s.to_vec());
    }
    let mut d = vec![0u8; DENSE_SIZE];
    d[..HDR].copy_from_slice(&s[..HDR]);
    d[4] = ENC_DENSE;
    let regs = &mut d[HDR..];
    let mut idx = 0usize;
    for op in ops(s) {
        match op {
            Op::Zero(n) | Op::XZero(n) => idx += n,
            Op::Val(v, n) => {
                if idx + n > REGISTERS {
                    break;
                }
                for i in idx..idx + n {
                    dense_put(regs, i, v);
                }
                idx += n;
            }
        }
    }
    if idx != REGISTERS {
        return Err(HllError::Corrupted);
    }
    Ok(d)
}

/// Raises register `index` of a sparse value to `count` (Redis `hllSparseSet`),
/// splitting the opcode that covers it, merging equal neighbours afterwards, and
/// turning the value dense when `count` exceeds 32 or the value would outgrow
/// `max_bytes`. True if a register changed.
fn sparse_set(
    s: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, HllError> {
    if count > VAL_MAX_VALUE {
        return promote(s, index, count);
    }
    // Find the opcode covering `index`.
    let (mut p, mut first, mut prev) = (HDR, 0usize, None);
    let mut found = None;
    while p < s.len() {
        let op = op_at(s, p);
        if index < first + op.span() {
            found = Some(op);
            break;
        }
        prev = Some(p);
        p += op.width();
        first += op.span();
    }
    let Some(op) = found else {
        return Err(HllError::Corrupted);
    };
    let last = first + op.span() - 1;
    match op {
        Op::Val(v, _) if v >= count => return Ok(false),
        Op::Val(_, 1) | Op::Zero(1) => s[p] = val(count, 1),
        _ => {
            // Split into (before, the register, after): at most XZERO VAL XZERO.
            let mut seq = Vec::with_capacity(5);
            match op {
                Op::Val(cur, _) => {
                    if index != first {
                        seq.push(val(cur, index - first));
                    }
                    seq.push(val(count, 1));
                    if index != last {
                        seq.push(val(cur, last - index));
                    }
                }
                _ => {
                    if index != first {
                        push_zeros(&mut seq, index - first);
                    }
                    seq.push(val(count, 1));
                    if index != last {
                        push_zeros(&mut seq, last - index);
                    }
                }
            }
            let old_w = op.width();
            let new_len = (s.len() + seq.len()).saturating_sub(old_w);
            if seq.len() > old_w && new_len > max_bytes {
                return promote(s, index, count);
            }
            // A truncated final XZERO has only one of its two bytes in the string.
            let tail = (p + old_w).min(s.len());
            s.splice(p..tail, seq);
            s.truncate(new_len);
        }
    }
    merge_neighbours(s, prev.unwrap_or(HDR));
    invalidate(s);
    Ok(true)
}

/// Merges adjacent VAL opcodes of equal value, looking at up to 5 opcodes from `p`.
fn merge_neighbours(s: &mut Vec<u8>, mut p: usize) {
    let mut budget = 5;
    while p < s.len() && budget > 0 {
        budget -= 1;
        match op_at(s, p) {
            Op::XZero(_) => p += 2,
            Op::Zero(_) => p += 1,
            Op::Val(v1, l1) => {
                if p + 1 < s.len() {
                    if let Op::Val(v2, l2) = op_at(s, p + 1) {
                        if v1 == v2 && l1 + l2 <= VAL_MAX_LEN {
                            s[p + 1] = val(v1, l1 + l2);
                            s.remove(p);
                            continue;
                        }
                    }
                }
                p += 1;
            }
        }
    }
}

/// Turns a sparse value dense, then sets the register there.
fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, HllError> {
    let mut d = to_dense(s)?;
    let changed = dense_set(&mut d, index, count);
    *s = d;
    Ok(changed)
}

/// Raises register `index` to `count` in either encoding. The value must have
/// passed [`check`]. Does not touch the cached cardinality of a dense value (the
/// caller invalidates once per command, as Redis does).
pub fn set_register(
    s: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, HllError> {
    match check(s)? {
        Encoding::Dense => Ok(dense_set(s, index, count)),
        Encoding::Sparse => sparse_set(s, index, count, max_bytes),
    }
}

/// Adds one element (Redis `hllAdd`); true if a register changed.
pub fn add(s: &mut Vec<u8>, ele: &[u8], max_bytes: usize) -> Result<bool, HllError> {
    let (index, count) = pattern(ele);
    set_register(s, index, count, max_bytes)
}

// ---- cached cardinality ----------------------------------------------------

/// The cached cardinality, if it is not stale.
pub fn cached(s: &[u8]) -> Option<u64> {
    let c: [u8; 8] = s.get(8..HDR)?.try_into().ok()?;
    (c[7] & STALE_BIT == 0).then(|| u64::from_le_bytes(c))
}

/// Stores a freshly computed cardinality (which also marks the cache valid).
pub fn set_cached(s: &mut [u8], card: u64) {
    if let Some(c) = s.get_mut(8..HDR) {
        c.copy_from_slice(&card.to_le_bytes());
    }
}

/// Marks the cache stale; the other cache bytes keep their old contents.
pub fn invalidate(s: &mut [u8]) {
    if let Some(b) = s.get_mut(HDR - 1) {
        *b |= STALE_BIT;
    }
}

// ---- counting and merging --------------------------------------------------

/// How many registers hold each value 0..=63.
pub type Histogram = [u64; 64];

/// The register histogram of a checked value; a sparse value that does not cover
/// exactly 16384 registers is corrupted.
pub fn histogram(s: &[u8]) -> Result<Histogram, HllError> {
    let mut h = [0u64; 64];
    match check(s)? {
        Encoding::Dense => {
            let regs = &s[HDR..];
            for i in 0..REGISTERS {
                h[dense_get(regs, i) as usize] += 1;
            }
        }
        Encoding::Sparse => {
            let mut idx = 0usize;
            for op in ops(s) {
                match op {
                    Op::Zero(n) | Op::XZero(n) => h[0] += n as u64,
                    Op::Val(v, n) => h[v as usize] += n as u64,
                }
                idx += op.span();
            }
            if idx != REGISTERS {
                return Err(HllError::Corrupted);
            }
        }
    }
    Ok(h)
}

/// The histogram of plain one-byte registers (the union PFCOUNT computes).
pub fn raw_histogram(regs: &[u8]) -> Histogram {
    let mut h = [0u64; 64];
    for &r in regs {
        h[(r & 63) as usize] += 1;
    }
    h
}

/// Raises each of `max` (16384 one-byte registers) to the register of `s`.
pub fn merge_into(max: &mut [u8], s: &[u8]) -> Result<(), HllError> {
    match check(s)? {
        Encoding::Dense => {
            let regs = &s[HDR..];
            for (i, m) in max.iter_mut().enumerate().take(REGISTERS) {
                *m = (*m).max(dense_get(regs, i));
            }
        }
        Encoding::Sparse => {
            let mut idx = 0usize;
            for op in ops(s) {
                match op {
                    Op::Zero(n) | Op::XZero(n) => idx += n,
                    Op::Val(v, n) => {
                        if idx + n > REGISTERS {
                            break;
                        }
                        for m in max.iter_mut().skip(idx).take(n) {
                            *m = (*m).max(v);
                        }
                        idx += n;
                    }
                }
            }
            if idx != REGISTERS {
                return Err(HllError::Corrupted);
            }
        }
    }
    Ok(())
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if z == before {
            return z / 3.0;
        }
    }
}

/// Ertl's improved raw estimator ("New cardinality estimation algorithms for
/// HyperLogLog sketches", 2017), evaluated in the same order as Redis so the
/// doubles, and so the rounded result, are identical.
pub fn estimate(h: &Histogram) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - h[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += h[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(h[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The cardinality of one checked value (ignoring the cache).
pub fn count(s: &[u8]) -> Result<u64, HllError> {
    Ok(estimate(&histogram(s)?))
}

/// All 16384 registers of a checked value, one byte each.
pub fn registers(s: &[u8]) -> Result<Vec<u8>, HllError> {
    let d = to_dense(s)?;
    let regs = &d[HDR..];
    Ok((0..REGISTERS).map(|i| dense_get(regs, i)).collect())
}

/// PFDEBUG DECODE's text for a sparse value: `z:<n>`, `Z:<n>`, `v:<value>,<n>`.
pub fn decode(s: &[u8]) -> String {
    let parts: Vec<String> = ops(s)
        .map(|op| match op {
            Op::Zero(n) => format!("z:{n}"),
            Op::XZero(n) => format!("Z:{n}"),
            Op::Val(v, n) => format!("v:{v},{n}"),
        })
        .collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hll_of(items: impl Iterator<Item = String>, max: usize) -> Vec<u8> {
        let mut s = new_sparse();
        for e in items {
            add(&mut s, e.as_bytes(), max).unwrap();
        }
        s
    }

    #[test]
    fn empty_hll_is_sparse_with_one_xzero_and_counts_zero() {
        let s = new_sparse();
        assert_eq!(s.len(), 18);
        assert_eq!(&s[16..], &[0x7f, 0xff]);
        assert_eq!(check(&s), Ok(Encoding::Sparse));
        assert_eq!(count(&s), Ok(0));
        assert_eq!(decode(&s), "Z:16384");
    }

    #[test]
    fn element_positions_match_redis_7_0_15() {
        // From PFADD t <e>; PFDEBUG DECODE t on redis-server 7.0.15.
        assert_eq!(pattern(b"a"), (12711, 2));
        assert_eq!(pattern(b"hello"), (9216, 1));
        assert_eq!(pattern(b"foo"), (7348, 5));
        let mut s = new_sparse();
        add(&mut s, b"a", 3000).unwrap();
        assert_eq!(decode(&s), "Z:12711 v:2,1 Z:3672");
    }

    #[test]
    fn register_get_set_roundtrip_every_position() {
        let mut regs = vec![0u8; DENSE_SIZE - HDR];
        for i in 0..REGISTERS {
            dense_put(&mut regs, i, (i % 64) as u8);
        }
        for i in 0..REGISTERS {
            assert_eq!(dense_get(&regs, i), (i % 64) as u8, "register {i}");
        }
    }

    #[test]
    fn sparse_and_dense_agree_on_registers_and_count() {
        let sparse = hll_of((0..500).map(|i| format!("e{i}")), 1 << 20);
        assert_eq!(check(&sparse), Ok(Encoding::Sparse));
        let dense = to_dense(&sparse).unwrap();
        assert_eq!(registers(&sparse), registers(&dense));
        assert_eq!(count(&sparse), count(&dense));
        let n = count(&dense).unwrap();
        assert!((480..=520).contains(&n), "{n}");
    }

    #[test]
    fn promotion_happens_at_the_size_limit() {
        let s = hll_of((0..2000).map(|i| format!("e{i}")), 3000);
        assert_eq!(check(&s), Ok(Encoding::Dense));
        assert_eq!(s.len(), DENSE_SIZE);
    }

    #[test]
    fn corrupted_sparse_values_are_errors_not_panics() {
        let mut s = new_sparse();
        s.truncate(17); // a lone XZERO first byte
        assert_eq!(check(&s), Ok(Encoding::Sparse));
        // Covers 16129 registers only: corrupted, whatever the operation.
        assert_eq!(count(&s), Err(HllError::Corrupted));
        assert!(to_dense(&s).is_err());
        let mut s = new_sparse();
        s.truncate(HDR);
        assert_eq!(count(&s), Err(HllError::Corrupted));
        assert_eq!(add(&mut s, b"x", 3000), Err(HllError::Corrupted));
        // VAL opcodes past the last register: the histogram sees too many
        // registers, while conversion and merging stop at the overflowing VAL
        // (as Redis does) and accept it.
        let mut s = new_sparse();
        s.extend_from_slice(&[0xff; 10]);
        assert_eq!(count(&s), Err(HllError::Corrupted));
        assert!(to_dense(&s).is_ok());
        // Zero runs past the last register: corrupted everywhere.
        let mut s = new_sparse();
        s.extend_from_slice(&[0x00; 10]);
        assert_eq!(count(&s), Err(HllError::Corrupted));
        assert!(to_dense(&s).is_err());
        let mut max = vec![0u8; REGISTERS];
        assert_eq!(merge_into(&mut max, &s), Err(HllError::Corrupted));
        assert_eq!(check(b"HYLL\0short"), Err(HllError::NotHll));
        let mut d = vec![0u8; DENSE_SIZE - 1];
        d[..4].copy_from_slice(b"HYLL");
        assert_eq!(check(&d), Err(HllError::NotHll));
    }
}
