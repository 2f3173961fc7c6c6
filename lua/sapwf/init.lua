--- sapwf: the SAP BTP Workflow service REST API from Lua.
--
-- HTTP, TLS and the token live in the C module sapwf.core (libcurl); this layer reads
-- service keys, speaks JSON (lua-cjson) and turns answers into values or error objects.
-- Server, network and data failures return nil, err (see `sapwf.errors`); wrong arguments
-- raise. Besides new and from_env the module has `sapwf.null`, `sapwf.array(t)` and
-- `sapwf.object(t)` (see `sapwf.json`), `sapwf.is_error(v)` and `sapwf.version`.
--
-- A sapwf.core built for another Lua fails in the dynamic linker, before any of its code
-- runs ("undefined symbol: lua_newuserdatauv" in LuaJIT for a Lua 5.4 build): say which
-- build this interpreter needs.
-- @usage
--   local sapwf = require "sapwf"
--   local wf = assert(sapwf.new{ service_key = "service-key.json" })
--   local inst = assert(wf:start("orderapproval", { product = "Camera", price = 100 }))
local core
do
  local ok, loaded = pcall(require, "sapwf.core")
  if not ok then
    local message = tostring(loaded)
    if message:find("undefined symbol: luaL?_") then
      local lua = jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
      message = message .. "\nsapwf.core was built for another Lua than this " .. (jit and
        jit.version or _VERSION) .. ": build it with `make LUA=" .. lua .. "` and put build/"
        .. lua .. "/ on package.cpath (lua_package_cpath in nginx)"
    end
    error(message, 0)
  end
  core = loaded
end
local json = require "sapwf.json"
local errors = require "sapwf.errors"
local servicekey = require "sapwf.servicekey"
local options = require "sapwf.options"
local operations = require "sapwf.operations"
local client = require "sapwf.client"     -- composes the methods of every area

local type, pairs, error = type, pairs, error
local format = string.format
local getenv = os.getenv

local sapwf = {
  _VERSION = core.version,
  version = core.version,
  null = json.null,
  array = json.array,
  object = json.object,
  is_error = errors.is_error,
  operations = operations,
}

-- The client for checked options, or nil, err.
local function build(opts)
  local core_opts, err = options.core(opts)
  if not core_opts then return nil, err end
  local c
  c, err = core.new(core_opts)
  if not c then return nil, errors.from_core(err) end
  return client.wrap(c, core_opts.api_url, opts.instance, opts)
end

--- A client. opts.service_key: a path, JSON text or table (a workflow service key or a
-- binding's credentials); or api_url, token_url, client_id, client_secret (or cert, key).
-- Also timeout, connect_timeout, cafile, verify, proxy, token_margin, max_response,
-- user_agent (see the C core), instance: the service instance name used in 403 hints, and
-- the retry policy: retries, retry_deadline, backoff_base, backoff_max, log (client.lua).
-- Returns the client, or nil and a `config` error (missing or unreadable key, missing field).
function sapwf.new(opts)
  options.check(opts, "new")
  return build(opts)
end

--- A client from the VCAP_SERVICES binding of the workflow service (label "workflow" or
-- "process-automation-service"); name picks one binding when there are several. opts as in
-- new (without service_key). 403 hints then name the service instance.
function sapwf.from_env(name, opts)
  if name ~= nil and type(name) ~= "string" then
    error(format("bad argument #1 to 'from_env' (string expected, got %s)", type(name)), 2)
  end
  if opts ~= nil then
    if type(opts) ~= "table" then
      error(format("bad argument #2 to 'from_env' (table expected, got %s)", type(opts)), 2)
    end
    if opts.service_key ~= nil then
      error("bad option 'service_key' (from_env reads VCAP_SERVICES)", 2)
    end
  end
  local merged = {}
  for k, v in pairs(opts or {}) do merged[k] = v end
  options.check(merged, "from_env")
  local credentials, instance = servicekey.from_vcap(getenv("VCAP_SERVICES"), name)
  if not credentials then return nil, instance end
  merged.service_key = credentials
  if merged.instance == nil then merged.instance = instance end
  return build(merged)
end

return sapwf
