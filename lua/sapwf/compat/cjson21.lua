-- Workarounds for Debian's lua-cjson 2.1.0, used by sapwf.json only when the loaded cjson
-- lacks what sapwf needs (json.lua tells by what cjson does, not by its version):
--
-- - it writes numbers with at most 14 significant digits, and has no empty-array value:
--   number_exact tells json.lua which numbers its placeholders must carry, and json.lua
--   puts an empty array in the same way;
-- - it reads every number as a double and [] as a table like {}: integral numbers below
--   2^53 become integers (Lua 5.3+), and when an empty table may have been [] or a big
--   integer may have lost digits, the text is read again with those tokens swapped for
--   placeholders.
--
-- The walks run on every call, so their common case is in C (sapwf.compat.json_walk,
-- src/compat/json_walk.c): a value that cjson writes exactly as it is (ASCII strings,
-- numbers it writes exactly, tables without metatables) goes straight to cjson, and decoded
-- values get their integers there. Anything else takes the Lua code below. With OpenResty's
-- lua-cjson (what LuaRocks installs) none of this is loaded.
local walk_c = require "sapwf.compat.json_walk"

local type, next, tostring, tonumber = type, next, tostring, tonumber
local getmetatable, setmetatable, pcall, error = getmetatable, setmetatable, pcall, error
local find, format, gsub, match, byte, sub = string.find, string.format, string.gsub,
  string.match, string.byte, string.sub
local concat = table.concat
local floor = math.floor
local math_type, tointeger = math.type, math.tointeger   -- nil on Lua 5.1 / LuaJIT
local plain, fix = walk_c.plain, walk_c.fix

local EXACT_LIMIT = 1e14               -- %.14g writes integers below this exactly
local SAFE_INTEGER = 2^53              -- doubles hold every integer below this

local compat = {}

-- Set by compat.setup: json.lua's array mark, its checked encode and placeholder prefix,
-- and the cjson functions.
local array_mt, checked_encode, placeholders, cjson_encode, cjson_decode, cjson_message
local nonce              -- the placeholder prefix of the decode under way

-- Whether cjson 2.1.0 writes v exactly (%.14g): false for an integer from 1e14 on and for
-- a fraction that 14 digits cannot carry (0.1 + 0.2, pi). json.lua's walk asks this.
function compat.number_exact(v)
  if math_type and math_type(v) == "integer" then
    return v < EXACT_LIMIT and v > -EXACT_LIMIT
  end
  if v % 1 == 0 then
    return v < EXACT_LIMIT and v > -EXACT_LIMIT
  end
  return tonumber(format("%.14g", v)) == v
end

-- json.encode: cjson at once for what the C walk finds plain, json.lua's checked encode for
-- the rest.
local function encode(value, root)
  if plain(value) then return cjson_encode(value) end
  return checked_encode(value, root)
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

local function decode(text)
  local value, message = cjson_decode(text)
  if value == nil then return nil, cjson_message(message) end
  local empty, big
  value, empty, big = fix(value)
  if (empty and has_empty_array(text)) or big then
    nonce = placeholders.current()
    while find(text, nonce, 1, true) do nonce = placeholders.fresh() end
    local rewritten, values = rewrite(text)
    if rewritten and values then
      value, message = cjson_decode(rewritten)
      if value == nil then return nil, cjson_message(message) end
      value = fix_value(value, values)
    end
  end
  return value
end

-- json.lua hands over what the workarounds build on; returns encode and decode as
-- json.encode and json.decode are documented.
function compat.setup(shared)
  array_mt, checked_encode, placeholders = shared.array_mt, shared.checked_encode,
    shared.placeholders
  cjson_encode, cjson_decode, cjson_message = shared.encode, shared.decode, shared.message
  return encode, decode
end

return compat
