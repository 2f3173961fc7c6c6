--- wf:each_instance(q) and wf:each_task(q): generic-for iterators over every match.
--
-- The first page is fetched when the iterator is made (its total tells, before anything is
-- yielded, whether q can be paged at all), the others as the loop needs them; q.top is the
-- page size (default and most 1000),
-- q.skip where to start (default 0). The API pages with $skip at most 4000 and $top at most
-- 1000, so one query reaches matches up to number 4000 + page size (5000 with the default);
-- the last page is asked for at $skip 4000 with the overlap dropped. The first page of each
-- query asks for the total ($inlinecount).
--
-- In the order by time, ascending (each_instance `startedAt`, each_task `createdAt`: the
-- order without `orderby`, or `orderby = "startedAt asc"` resp. `"createdAt asc"`), the
-- lists go on by time, not by position: each page after the first is the same query from
-- the last time seen (`startedFrom` resp. `createdFrom` = the last startedAt/createdAt
-- yielded, combined with the other filters of q and its own `startedUpTo`/`createdUpTo`),
-- and the matches of that time seen already are dropped by id. So every match is yielded
-- exactly once, past the window too, and matches that join the set while the loop runs
-- (started since: a later time) or leave it (canceled in the loop, with a status filter)
-- shift no page: with $skip alone, one more at the front would be yielded twice and one
-- fewer would push a match out unseen. SAP names no order among equal times: a page all of
-- one time is asked for again from the window's start in a page of 1000, so a tie that fits
-- comes whole in one answer. Only a larger tie is paged by $skip within that time (no
-- filter tells them apart), each page from one match back so that it can tell when matches
-- yielded before have left (tie_page), and counted once left: fewer yielded than counted
-- raises sapwf.paging.ties (the service's order among them changed between pages). When a
-- whole window (4000 + 1000) is one time, the matches of that time are counted: if all were
-- yielded the next query starts a millisecond later, else it raises sapwf.paging.limit,
-- after the matches before them and that window of the time's. Matches created while the
-- loop runs come at the end, unless an UpTo filter of q excludes them, if the loop gets
-- that far. Without a filter, each_instance names the service's default statuses on every
-- page.
--
-- With any other `orderby`, with `skip` but no `orderby`, or with an exact
-- `startedAt`/`createdAt` filter, the query is paged by $skip in the order asked for: the
-- set can change between pages; and past the window each_* raises an error object (kind
-- "invalid", code "sapwf.paging.limit", fields total and limit) before yielding anything,
-- rather than silently returning part of the set: order by the time ascending, or narrow the
-- filter and iterate each part.
--
-- A for loop cannot return nil, err: a failure of a later page raises its error object
-- (a sapwf error, so pcall and tostring(err) work); a page that is not a list of objects
-- with ids is such a failure (kind "decode"). The iterator may be called again after a
-- failure: it asks for that page again.
-- @usage
--   for inst in wf:each_instance{ definitionId = "orderapproval", status = "COMPLETED" } do
--     print(inst.id)
--   end
local base = require "sapwf.base"
local query = require "sapwf.query"
local errors = require "sapwf.errors"
local array_mt = require "sapwf.json".array_mt
local ops = require "sapwf.operations".by_name

local type, pairs, ipairs, next, error, tonumber, tostring, getmetatable =
  type, pairs, ipairs, next, error, tonumber, tostring, getmetatable
local format, match, sub = string.format, string.match, string.sub
local open, call = base.open, base.call

local methods = {}

local MAX_TOP, MAX_SKIP = 1000, 4000

-- The lists that can go past the window: the time that orders them and its filters. `none`:
-- what the service lists when no filter is given (a window's own filter would lift it).
local WINDOWS = {
  instances = { field = "startedAt", from = "startedFrom", upto = "startedUpTo",
                cli = "sapwf instances --started-from/--started-up-to",
                none = { "RUNNING", "ERRONEOUS" } },
  tasks = { field = "createdAt", from = "createdFrom", upto = "createdUpTo",
            cli = "sapwf tasks --created-from/--created-up-to" },
}

-- What to do about matches out of reach, for the reason they are.
local function advice(op, reason)
  local w = WINDOWS[op.name]
  local narrow = w and format("narrow the filter (e.g. %s/%s or status; %s) and iterate "
    .. "each part", w.from, w.upto, w.cli) or "narrow the filter and iterate each part"
  if reason == "orderby" or reason == "skip" then
    return format("order by %s asc (or leave %s out) to page past it in windows of %s, or %s",
      w.field, reason, w.field, narrow)
  elseif reason == nil and w then   -- no total came, so the first page could not tell
    return format("order by %s asc to page past it in windows of %s, or %s", w.field,
      w.field, narrow)
  elseif reason == "at" then
    return format("narrow the filter (fewer %s values, or status) and iterate each part",
      w.field)
  end
  return narrow
end

local function limit_error(op, total, skip, reachable, at_least, reason)
  return errors.new{
    kind = "invalid", code = "sapwf.paging.limit", method = op.method, path = op.path,
    retryable = false, outcome = "not_sent", total = total, limit = reachable,
    message = format("%s%d matches from skip %d, but the API can page through only %d of "
      .. "them ($skip <= %d, $top <= %d); %s",
      at_least and "more than " or "", total - skip, skip, reachable, MAX_SKIP, MAX_TOP,
      advice(op, reason)),
  }
end

-- An error about the matches that share the time `value` of `field`; extra: its fields
-- beside the common ones.
local function tie_failure(op, field, value, code, extra, message)
  local e = { kind = "invalid", code = code, method = op.method, path = op.path,
              retryable = false, outcome = "not_sent", [field] = value, message = message }
  for k, v in pairs(extra) do e[k] = v end
  return errors.new(e)
end

local function how_many(total)
  return total and format("%d", total) or "more"
end

-- More matches share one time than a window reaches: no filter of the API tells them apart.
local function tie_error(op, field, value, total, reachable)
  return tie_failure(op, field, value, "sapwf.paging.limit", { total = total, limit = reachable },
    format("%s matches share %s %s, but the API can page through only %d of them ($skip <= "
      .. "%d, $top <= %d); narrow the filter (e.g. status or definitionId) and iterate each "
      .. "part", how_many(total), field, tostring(value), reachable, MAX_SKIP, MAX_TOP))
end

-- More matches share one time than one page holds, and fewer of them came over the pages
-- than the service counts: its order among them changed between requests.
local function unsteady_error(op, field, value, total, yielded)
  return tie_failure(op, field, value, "sapwf.paging.ties", { total = total, yielded = yielded },
    format("%s matches share %s %s, more than one page of %d holds, and %d of them came: the "
      .. "service's order among them changed between pages; narrow the filter (e.g. status "
      .. "or definitionId) so that at most %d share one time", how_many(total), field,
      tostring(value), MAX_TOP, yielded, MAX_TOP))
end

local function not_a_time(op, field, value)
  return errors.new{
    kind = "invalid", code = "sapwf.paging.limit", method = op.method, path = op.path,
    retryable = false, outcome = "not_sent",
    message = format("cannot page past $skip %d: %s %s is not a UTC date-time to start the "
      .. "next window from; narrow the filter and iterate each part", MAX_SKIP, field,
      tostring(value)),
  }
end

-- A date-time as the filters take it, yyyy-MM-ddTHH:mm:ss.SSSZ; nil for anything else.
local function canonical(value)
  if type(value) ~= "string" then return nil end
  local date, fraction = match(value, "^(%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d)%.?(%d*)Z$")
  if not date then return nil end
  return date .. "." .. sub(fraction .. "000", 1, 3) .. "Z"
end

local DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- One millisecond after a canonical date-time: the first time after it a filter can name.
local function next_millisecond(text)
  local y, mo, d, h, mi, s, ms = match(text, "^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)%.(%d+)Z$")
  y, mo, d, h, mi = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi)
  s, ms = tonumber(s), tonumber(ms) + 1
  if ms >= 1000 then ms, s = 0, s + 1 end
  if s >= 60 then s, mi = 0, mi + 1 end
  if mi >= 60 then mi, h = 0, h + 1 end
  if h >= 24 then h, d = 0, d + 1 end
  local days = DAYS[mo]
  if mo == 2 and y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) then days = 29 end
  if d > days then d, mo = 1, mo + 1 end
  if mo > 12 then mo, y = 1, y + 1 end
  return format("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d, h, mi, s, ms)
end

local function bad(fname, msg)
  error(format("bad argument #1 to '%s' (%s)", fname, msg), 3)
end

-- A page-size or start value from q: an integer within [low, high]. (Given under both
-- spellings, query.build refuses it: each_* checks the whole of q with it.)
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

local NOT_FILTERS = { top = true, ["$top"] = true, skip = true, ["$skip"] = true,
  inlinecount = true, ["$inlinecount"] = true, orderby = true, ["$orderby"] = true,
  expand = true, ["$expand"] = true }

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

-- Why the query cannot go on in windows of time (nil when it can): "orderby", "skip", "at",
-- or "none" for a list without such a time.
local function unwindowable(op, filter, skip)
  local w = WINDOWS[op.name]
  if not w then return "none" end
  local order = filter.orderby
  if order == nil then order = filter["$orderby"] end
  if order ~= nil and order ~= w.field .. " asc" then return "orderby" end
  if order == nil and skip > 0 then return "skip" end
  if filter[w.field] ~= nil then return "at" end
  return nil
end

-- Whether items is what a page must be: a list of objects with ids. An empty one must have
-- been [] (sapwf.json marks it), not {} or another object.
local function is_page(items)
  if type(items) ~= "table" then return false end
  if items[1] == nil then return next(items) == nil and getmetatable(items) == array_mt end
  for _, item in ipairs(items) do
    if type(item) ~= "table" or item.id == nil then return false end
  end
  return true
end

local function not_a_page(op, status)
  return errors.new{
    kind = "decode", status = status, method = op.method, path = op.path,
    retryable = false, outcome = "unknown",
    message = format("the %s answer to a page of %s is not a list of them (objects with "
      .. "ids)", tostring(status), op.name),
  }
end

local function pager(self, op, page_size, skip, filter)
  local reachable = MAX_SKIP + page_size - skip
  local w = WINDOWS[op.name]
  local field = w and w.field
  local reason = unwindowable(op, filter, skip)
  -- By time: the order is the time ascending, and pages go on from the last time seen. The
  -- query asks for that order from its first page, so nothing depends on positions.
  local windowed = reason == nil
  if windowed and (filter.orderby or filter["$orderby"]) == nil then
    filter["$orderby"] = field .. " asc"
  end
  -- (an empty value, which the service would ignore, was refused by query.build already)
  local has_filter = false
  for k in pairs(filter) do
    if not NOT_FILTERS[k] then has_filter = true end
  end
  -- The service lists RUNNING and ERRONEOUS instances only when no parameter is given
  -- (SAP's words); a window's time filter would lift that, and whether $top and the like
  -- count as parameters no source says. So every page says it, from the first.
  if w and w.none and not has_filter then filter.status = w.none end
  local first_value, last_value      -- the time of the first and last match of this query

  -- The page starting at match `at` of the current window. Past $skip 4000 the last
  -- reachable page is asked for at 4000 and the matches already seen are dropped. Returns
  -- the items, whether the service had more after them, and the total when asked.
  local function fetch(at, count_all, size)
    size = size or page_size
    local from = at > MAX_SKIP and MAX_SKIP or at
    filter["$skip"], filter["$top"] = from, size
    filter["$inlinecount"] = count_all and "allpages" or nil
    local items, meta = call(self, op, op.path, query.build(op, filter))
    if not items then error(meta) end
    if not is_page(items) then error(not_a_page(op, meta and meta.status)) end
    local more = #items == size
    if field and #items > 0 then
      if count_all then first_value = items[1][field] end
      last_value = items[#items][field]
    end
    if from < at then
      local rest = {}
      for j = at - from + 1, #items do rest[#rest + 1] = items[j] end
      items = rest
    end
    return items, more, meta.total
  end

  local items, more, total = fetch(skip, true)
  if total and total - skip > reachable and reason then
    error(limit_error(op, total, skip, reachable, false, reason))
  end
  local i, at = 0, skip + #items
  -- The matches yielded so far at the latest time: a window starts at that time again, and
  -- drops these by id.
  local tail_value, tail_ids, tail_n = nil, {}, 0
  -- The answers the current window's tie was read over (tie_page), 0 outside one; where
  -- the window starts (the first one at q's skip).
  local tie_reads, window_start = 0, skip

  -- How many matches of the query share the time `value` (a request for none of them), or
  -- nil when the service gives no total.
  local function count_at(value)
    local q = {}
    for k, v in pairs(filter) do q[k] = v end
    q[w.from], q[w.upto], q["$orderby"], q.orderby = nil, nil, nil, nil
    q[field], q["$skip"], q["$top"], q["$inlinecount"] = value, 0, 0, "allpages"
    local none, meta = call(self, op, op.path, query.build(op, q))
    if not none then error(meta) end
    return meta.total
  end

  -- The next page within a tie (every match of the window so far at one time), in pages
  -- of MAX_TOP whatever the page size. The first is the window again from its start, so a
  -- tie that fits one page comes whole in one answer. A larger one goes on by position,
  -- from `at` on (check_tie counts it once left). Matches yielded already may have left
  -- the set since (a loop that cancels each one it gets), moving the unseen ones forward
  -- past `at`: so the page starts one position earlier, and its first match must be one
  -- yielded already; when it is not, some have left, and the page steps back until one is
  -- (or to the window's start). The matches yielded already are dropped by id, as at a
  -- window's start. Returns the items, whether the service had more, and the position
  -- after them.
  local function tie_page(at)
    local from
    if tie_reads == 0 and page_size < MAX_TOP then
      -- the window again from its start, in the largest page: a tie of up to MAX_TOP
      -- matches comes whole in one answer, whatever the service's order among them
      from = window_start
    else
      from = at - 1
      if tie_reads == 0 then tie_reads = 1 end     -- the window's first page held some
    end
    tie_reads = tie_reads + 1
    while true do
      local page, more = fetch(from, false, MAX_TOP)
      local first = page[1]
      if from == window_start or (first and first[field] == tail_value
                                  and tail_ids[first.id]) then
        return page, more, from + #page
      end
      from = from - MAX_TOP > window_start and from - MAX_TOP or window_start
    end
  end

  -- The query from the last time seen; or, when all of this query's window is one time and
  -- every match of that time was yielded, from a millisecond later. The state changes only
  -- once the page came, so a call after a failed one asks for the same page again.
  local function next_window()
    local from = canonical(last_value)
    if not from then error(not_a_time(op, field, last_value)) end
    local passed = false
    if first_value == last_value then
      local counted = count_at(from)
      if not counted or counted > tail_n then
        error(tie_error(op, field, last_value, counted, MAX_SKIP + MAX_TOP))
      end
      from, passed = next_millisecond(from), true
    end
    filter[w.from] = from
    items, more, total = fetch(0, true)
    i, at, tie_reads, window_start = 0, #items, 0, 0
    if passed then tail_value, tail_ids, tail_n = nil, {}, 0 end
  end

  -- After a tie read over more than one answer, on leaving it: every match of that time
  -- must have come. Matches cannot join a past time, but the service's order among equal
  -- times may change between requests, which would skip some unseen: that raises here
  -- rather than the loop going on without them. tie_reads is cleared only once checked,
  -- so a call after a failed count checks again.
  -- known: the count when the caller has it (a window all of that time, read to its end:
  -- its total), so no request is made.
  local function check_tie(known)
    -- (in the first window after q's own skip, the matches it skipped are counted too, and
    -- were never to come: no check there)
    if window_start > 0 then
      tie_reads = 0
      return
    end
    local counted = known or count_at(canonical(tail_value) or tail_value)
    if not counted or counted > tail_n then
      error(unsteady_error(op, field, tail_value, counted, tail_n))
    end
    tie_reads = 0
  end

  return function()
    while true do
      i = i + 1
      local item = items[i]
      if item == nil then
        if not more or (total and at >= total) then
          i = i - 1                     -- (called again: here again)
          if tie_reads > 1 then check_tie(first_value == last_value and total or nil) end
          return nil
        end
        if not base.is_open(self) then error("attempt to use a closed sapwf client", 2) end
        if windowed and last_value ~= first_value then
          next_window()                          -- by time: from the last time seen
        elseif at - MAX_SKIP < MAX_TOP and windowed then
          items, more, at = tie_page(at)
          i = 0
        elseif at - MAX_SKIP < page_size then
          items, more = fetch(at, false)
          i = 0
          at = at + #items
        elseif windowed then
          next_window()
        else
          -- Reached only without a total (no X-Total-Count): stop loudly here too.
          error(limit_error(op, at, skip, reachable, true, reason))
        end
      elseif not windowed then
        return item
      else
        local value = item[field]
        if value ~= tail_value then
          if tie_reads > 1 then
            i = i - 1                   -- a failed check leaves this item for the next call
            check_tie()
            i = i + 1
          end
          tail_value, tail_ids, tail_n = value, { [item.id] = true }, 1
          return item
        elseif not tail_ids[item.id] then
          tail_ids[item.id], tail_n = true, tail_n + 1
          return item
        end
        -- else yielded already, at the end of the window before
      end
    end
  end
end

--- Every workflow instance matching q, one by one, for a generic for; the first page is
-- fetched here, the others as the loop needs them. Oldest first, each page from the last startedAt seen (startedFrom,
-- combined with q's own filters): each match exactly once, however many, while the set
-- changes too (see the top of this page); with another orderby, by position in that order.
-- @tparam[opt] table q names: `top` (page size, 1 to 1000), `skip` (0 to 4000), `orderby`
-- (e.g. "startedAt desc"), `inlinecount` (ignored: the iterator asks for totals itself;
-- checked as for wf:instances), `expand`; the filters
-- `businessKey`, `completedAt`, `completedFrom`, `completedUpTo`, `containsText`,
-- `definitionId`, `definitionVersion`, `id`, `parentInstanceId`, `rootInstanceId`,
-- `startedAt`, `startedBy`, `startedFrom`, `startedUpTo`, `status`, `subject` (an array
-- value repeats a filter: the service combines them with OR). An unknown name raises.
-- @treturn function the iterator: each call gives the next instance, then nil
-- @fails raises an error object (a sapwf error: pcall and tostring work) when a page fails
-- (the first: here),
-- or, with kind "invalid" and code "sapwf.paging.limit", before yielding anything when more
-- match than one query reaches and q cannot be paged in windows (an `orderby` other than
-- "startedAt asc", `skip` without `orderby`, a `startedAt` filter), or on reaching more than
-- 5000 matches that share one startedAt (fields total, limit, startedAt); code
-- "sapwf.paging.ties" when more than 1000 share one startedAt and the service's order among
-- them changed between pages (fields total, yielded, startedAt)
function methods:each_instance(q)
  open(self, "each_instance")
  if q ~= nil and type(q) ~= "table" then
    bad("each_instance", "table expected, got " .. type(q))
  end
  local page_size, skip, filter = page_options(ops.instances, "each_instance", q or {})
  query.build(ops.instances, q or {}, "each_instance", 1)    -- raises on a bad name or value
  return pager(self, ops.instances, page_size, skip, filter)
end

--- Every user task instance matching q, one by one, for a generic for (as
-- wf:each_instance). Oldest first, each page from the last createdAt seen (createdFrom).
-- @tparam[opt] table q names: `top` (page size, 1 to 1000), `skip` (0 to 4000), `orderby`
-- (e.g. "createdAt desc"), `inlinecount` (ignored, checked), `expand`; the filters
-- `activityId`, `claimedAt`, `claimedFrom`, `claimedUpTo`, `completedAt`, `completedFrom`,
-- `completedUpTo`, `containsText`, `createdAt`, `createdFrom`, `createdUpTo`,
-- `definitionId`, `description`, `dueDate`, `dueDateFrom`, `dueDateUpTo`, `id`,
-- `lastChangedAt`, `lastChangedFrom`, `lastChangedUpTo`, `priority`, `processor`,
-- `recipientGroups`, `recipientUsers`, `status`, `subject`, `workflowDefinitionId`,
-- `workflowInstanceId` (an array value repeats a filter: the service combines them with
-- OR). An unknown name raises.
-- @treturn function the iterator: each call gives the next task, then nil
-- @fails raises an error object when a page fails, or (code "sapwf.paging.limit") before
-- yielding anything when more match than one query reaches and q cannot be paged in windows
-- (an `orderby` other than "createdAt asc", `skip` without `orderby`, a `createdAt`
-- filter), or on reaching more than 5000 matches that share one createdAt, or (code
-- "sapwf.paging.ties") more than 1000 whose order changed between pages
function methods:each_task(q)
  open(self, "each_task")
  if q ~= nil and type(q) ~= "table" then
    bad("each_task", "table expected, got " .. type(q))
  end
  local page_size, skip, filter = page_options(ops.tasks, "each_task", q or {})
  query.build(ops.tasks, q or {}, "each_task", 1)
  return pager(self, ops.tasks, page_size, skip, filter)
end

return { methods = methods }
