//! Unit tests of the libraries in a bare state (`Lua::new()` + `register`).

use mlua::Lua;

fn state() -> Lua {
    let lua = Lua::new();
    super::register(&lua).expect("register");
    lua
}

/// Evaluates `expr` and returns `tostring` of its first value, or `ERR: msg`.
fn eval(lua: &Lua, expr: &str) -> String {
    let src = format!(
        "local ok, r = pcall(function() local v = {expr} return v end) \
         if ok then return tostring(r) else return 'ERR: ' .. tostring(r) end"
    );
    lua.load(&src)
        .set_name("=t")
        .eval::<String>()
        .expect("chunk runs")
}

#[test]
fn bit_basics() {
    let lua = state();
    assert_eq!(eval(&lua, "bit.tobit(0xffffffff)"), "-1");
    assert_eq!(eval(&lua, "bit.tohex(255)"), "000000ff");
    assert_eq!(eval(&lua, "bit.tohex(-1, -4)"), "FFFF");
    assert_eq!(eval(&lua, "bit.band(0xff, 0x0f, 0x3)"), "3");
    assert_eq!(eval(&lua, "bit.lshift(1, 33)"), "2");
    assert_eq!(eval(&lua, "bit.arshift(-256, 4)"), "-16");
    assert_eq!(eval(&lua, "bit.rol(0x80000001, 1)"), "3");
    assert_eq!(eval(&lua, "bit.bswap(0x12345678)"), "2018915346");
    assert_eq!(
        eval(&lua, "bit.tobit('x')"),
        "ERR: t:1: bad argument #1 to 'tobit' (number expected, got string)"
    );
    assert_eq!(
        eval(&lua, "bit.bor(1, {}, 'y')"),
        "ERR: t:1: bad argument #3 to 'bor' (number expected, got string)"
    );
}

#[test]
fn struct_basics() {
    let lua = state();
    assert_eq!(eval(&lua, "struct.pack('>I2', 258)"), "\u{1}\u{2}");
    assert_eq!(
        eval(&lua, "select(2, struct.unpack('>h', '\\255\\254'))"),
        "3"
    );
    assert_eq!(eval(&lua, "struct.unpack('>h', '\\255\\254')"), "-2");
    assert_eq!(eval(&lua, "struct.size('!4bi')"), "8");
    assert_eq!(
        eval(&lua, "struct.pack('i33', 1)"),
        "ERR: t:1: integral size 33 is larger than limit of 32"
    );
    assert_eq!(
        eval(&lua, "struct.unpack('c0', '3')"),
        "ERR: t:1: format 'c0' needs a previous size"
    );
    assert_eq!(
        eval(&lua, "struct.unpack('bc0', '\\255abc')"),
        "ERR: t:1: bad argument #2 to 'unpack' (data string too short)"
    );
}

#[test]
fn cmsgpack_round_trip_and_errors() {
    let lua = state();
    assert_eq!(
        eval(
            &lua,
            "cmsgpack.unpack(cmsgpack.pack({1, 2, {a = 'x'}}))[3].a"
        ),
        "x"
    );
    assert_eq!(eval(&lua, "#cmsgpack.pack(1.5)"), "5");
    assert_eq!(eval(&lua, "#cmsgpack.pack(0.1)"), "9");
    assert_eq!(
        eval(&lua, "cmsgpack.unpack('\\145')"),
        "ERR: t:1: Missing bytes in input."
    );
    assert_eq!(
        eval(&lua, "cmsgpack.unpack('\\193')"),
        "ERR: t:1: Bad data format in input."
    );
    assert_eq!(
        eval(&lua, "cmsgpack.unpack('\\129\\192\\1')"),
        "ERR: table index is nil"
    );
    assert_eq!(eval(&lua, "select('#', cmsgpack.unpack(''))"), "0");
    // Deeply nested arrays stop at the C stack limit, not the native stack.
    assert!(eval(
        &lua,
        "cmsgpack.unpack(string.rep('\\145', 100000) .. '\\1')"
    )
    .starts_with("ERR: t:1: stack overflow"));
}

#[test]
fn cjson_round_trip_and_errors() {
    let lua = state();
    assert_eq!(eval(&lua, "cjson.encode({1, 2, 'a/b'})"), "[1,2,\"a\\/b\"]");
    assert_eq!(eval(&lua, "cjson.encode({})"), "{}");
    assert_eq!(eval(&lua, "cjson.encode(0.1)"), "0.1");
    assert_eq!(
        eval(&lua, "cjson.decode('[1,{\"a\":null}]')[2].a == cjson.null"),
        "true"
    );
    assert_eq!(eval(&lua, "cjson.decode('\"\\\\ud83d\\\\ude00\"')"), "😀");
    assert_eq!(
        eval(&lua, "cjson.decode('{\"a\":1,}')"),
        "ERR: t:1: Expected object key string but found T_OBJ_END at character 8"
    );
    assert_eq!(
        eval(&lua, "cjson.encode({[1]=1,[2]=2,[11]=1})"),
        "ERR: t:1: Cannot serialise table: excessively sparse array"
    );
    assert!(eval(&lua, "cjson.decode(string.rep('[', 100000))")
        .starts_with("ERR: t:1: Found too many nested data structures (1001)"));
    assert_eq!(
        eval(
            &lua,
            "(function() local t = {} t[1] = t local r = cjson.encode(t) return r end)()"
        ),
        "ERR: t:1: Cannot serialise, excessive nesting (1001)"
    );
}

/// Where Tandem knowingly stops earlier than Redis (see MAX_DEPTH): raised depth
/// settings act as 1000, with the library's own error, and nothing runs out of mlua
/// references or native stack.
#[test]
fn nesting_beyond_the_cap_fails_with_the_library_error() {
    let lua = state();
    assert_eq!(
        eval(&lua, "(function() local c = cjson.new() c.encode_max_depth(100000) local t = {} local x = t for i = 1, 5000 do x.a = {} x = x.a end local r = c.encode(t) return r end)()"),
        "ERR: t:1: Cannot serialise, excessive nesting (1001)"
    );
    assert_eq!(
        eval(&lua, "(function() local c = cjson.new() c.decode_max_depth(100000) local r = c.decode(string.rep('[', 5000)) return r end)()"),
        "ERR: t:1: Found too many nested data structures (1001) at character 1001"
    );
    assert_eq!(
        eval(&lua, "cmsgpack.unpack(string.rep('\\145', 5000) .. '\\1')"),
        "ERR: t:1: stack overflow (in function mp_decode_to_lua_array)"
    );
    assert_eq!(
        eval(&lua, "cmsgpack.unpack(string.rep('\\129\\1', 5000) .. '\\1')"),
        "ERR: t:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"
    );
}

/// Wide tables never hold one mlua reference per entry (a Lua state has about 8000).
#[test]
fn wide_tables_and_many_results_stay_within_mlua_references() {
    let lua = state();
    assert_eq!(eval(&lua, "#cjson.encode((function() local t = {} for i = 1, 12000 do t['k' .. i] = {i} end return t end)())"), "181789");
    assert_eq!(eval(&lua, "#cjson.decode(cjson.encode((function() local t = {} for i = 1, 12000 do t[i] = {'x' .. i} end return t end)()))"), "12000");
    assert_eq!(
        eval(
            &lua,
            "select('#', cmsgpack.unpack(string.rep('\\161a', 7999)))"
        ),
        "7999"
    );
    assert_eq!(
        eval(
            &lua,
            "select('#', struct.unpack(string.rep('c1', 7997), string.rep('a', 8000)))"
        ),
        "7998"
    );
    assert_eq!(eval(&lua, "#cmsgpack.pack((function() local t = {} for i = 1, 12000 do t['k' .. i] = {i} end return t end)())"), "120515");
}

/// A tail call drops the caller's frame for the Lua wrapper, so the position and the
/// function name that Redis (a C function) reports are missing there; otherwise the
/// message is the same.
#[test]
fn tail_called_errors_keep_the_message() {
    let lua = state();
    assert_eq!(
        eval(&lua, "(function() return cjson.decode('[') end)()"),
        "ERR: Expected value but found T_END at character 2"
    );
    assert_eq!(
        eval(&lua, "(function() return bit.tobit('x') end)()"),
        "ERR: bad argument #1 to '?' (number expected, got string)"
    );
    assert_eq!(
        eval(&lua, "(function() local r = bit.tobit('x') return r end)()"),
        "ERR: t:1: bad argument #1 to 'tobit' (number expected, got string)"
    );
}

/// Library functions hold no mlua handles, so scripts that make many `cjson.new()`
/// instances (each with a dozen functions) cannot exhaust them before the GC runs.
#[test]
fn many_cjson_instances_do_not_exhaust_references() {
    let lua = state();
    assert_eq!(
        eval(&lua, "(function() local keep = {} for i = 1, 3000 do keep[i] = cjson.new() end return keep[3000].encode({i = 1}) end)()"),
        "{\"i\":1}"
    );
}
