--- JSON for sapwf on lua-cjson.
--
-- encode(value, root) -> text | nil, message      decode(text) -> value | nil, message
--
-- Encoding validates first, so anything that is not JSON fails with a message that names
-- where it is ("context.items[3].price: NaN is not JSON") before a byte is sent:
-- functions, userdata (other than null), threads, cycles, NaN, inf, invalid UTF-8 (Lua
-- 5.3+), tables mixing array and string keys, sparse arrays, keys that are neither strings
-- nor positive integers. An empty plain table is an object (contexts are objects); mark an
-- empty list with array(). object() marks a table whose integer keys are object member names.
--
-- Decoding reads a number beyond a double's range (1E400) as +-math.huge, as lua-cjson does;
-- encoding refuses infinity, so such a value is never sent back as something else.
--
-- Integers are written and read exactly and [] stays an array, with either lua-cjson:
-- OpenResty's (what LuaRocks installs) does both itself; Debian's 2.1.0 does neither, and
-- for it sapwf.compat.cjson21 works around, loaded only then. Which one is in use is told
-- by what cjson does (capable() below), not by its version. (OpenResty's writes other
-- numbers with at most 16 significant digits, its limit; json.lua writes 17 where 16
-- cannot carry the value, with the same placeholders the workaround uses.)
local cjson = require "cjson"

local type, next, tostring, tonumber = type, next, tostring, tonumber
local getmetatable, setmetatable, pcall, error = getmetatable, setmetatable, pcall, error
local find, format, gsub, byte = string.find, string.format, string.gsub, string.byte
local concat = table.concat
local huge, floor = math.huge, math.floor
local math_type = math.type                               -- nil on Lua 5.1 / LuaJIT
local utf8_len = utf8 and utf8.len                        -- nil on Lua 5.1 / LuaJIT

-- Whether this cjson writes and reads integers exactly and keeps [] an array: a fresh
-- instance must read and write back, unchanged, an empty array and the largest integer a
-- double holds exactly (on Lua 5.3+ also one beyond it).
local function capable()
  if type(cjson.array_mt) ~= "table" or type(cjson.new) ~= "function" then return false end
  local c = cjson.new()
  if type(c.decode_array_with_array_mt) ~= "function"
      or not pcall(c.encode_number_precision, 16) then
    return false
  end
  c.decode_array_with_array_mt(true)
  local text = math.type and "[[],9007199254740991,9007199254740993]" or "[[],9007199254740991]"
  local ok, value = pcall(c.decode, text)
  if not ok then return false end
  local back
  ok, back = pcall(c.encode, value)
  return ok and back == text
end
local native = capable()

-- A private cjson instance, so our settings never change the caller's `require "cjson"`.
local codec = cjson.new()
codec.encode_invalid_numbers(false)
codec.decode_invalid_numbers(false)   -- NaN/Infinity are not JSON, in either direction
-- Decoding through a cjson.safe instance (same settings) returns nil, message where cjson
-- raises: no pcall on every call.
local safe_codec = require("cjson.safe").new()
safe_codec.decode_invalid_numbers(false)
if native then
  codec.encode_number_precision(16)
  safe_codec.decode_array_with_array_mt(true)
end
local cjson_encode, cjson_decode = codec.encode, safe_codec.decode

local MAX_DEPTH = 1000                 -- cjson's own nesting limit

local json = {}

json.null = cjson.null
local null = cjson.null

-- With a capable cjson, arrays are marked with its own array_mt: it writes them as arrays
-- even when empty, and puts it on the arrays it reads.
local array_mt = native and cjson.array_mt or { __name = "sapwf.array" }
local object_mt = { __name = "sapwf.object" }
json.array_mt, json.object_mt = array_mt, object_mt

-- The old cjson's workarounds, or nil.
local compat = not native and require "sapwf.compat.cjson21" or nil
-- Whether cjson writes the number v exactly: the old cjson with 14 significant digits; a
-- capable one writes integers exactly and other numbers with 16 (integral floats from 1e16
-- on in exponent form, which json.lua writes out instead).
local number_exact = compat and compat.number_exact or function(v)
  if math_type and math_type(v) == "integer" then return true end
  if v % 1 == 0 then return v < 1e16 and v > -1e16 end
  return tonumber(format("%.16g", v)) == v
end

local function mark(mt, name, t)
  if t == nil then t = {} end
  if type(t) ~= "table" then
    error(format("bad argument #1 to '%s' (table expected, got %s)", name, type(t)), 3)
  end
  local old = getmetatable(t)
  if old ~= nil and old ~= mt then
    error(format("bad argument #1 to '%s' (table already has a metatable)", name), 3)
  end
  return setmetatable(t, mt)
end

-- Not `return mark(...)`: a tail call would take this frame off the stack, and mark's
-- error level would name the line that called the caller of array or object.

--- Marks t (or a new table) as a JSON array, so that an empty one is written as [].
function json.array(t)
  local marked = mark(array_mt, "array", t)
  return marked
end
--- Marks t (or a new table) as a JSON object; integer keys become member names.
function json.object(t)
  local marked = mark(object_mt, "object", t)
  return marked
end

-- ------------------------------------------------------------------------------------------
-- Validation: one walk that raises `invalid` (caught in encode) with the path of the culprit.
-- The path is kept as a stack of keys and only rendered when something is wrong.

local keys = {}          -- keys[d] = the key that leads to depth d
local root_name          -- e.g. "context"

-- A key as it can be read in a message: quotes, backslashes and control bytes escaped, and
-- bytes above 127 too when they are not UTF-8 (a message must stay valid text).
local function quote(k)
  local unsafe = (utf8_len and not utf8_len(k)) and '[%c"\\\128-\255]' or '[%c"\\]'
  return (gsub(k, unsafe, function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return format("\\%d", byte(c))
  end))
end

local function render_path(depth)
  local out = { root_name }
  for d = 1, depth do
    local k = keys[d]
    if type(k) == "number" then
      out[#out + 1] = format("[%d]", k)
    elseif type(k) == "string" and find(k, "^[%a_][%w_]*$") then
      out[#out + 1] = "." .. k
    else
      out[#out + 1] = '["' .. quote(tostring(k)) .. '"]'
    end
  end
  return concat(out)
end

local function invalid(depth, what)
  error({ sapwf_json = render_path(depth) .. ": " .. what }, 0)
end

local check_value

-- Returns true when cjson cannot write this number exactly (the old cjson only: then the
-- workaround copies the value).
local function check_number(v, depth)
  if v ~= v then invalid(depth, "NaN is not JSON") end
  if v == huge or v == -huge then invalid(depth, "infinity is not JSON") end
  return not number_exact(v)
end

local seen = {}          -- tables on the current path, to find cycles

local function check_table(t, depth)
  if seen[t] then invalid(depth, "cycle (a table contains itself)") end
  if depth >= MAX_DEPTH then
    invalid(depth, format("nested more than %d levels deep", MAX_DEPTH))
  end
  local mt = getmetatable(t)
  local needs = false
  local n_str, n_int, max_int = 0, 0, 0
  seen[t] = true
  local child = depth + 1
  for k, v in next, t do
    local tk = type(k)
    if tk == "string" then
      if utf8_len and not utf8_len(k) then
        keys[child] = k
        invalid(child, "key is not valid UTF-8")
      end
      n_str = n_str + 1
    elseif tk == "number" and k % 1 == 0 and k >= 1 then
      n_int = n_int + 1
      if k > max_int then max_int = k end
    else
      invalid(depth, format("key %s (a %s) is not JSON: keys are strings, or 1..n for arrays",
                            tostring(k), tk))
    end
    keys[child] = k
    if check_value(v, child) then needs = true end
  end
  seen[t] = nil

  if mt == object_mt then
    -- Integer keys are written as member names, which needs a copy.
    return needs or n_int > 0
  end
  if n_int > 0 and n_str > 0 then
    invalid(depth, format("table mixes array indexes (%d) and string keys (%d)", n_int, n_str))
  end
  if mt == array_mt and n_str > 0 then
    invalid(depth, "table marked as array has string keys")
  end
  if max_int ~= n_int then
    invalid(depth, format("sparse array (%d values, highest index %d); use sapwf.null for holes",
                          n_int, max_int))
  end
  -- The old cjson has no empty array: the workaround puts one in.
  return needs or (compat ~= nil and mt == array_mt and n_int == 0)
end

function check_value(v, depth)
  local tv = type(v)
  if tv == "string" then
    if utf8_len and not utf8_len(v) then invalid(depth, "string is not valid UTF-8") end
    return false
  elseif tv == "number" then
    return check_number(v, depth)
  elseif tv == "table" then
    return check_table(v, depth)
  elseif tv == "boolean" then
    return false
  elseif v == null then
    return false
  end
  invalid(depth, format("a %s is not JSON", tv))
end

-- The validating walk: "plain" (cjson writes value as it is), "copy" (it needs a copy with
-- object member names, or the old cjson's placeholders), or nil and the message naming what
-- is not JSON. Raises what is not a walk's own error (a metamethod's, say).
local function walk(value, root)
  root_name = root or "value"
  local ok, needs = pcall(check_value, value, 0)
  if ok then return needs and "copy" or "plain" end
  for k in next, seen do seen[k] = nil end       -- a failed walk leaves its path behind
  if type(needs) == "table" and needs.sapwf_json then return nil, needs.sapwf_json end
  error(needs, 0)
end

-- ------------------------------------------------------------------------------------------
-- Placeholders: "sapwfj<nonce>x<index>" strings; only letters and digits, so cjson writes
-- them unescaped and they are safe in a gsub pattern. A nonce that occurs in any string of
-- the data is replaced by another one before it can be confused with a placeholder.

local nonce_seq = 0
local nonce_seed = gsub(tostring({}), "%W", "") .. format("%x", floor(os.time() % 65536))

local function new_nonce()
  nonce_seq = nonce_seq + 1
  return format("sapwfj%s%dx", nonce_seed, nonce_seq)
end
local nonce = new_nonce()

local collided = {}      -- sentinel raised by the copy when the data contains the nonce

local copy_value
local texts              -- texts[i] = the exact JSON text of placeholder i

local function placeholder(text)
  local i = #texts + 1
  texts[i] = text
  return nonce .. i
end

local function copy_string(s)
  if find(s, nonce, 1, true) then error(collided, 0) end
  return s
end

-- The shortest of %.15g, %.16g, %.17g that reads back as v (%.17g always does).
local function shortest(v)
  local s = format("%.15g", v)
  if tonumber(s) == v then return s end
  s = format("%.16g", v)
  if tonumber(s) == v then return s end
  return format("%.17g", v)
end

-- A number as it is when cjson writes it exactly, else a placeholder for its exact text.
local function copy_number(v)
  if number_exact(v) then return v end
  if math_type and math_type(v) == "integer" then return placeholder(format("%d", v)) end
  -- An integral float within 64 bits with every digit; beyond, the shortest exact form.
  if v % 1 == 0 and v < 2^63 and v >= -2^63 then return placeholder(format("%.0f", v)) end
  return placeholder(shortest(v))
end

local function copy_table(t)
  local mt = getmetatable(t)
  local out = {}
  if mt == object_mt then
    for k, v in next, t do
      if type(k) == "number" then k = format("%d", k) else k = copy_string(k) end
      out[k] = copy_value(v)
    end
    return out
  end
  local empty = true
  for k, v in next, t do
    empty = false
    if type(k) == "string" then k = copy_string(k) end
    out[k] = copy_value(v)
  end
  if empty and mt == array_mt then
    if compat then return placeholder("[]") end       -- the old cjson has no empty array
    setmetatable(out, array_mt)
  end
  return out
end

function copy_value(v)
  local tv = type(v)
  if tv == "string" then return copy_string(v)
  elseif tv == "number" then return copy_number(v)
  elseif tv == "table" then return copy_table(v)
  end
  return v
end

local function encode_with_placeholders(value)
  while true do
    texts = {}
    local ok, copy = pcall(copy_value, value)
    if ok then
      local text = cjson_encode(copy)
      local t = texts
      texts = nil
      return (gsub(text, '"' .. nonce .. '(%d+)"', function(i) return t[tonumber(i)] end))
    end
    if copy ~= collided then texts = nil; error(copy, 0) end
    nonce = new_nonce()
  end
end

local function cjson_message(err)
  return (gsub(tostring(err), "^.-:%d+: ", ""))
end

--- Encodes value as JSON text. root names the value in messages (default "value").
-- Returns text, or nil and a message naming the path of what is not JSON.
function json.encode(value, root)
  local verdict, message = walk(value, root)
  if not verdict then return nil, message end
  if verdict == "copy" then return encode_with_placeholders(value) end
  return cjson_encode(value)
end
local checked_encode = json.encode

--- Decodes JSON text. Returns the value, or nil and cjson's message (positions only, never
-- the text itself).
function json.decode(text)
  local value, message = cjson_decode(text)
  if value == nil then return nil, cjson_message(message) end
  return value
end

if compat then
  json.encode, json.decode = compat.setup{ array_mt = array_mt,
    checked_encode = checked_encode, encode = cjson_encode, decode = cjson_decode,
    message = cjson_message,
    placeholders = { current = function() return nonce end,
                     fresh = function() nonce = new_nonce(); return nonce end } }
end

-- For the specs: which cjson is in use, the walk they hold the C walk to, and the
-- placeholder prefix now.
json._compat = compat
json._walk = walk
function json._nonce() return nonce end

return json
