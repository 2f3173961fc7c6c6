-- /oauth/token: XSUAA's client-credentials grant.
--
-- Client authentication: HTTP Basic with the raw client id and secret (as XSUAA takes them),
-- or the form fields client_id/client_secret; on the mTLS listener the client certificate
-- (its CN is the client id). Parameters come from the form body of a POST and from the
-- query string (GET works too, as UAA answers it).
local cjson = require "cjson.safe"
local tokens = require "sapwf.emulator.server.tokens"
local shared = require "sapwf.emulator.server.shared"

local ngx = ngx
local match, find, sub = string.match, string.find, string.sub
local pairs, type = pairs, type

local oauth = {}

local BAD_CREDENTIALS = '{"error":"invalid_client","error_description":"Bad credentials"}'
local BAD_CREDENTIALS_CHALLENGE =
  'Basic realm="UAA/client", error="unauthorized", error_description="Bad credentials"'
local NO_CREDENTIALS = '{"error":"unauthorized","error_description":'
  .. '"Full authentication is required to access this resource"}'
local NO_CREDENTIALS_CHALLENGE = 'Basic realm="UAA/client", error="unauthorized",'
  .. ' error_description="Full authentication is required to access this resource"'

local TOKEN_HEADERS = { ["Cache-Control"] = "no-store", Pragma = "no-cache" }

local function first(value)
  if type(value) == "table" then return value[1] end
  if value == true then return "" end
  return value
end

local function parameters()
  local params = {}
  for name, value in pairs(ngx.req.get_uri_args(100)) do params[name] = first(value) end
  if ngx.req.get_method() == "POST" then
    ngx.req.read_body()
    local form = ngx.req.get_post_args(100)
    for name, value in pairs(form) do params[name] = first(value) end
  end
  return params
end

local function basic_credentials()
  local header = ngx.var.http_authorization
  if not header then return nil end
  local encoded = match(header, "^[Bb][Aa][Ss][Ii][Cc] +(%S+) *$")
  local decoded = encoded and ngx.decode_base64(encoded)
  if not decoded then return false end
  local colon = find(decoded, ":", 1, true)
  if not colon then return false end
  return sub(decoded, 1, colon - 1), sub(decoded, colon + 1)
end

local function certificate_cn()
  if ngx.var.ssl_client_verify ~= "SUCCESS" then return nil end
  -- RFC 2253 form, e.g. "CN=sb-...|workflow!b10150,O=sapwf emulator"
  return match(ngx.var.ssl_client_s_dn or "", "^CN=([^,]*)") or
    match(ngx.var.ssl_client_s_dn or "", ",CN=([^,]*)")
end

local function unauthorized(body, challenge)
  return 401, body, { ["WWW-Authenticate"] = challenge }
end

--- Authenticates the caller: the client, or nil plus the 401 answer.
local function authenticate(config, listener, params)
  local id, secret = basic_credentials()
  if id == false then return nil, unauthorized(BAD_CREDENTIALS, BAD_CREDENTIALS_CHALLENGE) end
  if not id then id, secret = params.client_id, params.client_secret end

  if listener == "mtls" then
    local cn = certificate_cn()
    if not cn then return nil, unauthorized(NO_CREDENTIALS, NO_CREDENTIALS_CHALLENGE) end
    id = id or cn
    shared.count_in("token_requests_by_client", id)
    local client = config.clients[id]
    if id ~= cn or not client then
      return nil, unauthorized(BAD_CREDENTIALS, BAD_CREDENTIALS_CHALLENGE)
    end
    return client
  end

  if not id then return nil, unauthorized(NO_CREDENTIALS, NO_CREDENTIALS_CHALLENGE) end
  shared.count_in("token_requests_by_client", id)
  local client = config.clients[id]
  if not client or not client.secret or client.secret ~= secret then
    return nil, unauthorized(BAD_CREDENTIALS, BAD_CREDENTIALS_CHALLENGE)
  end
  return client
end

--- Handles a token request: status, body, headers.
function oauth.token(config, listener)
  local method = ngx.req.get_method()
  if method ~= "POST" and method ~= "GET" then
    return 405, '{"error":"method_not_allowed","error_description":"Request method \''
      .. method .. '\' not supported"}', { Allow = "GET, POST" }
  end
  local params = parameters()
  local client, status, body, headers = authenticate(config, listener, params)
  if not client then return status, body, headers end

  local grant = params.grant_type
  if not grant or grant == "" then
    return 400, '{"error":"invalid_request","error_description":"Missing grant type"}'
  end
  if grant ~= "client_credentials" then
    return 400, cjson.encode({ error = "unsupported_grant_type",
      error_description = "Unsupported grant type: " .. grant })
  end

  local iss = ngx.var.scheme .. "://" .. (ngx.var.http_host or ngx.var.server_addr)
    .. "/oauth/token"
  shared.count("tokens_issued")
  return 200, cjson.encode(tokens.issue(config, client, iss)), TOKEN_HEADERS
end

return oauth
