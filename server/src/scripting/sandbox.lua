-- Tandem's script sandbox, run once in every fresh Lua state (chunk name "=tandem",
-- which the error handler skips when it looks for the script's line).
--
-- Redis 7.0 patches its Lua to have read-only tables. Stock Lua 5.1 has none, so the
-- globals and the library tables are replaced by empty proxies whose metatables read
-- through to the real table and refuse every write; the raw functions that would
-- bypass a metatable (rawset, rawget, setmetatable, next) are wrapped to see through
-- or refuse. Scripts run with the globals proxy as their environment.
--
-- Arguments (from Rust): `native`, the functions written in Rust (they must be C
-- functions to Lua so that errors they raise point at the script's line even in a
-- tail call; redis.call is the C function `install` sets);
-- `killed`, the SCRIPT KILL probe; `errtext`, which turns an error raised from Rust
-- into its text. Returns the globals proxy, `install` (sets redis.call and
-- redis.acl_check_cmd), the KEYS and ARGV tables EVAL runs reuse, the string
-- metatable and the string library proxy.

local native, killed, errtext = ...

local G = _G
local raw_pcall, raw_xpcall, raw_rawset, raw_rawget = pcall, xpcall, rawset, rawget
local raw_next, raw_setmetatable, raw_getmetatable = next, setmetatable, getmetatable
local raw_error, raw_type, raw_select, raw_unpack = error, type, select, unpack
local raw_tostring, raw_setfenv, raw_loadstring = tostring, setfenv, loadstring
local raw_concat = table.concat
local string_byte, string_sub, string_find = string.byte, string.sub, string.find

-- proxy -> the real table behind it (weak: proxies live as long as the state).
local real_of = raw_setmetatable({}, { __mode = 'k' })

local function readonly()
  raw_error('Attempt to modify a readonly table', 2)
end

-- What getmetatable() answers for a protected table: an empty table that is itself
-- read-only, so the proxy's real metatable is never reachable.
local sealed = {}
raw_setmetatable(sealed, { __newindex = readonly, __metatable = sealed })
real_of[sealed] = sealed

local function protect(t, index)
  local proxy = {}
  raw_setmetatable(proxy, { __index = index or t, __newindex = readonly, __metatable = sealed })
  real_of[proxy] = t
  return proxy
end

-- Functions a script must not reach (Redis 7.0 leaves these out).
for _, name in raw_next, { 'print', 'getfenv', 'setfenv', 'newproxy', 'module',
    'require', 'dofile', 'loadfile', 'os', 'io', 'debug', 'package' } do
  G[name] = nil
end

-- Precompiled chunks can crash the VM: only source text loads, and code loaded by a
-- script runs with the script's protected globals.
local env_proxy
G.loadstring = function(s, name)
  if raw_type(s) == 'string' and string_byte(s, 1) == 27 then
    return nil, 'binary chunks are not allowed'
  end
  local f, e = raw_loadstring(s, name)
  if f then raw_setfenv(f, env_proxy) end
  return f, e
end
G.load = function(reader, name)
  if raw_type(reader) == 'string' then
    return G.loadstring(reader, name)
  end
  local parts, n = {}, 0
  while true do
    local piece = reader()
    if piece == nil or piece == '' then break end
    if raw_type(piece) ~= 'string' then return nil, 'reader function must return a string' end
    n = n + 1
    parts[n] = piece
  end
  return G.loadstring(raw_concat(parts), name or '=(load)')
end

-- The raw functions see through proxies (reads) or refuse them (writes).
G.rawset = function(t, k, v)
  if real_of[t] then raw_error('Attempt to modify a readonly table', 0) end
  return raw_rawset(t, k, v)
end
G.rawget = function(t, k)
  return raw_rawget(real_of[t] or t, k)
end
G.setmetatable = function(t, mt)
  if real_of[t] then raw_error('Attempt to modify a readonly table', 0) end
  return raw_setmetatable(t, mt)
end
local function next_(t, k)
  return raw_next(real_of[t] or t, k)
end
G.next = next_
G.pairs = function(t)
  if raw_type(t) ~= 'table' then
    raw_error("bad argument #1 to 'pairs' (table expected, got " .. raw_type(t) .. ')', 2)
  end
  return next_, t, nil
end

-- A script killed with SCRIPT KILL must not be able to catch the kill.
local function pack(...)
  return { n = raw_select('#', ...), ... }
end
G.pcall = function(f, ...)
  local r = pack(raw_pcall(f, ...))
  if not r[1] then
    if killed() then raw_error(r[2], 0) end
    -- Redis hands pcall the text of an error table, not the table.
    local e = r[2]
    if raw_type(e) == 'table' and raw_type(raw_rawget(e, 'err')) == 'string' then
      r[2] = raw_rawget(e, 'err')
    elseif raw_type(e) == 'userdata' then
      r[2] = errtext(e)
    end
  end
  return raw_unpack(r, 1, r.n)
end
G.xpcall = function(f, handler)
  local r = pack(raw_xpcall(f, handler))
  if not r[1] and killed() then raw_error(r[2], 0) end
  return raw_unpack(r, 1, r.n)
end

-- The redis table.
local redis = {}
redis.error_reply = function(e)
  if raw_type(e) ~= 'string' then
    return { err = 'ERR wrong number or type of arguments' }
  end
  if string_byte(e, 1) == 45 then e = string_sub(e, 2) end
  if not string_find(e, ' ', 1, true) then e = 'ERR ' .. e end
  return { err = e }
end
redis.status_reply = function(s)
  if raw_type(s) ~= 'string' then
    return { err = 'ERR wrong number or type of arguments' }
  end
  return { ok = s }
end
for name, f in raw_next, native do
  redis[name] = f
end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.REDIS_VERSION = '7.0.15'
redis.REDIS_VERSION_NUM = 0x07000f
G.redis = redis

-- Protect every library table, then the globals.
for _, name in raw_next, { 'string', 'table', 'math', 'coroutine', 'redis', 'bit', 'cjson',
    'cmsgpack', 'struct' } do
  local t = raw_rawget(G, name)
  if raw_type(t) == 'table' then raw_rawset(G, name, protect(t)) end
end
local string_proxy = raw_rawget(G, 'string')

-- Reads go proxy -> real globals (table lookups, no function call on a hit); a
-- miss reaches the real globals' own __index, which raises Redis's error.
raw_setmetatable(G, { __index = function(_, k)
  raw_error("Script attempted to access nonexistent global variable '" .. raw_tostring(k) .. "'", 2)
end, __metatable = sealed })
env_proxy = protect(G)
G._G = env_proxy

-- The string metatable cannot be a proxy (Lua reads metamethods raw), so new keys are
-- refused and the one existing key is restored before every run.
local smt = raw_getmetatable('')
raw_setmetatable(smt, { __newindex = readonly, __metatable = sealed })
raw_rawset(smt, '__index', string_proxy)

-- redis.pcall: redis.call (the per-run Rust function) with its error as a table.
redis.pcall = function(...)
  local r = pack(raw_pcall(redis.call, ...))
  if r[1] then return r[2] end
  if killed() then raw_error(r[2], 0) end
  local e = r[2]
  if raw_type(e) == 'userdata' then e = errtext(e) end
  if raw_type(e) ~= 'table' then e = { err = raw_tostring(e) } end
  return e
end

-- redis.call (and redis.acl_check_cmd, which needs the caller's user) is a C
-- function the layer running scripts makes once per state; it is installed here (the redis table is local to this chunk). Each run is prepared from
-- Rust on the raw stack (vm.rs, `RawRefs`): it restores the string metatable's
-- __index, refills KEYS and ARGV and sets them as globals, then calls the script
-- under the error handler.
local function install(call, acl_check)
  redis.call = call
  redis.acl_check_cmd = acl_check
end

return env_proxy, install, {}, {}, smt, string_proxy
