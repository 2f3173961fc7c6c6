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
local operations = require "sapwf.operations"
local client = require "sapwf.client"
-- Each adds its methods to the client.
require "sapwf.definitions"
require "sapwf.instances"
require "sapwf.tasks"
require "sapwf.messages"
require "sapwf.jobs"
require "sapwf.paging"
require "sapwf.request"
require "sapwf.batch"

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local format, gsub, find, match, lower = string.format, string.gsub, string.find, string.match,
  string.lower
local tonumber = tonumber
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

-- Option name -> accepted Lua types. Credentials come from service_key or explicitly;
-- explicit ones win, so a key can be pointed at another api_url.
local OPTION_TYPES = {
  service_key = "string|table", instance = "string",
  api_url = "string", token_url = "string", client_id = "string", client_secret = "string",
  cert = "string", key = "string",
  timeout = "number", connect_timeout = "number", cafile = "string", verify = "boolean",
  proxy = "string", token_margin = "number", max_response = "number", user_agent = "string",
  retries = "number", retry_deadline = "number", backoff_base = "number",
  backoff_max = "number", log = "function", allow_http = "boolean",
}
-- The retry options' ranges (client.lua applies them): name -> max, integer?
local RETRY_RANGES = { retries = { 100, true }, retry_deadline = { 86400 },
                       backoff_base = { 3600 }, backoff_max = { 3600 } }
local CREDENTIALS = { "api_url", "token_url", "client_id", "client_secret", "cert", "key" }
local PASSED_ON = { "timeout", "connect_timeout", "cafile", "verify", "proxy", "token_margin",
                    "max_response", "user_agent" }

-- Raises (at the caller of new/from_env: level 3 from here) for unknown names and types.
local function check_options(opts, fname, level)
  level = level or 3
  if type(opts) ~= "table" then
    error(format("bad argument #1 to '%s' (table expected, got %s)", fname, type(opts)), level)
  end
  for name, value in pairs(opts) do
    local want = OPTION_TYPES[name]
    if not want then
      error(format("bad option '%s' (unknown option)", tostring(name)), level)
    end
    local got = type(value)
    if got ~= want and not (want == "string|table" and (got == "string" or got == "table")) then
      error(format("bad option '%s' (%s expected, got %s)", name,
                   want == "string|table" and "string or table" or want, got), level)
    end
    local range = RETRY_RANGES[name]
    if range and not (value >= 0 and value <= range[1] and (not range[2] or value % 1 == 0)) then
      error(format("bad option '%s' (%s from 0 to %d expected)", name,
                   range[2] and "integer" or "number", range[1]), level)
    end
  end
end

-- Whether an http:// URL stays on this machine: localhost, 127.0.0.0/8 or [::1] (the
-- emulator). Anything else, or anything unclear (user info before the host, a trailing dot,
-- an odd form of an address), counts as the network.
local function is_loopback(authority)
  if find(authority, "@", 1, true) then return false end
  local host = match(authority, "^(%[[^%]]*%])") or match(authority, "^([^:]*)")
  host = lower(host)
  if host == "localhost" or host == "[::1]" then return true end
  local a, b, c, d = match(host, "^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  return a ~= nil and tonumber(a) == 127 and tonumber(b) <= 255 and tonumber(c) <= 255
    and tonumber(d) <= 255
end

-- The host of an http:// URL that leaves this machine (a secret or token sent to it travels
-- in clear text), or nil for https:// and loopback.
local function cleartext_host(url)
  local scheme, authority = match(url, "^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then scheme, authority = "http", match(url, "^([^/?#]*)") end  -- libcurl's guess
  if lower(scheme) ~= "http" or is_loopback(authority) then return nil end
  -- user info may hold a password: name the host part only
  return (gsub(authority, "^.*@", ""))
end

-- What sapwf.core.new takes, for checked options: credentials from the key or given, or
-- nil, err (kind config).
local function core_options(opts)
  local core_opts = {}
  if opts.service_key ~= nil then
    local from_key, err = servicekey.resolve(opts.service_key)
    if not from_key then return nil, err end
    for k, v in pairs(from_key) do core_opts[k] = v end
  end
  for _, name in ipairs(CREDENTIALS) do
    if opts[name] ~= nil then core_opts[name] = opts[name] end
  end
  for _, name in ipairs({ "api_url", "token_url", "client_id" }) do
    if not core_opts[name] or core_opts[name] == "" then
      return nil, errors.config(format("no %s: give service_key, or api_url, token_url, "
        .. "client_id and client_secret", name))
    end
  end
  if not core_opts.client_secret and not (core_opts.cert and core_opts.key) then
    return nil, errors.config("no client_secret (nor cert and key for an x509 key)")
  end
  core_opts.api_url = gsub(core_opts.api_url, "/+$", "")
  if not opts.allow_http then
    for _, name in ipairs({ "token_url", "api_url" }) do
      local host = cleartext_host(core_opts[name])
      if host then
        return nil, errors.config(format("%s is http:// to %s: the client secret and tokens "
          .. "would cross the network in clear text; use https://, or pass allow_http = true "
          .. "(command line: --allow-http) if that network is yours", name, host))
      end
    end
  end
  for _, name in ipairs(PASSED_ON) do core_opts[name] = opts[name] end
  return core_opts
end

-- The client for checked options, or nil, err.
local function build(opts)
  local core_opts, err = core_options(opts)
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
  check_options(opts, "new")
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
  check_options(merged, "from_env")
  local credentials, instance = servicekey.from_vcap(getenv("VCAP_SERVICES"), name)
  if not credentials then return nil, instance end
  merged.service_key = credentials
  if merged.instance == nil then merged.instance = instance end
  return build(merged)
end

--- For sapwf.ngx, which makes its core clients in nginx's worker threads: opts as in new,
-- checked (raising at the caller of the function that calls this one), returned as
-- sapwf.core.new takes them, with the credentials; or nil and a `config` error.
-- @local
function sapwf._core_options(opts, fname)
  check_options(opts, fname, 4)
  return core_options(opts)
end

return sapwf
