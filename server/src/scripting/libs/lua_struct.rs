//! `struct`: lua-struct's `pack`, `unpack` and `size`, with the bounds checks Redis added
//! (format sizes that overflow `int`, offsets below 1, `c0` without a previous number,
//! lengths past the data).
//!
//! Format: `>`/`<` big/little endian (native: little), `![n]` max alignment (power of
//! two, default 8), `x` one zero byte, `b/B h/H l/L T` 1/2/8/8-byte integers, `i/I[n]`
//! n-byte integers (default 4, at most 32), `f`/`d` float/double, `c[n]` n chars (`c0`:
//! the whole string when packing, the previous number as length when unpacking), `s`
//! zero-terminated string, ` ` ignored. Integers go through the C conversions of the
//! original (64-bit `long`), reproduced by the `c_double_to_*` helpers.

use mlua::{Lua, Table, Value};

use super::{
    c_double_to_i64, c_double_to_u64, raise, Args, Kit, LibError, LibResult, Ret, CSTACK_SLOTS,
};

/// Largest integer size (`MAXINTSIZE`).
const MAX_INT_SIZE: usize = 32;
/// Default alignment for `!` without a number (`MAXALIGN` on x86-64).
const MAX_ALIGN: usize = 8;

/// The library table.
pub(crate) fn module(lua: &Lua, kit: &Kit) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("pack", kit.function(lua, pack)?)?;
    t.set("unpack", kit.function(lua, unpack)?)?;
    t.set("size", kit.function(lua, size)?)?;
    Ok(t)
}

#[derive(Clone, Copy, PartialEq)]
enum Endian {
    Big,
    Little,
}

struct Header {
    endian: Endian,
    align: usize,
}

impl Header {
    fn new() -> Header {
        Header {
            endian: Endian::Little,
            align: 1,
        }
    }
}

/// A format string being read (it ends at its first NUL, as a C string does).
struct Fmt<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Fmt<'a> {
    fn new(raw: &'a [u8]) -> Fmt<'a> {
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Fmt {
            bytes: raw.get(..end).unwrap_or(raw),
            pos: 0,
        }
    }

    fn next_opt(&mut self) -> Option<u8> {
        let b = self.bytes.get(self.pos).copied();
        if b.is_some() {
            self.pos += 1;
        }
        b
    }

    /// `getnum`: the digits that follow, or `default`; errors past `INT_MAX`.
    fn number(&mut self, default: usize) -> LibResult<usize> {
        let mut seen = false;
        let mut a: i32 = 0;
        while let Some(&d) = self.bytes.get(self.pos).filter(|b| b.is_ascii_digit()) {
            let digit = i32::from(d - b'0');
            if a > i32::MAX / 10 || a * 10 > i32::MAX - digit {
                return raise("integral size overflow");
            }
            a = a * 10 + digit;
            self.pos += 1;
            seen = true;
        }
        Ok(if seen {
            usize::try_from(a).unwrap_or(0)
        } else {
            default
        })
    }
}

/// `optsize`: the size an option occupies (0 for control options).
fn opt_size(opt: u8, fmt: &mut Fmt) -> LibResult<usize> {
    Ok(match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' | b'd' => 8,
        b'f' => 4,
        b'x' => 1,
        b'c' => fmt.number(1)?,
        b'i' | b'I' => {
            let sz = fmt.number(4)?;
            if sz > MAX_INT_SIZE {
                return raise(format!(
                    "integral size {sz} is larger than limit of {MAX_INT_SIZE}"
                ));
            }
            sz
        }
        _ => 0,
    })
}

/// `gettoalign`: padding before an item of `size` at offset `len` (the original's
/// arithmetic, also for sizes that are not powers of two).
fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    let m = size.wrapping_sub(1);
    size.wrapping_sub(len & m) & m
}

/// `controloptions`: endianness, alignment, spaces; anything else is invalid.
fn control(opt: u8, fmt: &mut Fmt, h: &mut Header) -> LibResult<()> {
    match opt {
        b' ' => {}
        b'>' => h.endian = Endian::Big,
        b'<' => h.endian = Endian::Little,
        b'!' => {
            let a = fmt.number(MAX_ALIGN)?;
            if !a.is_power_of_two() {
                return raise(format!("alignment {a} is not a power of 2"));
            }
            h.align = a;
        }
        other => {
            return Err(LibError::BadArg {
                arg: 1,
                msg: format!("invalid format option '{}'", char::from(other)),
            });
        }
    }
    Ok(())
}

fn is_integer_opt(opt: u8) -> bool {
    matches!(
        opt,
        b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I'
    )
}

/// `struct.pack(fmt, ...)`.
fn pack(lua: &Lua, mut a: Args) -> LibResult<Ret> {
    let fmt_s = a.check_bytes(1)?;
    // The original pushes a nil above its arguments before packing, so the first
    // missing argument reads as "got nil" and later ones as "got no value".
    a.set_nil_above();
    let fmt_b = fmt_s.as_bytes();
    let mut fmt = Fmt::new(&fmt_b);
    let mut h = Header::new();
    let mut arg = 2;
    let mut out: Vec<u8> = Vec::new();
    while let Some(opt) = fmt.next_opt() {
        let mut size = opt_size(opt, &mut fmt)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            o if is_integer_opt(o) => {
                let n = a.check_number(arg)?;
                arg += 1;
                put_integer(&mut out, n, h.endian, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = a.check_number(arg)? as f32;
                arg += 1;
                put_bytes(&mut out, &f.to_le_bytes(), h.endian);
            }
            b'd' => {
                let d = a.check_number(arg)?;
                arg += 1;
                put_bytes(&mut out, &d.to_le_bytes(), h.endian);
            }
            b'c' | b's' => {
                let s = a.check_bytes(arg)?;
                arg += 1;
                let s = s.as_bytes();
                if size == 0 {
                    size = s.len();
                }
                let Some(part) = s.get(..size) else {
                    return Err(LibError::BadArg {
                        arg,
                        msg: "string too short".into(),
                    });
                };
                out.extend_from_slice(part);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => control(opt, &mut fmt, &mut h)?,
        }
    }
    Ok(Ret::One(Value::String(lua.create_string(out)?)))
}

/// `putinteger`: the low `size` bytes of the C conversion of `n`.
fn put_integer(out: &mut Vec<u8>, n: f64, endian: Endian, size: usize) {
    let mut value = if n < 0.0 {
        c_double_to_i64(n) as u64
    } else {
        c_double_to_u64(n)
    };
    let mut le = Vec::with_capacity(size);
    for _ in 0..size {
        le.push((value & 0xff) as u8);
        value >>= 8;
    }
    put_bytes(out, &le, endian);
}

/// Appends little-endian `le` in the byte order `endian` asks for.
fn put_bytes(out: &mut Vec<u8>, le: &[u8], endian: Endian) {
    match endian {
        Endian::Little => out.extend_from_slice(le),
        Endian::Big => out.extend(le.iter().rev()),
    }
}

/// `getinteger`: `size` bytes as an integer (64-bit, sign-extended from the top bit of
/// the `size`-byte value; the shift count wraps as x86-64's does).
fn get_integer(bytes: &[u8], endian: Endian, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut push = |b: u8| l = (l << 8) | u64::from(b);
    match endian {
        Endian::Big => bytes.iter().copied().for_each(&mut push),
        Endian::Little => bytes.iter().rev().copied().for_each(&mut push),
    }
    if !signed {
        return l as f64;
    }
    let shift = ((bytes.len() as u64).wrapping_mul(8).wrapping_sub(1) & 63) as u32;
    let mask = u64::MAX << shift;
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

/// Reads `N` bytes in the byte order `endian` asks for, as little-endian.
fn get_le<const N: usize>(bytes: &[u8], endian: Endian) -> [u8; N] {
    let mut b = [0u8; N];
    for (dst, src) in b.iter_mut().zip(bytes) {
        *dst = *src;
    }
    if endian == Endian::Big {
        b.reverse();
    }
    b
}

fn too_short() -> LibError {
    LibError::BadArg {
        arg: 2,
        msg: "data string too short".into(),
    }
}

/// `struct.unpack(fmt, data [, pos])`.
fn unpack(lua: &Lua, a: Args) -> LibResult<Ret> {
    let fmt_s = a.check_bytes(1)?;
    let data_s = a.check_bytes(2)?;
    // The offset is taken as a C `size_t`: only 0 is refused here, negative values
    // wrap around and fail the length check below.
    let start = a.opt_integer(3, 1)?;
    if start == 0 {
        return Err(LibError::BadArg {
            arg: 3,
            msg: "offset must be 1 or greater".into(),
        });
    }
    let fmt_b = fmt_s.as_bytes();
    let data = data_s.as_bytes();
    let ld = data.len();
    let mut pos = (start as u64).wrapping_sub(1) as usize;
    let mut fmt = Fmt::new(&fmt_b);
    let mut h = Header::new();
    // Results go straight into a table: there may be thousands.
    let results = lua.create_table()?;
    let mut n: usize = 0;
    let push = |v: Value, n: &mut usize| -> LibResult<()> {
        *n += 1;
        results.raw_set(*n, v)?;
        Ok(())
    };
    while let Some(opt) = fmt.next_opt() {
        let mut size = opt_size(opt, &mut fmt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        if size > ld || pos > ld - size {
            return Err(too_short());
        }
        // The C function's stack holds its two arguments and the results so far.
        if 2 + n + 1 > CSTACK_SLOTS {
            return raise("stack overflow (too many results)");
        }
        let item = data.get(pos..pos + size).unwrap_or_default();
        match opt {
            o if is_integer_opt(o) => {
                push(
                    Value::Number(get_integer(item, h.endian, o.is_ascii_lowercase())),
                    &mut n,
                )?;
            }
            b'x' => {}
            b'f' => push(
                Value::Number(f64::from(f32::from_le_bytes(get_le::<4>(item, h.endian)))),
                &mut n,
            )?,
            b'd' => push(
                Value::Number(f64::from_le_bytes(get_le::<8>(item, h.endian))),
                &mut n,
            )?,
            b'c' => {
                if size == 0 {
                    let prev = if n == 0 {
                        None
                    } else {
                        super::to_number(lua, &results.raw_get::<Value>(n)?)?
                    };
                    let Some(len) = prev else {
                        return raise("format 'c0' needs a previous size");
                    };
                    results.raw_set(n, Value::Nil)?;
                    n -= 1;
                    size = usize::try_from(c_double_to_u64(len)).unwrap_or(usize::MAX);
                    if size > ld || pos > ld - size {
                        return Err(too_short());
                    }
                }
                let part = data.get(pos..pos + size).unwrap_or_default();
                push(Value::String(lua.create_string(part)?), &mut n)?;
            }
            b's' => {
                let rest = data.get(pos..).unwrap_or_default();
                let Some(nul) = rest.iter().position(|&b| b == 0) else {
                    return raise("unfinished string in data");
                };
                size = nul + 1;
                push(
                    Value::String(lua.create_string(rest.get(..nul).unwrap_or_default())?),
                    &mut n,
                )?;
            }
            _ => control(opt, &mut fmt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    push(Value::Number(pos as f64 + 1.0), &mut n)?;
    Ok(Ret::Spread(results, n))
}

/// `struct.size(fmt)`.
fn size(_lua: &Lua, a: Args) -> LibResult<Ret> {
    let fmt_s = a.check_bytes(1)?;
    let fmt_b = fmt_s.as_bytes();
    let mut fmt = Fmt::new(&fmt_b);
    let mut h = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = fmt.next_opt() {
        let size = opt_size(opt, &mut fmt)?;
        pos = pos.saturating_add(to_align(pos, &h, opt, size));
        if opt == b's' {
            return Err(LibError::BadArg {
                arg: 1,
                msg: "option 's' has no fixed size".into(),
            });
        }
        if opt == b'c' && size == 0 {
            return Err(LibError::BadArg {
                arg: 1,
                msg: "option 'c0' has no fixed size".into(),
            });
        }
        if !opt.is_ascii_alphanumeric() {
            control(opt, &mut fmt, &mut h)?;
        }
        pos = pos.saturating_add(size);
    }
    Ok(Ret::One(Value::Number(pos as f64)))
}
