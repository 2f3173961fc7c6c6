--- The sapwf client object: wf:token and wf:close. The API methods are documented by area
-- (`sapwf.definitions`, `sapwf.instances`, `sapwf.tasks`, `sapwf.messages`, `sapwf.jobs`,
-- `sapwf.paging`, `sapwf.request`, `sapwf.batch`); this module composes them into the
-- client. A client dropped without wf:close is closed when collected, or by Lua 5.4's
-- `local wf <close> = ...`.

-- Each area module returns { methods = { name = function(self, ...) ... end } }. They are
-- composed here, in this order, and a name defined twice is an error at load time.
local base = require "sapwf.base"

local pairs, ipairs, error = pairs, ipairs, error

local client = {}

local methods = {}
client.methods = methods

--- Frees the connections and wipes the secret and token; idempotent. Later calls raise.
function methods.close(self)
  base.check_self(self, "close")
  base.close(self)
end

--- The access token, the seconds it has left and its scope string (space separated).
-- Fetched when missing or near expiry, or when force is true; a token endpoint that fails
-- for a while is asked again under the retry policy.
-- @tparam[opt] boolean force fetch a new one even if the cached one is good
-- @treturn string token
-- @treturn number seconds left (math.huge when the token endpoint gave no expires_in)
-- @treturn ?string scope
-- @return or nil, err (kind auth, network, timeout, tls, server or decode; phase "token")
function methods.token(self, force)
  base.open(self, "token")
  base.check_boolean_or_nil("token", 1, force)
  return base.token(self, force)
end

for _, area in ipairs({ "sapwf.definitions", "sapwf.instances", "sapwf.tasks",
                        "sapwf.messages", "sapwf.jobs", "sapwf.paging", "sapwf.request",
                        "sapwf.batch" }) do
  for name, fn in pairs(require(area).methods) do
    if methods[name] then error("sapwf: " .. area .. " defines wf:" .. name .. " again") end
    methods[name] = fn
  end
end

local mt = base.mt
mt.__index = methods
mt.__gc = base.close
mt.__close = base.close
mt.__tostring = base.describe

-- A client on transport t: see base.object.
client.wrap = base.object

return client
