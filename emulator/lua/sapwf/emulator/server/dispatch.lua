-- One API request after routing: token (401), authority (403), path parameters (400/404),
-- then the operation's handler. Answers status, body (table or text), headers.
local json = require "sapwf.emulator.server.json"
local util = require "sapwf.emulator.server.util"
local respond = require "sapwf.emulator.server.respond"
local tokens = require "sapwf.emulator.server.tokens"
local query = require "sapwf.emulator.server.query"
local router = require "sapwf.emulator.server.router"
local operations = require "sapwf.emulator.server.operations"
local spa = require "sapwf.emulator.server.spa"

local ngx = ngx
local type, pairs, ipairs, xpcall, getmetatable, setmetatable = type, pairs, ipairs, xpcall,
  getmetatable, setmetatable
local traceback = debug.traceback
local io_open = io.open

local dispatch = {}

for _, operation in ipairs(operations) do router.add(operation) end

local BEARER_CHALLENGE = 'Bearer error="unauthorized", error_description='
  .. '"Full authentication is required to access this resource."'

--- What handlers get: path parameters, the caller, the query and the body (both lazily).
local Request = {}
Request.__index = Request

function Request:args()
  local args = self._args
  if not args then
    args = ngx.req.get_uri_args(1000)
    self._args = args
  end
  return args
end

local function body_text()
  ngx.req.read_body()
  local text = ngx.req.get_body_data()
  if text then return text end
  local file = ngx.req.get_body_file()       -- bodies over client_body_buffer_size
  if not file then return nil end
  local handle = io_open(file, "rb")
  if not handle then return nil end
  text = handle:read("*a")
  handle:close()
  return text
end

--- The decoded JSON body (nil when there is none or it is not JSON).
function Request:json()
  if not self._read then
    self._read = true
    local text = body_text()
    if text and text ~= "" then self._body = json.decode(text) end
  end
  return self._body
end

local function granted(claims, needed)
  if type(needed) == "string" then return claims.granted[needed] == true end
  for _, name in ipairs(needed) do
    if claims.granted[name] then return true end
  end
  return false
end

local function bad_parameter(route)
  if route.bad_request or not route.not_found then
    return respond.bad_request("A path parameter has an invalid length.")
  end
  return respond.fail(route.not_found)
end

local function on_error(err)
  if getmetatable(err) == query.Invalid then return err end
  return traceback(err, 2)
end

--- Answers an API request. route, params, allowed come from router.match.
function dispatch.api(config, route, params, allowed)
  -- A gateway in front of the API checks its key before the API sees the token.
  local key = config.api_key
  if key and ngx.req.get_headers()[key.header] ~= key.value then
    return 401, { fault = { faultstring = "Invalid ApiKey",
      detail = { errorcode = "oauth.v2.InvalidApiKey" } } }
  end
  local claims = tokens.verify(config, ngx.var.http_authorization)
  if not claims then
    return 401, respond.UNAUTHORIZED, { ["WWW-Authenticate"] = BEARER_CHALLENGE }
  end
  if not route then
    if allowed then
      return 405, { error = { message = "Request method '" .. ngx.req.get_method()
        .. "' not supported", logId = util.uuid() } }, { Allow = allowed }
    end
    return 404, { error = { message = "No resource found for the request path.",
      logId = util.uuid() } }
  end

  local req = setmetatable({ params = params, claims = claims, user = claims.client_id,
    route = route, config = config }, Request)
  local needed = route.authority
  if type(needed) == "function" then needed = needed(req) end
  if not granted(claims, needed) then return 403, respond.FORBIDDEN end
  if config.spa then
    local status, body = spa.media_type_problem(route.method)
    if status then return status, body end
  end

  local limits = operations.PARAMETERS
  for name, value in pairs(params) do
    local limit = limits[name]
    if #value < limit[1] or #value > limit[2] then return bad_parameter(route) end
  end

  local ok, status, body, headers = xpcall(route.handler, on_error, req)
  if ok then return status, body, headers end
  if getmetatable(status) == query.Invalid then return respond.bad_request(status.message) end
  ngx.log(ngx.ERR, "emulator: ", route.key, " failed: ", status)
  return respond.fail("internal")
end

return dispatch
