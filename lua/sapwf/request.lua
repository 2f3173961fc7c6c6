--- wf:request: any API call the methods do not cover (export, purge, form models, ...).
local base = require "sapwf.base"
local send = require "sapwf.send"
local query = require "sapwf.query"
local json = require "sapwf.json"
local errors = require "sapwf.errors"
local operations = require "sapwf.operations"
local core = require "sapwf.core"
local headers_table, path_problem, temp_file = core.headers, core.path_problem, core.temp_file
local mode_like = core.mode_like
local file_kind, is_link, real_path = core.file_kind, core.is_link, core.real_path

local type, pairs, ipairs, tostring, error, pcall = type, pairs, ipairs, tostring, error, pcall
local format, find, match, sub = string.format, string.find, string.match, string.sub
local concat = table.concat
local open = base.open

local methods = {}

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }
local OPTIONS = { query = true, body = true, accept = true, to_file = true }
local EXPORT = operations.by_name.export

-- wf:request's meta: every call's, and the headers, which an arbitrary call may need (a
-- job's Location). Any answer may carry a count: the query is the caller's.
local function meta_of(status, raw_headers)
  local meta = base.meta(status, raw_headers, true)
  meta.headers = headers_table(raw_headers)
  return meta
end

local function bad(argn, msg)
  error(format("bad argument #%d to 'request' (%s)", argn, msg), 3)
end

-- What a 403 on this method and path needs, from the operations table.
local function authority_of(method, path)
  local found = operations.match(method, path)
  if #found == 0 then
    -- one trailing slash more or less, as the path was written (SAP's send-message path is
    -- /v1/messages/, and a caller may well write /v1/messages)
    local other = sub(path, -1) == "/" and sub(path, 1, -2) or path .. "/"
    found = operations.match(method, other)
  end
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

-- pcall where a protected call may yield (Lua 5.2 on, LuaJIT): a batch's item sleeps
-- between retries by yielding. PUC Lua 5.1 cannot yield across pcall, so there, in a
-- coroutine, f runs unprotected (a raise then leaves the part file behind; a failure that
-- returns does not).
local YIELDING_PCALL = _VERSION ~= "Lua 5.1" or type(jit) == "table"
local function protected(f)
  if YIELDING_PCALL or coroutine.running() == nil then return pcall(f) end
  return true, f()
end

-- The file an answer for dest is renamed over: dest, or for a symbolic link the file it
-- names, so that the link stays and names the new answer (renaming over the link would
-- put a file in its place and leave the file it named as it was). nil, message for a dest
-- that is no regular file: a rename would put a regular file in place of a device or a
-- FIFO (as root, of /dev/null), and cannot replace a directory; a link to nothing names
-- no file to replace; a path that cannot be examined may name any of them.
local function rename_target(dest)
  local kind, why, missing = file_kind(dest)
  local link = is_link(dest)
  if kind == nil and missing and not link then return dest end        -- a new file
  if kind == nil and missing then
    return nil, format("%s is a symbolic link to nothing: give the name of the file to write",
                       dest)
  end
  if kind == nil then return nil, format("cannot examine %s: %s", dest, why) end
  if kind ~= "file" then
    return nil, format("%s is no regular file (%s): the answer is written beside it and "
      .. "renamed over it, which would replace it; give the name of a file", dest, kind)
  end
  if not link then return dest end
  local real, err = real_path(dest)
  if not real then return nil, format("cannot follow the link %s: %s", dest, err) end
  return real
end

-- Sends the call with its 2xx answer written to a file beside dest, then renamed to dest
-- (for a link, to the file it names): dest changes only when a whole answer came, and no
-- part file is left behind, also when something raises meanwhile (a log hook, Ctrl-C's
-- "interrupted!"): the raise goes on once the part file is gone. Returns the bytes
-- written, the raw header lines, the status; or nil, err; or nil, nil, status, body,
-- headers, state for an HTTP failure (the caller judges it).
local function to_file(self, method, target, body, path, authority, idempotent, accept, dest)
  local final, why = rename_target(dest)
  if not final then return nil, io_error(why, method, path, false) end
  -- A new file of its own in final's folder (so the rename is atomic), never one that is
  -- there already; a folder that cannot be written fails here, before anything is sent.
  local part, oserr = temp_file(final .. ".part-")
  if not part then
    return nil, io_error(format("cannot write a file beside %s: %s", final, oserr), method,
                         path, false)
  end
  local placed = false
  local ok, bytes, headers, status, resp, rheaders, state = protected(function()
    local st, answer, hdrs, sstate = base.send(self, method, target, body, path, authority,
      idempotent, { accept = accept, to_file = part })
    if not st or st < 200 or st >= 300 then
      if not st then return nil, answer end
      return nil, nil, st, answer, hdrs, sstate
    end
    local file = io.open(part, "rb")
    local size = file and file:seek("end")
    if file then file:close() end
    -- what was checked before the call may have changed meanwhile: never a rename over
    -- something that is no regular file
    local kind = file_kind(final)
    local renamed, rerr
    if size and kind ~= nil and kind ~= "file" then
      rerr = format("it is no regular file now (%s)", kind)
    elseif size then
      -- the part file is the owner's only (temp_file); the answer gets the replaced file's
      -- permissions, or a new file's. Only where the file system lets it: one that refuses
      -- chmod (vfat) still gets the whole answer, which is worth more than its mode.
      mode_like(part, final)
      renamed, rerr = os.rename(part, final)
    end
    placed = renamed and true or false
    if not (size and renamed) then
      return nil, io_error(format("cannot put the answer in place as %s: %s", final,
                                  tostring(rerr or "it vanished")), method, path, true)
    end
    return size, hdrs, st
  end)
  if not placed then os.remove(part) end
  if not ok then error(bytes, 0) end
  return bytes, headers, status, resp, rheaders, state
end

--- Sends any API call the methods do not cover (export, purge, form models, ...). The path
-- is sent as given, but it cannot leave the API: "." and ".." segments (also as %2e, or
-- between escaped slashes) raise.
-- Use the methods for ids from untrusted input: they escape them.
-- @tparam string method "GET", "POST", "PUT", "PATCH" or "DELETE"
-- @tparam string path relative to the API root, e.g. "/v1/export"
-- @tparam[opt] table opts `query`: a table of parameters (any names; values escaped);
-- `body`: a table sent as JSON, or a string sent as is; `accept`: the Accept header
-- (default "application/json"); `to_file`: a path the answer is written to as it comes, in
-- constant memory and whatever its size (max_response does not apply), put in place only
-- when the whole answer came (the file there before stays until then; nothing is left
-- behind on a failure, nor when something raises meanwhile; for a link, the file it names
-- is replaced and the link stays; a path that names no regular file, such as a device, a
-- FIFO or a directory, is an `io` error before anything is sent)
-- @treturn table|string|boolean|number the answer: decoded JSON, the text for other
-- content types, true for an empty body; with `to_file`, the bytes written
-- @treturn table meta, as every call's (`status`, `request_id`; `total` when the answer has
-- an X-Total-Count), and `headers`: the response headers, names lower-cased (a purge's
-- 303: its job in `meta.headers.location`)
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
    if bytes then return bytes, meta_of(status, raw) end
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
  local meta = meta_of(status, headers)
  if resp == "" then return true, meta end
  local ctype = meta.headers["content-type"] or ""
  if find(ctype, "json", 1, true) then
    local value, detail = json.decode(resp)
    if value == nil then
      return nil, errors.decode(status, meta.headers, { method = method, path = bare_path },
                                detail)
    end
    return value, meta
  end
  return resp, meta
end

--- Writes the tenant's data export (a zip archive) to a file, as it comes: in constant
-- memory, whatever its size. The file at path is replaced only when the whole export came;
-- on a failure it stays as it was and nothing is left beside it, also when something
-- raises meanwhile (the raise goes on). A path that is a link: the file it names is
-- replaced and the link stays. A path that names no regular file (a device, a FIFO, a
-- directory, a link to nothing) is refused before anything is sent: the export is written
-- beside it and renamed over it, which would replace it.
-- @tparam string path where the zip goes
-- @treturn number the bytes written
-- @treturn table meta (`status`, `request_id`)
-- @fails nil, err (see `sapwf.errors`): "forbidden" (DATA_EXPORT), "rate_limited" (an
-- export of this tenant is running), "server" (503: too many exports at once), "io" (the
-- file cannot be written, or path names no regular file)
function methods:export(path)
  open(self, "export")
  if type(path) ~= "string" or path == "" then
    error(format("bad argument #1 to 'export' (non-empty string expected, got %s)",
                 type(path) == "string" and "an empty one" or type(path)), 2)
  end
  local bytes, raw, status, resp, headers, state = to_file(self, "GET", EXPORT.path, nil,
    EXPORT.path, EXPORT.authority, true, EXPORT.accept, path)
  if bytes then return bytes, base.meta(status, raw) end
  if raw then return nil, raw end
  local err = base.failure(self, "GET", EXPORT.path, EXPORT.authority, status, resp, headers,
                           EXPORT)
  return nil, send.annotate(err, state, state and state.retry_after)
end

return { methods = methods }
