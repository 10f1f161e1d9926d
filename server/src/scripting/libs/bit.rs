//! `bit`: LuaBitOp's 32-bit operations on Lua numbers (doubles).
//!
//! Arguments are normalised as LuaBitOp does: add 2^52+2^51 to the double and keep the
//! low 32 bits of its representation (rounds to nearest, wraps modulo 2^32). Results are
//! the signed 32-bit value as a number. `band`/`bor`/`bxor` check their arguments from
//! the last to the second after the first, so the reported bad argument is the last one.

use mlua::{Lua, Table, Value};

use super::{Args, Kit, LibResult, Ret};

/// The library table.
pub(crate) fn module(lua: &Lua, kit: &Kit) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("tobit", kit.function(lua, |_, a| unary(a, |b| b))?)?;
    t.set("bnot", kit.function(lua, |_, a| unary(a, |b| !b))?)?;
    t.set(
        "bswap",
        kit.function(lua, |_, a| unary(a, u32::swap_bytes))?,
    )?;
    t.set("band", kit.function(lua, |_, a| fold(a, |x, y| x & y))?)?;
    t.set("bor", kit.function(lua, |_, a| fold(a, |x, y| x | y))?)?;
    t.set("bxor", kit.function(lua, |_, a| fold(a, |x, y| x ^ y))?)?;
    t.set("lshift", kit.function(lua, |_, a| shift(a, |b, n| b << n))?)?;
    t.set("rshift", kit.function(lua, |_, a| shift(a, |b, n| b >> n))?)?;
    t.set(
        "arshift",
        kit.function(lua, |_, a| shift(a, |b, n| ((b as i32) >> n) as u32))?,
    )?;
    t.set("rol", kit.function(lua, |_, a| shift(a, u32::rotate_left))?)?;
    t.set(
        "ror",
        kit.function(lua, |_, a| shift(a, u32::rotate_right))?,
    )?;
    t.set("tohex", kit.function(lua, tohex)?)?;
    Ok(t)
}

/// The 32 bits LuaBitOp takes from a double.
pub(crate) fn normalise(n: f64) -> u32 {
    let shifted = n + 6_755_399_441_055_744.0;
    shifted.to_bits() as u32
}

/// LuaBitOp's argument check: a number (or numeric string), normalised.
fn barg(a: &Args, i: usize) -> LibResult<u32> {
    match a.to_number(i)? {
        Some(n) => Ok(normalise(n)),
        None => Err(a.type_error(i, "number")),
    }
}

fn ret(b: u32) -> LibResult<Ret> {
    Ok(Ret::One(Value::Number(f64::from(b as i32))))
}

fn unary(a: Args, op: impl Fn(u32) -> u32) -> LibResult<Ret> {
    ret(op(barg(&a, 1)?))
}

fn fold(a: Args, op: impl Fn(u32, u32) -> u32) -> LibResult<Ret> {
    let mut b = barg(&a, 1)?;
    for i in (2..=a.top()).rev() {
        b = op(b, barg(&a, i)?);
    }
    ret(b)
}

fn shift(a: Args, op: impl Fn(u32, u32) -> u32) -> LibResult<Ret> {
    let b = barg(&a, 1)?;
    let n = barg(&a, 2)? & 31;
    ret(op(b, n))
}

fn tohex(lua: &Lua, a: Args) -> LibResult<Ret> {
    let mut b = barg(&a, 1)?;
    let mut n = if a.get(2).is_none() {
        8
    } else {
        i64::from(barg(&a, 2)? as i32)
    };
    let digits: &[u8; 16] = if n < 0 {
        n = -n;
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let n = usize::try_from(n.min(8)).unwrap_or(8);
    let mut buf = vec![0u8; n];
    for slot in buf.iter_mut().rev() {
        *slot = digits[(b & 15) as usize];
        b >>= 4;
    }
    Ok(Ret::One(Value::String(lua.create_string(buf)?)))
}
