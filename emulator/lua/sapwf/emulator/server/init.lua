-- The emulator inside nginx: XSUAA's token endpoint and the SAP Workflow API v1 (Cloud
-- Foundry), plus a control API for tests. nginx.conf (written by the launcher) calls
--   init(options)       in init_by_lua (master): clients and their secrets, signing key
--   init_worker()       in init_worker_by_lua
--   handle(listener)    in content_by_lua, listener "http", "https" or "mtls"
--   log()               in log_by_lua, every request
--
-- Every answer has X-Vcap-Request-Id; JSON answers are application/json;charset=UTF-8.
local defaults = require "sapwf.emulator.defaults"
local shared = require "sapwf.emulator.server.shared"
local util = require "sapwf.emulator.server.util"
local respond = require "sapwf.emulator.server.respond"
local store = require "sapwf.emulator.server.store"
local workflows = require "sapwf.emulator.server.workflows"
local router = require "sapwf.emulator.server.router"
local dispatch = require "sapwf.emulator.server.dispatch"
local oauth = require "sapwf.emulator.server.oauth"
local faults = require "sapwf.emulator.server.faults"
local control = require "sapwf.emulator.server.control"
local spa = require "sapwf.emulator.server.spa"
local limits = require "sapwf.emulator.server.limits"

local ngx = ngx
local find, sub, byte, format = string.find, string.sub, string.byte, string.format
local ipairs = ipairs

local server = {}

local BASE = "/workflow-service/rest"

local function random_bytes(n)
  local file = assert(io.open("/dev/urandom", "rb"))
  local bytes = file:read(n)
  file:close()
  return bytes
end

local function hex(bytes)
  return (bytes:gsub(".", function(c) return format("%02x", byte(c)) end))
end

-- A secret shaped like the ones in SAP service keys: "<uuid>$<base64>=".
local function new_secret()
  local h = hex(random_bytes(16))
  return format("%s-%s-%s-%s-%s$%s", sub(h, 1, 8), sub(h, 9, 12), sub(h, 13, 16),
    sub(h, 17, 20), sub(h, 21, 32), ngx.encode_base64(random_bytes(32)))
end

--- init_by_lua: the configuration all workers share. options.max_instances: see store.lua;
-- options.spa: an SAP Build Process Automation tenant (spa.lua).
function server.init(options)
  store.max_instances = options and options.max_instances or 0
  local spa_mode = options and options.spa == true
  local clients = {}
  for _, client in ipairs(defaults.clients) do
    clients[client.clientid] = {
      name = client.name, clientid = client.clientid,
      secret = not client.certificate_only and new_secret() or nil,
      authorities = client.authorities, expires_in = defaults.expires_in,
      scope = defaults.application_scope, query_filter = defaults.query_filter,
    }
  end
  shared.init({
    signing_key = hex(random_bytes(32)),
    token_gen = 1, data_gen = 1, fault_seq = 0, faults = {},
    zoneid = defaults.zoneid,
    identityzone = spa_mode and defaults.spa.subdomain or defaults.identityzone,
    clients = clients, default_clients = clients, definition_scopes = {}, spa = spa_mode,
  })
end

local data_gen

-- A reset (a new data generation) puts the seed data back in each worker.
shared.watch(function(config)
  if config.data_gen ~= data_gen then
    data_gen = config.data_gen
    store.clear()
    workflows.seed(store, config.spa)
  end
end)

--- init_worker_by_lua: a random seed per worker (ids must differ between workers).
function server.init_worker()
  local b1, b2, b3, b4 = byte(random_bytes(4), 1, 4)
  math.randomseed(((b1 * 256 + b2) * 256 + b3) * 256 + b4 + ngx.worker.pid())
  util.seed_ids()
  shared.config()
end

local function raw_path()
  local uri = ngx.var.request_uri
  local query_at = find(uri, "?", 1, true)
  if query_at then return sub(uri, 1, query_at - 1) end
  return uri
end

local function not_found()
  respond.send(404, '{"error":"not_found","error_description":"No such resource"}')
end

local function token_request(config, listener)
  shared.count("token_requests")
  -- A gateway's key belongs to the API: one reaching the token endpoint is a leak to see.
  local key = config.api_key
  if key and ngx.req.get_headers()[key.header] ~= nil then
    shared.count("token_requests_with_api_key")
  end
  local fault = faults.match(config, ngx.req.get_method(), "/oauth/token")
  if fault and faults.before(fault, "token") then return end
  local status, body, headers = oauth.token(config, listener)
  if fault and faults.after(fault, "token", status, body, headers) then return end
  shared.count_in("token_responses_by_status", status)
  respond.send(status, body, headers)
end

local function api_request(config, path)
  shared.count("api_requests")
  local method = ngx.req.get_method()
  local route, params, allowed = router.match(method, path)
  shared.count_in("api_requests_by_operation", route and route.key or "unknown")
  limits.enter()
  -- the tenant's limits (limits.lua): a refusal is decided on arrival and sent at once
  local current, arrived = config.limits, nil
  if current then
    arrived = limits.admit(current)
    if not arrived then return end
  end
  local fault = faults.match(config, method, path, ngx.var.args)
  if fault and faults.before(fault, "api", route) then return end
  local status, body, headers = respond.encode(dispatch.api(config, route, params, allowed))
  if current then limits.serve(current, arrived) end
  if fault and faults.after(fault, "api", status, body, headers) then return end
  shared.count_in("api_responses_by_status", status)
  respond.send(status, body, headers)
end

--- content_by_lua of every location.
function server.handle(listener)
  local config = shared.config()
  ngx.header["X-Vcap-Request-Id"] = util.id()
  local path = raw_path()
  local control_path = sub(path, 1, 11) == "/_emulator/"
  -- the control API's own requests are no client's: they would count themselves
  if listener ~= "mtls" and not control_path then limits.arrived(listener) end
  if path == "/oauth/token" then return token_request(config, listener) end
  if listener == "mtls" then return not_found() end   -- that listener only issues tokens
  if config.spa then
    for _, base in ipairs(spa.BASES) do
      if sub(path, 1, #base + 1) == base .. "/" then
        return api_request(config, sub(path, #base + 1))
      end
    end
  elseif sub(path, 1, #BASE + 1) == BASE .. "/" then
    return api_request(config, sub(path, #BASE + 1))
  end
  if control_path then
    return respond.send(control.handle(ngx.req.get_method(), sub(path, 12)))
  end
  return not_found()
end

--- log_by_lua of every request (it runs however a request ended, a dropped one too).
function server.log()
  limits.leave()
end

return server
