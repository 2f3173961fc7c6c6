--- wf:request: any API call the methods do not cover (export, purge, form models, ...).
local base = require "sapwf.base"
local send = require "sapwf.send"
local query = require "sapwf.query"
local json = require "sapwf.json"
local errors = require "sapwf.errors"
local operations = require "sapwf.operations"
local core = require "sapwf.core"
local headers_table, path_problem = core.headers, core.path_problem

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local format, find, match = string.format, string.find, string.match
local concat = table.concat
local open = base.open

local methods = {}

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }
local OPTIONS = { query = true, body = true }

local function bad(argn, msg)
  error(format("bad argument #%d to 'request' (%s)", argn, msg), 3)
end

-- What a 403 on this method and path needs, from the operations table.
local function authority_of(method, path)
  local found = operations.match(method, path)
  if #found == 1 then return found[1].authority, true end
  if #found > 1 then
    local names = {}
    for i, op in ipairs(found) do names[i] = op.authority end
    return "one of " .. concat(names, ", "), false
  end
  return nil
end

--- Sends any API call the methods do not cover (export, purge, form models, ...). The path
-- is sent as given, but it cannot leave the API: "." and ".." segments (also as %2e) raise.
-- Use the methods for ids from untrusted input: they escape them.
-- @tparam string method "GET", "POST", "PUT", "PATCH" or "DELETE"
-- @tparam string path relative to the API root, e.g. "/v1/export"
-- @tparam[opt] table opts `query`: a table of parameters (any names; values escaped);
-- `body`: a table sent as JSON, or a string sent as is
-- @treturn table|string|boolean the answer: decoded JSON, the text for other content types,
-- true for an empty body
-- @treturn table the response headers, names lower-cased
-- @fails nil, err (see `sapwf.errors`) for any status but 2xx (a 3xx too: sapwf follows no
-- redirect) and for failures; a 403 names the authority the operations table gives
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
    if not OPTIONS[k] then bad(3, format("unknown option '%s' (query, body)", tostring(k))) end
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
  local status, resp, headers, state = base.send(self, method, path .. qs, body, bare_path,
    exact and authority or nil, send.idempotent(method, bare_path))
  if not status then return nil, resp end
  if status < 200 or status >= 300 then                 -- a 3xx too: never followed
    local err = base.failure(self, method, bare_path, exact and authority or nil, status,
                               resp, headers)
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

return { methods = methods }
