--- JSON for sapwf on lua-cjson, with the limits of Debian's lua-cjson 2.1.0 worked around.
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
-- cjson 2.1.0 writes numbers with at most 14 significant digits and has no empty-array value.
-- Those values are swapped for unique placeholder strings in a copy, the copy goes through
-- cjson, and the exact text is put back. Decoding goes the other way for integer literals
-- that a double cannot hold and for empty arrays. The copies are only made when needed.
--
-- The walks run on every call, so their common case is in C (src/json_walk.c): a value
-- that cjson writes exactly as it is (ASCII strings, numbers it writes exactly, tables
-- without metatables) goes straight to cjson, and decoded values get their integers there.
-- Anything else takes the Lua walks below, which name the culprit or put in placeholders.
local cjson = require "cjson"
local core = require "sapwf.core"

local type, next, tostring, tonumber = type, next, tostring, tonumber
local getmetatable, setmetatable, pcall, error = getmetatable, setmetatable, pcall, error
local find, format, gsub, match, byte, sub = string.find, string.format, string.gsub,
  string.match, string.byte, string.sub
local concat = table.concat
local huge, floor = math.huge, math.floor
local math_type, tointeger = math.type, math.tointeger   -- nil on Lua 5.1 / LuaJIT
local utf8_len = utf8 and utf8.len                        -- nil on Lua 5.1 / LuaJIT

-- A private cjson instance, so our settings never change the caller's `require "cjson"`.
local codec = cjson.new()
codec.encode_invalid_numbers(false)
codec.decode_invalid_numbers(false)   -- NaN/Infinity are not JSON, in either direction
local cjson_encode = codec.encode
-- Decoding through a cjson.safe instance (same settings) returns nil, message where cjson
-- raises: no pcall on every call.
local safe_codec = require("cjson.safe").new()
safe_codec.decode_invalid_numbers(false)
local cjson_decode = safe_codec.decode
local plain, fix = core.json_plain, core.json_fix

local MAX_DEPTH = 1000                 -- cjson's own nesting limit
local EXACT_LIMIT = 1e14               -- %.14g writes integers below this exactly
local SAFE_INTEGER = 2^53              -- doubles hold every integer below this

local json = {}

json.null = cjson.null
local null = cjson.null

local array_mt = { __name = "sapwf.array" }
local object_mt = { __name = "sapwf.object" }
json.array_mt, json.object_mt = array_mt, object_mt

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

--- Marks t (or a new table) as a JSON array, so that an empty one is written as [].
function json.array(t) return mark(array_mt, "array", t) end
--- Marks t (or a new table) as a JSON object; integer keys become member names.
function json.object(t) return mark(object_mt, "object", t) end

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

-- Returns true when the encoded text needs a placeholder for this number.
local function check_number(v, depth)
  if math_type and math_type(v) == "integer" then
    return v >= EXACT_LIMIT or v <= -EXACT_LIMIT
  end
  if v ~= v then invalid(depth, "NaN is not JSON") end
  if v == huge or v == -huge then invalid(depth, "infinity is not JSON") end
  if v % 1 == 0 then
    return v >= EXACT_LIMIT or v <= -EXACT_LIMIT
  end
  -- A fraction that 14 digits cannot carry (0.1 + 0.2, pi) is written with 17.
  return tonumber(format("%.14g", v)) ~= v
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
    -- Integer keys are written as member names, which needs the copy.
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
  return needs or (mt == array_mt and n_int == 0)
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

-- The current placeholder prefix, for the spec that checks collisions are avoided.
function json._nonce() return nonce end

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

local function copy_number(v)
  if math_type and math_type(v) == "integer" then
    if v >= EXACT_LIMIT or v <= -EXACT_LIMIT then return placeholder(format("%d", v)) end
    return v
  end
  if v % 1 == 0 then
    if v >= EXACT_LIMIT or v <= -EXACT_LIMIT then
      -- Within 64 bits write every digit; beyond, the shortest exact form is shorter.
      if v < 2^63 and v >= -2^63 then return placeholder(format("%.0f", v)) end
      return placeholder(shortest(v))
    end
    return v
  end
  if tonumber(format("%.14g", v)) ~= v then return placeholder(shortest(v)) end
  return v
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
  if empty and mt == array_mt then return placeholder("[]") end
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

-- The Lua walk: "plain" (cjson writes value as it is), "placeholders" (it needs the copy),
-- or nil and the message naming what is not JSON. Raises what is not a walk's own error
-- (a metamethod's, say).
local function walk(value, root)
  root_name = root or "value"
  local ok, needs = pcall(check_value, value, 0)
  if ok then return needs and "placeholders" or "plain" end
  for k in next, seen do seen[k] = nil end       -- a failed walk leaves its path behind
  if type(needs) == "table" and needs.sapwf_json then return nil, needs.sapwf_json end
  error(needs, 0)
end
-- For the spec that holds core.json_plain to the Lua walk's verdicts.
json._walk = walk

--- Encodes value as JSON text. root names the value in messages (default "value").
-- Returns text, or nil and a message naming the path of what is not JSON.
function json.encode(value, root)
  if plain(value) then return cjson_encode(value) end
  local verdict, message = walk(value, root)
  if not verdict then return nil, message end
  if verdict == "placeholders" then return encode_with_placeholders(value) end
  return cjson_encode(value)
end

-- ------------------------------------------------------------------------------------------
-- Decoding. cjson turns every number into a double and [] into a table like {}. So:
--   1. cjson decodes the text; a walk (in C: core.json_fix) turns integral numbers below
--      2^53 into integers (Lua 5.3+) and notes empty tables and integral numbers beyond 2^53.
--   2. Only then, if an empty table may have been [] (the text has one) or a big integer
--      may have lost digits, the text is scanned once, skipping strings, and those tokens
--      are swapped for placeholder strings; cjson decodes that, and the Lua walk below puts
--      exact integers and marked empty arrays in their place.
-- A wf:start answer (one object, no such tokens) costs cjson plus a short walk; pattern
-- searches over large texts are avoided as they cost as much as cjson itself.

-- Returns the rewritten text and the values of its placeholders (nil when nothing was
-- swapped), or nil when the text is malformed.
local function rewrite(text)
  local out, n, last, pos = {}, 0, 1, 1
  local values = {}
  local len = #text
  local function swap(from, to, value)
    values[#values + 1] = value
    out[n + 1] = sub(text, last, from - 1)
    out[n + 2] = '"' .. nonce .. #values .. '"'
    n = n + 2
    last = to + 1
  end
  while pos <= len do
    -- The structural text up to the next string: anchored finds never pass a quote.
    while true do
      local _, at = find(text, '^[^"%[%d%-]*[%[%d%-]', pos)
      if not at then break end
      if byte(text, at) == 91 then                    -- '[': an empty array?
        local close = match(text, "^[ \t\r\n]*()%]", at + 1)
        if close then swap(at, close, array_mt); pos = close + 1 else pos = at + 1 end
      else                                            -- a number token
        local e = match(text, "^%-?[%d%.eE%+%-]*()", at)
        local token = sub(text, at, e - 1)
        if tointeger and find(token, "^%-?%d+$") and #token >= 16 then
          swap(at, e - 1, tonumber(token))            -- an integer unless beyond 64 bits
        end
        pos = e
      end
    end
    local q = find(text, '"', pos, true)
    if not q then break end
    -- Jump over the string: its end is the next quote not escaped by an odd number of
    -- backslashes.
    local e = q + 1
    while true do
      local c = find(text, '"', e, true)
      if not c then return nil end
      local b = c - 1
      while byte(text, b) == 92 do b = b - 1 end
      if (c - 1 - b) % 2 == 0 then pos = c + 1; break end
      e = c + 1
    end
  end
  if n == 0 then return text, nil end
  out[n + 1] = sub(text, last)
  return concat(out), values
end

local function restore(s, values)
  local i = match(s, "^" .. nonce .. "(%d+)$")
  local v = i and values[tonumber(i)]
  if v == array_mt then return setmetatable({}, array_mt) end
  if v ~= nil then return v end
  return s
end

local function fix_number(v)
  if v % 1 == 0 then
    -- Below 2^53 a double holds every integer, so the text had exactly this one; bigger
    -- integer literals are placeholders by now.
    if v < SAFE_INTEGER and v > -SAFE_INTEGER then return tointeger(v) end
  end
  return v
end

local function fix_table(t, values)
  for k, v in next, t do
    local tv = type(v)
    if tv == "table" then
      fix_table(v, values)
    elseif tv == "number" then
      if tointeger then
        local w = fix_number(v)
        if w ~= v or math_type(w) ~= math_type(v) then t[k] = w end
      end
    elseif tv == "string" and values then
      local r = restore(v, values)
      if r ~= v then t[k] = r end
    end
  end
end

local function fix_value(v, values)
  local tv = type(v)
  if tv == "table" then
    fix_table(v, values)
  elseif tv == "number" then
    if tointeger then return fix_number(v) end
  elseif tv == "string" and values then
    return restore(v, values)
  end
  return v
end

-- True when the text has a "[" followed by "]" (maybe inside a string: that only costs
-- the rewrite). Plain finds: arrays are few next to the rest of the text.
local function has_empty_array(text)
  local pos = 1
  while true do
    local at = find(text, "[", pos, true)
    if not at then return false end
    if match(text, "^[ \t\r\n]*%]", at + 1) then return true end
    pos = at + 1
  end
end

local function cjson_message(err)
  return (gsub(tostring(err), "^.-:%d+: ", ""))
end

--- Decodes JSON text. Returns the value, or nil and cjson's message (positions only, never
-- the text itself).
function json.decode(text)
  local value, message = cjson_decode(text)
  if value == nil then return nil, cjson_message(message) end
  local empty, big
  value, empty, big = fix(value)
  if (empty and has_empty_array(text)) or big then
    while find(text, nonce, 1, true) do nonce = new_nonce() end
    local rewritten, values = rewrite(text)
    if rewritten and values then
      value, message = cjson_decode(rewritten)
      if value == nil then return nil, cjson_message(message) end
      value = fix_value(value, values)
    end
  end
  return value
end

return json
