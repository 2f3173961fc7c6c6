-- Injected faults. A fault matches requests by method (any when not given), by path
-- prefix (after /workflow-service/rest, or "/oauth/token"; any when not given) and by a
-- text its query string must contain (`query`, as sent: escaped; any when not given), and
-- applies `times` times (-1: forever). The first matching fault that is not used up applies.
--
-- Kinds, and whether the operation is performed:
--   delay        sleep `delay` seconds, then handle normally                performed
--   status       answer `status` with the spec's body (+ Retry-After, and   not performed
--                `location` as Location: a redirect)
--   drop_before  close the connection without an answer                     not performed
--   drop_after   perform, then close without an answer                      performed
--   truncate     perform, send a Content-Length larger than the body, close performed
--   malformed    perform, answer 2xx with invalid JSON                      performed
--   html         502 with an HTML proxy error page                          not performed
--   body         answer `status` (default 200) with `body`, a text sent as  not performed
--                is (hostile answers: a token with a CR LF in it, ...), after
--                `delay` seconds when given (an answer that comes late); "{token}"
--                in it stands for the Bearer token the request carried (a server
--                that quotes what it was sent)
--   empty        perform, answer 200 with an empty body                     performed
--   oversize     perform, answer 200 with a JSON body of `size` bytes       performed
-- Answers without a body (202, 204) become 200 with a body for truncate and malformed, so
-- that the client has something to get wrong; malformed answers are always 2xx.
local respond = require "sapwf.emulator.server.respond"
local shared = require "sapwf.emulator.server.shared"

local ngx = ngx
local type, tostring, ipairs, pairs, floor = type, tostring, ipairs, pairs, math.floor
local sub, rep, upper, find, match, gsub = string.sub, string.rep, string.upper, string.find,
  string.match, string.gsub

local faults = {}

local PERFORMED = { delay = true, drop_after = true, truncate = true, malformed = true,
  empty = true, oversize = true }
local NOT_PERFORMED = { status = true, drop_before = true, html = true, body = true }

faults.DEFAULT_SIZE = 17 * 1024 * 1024   -- over the client's default limit of 16 MiB
local MIN_SIZE = #'{"padding":""}'

local HTML = [[
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>sapwf emulator (proxy)</center>
</body>
</html>
]]

local function number_field(spec, name, integer, min)
  local value = spec[name]
  if value == nil then return true end
  if type(value) ~= "number" or (integer and value ~= floor(value)) or value < min then
    return false, "bad fault field '" .. name .. "'"
  end
  return true
end

--- The fault record for a control request body, or nil and a message.
function faults.check(spec, id)
  if type(spec) ~= "table" then return nil, "the fault must be a JSON object" end
  local kind = spec.fault
  if not PERFORMED[kind] and not NOT_PERFORMED[kind] then
    return nil, "unknown fault '" .. tostring(kind) .. "'"
  end
  for _, name in ipairs({ "method", "path", "location", "query" }) do
    if spec[name] ~= nil and type(spec[name]) ~= "string" then
      return nil, "bad fault field '" .. name .. "'"
    end
  end
  local checks = { { "times", true, -1 }, { "delay", false, 0 }, { "status", true, 100 },
    { "retry_after", true, 0 }, { "size", true, MIN_SIZE } }
  for _, check in ipairs(checks) do
    local ok, err = number_field(spec, check[1], check[2], check[3])
    if not ok then return nil, err end
  end
  if kind == "status" and not spec.status then return nil, "fault 'status' needs a status" end
  if kind == "body" and type(spec.body) ~= "string" then
    return nil, "fault 'body' needs a body (a string)"
  end
  if kind == "delay" and not spec.delay then return nil, "fault 'delay' needs a delay" end
  if spec.times == 0 then return nil, "bad fault field 'times'" end
  return {
    id = id, fault = kind, method = spec.method and upper(spec.method), path = spec.path,
    times = spec.times or 1, delay = spec.delay, status = spec.status,
    retry_after = spec.retry_after, size = spec.size or faults.DEFAULT_SIZE, body = spec.body,
    location = spec.location, query = spec.query,
  }
end

--- The fault for this request (and uses it up once), or nil. args: its query string.
function faults.match(config, method, path, args)
  local list = config.faults
  if list[1] == nil then return nil end
  for _, fault in ipairs(list) do
    if (not fault.method or fault.method == method)
        and (not fault.path or sub(path, 1, #fault.path) == fault.path)
        and (not fault.query or find(args or "", fault.query, 1, true)) then
      if shared.use_fault(fault.id, fault.times) then
        shared.count("faults_applied")
        return fault
      end
    end
  end
  return nil
end

local function token_error(status)
  if status == 401 then
    return '{"error":"invalid_client","error_description":"Bad credentials"}',
      { ["WWW-Authenticate"] =
        'Basic realm="UAA/client", error="unauthorized", error_description="Bad credentials"' }
  end
  local code = status == 400 and "invalid_request" or status == 429 and "too_many_requests"
    or status >= 500 and "server_error" or "error"
  return '{"error":"' .. code .. '","error_description":"' .. respond.reason(status) .. '"}', {}
end

-- Sends an answer of a fault and counts it in the stats map of the area (as init.lua does
-- for normal answers; a dropped connection is no answer and is not counted).
local function send(area, status, body, headers)
  shared.count_in(area == "token" and "token_responses_by_status" or "api_responses_by_status",
    status)
  respond.send(status, body, headers)
end

--- Applies the part of a fault that comes before handling. Returns true when the request
-- has been answered (or dropped) and must not be handled. area: "token" or "api"; route:
-- the API operation or nil.
function faults.before(fault, area, route)
  local kind = fault.fault
  if kind == "delay" then
    ngx.sleep(fault.delay)
    return false
  elseif kind == "drop_before" then
    ngx.exit(444)
  elseif kind == "html" then
    send(area, 502, HTML, { ["Content-Type"] = "text/html" })
    return true
  elseif kind == "body" then
    if fault.delay then ngx.sleep(fault.delay) end
    local body = fault.body
    if find(body, "{token}", 1, true) then
      local carried = match(ngx.var.http_authorization or "", "^Bearer (.+)$") or ""
      body = gsub(body, "{token}", function() return carried end)
    end
    send(area, fault.status or 200, body, { ["Content-Type"] = respond.JSON })
    return true
  elseif kind == "status" then
    local status, body, headers = fault.status, nil, {}
    if area == "token" then
      body, headers = token_error(status)
    else
      status, body = respond.encode(respond.for_status(status, route and route.not_found,
        route and route.unprocessable))
    end
    if fault.retry_after then headers["Retry-After"] = tostring(fault.retry_after) end
    if fault.location then headers["Location"] = fault.location end
    send(area, status, body, headers)
    return true
  end
  return false
end

--- Applies the part of a fault that comes after handling (status/body/headers are the
-- answer as text). Returns true when it answered (or dropped) instead.
function faults.after(fault, area, status, body, headers)
  local kind = fault.fault
  if kind == "drop_after" then
    ngx.exit(444)
  elseif kind == "truncate" or kind == "malformed" then
    if not body or body == "" then status, body = 200, "{}" end
    if kind == "malformed" then
      if status < 200 or status > 299 then status = 200 end
      -- half of a JSON object or array never closes it: always invalid
      send(area, status, sub(body, 1, floor(#body / 2)) .. "\1", headers)
      return true
    end
    shared.count_in(area == "token" and "token_responses_by_status"
      or "api_responses_by_status", status)
    ngx.status = status
    for name, value in pairs(headers or {}) do ngx.header[name] = value end
    ngx.header["Content-Type"] = respond.JSON
    ngx.header["Content-Length"] = #body * 2 + 16
    ngx.print(body)
    ngx.flush(true)
    ngx.exit(444)
  elseif kind == "empty" then
    send(area, 200, nil, { ["Content-Type"] = respond.JSON })
    return true
  elseif kind == "oversize" then
    send(area, 200, '{"padding":"' .. rep("x", fault.size - MIN_SIZE) .. '"}')
    return true
  end
  return false
end

return faults
