-- The control API under /_emulator/ (no authentication; tests and the launcher use it).
-- ROUTES below lists every operation; GET /_emulator/ answers that list.
local json = require "sapwf.emulator.server.json"
local shared = require "sapwf.emulator.server.shared"
local faults = require "sapwf.emulator.server.faults"
local views = require "sapwf.emulator.server.views"
local store = require "sapwf.emulator.server.store"
local seed = require "sapwf.emulator.server.seed"
local limits = require "sapwf.emulator.server.limits"
local defaults = require "sapwf.emulator.defaults"

local ngx = ngx
local type, pairs, ipairs, next, tostring, floor = type, pairs, ipairs, next, tostring,
  math.floor
local match, find, gsub = string.match, string.find, string.gsub

local control = {}

local KNOWN_AUTHORITIES = {}
for _, name in ipairs(defaults.authorities) do KNOWN_AUTHORITIES[name] = true end

local function answer(status, value)
  return status, json.encode(value)
end

local function failure(status, message)
  return answer(status, { error = message })
end

local function body()
  ngx.req.read_body()
  local text = ngx.req.get_body_data()
  if not text or text == "" then return {} end
  return json.decode(text)
end

local function client_view(client)
  return { name = client.name, clientid = client.clientid, clientsecret = client.secret,
    authorities = json.list(client.authorities), expires_in = client.expires_in,
    certificate_only = client.secret == nil,
    scope = client.scope or defaults.application_scope,
    query_filter = client.query_filter or defaults.query_filter }
end

local function clients()
  local config = shared.config()
  local out = {}
  for id, client in pairs(config.clients) do out[id] = client_view(client) end
  return answer(200, { clients = out, service_xsappname = defaults.service_xsappname,
    identityzone = config.identityzone, zoneid = config.zoneid, spa = config.spa == true })
end

-- The checked authorities of a PUT, with any "<xsappname>." prefix taken off.
local function authority_list(value)
  if type(value) ~= "table" or json.is_object(value) and next(value) ~= nil then
    return nil, "authorities must be a list of names"
  end
  local out = {}
  for i, name in ipairs(value) do
    name = type(name) == "string" and gsub(name, "^.*%.", "") or name
    if not KNOWN_AUTHORITIES[name] then
      return nil, "unknown authority '" .. tostring(value[i]) .. "'"
    end
    out[#out + 1] = name
  end
  return out
end

-- Why a name cannot be an application scope (nil when it can). "own" is what the API shows
-- for the caller's own scope, never a name; "shared" is the scope of shared definitions, a
-- client cannot have it (shared_allowed: a definition can).
local function scope_name_problem(name, shared_allowed)
  if type(name) ~= "string" or name == "" then return "must be a non-empty string" end
  if name == "own" then
    return 'cannot be "own": the API shows that for the caller\'s own scope'
  end
  if name == "shared" and not shared_allowed then
    return 'cannot be "shared" for a client: mark definitions shared instead'
  end
  return nil
end

local function put_client(escaped_id)
  local spec = body()
  if not json.is_object(spec) then return failure(400, "the client must be a JSON object") end
  local id = escaped_id and ngx.unescape_uri(escaped_id) or spec.clientid
  if type(id) ~= "string" or id == "" then return failure(400, "no clientid") end
  local secret = spec.secret
  if secret ~= nil and secret ~= json.null and type(secret) ~= "string" then
    return failure(400, "secret must be a string or null")
  end
  local authorities, err
  if spec.authorities ~= nil then
    authorities, err = authority_list(spec.authorities)
    if not authorities then return failure(400, err) end
  end
  local expires_in = spec.expires_in
  if expires_in ~= nil and (type(expires_in) ~= "number" or expires_in < 0
      or expires_in ~= floor(expires_in)) then
    return failure(400, "expires_in must be a whole number of seconds")
  end
  if spec.name ~= nil and type(spec.name) ~= "string" then
    return failure(400, "name must be a string")
  end
  local scope_problem = spec.scope ~= nil and scope_name_problem(spec.scope, false)
  if scope_problem then return failure(400, "scope " .. scope_problem) end
  local filter = spec.query_filter
  if filter ~= nil and filter ~= "own" and filter ~= "shared" then
    return failure(400, 'query_filter must be "own" or "shared"')
  end
  local client = shared.update(function(config)
    local c = config.clients[id] or { clientid = id, name = id, authorities = {},
      expires_in = defaults.expires_in, scope = defaults.application_scope,
      query_filter = defaults.query_filter }
    if spec.name then c.name = spec.name end
    if secret == json.null then c.secret = nil elseif secret then c.secret = secret end
    if authorities then c.authorities = authorities end
    if expires_in then c.expires_in = expires_in end
    if spec.scope then c.scope = spec.scope end
    if filter then c.query_filter = filter end
    config.clients[id] = c
    return c
  end)
  return answer(200, client_view(client))
end

local function reset()
  shared.update(function(config)
    config.clients = config.default_clients
    config.api_key = nil
    config.export_lines = nil
    config.faults = {}
    config.definition_scopes = {}
    config.tie_order = nil
    config.data_gen = config.data_gen + 1
  end)
  shared.reset_counters()
  limits.reset()
  return answer(200, { reset = true })
end

local function add_fault()
  local spec = body()
  local fault, err
  shared.update(function(config)
    config.fault_seq = config.fault_seq + 1
    fault, err = faults.check(spec, config.fault_seq)
    if fault then config.faults[#config.faults + 1] = fault end
  end)
  if not fault then return failure(400, err) end
  return answer(200, { id = fault.id, fault = fault })
end

local function list_faults()
  local out = {}
  for i, fault in ipairs(shared.config().faults) do
    local item = {}
    for k, v in pairs(fault) do item[k] = v end
    item.uses = shared.fault_uses(fault.id)
    out[i] = item
  end
  return answer(200, { faults = json.list(out) })
end

local function clear_faults()
  local removed = shared.update(function(config)
    local n = #config.faults
    config.faults = {}
    return n
  end)
  return answer(200, { removed = removed })
end

local function instances()
  local out = {}
  for _, instance in ipairs(store.instances) do
    if not instance.removed then
      local view = views.instance(instance, true)
      view.context = instance.context
      view.attachments = instance.attachments
      view.tasks = {}
      for i, task in ipairs(instance.tasks or {}) do view.tasks[i] = task.id end
      view.tasks = json.list(view.tasks)
      out[#out + 1] = view
    end
  end
  return 200, json.encode_exact(json.list(out))
end

local function expire_tokens()
  local generation = shared.update(function(config)
    config.token_gen = config.token_gen + 1
    return config.token_gen
  end)
  return answer(200, { token_generation = generation })
end

--- Handles /_emulator/<path>: status, body text.
local function stats()
  local result = limits.stats(shared.stats())
  -- of the worker that answers: how much the workflow data weighs
  result.worker_lua_kb = math.floor(collectgarbage("count"))
  result.worker_instances = store.live_instances()
  return answer(200, result)
end

-- An API gateway's key in front of the API (an API Management proxy, an SPA environment's
-- API key): {header, value} makes every API request without that header value answer 401;
-- DELETE takes it away.
local function put_api_key()
  local spec = body()
  if not json.is_object(spec) or type(spec.header) ~= "string" or spec.header == ""
      or type(spec.value) ~= "string" then
    return failure(400, "the key must be {header = name, value = text}")
  end
  shared.update(function(config)
    config.api_key = { header = string.lower(spec.header), value = spec.value }
  end)
  return answer(200, { header = spec.header })
end

-- What GET /v1/export answers: {lines = n} numbered lines of 9 bytes, for tests of large
-- answers; {lines = 0} (or reset) the empty zip again.
local function put_export()
  local spec = body()
  local n = json.is_object(spec) and spec.lines
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 or n > 10000000 then
    return failure(400, "the export must be {lines = an integer from 0 to 10000000}")
  end
  shared.update(function(config) config.export_lines = n > 0 and n or nil end)
  return answer(200, { lines = n })
end

-- The tenant's limits (limits.lua): PUT replaces them all ({} removes them), the bucket
-- starts full. A reset keeps them: they describe the tenant, not its data.
local function put_limits()
  local current, err = limits.check(body())
  if err then return failure(400, err) end
  shared.update(function(config) config.limits = current end)
  limits.refill()
  return answer(200, limits.view(current))
end

-- The order of list entries with equal sort values: "creation" (the default) or
-- "shuffled", anew for each request (query.shuffle_ties).
local function put_ties()
  local spec = body()
  if type(spec) ~= "table" or not defaults.tie_orders[spec.order] then
    return failure(400, "expected {order = \"creation\" or \"shuffled\"}")
  end
  shared.update(function(config) config.tie_order = spec.order end)
  return answer(200, { order = spec.order })
end

local function get_limits()
  return answer(200, limits.view(shared.config().limits))
end

local function delete_api_key()
  shared.update(function(config) config.api_key = nil end)
  return answer(200, { api_key = false })
end

-- The application scope of a definition: {scope = "shared" | a scope name}. Instances and
-- tasks follow their definition's scope; the default scope is every built-in client's.
local function put_definition_scope(escaped_id)
  local spec = body()
  if not json.is_object(spec) then return failure(400, "the body must be {scope = name}") end
  local id = ngx.unescape_uri(escaped_id)
  if not store.definitions[id] then
    return failure(404, "unknown definition '" .. id .. "'")
  end
  local problem = scope_name_problem(spec.scope, true)
  if problem then return failure(400, "scope " .. problem) end
  shared.update(function(config)
    config.definition_scopes[id] = spec.scope ~= defaults.application_scope and spec.scope or nil
  end)
  return answer(200, { definitionId = id, scope = spec.scope })
end

local function scopes()
  local config = shared.config()
  local definitions = {}
  for id in pairs(store.definitions) do
    definitions[id] = config.definition_scopes[id] or defaults.application_scope
  end
  local out = {}
  for id, client in pairs(config.clients) do
    out[id] = { scope = client.scope or defaults.application_scope,
      query_filter = client.query_filter or defaults.query_filter }
  end
  return answer(200, { default_scope = defaults.application_scope, definitions = definitions,
    clients = out })
end

-- Every control operation: what routes it, and what GET /_emulator/ lists (one table, so the
-- index cannot miss one). path: the literal path after /_emulator/, or a Lua pattern whose
-- capture is passed to the handler (pattern = true).
local ROUTES = {
  { "GET", "", "this index of the control operations" },
  { "POST", "reset", "seed data back, clients back, faults and counters cleared", reset },
  { "GET", "clients", "the clients: {clients = {[clientid] = {name, clientid, clientsecret, "
      .. "authorities, expires_in, certificate_only}}}", clients },
  { "PUT", "clients", "create or change a client: {clientid, secret, authorities (a list; "
      .. "[] for none), expires_in, name, scope (its application scope), query_filter "
      .. "(\"own\" or \"shared\": its defaultCollectionQueryFilter)}", function() return put_client(nil) end },
  { "PUT", "clients/<id>", "the same for the client whose URL-escaped id is in the path",
    put_client, pattern = "^clients/([^/]+)$" },
  { "GET", "stats", "the counters (requests, tokens, instances started, faults applied, "
      .. "answers by status, by operation and by client)", stats },
  { "GET", "instances", "every instance of the worker that answers, any status, with context and "
      .. "attachments",
    instances },
  { "POST", "instances/seed", "many instances at once, as started at the given times: "
      .. "{count, definition, started_at (one date-time or a list of count), status, context} "
      .. "-> {seeded, ids}", seed.handle },
  { "POST", "tokens/expire", "every token issued so far answers 401 from now on",
    expire_tokens },
  { "POST", "faults", "add a fault: {fault, method, path, query, times, delay, status, "
      .. "retry_after, size, body, location} -> {id, fault}", add_fault },
  { "GET", "faults", "the faults with their uses", list_faults },
  { "PUT", "api-key", "an API gateway's key: {header, value}; API requests without it answer "
      .. "401", put_api_key },
  { "DELETE", "api-key", "no API key needed any more", delete_api_key },
  { "PUT", "export", "what GET /v1/export answers: {lines = n} numbered lines of 9 bytes "
      .. "(\"00000001\\n\", ...); 0: the empty zip", put_export },
  { "DELETE", "faults", "remove every fault", clear_faults },
  { "PUT", "limits", "the tenant's limits, all at once ({} removes them; a reset keeps "
      .. "them): {service_time, jitter (seconds), rate (requests a second), burst (tokens), "
      .. "count_key (a context field), keep_instances, retry_after (a 429's header)} -> the "
      .. "limits in force", put_limits },
  { "GET", "limits", "the limits in force", get_limits },
  { "PUT", "ties", "the order of list entries that sort equal (startedAt, createdAt, ...): "
      .. "{order = \"creation\" (the default; a reset puts it back) or \"shuffled\" (anew "
      .. "for each request: SAP names no order)}", put_ties },
  { "PUT", "definitions/<id>/scope", "the application scope of the definition whose "
      .. "URL-escaped id is in the path: {scope = \"shared\" or a scope name}; its instances "
      .. "and tasks follow it", put_definition_scope, pattern = "^definitions/([^/]+)/scope$" },
  { "GET", "scopes", "application scopes: {default_scope, definitions = {[id] = scope}, "
      .. "clients = {[clientid] = {scope, query_filter}}}", scopes },
}

local function index()
  local list = {}
  for i, route in ipairs(ROUTES) do
    list[i] = { method = route[1], path = "/_emulator/" .. route[2], description = route[3] }
  end
  return answer(200, { operations = json.list(list) })
end
ROUTES[1][4] = index

function control.handle(method, path)
  for _, route in ipairs(ROUTES) do
    if route[1] == method then
      if route.pattern then
        local capture = match(path, route.pattern)
        if capture then return route[4](capture) end
      elseif route[2] == path then
        return route[4]()
      end
    end
  end
  return failure(404, "no control operation " .. method .. " /_emulator/" .. path
    .. " (GET /_emulator/ lists them)")
end

return control
