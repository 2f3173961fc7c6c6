--- sapwf error objects: what every `nil, err` carries, and how it reads as one line.
--
-- Every call returns its result, or nil and an error object for a failure of the server, the
-- network or the data; `tostring(err)` is one line (the call, the status, the message and a
-- short fix), and `sapwf.is_error(v)` tells an error object from a result (wf:start_many's
-- results hold both). Arguments of the wrong type, unknown options and calls on a closed
-- client raise instead (a mistake in the calling code). Messages come from the server or
-- libcurl; none ever holds a secret, a token or a request body (where a server quotes the
-- client's secret, its Basic credentials or its token, they read "[redacted]"), and a
-- non-JSON error page is summarised, never copied.
-- @usage
--   local inst, err = wf:start("orderapproval", context)
--   if not inst then
--     if err.kind == "forbidden" then print(err.hint) end      -- the command that grants it
--     if err.outcome == "unknown" then --[[ look the instance up before starting again ]] end
--     error(tostring(err))
--   end

--- The fields of an error object. Only kind, message, retryable and outcome are always there.
-- @table err
-- @field kind "invalid" (400, 422, or a value that is not JSON), "auth" (401, or credentials
-- the token endpoint refused), "forbidden" (403), "not_found" (404), "conflict" (409, 412),
-- "timeout" (408, or the `timeout` passed), "rate_limited" (429), "server" (5xx, or an
-- answer too large or unexpected), "network", "tls", "decode" (a 2xx whose body is not the
-- JSON expected), "config" (a bad service key or option value), "io" (a file an answer
-- goes to cannot be written: wf:export, wf:request's to_file), "interrupted" (while
-- core.catch_sigint catches signals, one came: it ended a GET, a token fetch or a transfer
-- to a file, or kept a batch's request from going out)
-- @field message what went wrong, from the server or libcurl
-- @field status the HTTP status, when an answer came
-- @field code the service's error code (e.g. bpm.workflowruntime.rest.message.no.match), or
-- the token endpoint's "error"
-- @field method the call's method, e.g. "POST"
-- @field path the call's path, without the query
-- @field retryable true when sending the same call again may succeed and cannot do a thing
-- twice: 408, 429, 409, a token endpoint's 408, 429 or 5xx, a network failure before
-- sending; for the calls whose second sending does what the first did (GET, PUT, and the
-- PATCHes that set values: cancel, suspend, update_context, update_roles) also 503, 500,
-- 502, 504 and network failures after sending. sapwf already retried these under its retry
-- policy (README, "Retries") before returning the error, but for 409 ("another activity in
-- the background", SAP says: try again later), which it returns at once.
-- @field outcome "not_sent" (the request never reached the service), "rejected" (the
-- service answered with an error: nothing changed) or "unknown" (it may have taken effect:
-- a network failure after sending, any 5xx but a 503 to an idempotent call, a 303 (the
-- request was processed), a 2xx whose body could not be read or is not the JSON the call
-- answers). For
-- "unknown" after a start, look the instance up before starting it again.
-- @field attempts how many times the call was sent, when sapwf retried it
-- @field interrupted true when a signal that core.catch_sigint catches came while the call
-- waited to be sent again (or, in a batch, to be sent): it was not sent (again), and the
-- error is the last attempt's. Never set while no signal is caught.
-- @field retry_after the seconds a Retry-After header asked for, when the last answer had one
-- @field authority on a 403: the authority the call needs (e.g. WORKFLOW_INSTANCE_START)
-- @field granted on a 403: the authorities the token has (an array)
-- @field hint on a 403: the command that grants the missing authority and keeps the granted
-- ones (SAP Build Process Automation: what to check); on a TLS failure: what to check; on a
-- 404 no service gave: the base URLs to try; on a start's 404 and 422, and on 415: the fix;
-- when no token endpoint is at token_url (404, 405: kind config): what token_url must be
-- @field role on a 403 from SAP Build Process Automation, instead of authority: the role SAP
-- names for the call (e.g. ProcessAutomationParticipant)
-- @field api_url the API base URL the call went to (tostring names it when nothing answered
-- there)
-- @field request_id the x-vcap-request-id of the answer, to quote to SAP support
-- @field log_id the service's logId, likewise
-- @field details the service's error details (an array), when it gave any
-- @field phase "token" or "request": which exchange failed (failures without an answer)
-- @field curl_code libcurl's error code (failures without an answer)
-- @field sent whether any byte of the request went out (failures without an answer)
local cjson_safe = require "cjson.safe"
local service = require "sapwf.service"

local type, tostring, pairs, ipairs = type, tostring, pairs, ipairs
local setmetatable, getmetatable = setmetatable, getmetatable
local format, find, sub, gsub, match = string.format, string.find, string.sub, string.gsub,
  string.match
local concat, sort = table.concat, table.sort

local errors = {}

local Error = { __name = "sapwf.error" }
Error.__index = Error
errors.Error = Error

local KIND_BY_STATUS = {
  [400] = "invalid", [401] = "auth", [403] = "forbidden", [404] = "not_found",
  [408] = "timeout", [409] = "conflict", [412] = "conflict", [422] = "invalid",
  [429] = "rate_limited",
}

-- The kind for an HTTP error status.
function errors.kind_for_status(status)
  local kind = KIND_BY_STATUS[status]
  if kind then return kind end
  if status >= 500 then return "server" end
  if status >= 400 then return "invalid" end
  return "server"      -- 1xx/3xx where an answer was expected: the service misbehaved
end

local MAX_MESSAGE = 500  -- a message is a line, not a page
local MAX_PATH = 200
local MAX_HINT = 160     -- a hint this long is part of the line; a longer one is only named

local function clip(s)
  s = gsub(s, "[%c]+", " ")
  if #s > MAX_MESSAGE then s = sub(s, 1, MAX_MESSAGE) .. "..." end
  return s
end

-- The error funnel's redaction: every string value in v (a server's decoded answer, its
-- header values), through redact (the transport's: send.redactor), before any of it is
-- stored or clipped (a clip could cut a secret in two and leave its start unrecognised).
-- Keys stay: they are the answer's structure ("message", "error"), which a short secret
-- occurring in them must not break. Tables are changed in place: they are fresh copies of
-- what the server sent (nested no deeper than cjson decodes, 1000 levels).
local function scrub(v, redact)
  local tv = type(v)
  if tv == "string" then return redact(v) end
  if tv == "table" then
    for k, value in pairs(v) do v[k] = scrub(value, redact) end
  end
  return v
end

local function one_line(e)
  local head = "sapwf: " .. tostring(e.kind)
  if e.status then head = head .. " (" .. e.status .. ")" end
  if e.method and e.path then
    local path = tostring(e.path)
    if #path > MAX_PATH then path = sub(path, 1, MAX_PATH) .. "..." end   -- a huge id
    head = head .. " " .. e.method .. " " .. path
  end
  local text = head .. ": "
  if e.phase == "token" then text = text .. "getting a token: " end
  text = text .. tostring(e.message)
  -- The service's message is often generic ("Could not update task.") and the reason is in
  -- its first detail: the line says it too.
  local detail = type(e.details) == "table" and type(e.details[1]) == "table"
    and e.details[1].message
  if type(detail) == "string" and detail ~= "" then text = text .. " (" .. clip(detail) .. ")" end
  if e.authority then text = text .. " Needs authority " .. e.authority end
  if e.role then text = text .. " Needs role " .. e.role end
  -- Where nothing answered (a wrong base URL is the usual cause), the base URL used.
  if e.api_url and ((e.kind == "not_found" and not service.own_code(e.code))
      or ((e.kind == "network" or e.kind == "tls") and e.phase ~= "token")) then
    text = text .. " (API " .. e.api_url .. ")"
  end
  -- A long hint (a 403's cf command lists every authority kept: 39 of them, 1,900
  -- characters) would make the line a page: it is named, not quoted.
  if e.hint and #e.hint <= MAX_HINT then
    text = text .. "; fix: " .. e.hint
  elseif e.hint then
    text = text .. "; fix: see err.hint"
  end
  if e.outcome == "unknown" and e.method and e.method ~= "GET" and e.kind ~= "decode" then
    text = text .. "; the request may have taken effect (outcome unknown)"
  end
  if e.attempts then text = text .. "; after " .. e.attempts .. " attempts" end
  local ids = {}
  if e.code then ids[#ids + 1] = "code " .. e.code end
  if e.log_id then ids[#ids + 1] = "log_id " .. e.log_id end
  if e.request_id then ids[#ids + 1] = "request_id " .. e.request_id end
  if #ids > 0 then text = text .. " [" .. concat(ids, ", ") .. "]" end
  return text
end
Error.__tostring = one_line

-- Makes t an error object (kind and message required).
function errors.new(t)
  return setmetatable(t, Error)
end

-- True when e is a sapwf error object.
function errors.is_error(e)
  return getmetatable(e) == Error
end

function errors.config(message)
  return setmetatable({ kind = "config", message = message, retryable = false,
                        outcome = "not_sent" }, Error)
end

function errors.invalid(message, code, method, path)
  return setmetatable({ kind = "invalid", message = message, code = code, retryable = false,
                        outcome = "not_sent", method = method, path = path }, Error)
end

-- Retry and outcome rules for an HTTP answer (see the top of this file). idempotent:
-- whether sending the call twice does what sending it once does (send.idempotent decides:
-- GET, PUT and the PATCHes that set values); a call that may have acted is retryable only
-- then.
local function judge_status(status, idempotent)
  if status == 408 or status == 429 then return true, "rejected" end
  -- A 503 may come from a proxy after the service acted.
  if status == 503 then
    if idempotent then return true, "rejected" end
    return false, "unknown"
  end
  if status == 409 then return true, "rejected" end
  if status == 500 or status == 502 or status == 504 then return idempotent, "unknown" end
  -- Any other 5xx (a 501, a 507, a gateway's 520 to 529, a proxy's 599) is an error on the
  -- way or in the service, whose outcome no status names; a 303 says the request was
  -- processed (RFC 9110 15.4.4). Neither is sent again.
  if status >= 500 or status == 303 then return false, "unknown" end
  return false, "rejected"
end

-- The content type without parameters, for messages about bodies that are not JSON.
local function content_type(headers)
  local ct = headers and headers["content-type"]
  if type(ct) ~= "string" or ct == "" then return "no content type" end
  return (match(ct, "^[^;]*"))
end

-- An error object for an HTTP answer the client does not accept.
-- ctx: method, path (no query), idempotent (true when sending the call twice does what once
-- does; otherwise it counts as not), authority (or nil), hint (or nil), redact (or nil: what
-- takes the client's secrets out of the server's texts, send.redactor).
function errors.from_response(status, body, headers, ctx)
  local redact = ctx.redact
  if redact and headers then headers = scrub(headers, redact) end
  local e = {
    kind = errors.kind_for_status(status), status = status,
    method = ctx.method, path = ctx.path,
    request_id = headers and headers["x-vcap-request-id"],
  }
  local doc = nil
  if body and body ~= "" then
    doc = cjson_safe.decode(body)
    if redact then doc = scrub(doc, redact) end
  end
  local err = type(doc) == "table" and doc.error
  if type(err) == "table" then
    -- TechnicalError: {"error":{"message","code","logId","details"}}
    if type(err.message) == "string" then e.message = clip(err.message) end
    if type(err.code) == "string" then e.code = err.code end
    if type(err.logId) == "string" then e.log_id = err.logId end
    if type(err.details) == "table" then e.details = err.details end
  elseif type(err) == "string" then
    -- The OAuth layer's shape: {"error":"unauthorized","error_description":"..."}
    e.code = err
    local description = doc.error_description
    e.message = clip(type(description) == "string" and description or err)
  elseif type(doc) == "table" and type(doc.fault) == "table"
      and type(doc.fault.faultstring) == "string" then
    -- An API gateway's (SAP API Management): {"fault":{"faultstring","detail":{"errorcode"}}}
    e.message = clip(doc.fault.faultstring)
    local detail = doc.fault.detail
    if type(detail) == "table" and type(detail.errorcode) == "string" then
      e.code = detail.errorcode
    end
  elseif type(doc) == "table" and type(doc.message) == "string" then
    e.message = clip(doc.message)
  end
  if status >= 300 and status < 400 then
    -- Never followed (the token would travel with it): say where it pointed, host only.
    local location = headers and headers["location"]
    local target = type(location) == "string"
      and match(location, "^%a[%w+.-]*://([^/?#]*)") or nil
    target = target and gsub(target, "^.*@", "") or nil
    e.message = format("HTTP %d redirect%s, not followed", status,
                       target and " to " .. clip(target) or "")
    e.hint = "sapwf follows no redirect, so the token never goes elsewhere: check that the "
      .. "API URL (endpoints.workflow_rest_url) is the service's own"
  end
  if not e.message then
    if not body or body == "" then
      e.message = format("HTTP %d with an empty body", status)
    elseif type(doc) == "table" then
      e.message = format("HTTP %d", status)
    else
      e.message = format("HTTP %d with a body that is not JSON (%s)", status,
                         content_type(headers))
    end
  end
  e.retryable, e.outcome = judge_status(status, ctx.idempotent == true)
  e.api_url = ctx.api_url
  if status == 403 and ctx.service ~= service.SPA then
    e.authority = ctx.authority
    e.hint = ctx.hint
    e.granted = ctx.granted      -- the authorities the token had (for hints in other words)
  elseif status == 403 then
    -- SPA grants roles, not authorities: the hint names the role, never a cf command.
    e.role = service.spa_role(ctx.op)
    e.hint = service.hint(e, ctx)
  elseif not e.hint then
    e.hint = service.hint(e, ctx)
  end
  return setmetatable(e, Error)
end

-- What a message about a 2xx answer that cannot be used adds: the call did happen, so a
-- start may have made an instance and a change may have been made.
local function happened(message, ctx)
  if ctx.method == "POST" and ctx.op == "start" then
    return message .. "; the workflow may have started; look it up before retrying"
  elseif ctx.method ~= "GET" then
    return message .. "; the change may have been made"
  end
  return message
end

local function unusable(status, headers, ctx, message)
  return setmetatable({
    kind = "decode", status = status, message = happened(message, ctx), method = ctx.method,
    path = ctx.path, request_id = headers and headers["x-vcap-request-id"],
    retryable = false, outcome = "unknown",
  }, Error)
end

-- A 2xx answer whose body could not be decoded. The call did happen.
function errors.decode(status, headers, ctx, detail)
  local message
  if detail then
    message = format("the %d answer is not valid JSON (%s): %s", status,
                     content_type(headers), detail)
  else
    message = format("the %d answer has an empty body where JSON was expected", status)
  end
  return unusable(status, headers, ctx, message)
end

-- A 2xx answer that is JSON, but not of the type the operation answers (got: "JSON null",
-- "a number", "an array", ...; expected: "an object", "an array", ...): a proxy's or a
-- broken service's answer, never a result. The call did happen, as for errors.decode.
function errors.unexpected(status, headers, ctx, got, expected)
  return unusable(status, headers, ctx,
                  format("the %d answer is %s where %s was expected", status, got, expected))
end

-- What to do about a TLS failure (README, Troubleshooting), by libcurl's code: our own
-- certificate or key (58 CURLE_SSL_CERTPROBLEM, 98 CURLE_SSL_CLIENTCERT), a CA file that
-- cannot be read (77 CURLE_SSL_CACERT_BADFILE), or else the server's certificate.
local CLIENT_CERT_CODES = { [58] = true, [98] = true }
local function tls_hint(curl_code)
  if CLIENT_CERT_CODES[curl_code] then
    return "check the key's certificate and key (PEM, and that they belong together)"
  elseif curl_code == 77 then
    return "the cafile given cannot be read as PEM certificates: check its path and content"
  end
  return "the server's certificate is not trusted: install ca-certificates, or pass "
    .. "cafile (behind a TLS-inspecting proxy: that proxy's CA); check this machine's clock"
end

-- Takes the client's secrets out of a `sapwf.core` error's server texts, in place (redact
-- as for from_response; nil: none). Where an answer came (a token endpoint's refusal), its
-- error and error_description are the server's words; the rest, and libcurl's messages,
-- are not. Also for sapwf.ngx, which shares a failed token fetch's error before it gets
-- here. Returns e.
function errors.redact_core(e, redact)
  if redact and e.status then
    e.message, e.code = scrub(e.message, redact), scrub(e.code, redact)
  end
  return e
end

-- Gives a `sapwf.core` error (no HTTP answer came) its metatable, retry and outcome rules;
-- idempotent and redact as for errors.from_response (a token endpoint's refusal brings its
-- own words: its error and error_description).
function errors.from_core(cerr, method, path, idempotent, redact)
  local e = {}
  if type(cerr) == "table" then
    for k, v in pairs(cerr) do e[k] = v end
  else
    e.kind, e.message = "network", tostring(cerr)
  end
  errors.redact_core(e, redact)
  e.kind = e.kind or "network"
  e.message = e.message and clip(tostring(e.message)) or e.kind
  e.method, e.path = method, path
  local kind = e.kind
  if kind == "tls" and e.hint == nil then e.hint = tls_hint(e.curl_code) end
  if e.phase == "token" then
    -- The API request was never sent: we had no token. The token endpoint's own overload
    -- answers read as they do from the API.
    local status = type(e.status) == "number" and e.status or nil
    if status == 429 then e.kind = "rate_limited" elseif status == 408 then e.kind = "timeout" end
    kind = e.kind
    if kind == "config" and e.hint == nil then       -- no token endpoint there (token.c)
      e.hint = "token_url must be the token endpoint's full URL: the service key's uaa.url "
        .. "followed by /oauth/token (sapwf.new builds it so from a service key)"
    end
    e.outcome = "not_sent"
    e.retryable = (kind == "network" or kind == "timeout" or kind == "rate_limited") or
                  (kind == "server" and status ~= nil and status >= 500)
  elseif e.sent == false then
    e.outcome = "not_sent"
    e.retryable = kind == "network" or kind == "timeout"
  else
    e.outcome = "unknown"
    e.retryable = (kind == "network" or kind == "timeout") and idempotent == true
  end
  return setmetatable(e, Error)
end

-- The authorities a token's scope string grants: "workflow!b10150.TASK_GET uaa.resource"
-- gives { "TASK_GET" }. Entries without a dot and uaa.* are not authorities.
function errors.granted(scope)
  local out = {}
  if type(scope) ~= "string" then return out end
  for entry in scope:gmatch("%S+") do
    if not find(entry, "^uaa%.") then
      local authority = match(entry, "%.([^%.]+)$")
      if authority then out[#out + 1] = authority end
    end
  end
  return out
end

-- The exact command that grants `missing` while keeping what the token already has.
-- Returns the hint text.
-- How the library says "get a new token"; the command line says it its own way (style).
local LIBRARY_STYLE = { instance = "<instance>", renew = "then get a new token with wf:token(true)",
  renew_already = "call wf:token(true) for a new one" }

function errors.forbidden_hint(instance, scope, missing, style)
  style = style or LIBRARY_STYLE
  local set, list = {}, {}
  local granted = type(scope) == "table" and scope or errors.granted(scope)
  local already = false
  for _, a in ipairs(granted) do
    if a == missing then already = true end
    set[a] = true
  end
  if already then
    return format("the token already has %s, so the 403 has another cause (a token issued "
      .. "before the last cf update-service: %s; or the object belongs to another "
      .. "application scope)", missing, style.renew_already)
  end
  set[missing] = true
  for a in pairs(set) do list[#list + 1] = '"' .. a .. '"' end
  sort(list)
  return format("cf update-service %s -c '{\"authorities\":[%s]}' (the list replaces the "
    .. "old one; it keeps the %d authorities this token has), %s", instance or style.instance,
    concat(list, ","), #granted, style.renew)
end

return errors
