-- The commands that map to one client call each: definitions, instances, instance, context,
-- cancel, suspend, resume, tasks, complete, message and start (one instance; --from is bulk.lua).
local core = require "sapwf.core"
local signals = require "sapwf.cli.signals"
local input = require "sapwf.cli.input"
local filters = require "sapwf.cli.filters"
local cli = require "sapwf.cli"

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
  -- --top 0 asks a list for no items, but a pager for pages of none: the pager would raise
  -- (an internal error here). A usage error comes before the key is read, as the parser's
  -- do; parser.lua holds --skip within what the pager takes.
  if all and query.top and query.top < 1 then
    return nil, { kind = "usage", message = string.format("--top must be an integer from 1 "
      .. "to 1000 with --all (the page size), got '%s'", tostring(query.top)) }
  end
  local wf, err = ctx:client()
  if not wf then
    return nil, err
  end
  local items
  if all then
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

-- f(...)'s two results with Ctrl-C, SIGTERM and SIGHUP caught as a flag meanwhile, then
-- whether one came and which (signals.lua).
local with_signal_flag = signals.around

-- The export goes to a file, never to stdout: it is a zip archive, and the library writes
-- it beside the file and renames it into place only when it all came. Ctrl-C, SIGTERM and
-- SIGHUP are caught as a flag (as for a start, below), which also ends the transfer at once
-- (src/signal.c), or the wait to send it again after a 503 (core.sleep): the library then
-- removes what came, so FILE stays as it was and nothing is left beside it. (By default
-- SIGTERM and SIGHUP end the process on the spot, leaving the part file, and Ctrl-C raised
-- only once the whole export had come.) A signal after the last byte finds the export in
-- place, and says so.
function M.export(ctx, args)
  local wf, err = ctx:client()
  if not wf then
    return nil, err
  end
  local file = args.file or "export.zip"
  local bytes, caught, signal
  bytes, err, caught, signal = with_signal_flag(wf.export, wf, file)
  if caught and not bytes then
    return nil, { kind = "interrupted", message = string.format("interrupted (%s): the export "
      .. "stopped; %s is as it was, and nothing is left beside it", signal, file) }
  end
  if not bytes and type(err) == "table" and err.kind == "io" and err.outcome == "not_sent" then
    -- FILE cannot take the export (a directory, a device, a folder that cannot be written):
    -- a usage error, as for the bulk start's --record and --failed, not a failed call.
    return nil, { kind = "usage", message = err.message }
  end
  if not bytes then
    return nil, err
  end
  ctx.out:result({ file = file, bytes = bytes })
  if caught then
    ctx.out:flush()
    return nil, { kind = "interrupted", message = string.format("interrupted (%s) after the "
      .. "whole export came: it is in %s", signal, file) }
  end
end

-- A call that must not be made twice (a start, a message, a task completion), or whose
-- user must know whether it was made (a status change), with Ctrl-C,
-- SIGTERM and SIGHUP caught as a flag (as the bulk start does, bulk.lua): a signal that
-- came while it was on its way raised only once its answer was in, so it had been done and
-- the user saw only "interrupted", and the natural next step was to do it again. A signal
-- before the request goes out stops it (nothing done), also before it is sent again after
-- a refusal (a 429's Retry-After: the wait ends at once, core.sleep); one after it is
-- reported once the result is out. Standard output that cannot take the result gets what
-- was done on stderr. call(wf) -> value or nil, err; show(value) writes the result;
-- done(value) says what was done ("the instance was started: <id>").
local function once(ctx, call, show, done)
  local wf, err = ctx:client()
  if not wf then
    return nil, err
  end
  local value, caught, signal
  value, err, caught, signal = with_signal_flag(function()
    local token, terr = wf:token()         -- what may take a while before the call is sent
    -- a signal during the fetch (which it ended) or after it: nothing was sent; one during a
    -- wait to ask again is said with the last attempt's error (stopped_retry, below)
    local wait_stopped = not token and type(terr) == "table" and terr.interrupted
    local came, which = core.sigint_caught()
    if came and not wait_stopped then
      return nil, cli.not_sent(which)
    end
    if not token then
      return nil, terr
    end
    return call(wf)
  end)
  if value == nil then
    if caught and type(err) == "table" and err.interrupted then
      return nil, cli.stopped_retry(signal, err, true)
    end
    return nil, err
  end
  local written, werr = pcall(function()
    show(value)
    ctx.out:flush()
  end)
  if not written then
    if type(werr) == "table" and werr.kind == "io" then
      werr.message = werr.message .. "; " .. done(value)
    end
    error(werr, 0)
  end
  if caught then
    return nil, { kind = "interrupted", message = string.format("interrupted (%s) after the "
      .. "request was sent: %s", signal, done(value)) }
  end
end

-- cancel, suspend, resume: the service answers 202 with no body and changes the status
-- later, so the result says what was requested. Each is sent once, as a start is (once):
-- sent twice it would do no harm, but a signal while it was on its way would leave the user
-- not knowing whether it was done.
local function change_status(method, status)
  return function(ctx, args)
    return once(ctx, function(wf)
      return wf[method](wf, args.id)
    end, function()
      ctx.out:result({ id = args.id, requestedStatus = status })
    end, function()
      return string.format("%s was requested for instance %s", method, args.id)
    end)
  end
end

M.cancel = change_status("cancel", "CANCELED")
M.suspend = change_status("suspend", "SUSPENDED")
M.resume = change_status("resume", "RUNNING")

function M.complete(ctx, args)
  local context, err = input.object(args.context, "--context")
  if not context then
    return nil, err
  end
  return once(ctx, function(wf)
    return wf:complete_task(args.task, context, { decision = args.decision })
  end, function()
    ctx.out:result({ id = args.task, status = "COMPLETED", decision = args.decision })
  end, function()
    return "the task was completed: " .. args.task
  end)
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
  return once(ctx, function(wf)
    return wf:send_message({
      definitionId = args.name,
      workflowInstanceId = args.instance_id,
      workflowDefinitionId = args.definition_id,
      businessKey = args.business_key,
      context = context,
    })
  end, function(consumers)
    ctx.out:result(consumers, { list = true, columns = { "id" } })
  end, function(consumers)
    local ids = {}
    -- the service's items: one that is not an object is named as it is, never indexed
    for i, consumer in ipairs(consumers) do
      ids[i] = tostring(type(consumer) == "table" and consumer.id or consumer)
    end
    return "the message was sent, consumed by instance " .. table.concat(ids, ", ")
  end)
end

function M.start(ctx, args)
  if args.from then
    if args.attachments then
      return nil, { kind = "usage", message = "--attachments goes with a single start; with "
        .. "--from, give each line's in {\"definitionId\":..,\"context\":..,"
        .. "\"attachments\":..}" }
    end
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
  local attachments
  if args.attachments then
    if args.attachments == "-" and args.context == "-" then
      return nil, { kind = "usage", message = "--context and --attachments cannot both read "
        .. "standard input" }
    end
    attachments, err = input.object(args.attachments, "--attachments")
    if not attachments then
      return nil, err
    end
  end
  return once(ctx, function(wf)
    return wf:start(args.definition, context, attachments)
  end, function(instance)
    ctx.out:result(instance)
  end, function(instance)
    return "the instance was started: " .. tostring(instance.id)
  end)
end

return M
