-- The emulator's methods that talk to its control API (/_emulator/, see server/control.lua),
-- through the curl command line: the code under test is never used to test itself.
local cjson = require "cjson.safe"
local shell = require "sapwf.emulator.shell"
local defaults = require "sapwf.emulator.defaults"

local type, pairs, ipairs, next, tostring, tonumber, error, setmetatable =
  type, pairs, ipairs, next, tostring, tonumber, error, setmetatable
local format, match, gsub = string.format, string.match, string.gsub
local concat = table.concat

local methods = {}

local function check_type(value, expected, n, name)
  if type(value) ~= expected then
    error(format("bad argument #%d to '%s' (%s expected, got %s)", n, name, expected,
      type(value)), 3)
  end
end

-- The set of a method's options and their names for its "bad option" message, from one
-- list: an option cannot be accepted and left out of the message.
local function options_of(list)
  local set = {}
  for _, name in ipairs(list) do set[name] = true end
  return set, concat(list, ", ")
end

local body_seq = 0

--- Calls /_emulator/<path>; returns the decoded JSON answer, or nil and a message.
function methods:control(method, path, body)
  check_type(method, "string", 1, "control")
  check_type(path, "string", 2, "control")
  if self.stopped then return nil, "the emulator is stopped" end
  path = gsub(path, "^/_emulator", "")
  if path:sub(1, 1) ~= "/" then path = "/" .. path end
  local command = { "curl -sS --max-time 60 -X", shell.quote(method), "-w '\\n%{http_code}'" }
  local body_file
  if body ~= nil then
    local text, err = cjson.encode(body)
    if not text then
      error("bad argument #3 to 'control' (cannot encode: " .. tostring(err) .. ")", 2)
    end
    body_seq = body_seq + 1
    body_file = format("%s/tmp/control-%d.json", self.dir, body_seq)
    shell.write_file(body_file, text)
    command[#command + 1] = "-H 'Content-Type: application/json' --data-binary @"
      .. shell.quote(body_file)
  end
  command[#command + 1] = shell.quote(self.url .. "/_emulator" .. path)
  local output = shell.capture(concat(command, " ") .. " 2>&1")
  if body_file then os.remove(body_file) end
  local text, status = match(output, "^(.*)\n(%d%d%d)$")
  status = tonumber(status)
  if not status or status == 0 then
    return nil, "control " .. method .. " " .. path .. " failed: " .. output
  end
  local value = cjson.decode(text)
  if status >= 300 then
    local message = type(value) == "table" and value.error or text
    return nil, format("control %s %s: %d %s", method, path, status, tostring(message))
  end
  if value == nil then return nil, "control " .. method .. " " .. path .. ": not JSON" end
  return value
end

-- The conveniences below raise when the emulator does not answer: they are test set-up.
local function checked(value, err)
  if value == nil then error(err, 3) end
  return value
end

function methods:reset() return checked(self:control("POST", "/reset")) end
function methods:stats() return checked(self:control("GET", "/stats")) end
function methods:instances() return checked(self:control("GET", "/instances")) end
function methods:expire_tokens() return checked(self:control("POST", "/tokens/expire")) end
function methods:clear_faults() return checked(self:control("DELETE", "/faults")) end
-- Reading the clients map as a list (ipairs, #, [1]) finds nothing, and a loop over it then
-- silently does nothing: a numeric index raises instead (Lua 5.1's ipairs reads raw and
-- cannot be caught; set_client's check below catches what such a loop leaves behind).
local CLIENTS_MT = {
  __index = function(_, key)
    if type(key) == "number" then
      error("emu:clients() is a map from client id to client, not a list: iterate it with "
        .. "pairs", 2)
    end
  end,
}

--- The clients: a map from client id to { name, clientid, clientsecret, authorities,
-- expires_in, certificate_only }. Iterate it with pairs (it is no list).
function methods:clients()
  return setmetatable(checked(self:control("GET", "/clients")).clients, CLIENTS_MT)
end

--- Pass as set_client's authorities to take every authority away: an empty table is refused,
-- as it is what a loop that found nothing leaves behind.
methods.NONE = setmetatable({}, { __tostring = function() return "emu.NONE" end })

local CLIENT_OPTIONS, CLIENT_OPTION_NAMES = options_of({ "secret", "authorities", "expires_in",
  "name", "scope", "query_filter" })

-- Application scope names: "own" is what the API shows for the caller's own scope, so it
-- is no name; "shared" is for definitions only (a client's scope is never shared).
local function check_scope(value, what, shared_allowed)
  if type(value) ~= "string" or value == "" then
    error(format("bad %s (a scope name expected, got %s)", what,
      value == "" and "an empty string" or type(value)), 3)
  end
  if value == "own" then
    error(format('bad %s ("own" is what the API shows for the caller\'s own scope, not a '
      .. 'scope name)', what), 3)
  end
  if value == "shared" and not shared_allowed then
    error(format('bad %s ("shared" is for definitions: mark one shared with '
      .. 'emu:set_definition_scope(id, "shared"))', what), 3)
  end
end

local function check_authorities(list)
  if list == methods.NONE then return {} end
  if type(list) ~= "table" then
    error(format("bad option 'authorities' to 'set_client' (list of names expected, got %s)",
      type(list)), 3)
  end
  if next(list) == nil then
    error("bad option 'authorities' to 'set_client' (an empty list: to take every authority "
      .. "away pass emu.NONE; a list built with ipairs over emu:clients() is empty, as that "
      .. "is a map)", 3)
  end
  for key, name in pairs(list) do
    if type(key) ~= "number" or type(name) ~= "string" then
      error("bad option 'authorities' to 'set_client' (a list of authority names expected)", 3)
    end
  end
  return list
end

--- Adds a fault: { fault =, method =, path =, times =, delay =, status =, retry_after =,
-- size = } (see server/faults.lua). Returns its id.
function methods:fault(spec)
  check_type(spec, "table", 1, "fault")
  return checked(self:control("POST", "/faults", spec)).id
end

local SEED_OPTIONS, SEED_OPTION_NAMES = options_of({ "count", "definition", "started_at",
  "status", "context" })

--- Adds count instances at once, without an HTTP start each: { count =, definition =
-- ("simple"), started_at = one date-time for all, a list of count, or function(i) giving
-- the i-th, status = ("RUNNING"), context = ({}) } (see server/seed.lua). Returns
-- { seeded = n, ids = { ... } }, ids in the order of started_at.
function methods:seed_instances(spec)
  check_type(spec, "table", 1, "seed_instances")
  local body = {}
  for key, value in pairs(spec) do
    if not SEED_OPTIONS[key] then
      error(format("bad option '%s' to 'seed_instances' (%s)", tostring(key), SEED_OPTION_NAMES),
        2)
    end
    body[key] = value
  end
  if type(spec.started_at) == "function" then
    check_type(spec.count, "number", 1, "seed_instances")
    local list = {}
    for i = 1, spec.count do list[i] = spec.started_at(i) end
    body.started_at = list
  end
  return checked(self:control("POST", "/instances/seed", body))
end

--- Puts an API gateway's key in front of the API: every API request without the header
-- `name` set to `value` answers 401 (as API Management does). emu:api_key(nil) removes it.
function methods:api_key(name, value)
  if name == nil then return checked(self:control("DELETE", "/api-key")) end
  check_type(name, "string", 1, "api_key")
  check_type(value, "string", 2, "api_key")
  return checked(self:control("PUT", "/api-key", { header = name, value = value }))
end

--- What GET /v1/export answers from now on: n numbered lines of 9 bytes ("00000001\n",
-- "00000002\n", ...), for tests of large answers; 0: the empty zip (as after reset).
function methods:export_lines(n)
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
    error(format("bad argument #1 to 'export_lines' (integer from 0 expected, got %s)",
      type(n) == "number" and tostring(n) or type(n)), 2)
  end
  return checked(self:control("PUT", "/export", { lines = n }))
end

--- The order of list entries that sort equal (startedAt, createdAt, ...): "creation" (the
-- default, as after reset) or "shuffled", a new random one for each request, as a service
-- that names no order among them may give.
function methods:set_tie_order(order)
  if not defaults.tie_orders[order] then
    error(format("bad argument #1 to 'set_tie_order' (\"creation\" or \"shuffled\" expected, "
      .. "got %s)", type(order) == "string" and "'" .. order .. "'" or type(order)), 2)
  end
  return checked(self:control("PUT", "/ties", { order = order }))
end

--- Sets the tenant's limits, all at once: { service_time =, jitter = (seconds), rate =
-- (requests a second over the whole tenant), burst = (tokens; default rate), count_key =
-- (a context field naming a start's item), keep_instances = (true), retry_after = (true:
-- a 429 says when to come back; false: no Retry-After, as SAP's API definition shows) } (see
-- server/limits.lua). set_limits{} removes them all; reset() keeps them. Returns the limits
-- in force; an unknown field or a bad value raises with the control API's message.
function methods:set_limits(spec)
  check_type(spec, "table", 1, "set_limits")
  return checked(self:control("PUT", "/limits", spec))
end

--- The limits in force (as set_limits returns them).
function methods:limits() return checked(self:control("GET", "/limits")) end

--- Creates or changes a client: { secret =, authorities = {...}, expires_in =, name =,
-- scope = (its application scope), query_filter = "own" | "shared" (its
-- defaultCollectionQueryFilter) }.
-- Returns the client as GET /_emulator/clients shows it.
function methods:set_client(clientid, opts)
  check_type(clientid, "string", 1, "set_client")
  if opts ~= nil then check_type(opts, "table", 2, "set_client") end
  local spec = { clientid = clientid }
  for key, value in pairs(opts or {}) do
    if not CLIENT_OPTIONS[key] then
      error(format("bad option '%s' to 'set_client' (%s)", tostring(key), CLIENT_OPTION_NAMES),
        2)
    end
    spec[key] = value
  end
  if spec.authorities ~= nil then spec.authorities = check_authorities(spec.authorities) end
  if spec.scope ~= nil then check_scope(spec.scope, "option 'scope' to 'set_client'") end
  if spec.query_filter ~= nil and spec.query_filter ~= "own"
      and spec.query_filter ~= "shared" then
    error(format('bad option \'query_filter\' to \'set_client\' ("own" or "shared" expected, '
      .. 'got %s)', type(spec.query_filter) == "string" and '"' .. spec.query_filter .. '"'
      or type(spec.query_filter)), 2)
  end
  return checked(self:control("PUT", "/clients", spec))
end

--- Puts a definition into an application scope: "shared" (listed for clients whose
-- query_filter is "shared") or a scope name (the clients with that scope see it as "own",
-- others by id only). Its instances and tasks follow it. Raises for an unknown definition.
function methods:set_definition_scope(definition_id, scope)
  check_type(definition_id, "string", 1, "set_definition_scope")
  check_type(scope, "string", 2, "set_definition_scope")
  check_scope(scope, "argument #2 to 'set_definition_scope'", true)
  local escaped = gsub(definition_id, "[^%w%-%._~]", function(c)
    return format("%%%02X", c:byte())
  end)
  return checked(self:control("PUT", "/definitions/" .. escaped .. "/scope", { scope = scope }))
end

--- The application scopes: { default_scope, definitions = {[id] = scope},
-- clients = {[clientid] = {scope, query_filter}} }.
function methods:scopes() return checked(self:control("GET", "/scopes")) end

--- The [error], [crit], [alert] and [emerg] lines of nginx's error log so far (a list).
function methods:log_errors()
  local lines = {}
  for line in (shell.read_file(self.dir .. "/logs/error.log") or ""):gmatch("[^\n]+") do
    if line:find("%[error%]") or line:find("%[crit%]") or line:find("%[alert%]")
        or line:find("%[emerg%]") then
      lines[#lines + 1] = line
    end
  end
  return lines
end

return methods
