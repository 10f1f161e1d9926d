//! Differential test of Redis's Lua libraries (`cjson`, `cmsgpack`, `struct`, `bit`):
//! every expression of a corpus (hand-written edge cases and errors, plus seeded random
//! nested values for cjson and cmsgpack round trips) is evaluated in a bare mlua state
//! with `tandem_server::scripting::libs::register`, and with `EVAL` on Debian's
//! redis-server 7.0.15; the two renderings must be identical.
//!
//! Both sides run the same Lua source: a prelude that renders results as text (strings
//! in hex, numbers with `%.17g`, tables with sorted keys) and calls the expression
//! inside `pcall` in a non-tail position, so error messages (with their
//! `user_script:1:` position, the chunk name Redis uses) compare as they are.

mod common;

use common::{RealRedis, R};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Renders the results of the expression: `ok|v1|v2...` or `err|message`.
const PRELUDE: &str = r#"
local function hex(s)
    return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
end
local show
show = function(v, depth)
    depth = depth or 0
    local t = type(v)
    if depth > 40 then return '...' end
    if t == 'string' then return 's:' .. hex(v) end
    if t == 'number' then return 'n:' .. string.format('%.17g', v) end
    if t == 'boolean' or t == 'nil' then return tostring(v) end
    if v == cjson.null then return 'null' end
    if t == 'table' then
        local items = {}
        for k, x in pairs(v) do items[#items + 1] = show(k, depth + 1) .. '=' .. show(x, depth + 1) end
        table.sort(items)
        return '{' .. table.concat(items, ',') .. '}'
    end
    return t
end
local function pack(...) return {n = select('#', ...), ...} end
local ok, r = pcall(function() return pack(
"#;

const POSTLUDE: &str = r#"
) end)
if not ok then return 'err|' .. tostring(r) end
local out = {'ok'}
for i = 1, r.n do out[#out + 1] = show(r[i]) end
return table.concat(out, '|')
"#;

fn script(expr: &str) -> String {
    // One line, so positions agree (`user_script:1:`).
    let body = format!("{PRELUDE}{expr}{POSTLUDE}");
    body.replace('\n', " ")
}

/// Hand-written corpus: one expression per line (blank lines and `--` lines skipped).
const CORPUS: &str = r#"
-- bit
bit.tobit(0)
bit.tobit(1)
bit.tobit(-1)
bit.tobit(0xffffffff)
bit.tobit(0x100000000)
bit.tobit(2^31)
bit.tobit(-2^31)
bit.tobit(2^32 + 5)
bit.tobit(1.5)
bit.tobit(2.5)
bit.tobit(-1.5)
bit.tobit(2^52)
bit.tobit(2^53 + 2)
bit.tobit(1e300)
bit.tobit(-1e300)
bit.tobit(1/0)
bit.tobit(0/0)
bit.tobit('10')
bit.tobit('0x10')
bit.tobit(' 7 ')
bit.tobit('x')
bit.tobit()
bit.tobit(nil)
bit.tobit({})
bit.tobit(true)
bit.bnot(0)
bit.bnot(-1)
bit.bnot(0x12345678)
bit.band(0xff, 0x0f)
bit.band(0xff)
bit.band(-1, 0x7fffffff, 0x0000ffff)
bit.band()
bit.band(1, 'x', {})
bit.bor(1, 2, 4, 8, 16)
bit.bor(0x80000000, 1)
bit.bxor(0xff, 0x0f, 0x01)
bit.bxor(1, nil)
bit.lshift(1, 0)
bit.lshift(1, 31)
bit.lshift(1, 32)
bit.lshift(1, 33)
bit.lshift(1, -1)
bit.lshift(0xff, 28)
bit.rshift(-1, 1)
bit.rshift(-1, 31)
bit.rshift(0x80000000, 4)
bit.arshift(-256, 4)
bit.arshift(0x80000000, 31)
bit.arshift(1, 40)
bit.rol(0x80000001, 1)
bit.rol(0x12345678, 0)
bit.rol(0x12345678, 36)
bit.ror(1, 1)
bit.ror(0x12345678, 8)
bit.ror(1)
bit.bswap(0x12345678)
bit.bswap(-1)
bit.bswap(0xff)
bit.tohex(255)
bit.tohex(-1)
bit.tohex(255, 2)
bit.tohex(255, -2)
bit.tohex(0x12345678, 4)
bit.tohex(0x12345678, -8)
bit.tohex(0x12345678, 12)
bit.tohex(0x12345678, 0)
bit.tohex(1, nil)
bit.tohex('a')
bit.tohex(-2^31)
-- struct
struct.pack('b', 1)
struct.pack('b', -1)
struct.pack('B', 255)
struct.pack('B', 256)
struct.pack('<h', 258)
struct.pack('>h', 258)
struct.pack('>H', -1)
struct.pack('<i', 1)
struct.pack('>i', -2)
struct.pack('>I', 2^32 - 1)
struct.pack('>l', -1)
struct.pack('>L', 2^63)
struct.pack('>L', 2^64)
struct.pack('>L', 1e30)
struct.pack('>l', -1e30)
struct.pack('>L', 0/0)
struct.pack('>L', 1/0)
struct.pack('>T', 12345)
struct.pack('<i3', 0x123456)
struct.pack('>i3', -1)
struct.pack('<i16', -1)
struct.pack('>i16', 1)
struct.pack('<I32', 2^40)
struct.pack('i0', 1)
struct.pack('i33', 1)
struct.pack('i99999999999', 1)
struct.pack('c99999999999', 'a')
struct.pack('c2147483647', 'a')
struct.pack('>f', 1.5)
struct.pack('<f', 0.1)
struct.pack('>d', 0.1)
struct.pack('<d', -0)
struct.pack('>f', 1e40)
struct.pack('c', 'abc')
struct.pack('c3', 'abc')
struct.pack('c3', 'ab')
struct.pack('c0', 'hello')
struct.pack('s', 'hello')
struct.pack('s', 5)
struct.pack('ss', 'a', 'bc')
struct.pack('x')
struct.pack('xxb', 1)
struct.pack('!4bi', 1, 2)
struct.pack('!2bi', 1, 2)
struct.pack('!bd', 1, 2)
struct.pack('!8bhd', 1, 2, 3)
struct.pack('!3b', 1)
struct.pack('!0b', 1)
struct.pack('!4b i3', 1, 2)
struct.pack('z', 1)
struct.pack('1', 1)
struct.pack('<>b', 1)
struct.pack(' b ', 1)
struct.pack('b')
struct.pack('b', 'x')
struct.pack('b', '12')
struct.pack('c', {})
struct.pack()
struct.pack(12, 1, 2)
struct.pack('b\0b', 1, 2)
struct.unpack('b', '\255')
struct.unpack('B', '\255')
struct.unpack('>h', '\255\254')
struct.unpack('<H', '\255\254')
struct.unpack('>i', '\0\0\1\0')
struct.unpack('<i', '\255\255\255\255')
struct.unpack('<I', '\255\255\255\255')
struct.unpack('<l', '\1\0\0\0\0\0\0\128')
struct.unpack('<L', '\255\255\255\255\255\255\255\255')
struct.unpack('>T', '\0\0\0\0\0\0\1\0')
struct.unpack('<i3', '\255\255\255')
struct.unpack('<I3', '\255\255\255')
struct.unpack('i9', string.rep('\255', 9))
struct.unpack('I9', string.rep('\255', 9))
struct.unpack('i16', string.rep('\255', 16))
struct.unpack('>i16', string.rep('\0', 15) .. '\1')
struct.unpack('i0', 'a')
struct.unpack('>f', struct.pack('>f', 1.5))
struct.unpack('<d', struct.pack('<d', 0.1))
struct.unpack('>d', struct.pack('>d', -1/0))
struct.unpack('c3', 'abcdef')
struct.unpack('c3c3', 'abcdef')
struct.unpack('c3', 'ab')
struct.unpack('bc0', '\3abcdef')
struct.unpack('bc0', '\9abc')
struct.unpack('bc0', '\255abc')
struct.unpack('c0', '3')
struct.unpack('c1c0', '3abc')
struct.unpack('c1c0', 'xabc')
struct.unpack('s', 'hello\0world')
struct.unpack('ss', 'a\0bc\0')
struct.unpack('s', 'hello')
struct.unpack('x', 'a')
struct.unpack('xb', 'a\5')
struct.unpack('b', 'abc', 2)
struct.unpack('b', 'abc', 3)
struct.unpack('b', 'abc', 4)
struct.unpack('b', 'abc', 0)
struct.unpack('b', 'abc', -5)
struct.unpack('b', 'abc', 1.9)
struct.unpack('b', 'abc', 'x')
struct.unpack('!4bi', '\1\0\0\0\2\0\0\0')
struct.unpack('!4bi', '\1\0\0\0\2\0\0')
struct.unpack('z', 'a')
struct.unpack('b')
struct.unpack('b', {})
struct.unpack('i33', 'a')
struct.unpack('b', 5)
struct.unpack(string.rep('b', 8000), string.rep('a', 8000))
struct.unpack(string.rep('b', 7997), string.rep('a', 8000))
struct.size('b')
struct.size('bhilfdT')
struct.size('!4bi')
struct.size('!8bd')
struct.size('c10')
struct.size('c0')
struct.size('s')
struct.size('z')
struct.size('1b')
struct.size('!3')
struct.size('i40')
struct.size('xx')
struct.size('')
struct.size()
-- cmsgpack
cmsgpack._NAME
cmsgpack._VERSION
cmsgpack._COPYRIGHT
cmsgpack._DESCRIPTION
hex(cmsgpack.pack(nil))
hex(cmsgpack.pack(true))
hex(cmsgpack.pack(false))
hex(cmsgpack.pack(0))
hex(cmsgpack.pack(127))
hex(cmsgpack.pack(128))
hex(cmsgpack.pack(255))
hex(cmsgpack.pack(256))
hex(cmsgpack.pack(65535))
hex(cmsgpack.pack(65536))
hex(cmsgpack.pack(2^32 - 1))
hex(cmsgpack.pack(2^32))
hex(cmsgpack.pack(2^53))
hex(cmsgpack.pack(2^63))
hex(cmsgpack.pack(2^64))
hex(cmsgpack.pack(-1))
hex(cmsgpack.pack(-32))
hex(cmsgpack.pack(-33))
hex(cmsgpack.pack(-128))
hex(cmsgpack.pack(-129))
hex(cmsgpack.pack(-32768))
hex(cmsgpack.pack(-32769))
hex(cmsgpack.pack(-2^31))
hex(cmsgpack.pack(-2^31 - 1))
hex(cmsgpack.pack(-2^63))
hex(cmsgpack.pack(-2^64))
hex(cmsgpack.pack(1.5))
hex(cmsgpack.pack(0.1))
hex(cmsgpack.pack(-0))
hex(cmsgpack.pack(1/0))
hex(cmsgpack.pack(-1/0))
hex(cmsgpack.pack(1e300))
hex(cmsgpack.pack(''))
hex(cmsgpack.pack('abc'))
hex(cmsgpack.pack(string.rep('x', 31)))
hex(cmsgpack.pack(string.rep('x', 32)))
#cmsgpack.pack(string.rep('x', 255))
#cmsgpack.pack(string.rep('x', 256))
#cmsgpack.pack(string.rep('x', 65535))
#cmsgpack.pack(string.rep('x', 65536))
hex(cmsgpack.pack({}))
hex(cmsgpack.pack({1, 2, 3}))
hex(cmsgpack.pack({1, nil, 3}))
hex(cmsgpack.pack({[2] = 1}))
hex(cmsgpack.pack({[1] = 1, [3] = 3}))
hex(cmsgpack.pack({[0] = 1}))
hex(cmsgpack.pack({[1.5] = 1}))
hex(cmsgpack.pack({['1'] = 1}))
hex(cmsgpack.pack({a = 1}))
hex(cmsgpack.pack({a = {b = {c = 1}}}))
hex(cmsgpack.pack({[2^31] = 1}))
#cmsgpack.pack((function() local t = {} for i = 1, 16 do t[i] = i end return t end)())
#cmsgpack.pack((function() local t = {} for i = 1, 70000 do t[i] = i end return t end)())
#cmsgpack.pack((function() local t = {} for i = 1, 20 do t['k' .. i] = i end return t end)())
hex(cmsgpack.pack(tostring))
hex(cmsgpack.pack(cjson.null))
hex(cmsgpack.pack(1, 'a', {2}))
hex(cmsgpack.pack(nil, nil))
cmsgpack.pack()
hex(cmsgpack.pack((function() local t = {} local c = t for i = 1, 20 do c[1] = {} c = c[1] end return t end)()))
hex(cmsgpack.pack((function() local t = {} t[1] = t return t end)()))
cmsgpack.unpack(cmsgpack.pack(1, 2, 3))
cmsgpack.unpack('')
cmsgpack.unpack('\192')
cmsgpack.unpack('\195\194')
cmsgpack.unpack('\204\255')
cmsgpack.unpack('\208\255')
cmsgpack.unpack('\205\255\254')
cmsgpack.unpack('\209\255\254')
cmsgpack.unpack('\206\255\255\255\255')
cmsgpack.unpack('\210\255\255\255\254')
cmsgpack.unpack('\207\255\255\255\255\255\255\255\255')
cmsgpack.unpack('\207\0\0\0\1\0\0\0\0')
cmsgpack.unpack('\211\128\0\0\0\0\0\0\0')
cmsgpack.unpack('\202\63\192\0\0')
cmsgpack.unpack('\203\63\185\153\153\153\153\153\154')
cmsgpack.unpack('\217\3abc')
cmsgpack.unpack('\218\0\3abc')
cmsgpack.unpack('\219\0\0\0\3abc')
cmsgpack.unpack('\219\255\255\255\255abc')
cmsgpack.unpack('\163abc')
cmsgpack.unpack('\163ab')
cmsgpack.unpack('\147\1\2\3')
cmsgpack.unpack('\147\1\2')
cmsgpack.unpack('\220\0\2\1\2')
cmsgpack.unpack('\221\0\0\0\2\1\2')
cmsgpack.unpack('\221\255\255\255\255\1\2')
cmsgpack.unpack('\130\161a\1\161b\2')
cmsgpack.unpack('\222\0\1\161a\1')
cmsgpack.unpack('\223\0\0\0\1\161a\1')
cmsgpack.unpack('\129\192\1')
cmsgpack.unpack('\129\1\192')
cmsgpack.unpack('\129\203\127\248\0\0\0\0\0\0\1')
cmsgpack.unpack('\145\192')
cmsgpack.unpack('\193')
cmsgpack.unpack('\196\1a')
cmsgpack.unpack('\199\1\1a')
cmsgpack.unpack('\1\2\193')
cmsgpack.unpack('\255\224')
cmsgpack.unpack(123)
cmsgpack.unpack()
cmsgpack.unpack({})
cmsgpack.unpack('\1', 'x')
cmsgpack.unpack(string.rep('\145', 20) .. '\1')
cmsgpack.unpack(string.rep('\145', 100000) .. '\1')
cmsgpack.unpack(string.rep('\129\1', 100000) .. '\1')
select('#', cmsgpack.unpack(string.rep('\1', 7998)))
select('#', cmsgpack.unpack(string.rep('\1', 7999)))
select('#', cmsgpack.unpack(string.rep('\1', 8000)))
cmsgpack.unpack_one(cmsgpack.pack(1, 2))
cmsgpack.unpack_one(cmsgpack.pack(1, 2), 1)
cmsgpack.unpack_one(cmsgpack.pack(1, 2), 2)
cmsgpack.unpack_one(cmsgpack.pack(1, 2), 3)
cmsgpack.unpack_one(cmsgpack.pack(1, 2), -1)
cmsgpack.unpack_one('')
cmsgpack.unpack_one('\145')
cmsgpack.unpack_one('\1', 'x')
cmsgpack.unpack_one(nil, 1)
cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)
cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 1)
cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 5)
cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0)
cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0, 0)
cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0, 1)
cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), -1)
cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 1, 10)
cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3))
cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 'x')
cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 1.7)
select('#', cmsgpack.unpack_limit(string.rep('\1', 8000), 7998))
select('#', cmsgpack.unpack_limit(string.rep('\1', 8000), 7999))
-- cjson settings
cjson._NAME
cjson._VERSION
tostring(cjson.null)
type(cjson.null)
cjson.new().encode({1})
cjson.new() ~= cjson
cjson.new().encode_max_depth()
cjson.new().encode_max_depth(5)
cjson.new().encode_max_depth(0)
cjson.new().encode_max_depth('x')
cjson.new().encode_max_depth(2^32 + 5)
cjson.new().encode_max_depth(1, 2)
cjson.new().decode_max_depth()
cjson.new().decode_max_depth(-1)
cjson.new().encode_number_precision()
cjson.new().encode_number_precision(3)
cjson.new().encode_number_precision(15)
cjson.new().encode_number_precision(0)
cjson.new().encode_number_precision(3.9)
cjson.new().encode_keep_buffer()
cjson.new().encode_keep_buffer(false)
cjson.new().encode_keep_buffer('off')
cjson.new().encode_keep_buffer('on')
cjson.new().encode_keep_buffer('x')
cjson.new().encode_keep_buffer(1)
cjson.new().encode_keep_buffer({})
cjson.new().encode_invalid_numbers()
cjson.new().encode_invalid_numbers('null')
cjson.new().encode_invalid_numbers(true)
cjson.new().encode_invalid_numbers('bogus')
cjson.new().decode_invalid_numbers()
cjson.new().decode_invalid_numbers(false)
cjson.new().encode_sparse_array()
cjson.new().encode_sparse_array(true)
cjson.new().encode_sparse_array(true, 3, 4)
cjson.new().encode_sparse_array('on', 3.7, 2^32 + 5)
cjson.new().encode_sparse_array(true, -1)
cjson.new().encode_sparse_array(nil, nil, -1)
cjson.new().encode_sparse_array(1)
cjson.new().encode_sparse_array(true, 1, 2, 3)
-- cjson encode
cjson.encode(nil)
cjson.encode(true)
cjson.encode(false)
cjson.encode(cjson.null)
cjson.encode(0)
cjson.encode(-0)
cjson.encode(1)
cjson.encode(-1)
cjson.encode(1.5)
cjson.encode(0.1)
cjson.encode(1/3)
cjson.encode(100)
cjson.encode(1e14)
cjson.encode(1e15)
cjson.encode(123456789012345)
cjson.encode(12345678901234)
cjson.encode(2^53)
cjson.encode(1e-5)
cjson.encode(0.0001)
cjson.encode(1e300)
cjson.encode(5e-324)
cjson.encode(-123.456)
cjson.encode(1/0)
cjson.encode(-1/0)
cjson.encode(0/0)
cjson.encode('')
cjson.encode('abc')
cjson.encode('a"b\\c/d')
cjson.encode('\0\1\2\3\4\5\6\7\8\9\10\11\12\13\14\15')
cjson.encode('\16\17\18\19\20\21\22\23\24\25\26\27\28\29\30\31\32')
cjson.encode('\127\128\255')
cjson.encode('é€😀')
cjson.encode(tostring)
cjson.encode()
cjson.encode(1, 2)
(function() local c = cjson.new() c.encode_max_depth(100000) local t = {} local x = t for i = 1, 900 do x.a = {} x = x.a end return #c.encode(t) end)()
(function() local c = cjson.new() c.decode_max_depth(100000) local r = c.decode(string.rep('[', 900)) return r end)()
cmsgpack.unpack(string.rep('\145', 900) .. '\1')
cmsgpack.unpack(string.rep('\129\1', 900) .. '\1')
#cjson.encode((function() local t = {} for i = 1, 20000 do t['k' .. i] = i end return t end)())
#cmsgpack.pack((function() local t = {} for i = 1, 20000 do t['k' .. i] = {i} end return t end)())
select('#', cmsgpack.unpack(string.rep('\161a', 7999)))
cjson.encode({})
cjson.encode({1, 2, 3})
cjson.encode({1, nil, 3})
cjson.encode({nil, nil, 3})
cjson.encode({[1] = 1, [2] = 2, [11] = 1})
cjson.encode({[10] = 1})
cjson.encode({[11] = 1})
cjson.encode({[1] = 1, [20] = 1, [3] = 1})
cjson.encode({[0] = 1})
cjson.encode({[-1] = 1})
cjson.encode({[1.5] = 1})
cjson.encode({[3e9] = 1})
cjson.encode({[1/0] = 1})
cjson.encode({[1] = 1, [3e9] = 1})
cjson.encode({[3e9] = 1, [1] = 1})
cjson.encode({[true] = 1})
cjson.encode({[{}] = 1})
cjson.encode({a = 1})
cjson.encode({a = {b = {c = {1, 2}}}})
cjson.encode({['a/b'] = 'c/d'})
cjson.encode({1, 2, a = 3})
cjson.encode({{}, {{}}, {a = {}}})
cjson.encode({cjson.null, cjson.null})
cjson.encode({a = cjson.null})
cjson.encode({1.5, 1e15, 2^53, -0, 0.1, 1/3, 123456789012345678})
cjson.encode({f = tostring})
cjson.encode((function() local t = {} t[1] = t return t end)())
cjson.encode((function() local t = {} local c = t for i = 1, 999 do c[1] = {} c = c[1] end return t end)())
cjson.encode((function() local t = {} local c = t for i = 1, 1000 do c[1] = {} c = c[1] end return t end)())
cjson.encode((function() local t = {} local c = t for i = 1, 5000 do c.a = {} c = c.a end return t end)())
(function() local c = cjson.new() c.encode_max_depth(2) local r = c.encode({{1}}) return r end)()
(function() local c = cjson.new() c.encode_max_depth(2) local r = c.encode({{{1}}}) return r end)()
(function() local c = cjson.new() c.encode_sparse_array(true) local r = c.encode({[1] = 1, [20] = 2}) return r end)()
(function() local c = cjson.new() c.encode_sparse_array(false, 0) local r = c.encode({[1] = 1, [20] = 2}) return r end)()
(function() local c = cjson.new() c.encode_sparse_array(false, 1, 1) local r = c.encode({[1] = 1, [3] = 2}) return r end)()
(function() local c = cjson.new() c.encode_number_precision(3) local r = c.encode({1/3, 12345, 0.5}) return r end)()
(function() local c = cjson.new() c.encode_number_precision(1) local r = c.encode({2.5, 3.5, 9.5}) return r end)()
(function() local c = cjson.new() c.encode_invalid_numbers(true) local r = c.encode({1/0, -1/0, 0/0}) return r end)()
(function() local c = cjson.new() c.encode_invalid_numbers('null') local r = c.encode({1/0, -1/0, 0/0}) return r end)()
(function() local c = cjson.new() c.encode_invalid_numbers(true) local r = c.encode({[1/0] = 1}) return r end)()
-- cjson decode
cjson.decode('1')
cjson.decode('-1')
cjson.decode('1.5')
cjson.decode('1e5')
cjson.decode('1E+5')
cjson.decode('1e-5')
cjson.decode('-0')
cjson.decode('0.1')
cjson.decode('123456789012345678901234567890')
cjson.decode('1e400')
cjson.decode('-1e400')
cjson.decode('1e-400')
cjson.decode('0x10')
cjson.decode('0X1F')
cjson.decode('0x')
cjson.decode('0x1p4')
cjson.decode('0x.8')
cjson.decode('-0x10')
cjson.decode('01')
cjson.decode('00')
cjson.decode('+1')
cjson.decode('+')
cjson.decode('-')
cjson.decode('-a')
cjson.decode('.5')
cjson.decode('1.')
cjson.decode('1e')
cjson.decode('1e+')
cjson.decode('inf')
cjson.decode('-inf')
cjson.decode('Infinity')
cjson.decode('-Infinity')
cjson.decode('INF')
cjson.decode('nan')
cjson.decode('NaN')
cjson.decode('nan(123)')
cjson.decode('[nan]')
cjson.decode('in')
cjson.decode('true')
cjson.decode('false')
cjson.decode('null') == cjson.null
cjson.decode('truex')
cjson.decode('tru')
cjson.decode('nul')
cjson.decode('n')
cjson.decode('True')
cjson.decode('"abc"')
cjson.decode('""')
cjson.decode('"a\\"b"')
cjson.decode('"\\\\/\\/\\b\\f\\n\\r\\t"')
cjson.decode('"\\q"')
cjson.decode('"\\u0041"')
cjson.decode('"\\u00e9"')
cjson.decode('"\\u20ac"')
cjson.decode('"\\u0000"')
cjson.decode('"\\ud83d\\ude00"')
cjson.decode('"\\ud800"')
cjson.decode('"\\ud800x"')
cjson.decode('"\\ud800\\u0041"')
cjson.decode('"\\udc00"')
cjson.decode('"\\u12"')
cjson.decode('"\\u12G4"')
cjson.decode('"\\uD83D\\uDE00"')
cjson.decode('"abc')
cjson.decode('"a\0b"')
cjson.decode('"\1\2"')
cjson.decode('"é"')
cjson.decode('[]')
cjson.decode('{}')
cjson.decode('[1,2,3]')
cjson.decode('[1,2')
cjson.decode('[1,2,]')
cjson.decode('[1 2]')
cjson.decode('[,1]')
cjson.decode('[null, null]')
cjson.decode('{"a":1}')
cjson.decode('{"a":1,"a":2}')
cjson.decode('{"a":1,}')
cjson.decode('{"a" 1}')
cjson.decode('{"a":}')
cjson.decode('{1:2}')
cjson.decode('{"a":1')
cjson.decode('{"a":{"b":[1,{"c":null}]}}')
cjson.decode(' \t\r\n[ 1 , 2 ] \n')
cjson.decode('\v1')
cjson.decode('1 2')
cjson.decode('1 x')
cjson.decode('')
cjson.decode('   ')
cjson.decode('a')
cjson.decode('#')
cjson.decode('}')
cjson.decode(']')
cjson.decode(':')
cjson.decode('"a":1')
cjson.decode('12\0abc')
cjson.decode('a\0')
cjson.decode('\0a')
cjson.decode(' \0')
cjson.decode('\255')
cjson.decode('-\255')
cjson.decode(123)
cjson.decode(1.5)
cjson.decode()
cjson.decode(nil)
cjson.decode({})
cjson.decode('1', '2')
cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000))
cjson.decode(string.rep('[', 1001) .. string.rep(']', 1001))
cjson.decode(string.rep('{"a":', 1001))
cjson.decode(string.rep('[', 100000))
(function() local c = cjson.new() c.decode_max_depth(1) local r = c.decode('[[1]]') return r end)()
(function() local c = cjson.new() c.decode_max_depth(1) local r = c.decode('[{"a":1}]') return r end)()
(function() local c = cjson.new() c.decode_invalid_numbers(false) local r = c.decode('0x10') return r end)()
(function() local c = cjson.new() c.decode_invalid_numbers(false) local r = c.decode('01') return r end)()
(function() local c = cjson.new() c.decode_invalid_numbers(false) local r = c.decode('+1') return r end)()
(function() local c = cjson.new() c.decode_invalid_numbers(false) local r = c.decode('nan') return r end)()
(function() local c = cjson.new() c.decode_invalid_numbers(false) local r = c.decode('-inf') return r end)()
(function() local c = cjson.new() c.decode_invalid_numbers(false) local r = c.decode('-0') return r end)()
(function() local c = cjson.new() c.decode_invalid_numbers(false) local r = c.decode('[1.5e3]') return r end)()
cjson.encode(cjson.decode('{"a":[1,2,{"b":null}],"c":"d"}'))
-- long argument lists (passed to the Rust side in a table)
#cmsgpack.pack(unpack((function() local t = {} for i = 1, 7000 do t[i] = 'x' .. i end return t end)()))
#cmsgpack.pack(unpack((function() local t = {} for i = 1, 4000 do t[i] = 'x' .. i end return t end)()))
#cmsgpack.pack(unpack((function() local t = {} for i = 1, 4001 do t[i] = 'x' .. i end return t end)()))
hex(cmsgpack.pack(nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, 1))
bit.bor(unpack((function() local t = {} for i = 1, 40 do t[i] = 2^(i % 32) end return t end)()))
bit.bor(unpack({1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,'x'}))
bit.band(unpack({1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,nil,35}))
hex(struct.pack(string.rep('b', 40), unpack((function() local t = {} for i = 1, 40 do t[i] = i end return t end)())))
struct.pack(string.rep('b', 40), unpack((function() local t = {} for i = 1, 39 do t[i] = i end return t end)()))
struct.pack(string.rep('b', 40), unpack((function() local t = {} for i = 1, 38 do t[i] = i end return t end)()))
cjson.encode(unpack({1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34}))
struct.unpack('b', 'a', 1, 4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35)
cmsgpack.unpack('\1\2', 3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35)
-- call forms
pcall(cjson.encode)
pcall(bit.tobit, 'x')
pcall(struct.pack, 'z')
pcall(cjson.decode, '[')
(function() local f = bit.tobit local x = f('x') return x end)()
"#;

/// A random Lua value constructor: nested tables (arrays and maps), numbers (integers,
/// fractions, large, negative), strings (ASCII, escapes, binary), booleans.
fn random_value(rng: &mut StdRng, depth: u32, out: &mut String) {
    let choice = if depth >= 4 {
        rng.gen_range(0..6)
    } else {
        rng.gen_range(0..9)
    };
    match choice {
        0 => {
            let _ = write!(out, "{}", rng.gen_range(-300i64..300));
        }
        1 => {
            let n: i64 = rng.gen_range(-(1i64 << 40)..(1i64 << 40));
            let _ = write!(out, "{n}");
        }
        2 => {
            let x: f64 = rng.gen_range(-1e6..1e6);
            let _ = write!(out, "{x:e}");
        }
        3 => out.push_str(
            ["true", "false", "(1/3)", "2^53", "-2^31", "1e-7", "0.5"][rng.gen_range(0..7)],
        ),
        4 | 5 => {
            out.push('\'');
            for _ in 0..rng.gen_range(0..12) {
                let b: u8 = match rng.gen_range(0..4) {
                    0 => rng.gen_range(0..=255),
                    _ => rng.gen_range(b'a'..=b'z'),
                };
                let _ = write!(out, "\\{b}");
            }
            out.push('\'');
        }
        6 => {
            out.push('{');
            for _ in 0..rng.gen_range(0..6) {
                random_value(rng, depth + 1, out);
                out.push(',');
            }
            out.push('}');
        }
        _ => {
            out.push('{');
            for _ in 0..rng.gen_range(0..6) {
                let key_len = rng.gen_range(1..6);
                let key: String = (0..key_len)
                    .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
                    .collect();
                let _ = write!(out, "['{key}']=");
                random_value(rng, depth + 1, out);
                out.push(',');
            }
            if rng.gen_bool(0.3) {
                let _ = write!(out, "[{}]=1,", rng.gen_range(1..30));
            }
            out.push('}');
        }
    }
}

fn random_corpus(seed: u64, count: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..count {
        let mut v = String::new();
        random_value(&mut rng, 0, &mut v);
        out.push(format!("cjson.encode({v})"));
        out.push(format!("cjson.decode(cjson.encode({v}))"));
        out.push(format!("hex(cmsgpack.pack({v}))"));
        out.push(format!("cmsgpack.unpack(cmsgpack.pack({v}, {v}))"));
    }
    out
}

/// The rendering on the mlua side.
fn eval_local(expr: &str) -> String {
    let lua = mlua::Lua::new();
    if let Err(e) = tandem_server::scripting::libs::register(&lua) {
        return format!("register failed: {e}");
    }
    match lua
        .load(script(expr))
        .set_name("=user_script")
        .eval::<mlua::Value>()
    {
        Ok(mlua::Value::String(s)) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
        Ok(other) => format!("script returned {other:?}"),
        Err(e) => format!("script failed: {e}"),
    }
}

fn eval_redis(conn: &mut common::Conn, expr: &str) -> String {
    match conn.cmd_args(&[b"EVAL", script(expr).as_bytes(), b"0"]) {
        R::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => format!("redis replied {other:?}"),
    }
}

fn corpus() -> Vec<String> {
    let mut all: Vec<String> = CORPUS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
        .map(String::from)
        .collect();
    all.extend(random_corpus(0x7a4d_e11e, 150));
    all
}

#[test]
fn libraries_match_redis_7_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let mut conn = redis.conn();
    let started = Instant::now();
    let exprs = corpus();
    assert!(exprs.len() > 300, "corpus has {} expressions", exprs.len());
    let mut mismatches = Vec::new();
    for expr in &exprs {
        let ours = eval_local(expr);
        let theirs = eval_redis(&mut conn, expr);
        if ours != theirs {
            let cut = |s: &str| s.chars().take(400).collect::<String>();
            mismatches.push(format!(
                "{}\n   tandem: {}\n   redis:  {}",
                cut(expr),
                cut(&ours),
                cut(&theirs)
            ));
        }
    }
    let shown: Vec<&String> = mismatches.iter().take(40).collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} expressions differ from Redis 7.0.15:\n{}",
        mismatches.len(),
        exprs.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
