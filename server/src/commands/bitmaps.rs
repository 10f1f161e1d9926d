//! Command family: bitmaps (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD,
//! BITFIELD_RO) over plain string values.
//!
//! Bit `n` of a string is bit `7 - n % 8` of byte `n / 8` (the most significant
//! bit of the first byte is bit 0). Offsets are limited by `proto-max-bulk-len`,
//! so no command can make a string larger than a client could have sent.
//!
//! Propagation follows Redis 7.0: SETBIT and BITFIELD only when they changed a bit
//! or created/grew the string (a BITFIELD of GETs only, or a SET of the value
//! already there, is not propagated); BITOP when it stored or deleted the target.
//! One deliberate difference: a BITFIELD whose writes all fail under OVERFLOW FAIL
//! still created or grew the string, and is propagated so replicas hold it too
//! (Redis 7.0 leaves it out of the stream).

use super::{arg_i64, err, flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::notify::{GENERIC, STRING};
use crate::resp::Reply;
use crate::types::{Str, Value};
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("setbit", 4, WRITE | DENYOOM, setbit).keys(1, 1, 1),
    Command::new("getbit", 3, READONLY | FAST, getbit).keys(1, 1, 1),
    Command::new("bitcount", -2, READONLY, bitcount).keys(1, 1, 1),
    Command::new("bitpos", -3, READONLY, bitpos).keys(1, 1, 1),
    Command::new("bitop", -4, WRITE | DENYOOM, bitop).keys(2, -1, 1),
    Command::new("bitfield", -2, WRITE | DENYOOM, bitfield).keys(1, 1, 1),
    Command::new("bitfield_ro", -2, READONLY | FAST, bitfield_ro).keys(1, 1, 1),
];

fn offset_error() -> CmdError {
    CmdError::msg("ERR bit offset is not an integer or out of range")
}

/// A bit offset argument (Redis `getBitOffsetFromArgument`). With `width` (a
/// BITFIELD type's size), `#n` means `n * width`. The byte it falls in must be
/// below `proto-max-bulk-len`.
fn bit_offset(ctx: &Ctx, arg: &[u8], width: Option<u32>) -> Result<u64, CmdError> {
    let (digits, mul) = match (arg.first(), width) {
        (Some(b'#'), Some(w)) => (&arg[1..], w as i64),
        _ => (arg, 1),
    };
    // Redis multiplies without an overflow check; a wrapped product lands
    // negative or out of range and is refused below, as it is there.
    let off = crate::resp::parse_i64(digits)
        .ok_or_else(offset_error)?
        .wrapping_mul(mul);
    let max = ctx.config().proto_max_bulk_len;
    if off < 0 || (off >> 3) >= max {
        return Err(offset_error());
    }
    Ok(off as u64)
}

/// Runs `f` on the string at `key` grown (zero-padded) to at least `min_len`
/// bytes, creating it if missing. Returns `f`'s result and whether the string
/// was created or grew. The caller has bounded `min_len` by `proto-max-bulk-len`.
///
/// Like Redis's lookup for a bit write, this leaves the string `raw` (OBJECT ENCODING)
/// even when no bit changes (SETBIT of a bit to its value, BITFIELD SET of the same
/// value), which is no write to propagate.
fn with_bits<T>(
    ctx: &mut Ctx,
    key: &Bytes,
    min_len: usize,
    f: impl FnOnce(&mut Vec<u8>) -> T,
) -> Result<(T, bool), CmdError> {
    let done = with_bits_unmarked(ctx, key, min_len, f)?;
    if let Some(e) = ctx.db().entry_mut(key) {
        e.meta.mark_raw();
    }
    Ok(done)
}

fn with_bits_unmarked<T>(
    ctx: &mut Ctx,
    key: &Bytes,
    min_len: usize,
    f: impl FnOnce(&mut Vec<u8>) -> T,
) -> Result<(T, bool), CmdError> {
    match ctx.get_mut(key) {
        Some(Value::Str(b)) => {
            // Edited in place: the string keeps a growable buffer from the first edit on.
            let v = b.vec_mut();
            let grew = v.len() < min_len;
            if grew {
                v.resize(min_len, 0);
            }
            let r = f(v);
            Ok((r, grew))
        }
        Some(_) => Err(err::WRONGTYPE),
        None => {
            let mut v = vec![0u8; min_len];
            let r = f(&mut v);
            ctx.set(key, Value::Str(Str::from(v)));
            Ok((r, true))
        }
    }
}

fn bit_at(s: &[u8], pos: u64) -> u8 {
    let byte = usize::try_from(pos >> 3).unwrap_or(usize::MAX);
    s.get(byte).map_or(0, |b| (b >> (7 - (pos & 7))) & 1)
}

fn put_bit(s: &mut [u8], pos: u64, on: bool) {
    let byte = usize::try_from(pos >> 3).unwrap_or(usize::MAX);
    let mask = 1u8 << (7 - (pos & 7));
    if let Some(b) = s.get_mut(byte) {
        if on {
            *b |= mask;
        } else {
            *b &= !mask;
        }
    }
}

fn setbit(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let offset = bit_offset(ctx, &argv[2], None)?;
    let bit_error = || CmdError::msg("ERR bit is not an integer or out of range");
    let on = crate::resp::parse_i64(&argv[3]).ok_or_else(bit_error)?;
    if on & !1 != 0 {
        return Err(bit_error());
    }
    let min_len = (offset >> 3) as usize + 1;
    let (old, grew) = with_bits(ctx, &argv[1], min_len, |v| {
        let old = bit_at(v, offset);
        put_bit(v, offset, on == 1);
        old
    })?;
    if grew || old as i64 != on {
        ctx.dirty(1);
        ctx.notify(STRING, "setbit", &argv[1]);
    }
    out.int(old as i64);
    Ok(())
}

fn getbit(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let offset = bit_offset(ctx, &argv[2], None)?;
    let bit = match ctx.get(&argv[1]) {
        None => 0,
        Some(Value::Str(s)) => bit_at(s, offset),
        Some(_) => return Err(err::WRONGTYPE),
    };
    out.int(bit as i64);
    Ok(())
}

/// Set bits in the bit range `lo..=hi` (both within `s`).
fn count_bits(s: &[u8], lo: u64, hi: u64) -> u64 {
    let (first, last) = ((lo >> 3) as usize, (hi >> 3) as usize);
    let Some(bytes) = s.get(first..=last) else {
        return 0;
    };
    let mut n: u64 = 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        n += u64::from_ne_bytes(w).count_ones() as u64;
    }
    n += chunks
        .remainder()
        .iter()
        .map(|b| b.count_ones() as u64)
        .sum::<u64>();
    // Take away the bits of the edge bytes that lie outside the range.
    let head = (lo & 7) as u32;
    let tail = 7 - (hi & 7) as u32;
    if let (Some(f), Some(l)) = (bytes.first(), bytes.last()) {
        if head > 0 {
            n -= (f >> (8 - head)).count_ones() as u64;
        }
        if tail > 0 {
            n -= (l & ((1u8 << tail) - 1)).count_ones() as u64;
        }
    }
    n
}

/// Parses `BYTE|BIT`: true for BIT.
fn unit_is_bit(a: &[u8]) -> Result<bool, CmdError> {
    if is_kw(a, "bit") {
        Ok(true)
    } else if is_kw(a, "byte") {
        Ok(false)
    } else {
        Err(err::SYNTAX)
    }
}

/// Clamps a start/end pair (negative = from the end) to `0..total`; None when
/// the range is empty.
fn clamp_range(mut start: i64, mut end: i64, total: i64) -> Option<(u64, u64)> {
    if start < 0 {
        start = start.saturating_add(total);
    }
    if end < 0 {
        end = end.saturating_add(total);
    }
    let start = start.max(0);
    let end = end.max(0).min(total - 1);
    (start <= end).then_some((start as u64, end as u64))
}

/// BITCOUNT over a string's bytes; `args` are the arguments after the key.
fn bitcount_of(s: &[u8], args: &[Bytes]) -> Result<i64, CmdError> {
    let len = s.len() as i64;
    let (lo, hi) = match args {
        [] => match clamp_range(0, -1, len) {
            Some((a, b)) => (a * 8, b * 8 + 7),
            None => return Ok(0),
        },
        [start, end, unit @ ..] if unit.len() <= 1 => {
            let start = arg_i64(start)?;
            let end = arg_i64(end)?;
            if start < 0 && end < 0 && start > end {
                return Ok(0);
            }
            let is_bit = match unit.first() {
                Some(u) => unit_is_bit(u)?,
                None => false,
            };
            let total = if is_bit { len * 8 } else { len };
            match (clamp_range(start, end, total), is_bit) {
                (None, _) => return Ok(0),
                (Some((a, b)), true) => (a, b),
                (Some((a, b)), false) => (a * 8, b * 8 + 7),
            }
        }
        _ => return Err(err::SYNTAX),
    };
    Ok(count_bits(s, lo, hi) as i64)
}

fn bitcount(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = match ctx.get(&argv[1]) {
        None => 0,
        Some(Value::Str(s)) => bitcount_of(s, &argv[2..])?,
        Some(_) => return Err(err::WRONGTYPE),
    };
    out.int(n);
    Ok(())
}

/// The first bit equal to `want` in `lo..=hi`.
fn find_bit(s: &[u8], want: u8, lo: u64, hi: u64) -> Option<u64> {
    let skip = if want == 1 { 0x00 } else { 0xff };
    let mut i = lo;
    while i <= hi {
        if i & 7 == 0 && i + 7 <= hi {
            let byte = s.get((i >> 3) as usize).copied().unwrap_or(0);
            if byte == skip {
                i += 8;
                continue;
            }
        }
        if bit_at(s, i) == want {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// BITPOS over a string; `args` are the arguments after the bit.
fn bitpos_of(s: &[u8], want: u8, args: &[Bytes]) -> Result<i64, CmdError> {
    let len = s.len() as i64;
    let (start, end, end_given, is_bit) = match args {
        [] => (0, -1, false, false),
        [start, rest @ ..] if rest.len() <= 2 => {
            let start = arg_i64(start)?;
            let is_bit = match rest.get(1) {
                Some(u) => unit_is_bit(u)?,
                None => false,
            };
            match rest.first() {
                Some(e) => (start, arg_i64(e)?, true, is_bit),
                None => (start, -1, false, is_bit),
            }
        }
        _ => return Err(err::SYNTAX),
    };
    let total = if is_bit { len * 8 } else { len };
    let Some((a, b)) = clamp_range(start, end, total) else {
        return Ok(-1);
    };
    let (lo, hi) = if is_bit { (a, b) } else { (a * 8, b * 8 + 7) };
    Ok(match find_bit(s, want, lo, hi) {
        Some(p) => p as i64,
        // Past the end of the string every bit is clear, unless the user fixed the end.
        None if want == 0 && !end_given => hi as i64 + 1,
        None => -1,
    })
}

fn bitpos(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let want = arg_i64(&argv[2])?;
    if want != 0 && want != 1 {
        return Err(CmdError::msg("ERR The bit argument must be 1 or 0."));
    }
    let pos = match ctx.get(&argv[1]) {
        // A missing key is an endless run of clear bits.
        None => {
            if want == 1 {
                -1
            } else {
                0
            }
        }
        Some(Value::Str(s)) => bitpos_of(s, want as u8, &argv[3..])?,
        Some(_) => return Err(err::WRONGTYPE),
    };
    out.int(pos);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

fn bitop(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let op = [
        ("and", BitOp::And),
        ("or", BitOp::Or),
        ("xor", BitOp::Xor),
        ("not", BitOp::Not),
    ]
    .iter()
    .find(|(kw, _)| is_kw(&argv[1], kw))
    .map(|(_, op)| *op)
    .ok_or(err::SYNTAX)?;
    if op == BitOp::Not && argv.len() != 4 {
        return Err(CmdError::msg(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let mut sources = Vec::with_capacity(argv.len() - 3);
    for key in &argv[3..] {
        match ctx.get(key) {
            None => sources.push(Bytes::new()),
            Some(Value::Str(s)) => sources.push(s.to_bytes()),
            Some(_) => return Err(err::WRONGTYPE),
        }
    }
    let maxlen = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let dest = &argv[2];
    if maxlen == 0 {
        if ctx.delete(dest) {
            ctx.dirty(1);
            ctx.notify(GENERIC, "del", dest);
        }
        out.int(0);
        return Ok(());
    }
    let mut res = vec![0u8; maxlen];
    if let Some(first) = sources.first() {
        res.iter_mut().zip(first.iter()).for_each(|(r, b)| *r = *b);
    }
    if op == BitOp::Not {
        res.iter_mut().for_each(|b| *b = !*b);
    }
    for src in sources.iter().skip(1) {
        for (i, r) in res.iter_mut().enumerate() {
            let b = src.get(i).copied().unwrap_or(0);
            match op {
                BitOp::And => *r &= b,
                BitOp::Or => *r |= b,
                BitOp::Xor => *r ^= b,
                BitOp::Not => {}
            }
        }
    }
    ctx.set(dest, Value::Str(Str::from(res)));
    ctx.dirty(1);
    ctx.notify(STRING, "set", dest);
    out.int(maxlen as i64);
    Ok(())
}

// ---- BITFIELD ----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One parsed BITFIELD operation.
#[derive(Debug, Clone, Copy)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

/// A type like `i16` or `u8` (signed up to 64 bits, unsigned up to 63).
fn field_type(a: &[u8]) -> Result<(bool, u32), CmdError> {
    let bad = || {
        CmdError::msg(
            "ERR Invalid bitfield type. Use something like i16 u8. \
             Note that u64 is not supported but i64 is.",
        )
    };
    let signed = match a.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(bad()),
    };
    // Redis reads the width as a C string: it ends at a NUL byte.
    let digits = &a[1..];
    let digits = &digits[..digits.iter().position(|&c| c == 0).unwrap_or(digits.len())];
    let bits = crate::resp::parse_i64(digits).ok_or_else(bad)?;
    if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(bad());
    }
    Ok((signed, bits as u32))
}

fn parse_fields(ctx: &Ctx, argv: &[Bytes]) -> Result<Vec<Field>, CmdError> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < argv.len() {
        let remaining = argv.len() - j - 1;
        let sub = &argv[j];
        let op = if is_kw(sub, "get") && remaining >= 2 {
            FieldOp::Get
        } else if is_kw(sub, "set") && remaining >= 3 {
            FieldOp::Set(0)
        } else if is_kw(sub, "incrby") && remaining >= 3 {
            FieldOp::IncrBy(0)
        } else if is_kw(sub, "overflow") && remaining >= 1 {
            let t = &argv[j + 1];
            overflow = if is_kw(t, "wrap") {
                Overflow::Wrap
            } else if is_kw(t, "sat") {
                Overflow::Sat
            } else if is_kw(t, "fail") {
                Overflow::Fail
            } else {
                return Err(CmdError::msg("ERR Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(err::SYNTAX);
        };
        let (signed, bits) = field_type(&argv[j + 1])?;
        let offset = bit_offset(ctx, &argv[j + 2], Some(bits))?;
        let op = match op {
            FieldOp::Get => FieldOp::Get,
            FieldOp::Set(_) => FieldOp::Set(arg_i64(&argv[j + 3])?),
            FieldOp::IncrBy(_) => FieldOp::IncrBy(arg_i64(&argv[j + 3])?),
        };
        fields.push(Field {
            op,
            signed,
            bits,
            offset,
            overflow,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(fields)
}

fn get_unsigned(s: &[u8], offset: u64, bits: u32) -> u64 {
    (0..bits as u64).fold(0u64, |v, i| (v << 1) | bit_at(s, offset + i) as u64)
}

fn get_signed(s: &[u8], offset: u64, bits: u32) -> i64 {
    let mut v = get_unsigned(s, offset, bits);
    if bits < 64 && v & (1u64 << (bits - 1)) != 0 {
        v |= u64::MAX << bits;
    }
    v as i64
}

fn put_field(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let on = (value >> (bits as u64 - 1 - i)) & 1 == 1;
        put_bit(s, offset + i, on);
    }
}

/// The overflow check of an unsigned field for `value + incr`: Some(limit) on
/// overflow (the wrapped or saturated value; unused under FAIL).
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> Option<u64> {
    let max = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrapped = || {
        let mask = if bits >= 64 { 0 } else { u64::MAX << bits };
        value.wrapping_add(incr as u64) & !mask
    };
    if value > max || (incr > 0 && incr > max_incr) {
        Some(if ow == Overflow::Sat { max } else { wrapped() })
    } else if incr < 0 && incr < min_incr {
        Some(if ow == Overflow::Sat { 0 } else { wrapped() })
    } else {
        None
    }
}

/// The overflow check of a signed field for `value + incr`.
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> Option<i64> {
    let max = if bits >= 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrapped = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    let full = bits == 64;
    if value > max || (!full && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr) {
        Some(if ow == Overflow::Sat { max } else { wrapped() })
    } else if value < min
        || (!full && incr < min_incr)
        || (value < 0 && incr < 0 && incr < min_incr)
    {
        Some(if ow == Overflow::Sat { min } else { wrapped() })
    } else {
        None
    }
}

/// Runs one SET/INCRBY: (reply, changed), reply None when OVERFLOW FAIL refused it.
fn write_field(s: &mut [u8], f: &Field) -> (Option<i64>, bool) {
    let (incr, is_set) = match f.op {
        FieldOp::Set(v) => (v, true),
        FieldOp::IncrBy(v) => (v, false),
        FieldOp::Get => return (None, false),
    };
    let (old, new, overflowed, reply) = if f.signed {
        let old = get_signed(s, f.offset, f.bits);
        let (base, delta) = if is_set { (incr, 0) } else { (old, incr) };
        let limit = signed_overflow(base, delta, f.bits, f.overflow);
        let new = limit.unwrap_or(base.wrapping_add(delta));
        let reply = if is_set { old } else { new };
        (old as u64, new as u64, limit.is_some(), reply)
    } else {
        let old = get_unsigned(s, f.offset, f.bits);
        let (base, delta) = if is_set {
            (incr as u64, 0)
        } else {
            (old, incr)
        };
        let limit = unsigned_overflow(base, delta, f.bits, f.overflow);
        let new = limit.unwrap_or(base.wrapping_add(delta as u64));
        let reply = if is_set { old } else { new };
        (old, new, limit.is_some(), reply as i64)
    };
    if overflowed && f.overflow == Overflow::Fail {
        return (None, false);
    }
    put_field(s, f.offset, f.bits, new);
    (Some(reply), old != new)
}

fn read_field(s: &[u8], f: &Field) -> i64 {
    if f.signed {
        get_signed(s, f.offset, f.bits)
    } else {
        get_unsigned(s, f.offset, f.bits) as i64
    }
}

fn reply_fields(out: &mut Reply, replies: &[Option<i64>]) {
    out.array(replies.len());
    for r in replies {
        match r {
            Some(v) => out.int(*v),
            None => out.null(),
        }
    }
}

fn bitfield_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], ro: bool) -> CmdResult {
    let fields = parse_fields(ctx, argv)?;
    let key = &argv[1];
    let highest = fields
        .iter()
        .filter(|f| f.op != FieldOp::Get)
        .map(|f| f.offset + f.bits as u64 - 1)
        .max();
    let Some(highest) = highest else {
        // GETs only: a read, past the end every bit is clear.
        let replies: Vec<Option<i64>> = match ctx.get(key) {
            None => fields.iter().map(|f| Some(read_field(&[], f))).collect(),
            Some(Value::Str(s)) => fields.iter().map(|f| Some(read_field(s, f))).collect(),
            Some(_) => return Err(err::WRONGTYPE),
        };
        reply_fields(out, &replies);
        return Ok(());
    };
    if ro {
        return Err(CmdError::msg(
            "ERR BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let min_len = (highest >> 3) as usize + 1;
    let ((replies, changed), grew) = with_bits(ctx, key, min_len, |v| {
        let mut changed = false;
        let replies: Vec<Option<i64>> = fields
            .iter()
            .map(|f| match f.op {
                FieldOp::Get => Some(read_field(v, f)),
                _ => {
                    let (r, c) = write_field(v, f);
                    changed |= c;
                    r
                }
            })
            .collect();
        (replies, changed)
    })?;
    if changed || grew {
        ctx.dirty(1);
        ctx.notify(STRING, "setbit", &argv[1]);
    }
    reply_fields(out, &replies);
    Ok(())
}

fn bitfield(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, out, argv, false)
}

fn bitfield_ro(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, out, argv, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::keys::test_util::Harness;

    #[test]
    fn setbit_propagates_only_changes() {
        let mut h = Harness::new();
        let (r, ops) = h.run(&["setbit", "k", "7", "1"]);
        assert_eq!(r, ":0\r\n");
        assert_eq!(ops, vec![vec!["setbit", "k", "7", "1"]]);
        let (r, ops) = h.run(&["setbit", "k", "7", "1"]);
        assert_eq!(r, ":1\r\n");
        assert!(ops.is_empty(), "same bit: no change, nothing propagated");
        let (_, ops) = h.run(&["setbit", "k", "100", "0"]);
        assert_eq!(ops.len(), 1, "growing the string is a change");
        assert_eq!(h.run(&["strlen", "k"]).0, ":13\r\n");
    }

    #[test]
    fn bitfield_gets_are_not_propagated_but_writes_are() {
        let mut h = Harness::new();
        let (r, ops) = h.run(&["bitfield", "k", "get", "u8", "0"]);
        assert_eq!(r, "*1\r\n:0\r\n");
        assert!(ops.is_empty());
        assert_eq!(h.run(&["exists", "k"]).0, ":0\r\n");
        let (r, ops) = h.run(&["bitfield", "k", "set", "u8", "0", "200"]);
        assert_eq!(r, "*1\r\n:0\r\n");
        assert_eq!(ops.len(), 1);
        let (_, ops) = h.run(&["bitfield", "k", "set", "u8", "0", "200"]);
        assert!(ops.is_empty(), "same value");
        let (r, ops) = h.run(&[
            "bitfield", "k", "overflow", "fail", "incrby", "u8", "0", "100",
        ]);
        assert_eq!(r, "*1\r\n$-1\r\n");
        assert!(ops.is_empty());
        // Refused by OVERFLOW FAIL but the string was created: replicas create it too.
        let (r, ops) = h.run(&[
            "bitfield", "new", "overflow", "fail", "incrby", "u8", "0", "300",
        ]);
        assert_eq!(r, "*1\r\n$-1\r\n");
        assert_eq!(ops.len(), 1);
        assert_eq!(h.run(&["strlen", "new"]).0, ":1\r\n");
    }

    #[test]
    fn overflow_rules_follow_redis() {
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Wrap), Some(4));
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Sat), Some(255));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Sat), Some(0));
        assert_eq!(unsigned_overflow(5, -5, 8, Overflow::Sat), None);
        assert_eq!(signed_overflow(100, 100, 8, Overflow::Wrap), Some(-56));
        assert_eq!(signed_overflow(-100, -100, 8, Overflow::Sat), Some(-128));
        assert_eq!(
            signed_overflow(i64::MAX, 1, 64, Overflow::Wrap),
            Some(i64::MIN)
        );
        assert_eq!(
            signed_overflow(i64::MAX, 1, 64, Overflow::Sat),
            Some(i64::MAX)
        );
        assert_eq!(signed_overflow(-1, 1, 64, Overflow::Sat), None);
    }

    #[test]
    fn counting_bit_ranges() {
        let s = [0xffu8, 0x0f, 0xf0];
        assert_eq!(count_bits(&s, 0, 23), 16);
        assert_eq!(count_bits(&s, 4, 11), 4);
        assert_eq!(count_bits(&s, 12, 12), 1);
        assert_eq!(count_bits(&s, 11, 11), 0);
    }
}
