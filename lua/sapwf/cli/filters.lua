-- The filters of the list commands, made from the operations table
-- (lua/sapwf/operations.lua): every query parameter of an operation that is not paging or
-- `$`-prefixed becomes an option of its command, --kebab-case of the API's name, repeatable
-- (the service ORs a repeated filter) but for those it takes once (the table's query_once).
-- So the command line has every filter the API has, and a new one in the table reaches it
-- without a line here. Only the help texts and the spellings older scripts use are written
-- by hand.
local operations = require "sapwf.operations"

local M = {}

-- Spellings kept from before the options were generated: API name -> option.
local ALIASES = {
  tasks = { workflowInstanceId = "--instance-id", workflowDefinitionId = "--definition-id",
            definitionId = "--task-definition-id" },
}

-- Help where the API's name says too little; the rest get a generic text.
local HELP = {
  instances = {
    definitionId = "Only instances of this definition.",
    status = "Only this status (RUNNING, ERRONEOUS, SUSPENDED, CANCELED, COMPLETED). Without "
      .. "filters the service lists RUNNING and ERRONEOUS.",
    businessKey = "Only instances with this business key.",
    containsText = "Instances whose id, definition, subject, starter or business key contain "
      .. "TEXT.",
    startedFrom = "Only instances started at or after this time (e.g. 2026-01-31T00:00:00.000Z).",
    startedUpTo = "Only instances started at or before this time.",
  },
  tasks = {
    workflowInstanceId = "Only tasks of this workflow instance.",
    workflowDefinitionId = "Only tasks of instances of this workflow definition.",
    definitionId = "Only tasks of this task definition.",
    status = "Only this status (READY, RESERVED, COMPLETED, CANCELED).",
    processor = "Only tasks processed by this user.",
    containsText = "Tasks whose fields contain TEXT.",
  },
}

-- The help of a filter without one of its own.
local function generic_help(name)
  if name:match("%lFrom$") then
    return string.format("Only items from VALUE on (the API's %s: a time range's start, "
      .. "inclusive).", name)
  elseif name:match("%lUpTo$") then
    return string.format("Only items up to VALUE (the API's %s: a time range's end, "
      .. "inclusive).", name)
  end
  return string.format("Only items whose %s is VALUE (the API's %s filter).", name, name)
end

local function kebab(name)
  return "--" .. (name:gsub("%u", function(c) return "-" .. c:lower() end))
end

-- The filters of an operation: a list of { name = API name, option = "--flag",
-- target = argparse's target }.
function M.of(op_name)
  local op = assert(operations.by_name[op_name], op_name)
  local out = {}
  for _, name in ipairs(op.query or {}) do
    if name:sub(1, 1) ~= "$" then
      local option = (ALIASES[op_name] or {})[name] or kebab(name)
      out[#out + 1] = { name = name, option = option, target = "filter_" .. name }
    end
  end
  return out
end

--- Adds the operation's filters to an argparse command. non_empty(option) is the parser's
-- converter that refuses an empty value: the service takes an empty filter for none, so a
-- script's empty "$ID" would list (and then act on) every item.
function M.add(command, op_name, non_empty)
  local op = operations.by_name[op_name]
  for _, f in ipairs(M.of(op_name)) do
    local help = (HELP[op_name] or {})[f.name] or generic_help(f.name)
    local not_empty = non_empty(f.option)
    -- and what else the library would refuse in this filter's value (query.value_problem)
    local function convert(text)
      local value, why = not_empty(text)
      if value == nil then return nil, why end
      local problem = require("sapwf.query").value_problem(op, f.name, text)
      if problem then return nil, f.option .. ": " .. problem end
      return value
    end
    if op.query_once[f.name] then
      command:option(f.option, help):argname("VALUE"):target(f.target):overwrite(false)
        :convert(convert)
    else
      command:option(f.option, help .. " Repeat for any of several.")
        :argname("VALUE"):count("*"):target(f.target):convert(convert)
    end
  end
end

--- The query of the parsed arguments: API name -> value, or a list for a repeated filter.
function M.query(op_name, args, query)
  query = query or {}
  for _, f in ipairs(M.of(op_name)) do
    local values = args[f.target]
    if type(values) == "string" then                  -- a filter taken once
      query[f.name] = values
    elseif values and #values == 1 then
      query[f.name] = values[1]
    elseif values and #values > 1 then
      query[f.name] = values
    end
  end
  return query
end

return M
