--- wf:each_instance(q) and wf:each_task(q): generic-for iterators over every match.
--
-- Pages are fetched as the loop needs them; q.top is the page size (default and most 1000),
-- q.skip where to start (default 0). The API pages with $skip at most 4000 and $top at most
-- 1000, so
-- matches up to number 4000 + page size (5000 with the default) can be reached; the last
-- page is asked for at $skip 4000 with the overlap dropped. The first page asks for
-- the total ($inlinecount); if more matches exist than can be reached, each_* raises an
-- error object (kind "invalid", code "sapwf.paging.limit", fields total and limit) before
-- yielding anything, rather than silently returning part of the set: narrow the filter (e.g.
-- startedFrom/startedUpTo, or status) and iterate each part.
--
-- A for loop cannot return nil, err: a failure of a later page raises its error object
-- (a sapwf error, so pcall and tostring(err) work). The set can change between pages;
-- order by a stable key (orderby = "startedAt asc") when that matters.
-- @usage
--   for inst in wf:each_instance{ definitionId = "orderapproval", status = "COMPLETED" } do
--     print(inst.id)
--   end
local base = require "sapwf.base"
local query = require "sapwf.query"
local errors = require "sapwf.errors"
local ops = require "sapwf.operations".by_name

local type, pairs, error, format = type, pairs, error, string.format
local open, call = base.open, base.call

local methods = {}

local MAX_TOP, MAX_SKIP = 1000, 4000

local function limit_error(op, total, skip, reachable, at_least)
  return errors.new{
    kind = "invalid", code = "sapwf.paging.limit", method = op.method, path = op.path,
    retryable = false, outcome = "not_sent", total = total, limit = reachable,
    message = format("%s%d matches from skip %d, but the API can page through only %d of "
      .. "them ($skip <= %d, $top <= %d); narrow the filter (e.g. startedFrom/startedUpTo "
      .. "or status; sapwf instances --started-from/--started-up-to) and iterate each part",
      at_least and "more than " or "", total - skip, skip, reachable, MAX_SKIP, MAX_TOP),
  }
end

local function bad(fname, msg)
  error(format("bad argument #1 to '%s' (%s)", fname, msg), 3)
end

-- A page-size or start value from q: an integer within [low, high].
local function count(fname, q, name, default, low, high)
  local value = q[name]
  if value == nil then value = q["$" .. name] end
  if value == nil then return default end
  if type(value) ~= "number" or value % 1 ~= 0 or value < low or value > high then
    error(format("bad argument #1 to '%s' (%s must be an integer from %d to %d)", fname,
                 name, low, high), 4)
  end
  return value
end

-- Runs in the public method, so its argument errors point at the caller.
local function page_options(op, fname, q)
  local page_size = count(fname, q, "top", MAX_TOP, 1, MAX_TOP)
  local skip = count(fname, q, "skip", 0, 0, MAX_SKIP)
  local filter = {}
  for k, v in pairs(q) do
    if k ~= "top" and k ~= "$top" and k ~= "skip" and k ~= "$skip"
       and k ~= "inlinecount" and k ~= "$inlinecount" then
      filter[k] = v
    end
  end
  return page_size, skip, filter
end

local function pager(self, op, page_size, skip, filter)
  local reachable = MAX_SKIP + page_size - skip

  -- The page starting at match `at`. Past $skip 4000 the last reachable page is asked for
  -- at 4000 and the matches already seen are dropped. Returns the items and whether the
  -- service had more after them.
  local function fetch(at, count_all)
    local from = at > MAX_SKIP and MAX_SKIP or at
    filter["$skip"], filter["$top"] = from, page_size
    filter["$inlinecount"] = count_all and "allpages" or nil
    local items, meta = call(self, op, op.path, query.build(op, filter))
    if not items then error(meta) end
    local more = #items == page_size
    if from < at then
      local rest = {}
      for j = at - from + 1, #items do rest[#rest + 1] = items[j] end
      items = rest
    end
    return items, more, meta.total
  end

  local items, more, total = fetch(skip, true)
  if total and total - skip > reachable then error(limit_error(op, total, skip, reachable)) end
  local i, next_skip = 0, skip + #items

  return function()
    i = i + 1
    local item = items[i]
    if item ~= nil then return item end
    if not more or (total and next_skip >= total) then return nil end
    if next_skip - MAX_SKIP >= page_size then
      -- Reached only without a total (no X-Total-Count): stop loudly here too.
      error(limit_error(op, next_skip, skip, reachable, true))
    end
    if not base.is_open(self) then error("attempt to use a closed sapwf client", 2) end
    items, more = fetch(next_skip, false)
    i = 1
    next_skip = next_skip + #items
    return items[1]
  end
end

--- Every workflow instance matching q, one by one, for a generic for; pages are fetched
-- as the loop needs them. Reaches the matches the API can page to: with more, it raises
-- before yielding anything (see the top of this page).
-- @tparam[opt] table q names: `top` (page size, 1 to 1000), `skip` (0 to 4000), `orderby`
-- (e.g. "startedAt desc"), `inlinecount` (true: meta.total), `expand`; the filters
-- `businessKey`, `completedAt`, `completedFrom`, `completedUpTo`, `containsText`,
-- `definitionId`, `definitionVersion`, `id`, `parentInstanceId`, `rootInstanceId`,
-- `startedAt`, `startedBy`, `startedFrom`, `startedUpTo`, `status`, `subject` (an array
-- value repeats a filter: the service combines them with OR). An unknown name raises.
-- @treturn function the iterator: each call gives the next instance, then nil
-- @fails raises an error object (a sapwf error: pcall and tostring work) when a page fails,
-- or, with kind "invalid" and code "sapwf.paging.limit", when more match than can be reached
function methods:each_instance(q)
  open(self, "each_instance")
  if q ~= nil and type(q) ~= "table" then
    bad("each_instance", "table expected, got " .. type(q))
  end
  local page_size, skip, filter = page_options(ops.instances, "each_instance", q or {})
  query.build(ops.instances, filter, "each_instance", 1)     -- raises on unknown names here
  return pager(self, ops.instances, page_size, skip, filter)
end

--- Every user task instance matching q, one by one, for a generic for (as
-- wf:each_instance).
-- @tparam[opt] table q names: `top` (page size, 1 to 1000), `skip` (0 to 4000), `orderby`
-- (e.g. "startedAt desc"), `inlinecount` (true: meta.total), `expand`; the filters
-- `activityId`, `claimedAt`, `claimedFrom`, `claimedUpTo`, `completedAt`, `completedFrom`,
-- `completedUpTo`, `containsText`, `createdAt`, `createdFrom`, `createdUpTo`,
-- `definitionId`, `description`, `dueDate`, `dueDateFrom`, `dueDateUpTo`, `id`,
-- `lastChangedAt`, `lastChangedFrom`, `lastChangedUpTo`, `priority`, `processor`,
-- `recipientGroups`, `recipientUsers`, `status`, `subject`, `workflowDefinitionId`,
-- `workflowInstanceId` (an array value repeats a filter: the service combines them with
-- OR). An unknown name raises.
-- @treturn function the iterator: each call gives the next task, then nil
-- @fails raises an error object when a page fails, or (code "sapwf.paging.limit") when more
-- match than can be reached
function methods:each_task(q)
  open(self, "each_task")
  if q ~= nil and type(q) ~= "table" then
    bad("each_task", "table expected, got " .. type(q))
  end
  local page_size, skip, filter = page_options(ops.tasks, "each_task", q or {})
  query.build(ops.tasks, filter, "each_task", 1)
  return pager(self, ops.tasks, page_size, skip, filter)
end

return { methods = methods }
