--- The sapwf client object: wf:token and wf:close; the other modules hold the API methods.
-- A client dropped without wf:close is closed when collected, or by Lua 5.4's
-- `local wf <close> = ...`.

-- Also here, not API: the metamethods (__gc, __close, __tostring), argument checks shared by
-- the API methods, and `call`, which sends one operation and judges the answer. Their
-- comments are plain `--` ones: `make docs` publishes every `---` comment of this file.
--
-- The API methods live in definitions.lua, instances.lua, tasks.lua, messages.lua, jobs.lua,
-- paging.lua, request.lua and batch.lua; each adds its methods to `client.methods`.
--
-- Argument errors raise with error(msg, 3) from the checks below, which every public method
-- calls directly, so the message points at the caller's line.
local core = require "sapwf.core"
local json = require "sapwf.json"
local errors = require "sapwf.errors"
local operations = require "sapwf.operations"

local type, tostring, tonumber, getmetatable, setmetatable, rawget, error =
  type, tostring, tonumber, getmetatable, setmetatable, rawget, error
local pairs, ipairs = pairs, ipairs
local format, match = string.format, string.match
local concat, sort = table.concat, table.sort
local escape, json_decode = core.escape, json.decode
local parse_count, parse_retry_after = core.parse_count, core.retry_after
-- c:request gives the response headers as one block of lines: header() reads one of them,
-- headers_table() makes the table that errors and wf:request's callers get.
local header, headers_table = core.header, core.headers
local floor = math.floor

local client = {}

local methods = {}
client.methods = methods

local mt = { __index = methods, __name = "sapwf client" }
client.mt = mt

-- Retry defaults (README "Retries"): at most `retries` more attempts, none begun later than
-- `retry_deadline` seconds after the first, waits from backoff_base doubling up to
-- backoff_max (with jitter), or longer when Retry-After asks.
client.RETRY_DEFAULTS = { retries = 3, retry_deadline = 30, backoff_base = 0.5, backoff_max = 8 }

-- Wraps a `sapwf.core` client (or anything with its request, token and close). api_url is
-- for tostring; instance names the service instance in 403 hints (nil: "<instance>").
-- opts: the checked options of sapwf.new (retries, retry_deadline, backoff_base,
-- backoff_max, log, verify are read; nil: the defaults). env: how to wait, for hosts where
-- blocking is wrong (sapwf.ngx passes ngx.sleep and ngx.now): { sleep =, now = }.
function client.wrap(core_client, api_url, instance, opts, env)
  opts, env = opts or {}, env or {}
  local policy = { log = opts.log, sleep = env.sleep or core.sleep,
                   now = env.now or core.monotonic }
  for name, default in pairs(client.RETRY_DEFAULTS) do
    if opts[name] ~= nil then policy[name] = opts[name] else policy[name] = default end
  end
  return setmetatable({ _core = core_client, _api_url = api_url, _instance = instance,
                        _policy = policy, _insecure = opts.verify == false }, mt)
end

-- ------------------------------------------------------------------------------------------
-- Argument checks. Each raises at level 3: check -> public method -> caller.

local function bad_self(fname, self)
  error(format("calling '%s' on bad self (sapwf client expected, got %s)", fname,
               type(self)), 3)
end

-- The core client of an open sapwf client; raises for anything else.
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

-- An id for a path segment: a non-empty string other than "." and "..", which a server or
-- libcurl would resolve into another resource. Anything else in it is escaped.
function client.check_id(fname, argn, v)
  if type(v) ~= "string" then typeerror(fname, argn, "string", v) end
  if v == "" or v == "." or v == ".." then
    error(format("bad argument #%d to '%s' (id %s cannot name a resource)", argn, fname,
                 v == "" and "is empty and" or "'" .. v .. "'"), 3)
  end
  return v
end

-- A version number: a non-negative integer, or a string id.
function client.check_version(fname, argn, v)
  if type(v) == "number" then
    -- 2^53 and up (and inf, NaN) have no exact integer text
    if v % 1 ~= 0 or v < 0 or v >= 9007199254740992 then
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

-- ------------------------------------------------------------------------------------------
-- Paths

-- The concrete path of op with its parameters escaped (ids already checked).
function client.path(op, a, b)
  local pieces = op.pieces
  local n = #op.params
  if n == 0 then return pieces[1] end
  if n == 1 then return pieces[1] .. escape(a) .. pieces[2] end
  return pieces[1] .. escape(a) .. pieces[2] .. escape(b) .. pieces[3]
end

-- Encodes a Lua value as a request body. Returns text, or nil and an `invalid` error that
-- names the path of what is not JSON.
function client.encode(value, root, op, path)
  local text, msg = json.encode(value, root)
  if text then return text end
  return nil, errors.invalid(msg, "sapwf.json", op.method, path)
end

-- ------------------------------------------------------------------------------------------
-- Sending


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
    ctx.granted = errors.granted(scope)
    ctx.hint = errors.forbidden_hint(self._instance, ctx.granted, authority)
  end
  return ctx
end

-- The error object for an HTTP answer that is not a success of op.
function client.failure(self, method, path, authority, status, body, headers)
  local ctx
  if status == 403 then
    ctx = forbidden_ctx(self, method, path, authority)
  else
    ctx = { method = method, path = path }
  end
  return errors.from_response(status, body, headers_table(headers), ctx)
end

-- The job a Location header names: {job = <last segment>, location = <header>}.
local function job_of(headers)
  local location = header(headers, "location")
  local job = type(location) == "string" and match(location, "([^/?#]+)/*$") or nil
  return { job = job, location = location }
end

-- ------------------------------------------------------------------------------------------
-- Retries: the one place they are decided. Every call goes through client.send.
--
-- What is sent again, and when:
-- - a call that surely never reached the service (no connection, no token: outcome
--   not_sent), any method, when the failure may pass (network, timeout, token endpoint 408,
--   429 or 5xx);
-- - an answer 408, 429 or 503, any method: the service refused before acting;
-- - idempotent calls also on 500, 502, 504 and on network failures after sending: GET, PUT
--   and the PATCHes that set values (instance status, context merge, roles);
-- - never a start or message (POST) that may have reached the service: the error says
--   outcome "unknown" instead.
-- A 403 gets one fresh token and one more try (not a retry): authorities granted since the
-- token was cached then work at once.

-- HTTP statuses worth sending an idempotent call again for.
local RETRY_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true,
                       [504] = true }
-- Of those, the ones that say the service did nothing: the request was not read whole (408),
-- the tenant's rate limit (429), the service is unavailable (503).
-- Answers that say the request was not acted on, so even a start is sent again: 408 (the
-- server did not get the whole request) and 429 (SAP's rate limit refuses before acting).
-- Not 503: a proxy may answer it after the service already started the workflow.
local REFUSED_STATUS = { [408] = true, [429] = true }
-- Operations besides GET and PUT whose second sending has the effect of the first.
local IDEMPOTENT_OPS = { cancel = true, suspend = true, resume = true, update_context = true,
                         update_roles = true }
-- A 403 fetches a fresh token once per call, so that the call after a `cf update-service`
-- works (README, "Credentials and authorities"); a call that began before another one's
-- refresh just tries again with that token. Within a batch (batch.lua's stand-in sets
-- policy.forbidden_interval), at most one refresh every forbidden_interval seconds, so a
-- thousand forbidden items do not ask the token endpoint a thousand times.

-- Whether sending method to a path (no query) twice has the effect of once.
function client.idempotent(method, bare_path, op_name)
  if method == "GET" or method == "PUT" then return true end
  if op_name then return IDEMPOTENT_OPS[op_name] == true end
  local found = operations.match(method, bare_path)
  for _, op in ipairs(found) do
    if not IDEMPOTENT_OPS[op.name] then return false end
  end
  return found[1] ~= nil
end

-- The same, once per operation, for client.call.
local IDEMPOTENT = {}
for name, op in pairs(operations.by_name) do
  IDEMPOTENT[op] = client.idempotent(op.method, op.path, name)
end

-- Jitter spreads the retries of many processes. math.random is seeded randomly only on Lua
-- 5.4, and seeding it here would change the sequence a program set up for itself, so the
-- jitter has a Park-Miller generator of its own, seeded from the clock and an address.
local jitter_state = floor((core.monotonic() * 1e6 + os.time()
  + (tonumber(match(tostring({}), "0x(%x+)") or "0", 16) or 0)) % 2147483646) + 1
local function jitter()
  jitter_state = (jitter_state * 16807) % 2147483647
  return jitter_state / 2147483647
end

-- The wait before retry number n: base * 2^(n-1), at most backoff_max, of which a random
-- part ("equal jitter": from half the step to the whole step).
local function backoff(policy, n)
  local step = policy.backoff_base * 2 ^ (n - 1)
  if step > policy.backoff_max then step = policy.backoff_max end
  return step / 2 + step / 2 * jitter()
end

-- Passes an event to the log hook. Events carry what happened, never a token or secret.
local function log(policy, event)
  if policy.log then policy.log(event) end
end

-- Waits before the next attempt when the policy allows one: returns true after the wait,
-- false (at once) when the retries or the deadline are used up. state: {started, retries}.
local function pause(policy, state, retry_after, event)
  if state.retries >= policy.retries then return false end
  local wait = backoff(policy, state.retries + 1)
  if retry_after and retry_after > wait then wait = retry_after end
  if policy.now() - state.started + wait > policy.retry_deadline then return false end
  state.retries = state.retries + 1
  event.event, event.attempt, event.delay, event.retry_after = "retry", state.retries, wait,
    retry_after
  log(policy, event)
  policy.sleep(wait)
  return true
end

local function new_state(started)
  return { started = started, retries = 0, uncertain = false }
end

-- Adds what the retries did to a final error: how many attempts went out, and an unknown
-- outcome when an earlier attempt may have taken effect.
function client.annotate(err, state, retry_after)
  if state then
    if state.retries > 0 then err.attempts = state.retries + 1 end
    if state.uncertain and err.outcome ~= "unknown" then err.outcome = "unknown" end
  end
  if retry_after and err.retry_after == nil then err.retry_after = retry_after end
  return err
end

-- Whether a 403 is worth a fresh token: the cached one lacks the authority (or cannot tell),
-- and (in a batch) no 403 fetched one during the last policy.forbidden_interval seconds.
local function refresh_may_help(self, c, authority)
  local policy = self._policy
  local last = self._forbidden_refresh
  local interval = policy.forbidden_interval
  if interval and last and policy.now() - last < interval then return false end
  if authority then
    local token, _, scope = c:token()
    if token and scope then
      for _, granted in ipairs(errors.granted(scope)) do
        if granted == authority then return false end
      end
    end
  end
  return true
end

-- Sends method to target (path .. query; body: text or nil) with the retries above.
-- path: the path without query (for errors and log events); authority: the one a 403 names;
-- idempotent: whether sending it twice does what once does. Returns status, body, headers,
-- state for any final HTTP answer, or nil, err (an error object, annotated). state is nil
-- when the first answer was final; otherwise what the retries did, for client.annotate.
function client.send(self, method, target, body, path, authority, idempotent)
  local c = self._core
  local policy = self._policy
  local started = policy.now()
  local state            -- made at the first retry or token refresh: most calls need none
  local refreshed = false
  while true do
    local status, resp, headers = c:request(method, target, body)
    if status then
      if status < 400 then                                               -- the usual case
        if state then state.retry_after = nil end
        return status, resp, headers, state
      end
      state = state or new_state(started)
      state.retry_after = nil
      if status == 403 and not refreshed and refresh_may_help(self, c, authority) then
        refreshed = true
        local last = self._forbidden_refresh
        if not (last and last > started) then      -- else another call renewed it meanwhile
          self._forbidden_refresh = policy.now()
          log(policy, { event = "token_refresh", reason = "forbidden", method = method,
                        path = path, status = 403 })
          if not c:token(true) then return status, resp, headers, state end
        end
      elseif RETRY_STATUS[status] and (idempotent or REFUSED_STATUS[status]) then
        local retry_after = header(headers, "retry-after")
        retry_after = retry_after and parse_retry_after(retry_after) or nil
        state.retry_after = retry_after       -- for the error, if this answer is the last
        -- a 503 is only retried for idempotent calls, where it counts as a refusal
        local outcome = (REFUSED_STATUS[status] or status == 503) and "rejected" or "unknown"
        if not pause(policy, state, retry_after, { method = method, path = path,
                                                  status = status, outcome = outcome }) then
          return status, resp, headers, state
        end
        if outcome == "unknown" then state.uncertain = true end
      else
        return status, resp, headers, state
      end
    else
      state = state or new_state(started)
      state.retry_after = nil
      local err = errors.from_core(resp, method, path)
      local again = err.retryable and (idempotent or err.outcome == "not_sent")
      if not (again and pause(policy, state, err.retry_after, {
          method = method, path = path, kind = err.kind, status = err.status,
          phase = err.phase, outcome = err.outcome })) then
        return nil, client.annotate(err, state)
      end
      if err.outcome == "unknown" then state.uncertain = true end
    end
  end
end

-- The token (for wf:token), with the retries of a call that was never sent.
function client.token(self, c, force)
  local policy = self._policy
  local state = new_state(policy.now())
  while true do
    local token, left, scope = c:token(force)
    if token then return token, left, scope end
    local err = errors.from_core(left, nil, nil)
    if not (err.retryable and pause(policy, state, err.retry_after, {
        kind = err.kind, status = err.status, phase = "token", outcome = err.outcome })) then
      return nil, client.annotate(err, state)
    end
  end
end

-- Sends op to path .. query (body: JSON text or nil) and judges the answer by op.body.
-- Returns value, meta (meta.status, meta.request_id, meta.total for list calls) or nil, err.
-- A client with _no_meta set (start_many's stand-in, whose callers keep only the value)
-- returns the value alone: no meta table, no header read for it.
function client.call(self, op, path, query, body)
  local method = op.method
  local status, resp, headers, state = client.send(self, method, query == "" and path
    or path .. query, body, path, op.authority, IDEMPOTENT[op])
  if not status then return nil, resp end
  if not (op.success_set[status] or (status >= 200 and status < 300)) then
    return nil, client.annotate(client.failure(self, method, path, op.authority, status, resp,
                                               headers), state, state and state.retry_after)
  end
  local meta
  if not self._no_meta then
    meta = { status = status, request_id = header(headers, "x-vcap-request-id") }
  end
  local kind = op.body
  if kind == "json" then
    local value, detail
    if resp ~= "" then value, detail = json_decode(resp) end
    if value == nil then
      return nil, errors.decode(status, headers_table(headers),
                                { method = method, path = path, op = op.name }, detail)
    end
    -- Only list calls can ask for a count ($inlinecount), so only they read the header.
    -- Only a plain count: "1e3", "0x10" or "-1" from a proxy is no count at all.
    local total = meta and op.query_names["$inlinecount"] and header(headers, "x-total-count")
    if total then meta.total = parse_count(total) end
    return value, meta
  elseif kind == "job" then
    if status == 200 or status == 204 then return true, meta end
    return job_of(headers), meta
  elseif kind == "raw" then
    return resp, meta
  end
  return true, meta
end

-- ------------------------------------------------------------------------------------------
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
  return client.token(self, c, force)
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
  -- verify = false is never silent: it shows wherever the client is printed.
  return "sapwf client (" .. tostring(self._api_url) .. ")"
    .. (rawget(self, "_insecure") and " [TLS verification OFF]" or "")
end

return client
