-- Shared by the reliability specs (spec/40-*): clients with quick retries, emulator counters,
-- and the search for secrets in whatever a client hands out.
local sapwf = require "sapwf"
local core = require "sapwf.core"

local R = {}

R.sleep = core.sleep
R.now = core.monotonic
R.unpack = table.unpack or unpack          -- Lua 5.1 and LuaJIT have only the global

--- The results of a call as a table with n (table.pack, which Lua 5.1 lacks).
function R.pack(...)
  return { n = select("#", ...), ... }
end

--- Whether a shell command succeeded, on every Lua (5.1 returns a wait status).
function R.run(command)
  local a, _, code = os.execute(command)
  if type(a) == "number" then return a == 0 end
  return a == true and (code == nil or code == 0)
end

--- A client of the emulator for `name` ("full", "limited", ...) whose retries wait
-- milliseconds instead of seconds, so a test can go through all of them quickly. extra
-- overrides any option. Returns the client and the events its log hook received.
function R.client(emu, name, extra)
  local events = {}
  local opts = { service_key = emu:service_key(name or "full"), backoff_base = 0.01,
                 backoff_max = 0.05, log = function(event) events[#events + 1] = event end }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(sapwf.new(opts)), events
end

--- How often the emulator saw an operation ("POST /v1/workflow-instances").
function R.count(emu, operation)
  return emu:stats().api_requests_by_operation[operation] or 0
end

--- Every string in a value, recursively (keys too), tostring of the rest: what a secret
-- could hide in. Tables are visited once.
function R.strings(value, out, seen)
  out, seen = out or {}, seen or {}
  local t = type(value)
  if t == "table" then
    if seen[value] then return out end
    seen[value] = true
    local mt = getmetatable(value)
    if mt and mt.__tostring then out[#out + 1] = tostring(value) end
    for k, v in pairs(value) do
      R.strings(k, out, seen)
      R.strings(v, out, seen)
    end
  elseif t == "string" then
    out[#out + 1] = value
  elseif value ~= nil then
    out[#out + 1] = tostring(value)
  end
  return out
end

--- Raises (a failed assertion) naming `what` when any needle occurs in any string of value.
function R.assert_no_secret(value, needles, what)
  for _, text in ipairs(R.strings(value)) do
    for name, needle in pairs(needles) do
      if needle ~= "" and text:find(needle, 1, true) then
        error(string.format("%s holds the %s: %q", what or "a value", name,
                            text:sub(1, 120)), 2)
      end
    end
  end
end

-- base64 of a string, for the Basic header a secret would make: by the base64 command, not
-- by the code under test.
function R.base64(s)
  local quoted = "'" .. s:gsub("'", "'\\''") .. "'"
  local pipe = assert(io.popen("printf %s " .. quoted .. " | base64 -w0"))
  local out = pipe:read("*a")
  pipe:close()
  return out
end

--- The needles for a client of the emulator: its secret, the Basic credentials (header and
-- base64 alone) and, once known, tokens. Add more with needles.name = text.
function R.needles(emu, name)
  local key = emu:service_key(name or "full")
  local id, secret = key.uaa.clientid, key.uaa.clientsecret
  local needles = { secret = secret }
  if secret then
    local basic = R.base64(id .. ":" .. secret)
    needles.basic = basic
    needles["Basic header"] = "Basic " .. basic
    -- libcurl escapes nothing in Basic credentials, but a URL-encoded form could leak too
    needles["escaped secret"] = (secret:gsub("[^%w%-%._~]", function(c)
      return string.format("%%%02X", c:byte()) end))
  end
  return needles, key
end

return R
