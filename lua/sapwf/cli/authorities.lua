-- `sapwf authorities [OPERATION...]`: the {"authorities":[...]} document that
-- `cf update-service INSTANCE -c` takes, for the operations named (every authority when none
-- is named). The operations and their authorities come from lua/sapwf/operations.lua.
local operations = require "sapwf.operations"

local M = {}

-- CLI command names that differ from the operation names.
local ALIASES = {
  complete = "complete_task",
  message = "send_message",
  ["task-definitions"] = "task_definitions",
}

-- The operation for a name as users type it ("task-context", "complete", "start").
function M.operation(name)
  local key = ALIASES[name] or name:gsub("-", "_")
  return operations.by_name[key]
end

function M.operation_names()
  local names = {}
  for _, op in ipairs(operations.list) do
    names[#names + 1] = op.name
  end
  return names
end

-- The sorted authorities the named operations need (all of them for an empty list), or nil
-- and a usage error naming the unknown operations.
function M.needed(names)
  if names == nil or #names == 0 then
    return { (table.unpack or unpack)(operations.authorities) }
  end
  local set, unknown = {}, {}
  for _, name in ipairs(names) do
    local op = M.operation(name)
    if op then
      set[op.authority] = true
    else
      unknown[#unknown + 1] = name
    end
  end
  if #unknown > 0 then
    return nil, {
      kind = "usage",
      message = string.format("unknown operation%s: %s (known: %s)", #unknown > 1 and "s" or "",
        table.concat(unknown, ", "), table.concat(M.operation_names(), " ")),
    }
  end
  local list = {}
  for authority in pairs(set) do
    list[#list + 1] = authority
  end
  table.sort(list)
  return list
end

-- The document is configuration to paste, so it is JSON whatever --output says.
function M.run(ctx, args)
  local list, err = M.needed(args.operation)
  if not list then
    return nil, err
  end
  local json = require "sapwf.json"
  ctx.out:json({ authorities = json.array(list) })
end

return M
