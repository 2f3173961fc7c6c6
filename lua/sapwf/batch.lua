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
-- come, or at once when a signal that core.catch_sigint catches came (as core.sleep ends).
local base = require "sapwf.base"
local new_limiter = require "sapwf.limiter".new

local type, pairs, ipairs, tostring, error, pcall, setmetatable =
  type, pairs, ipairs, tostring, error, pcall, setmetatable
local create, resume, yield, running =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running
local format, find = string.format, string.find
local open = base.open

local methods = {}

local DEFAULT_CONCURRENCY = 16
local DEFAULT_RATE_LIMIT_WAIT = 300       -- seconds one item may wait for a rate limit
local MAX_CONCURRENCY = 1024              -- src/batch.c's limit

-- What a worker coroutine yields: REQUEST, method, target, body, deadline | SLEEP, seconds
-- | DONE, value, err (its item's result).
local REQUEST, SLEEP, DONE = {}, {}, {}

-- What the core batch raises once its client is closed and nothing it was given is left.
local CLIENT_CLOSED = "attempt to use a closed sapwf client"

-- What a request that a caught signal kept from going out gets (a core error: send.lua
-- sends it no more, its outcome is not_sent).
local function interrupted_error()
  return { kind = "interrupted", message = "a signal came while it waited for the batch's "
    .. "limit: not sent", phase = "request", sent = false, interrupted = true }
end

-- ------------------------------------------------------------------------------------------
-- The stand-in client

-- Its transport: request() yields the request to the scheduler, which hands back what the
-- batch's wait returns (status, body, headers, gen, deadline, or nil, err: a replay after
-- a 401 gets the deadline of the first sending, as on the client); renew and token are the
-- real core's (cached, no network unless a token is due); close does nothing, so closing
-- or collecting a stand-in never closes the real client. A request with `output` (an
-- Accept of its own, or a file the answer goes to: w:export, w:request's accept and
-- to_file) goes through the real client at once, holding the batch up meanwhile: a batch
-- slot carries neither (src/batch.c). members: the run's worker coroutines (weak keys):
-- a request from anywhere else (w kept after its run, or called in a coroutine of fn's
-- own) would yield to no scheduler, so it raises instead of going nowhere.
local NOT_IN_RUN = "sapwf: the client map gives fn (w) works only in fn's own calls while "
  .. "its run lasts, not after it nor in a coroutine fn made: call the client itself there"

-- A transport in front of real whose requests go through request(_, method, target, body,
-- deadline, output) (the stand-in's, the gate's below); renew and token are real's, and so
-- is redact unless `redactor` (an object with redact) is given.
local function transport_over(real, request, redactor)
  redactor = redactor or real
  return {
    real = real,
    request = request,
    renew = function(_, gen, replayed, deadline) return real:renew(gen, replayed, deadline) end,
    token = function(_, force) return real:token(force) end,
    redact = function(_, text) return redactor:redact(text) end,
    close = function() end,
  }
end

-- b: the run's batch, whose redact also takes out the older tokens its requests carried.
local function stand_in_transport(real, members, b)
  return transport_over(real, function(_, method, target, body, deadline, output)
    if not members[running()] then error(NOT_IN_RUN, 0) end
    if output ~= nil then return real:request(method, target, body, deadline, output) end
    return yield(REQUEST, method, target, body, deadline)
  end, b)
end

-- As core.sleep: true when a caught signal ended the wait (the scheduler resumes it so).
local function yielding_sleep(seconds)
  return yield(SLEEP, seconds) == true
end

-- ------------------------------------------------------------------------------------------
-- A run: the items going in and the results going out, for every form (map, start_many,
-- map_each, start_each) and both engines (the scheduler below, a transport's run_each).
-- Neither take nor deliver raises: what the caller's functions raise is kept (fail), and
-- the run ends when the items in flight have ended (finish raises it then). So a raise
-- never abandons a request the service may have acted on.

local Run = {}
Run.__index = Run

-- next_item() -> the next item or nil; check(item, i) -> nil or a message (raised);
-- on_result(i, result, item). keep_pending: once on_result has raised, the results that
-- could not be handed to it are kept and raised with its error (the streaming forms).
-- where: "file:line: " of the public method's caller, for what the run raises later.
local function new_run(next_item, check, on_result, keep_pending, where)
  return setmetatable({ next_item = next_item, check = check, on_result = on_result,
                        keep_pending = keep_pending, where = where, count = 0 }, Run)
end

-- Stops taking items; the first error is the one finish raises.
function Run:fail(err)
  if not self.failed then self.failed, self.failure = true, err end
end

-- The next item and its index, or nil when the items are used up or the run stops.
function Run:take()
  local held = self.held
  if held ~= nil then
    self.held = nil
    return held, self.count
  end
  if self.failed or self.exhausted then return nil end
  local ok, item = pcall(self.next_item)
  if not ok then
    self:fail(item)
    return nil
  end
  if item == nil then
    self.exhausted = true
    return nil
  end
  local i = self.count + 1
  if self.check then
    -- an item whose fields raise when read (a strict or proxy table) stops the run as a
    -- raising next_item does: the starts in flight still end and are handed over
    local checked, problem = pcall(self.check, item, i)
    if not checked then
      self:fail(problem)
      return nil
    elseif problem then
      self:fail(self.where .. problem)
      return nil
    end
  end
  self.count = i
  return item, i
end

-- Puts the item take gave last back, to be taken again.
function Run:unread(item)
  self.held = item
end

-- Hands item i's result over: to on_result, or (once it has raised) to the pending list.
function Run:deliver(i, result, item)
  if self.broken then
    if self.keep_pending then
      local pending = self.pending
      pending[#pending + 1] = { index = i, item = item, result = result }
    end
    return
  end
  local ok, err = pcall(self.on_result, i, result, item)
  if not ok then
    self.broken, self.pending = true, {}
    self:fail(err)
  end
end

-- Hands over what fn returned for item i: its value, or its error when the value is nil.
function Run:result(i, value, err, item)
  if value ~= nil then self:deliver(i, value, item) else self:deliver(i, err, item) end
end

-- Runs fn on item i where nothing else schedules it and hands its result over; false when
-- fn raised (then the run takes no more items).
function Run:call(fn, w, item, i)
  local ok, value, err = pcall(fn, w, item, i)
  if not ok then
    self:fail(value)
    return false
  end
  self:result(i, value, err, item)
  return true
end

-- What a streaming run raises when on_result raised: its error (or the first one), and
-- the results of the items then in flight that it did not get (pending); what a list form
-- (map, start_many) raises when anything raised: the error, and the results (results).
local Stopped = { __name = "sapwf.stopped" }
Stopped.__index = Stopped
Stopped.__tostring = function(e) return e.message end

-- After the last item in flight ended: the number of items, or the raise.
function Run:finish()
  if not self.failed then return self.count end
  local results = self.results
  if results then
    -- a list form: whatever stopped it, the results of the items that ended (starts among
    -- them) go with the raise, those on_progress did not see included
    for _, p in ipairs(self.pending or {}) do results[p.index] = p.result end
    local n = 0
    for _ in pairs(results) do n = n + 1 end
    error(setmetatable({ cause = self.failure, results = results, message =
      format("%s (the results of the %d item%s that ended: see err.results)",
             tostring(self.failure), n, n == 1 and "" or "s") }, Stopped), 0)
  end
  if self.broken and self.keep_pending then
    local n = #self.pending
    error(setmetatable({ cause = self.failure, pending = self.pending, message =
      format("%s (%d result%s of items in flight not handed over: see err.pending)",
             tostring(self.failure), n, n == 1 and "" or "s") }, Stopped), 0)
  end
  error(self.failure, 0)
end

-- ------------------------------------------------------------------------------------------
-- The scheduler

-- What passes the limiter's log events to the log hook: a raise there stops the run.
local function noter(run, log)
  return function(event)
    if event then
      local ok, err = pcall(log, event)
      if not ok then run:fail(err) end
    end
  end
end

-- The longest b:wait while requests queue for a slot in flight (see schedule): any answer
-- ends it sooner.
local HELD_BY_LIMIT = 60

-- A worker: runs fn on item after item, handing each result back.
local function work(fn, w, item, i)
  while true do
    local value, err = fn(w, item, i)
    item, i = yield(DONE, value, err)
  end
end

-- Runs fn over the run's items with up to `size` workers on batch b (slot k is worker k's),
-- their requests going out as the limiter allows; members gets each worker coroutine.
local function schedule(w, b, now, run, fn, size, limiter, log, members)
  local workers, items, indices, epochs = {}, {}, {}, {}
  -- when the requests being timed went out (slot -> time; limiter:sending)
  local sent_at = {}
  local wake, sleeping, busy, inflight = {}, 0, 0, 0
  -- the client is closed: nothing can be sent, so no item waits for its time any more
  local closed = false
  -- a signal that core.catch_sigint catches came (b:wait said so): the waits end at once,
  -- a retry's sleep returning true (send.lua then sends no retry), and a request the
  -- limiter holds is not sent. The command line's user said stop; nothing waits out a
  -- Retry-After to send what they no longer want. What is in flight is still waited for.
  -- (Only b:wait with a timeout ends on the signal: it has timers to wait for; so while
  -- stopped none is given, and nothing spins.)
  local stopped = false
  -- requests waiting for the limiter, first in first out: worker, method, target, body,
  -- deadline (false: none)
  local qk, qm, qt, qb, qd, head, tail = {}, {}, {}, {}, {}, 1, 0

  local note = noter(run, log)

  -- Sends worker k's request: true, or false and the error its item gets. The batch
  -- refuses it once the client was closed (by fn, on_result or a finalizer): then it is
  -- not sent, no more items are taken, and the requests in flight still end and are handed
  -- over before the run raises.
  local function submit(k, method, target, body, deadline)
    local sent, err = pcall(b.submit, b, k, method, target, body, deadline or nil)
    if not sent then
      err = tostring(err)
      if not find(err, "attempt to use a closed sapwf", 1, true) then error(err, 0) end
      run:fail((run.where or "") .. err)
      return false, { kind = "config", message = err, phase = "request", sent = false }
    end
    inflight = inflight + 1
    epochs[k] = limiter.epoch
    sent_at[k] = limiter:sending()
    return true
  end

  local advance

  local function pump()
    while head <= tail and (closed or stopped or limiter:allows(inflight)) do
      local k, method, target, body, deadline = qk[head], qm[head], qt[head], qb[head],
        qd[head]
      qk[head], qm[head], qt[head], qb[head], qd[head] = nil, nil, nil, nil, nil
      head = head + 1
      local sent, err = false, nil
      if stopped then
        err = interrupted_error()               -- held when the signal came: not sent
      else
        sent, err = submit(k, method, target, body, deadline)
      end
      if not sent then advance(k, resume(workers[k], nil, err)) end
    end
    if head > tail then head, tail = 1, 0 end
  end

  -- Takes what worker k yielded (ok, what, ...) and goes on until it waits for an answer or
  -- a timer, or has no item left.
  function advance(k, ok, what, a, b2, c, d)
    while true do
      if not ok or (what ~= REQUEST and what ~= SLEEP and what ~= DONE) then
        -- fn raised (or yielded outside a sapwf call): its item has no result
        run:fail(ok and "sapwf: the function given to map yielded outside a sapwf call"
                 or what)
        workers[k], items[k], indices[k] = nil, nil, nil
        busy = busy - 1
        return
      end
      if what == REQUEST then
        if stopped and (head <= tail or not limiter:allows(inflight)) then
          ok, what, a, b2, c, d = resume(workers[k], nil, interrupted_error())
        elseif head <= tail or not limiter:allows(inflight) then
          tail = tail + 1
          qk[tail], qm[tail], qt[tail], qb[tail], qd[tail] = k, a, b2, c, d or false
          return
        else
          local sent, err = submit(k, a, b2, c, d)
          if sent then return end
          ok, what, a, b2, c, d = resume(workers[k], nil, err)
        end
      elseif what == SLEEP and stopped then
        ok, what, a, b2, c, d = resume(workers[k], true)
      elseif what == SLEEP then
        wake[k] = now() + (a or 0)
        sleeping = sleeping + 1
        return
      else
        local i, item = indices[k], items[k]
        items[k], indices[k] = nil, nil
        run:result(i, a, b2, item)
        item, i = run:take()
        if item == nil then
          busy = busy - 1
          return
        end
        items[k], indices[k] = item, i
        ok, what, a, b2, c, d = resume(workers[k], item, i)
      end
    end
  end

  for k = 1, size do
    local item, i = run:take()
    if item == nil then break end
    items[k], indices[k] = item, i
    workers[k] = create(work)
    members[workers[k]] = true
    busy = busy + 1
    advance(k, resume(workers[k], fn, w, item, i))
  end
  while busy > 0 do
    pump()
    local timeout
    if sleeping > 0 then
      local first
      for _, at in pairs(wake) do
        if not first or at < first then first = at end
      end
      timeout = first - now()
      if timeout < 0 then timeout = 0 end
    end
    if head <= tail then
      -- A queue held only by the limit on requests in flight has no time of its own
      -- (held() is nil), but a caught signal must still end it before an answer frees a
      -- slot and pump() sends what the user said stop to: b:wait sees the signal only with
      -- a timeout (see stopped), and an answer ends the wait sooner anyway.
      local held = limiter:held() or HELD_BY_LIMIT
      if not timeout or held < timeout then timeout = held end
    end
    -- Once the client is closed, wait hands over what is in flight and then raises the
    -- closed error instead of waiting: the items that wait for a retry or for the limiter
    -- go on at once (their requests are refused, and they end not sent) instead of
    -- waiting out a Retry-After for nothing.
    local waited, k, status, body, headers, gen, used = pcall(b.wait, b, timeout)
    if not waited then
      if inflight > 0 or not find(tostring(k), CLIENT_CLOSED, 1, true) then error(k, 0) end
      closed, k = true, nil
    end
    if k == false then                    -- a caught signal ended the wait: see stopped
      stopped, k = true, nil
      pump()                                -- what the limiter held ends, not sent
    end
    if k then
      inflight = inflight - 1
      local took = sent_at[k]
      if took then sent_at[k], took = nil, now() - took end
      note(limiter:observe(epochs[k], status, headers, took))
      advance(k, resume(workers[k], status, body, headers, gen, used))
    end
    if sleeping > 0 then
      local t, due = now(), {}
      for kk, at in pairs(wake) do
        if closed or stopped or at <= t then due[#due + 1] = kk end
      end
      for _, kk in pairs(due) do
        wake[kk] = nil
        sleeping = sleeping - 1
        advance(kk, resume(workers[kk], stopped))     -- the sleep's result (send.lua)
      end
    elseif not k and busy > 0 and inflight == 0 and head > tail then
      error("sapwf: internal error: a batch has items left but nothing in flight", 0)
    end
  end
end

-- ------------------------------------------------------------------------------------------
-- The gate: the limiter in front of a transport that runs many calls itself (run_each:
-- sapwf.ngx, whose items run in nginx's light threads). Its request waits until the limiter
-- lets it go, sends through the transport and tells the limiter the answer, as the
-- scheduler does for a batch. The waits are the transport's: waiter() gives a wait(seconds)
-- that yields until a post or that long, and post(n), which wakes n waits first come first
-- served. One request at a time waits at the door for the limiter (for an answer to free a
-- slot, or for its time to come); the others queue behind it: so a request going out wakes
-- one, not every one waiting.

local DOOR_WAIT = 1          -- seconds: a door wait for a slot looks again after that long
local QUEUE_WAIT = 3600      -- seconds: the queue's waits end by post, this is only a bound

-- Returns the gate and end_run(), which closes it once its run is over: a w that fn kept
-- after the run then raises NOT_IN_RUN, as the stand-in's does, instead of sending past
-- the limiter of a run that no longer exists.
local function gate(real, limiter, now, note)
  local door, queue = real:waiter(), real:waiter()
  local inflight, queued, at_door, over = 0, 0, false, false

  local function enter()
    if at_door or queued > 0 then
      queued = queued + 1
      queue.wait(QUEUE_WAIT)
      queued = queued - 1
    end
    at_door = true
    while not limiter:allows(inflight) do door.wait(limiter:held() or DOOR_WAIT) end
    at_door = false
    if queued > 0 then queue.post(1) end
    inflight = inflight + 1
  end

  return transport_over(real, function(_, method, target, body, deadline, output)
    if over then error(NOT_IN_RUN, 0) end
    enter()
    local epoch, t = limiter.epoch, limiter:sending()
    -- (a raise there is a bug of sapwf's: the slot is freed all the same, or the requests
    -- waiting at the door would wait for good; LuaJIT's pcall lets the call yield)
    local ok, status, resp, headers, gen, used = pcall(real.request, real, method, target,
                                                       body, deadline, output)
    inflight = inflight - 1
    if at_door then door.post(1) end
    if not ok then error(status, 0) end
    note(limiter:observe(epoch, status, headers, t and now() - t))
    return status, resp, headers, gen, used
  end), function() over = true end
end

-- The run over its items: concurrent on a sapwf.core client (a batch), or as the transport
-- runs many calls itself (sapwf.ngx: run_each, in nginx's light threads); one at a time on
-- any other transport. Returns what run:finish returns. value_only: fn keeps only the first
-- value of the client's calls (start_many keeps no meta).
local function execute(self, what, run, fn, settings, value_only)
  local real, policy = base.transport(self)
  if real.real then real = real.real end                   -- map inside map: a stand-in
  local size = settings.concurrency
  if type(real.batch) ~= "function" then
    if type(real.run_each) == "function" then
      local w, passage, end_run = self, nil, nil
      if settings.adaptive and type(real.waiter) == "function" then
        -- a client like self whose requests pass the gate; 429s wait for the limiter
        local limiter = new_limiter(size, true, settings.rate_limit_wait, policy.now,
                                    policy.log)
        passage, end_run = gate(real, limiter, policy.now, noter(run, policy.log))
        w = base.derive(self, passage, { rate_limit_wait = settings.rate_limit_wait },
                        value_only)
      end
      real:run_each(what, w, run, fn, size)
      -- every item's thread has ended (a raise in run_each, from nginx, may leave some of
      -- the run's threads going: the gate stays open for them)
      if end_run then end_run() end
      return run:finish()
    end
    while true do
      local item, i = run:take()
      if item == nil or not run:call(fn, self, item, i) then break end
    end
    return run:finish()
  end
  -- the first item before the batch: none, no token and no batch
  local first = run:take()
  if first == nil then return run:finish() end
  run:unread(first)
  local now = policy.now
  local b = real:batch(size)
  local limiter = new_limiter(size, settings.adaptive, settings.rate_limit_wait, now,
                              policy.log)
  local changes = { sleep = yielding_sleep, forbidden_interval = 1 }
  if settings.adaptive then changes.rate_limit_wait = settings.rate_limit_wait end
  -- a client like self whose calls go through the scheduler: retries wait by yielding,
  -- one 403 refresh a second serves all items (send.lua), 429s wait for the limiter
  local members = setmetatable({}, { __mode = "k" })
  local w = base.derive(self, stand_in_transport(real, members, b), changes, value_only)
  local ok, err = pcall(schedule, w, b, now, run, fn, size, limiter, policy.log, members)
  b:close()                           -- also abandons what a failure of sapwf left in flight
  if not ok then error(err, 0) end
  return run:finish()
end

-- ------------------------------------------------------------------------------------------
-- Argument checks. level: where the error points, counted from the caller of bad.

local function bad(fname, argn, msg, level)
  error(format("bad argument #%d to '%s' (%s)", argn, fname, msg), level + 1)
end

local OPTIONS = { concurrency = true, on_progress = true, adaptive = true,
                  rate_limit_wait = true }
local EACH_OPTIONS = { concurrency = true, adaptive = true, rate_limit_wait = true }
local OPTION_NAMES = "concurrency, adaptive, rate_limit_wait, on_progress"
local EACH_OPTION_NAMES = "concurrency, adaptive, rate_limit_wait"

-- The settings from opts ({concurrency, adaptive, rate_limit_wait}) and on_progress;
-- raises at the public method's caller. each: the streaming forms (no on_progress).
local function options(fname, argn, opts, each)
  local settings = { concurrency = DEFAULT_CONCURRENCY, adaptive = true,
                     rate_limit_wait = DEFAULT_RATE_LIMIT_WAIT }
  if opts == nil then return settings, nil end
  if type(opts) ~= "table" then bad(fname, argn, "table expected, got " .. type(opts), 3) end
  local known = each and EACH_OPTIONS or OPTIONS
  for name in pairs(opts) do
    if not known[name] then
      bad(fname, argn, format("unknown option '%s' (%s)", tostring(name),
                              each and EACH_OPTION_NAMES or OPTION_NAMES), 3)
    end
  end
  local concurrency = opts.concurrency
  if concurrency ~= nil then
    if type(concurrency) ~= "number" or concurrency % 1 ~= 0 or concurrency < 1
        or concurrency > MAX_CONCURRENCY then
      bad(fname, argn, format("concurrency: integer from 1 to %d expected", MAX_CONCURRENCY),
          3)
    end
    settings.concurrency = concurrency
  end
  if opts.adaptive ~= nil then
    if type(opts.adaptive) ~= "boolean" then
      bad(fname, argn, "adaptive: boolean expected, got " .. type(opts.adaptive), 3)
    end
    settings.adaptive = opts.adaptive
  end
  local wait = opts.rate_limit_wait
  if wait ~= nil then
    if type(wait) ~= "number" or wait < 0 or wait ~= wait or wait == math.huge then
      bad(fname, argn, "rate_limit_wait: seconds (a number from 0) expected", 3)
    end
    settings.rate_limit_wait = wait
  end
  local on_progress = opts.on_progress
  if on_progress ~= nil and type(on_progress) ~= "function" then
    bad(fname, argn, "on_progress: function expected, got " .. type(on_progress), 3)
  end
  return settings, on_progress
end

-- "file:line: " of the caller of the public method (for errors raised later, in a run).
local function caller_position()
  local _, where = pcall(error, "", 4)
  return where
end

-- A run over list[1..n] whose results land in a table (map, start_many); where: the
-- caller's position.
local function list_run(list, n, on_progress, where)
  local results, i, done = {}, 0, 0
  local function next_item()
    if i >= n then return nil end
    i = i + 1
    return list[i]
  end
  local function on_result(k, result)
    results[k] = result
    done = done + 1
    if on_progress then on_progress(done, n) end
  end
  local run = new_run(next_item, nil, on_result, true, where)
  run.results = results
  return run, results
end

-- ------------------------------------------------------------------------------------------
-- The methods

--- Runs fn(w, item, i) for every item of list, opts.concurrency at a time. w is a client like
-- this one whose calls run concurrently with the other items' (use it, not the client, in
-- fn). Each worker takes the next item as soon as its own is done, and a request goes out
-- as soon as the limit allows, so `concurrency` calls stay in flight.
-- @tparam table list the items: an array (a table with other keys raises, as their items
-- would not run)
-- @tparam function fn called as fn(w, item, i); its first result (or its second, when the
-- first is nil) is the item's result
-- @tparam[opt] table opts `concurrency` (default 16, at most 1024): calls in flight at most;
-- `adaptive` (default true): fewer on 429, 503 and Retry-After, more while answers are clean
-- (README, "Many calls at once"); `rate_limit_wait` (default 300): seconds an item may wait
-- for a rate limit; `on_progress`: called as on_progress(done, total) as items finish
-- @treturn table the results in list order
-- @raise once the calls in flight have ended, when fn or on_progress raised: an error with
-- `cause` (what it raised) and `results` (the results of the items that ended, by index)
function methods:map(list, fn, opts)
  open(self, "map")
  if type(list) ~= "table" then bad("map", 1, "table expected, got " .. type(list), 2) end
  if type(fn) ~= "function" then bad("map", 2, "function expected, got " .. type(fn), 2) end
  local n = base.check_array("map", 1, list, nil, 2)
  local settings, on_progress = options("map", 3, opts)
  if settings.concurrency > n then settings.concurrency = n > 0 and n or 1 end
  local r, results = list_run(list, n, on_progress, caller_position())
  execute(self, "wf:map()", r, fn, settings)
  return results
end

--- The streaming form of wf:map: fn(w, item, i) for every item next_item() returns, until
-- it returns nil, opts.concurrency at a time; each result goes to on_result(i, result, item)
-- as soon as its item is done, in the order items finish, and nothing of an item is kept
-- after that: memory stays flat however many items come.
-- @tparam function next_item called for the next item: returns it, or nil when there is
-- none left; called again only as a slot frees up
-- @tparam function fn called as fn(w, item, i), as for wf:map
-- @tparam function on_result called as on_result(i, result, item): i counts the items from
-- 1 in the order next_item gave them; result is fn's first value (or its second, when the
-- first is nil)
-- @tparam[opt] table opts `concurrency`, `adaptive`, `rate_limit_wait`, as for wf:map
-- @treturn integer how many items there were
-- @raise what next_item or fn raised, once the items in flight have ended and their
-- results went to on_result; when on_result raised, an error with `cause` (what it
-- raised) and `pending` ({index =, item =, result =} of each item it did not get)
function methods:map_each(next_item, fn, on_result, opts)
  open(self, "map_each")
  if type(next_item) ~= "function" then
    bad("map_each", 1, "function expected, got " .. type(next_item), 2)
  end
  if type(fn) ~= "function" then bad("map_each", 2, "function expected, got " .. type(fn), 2) end
  if type(on_result) ~= "function" then
    bad("map_each", 3, "function expected, got " .. type(on_result), 2)
  end
  local settings = options("map_each", 4, opts, true)
  return execute(self, "wf:map_each()",
                 new_run(next_item, nil, on_result, true, caller_position()), fn, settings)
end

local ITEM_FIELDS = { definitionId = true, context = true, attachments = true }

local function start_item(w, item)
  return w:start(item.definitionId, item.context, item.attachments)
end

-- What is wrong with start item i, or nil; name(i) is how messages name it (made only
-- for a message: the check runs for every item of a bulk start).
local function item_problem(item, i, name)
  if type(item) ~= "table" then
    return format("%s: table expected, got %s", name(i), type(item))
  end
  local id = item.definitionId
  if type(id) ~= "string" or id == "" then
    return format("%s.definitionId: non-empty string expected, got %s", name(i),
                  id == "" and "\"\"" or type(id))
  end
  if item.context ~= nil and type(item.context) ~= "table" then
    return format("%s.context: table expected, got %s", name(i), type(item.context))
  end
  if item.attachments ~= nil and type(item.attachments) ~= "table" then
    return format("%s.attachments: table expected, got %s", name(i), type(item.attachments))
  end
  for field in pairs(item) do
    if not ITEM_FIELDS[field] then
      return format("%s: unknown field '%s' (definitionId, context, attachments)", name(i),
                    tostring(field))
    end
  end
  return nil
end

local function list_item_name(i) return format("items[%d]", i) end
local function stream_item_name(i) return format("item %d", i) end

--- Starts many workflow instances, opts.concurrency at a time, on one token and shared
-- connections. Every item is checked before the first is sent: a bad one raises. One failed
-- item never stops the others, and no start is sent twice.
-- @tparam table items array of `{definitionId = ..., context = ..., attachments = ...}`
-- (context and attachments optional, as wf:start's; a table with other keys than 1..n
-- raises, as their items would not start)
-- @tparam[opt] table opts `concurrency` (default 16, at most 1024): starts in flight at
-- most; `adaptive` (default true): fewer on 429, 503 and Retry-After, more while answers are
-- clean, and a 429 waits for the limit instead of using up the retries; `rate_limit_wait`
-- (default 300): seconds a start may wait for a rate limit; `on_progress(done, total)`
-- @treturn table results in input order: the new instance, or the error object exactly as
-- wf:start returns it (tell them apart with sapwf.is_error; err.outcome says whether the
-- instance may exist)
-- @raise for an item that is not a table with a non-empty definitionId and optional
-- context and attachments tables, checked before any is sent; when on_progress raised,
-- once the starts in flight have ended: an error with `cause` and `results`, as wf:map's
function methods:start_many(items, opts)
  open(self, "start_many")
  if type(items) ~= "table" then
    bad("start_many", 1, "table expected, got " .. type(items), 2)
  end
  -- one pass over the keys, then one over the items: linear, as the starts are
  local n = base.check_array("start_many", 1, items, nil, 2)
  for i = 1, n do
    local problem = item_problem(items[i], i, list_item_name)
    if problem then bad("start_many", 1, problem, 2) end
  end
  local settings, on_progress = options("start_many", 2, opts)
  if settings.concurrency > n then settings.concurrency = n > 0 and n or 1 end
  local r, results = list_run(items, n, on_progress, caller_position())
  execute(self, "wf:start_many()", r, start_item, settings, true)
  return results
end

local function check_start_item(item, i)
  local problem = item_problem(item, i, stream_item_name)
  return problem and format("bad argument #1 to 'start_each' (%s)", problem) or nil
end

--- The streaming form of wf:start_many: starts an instance for every item next_item()
-- returns, until it returns nil, opts.concurrency at a time (adapting to the service's rate
-- limit); each result goes to on_result(i, result, item) as soon as that start is done, in
-- the order starts finish, and nothing of an item is kept after that: memory stays flat
-- however many items come. One failed start never stops the others, and no start is sent
-- twice.
-- @tparam function next_item called for the next item, `{definitionId = ..., context =
-- ..., attachments = ...}` (as start_many's), or nil when there is none left; called again
-- only as a slot frees up
-- @tparam function on_result called as on_result(i, result, item): i counts the items from
-- 1 in the order next_item gave them; result is the new instance or the error object
-- exactly as wf:start returns it (sapwf.is_error; err.outcome says whether it may exist)
-- @tparam[opt] table opts `concurrency` (default 16, at most 1024), `adaptive` (default
-- true), `rate_limit_wait` (default 300), as for wf:start_many
-- @treturn integer how many items there were
-- @raise what next_item raised, or for an item that is not a table with a non-empty
-- definitionId and optional context and attachments tables; in both cases once the starts
-- in flight have ended and their results went to on_result. When on_result raised, an
-- error with `cause` (what it raised) and `pending` ({index =, item =, result =} of each
-- start it did not get)
function methods:start_each(next_item, on_result, opts)
  open(self, "start_each")
  if type(next_item) ~= "function" then
    bad("start_each", 1, "function expected, got " .. type(next_item), 2)
  end
  if type(on_result) ~= "function" then
    bad("start_each", 2, "function expected, got " .. type(on_result), 2)
  end
  local settings = options("start_each", 3, opts, true)
  local r = new_run(next_item, check_start_item, on_result, true, caller_position())
  return execute(self, "wf:start_each()", r, start_item, settings, true)
end

-- The methods, and the limit of opts.concurrency for callers that check it before calling
-- (the CLI).
return { methods = methods, MAX_CONCURRENCY = MAX_CONCURRENCY }
