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

-- The token summary: {expiresIn, expiresAt, scopes, authorities}; nil and err on failure.
function M.summary(wf)
  local token, seconds_left, scope = wf:token()
  if not token then
    return nil, seconds_left
  end
  local summary = {
    expiresIn = math.floor(seconds_left),
    expiresAt = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + math.floor(seconds_left)),
  }
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
  local summary, token
  summary, err, token = M.summary(wf)
  if not summary then
    return nil, err
  end
  if args.raw then
    ctx.out:emit(token, "\n")
    ctx.out:flush()
    return
  end
  if summary.scopes == nil then
    ctx.out:message("the token answer named no scopes")
  end
  ctx.out:result(summary, { order = { "expiresIn", "expiresAt", "authorities", "scopes" } })
end

return M
