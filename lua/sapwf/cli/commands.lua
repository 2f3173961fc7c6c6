-- The commands that map to one client call each: definitions, instances, instance, context,
-- cancel, suspend, resume, tasks, complete, message and start (one instance; --from is bulk.lua).
local core = require "sapwf.core"
local input = require "sapwf.cli.input"
local filters = require "sapwf.cli.filters"

local M = {}

local INSTANCE_COLUMNS = { "id", "definitionId", "status", "startedAt", "businessKey", "subject" }
local TASK_COLUMNS = { "id", "status", "subject", "workflowInstanceId", "processor", "createdAt" }
local DEFINITION_COLUMNS = { "id", "name", "version", "createdAt", "createdBy" }

local function paging(args, query)
  query.top = args.top
  query.skip = args.skip
  query.orderby = args.orderby
  return query
end

-- Every item of every page through wf:each_instance / wf:each_task. Those raise their error
-- object when a page fails (a for loop cannot return nil, err); here it becomes nil, err again.
local function collect(wf, each_method, query)
  local items = {}
  local ok, err = pcall(function()
    for item in wf[each_method](wf, query) do
      items[#items + 1] = item
    end
  end)
  if not ok then
    if type(err) == "table" and err.kind then
      return nil, err
    end
    error(err, 0)
  end
  return items
end

-- --all -o ndjson: each item is written as it comes, so the list is never held whole.
local function stream(ctx, wf, each_method, query)
  local ok, err = pcall(function()
    for item in wf[each_method](wf, query) do
      ctx.out:json(item)                 -- one line, written (and flushed) at once
    end
  end)
  if not ok then
    if type(err) == "table" and err.kind and err.kind ~= "io" then
      return nil, err
    end
    error(err, 0)
  end
end

local function list_command(ctx, method, each_method, query, all, columns)
  local wf, err = ctx:client()
  if not wf then
    return nil, err
  end
  local items
  if all then
    if query.top and (query.top < 1 or query.top > 1000) then
      return nil, { kind = "usage", message = "with --all, --top is the page size: 1 to 1000" }
    end
    if ctx.out.format == "ndjson" then
      return stream(ctx, wf, each_method, query)
    end
    items, err = collect(wf, each_method, query)
  else
    items, err = wf[method](wf, query)
  end
  if not items then
    return nil, err
  end
  ctx.out:result(items, { list = true, columns = columns })
end

local function show(ctx, method, ...)
  local wf, err = ctx:client()
  if not wf then
    return nil, err
  end
  local value
  value, err = wf[method](wf, ...)
  if value == nil then
    return nil, err
  end
  ctx.out:result(value)
end

function M.definitions(ctx, args)
  return list_command(ctx, "definitions", nil, paging(args, {}), false, DEFINITION_COLUMNS)
end

function M.instances(ctx, args)
  local query = paging(args, filters.query("instances", args))
  return list_command(ctx, "instances", "each_instance", query, args.all, INSTANCE_COLUMNS)
end

function M.tasks(ctx, args)
  local query = paging(args, filters.query("tasks", args))
  return list_command(ctx, "tasks", "each_task", query, args.all, TASK_COLUMNS)
end

function M.instance(ctx, args)
  if args.attributes then
    return show(ctx, "instance", args.id, { expand = "attributes" })
  end
  return show(ctx, "instance", args.id)
end

function M.context(ctx, args)
  return show(ctx, "context", args.id)
end

-- cancel, suspend, resume: the service answers 202 with no body and changes the status
-- later, so the result says what was requested.
local function change_status(method, status)
  return function(ctx, args)
    local wf, err = ctx:client()
    if not wf then
      return nil, err
    end
    local ok
    ok, err = wf[method](wf, args.id)
    if not ok then
      return nil, err
    end
    ctx.out:result({ id = args.id, requestedStatus = status })
  end
end

M.cancel = change_status("cancel", "CANCELED")
M.suspend = change_status("suspend", "SUSPENDED")
M.resume = change_status("resume", "RUNNING")

-- The export goes to a file, never to stdout: it is a zip archive, and the library writes
-- it beside the file and renames it into place only when it all came.
function M.export(ctx, args)
  local wf, err = ctx:client()
  if not wf then
    return nil, err
  end
  local file = args.file or "export.zip"
  local bytes
  bytes, err = wf:export(file)
  if not bytes then
    return nil, err
  end
  ctx.out:result({ file = file, bytes = bytes })
end

function M.complete(ctx, args)
  local context, err = input.object(args.context, "--context")
  if not context then
    return nil, err
  end
  local wf
  wf, err = ctx:client()
  if not wf then
    return nil, err
  end
  local ok
  ok, err = wf:complete_task(args.task, context, { decision = args.decision })
  if not ok then
    return nil, err
  end
  ctx.out:result({ id = args.task, status = "COMPLETED", decision = args.decision })
end

function M.message(ctx, args)
  local by_instance = args.instance_id ~= nil
  local by_key = args.definition_id ~= nil or args.business_key ~= nil
  if by_instance == by_key or (by_key and not (args.definition_id and args.business_key)) then
    return nil, { kind = "usage",
      message = "give either --instance-id, or both --definition-id and --business-key" }
  end
  local context, err = input.object(args.context, "--context")
  if not context then
    return nil, err
  end
  local wf
  wf, err = ctx:client()
  if not wf then
    return nil, err
  end
  local consumers
  consumers, err = wf:send_message({
    definitionId = args.name,
    workflowInstanceId = args.instance_id,
    workflowDefinitionId = args.definition_id,
    businessKey = args.business_key,
    context = context,
  })
  if consumers == nil then
    return nil, err
  end
  ctx.out:result(consumers, { list = true, columns = { "id" } })
end

-- One start, with Ctrl-C, SIGTERM and SIGHUP caught as a flag (as the bulk start does,
-- bulk.lua): a signal that came while the start was on its way raised only once its answer
-- was in, so the instance existed and its id was never shown. A signal before the start
-- goes out stops it (nothing started); one after it is reported once the result is out.
-- Standard output that cannot take the result gets the id on stderr: a user who saw only
-- an error would start it again.
local function start_one(ctx, definition, context)
  local wf, err = ctx:client()
  if not wf then
    return nil, err
  end
  core.catch_sigint(true)
  local ok, value
  ok, value, err = pcall(function()
    local token, terr = wf:token()         -- what may take a while before the start is sent
    if not token then
      return nil, terr
    end
    if core.sigint_caught() then
      return nil, { kind = "interrupted", message = "interrupted before the start was sent: "
        .. "nothing started" }
    end
    return wf:start(definition, context)
  end)
  local caught, signal = core.sigint_caught()
  core.catch_sigint(false)
  if not ok then
    error(value, 0)
  end
  if value == nil then
    return nil, err
  end
  local written, werr = pcall(function()
    ctx.out:result(value)
    ctx.out:flush()
  end)
  if not written then
    if type(werr) == "table" and werr.kind == "io" then
      werr.message = string.format("%s; the instance was started: %s", werr.message,
                                   tostring(value.id))
    end
    error(werr, 0)
  end
  if caught then
    return nil, { kind = "interrupted", message = string.format("interrupted (%s) after the "
      .. "start was sent: the instance above was started", signal) }
  end
end

function M.start(ctx, args)
  if args.from then
    return require("sapwf.cli.bulk").run(ctx, args)
  end
  for _, option in ipairs({ "concurrency", "failed", "record", "resume" }) do
    if args[option] then
      return nil, { kind = "usage", message = "--" .. option .. " only goes with --from" }
    end
  end
  if not args.definition then
    return nil, { kind = "usage", message = "start needs a DEFINITION (or --from FILE)" }
  end
  local context, err = input.object(args.context, "--context")
  if not context then
    return nil, err
  end
  return start_one(ctx, args.definition, context)
end

return M
