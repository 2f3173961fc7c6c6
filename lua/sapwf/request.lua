--- wf:request: any API call the methods do not cover (export, purge, form models, ...).
local base = require "sapwf.base"
local send = require "sapwf.send"
local query = require "sapwf.query"
local json = require "sapwf.json"
local errors = require "sapwf.errors"
local operations = require "sapwf.operations"
local core = require "sapwf.core"
local headers_table, path_problem, temp_file = core.headers, core.path_problem, core.temp_file

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local format, find, match = string.format, string.find, string.match
local concat = table.concat
local open = base.open

local methods = {}

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }
local OPTIONS = { query = true, body = true, accept = true, to_file = true }
local EXPORT = operations.by_name.export

local function bad(argn, msg)
  error(format("bad argument #%d to 'request' (%s)", argn, msg), 3)
end

-- What a 403 on this method and path needs, from the operations table.
local function authority_of(method, path)
  local found = operations.match(method, path)
  if #found == 1 then return found[1].authority, found[1] end
  if #found > 1 then
    local names = {}
    for i, op in ipairs(found) do names[i] = op.authority end
    return "one of " .. concat(names, ", "), false
  end
  return nil
end

-- An `io` error (a local file that cannot be written or renamed).
local function io_error(message, method, path, sent)
  return errors.new{ kind = "io", message = message, method = method, path = path,
    retryable = false, outcome = sent and "unknown" or "not_sent" }
end

-- Sends the call with its 2xx answer written to a file beside dest, then renamed to dest:
-- dest changes only when a whole answer came, and no part file is left behind. Returns
-- the bytes written, the raw header lines, the status; or nil, err; or nil, nil, status,
-- body, headers, state for an HTTP failure (the caller judges it).
local function to_file(self, method, target, body, path, authority, idempotent, accept, dest)
  -- A new file of its own in dest's folder (so the rename is atomic), never one that is
  -- there already; a folder that cannot be written fails here, before anything is sent.
  local part, oserr = temp_file(dest .. ".part-")
  if not part then
    return nil, io_error(format("cannot write a file beside %s: %s", dest, oserr), method,
                         path, false)
  end
  local status, resp, headers, state = base.send(self, method, target, body, path, authority,
    idempotent, { accept = accept, to_file = part })
  if not status or status < 200 or status >= 300 then
    os.remove(part)
    if not status then return nil, resp end
    return nil, nil, status, resp, headers, state
  end
  local file = io.open(part, "rb")
  local bytes = file and file:seek("end")
  if file then file:close() end
  local renamed, rerr = os.rename(part, dest)
  if not (bytes and renamed) then
    os.remove(part)
    return nil, io_error(format("cannot put the answer in place as %s: %s", dest,
                                tostring(rerr or "it vanished")), method, path, true)
  end
  return bytes, headers, status
end

--- Sends any API call the methods do not cover (export, purge, form models, ...). The path
-- is sent as given, but it cannot leave the API: "." and ".." segments (also as %2e) raise.
-- Use the methods for ids from untrusted input: they escape them.
-- @tparam string method "GET", "POST", "PUT", "PATCH" or "DELETE"
-- @tparam string path relative to the API root, e.g. "/v1/export"
-- @tparam[opt] table opts `query`: a table of parameters (any names; values escaped);
-- `body`: a table sent as JSON, or a string sent as is; `accept`: the Accept header
-- (default "application/json"); `to_file`: a path the answer is written to as it comes, in
-- constant memory and whatever its size (max_response does not apply), put in place only
-- when the whole answer came (the file there before stays until then; nothing is left
-- behind on a failure)
-- @treturn table|string|boolean|number the answer: decoded JSON, the text for other
-- content types, true for an empty body; with `to_file`, the bytes written
-- @treturn table the response headers, names lower-cased
-- @fails nil, err (see `sapwf.errors`) for any status but 2xx and those SAP's definition
-- lists for the operation (purge's 303: one is running already, its job in the Location
-- header; another 3xx is an error: sapwf follows no redirect) and for failures; a 403 names
-- the authority the operations table gives; kind "io" when `to_file` cannot be written
function methods:request(method, path, opts)
  open(self, "request")
  if type(method) ~= "string" then bad(1, "string expected, got " .. type(method)) end
  if not METHODS[method] then
    bad(1, format("method '%s' is not one of GET, POST, PUT, PATCH, DELETE", method))
  end
  if type(path) ~= "string" then bad(2, "string expected, got " .. type(path)) end
  if find(path, "[%s%c]") then bad(2, "path contains white space or control characters") end
  local problem = path_problem(path)
  if problem then bad(2, problem) end
  if opts ~= nil and type(opts) ~= "table" then bad(3, "table expected, got " .. type(opts)) end
  opts = opts or {}
  for k in pairs(opts) do
    if not OPTIONS[k] then
      bad(3, format("unknown option '%s' (query, body, accept, to_file)", tostring(k)))
    end
  end
  for _, name in ipairs({ "accept", "to_file" }) do
    local v = opts[name]
    if v ~= nil and (type(v) ~= "string" or v == "") then
      bad(3, format("%s: non-empty string expected, got %s", name,
                    type(v) == "string" and "an empty one" or type(v)))
    end
  end
  if opts.accept and find(opts.accept, "[%c\128-\255]") then
    bad(3, "accept: a header value without control characters expected")
  end
  local body = opts.body
  if body ~= nil and type(body) ~= "table" and type(body) ~= "string" then
    bad(3, "body: table or string expected, got " .. type(body))
  end
  local qs = query.free(opts.query, "request", 3)
  local bare_path = match(path, "^[^?#]*")
  if qs ~= "" and find(path, "?", 1, true) then qs = "&" .. qs:sub(2) end
  if type(body) == "table" then
    local text, msg = json.encode(body, "body")
    if not text then return nil, errors.invalid(msg, "sapwf.json", method, bare_path) end
    body = text
  end
  local authority, exact = authority_of(method, bare_path)
  -- what the operation answers (a zip for the export), unless the caller says otherwise
  local accept = opts.accept or (exact and exact.accept) or nil
  local status, resp, headers, state
  if opts.to_file then
    local bytes, raw
    bytes, raw, status, resp, headers, state = to_file(self, method, path .. qs, body,
      bare_path, exact and authority or nil, send.idempotent(method, bare_path), accept,
      opts.to_file)
    if bytes then return bytes, headers_table(raw) end
    if raw then return nil, raw end
  else
    status, resp, headers, state = base.send(self, method, path .. qs, body, bare_path,
      exact and authority or nil, send.idempotent(method, bare_path),
      accept and { accept = accept } or nil)
  end
  if not status then return nil, resp end
  -- a 3xx is never followed; the ones an operation lists are answers (purge's and
  -- undeploy's 303: one is already running, its job in Location)
  if (status < 200 or status >= 300) and not (exact and exact.success_set[status]) then
    local err = base.failure(self, method, bare_path, exact and authority or nil, status,
                             resp, headers, exact or nil)
    if status == 403 and not exact then err.authority = authority end
    return nil, send.annotate(err, state, state and state.retry_after)
  end
  headers = headers_table(headers)
  if resp == "" then return true, headers end
  local ctype = headers["content-type"] or ""
  if find(ctype, "json", 1, true) then
    local value, detail = json.decode(resp)
    if value == nil then
      return nil, errors.decode(status, headers, { method = method, path = bare_path },
                                detail)
    end
    return value, headers
  end
  return resp, headers
end

--- Writes the tenant's data export (a zip archive) to a file, as it comes: in constant
-- memory, whatever its size. The file at path is replaced only when the whole export came;
-- on a failure it stays as it was and nothing is left beside it.
-- @tparam string path where the zip goes
-- @treturn number the bytes written
-- @treturn table meta (`status`, `request_id`)
-- @fails nil, err (see `sapwf.errors`): "forbidden" (DATA_EXPORT), "rate_limited" (an
-- export of this tenant is running), "server" (503: too many exports at once), "io" (the
-- file cannot be written)
function methods:export(path)
  open(self, "export")
  if type(path) ~= "string" or path == "" then
    error(format("bad argument #1 to 'export' (non-empty string expected, got %s)",
                 type(path) == "string" and "an empty one" or type(path)), 2)
  end
  local bytes, raw, status, resp, headers, state = to_file(self, "GET", EXPORT.path, nil,
    EXPORT.path, EXPORT.authority, true, EXPORT.accept, path)
  if bytes then
    return bytes, { status = status, request_id = core.header(raw, "x-vcap-request-id") }
  end
  if raw then return nil, raw end
  local err = base.failure(self, "GET", EXPORT.path, EXPORT.authority, status, resp, headers,
                           EXPORT)
  return nil, send.annotate(err, state, state and state.retry_after)
end

return { methods = methods }
