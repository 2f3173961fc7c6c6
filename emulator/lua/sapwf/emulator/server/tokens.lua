-- Access tokens: JWT-shaped like XSUAA's (base64url(header).base64url(payload).signature),
-- with the claims a client-credentials token has. They are signed with HMAC-SHA1 (what
-- nginx offers) under a key made per start plus the token generation, so any worker can
-- check any token, and "expire all tokens" only has to bump the generation. Clients must
-- treat the token as opaque, as they must with XSUAA.
local cjson = require "cjson.safe"
local b64 = require "ngx.base64"
local util = require "sapwf.emulator.server.util"
local defaults = require "sapwf.emulator.defaults"
local spa = require "sapwf.emulator.server.spa"

local ngx = ngx
local hmac_sha1, time = ngx.hmac_sha1, ngx.time
local encode_b64url, decode_b64url = b64.encode_base64url, b64.decode_base64url
local find, sub, match, lower, concat = string.find, string.sub, string.match, string.lower,
  table.concat
local ipairs, type = ipairs, type

local tokens = {}

local HEADER = encode_b64url('{"alg":"HS1","kid":"sapwf-emulator","typ":"JWT"}')
local SCOPE_PREFIX = defaults.service_xsappname .. "."

-- token text -> { gen=, exp=, client_id=, granted = {AUTHORITY = true} }
local verified, verified_count = {}, 0
local VERIFIED_MAX = 10000

--- The scopes of a token for these authorities, as XSUAA lists them.
function tokens.scopes(authorities)
  local scopes = {}
  for i, authority in ipairs(authorities) do scopes[i] = SCOPE_PREFIX .. authority end
  scopes[#scopes + 1] = "uaa.resource"
  return scopes
end

local function sign(config, data)
  return encode_b64url(hmac_sha1(config.signing_key .. "/" .. config.token_gen, data))
end

--- The token answer (a table) for client; iss is the token URL it was asked at.
function tokens.issue(config, client, iss)
  local issued_at = time()
  local clientid = client.clientid
  local scopes = tokens.scopes(client.authorities)
  -- An SPA token's scope names roles; what the client may do still rides in `authorities`
  -- (which the API checks), so a token keeps what it was issued with in both modes.
  local shown = config.spa and spa.role_scopes(client.authorities) or scopes
  local payload = {
    jti = util.hex_id(),
    ext_attr = { enhancer = "XSUAA", subaccountid = config.zoneid, zdn = config.identityzone },
    sub = clientid, client_id = clientid, cid = clientid, azp = clientid,
    scope = shown, authorities = scopes,
    grant_type = "client_credentials",
    rev_sig = sub(util.hex_id(), 1, 8),
    iat = issued_at,
    exp = issued_at + client.expires_in + 1,   -- XSUAA: expires_in 43199, exp - iat 43200
    iss = iss, zid = config.zoneid,
    aud = { "uaa", defaults.service_xsappname, clientid },
  }
  local unsigned = HEADER .. "." .. encode_b64url(cjson.encode(payload))
  return {
    access_token = unsigned .. "." .. sign(config, unsigned),
    token_type = "bearer",
    expires_in = client.expires_in,
    scope = concat(shown, " "),
    jti = payload.jti,
  }
end

local function remember(token, entry)
  if verified_count >= VERIFIED_MAX then verified, verified_count = {}, 0 end
  verified[token] = entry
  verified_count = verified_count + 1
end

--- The checked claims of an `Authorization: Bearer` header value, or nil. Checked headers
-- are remembered by their whole text: a pattern over a 7 kB token would cost more than the
-- rest of a request.
function tokens.verify(config, authorization)
  if not authorization then return nil end
  local entry = verified[authorization]
  if not entry or entry.gen ~= config.token_gen then
    if lower(sub(authorization, 1, 7)) ~= "bearer " then return nil end
    local token = match(authorization, "^ *(.-) *$", 8)
    local dot1 = find(token, ".", 1, true)
    local dot2 = dot1 and find(token, ".", dot1 + 1, true)
    if not dot2 or sign(config, sub(token, 1, dot2 - 1)) ~= sub(token, dot2 + 1) then
      return nil
    end
    local claims = cjson.decode(decode_b64url(sub(token, dot1 + 1, dot2 - 1)) or "")
    if type(claims) ~= "table" then return nil end
    local granted = {}
    for _, scope in ipairs(claims.authorities or {}) do
      local authority = match(scope, "%.([%u_]+)$")
      if authority then granted[authority] = true end
    end
    entry = { gen = config.token_gen, exp = claims.exp, client_id = claims.client_id,
      granted = granted }
    remember(authorization, entry)
  end
  if time() >= entry.exp then return nil end
  return entry
end

return tokens
