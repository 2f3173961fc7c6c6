--- Many calls at once: wf:map(list, fn [, opts]) and wf:start_many(items [, opts]).
--
-- The calls of all items share one token and the client's connections (with HTTP/2 over
-- TLS, one connection), `concurrency` in flight at a time; each item gets the same argument
-- checks, retries and error objects as a single call, and a retry's wait holds up no other
-- item. Memory stays flat however long the list is.
-- @usage
--   local results = wf:start_many(items, { concurrency = 32 })
--   for i, r in ipairs(results) do
--     if sapwf.is_error(r) then print(i, r.outcome, tostring(r)) else print(i, r.id) end
--   end

-- How: each item runs the ordinary client methods in a coroutine, on a stand-in client
-- whose transport does not send: its request() yields the request here, the scheduler puts
-- it on a sapwf.core batch (src/batch.c: libcurl's multi interface) and resumes the
-- coroutine with the answer. `concurrency` coroutines run at once and each takes the next
-- item when its own is done. Retries wait without holding up the others: the stand-in's
-- retry policy sleeps by yielding, and the scheduler resumes that item when its time has
-- come.
local base = require "sapwf.base"

local type, pairs, tostring, error, pcall = type, pairs, tostring, error, pcall
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
local format = string.format
local open = base.open

local methods = {}

local DEFAULT_CONCURRENCY = 16
local MAX_CONCURRENCY = 1024              -- src/batch.c's limit

-- What a worker coroutine yields: REQUEST, method, target, body | SLEEP, seconds |
-- DONE, value, err (its item's result).
local REQUEST, SLEEP, DONE = {}, {}, {}

-- ------------------------------------------------------------------------------------------
-- The stand-in client

-- Its transport: request() yields the request to the scheduler, which hands back what the
-- batch's wait returns (status, body, headers, gen, or nil, err); renew and token are the
-- real core's (cached, no network unless a token is due); close does nothing, so closing
-- or collecting a stand-in never closes the real client.
local function stand_in_transport(real)
  return {
    real = real,
    request = function(_, method, target, body) return yield(REQUEST, method, target, body) end,
    renew = function(_, gen, replayed) return real:renew(gen, replayed) end,
    token = function(_, force) return real:token(force) end,
    close = function() end,
  }
end

local function yielding_sleep(seconds)
  yield(SLEEP, seconds)
end

-- A client like self whose calls go through the scheduler: retries wait by yielding, and
-- one 403 refresh a second serves all items (send.lua). value_only: its calls return the
-- value without meta (start_many keeps no meta).
local function stand_in(self, real, value_only)
  return base.derive(self, stand_in_transport(real),
                     { sleep = yielding_sleep, forbidden_interval = 1 }, value_only)
end

-- ------------------------------------------------------------------------------------------
-- The scheduler

-- A worker: runs fn on item after item, handing each result back.
local function work(fn, w, item, i)
  while true do
    local value, err = fn(w, item, i)
    item, i = yield(DONE, value, err)
  end
end

-- Runs fn over list[1..n] with `size` workers on batch b; results land in results.
local function schedule(w, b, now, list, n, fn, size, on_progress, results)
  local workers, current, wake = {}, {}, {}
  local sleeping, next_i, done = 0, 1, 0

  -- Takes what worker k yielded (ok, what, ...) and goes on until it waits for an answer or
  -- a timer, or has no item left.
  local function advance(k, ok, what, a, b2, c)
    while true do
      if not ok then error(what, 0) end                -- fn raised: a bug, raised here
      if what == REQUEST then
        b:submit(k, a, b2, c)
        return
      elseif what == SLEEP then
        wake[k] = now() + (a or 0)
        sleeping = sleeping + 1
        return
      elseif what ~= DONE then
        error("sapwf: the function given to map yielded outside a sapwf call", 0)
      end
      local i = current[k]
      if a ~= nil then results[i] = a else results[i] = b2 end
      done = done + 1
      if on_progress then on_progress(done, n) end
      if next_i > n then
        current[k] = nil
        return
      end
      i = next_i
      next_i = i + 1
      current[k] = i
      ok, what, a, b2, c = resume(workers[k], list[i], i)
    end
  end

  for k = 1, size do
    if next_i > n then break end               -- items that failed early went to others
    local i = next_i
    next_i = i + 1
    current[k] = i
    workers[k] = create(work)
    advance(k, resume(workers[k], fn, w, list[i], i))
  end
  while done < n do
    local timeout
    if sleeping > 0 then
      local first
      for _, at in pairs(wake) do
        if not first or at < first then first = at end
      end
      timeout = first - now()
      if timeout < 0 then timeout = 0 end
    end
    local k, status, body, headers, gen = b:wait(timeout)
    if k then advance(k, resume(workers[k], status, body, headers, gen)) end
    if sleeping > 0 then
      local t, due = now(), {}
      for kk, at in pairs(wake) do
        if at <= t then due[#due + 1] = kk end
      end
      for _, kk in pairs(due) do
        wake[kk] = nil
        sleeping = sleeping - 1
        advance(kk, resume(workers[kk]))
      end
    elseif not k and done < n then
      error("sapwf: internal error: a batch has items left but nothing in flight", 0)
    end
  end
end

-- fn over list[1..n]: concurrent on a sapwf.core client (a batch), or as the transport
-- runs many calls itself (sapwf.ngx: run_many, in nginx's light threads); one at a time on
-- any other transport. value_only: fn keeps only the first value of the client's calls
-- (see stand_in).
local function run(self, what, list, n, fn, concurrency, on_progress, value_only)
  local real, policy = base.transport(self)
  if real.real then real = real.real end                   -- map inside map: a stand-in
  local results = {}
  if n == 0 then return results end
  local size = concurrency < n and concurrency or n
  if type(real.batch) ~= "function" then
    if type(real.run_many) == "function" then
      return real:run_many(what, self, list, n, fn, size, on_progress, results)
    end
    for i = 1, n do
      local value, err = fn(self, list[i], i)
      if value ~= nil then results[i] = value else results[i] = err end
      if on_progress then on_progress(i, n) end
    end
    return results
  end
  local now = policy.now
  local b = real:batch(size)
  local ok, err = pcall(schedule, stand_in(self, real, value_only), b, now, list, n, fn, size,
                        on_progress, results)
  b:close()                                  -- also abandons what a raise left in flight
  if not ok then error(err, 0) end
  return results
end

-- ------------------------------------------------------------------------------------------
-- Argument checks. level: where the error points, counted from the caller of bad.

local function bad(fname, argn, msg, level)
  error(format("bad argument #%d to '%s' (%s)", argn, fname, msg), level + 1)
end

local OPTIONS = { concurrency = true, on_progress = true }

-- concurrency, on_progress from opts; raises at the public method's caller.
local function options(fname, argn, opts)
  if opts == nil then return DEFAULT_CONCURRENCY, nil end
  if type(opts) ~= "table" then bad(fname, argn, "table expected, got " .. type(opts), 3) end
  for name in pairs(opts) do
    if not OPTIONS[name] then
      bad(fname, argn, format("unknown option '%s' (concurrency, on_progress)", tostring(name)),
          3)
    end
  end
  local concurrency = opts.concurrency
  if concurrency == nil then
    concurrency = DEFAULT_CONCURRENCY
  elseif type(concurrency) ~= "number" or concurrency % 1 ~= 0 or concurrency < 1
      or concurrency > MAX_CONCURRENCY then
    bad(fname, argn, format("concurrency: integer from 1 to %d expected", MAX_CONCURRENCY), 3)
  end
  local on_progress = opts.on_progress
  if on_progress ~= nil and type(on_progress) ~= "function" then
    bad(fname, argn, "on_progress: function expected, got " .. type(on_progress), 3)
  end
  return concurrency, on_progress
end

-- ------------------------------------------------------------------------------------------
-- The methods

--- Runs fn(w, item, i) for every item of list, opts.concurrency at a time. w is a client like
-- this one whose calls run concurrently with the other items' (use it, not the client, in
-- fn). Each worker takes the next item when its own is done, so memory stays flat however
-- long the list is.
-- @tparam table list the items (an array)
-- @tparam function fn called as fn(w, item, i); its first result (or its second, when the
-- first is nil) is the item's result
-- @tparam[opt] table opts `concurrency` (default 16, at most 1024): calls in flight at once;
-- `on_progress`: called as on_progress(done, total) as items finish
-- @treturn table the results in list order
-- @raise what fn or on_progress raised (calls still in flight are abandoned)
function methods:map(list, fn, opts)
  open(self, "map")
  if type(list) ~= "table" then bad("map", 1, "table expected, got " .. type(list), 2) end
  if type(fn) ~= "function" then bad("map", 2, "function expected, got " .. type(fn), 2) end
  local concurrency, on_progress = options("map", 3, opts)
  return run(self, "wf:map()", list, #list, fn, concurrency, on_progress)
end

local ITEM_FIELDS = { definitionId = true, context = true }

local function start_item(w, item)
  return w:start(item.definitionId, item.context)
end

--- Starts many workflow instances, opts.concurrency at a time, on one token and shared
-- connections. Every item is checked before the first is sent: a bad one raises. One failed
-- item never stops the others, and no start is sent twice.
-- @tparam table items array of `{definitionId = ..., context = ...}` (context optional)
-- @tparam[opt] table opts `concurrency` (default 16, at most 1024); `on_progress(done,
-- total)`
-- @treturn table results in input order: the new instance, or the error object exactly as
-- wf:start returns it (tell them apart with sapwf.is_error; err.outcome says whether the
-- instance may exist)
-- @raise for an item that is not a table with a non-empty definitionId and an optional
-- context table, checked before any is sent
function methods:start_many(items, opts)
  open(self, "start_many")
  if type(items) ~= "table" then
    bad("start_many", 1, "table expected, got " .. type(items), 2)
  end
  local n = #items
  for i = 1, n do
    local item = items[i]
    if type(item) ~= "table" then
      bad("start_many", 1, format("items[%d]: table expected, got %s", i, type(item)), 2)
    end
    local id = item.definitionId
    if type(id) ~= "string" or id == "" then
      bad("start_many", 1, format("items[%d].definitionId: non-empty string expected, got %s",
                                  i, id == "" and "\"\"" or type(id)), 2)
    end
    if item.context ~= nil and type(item.context) ~= "table" then
      bad("start_many", 1, format("items[%d].context: table expected, got %s", i,
                                  type(item.context)), 2)
    end
    for name in pairs(item) do
      if not ITEM_FIELDS[name] then
        bad("start_many", 1, format("items[%d]: unknown field '%s' (definitionId, context)",
                                    i, tostring(name)), 2)
      end
    end
  end
  local concurrency, on_progress = options("start_many", 2, opts)
  return run(self, "wf:start_many()", items, n, start_item, concurrency, on_progress, true)
end

-- The methods, and the limit of opts.concurrency for callers that check it before calling
-- (the CLI).
return { methods = methods, MAX_CONCURRENCY = MAX_CONCURRENCY }
