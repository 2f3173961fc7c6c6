-- JSON for the emulator, on Debian's lua-cjson 2.1.0 (the LuaJIT build nginx loads).
--
-- That cjson has no empty-array value, reads every number as a double and writes numbers
-- with 14 significant digits. The emulator must hand contexts back exactly as they came (as
-- the service does: it keeps 64-bit integers), so:
--   * decode() keeps empty arrays and long integers: before cjson sees the text (only when
--     it has a "[" or a run of 16 digits at all) "[]" becomes a marker string and so does an
--     integer of 16 or more digits; afterwards the markers become tables with the ARRAY
--     metatable, and integers beyond 2^53 tables with the INTEGER metatable ({text = ...});
--   * encode_exact() (for user data: contexts) writes every number so that it reads back
--     to the same double, INTEGER tables as their digits and empty ARRAY tables as [];
--   * encode() (for the emulator's own views, the hot path) is plain cjson; views put
--     json.EMPTY where a list is empty, and it is replaced by [] afterwards.
local cjson = require "cjson.safe"

local type, pairs, next, tonumber = type, pairs, next, tonumber
local setmetatable, getmetatable, rawget = setmetatable, getmetatable, rawget
local find, sub, byte, gsub, format = string.find, string.sub, string.byte, string.gsub,
  string.format
local floor, huge = math.floor, math.huge
local concat = table.concat

local json = {}

local cjson_encode, cjson_decode = cjson.encode, cjson.decode

json.null = cjson.null
local null = cjson.null

local ARRAY = { __name = "json array" }
local INTEGER = { __name = "json integer" }     -- { text = "-9223372036854775808" }

local EMPTY_TOKEN = "__sapwf_emulator_empty_array__"
local EMPTY_QUOTED = '"' .. EMPTY_TOKEN .. '"'
json.EMPTY = EMPTY_TOKEN

--- t as a JSON list: the table itself, or the empty-list marker when it has no items.
function json.list(t)
  if t[1] == nil then return EMPTY_TOKEN end
  return t
end

--- A decoded JSON object (not an array, not a scalar).
function json.is_object(v)
  return type(v) == "table" and getmetatable(v) == nil and rawget(v, 1) == nil
end

function json.is_array(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  return mt == ARRAY or (mt == nil and rawget(v, 1) ~= nil)
end

--- The digits of a long integer read by decode() (nil for anything else).
function json.integer_text(v)
  return type(v) == "table" and getmetatable(v) == INTEGER and v.text or nil
end

function json.encode(value)
  local text, err = cjson_encode(value)
  if not text then return nil, err end
  if find(text, EMPTY_TOKEN, 1, true) then
    text = gsub(text, EMPTY_QUOTED, "[]")
  end
  return text
end

-- The shortest "%.Ng" text that reads back to the same double (cjson stops at 14 digits).
local function number_text(n)
  if n == floor(n) and n > -2^53 and n < 2^53 then return format("%d", n) end
  for digits = 14, 17 do
    local s = format("%." .. digits .. "g", n)
    if tonumber(s) == n then return s end
  end
  return format("%.17g", n)
end

-- cjson writes "%.14g"; only numbers that text does not read back to need help.
local function needs_exact(n)
  return n == n and n ~= huge and n ~= -huge and tonumber(format("%.14g", n)) ~= n
end

-- A copy of v in which exact numbers and empty arrays are placeholder strings.
local function prepare(v, numbers)
  local kind = type(v)
  if kind == "number" then
    if needs_exact(v) then
      numbers[#numbers + 1] = number_text(v)
      return "__sapwf_emulator_number_" .. #numbers .. "__"
    end
    return v
  elseif kind ~= "table" or v == null then
    return v
  end
  local mt = getmetatable(v)
  if mt == INTEGER then
    numbers[#numbers + 1] = v.text
    return "__sapwf_emulator_number_" .. #numbers .. "__"
  end
  if next(v) == nil then
    return mt == ARRAY and EMPTY_TOKEN or v
  end
  local copy = {}
  for k, item in pairs(v) do copy[k] = prepare(item, numbers) end
  return copy
end

--- Encodes user data (a context) so that it reads back exactly as it was decoded.
function json.encode_exact(value)
  local numbers = {}
  local text, err = json.encode(prepare(value, numbers))
  if not text then return nil, err end
  if numbers[1] then
    text = gsub(text, '"__sapwf_emulator_number_(%d+)__"', function(i)
      return numbers[tonumber(i)]
    end)
  end
  return text
end

local INTEGER_PREFIX = "__sapwf_emulator_integer_"

-- The text with each empty array "[ ]" and each integer of 16 or more digits outside
-- strings replaced by a marker string; nil when there is none.
local function protect(text)
  local out, n, from, pos = {}, 0, 1, 1
  while true do
    local at = find(text, '[%["%-%d]', pos)
    if not at then break end
    local c = byte(text, at)
    if c == 34 then                                  -- '"': skip the whole string
      local p = at + 1
      while true do
        local q = find(text, '["\\]', p)
        if not q then return nil end                 -- unterminated: cjson will say so
        if byte(text, q) == 92 then p = q + 2 else pos = q + 1 break end
      end
    elseif c == 91 then                              -- '['
      local _, close = find(text, "^%s*%]", at + 1)
      if close then
        out[n + 1], out[n + 2] = sub(text, from, at - 1), EMPTY_QUOTED
        n, from = n + 2, close + 1
        pos = close + 1
      else
        pos = at + 1
      end
    else                                             -- a number
      local _, last = find(text, "^%-?%d+", at)
      if not last then return nil end                -- a lone "-": not JSON anyway
      local _, tail = find(text, "^[%.eE][%d%.eE%+%-]*", last + 1)
      if not tail and last - at + 1 - (c == 45 and 1 or 0) >= 16 then
        out[n + 1] = sub(text, from, at - 1)
        out[n + 2] = '"' .. INTEGER_PREFIX .. sub(text, at, last) .. '"'
        n, from = n + 2, last + 1
      end
      pos = (tail or last) + 1
    end
  end
  if n == 0 then return nil end
  out[n + 1] = sub(text, from)
  return concat(out)
end

local function restore(v)
  if type(v) == "string" then
    if v == EMPTY_TOKEN then return setmetatable({}, ARRAY) end
    local digits = sub(v, 1, #INTEGER_PREFIX) == INTEGER_PREFIX and sub(v, #INTEGER_PREFIX + 1)
    if digits then
      local number = tonumber(digits)
      if number > -2^53 and number < 2^53 then return number end
      return setmetatable({ text = digits }, INTEGER)
    end
    return v
  end
  if type(v) ~= "table" then return v end
  for k, item in pairs(v) do
    if type(item) == "string" or type(item) == "table" then v[k] = restore(item) end
  end
  if rawget(v, 1) ~= nil then setmetatable(v, ARRAY) end
  return v
end

--- Decodes text; empty arrays come back as ARRAY tables, long integers exactly (see top).
function json.decode(text)
  if type(text) ~= "string" then return nil, "no body" end
  local protected = (find(text, "[", 1, true) or find(text, "%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d"))
    and protect(text)
  local value, err = cjson_decode(protected or text)
  if value == nil and err then return nil, err end
  if protected then value = restore(value) end
  return value
end

return json
