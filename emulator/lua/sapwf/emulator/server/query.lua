-- Query parameters of collections: paging ($top, $skip, $inlinecount), $orderby, $expand,
-- and the filter helpers (a repeated parameter means OR, an empty one is ignored).
-- Violations answer 400 with the spec's code (bpm.workflowruntime.rest.content.format.invalid).
local util = require "sapwf.emulator.server.util"
local shared = require "sapwf.emulator.server.shared"

local type, tonumber, tostring, ipairs, pairs = type, tonumber, tostring, ipairs, pairs
local match, format, upper = string.match, string.format, string.upper
local sort = table.sort

local query = {}

--- Raised (with error()) by the helpers below and turned into a 400 by handlers' caller.
local Invalid = {}
Invalid.__index = Invalid
query.Invalid = Invalid

local function invalid(message)
  error(setmetatable({ message = message }, Invalid), 0)
end
query.invalid = invalid

--- The one value of a parameter that may be given once; nil when missing or empty.
function query.single(args, name)
  local value = args[name]
  if type(value) == "table" then
    invalid(format("The query parameter '%s' can only be specified once.", name))
  end
  if value == true or value == "" then return nil end
  return value
end

--- Every non-empty value of a parameter (repeated, or for status a comma list too).
function query.values(args, name, comma_list)
  local value = args[name]
  if value == nil or value == true then return nil end
  if type(value) ~= "table" then value = { value } end
  local out = {}
  for _, item in ipairs(value) do
    if item ~= true and item ~= "" then
      if comma_list then
        for _, part in ipairs(util.split_list(item)) do out[#out + 1] = part end
      else
        out[#out + 1] = item
      end
    end
  end
  if out[1] == nil then return nil end
  return out
end

local function integer(args, name, default, max)
  local value = query.single(args, name)
  if value == nil then return default end
  local n = match(value, "^%d+$") and tonumber(value)
  if not n or n > max then
    invalid(format("The value '%s' of the query parameter '%s' is invalid:"
      .. " it must be an integer between 0 and %d.", value, name, max))
  end
  return n
end

--- { top =, skip =, count = bool } from $top (0..1000), $skip (0..4000), $inlinecount.
function query.paging(args)
  local count = query.single(args, "$inlinecount")
  if count ~= nil and count ~= "allpages" and count ~= "none" then
    invalid(format("The value '%s' of the query parameter '$inlinecount' is invalid:"
      .. " use 'allpages' or 'none'.", count))
  end
  return { top = integer(args, "$top", 100, 1000), skip = integer(args, "$skip", 0, 4000),
    count = count == "allpages" }
end

--- Whether $expand asks for `allowed` (the only value the operation knows).
function query.expand(args, allowed)
  local value = query.single(args, "$expand")
  if value == nil then return false end
  if value ~= allowed then
    invalid(format("The value '%s' of the query parameter '$expand' is invalid:"
      .. " use '%s'.", value, allowed))
  end
  return true
end

--- field, descending from $orderby; `fields` is the set of sortable attributes.
-- bare_allowed: "field" alone means ascending (definitions only).
function query.orderby(args, fields, default_field, default_desc, bare_allowed)
  local value = query.single(args, "$orderby")
  if value == nil then return default_field, default_desc end
  local field, direction = match(value, "^(%S+) (%S+)$")
  if not field and bare_allowed then field, direction = value, "asc" end
  if not field or not fields[field] or (direction ~= "asc" and direction ~= "desc") then
    invalid(format("The value '%s' of the query parameter '$orderby' is invalid.", value))
  end
  return field, direction == "desc"
end

--- Checks the length of every value of a filter parameter.
function query.check_length(values, name, min, max)
  if not values then return end
  for _, value in ipairs(values) do
    if #value < min or #value > max then
      invalid(format("The value of the query parameter '%s' must have %s characters.", name,
        min == max and tostring(min) or format("%d to %d", min, max)))
    end
  end
end

--- The set of values of an enumeration parameter (values upper-cased), or nil.
function query.enum(args, name, allowed, comma_list)
  local values = query.values(args, name, comma_list)
  if not values then return nil end
  local set = {}
  for _, value in ipairs(values) do
    local v = upper(value)
    if not allowed[v] then
      invalid(format("The value '%s' of the query parameter '%s' is invalid.", value, name))
    end
    set[v] = true
  end
  return set
end

--- A set from a list (nil stays nil).
function query.set(values)
  if not values then return nil end
  local set = {}
  for _, value in ipairs(values) do set[value] = true end
  return set
end

--- The date filter of one attribute: any value of `at` (OR), or the range `from`..`upto`
-- (inclusive), e.g. "startedAt", "startedFrom", "startedUpTo". Returns a predicate on the
-- attribute's ISO text, or nil when none of the three is given.
function query.date_filter(args, at_name, from_name, upto_name)
  local function parse(value, name)
    local iso = util.parse_date(value)
    if not iso then
      invalid(format("The value '%s' of the query parameter '%s' is not a date in the format"
        .. " yyyy-MM-dd'T'HH:mm:ss.SSS'Z' or yyyyMMddHHmmss.SSS.", value, name))
    end
    return iso
  end
  local at_values = query.values(args, at_name)
  local from = query.single(args, from_name)
  local upto = query.single(args, upto_name)
  if not at_values and not from and not upto then return nil end
  local at = {}
  for _, value in ipairs(at_values or {}) do at[parse(value, at_name)] = true end
  from = from and parse(from, from_name)
  upto = upto and parse(upto, upto_name)
  local range = from or upto
  return function(value)
    if value == nil then return false end
    if at[value] then return true end
    return range and (not from or value >= from) and (not upto or value <= upto) or false
  end
end

--- Custom attribute filters: every attributes.<id> must match one of its values.
function query.attribute_filters(args)
  local filters
  for name in pairs(args) do
    local id = match(name, "^attributes%.(.+)$")
    if id then
      local values = query.set(query.values(args, name))
      if values then
        filters = filters or {}
        filters[#filters + 1] = { id = id, values = values }
      end
    end
  end
  return filters
end

function query.attributes_match(filters, attributes)
  for _, filter in ipairs(filters) do
    local found = false
    for _, attribute in ipairs(attributes) do
      if attribute.id == filter.id and filter.values[attribute.value] then
        found = true
        break
      end
    end
    if not found then return false end
  end
  return true
end

--- Sorts records by field (nil first when ascending), ties by creation order; key(value)
-- gives the value to compare when it is not the field itself.
function query.sort(records, field, descending, key)
  sort(records, function(a, b)
    local x, y = a[field], b[field]
    if key then x, y = key(x), key(y) end
    if x == y then return a.seq < b.seq end
    if x == nil then return not descending end
    if y == nil then return descending end
    if descending then return x > y end
    return x < y
  end)
end

--- The page of records and the headers (X-Total-Count with $inlinecount=allpages).
--- The records of `all` (kept in creation order) that match, ordered by field: creation
-- order is walked forwards or backwards instead of sorted; other fields are sorted (key as
-- in query.sort).
function query.select(all, matches, field, creation_field, descending, key)
  local records = {}
  local first, last, step = 1, #all, 1
  if field == creation_field and descending then first, last, step = #all, 1, -1 end
  for n = first, last, step do
    local record = all[n]
    if not record.removed and matches(record) then records[#records + 1] = record end
  end
  if field ~= creation_field then query.sort(records, field, descending, key) end
  if shared.config().tie_order == "shuffled" then query.shuffle_ties(records, field) end
  return records
end

--- Puts each run of records with equal field values in a random order (PUT
-- /_emulator/ties {order = "shuffled"}): SAP names no order among equal values, so a
-- client that pages through them must not rely on one staying the same between requests.
function query.shuffle_ties(records, field)
  local run_start = 1
  for n = 2, #records + 1 do
    local record = records[n]
    if record == nil or record[field] ~= records[run_start][field] then
      for k = n - 1, run_start + 1, -1 do
        local j = math.random(run_start, k)
        records[k], records[j] = records[j], records[k]
      end
      run_start = n
    end
  end
end

function query.page(records, paging, view)
  local out = {}
  local last = paging.skip + paging.top
  if last > #records then last = #records end
  for i = paging.skip + 1, last do out[#out + 1] = view(records[i]) end
  local headers = paging.count and { ["X-Total-Count"] = tostring(#records) } or nil
  return out, headers
end


return query
