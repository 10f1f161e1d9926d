//! `cjson.decode` and `cmsgpack.unpack` (Redis's Lua libraries, `scripting::libs`) on
//! arbitrary bytes: never a panic, every failure is a Lua error *string* (as the C
//! libraries raise), and whatever decodes encodes again and decodes again (for msgpack:
//! except map keys that were tables nested past the 16 levels `pack` writes).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Runs in a fresh state per input; `mode` picks the decoder, `data` is its input.
const CHECK: &str = r#"
local mode, data = ...
local function expect_string_error(ok, err)
    if not ok and type(err) ~= 'string' then
        error('library raised a ' .. type(err) .. ', not a string', 0)
    end
    return ok
end
if mode % 2 == 0 then
    local c = cjson.new()
    if mode % 4 == 2 then c.decode_invalid_numbers(false) end
    c.encode_invalid_numbers(true)
    local ok, v = pcall(c.decode, data)
    if expect_string_error(ok, v) then
        local ok2, text = pcall(c.encode, v)
        if not ok2 then error('decoded value does not encode: ' .. tostring(text), 0) end
        -- Re-decoded with the defaults: numbers that overflow to inf decode even when
        -- the input's decoder refuses the literal `inf`, and encode as `inf`.
        local ok3, err = pcall(cjson.new().decode, text)
        if not ok3 then error('re-encoded text does not decode: ' .. tostring(err), 0) end
    end
else
    local unpack_fn = (mode % 4 == 1) and cmsgpack.unpack or cmsgpack.unpack_one
    -- Results are collected inside the pcall: Lua 5.1's pcall pushing its status above
    -- more than LUA_MINSTACK results trips the API check of debug builds.
    local function collect(...) return {n = select('#', ...), ...} end
    local ok, r = pcall(function() return collect(unpack_fn(data)) end)
    if expect_string_error(ok, r) then
        local n = r.n
        if n > 0 then
            local ok2, packed = pcall(cmsgpack.pack, unpack(r, 1, math.min(n, 200)))
            if not ok2 then error('decoded values do not pack: ' .. tostring(packed), 0) end
            local ok3, err = pcall(function() return collect(cmsgpack.unpack(packed)) end)
            -- Packing writes tables nested past 16 levels as nil, so a map key that was
            -- such a table comes back as a nil key (Redis's copy does the same).
            if not ok3 and err ~= 'table index is nil' then error('re-packed values do not unpack: ' .. tostring(err), 0) end
        end
    end
end
"#;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    let lua = mlua::Lua::new();
    // Decoded data is bounded by the input; this catches anything that is not.
    lua.set_memory_limit(256 * 1024 * 1024).expect("memory limit");
    tandem_server::scripting::libs::register(&lua).expect("register");
    let data = lua.create_string(data).expect("input string");
    let run = lua.load(CHECK).set_name("=check").call::<()>((i64::from(mode), data));
    if let Err(e) = run {
        panic!("{e}");
    }
});
