-- How one API call is made, and the client object it is made on. Not API: the area
-- modules (definitions.lua, instances.lua, tasks.lua, messages.lua, jobs.lua, paging.lua,
-- request.lua, batch.lua) build their methods from these pieces, and client.lua composes
-- them into the client. This module alone reads the client object's fields.
--
-- A method checks its arguments (the checks below raise with error(msg, 3), so the message
-- points at the line that called the method), builds the path and body, and hands them to
-- base.call, which sends through send.lua (where every rule to send again lives) and
-- judges the answer by the operation's table (operations.lua).
local core = require "sapwf.core"
local json = require "sapwf.json"
local errors = require "sapwf.errors"
local send = require "sapwf.send"
local service = require "sapwf.service"
local args = require "sapwf.args"

local type, tostring, getmetatable, setmetatable, rawget, error =
  type, tostring, getmetatable, setmetatable, rawget, error
local pairs, ipairs = pairs, ipairs
local format, match, find = string.format, string.match, string.find
local concat, sort = table.concat, table.sort
local escape, json_decode = core.escape, json.decode
local parse_count, path_problem = core.parse_count, core.path_problem
-- client:request gives the response headers as one block of lines: header() reads one of
-- them, headers_table() makes the table that errors and wf:request's callers get.
local header, headers_table = core.header, core.headers
local send_call, IDEMPOTENT, annotate = send.send, send.IDEMPOTENT, send.annotate
local null, array_mt = json.null, json.array_mt

local base = {}

-- The client's metatable. base.lua sets its __index to the composed methods.
local mt = { __name = "sapwf client" }
base.mt = mt

-- ------------------------------------------------------------------------------------------
-- The object. Fields: _core (the transport, nil once closed), _policy (send.policy),
-- _api_url (for tostring and errors, without user info), _service (service.lua's kind: the
-- words of hints), _instance (named in 403 hints), _insecure (verify = false), _no_meta
-- (calls return the value alone).

-- A client on transport t (a sapwf.core client, or anything with its request, renew, token
-- and close). api_url is for tostring; instance names the service instance in 403 hints
-- (nil: "<instance>"). opts: the checked options of sapwf.new (retries, retry_deadline,
-- backoff_base, backoff_max, log, verify, service are read; nil: the defaults). env: how to wait,
-- for hosts where blocking is wrong (sapwf.ngx passes ngx.sleep and ngx.now), and the least
-- time between 403 refreshes where many requests share the client:
-- { sleep =, now =, forbidden_interval = }.
function base.object(t, api_url, instance, opts, env)
  opts, env = opts or {}, env or {}
  return setmetatable({ _core = t, _api_url = service.shown_url(api_url), _instance = instance,
                        _service = opts.service or service.kind(api_url),
                        _policy = send.policy(opts, env), _insecure = opts.verify == false }, mt)
end

-- A client like self on transport t (batch.lua's stand-in for each item), with its own
-- copy of the policy changed by `changes`; value_only: its calls return the value without
-- a meta table (start_many keeps only the value).
function base.derive(self, t, changes, value_only)
  local policy = {}
  for k, v in pairs(self._policy) do policy[k] = v end
  for k, v in pairs(changes) do policy[k] = v end
  return setmetatable({ _core = t, _api_url = self._api_url, _instance = self._instance,
                        _service = self._service, _policy = policy, _insecure = self._insecure,
                        _no_meta = value_only or nil }, mt)
end

-- The transport and policy of an open client (batch.lua schedules on them).
function base.transport(self) return self._core, self._policy end

-- Whether self is a client that is still open.
function base.is_open(self) return rawget(self, "_core") ~= nil end

-- Closes the transport (once); later calls raise.
function base.close(self)
  local t = rawget(self, "_core")
  if t then
    self._core = nil
    t:close()
  end
end

-- What tostring shows: never a secret; verify = false is never silent.
function base.describe(self)
  if not rawget(self, "_core") then return "sapwf client (closed)" end
  return "sapwf client (" .. tostring(self._api_url) .. ")"
    .. (rawget(self, "_insecure") and " [TLS verification OFF]" or "")
end


-- ------------------------------------------------------------------------------------------
-- Argument checks. Each raises at level 3: check -> public method -> caller.

-- bad_self raises at level 4: it is one call further down than a check.
local function bad_self(fname, self)
  error(format("calling '%s' on bad self (sapwf client expected, got %s)", fname,
               type(self)), 4)
end

-- Raises unless self is a sapwf client (open or closed).
function base.check_self(self, fname)
  if getmetatable(self) ~= mt then bad_self(fname, self) end
end

-- The transport of an open sapwf client; raises for anything else.
function base.open(self, fname)
  if getmetatable(self) ~= mt then bad_self(fname, self) end
  local c = self._core
  if not c then error("attempt to use a closed sapwf client", 3) end
  return c
end

function base.argerror(fname, argn, msg)
  error(format("bad argument #%d to '%s' (%s)", argn, fname, msg), 3)
end

-- level: 1 for a direct call from a public method, 2 from a check it calls.
local function typeerror(fname, argn, expected, v, level)
  error(format("bad argument #%d to '%s' (%s expected, got %s)", argn, fname, expected,
               type(v)), 2 + (level or 2))
end

-- Why v cannot name a resource, or nil: "empty", or "dots" when it is "." or "..", or has
-- one between "/" or "\\". It goes escaped into one path segment, yet a server or proxy that
-- decodes those before it resolves the path would reach another resource. The rule is the
-- core's for paths; the command line checks its ids with it too.
function base.id_problem(v)
  if v == "" then return "empty" end
  if path_problem("/" .. escape(v)) then return "dots" end
end
local id_problem = base.id_problem

-- An id for a path segment: a non-empty string, escaped into it (id_problem).
function base.check_id(fname, argn, v)
  if type(v) ~= "string" then typeerror(fname, argn, "string", v) end
  local problem = id_problem(v)
  if problem then
    error(format("bad argument #%d to '%s' (id %s cannot name a resource)", argn, fname,
                 problem == "empty" and "is empty and" or "'" .. v .. "'"), 3)
  end
  return v
end

-- A version number: a non-negative integer, or a string id.
function base.check_version(fname, argn, v)
  if type(v) == "number" then
    -- 2^53 and up (and inf, NaN) have no exact integer text
    if v % 1 ~= 0 or v < 0 or v >= 9007199254740992 then
      error(format("bad argument #%d to '%s' (version must be a non-negative integer)",
                   argn, fname), 3)
    end
    return format("%d", v)
  end
  if type(v) ~= "string" then typeerror(fname, argn, "string or integer", v) end
  if id_problem(v) then
    error(format("bad argument #%d to '%s' (version '%s' cannot name a resource)", argn,
                 fname, v), 3)
  end
  return v
end

function base.check_table(fname, argn, v)
  if type(v) ~= "table" then typeerror(fname, argn, "table", v) end
  return v
end

function base.check_boolean_or_nil(fname, argn, v)
  if v ~= nil and type(v) ~= "boolean" then typeerror(fname, argn, "boolean", v) end
  return v
end

function base.check_string(fname, argn, v)
  if type(v) ~= "string" then typeerror(fname, argn, "string", v) end
  return v
end

-- check_array(fname, argn, t, what, level): raises unless the table t is an array, and
-- returns its length (args.lua; query.lua checks a query's lists with it too). A public
-- method passes level 2.
base.check_array = args.check_array

-- The API wants each role list as one comma-separated string; arrays are joined here.
-- Raises (at the method's caller) on names or values the API cannot take.
function base.join_lists(fname, argn, fields, allowed, lists)
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
      -- Only an array: a set ({["a@x"] = true}) or a list with holes would join to less
      -- than was meant, and "" clears the list on the service.
      local n = args.check_array(fname, argn, value, name, 3)
      for i = 1, n do
        local item = value[i]
        if type(item) ~= "string" then
          error(format("bad argument #%d to '%s' (%s[%d]: string expected, got %s)", argn,
                       fname, name, i, type(item)), 3)
        end
        -- The service splits the joined string at commas: an item with one would become
        -- two names, and an empty one would be no name ({""} clearing the list, as {} does).
        if item == "" or find(item, ",", 1, true) then
          error(format("bad argument #%d to '%s' (%s[%d]: %s)", argn, fname, name, i,
                       item == "" and "empty name" or "a name cannot hold a comma (the "
                       .. "service splits the list at commas)"), 3)
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
function base.path(op, a, b)
  local pieces = op.pieces
  local n = #op.params
  if n == 0 then return pieces[1] end
  if n == 1 then return pieces[1] .. escape(a) .. pieces[2] end
  return pieces[1] .. escape(a) .. pieces[2] .. escape(b) .. pieces[3]
end

-- Encodes a Lua value as a request body. Returns text, or nil and an `invalid` error that
-- names the path of what is not JSON.
function base.encode(value, root, op, path)
  local text, msg = json.encode(value, root)
  if text then return text end
  return nil, errors.invalid(msg, "sapwf.json", op.method, path)
end

-- Whether a value that encoded went as a JSON array: a Lua sequence, or a table marked
-- with sapwf.array.
local function went_as_array(value)
  return type(value) == "table" and (getmetatable(value) == json.array_mt
                                     or rawget(value, 1) ~= nil)
end

-- base.encode for a body (or a part of one) that the service takes only as a JSON object
-- (a context, attachments): as an array it would be refused only once sent (422, 400).
-- parts: the names of value's fields that must be objects too (a message's context), or nil.
function base.encode_object(value, root, op, path, parts)
  local text, err = base.encode(value, root, op, path)
  if not text then return nil, err end
  local array = went_as_array(value) and root
  if not array and parts then
    for _, name in ipairs(parts) do
      if went_as_array(value[name]) then
        array = root .. "." .. name
        break
      end
    end
  end
  if array then
    return nil, errors.invalid(array .. ": a JSON object expected, got an array", "sapwf.json",
                               op.method, path)
  end
  return text
end

-- ------------------------------------------------------------------------------------------
-- Calls

-- The hint for a 403: needs the token's scope, which core:token() gives from its cache.
local function forbidden_ctx(self, ctx, authority)
  ctx.authority = authority
  if authority and self._service ~= service.SPA then
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

-- The error object for an HTTP answer that is not a success. op: the operation, when
-- known, for hints.
function base.failure(self, method, path, authority, status, body, headers, op)
  local idempotent = IDEMPOTENT[op]
  if idempotent == nil then idempotent = send.idempotent(method, path) end
  local ctx = { method = method, path = path, op = op, service = self._service,
                api_url = self._api_url, idempotent = idempotent,
                redact = send.redactor(self._core) }
  if status == 403 then ctx = forbidden_ctx(self, ctx, authority) end
  return errors.from_response(status, body, headers_table(headers), ctx)
end

-- A failure without an answer: says which API base URL it was sent to.
local function unanswered(self, err)
  if type(err) == "table" and err.phase ~= "token" then err.api_url = self._api_url end
  return err
end

-- The job a Location header names: {job = <last segment>, location = <header>}.
local function job_of(headers)
  local location = header(headers, "location")
  local job = type(location) == "string" and match(location, "([^/?#]+)/*$") or nil
  return { job = job, location = location }
end

-- The JSON type of a decoded answer, in the words of a message: "an object", "an array",
-- "JSON null", "a number", ... An array is told from an object by the mark json.decode puts
-- on every empty array (and, with a capable cjson, on every array) or by a first element:
-- an object's keys are strings. base.call makes the same test inline on every answer (a
-- bulk start's included) and asks this only for the message.
local A_TYPE = { string = "a string", number = "a number", boolean = "a boolean" }
local function json_type(v)
  if type(v) == "table" then
    if getmetatable(v) == array_mt or rawget(v, 1) ~= nil then return "an array" end
    return "an object"
  end
  if v == null then return "JSON null" end
  return A_TYPE[type(v)] or type(v)
end
local EXPECTED = { object = "an object", array = "an array" }

-- The meta table of an answer (headers: its header block): what every call returns beside
-- its value. with_total: the call could ask for a count (only then is the header read;
-- only a plain count: "1e3", "0x10" or "-1" from a proxy is no count at all).
local function meta_of(status, headers, with_total)
  local meta = { status = status, request_id = header(headers, "x-vcap-request-id") }
  local total = with_total and header(headers, "x-total-count")
  if total then meta.total = parse_count(total) end
  return meta
end
base.meta = meta_of

-- Sends op to path .. query (body: JSON text or nil) and judges the answer by op.body.
-- Returns value, meta (meta_of's: status, request_id, total for list calls) or nil, err.
-- A client derived with value_only (start_many's stand-in, whose callers keep only the
-- value) returns the value alone: no meta table, no header read for it.
function base.call(self, op, path, query, body)
  local method = op.method
  local status, resp, headers, state = send_call(self._core, self._policy, method,
    query == "" and path or path .. query, body, path, op.authority, IDEMPOTENT[op])
  if not status then return nil, unanswered(self, resp) end
  if not (op.success_set[status] or (status >= 200 and status < 300)) then
    return nil, annotate(base.failure(self, method, path, op.authority, status, resp,
                                      headers, op), state, state and state.retry_after)
  end
  local kind = op.body
  local meta
  if not self._no_meta then
    -- only list calls can ask for a count ($inlinecount)
    meta = meta_of(status, headers, kind == "json" and op.query_names["$inlinecount"])
  end
  if kind == "json" then
    local value, detail
    if resp ~= "" then value, detail = json_decode(resp) end
    if value == nil then
      return nil, errors.decode(status, headers_table(headers),
                                { method = method, path = path, op = op.name }, detail)
    end
    -- A 2xx whose JSON is not of the type SAP's definition gives the answer (null, a number,
    -- [] where the new instance was due) is no result: handed back as one, it reads as
    -- success and breaks the caller at its first field (print(inst.id)), and a start it
    -- answered may well have made an instance. The type is checked, not the schema: this
    -- runs for every start of a bulk run.
    local expected = op.answer
    if expected then
      -- (json_type's test inline: no call on the way of every start)
      if type(value) ~= "table" or (expected == "array")
          ~= (getmetatable(value) == array_mt or rawget(value, 1) ~= nil) then
        return nil, errors.unexpected(status, headers_table(headers),
          { method = method, path = path, op = op.name }, json_type(value),
          EXPECTED[expected])
      end
      -- A start's instance id is what the caller keeps of it (the bulk start's record):
      -- an instance without one cannot be looked up, so it counts as an answer never read.
      if op.answer_id then
        local id = value.id
        if type(id) ~= "string" or id == "" then
          return nil, errors.unexpected(status, headers_table(headers),
            { method = method, path = path, op = op.name },
            "an object without an id string", "the new instance")
        end
      end
    end
    return value, meta
  elseif kind == "job" then
    if status == 200 or status == 204 then return true, meta end
    return job_of(headers), meta
  elseif kind == "raw" then
    return resp, meta
  end
  return true, meta
end

-- The factory of the calls that name one resource by id (and maybe send a fixed body):
-- wf:context(id), wf:task(id) and their kind are all this, so they are made here, not written out.
-- The method checks its id (raising at its caller), then calls op.
function base.by_id(op, fname, body)
  return function(self, id)
    base.open(self, fname)
    base.check_id(fname, 1, id)
    return base.call(self, op, base.path(op, id), "", body)
  end
end

-- The factory of the calls that send a table as JSON to one resource named by id
-- (wf:update_context(id, patch) and its kind); root names the table in messages. The
-- method checks both arguments (raising at its caller), then calls op with the encoded
-- table, or returns nil, err (kind invalid) naming what in it is not JSON.
function base.by_id_with_table(op, fname, root)
  return function(self, id, value)
    base.open(self, fname)
    base.check_id(fname, 1, id)
    base.check_table(fname, 2, value)
    local path = base.path(op, id)
    local text, err = base.encode_object(value, root, op, path)
    if not text then return nil, err end
    return base.call(self, op, path, "", text)
  end
end

-- wf:request's way in: method to target (path .. query, both checked) with the rules of
-- send.lua. Takes and returns what send.send does, without its transport and policy.
function base.send(self, method, target, body, path, authority, idempotent, output)
  local status, resp, headers, state = send_call(self._core, self._policy, method, target,
    body, path, authority, idempotent, output)
  if not status then return nil, unanswered(self, resp) end
  return status, resp, headers, state
end

-- wf:token: the transport's token, with the retries of a call never sent.
function base.token(self, force)
  return send.token(self._core, self._policy, force)
end

return base
