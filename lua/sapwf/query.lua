-- Query strings for list calls: Lua names in, the spec's parameters out, escaped by libcurl.
--
-- build(op, q, fname, argn) -> "" or "?name=value&..."
--   Names: top, skip, orderby, inlinecount, expand (or $top ... as the spec spells them),
--   and the filters the spec lists for the operation (definitionId, status, ...), plus
--   attributes.<id> where the operation allows custom attributes. An unknown name raises
--   naming it, so a typo never silently widens a query.
--   Values: string, number (integers written as integers, however large), boolean;
--   inlinecount = true means "allpages"; an array repeats the parameter, which the service
--   combines with OR (a table with other keys raises: those values would be left out, and
--   the query widened). top and skip are integers in the API's ranges (LIMITS): anything
--   else raises, as the service would only answer 400. An empty string as a filter's value
--   (or one of its list's) raises too: the service takes it for no filter, so a script's
--   empty id would widen the list to every item, and what it then does to each.
-- Parameters come out sorted by name, so equal queries give equal URLs.
local core = require "sapwf.core"
local check_array = require "sapwf.args".check_array

local type, pairs, ipairs, error = type, pairs, ipairs, error
local format, find, sub, gsub = string.format, string.find, string.sub, string.gsub
local concat, sort = table.concat, table.sort
local escape = core.escape
local math_type = math.type

local query = {}

local ALIASES = { top = "$top", skip = "$skip", orderby = "$orderby",
                  inlinecount = "$inlinecount", expand = "$expand" }

-- The ranges SAP's API definition gives $top and $skip on every list call (paging.lua's
-- iterators take a page size of at least 1 within them).
local LIMITS = { ["$top"] = { "top", 0, 1000 }, ["$skip"] = { "skip", 0, 4000 } }

local function bad(fname, argn, fmt, ...)
  error(format("bad argument #%d to '%s' (%s)", argn, fname, format(fmt, ...)), 4)
end

-- Text of one value, or nil for a type that has none.
local function scalar(v)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "boolean" then return v and "true" or "false" end
  if tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return nil end
    if (math_type and math_type(v) == "integer") or (v % 1 == 0 and v > -2^63 and v < 2^63) then
      return format("%d", v)
    end
    -- An integer beyond 64 bits is still written in digits (a double's exact value):
    -- "1e+20" is not an integer to a server.
    if v % 1 == 0 then return format("%.0f", v) end
    return format("%.17g", v)
  end
  return nil
end

-- The spec's name for a Lua name, or nil when the operation does not take it.
local function spec_name(op, name)
  local alias = ALIASES[name]
  if alias then name = alias end
  if op.query_names[name] then return name end
  if op.attributes and find(name, "^attributes%.") and #name > 11 then return name end
  return nil
end

-- Why text, the value of filter `wire` of op (item i of its list, or nil), cannot go out,
-- or nil: an empty one, or one with a comma where SAP's definition forbids it (bad raises
-- it, at the method's caller).
function query.value_problem(op, wire, text, i)
  if op.query_no_comma[wire] and find(text, ",", 1, true) then
    return format("query '%s'%s cannot hold a comma (SAP's definition forbids it there)",
                  wire, i and format(" item %d", i) or "")
  end
  if text ~= "" or sub(wire, 1, 1) == "$" then return nil end
  if i then
    return format("query '%s' item %d is empty (the service would take it for no filter)",
                  wire, i)
  end
  return format("query '%s' is empty (the service would take it for no filter, and list "
                .. "every item)", wire)
end

--- The query string for op from the Lua table q (nil allowed).
-- fname and argn name the caller's argument in errors.
function query.build(op, q, fname, argn)
  if q == nil then return "" end
  if type(q) ~= "table" then
    bad(fname, argn, "table expected, got %s", type(q))
  end
  local names, by_name = {}, {}
  for name, value in pairs(q) do
    if type(name) ~= "string" then
      bad(fname, argn, "query names are strings, got %s", type(name))
    end
    local wire = spec_name(op, name)
    if not wire then
      local known = {}
      for k in pairs(op.query_names) do known[#known + 1] = (gsub(k, "^%$", "")) end
      sort(known)
      bad(fname, argn, "unknown query name '%s'; %s takes %s%s", name, fname,
          #known > 0 and concat(known, ", ") or "no query",
          op.attributes and ", attributes.<id>" or "")
    end
    if by_name[wire] ~= nil then
      bad(fname, argn, "query name '%s' given twice", wire)
    end
    names[#names + 1] = wire
    by_name[wire] = value
  end
  if #names == 0 then return "" end
  sort(names)
  local parts = {}
  for _, wire in ipairs(names) do
    local value = by_name[wire]
    if wire == "$inlinecount" and type(value) == "boolean" then
      value = value and "allpages" or "none"
    end
    -- The names are the spec's constants; only attribute ids need escaping.
    local key = wire
    local limit = LIMITS[wire]
    if limit and not (type(value) == "number" and value % 1 == 0 and value >= limit[2]
                      and value <= limit[3]) then
      bad(fname, argn, "%s must be an integer from %d to %d", limit[1], limit[2], limit[3])
    end
    if find(wire, "^attributes%.") then key = "attributes." .. escape(sub(wire, 12)) end
    if type(value) == "table" then
      if op.query_once[wire] then
        bad(fname, argn, "query '%s' is taken once: a single value expected, got a list", wire)
      end
      if check_array(fname, argn, value, "query '" .. wire .. "'", 3) == 0 then
        bad(fname, argn, "query '%s' is an empty list", wire)
      end
      for i, item in ipairs(value) do
        local text = scalar(item)
        if not text then
          bad(fname, argn, "query '%s' item %d: string, number or boolean expected, got %s",
              wire, i, type(item))
        end
        local problem = query.value_problem(op, wire, text, i)
        if problem then bad(fname, argn, "%s", problem) end
        parts[#parts + 1] = key .. "=" .. escape(text)
      end
    else
      local text = scalar(value)
      if not text then
        bad(fname, argn, "query '%s': string, number, boolean or list expected, got %s",
            wire, type(value))
      end
      local problem = query.value_problem(op, wire, text)
      if problem then bad(fname, argn, "%s", problem) end
      parts[#parts + 1] = key .. "=" .. escape(text)
    end
  end
  return "?" .. concat(parts, "&")
end

-- Plain names ($top, attributes.x) go out as written; anything else is escaped.
local function key_of(name)
  if find(name, "^[%w%$%._~%-]+$") then return name end
  return escape(name)
end

--- A free-form query (wf:request): any names, escaped; values as in build.
function query.free(q, fname, argn)
  if q == nil then return "" end
  if type(q) ~= "table" then bad(fname, argn, "query: table expected, got %s", type(q)) end
  local names = {}
  for name in pairs(q) do
    if type(name) ~= "string" then
      bad(fname, argn, "query names are strings, got %s", type(name))
    end
    names[#names + 1] = name
  end
  sort(names)
  local parts = {}
  for _, name in ipairs(names) do
    local value = q[name]
    local items = { value }
    if type(value) == "table" then
      -- as for the typed queries: an empty list would send no filter, widening the query
      if check_array(fname, argn, value, "query '" .. name .. "'", 3) == 0 then
        bad(fname, argn, "query '%s' is an empty list", name)
      end
      items = value
    end
    for i, item in ipairs(items) do
      local text = scalar(item)
      if not text then
        bad(fname, argn, "query '%s' item %d: string, number or boolean expected, got %s",
            name, i, type(item))
      end
      parts[#parts + 1] = key_of(name) .. "=" .. escape(text)
    end
  end
  if #parts == 0 then return "" end
  return "?" .. concat(parts, "&")
end

return query
