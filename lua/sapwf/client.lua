-- The sapwf client object: lifecycle (close, __gc, __close, __tostring), argument checks
-- shared by the API methods, and `call`, which sends one operation and judges the answer.
--
-- The API methods live in definitions.lua, instances.lua, tasks.lua, messages.lua,
-- paging.lua and request.lua; each adds its methods to `client.methods`.
--
-- Argument errors raise with error(msg, 3) from the checks below, which every public method
-- calls directly, so the message points at the caller's line.
local core = require "sapwf.core"
local json = require "sapwf.json"
local errors = require "sapwf.errors"

local type, tostring, tonumber, getmetatable, setmetatable, rawget, error =
  type, tostring, tonumber, getmetatable, setmetatable, rawget, error
local tointeger = math.tointeger
local pairs, ipairs = pairs, ipairs
local format, match = string.format, string.match
local concat, sort = table.concat, table.sort
local escape, json_decode = core.escape, json.decode

local client = {}

local methods = {}
client.methods = methods

local mt = { __index = methods, __name = "sapwf client" }
client.mt = mt

--- Wraps a `sapwf.core` client. api_url is for tostring; instance names the service
-- instance in 403 hints (nil: "<instance>").
function client.wrap(core_client, api_url, instance)
  return setmetatable({ _core = core_client, _api_url = api_url, _instance = instance }, mt)
end

---------------------------------------------------------------------------------------------
-- Argument checks. Each raises at level 3: check -> public method -> caller.

local function bad_self(fname, self)
  error(format("calling '%s' on bad self (sapwf client expected, got %s)", fname,
               type(self)), 3)
end

--- The core client of an open sapwf client; raises for anything else.
function client.open(self, fname)
  if getmetatable(self) ~= mt then bad_self(fname, self) end
  local c = self._core
  if not c then error("attempt to use a closed sapwf client", 3) end
  return c
end

function client.argerror(fname, argn, msg)
  error(format("bad argument #%d to '%s' (%s)", argn, fname, msg), 3)
end

-- level: 1 for a direct call from a public method, 2 from a check it calls.
local function typeerror(fname, argn, expected, v, level)
  error(format("bad argument #%d to '%s' (%s expected, got %s)", argn, fname, expected,
               type(v)), 2 + (level or 2))
end

--- An id for a path segment: a non-empty string other than "." and "..", which a server or
-- libcurl would resolve into another resource. Anything else in it is escaped.
function client.check_id(fname, argn, v)
  if type(v) ~= "string" then typeerror(fname, argn, "string", v) end
  if v == "" or v == "." or v == ".." then
    error(format("bad argument #%d to '%s' (id %s cannot name a resource)", argn, fname,
                 v == "" and "is empty and" or "'" .. v .. "'"), 3)
  end
  return v
end

--- A version number: a non-negative integer, or a string id.
function client.check_version(fname, argn, v)
  if type(v) == "number" then
    if v % 1 ~= 0 or v < 0 then
      error(format("bad argument #%d to '%s' (version must be a non-negative integer)",
                   argn, fname), 3)
    end
    return format("%d", v)
  end
  if type(v) ~= "string" then typeerror(fname, argn, "string or integer", v) end
  if v == "" or v == "." or v == ".." then
    error(format("bad argument #%d to '%s' (version '%s' cannot name a resource)", argn,
                 fname, v), 3)
  end
  return v
end

function client.check_table(fname, argn, v)
  if type(v) ~= "table" then typeerror(fname, argn, "table", v) end
  return v
end

function client.check_string(fname, argn, v)
  if type(v) ~= "string" then typeerror(fname, argn, "string", v) end
  return v
end

-- The API wants each role list as one comma-separated string; arrays are joined here.
-- Raises (at the method's caller) on names or values the API cannot take.
function client.join_lists(fname, argn, fields, allowed, lists)
  local out = {}
  for name, value in pairs(fields) do
    if type(name) ~= "string" or not allowed[name] then
      local names = {}
      for k in pairs(allowed) do names[#names + 1] = k end
      sort(names)
      error(format("bad argument #%d to '%s' (unknown field '%s'; known: %s)", argn, fname,
                   tostring(name), concat(names, ", ")), 3)
    end
    if lists[name] and type(value) == "table" then
      for i, item in ipairs(value) do
        if type(item) ~= "string" then
          error(format("bad argument #%d to '%s' (%s[%d]: string expected, got %s)", argn,
                       fname, name, i, type(item)), 3)
        end
      end
      value = concat(value, ",")
    end
    out[name] = value
  end
  return out
end

---------------------------------------------------------------------------------------------
-- Paths

--- The concrete path of op with its parameters escaped (ids already checked).
function client.path(op, a, b)
  local pieces = op.pieces
  local n = #op.params
  if n == 0 then return pieces[1] end
  if n == 1 then return pieces[1] .. escape(a) .. pieces[2] end
  return pieces[1] .. escape(a) .. pieces[2] .. escape(b) .. pieces[3]
end

--- Encodes a Lua value as a request body. Returns text, or nil and an `invalid` error that
-- names the path of what is not JSON.
function client.encode(value, root, op, path)
  local text, msg = json.encode(value, root)
  if text then return text end
  return nil, errors.invalid(msg, "sapwf.json", op.method, path)
end

---------------------------------------------------------------------------------------------
-- Sending

local function request_id(headers)
  return headers and headers["x-vcap-request-id"]
end

-- The hint for a 403: needs the token's scope, which core:token() gives from its cache.
local function forbidden_ctx(self, op_method, path, authority)
  local ctx = { method = op_method, path = path, authority = authority }
  if authority then
    local c = self._core
    local scope
    if c then
      local token, _, s = c:token()
      if token then scope = s end
    end
    ctx.hint = errors.forbidden_hint(self._instance, scope, authority)
  end
  return ctx
end

--- The error object for an HTTP answer that is not a success of op.
function client.failure(self, method, path, authority, status, body, headers)
  local ctx
  if status == 403 then
    ctx = forbidden_ctx(self, method, path, authority)
  else
    ctx = { method = method, path = path }
  end
  return errors.from_response(status, body, headers, ctx)
end

-- The job a Location header names: {job = <last segment>, location = <header>}.
local function job_of(headers)
  local location = headers and headers["location"]
  local job = type(location) == "string" and match(location, "([^/?#]+)/*$") or nil
  return { job = job, location = location }
end

--- Sends op to path .. query (body: JSON text or nil) and judges the answer by op.body.
-- Returns value, meta (meta.status, meta.request_id, meta.total for list calls) or nil, err.
function client.call(self, op, path, query, body)
  local method = op.method
  local status, resp, headers = self._core:request(method, query == "" and path
                                                   or path .. query, body)
  if not status then return nil, errors.from_core(resp, method, path) end
  if not (op.success_set[status] or (status >= 200 and status < 300)) then
    return nil, client.failure(self, method, path, op.authority, status, resp, headers)
  end
  local meta = { status = status, request_id = request_id(headers) }
  local kind = op.body
  if kind == "json" then
    if resp == "" then
      return nil, errors.decode(status, headers, { method = method, path = path,
                                                   op = op.name })
    end
    local value, detail = json_decode(resp)
    if value == nil then
      return nil, errors.decode(status, headers, { method = method, path = path,
                                                   op = op.name }, detail)
    end
    local total = headers["x-total-count"]
    if total then meta.total = tonumber(total) end
    if meta.total and tointeger then meta.total = tointeger(meta.total) or meta.total end
    return value, meta
  elseif kind == "job" then
    if status == 200 or status == 204 then return true, meta end
    return job_of(headers), meta
  elseif kind == "raw" then
    return resp, meta
  end
  return true, meta
end

---------------------------------------------------------------------------------------------
-- Lifecycle

--- Frees the connections and wipes the secret; idempotent. Later calls raise.
function methods.close(self)
  if getmetatable(self) ~= mt then bad_self("close", self) end
  local c = self._core
  if c then
    self._core = nil
    c:close()
  end
end

--- The access token, the seconds it has left and its scope string (fetched if needed, or
-- when force is true).
function methods.token(self, force)
  local c = client.open(self, "token")
  if force ~= nil and type(force) ~= "boolean" then typeerror("token", 1, "boolean", force, 1) end
  local token, left, scope = c:token(force)
  if not token then return nil, errors.from_core(left, nil, nil) end
  return token, left, scope
end

-- A client that is dropped without close() frees its connections when collected.
mt.__gc = function(self)
  local c = rawget(self, "_core")
  if c then
    self._core = nil
    c:close()
  end
end
mt.__close = function(self) mt.__gc(self) end
mt.__tostring = function(self)
  if not rawget(self, "_core") then return "sapwf client (closed)" end
  return "sapwf client (" .. tostring(self._api_url) .. ")"
end

return client
