-- Small helpers of the server: ids, timestamps, dates, strings.
local random, floor = math.random, math.floor
local format, match, lower, find, sub = string.format, string.match, string.lower,
  string.find, string.sub
local os_date = os.date
local now = ngx.now

local util = {}

--- A random (version 4) UUID. math.random is seeded per worker in init_worker.
function util.uuid()
  return format("%08x-%04x-4%03x-%04x-%04x%08x", random(0, 0xffffffff), random(0, 0xffff),
    random(0, 0xfff), random(0x8000, 0xbfff), random(0, 0xffff), random(0, 0xffffffff))
end

-- Ids of instances, tasks and requests must be unique, not unpredictable: a counter plus
-- a random part chosen per worker (init_worker) costs one format per id. They look like the
-- time-based UUIDs the service hands out ("1a8ab2ea-fbf8-11ea-9e92-eeee0a9e5a06").
-- LuaJIT hashes a long string by its first, last, middle and quarter 4 bytes only, so the
-- counter must show in the first group AND the last bytes: with a fixed tail, 65536 ids in a
-- row would share one hash chain and every table lookup by id would crawl.
local id_count, id_middle = 0, "0000-11ee-8000-0000"

function util.seed_ids()
  id_middle = format("%04x-11ee-%04x-%04x", random(0, 0xffff), random(0x8000, 0xbfff),
    random(0, 0xffff))
  id_count = random(0, 0x7fffffff)
end

--- A unique id in UUID form (cheap; see above).
function util.id()
  id_count = id_count + 1
  if id_count > 0xffffffff then id_count = 0 end
  local low = id_count % 0x10000
  return format("%08x-%s%04x%04x", id_count, id_middle, (id_count - low) / 0x10000 % 0x10000,
    low * 40503 % 0x10000)      -- odd multiplier: a bijection of the low 16 bits
end

--- 32 hex digits, like the jti of an XSUAA token.
function util.hex_id()
  return format("%08x%08x%08x%08x", random(0, 0xffffffff), random(0, 0xffffffff),
    random(0, 0xffffffff), random(0, 0xffffffff))
end

-- os.date is the costly part of a timestamp and changes once a second: keep the last one.
local cached_second, cached_prefix = -1, ""

--- The ISO 8601 form the service uses: 2024-05-01T12:00:00.123Z (UTC, milliseconds).
function util.iso(t)
  t = t or now()
  local second = floor(t)
  if second ~= cached_second then
    cached_second, cached_prefix = second, os_date("!%Y-%m-%dT%H:%M:%S", second)
  end
  return format("%s.%03dZ", cached_prefix, floor((t - second) * 1000))
end

--- A query date in either documented format, as the ISO text (comparable as a string).
function util.parse_date(s)
  local y, mo, d, h, mi, se, ms = match(s,
    "^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d%d%d)Z$")
  if not y then
    y, mo, d, h, mi, se, ms = match(s, "^(%d%d%d%d)(%d%d)(%d%d)(%d%d)(%d%d)(%d%d)%.(%d%d%d)$")
  end
  if not y then return nil end
  return format("%s-%s-%sT%s:%s:%s.%sZ", y, mo, d, h, mi, se, ms)
end

--- Whether s is a date-time as JSON payloads carry it (RFC 3339, as the spec's format).
function util.is_datetime(s)
  return type(s) == "string"
    and match(s, "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d") ~= nil
end

--- Case-insensitive plain substring search.
function util.contains(haystack, needle_lower)
  return haystack ~= nil and find(lower(haystack), needle_lower, 1, true) ~= nil
end

--- "a, b,c" -> {"a", "b", "c"}; "" -> {}.
function util.split_list(s)
  local out = {}
  for item in s:gmatch("[^,]+") do
    item = match(item, "^%s*(.-)%s*$")
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

function util.starts_with(s, prefix)
  return sub(s, 1, #prefix) == prefix
end

--- A shallow copy of a list.
function util.copy_list(t)
  local out = {}
  for i = 1, #t do out[i] = t[i] end
  return out
end

return util
