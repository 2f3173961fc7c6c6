--- sapwf: the SAP BTP Workflow service REST API from Lua.
--
-- `sapwf.new` makes a client from a service key; the client's methods call the API with a
-- client-credentials token that sapwf fetches, caches and renews. Every call returns its
-- result and a `meta` table, or nil and an error object for a failure of the server, the
-- network or the data (see `sapwf.errors`). Arguments of the wrong type, unknown options or
-- query names, and calls on a closed client raise, naming the argument. Besides the
-- functions below the module has `sapwf.null` (JSON null, for contexts) and
-- `sapwf.version`.
-- @usage
--   local sapwf = require "sapwf"
--   local wf = assert(sapwf.new{ service_key = "service-key.json" })
--   local inst = assert(wf:start("orderapproval", { product = "Camera", price = 100 }))

-- HTTP, TLS and the token live in the C module sapwf.core (libcurl); this layer reads
-- service keys, speaks JSON (lua-cjson) and turns answers into values or error objects.
--
-- A sapwf.core built for another Lua fails in the dynamic linker, before any of its code
-- runs ("undefined symbol: lua_newuserdatauv" in LuaJIT for a Lua 5.4 build): say which
-- build this interpreter needs.
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
  operations = operations,
}

--- Marks a table as a JSON array, so that an empty one is sent as [] (not {}).
-- @function array
-- @tparam[opt] table t the table (default: a new one)
-- @treturn table t
sapwf.array = json.array

--- Marks a table as a JSON object, so that an empty one is sent as {} and integer keys
-- become member names.
-- @function object
-- @tparam[opt] table t the table (default: a new one)
-- @treturn table t
sapwf.object = json.object

--- Whether v is a sapwf error object (see `sapwf.errors`).
-- @function is_error
-- @param v any value
-- @treturn boolean
sapwf.is_error = errors.is_error

-- The client for checked options, or nil, err. Called as `local wf, err = build(opts)` by
-- new and from_env (not as a tail call: its raise names their caller, two levels up).
local function build(opts)
  local core_opts, err = options.core(opts)
  if not core_opts then return nil, err end
  -- A value core.new refuses raises (a header it cannot send, a timeout beyond its bound):
  -- at the caller of new, as every other option error, not at this line.
  local ok, c
  ok, c, err = pcall(core.new, core_opts)
  if not ok then error(c, 3) end
  if not c then return nil, errors.from_core(err) end
  return client.wrap(c, core_opts.api_url, opts.instance, opts)
end

--- A client for the workflow API. Makes no network call: the token is fetched by the first
-- call that needs one.
-- @tparam table opts the options (unknown names and wrong types raise):
--
-- - `service_key`: the service key, as a path, JSON text (`cf service-key` output too; a
--   string holding a line break or a NUL byte is text, never a path) or a table; a key of the Workflow service or of SAP Build Process Automation, or a
--   binding's credentials. Or instead:
-- - `api_url`, `token_url`, `client_id` and `client_secret` (or `cert` and `key`, PEM text,
--   not paths, for an x509 key); given with service_key, they win. They are read as the
--   key's fields: white space around the URLs and a trailing /v1 of api_url are dropped,
--   `\n` escapes in PEM text are newlines. An empty one raises
-- - `service`: "workflow" or "process-automation" (SAP Build Process Automation): which
--   service's words errors and hints use; by default told from the API URL (SPA's gateway
--   serves the API under /public/workflow/rest or /workflow/rest)
-- - `instance`: the service instance's name, used in the `cf update-service` of 403 hints
-- - `timeout` (default 60): seconds one request may take, its token fetch, a 401's renewal
--   and replay included; `connect_timeout` (default 10)
-- - `cafile`: a CA bundle; `verify` (default true): false turns TLS verification off, and
--   says so in tostring(wf); `proxy`: a proxy URL
-- - `allow_http` (default false): true allows http:// beyond this machine (the secret and
--   tokens then cross the network in clear text)
-- - `token_margin` (default 60): seconds before expiry a token is renewed (at most half
--   its lifetime)
-- - `max_response` (default 16 MiB): the largest answer taken
-- - `user_agent` (default "sapwf/" .. sapwf.version)
-- - `headers`: extra headers for every API call, `{ APIKey = key }` (an API gateway's key;
--   not sent to the token endpoint); a name that is no token or is sapwf's own, or a value
--   with control bytes, raises, naming the header and never its value
-- - the retry policy (README, "Retries"): `retries` (default 3), `retry_deadline` (default
--   30 s), `backoff_base` (default 0.5 s), `backoff_max` (default 8 s)
-- - `log`: a function that gets an event table for each retry and token refresh (never a
--   token, secret or body)
-- @treturn table the client, `wf`: its methods are on the pages of `sapwf.client`,
-- `sapwf.definitions`, `sapwf.instances`, `sapwf.tasks`, `sapwf.messages`, `sapwf.jobs`,
-- `sapwf.paging`, `sapwf.request` and `sapwf.batch`
-- @fails nil, err with kind "config": a key that is missing, unreadable or lacks a field, a
-- `cert` or `key` that is not PEM text, an http:// URL beyond this machine without allow_http
-- (see `sapwf.errors`)
function sapwf.new(opts)
  options.check(opts, "new")
  local wf, err = build(opts)
  return wf, err
end

--- A client from the VCAP_SERVICES environment variable of an app bound to the workflow
-- service: the binding labelled or tagged "workflow" or "process-automation-service" (a
-- user-provided service holding a key is found by its tag, or by name). 403 hints then name
-- the service instance.
-- @tparam[opt] string name the binding's name or instance name, when there are several; it
-- picks a binding of any label, a user-provided one too, whose credentials are a service
-- key
-- @tparam[opt] table opts as for `new`, without service_key
-- @treturn table the client
-- @fails nil, err with kind "config": no VCAP_SERVICES, no such binding, several and no
-- name, or a binding named whose credentials are no service key
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
  local wf, err = build(servicekey.bind(merged, credentials, instance))
  return wf, err
end

return sapwf
