-- `sapwf token`: when the access token expires and which scopes it carries. The scopes come
-- from the token answer's `scope` field (passed on by wf:token), so the JWT is never
-- decoded here. The token itself is a secret: only --raw prints it.
local errors = require "sapwf.errors"
local json = require "sapwf.json"

local M = {}

local function scope_list(scope)
  local list = {}
  for entry in tostring(scope or ""):gmatch("%S+") do
    list[#list + 1] = entry
  end
  table.sort(list)
  return list
end

-- The last second an ISO 8601 date with a four-digit year can name (9999-12-31T23:59:59Z):
-- os.date cannot show every time beyond it (Lua 5.4 raises, 5.1 casts out of range).
local LAST_DATE = 253402300799

-- expiresIn and expiresAt for the seconds a token has left: json.null for both when the
-- token answer gave no expires_in (the library then says math.huge: JSON has no infinity),
-- and for expiresAt alone when the expiry is past any date. Also for doctor's report.
function M.expiry(seconds_left)
  if seconds_left ~= seconds_left or seconds_left == math.huge then
    return json.null, json.null
  end
  local seconds = math.floor(seconds_left)
  local at = os.time() + seconds
  if at > LAST_DATE then
    return seconds, json.null
  end
  return seconds, os.date("!%Y-%m-%dT%H:%M:%SZ", at)
end

-- What a table shows for a token answer without expires_in (JSON: null).
M.NO_EXPIRY = "no expiry given"

-- The token summary: {expiresIn, expiresAt, scopes, authorities}; nil and err on failure.
function M.summary(wf)
  local token, seconds_left, scope = wf:token()
  if not token then
    return nil, seconds_left
  end
  local summary = {}
  summary.expiresIn, summary.expiresAt = M.expiry(seconds_left)
  if scope ~= nil then
    local authorities = errors.granted(scope)
    table.sort(authorities)
    summary.scopes = json.array(scope_list(scope))
    summary.authorities = json.array(authorities)
  end
  return summary, nil, token
end

function M.run(ctx, args)
  local wf, err = ctx:client()
  if not wf then
    return nil, err
  end
  if args.raw then
    -- the token alone: nothing of the summary, which could only fail on its way
    local token
    token, err = wf:token()
    if not token then
      return nil, err
    end
    ctx.out:emit(token, "\n")
    ctx.out:flush()
    return
  end
  local summary
  summary, err = M.summary(wf)
  if not summary then
    return nil, err
  end
  if summary.scopes == nil then
    ctx.out:message("the token answer named no scopes")
  end
  if summary.expiresIn == json.null and ctx.out.format == "table" then
    summary.expiresIn, summary.expiresAt = M.NO_EXPIRY, nil   -- one row says it
  end
  ctx.out:result(summary, { order = { "expiresIn", "expiresAt", "authorities", "scopes" } })
end

return M
