--- The sapwf client object: wf:token and wf:close. The API methods are documented by area
-- (`sapwf.definitions`, `sapwf.instances`, `sapwf.tasks`, `sapwf.messages`, `sapwf.jobs`,
-- `sapwf.paging`, `sapwf.request`, `sapwf.batch`); this module composes them into the
-- client. A client dropped without wf:close is closed when it is collected, or, in Lua 5.4,
-- when a to-be-closed variable that holds it goes out of scope.
--
-- Every call returns its result (the Returns of each method) and then a `meta` table
-- (`status`: the HTTP status; `request_id`: the x-vcap-request-id header, to quote to SAP
-- support; `total`: the number of matches, for list calls with inlinecount; wf:request's
-- also `headers`), or nil and an error object (`sapwf.errors`).
-- A method's "Fails" names the kinds (err.kind) it returns besides those any call may:
-- "network", "timeout", "tls", "auth" (the token endpoint refused the credentials),
-- "rate_limited", "server" and "decode". Wrong arguments raise.

-- Each area module returns { methods = { name = function(self, ...) ... end } }. They are
-- composed here, in this order, and a name defined twice is an error at load time.
local base = require "sapwf.base"

local pairs, ipairs, error = pairs, ipairs, error

local client = {}

local methods = {}
client.methods = methods

--- Closes the client: frees its connections and wipes the secret and the token. Closing
-- twice does nothing; any other call on a closed client raises. Closed during a batch
-- (wf:start_many, wf:map), it keeps what redaction needs until the batch has handed over
-- the requests in flight, and the batch wipes it as it ends.
function methods:close()
  base.check_self(self, "close")
  base.close(self)
end

--- The access token, with the seconds it has left and its scope. A cached token is used
-- until it is within token_margin of its expiry (sapwf.new); then, or with force, a new one
-- is fetched. A token endpoint that fails for a while is asked again under the retry policy.
-- @tparam[opt=false] boolean force fetch a new token even if the cached one is good
-- @treturn string the token (a secret: never log it)
-- @treturn number the seconds it has left (math.huge when the token endpoint gave no
-- expires_in)
-- @treturn ?string its scope: the authorities granted, space separated
-- @fails nil, err (see `sapwf.errors`): phase "token"; kind "auth" for refused credentials,
-- "network", "timeout", "tls", "server" or "decode"
function methods:token(force)
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
