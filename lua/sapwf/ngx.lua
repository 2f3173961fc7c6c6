--- sapwf.ngx: sapwf inside OpenResty / nginx's Lua module, without blocking the event loop.
--
-- The client is a sapwf client (every method, the same results and error objects) whose
-- HTTP exchanges run in a thread of the nginx thread pool while the request waits, so the
-- worker goes on serving other connections. One token serves every worker
-- and thread: it is kept in a shared dict and renewed by one request at a time; a 401
-- renews it once and replays the call once, as for the plain client.
--
-- Phases: calls run where nginx allows worker threads: rewrite_by_lua*, access_by_lua*,
-- content_by_lua* and ngx.timer callbacks. Elsewhere (init_by_lua*, init_worker_by_lua*,
-- header/body filters, log_by_lua*, ...) a call raises an error that says so; start the work
-- in a timer there (ngx.timer.at(0, function() ... end)). new() itself does no network I/O
-- and may run anywhere, init_by_lua* included.
-- @usage
--   nginx.conf:  thread_pool sapwf threads=32;          (main context)
--                lua_shared_dict sapwf_tokens 1m;        (http context)
--
--   local wf = assert(require("sapwf.ngx").new{ service_key = "/etc/sapwf/key.json" })
--   local inst, err = wf:start("orderapproval", context)   -- in a handler or an ngx.timer

-- Inside: sapwf/ngx/thread.lua is what runs in the worker threads (a sapwf.core client per
-- configuration, auto_token off); sapwf/ngx/token.lua keeps the shared token; the
-- Transport below is what the client sends through (send.lua's request, renew, token).
local sapwf = require "sapwf"
local core = require "sapwf.core"
local client = require "sapwf.client"
local errors = require "sapwf.errors"
local json = require "sapwf.json"
local options = require "sapwf.options"
local token = require "sapwf.ngx.token"

local type, pairs, ipairs, tostring, error, setmetatable =
  type, pairs, ipairs, tostring, error, setmetatable
local format, find = string.format, string.find
local concat, sort = table.concat, table.sort
local unpack = table.unpack or unpack
local min = math.min
local running = coroutine.running

-- Transport.carried's keys: light threads (coroutines), dropped with them; MAIN where no
-- coroutine runs (Lua 5.1's coroutine.running() is nil there).
local WEAK_KEYS = { __mode = "k" }
local MAIN = {}

local THREAD_MODULE = "sapwf.ngx.thread"

local sapwf_ngx = { _VERSION = sapwf._VERSION }

--- sapwf's JSON decoder: integers stay exact, and empty arrays stay arrays when sent back.
-- @function decode
-- @tparam string text JSON text
-- @return the value
-- @fails nil and a message (positions only, never the text)
sapwf_ngx.decode = json.decode

-- The options this module adds to sapwf.new's.
local OWN_OPTIONS = { thread_pool = "string", shared_dict = "string" }
local DEFAULTS = { thread_pool = "sapwf", shared_dict = "sapwf_tokens" }

local PHASES = { rewrite = true, access = true, content = true, timer = true }

local function bad_option(name, expected, value)
  error(format("bad option '%s' (%s expected, got %s)", name, expected, type(value)), 3)
end

-- Raises unless the current phase may use worker threads. Level 0: the traceback in
-- nginx's error log shows the caller; a position inside sapwf would mislead.
local function check_phase(what)
  local phase = ngx.get_phase()
  if not PHASES[phase] then
    error(format("sapwf.ngx: %s cannot run in the %s phase: nginx runs worker threads only "
      .. "in rewrite_by_lua*, access_by_lua*, content_by_lua* and ngx.timer callbacks; "
      .. "start the work from a timer: ngx.timer.at(0, function() ... end)", what, phase), 0)
  end
end

-- A key for the thread side's client cache: every option but the secrets, so equal
-- configurations share a client and its connections.
local function config_key(core_opts)
  local names = {}
  for name in pairs(core_opts) do
    if name ~= "client_secret" and name ~= "key" then names[#names + 1] = name end
  end
  sort(names)
  local parts = {}
  for i, name in ipairs(names) do
    local value = core_opts[name]
    if name == "headers" then
      -- their names only: a value may be an API key, which replaces the client as a
      -- rotated secret does (ngx/thread.lua)
      local header_names = {}
      for header in pairs(value) do header_names[#header_names + 1] = header end
      sort(header_names)
      value = concat(header_names, ",")
    end
    parts[i] = name .. "=" .. tostring(value)
  end
  return ngx.md5(concat(parts, "\n"))
end

-- The values of the `headers` option that redact takes out: those of 8 bytes or more, as
-- a sapwf.core client does (client.c); at most 27, with the secret, the Basic credentials
-- and three tokens (Transport:redact) within the 32 secrets core.redact takes.
local MAX_SECRET_HEADERS = 27
local function header_values(headers)
  local values = {}
  for _, value in pairs(headers or {}) do
    if #value >= 8 then values[#values + 1] = value end
  end
  if #values > MAX_SECRET_HEADERS then
    error(format("sapwf.ngx: at most %d headers with a value of 8 bytes or more (the "
      .. "`headers` option)", MAX_SECRET_HEADERS), 3)
  end
  return values
end

-- ------------------------------------------------------------------------------------------
-- Running code in the thread pool.
--
-- nginx gives each call a Lua state of its own for the thread (kept in a pool of states
-- per worker and reused). A new one is made, and sapwf.ngx.thread loaded into it, by the
-- event loop itself, about a millisecond each: warm_up() makes them when the worker starts,
-- so that a burst of calls does not. nginx caps their number (lua_worker_thread_vm_pool_size);
-- a call that finds none free waits for one.

local VM_WAIT_FIRST, VM_WAIT_MAX = 0.002, 0.05
-- How long a reload waits for a call of a client with timeout = 0 (no bound of its own).
local MAX_HOLD = 300

-- A `config` error (plain table) for what nginx says when it cannot run a call, or nil for
-- anything else (a bug, raised by the caller).
local function setup_error(pool, message)
  -- "thread pool <name> not found" (lua-nginx-module 0.10.23, Debian's), "thread_pool not
  -- found" (later releases)
  if find(message, "thread[ _]pool.* not found") then
    return { kind = "config", phase = "request", sent = false, message = format(
      "nginx has no thread pool '%s': add `thread_pool %s threads=32;` to nginx.conf "
      .. "(main context), or pass thread_pool = <name>", pool, pool) }
  end
  if find(message, "sapwf", 1, true) and (find(message, "module", 1, true)
                                          or find(message, "undefined symbol", 1, true)) then
    if find(message, "undefined symbol: luaL?_") then
      message = message .. " (sapwf.core was built for another Lua: build it with "
        .. "`make LUA=luajit` for nginx)"
    end
    return { kind = "config", phase = "request", sent = false,
             message = "nginx's worker thread cannot load sapwf: " .. message }
  end
  return nil
end

-- The calls under way in this worker's threads (a key each -> until when it may run,
-- ngx.now()'s clock), and the timer that holds the worker for them: nil, or { queued =
-- when it was started, began = whether it runs }.
local holding, holder = {}, nil

-- nginx ends a worker on a reload (HUP) or a graceful stop (`nginx -s quit`) once no timer
-- holds it, and a request waiting for a worker thread holds none: the call still ran to its
-- end in the thread (a start done) while its caller got no answer, and would likely send it
-- again. So while calls are under way one timer per worker sleeps, and its sleep holds the
-- worker until they have ended. A call whose light thread was killed (ngx.thread.kill) never
-- says it ended: it is let go when it must be over anyway. A timer, not a light thread of
-- the request: that one would keep a request whose thread was killed from ending.
local function hold_worker(_, me)
  me.began = true
  while true do
    ngx.update_time()
    local now, any = ngx.now(), false
    for key, until_at in pairs(holding) do
      if until_at <= now then holding[key] = nil else any = true end
    end
    if not any then break end
    ngx.sleep(0.5)
  end
  if holder == me then holder = nil end
end

-- ngx.run_worker_thread(pool, THREAD_MODULE, fn, ...), the worker held meanwhile (above),
-- for at most hold_for seconds. What the call raises is raised once it is let go.
local function run_holding(pool, hold_for, fn, ...)
  local key = {}
  ngx.update_time()
  local now = ngx.now()
  holding[key] = now + hold_for
  -- A holder, unless one runs or is about to; one that has not begun within the grace was
  -- dropped by nginx (all lua_max_running_timers busy), and would never hold the worker.
  -- (None when nginx has no timer to spare: the call goes on, unheld.)
  if not holder or (not holder.began and now - holder.queued >= token.TIMER_GRACE) then
    local me = { queued = now, began = false }
    holder = ngx.timer.at(0, hold_worker, me) and me or nil
  end
  local ran, ok, a, b, c, d, e = pcall(ngx.run_worker_thread, pool, THREAD_MODULE, fn, ...)
  holding[key] = nil
  if not ran then error(ok, 0) end
  return ok, a, b, c, d, e
end

-- run_holding's results: true, results... or false, message; waits (yielding) while nginx
-- has no free Lua state, until `patience` seconds passed. hold_for: the longest the call
-- can take once it runs.
local function run_in_thread(pool, patience, hold_for, fn, ...)
  local ok, a, b, c, d, e = run_holding(pool, hold_for, fn, ...)
  if ok or a ~= "no available Lua vm" then return ok, a, b, c, d, e end
  ngx.update_time()
  local deadline, pause = ngx.now() + patience, VM_WAIT_FIRST
  while ngx.now() + pause <= deadline do
    ngx.sleep(pause)
    ngx.update_time()
    pause = min(pause * 2, VM_WAIT_MAX)
    ok, a, b, c, d, e = run_holding(pool, hold_for, fn, ...)
    if ok or a ~= "no available Lua vm" then return ok, a, b, c, d, e end
  end
  return false, a
end

--- Makes the Lua states of the worker threads now, in a timer, so that calls do not make
-- them on the event loop later. Call it from init_worker_by_lua*. A thread pool or build
-- problem is reported in nginx's error log at once.
-- @tparam[opt] table opts `thread_pool` (default "sapwf"): the thread_pool of nginx.conf;
-- `vms` (default 32): the calls you expect at once per worker, waiting ones included
-- @treturn boolean true
-- @fails nil and the message of ngx.timer.at
function sapwf_ngx.warm_up(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(format("bad argument #1 to 'warm_up' (table expected, got %s)", type(opts)), 2)
  end
  for name in pairs(opts) do
    if name ~= "thread_pool" and name ~= "vms" then
      error(format("bad option '%s' (unknown option)", tostring(name)), 2)
    end
  end
  local pool, vms = opts.thread_pool or DEFAULTS.thread_pool, opts.vms or 32
  if type(pool) ~= "string" then bad_option("thread_pool", "string", pool) end
  if type(vms) ~= "number" or vms < 1 or vms % 1 ~= 0 then
    error("bad option 'vms' (positive integer expected)", 2)
  end
  return ngx.timer.at(0, function(premature)
    if premature then return end
    local threads = {}
    for i = 1, vms do
      threads[i] = ngx.thread.spawn(run_in_thread, pool, 10, 10, "warm")
    end
    local failure
    for i = 1, vms do
      local _, ok, message = ngx.thread.wait(threads[i])
      if not ok and not failure then failure = tostring(message) end
    end
    if failure then
      local err = setup_error(pool, failure)
      ngx.log(ngx.ERR, "sapwf.ngx: warming up the worker threads failed: ",
              err and err.message or failure)
    end
  end)
end

-- ------------------------------------------------------------------------------------------
-- The transport: what a sapwf client sends through (request, renew, token, close, and
-- run_each for wf:map, wf:start_many and their streaming forms; send.lua describes them).

local Transport = {}
Transport.__index = Transport

-- Seconds until deadline (core.monotonic's clock, the threads' too), or nil for none.
local function left_until(deadline)
  if not deadline or deadline == 0 then return nil end
  return math.max(0, deadline - core.monotonic())
end

-- How long a call with this deadline waits for a Lua state: self.patience, or the time it
-- has left when that is less.
function Transport:patience_until(deadline)
  local left = left_until(deadline)
  return left and min(self.patience, left) or self.patience
end

-- Runs thread[fn](key, opts, ...) in the thread pool, waiting at most `patience` seconds for
-- a Lua state. Returns its results, or nil and a `config` error when nginx cannot run it (no
-- such thread pool, sapwf.core not loadable there). Anything else that fails in the thread
-- is a bug and raises.
function Transport:run(patience, fn, ...)
  -- the thread's call ends within the client's timeout (libcurl's): none, a bound anyway
  local hold_for = (self.timeout > 0 and self.timeout or MAX_HOLD) + 5
  local ok, a, b, c, d, e = run_in_thread(self.pool, patience, hold_for, fn, self.key,
                                          self.opts, ...)
  if ok then return a, b, c, d, e end
  local message = tostring(a)
  if message == "no available Lua vm" then
    return nil, { kind = "timeout", phase = "request", sent = false, message = format(
      "no free Lua state for nginx's worker threads within %gs (raise "
      .. "lua_worker_thread_vm_pool_size)", patience) }
  end
  local err = setup_error(self.pool, message)
  if err then return nil, err end
  -- The pool's queue is full (max_queue), or nginx has no memory for the task: nothing was
  -- sent, and a later try may work (send.lua retries a failure before sending). (Debian's
  -- lua-nginx-module 0.10.23 never gets here on a full queue: its worker aborts; README.)
  if message == "ngx_thread_task_post failed" or message == "no memory" then
    return nil, { kind = "network", phase = "request", sent = false, message = format(
      "nginx could not hand the call to thread pool '%s' (%s): its queue is full (raise "
      .. "max_queue of thread_pool) or nginx is out of memory", self.pool, message) }
  end
  error("sapwf.ngx: worker thread failed: " .. message, 0)
end

function Transport:fetch_token()
  return self:run(self.patience, "token")
end

-- One exchange with the shared token: status, body, headers, the token itself, which
-- names it for renew (it never leaves this Lua state), and the deadline it had; or nil,
-- err. deadline: when the whole call must be done (core.monotonic, the threads' clock too);
-- by default `timeout` from now, so the waits for a Lua state, nginx's queue and another
-- request's token fetch count in it, and a replay after a 401 gets what is left of it.
function Transport:request(method, path, body, deadline, output)
  check_phase("a call")
  if deadline == nil and self.timeout > 0 then deadline = core.monotonic() + self.timeout end
  local t, left, scope = self.tokens:get(left_until(deadline))
  if not t then return nil, left end
  -- for redact: the last token sent, and the one this light thread carried (its answer may
  -- quote it after other requests renewed the shared token twice meanwhile)
  self.sent = t
  self.carried[running() or MAIN] = t
  local status, resp, headers = self:run(self:patience_until(deadline), "request", t, left,
                                         scope, method, path, body, deadline or 0, output)
  return status, resp, headers, t, deadline
end

-- After a 401 to token t (send.lua decides to send again): renews the shared token, once
-- for every worker and thread, unless a fresh token was refused a moment ago. replayed:
-- the 401 came to the replay, so t is a fresh token the API refuses too (Tokens:refused).
function Transport:renew(t, replayed, deadline)
  if replayed then
    self.tokens:refused(t)
    return false
  end
  if not self.tokens:may_renew(t) then return false end
  local renewed, err = self.tokens:renew(t, left_until(deadline))
  if not renewed then return nil, err end
  return true
end

function Transport:token(force)
  check_phase("wf:token()")
  if force then
    local current = self.tokens:read()
    return self.tokens:renew(current and current.t)
  end
  return self.tokens:get()
end

-- text without the secret, its Basic credentials, the values of its `headers` and the
-- shared token, as a sapwf.core client takes its own out (errors.lua runs a server's texts
-- through it, by send.lua's redactor). The secrets are Lua strings here already (the
-- options the threads get). The tokens: the one in the dict now, the last this client sent,
-- and the one the calling light thread's last request carried: errors.lua judges an answer
-- in the light thread that sent it, and other requests may have renewed the shared token
-- any number of times while it was on its way.
function Transport:redact(text)
  local entry = self.tokens:read()
  return core.redact(text, self.opts.client_secret, self.basic, entry and entry.t,
                     self.sent, self.carried[running() or MAIN], unpack(self.header_values))
end

-- The thread side's clients are shared by every client with the same options, and are
-- bounded in number; closing this one only ends its use.
function Transport:close() end

-- wf:map, wf:start_many and their streaming forms (batch.lua) hand their run here: fn over
-- the run's items in `size` light threads (ngx.thread) that take item after item; each
-- call's exchange runs in nginx's thread pool while its light thread yields, so up to `size`
-- are in flight at once (with `adaptive`, fewer: wf is then a client whose requests pass
-- batch.lua's gate, which waits with waiter below).
-- run:take and run:deliver never raise; what fn raises stops the taking (run:fail), and
-- the other light threads finish their items, so nothing in flight is abandoned. One light
-- thread at a time takes an item (next_item may yield, e.g. reading a cosocket). It raises,
-- as a call does, in the phases that have neither.
function Transport:run_each(what, wf, run, fn, size)
  check_phase(what)
  local taking = false
  local function take()
    while taking do ngx.sleep(0) end
    taking = true
    local item, i = run:take()
    taking = false
    return item, i
  end
  local function worker()
    while true do
      local item, i = take()
      if item == nil or not run:call(fn, wf, item, i) then return end
    end
  end
  local spawn, wait = ngx.thread.spawn, ngx.thread.wait
  local threads = {}
  for k = 1, size do threads[k] = spawn(worker) end
  for k = 1, size do
    local ok, err = wait(threads[k])
    if not ok then run:fail(err) end
  end
end

-- For batch.lua's gate: wait(seconds) yields this light thread until post or that long
-- (at least a millisecond: a shorter ngx.semaphore wait would not yield at all); post(n)
-- wakes n waits, first come first served.
function Transport:waiter()
  local sema = require("ngx.semaphore").new(0)          -- lua-resty-core: only inside nginx
  return {
    wait = function(seconds) sema:wait(seconds < 0.001 and 0.001 or seconds) end,
    post = function(n) sema:post(n) end,
  }
end

-- ------------------------------------------------------------------------------------------

--- A sapwf client for nginx: every method of a sapwf client, with the same results and
-- errors, without blocking the event loop. It does no network I/O itself and may run in
-- any phase; its calls run where nginx allows worker threads (see the top of this page).
-- @tparam table opts as for sapwf.new, and `thread_pool` (default "sapwf"): the
-- thread_pool of nginx.conf the HTTP work runs in; `shared_dict` (default "sapwf_tokens"):
-- the lua_shared_dict that keeps the token
-- @treturn table the client
-- @fails nil, err with kind "config": a bad service key, or no such shared dict
function sapwf_ngx.new(opts)
  if type(ngx) ~= "table" or type(ngx.run_worker_thread) ~= "function" then
    error("sapwf.ngx needs nginx's Lua module with ngx.run_worker_thread (OpenResty, or "
      .. "lua-nginx-module 0.10.23 or newer); outside nginx use sapwf.new", 2)
  end
  if type(opts) ~= "table" then
    error(format("bad argument #1 to 'new' (table expected, got %s)", type(opts)), 2)
  end
  local own, rest = {}, {}
  for name, value in pairs(opts) do
    if OWN_OPTIONS[name] then
      if type(value) ~= OWN_OPTIONS[name] then bad_option(name, OWN_OPTIONS[name], value) end
      own[name] = value
    else
      rest[name] = value
    end
  end
  for name, value in pairs(DEFAULTS) do
    if own[name] == nil then own[name] = value end
  end
  options.check(rest, "new")
  local core_opts, err = options.core(rest)
  if not core_opts then return nil, err end
  -- Bad option values raise here, at new, not later in a worker thread.
  core_opts.auto_token = false
  core.new(core_opts):close()
  core_opts.auto_token = nil

  local dict = ngx.shared[own.shared_dict]
  if not dict then
    return nil, errors.config(format("nginx has no lua_shared_dict '%s': add "
      .. "`lua_shared_dict %s 1m;` to the http block of nginx.conf, or pass shared_dict = "
      .. "<name>", own.shared_dict, own.shared_dict))
  end

  -- 0 is libcurl's: no limit for timeout, its default of 300 s for connect_timeout
  local connect_timeout = core_opts.connect_timeout or 10
  local timeout = core_opts.timeout or 60
  local secret = core_opts.client_secret
  local transport = setmetatable({ pool = own.thread_pool, opts = core_opts,
                                   key = config_key(core_opts), timeout = timeout,
                                   patience = connect_timeout > 0 and connect_timeout or 300,
                                   -- light thread -> the token its request carried
                                   carried = setmetatable({}, WEAK_KEYS),
                                   -- HTTP Basic's, as libcurl sends them: for redact
                                   basic = secret and ngx.encode_base64(core_opts.client_id
                                                                        .. ":" .. secret),
                                   header_values = header_values(core_opts.headers) },
                                 Transport)
  -- A fetch is bounded by libcurl's timeout; waiting for another request's fetch too.
  local wait = timeout > 0 and timeout + 5 or math.huge
  -- The credentials are part of it: a client with a wrong secret (a typo, a stale key after
  -- a rotation) must fail at once, as sapwf.new's does, not use another's token for hours.
  local id = "sapwf:" .. ngx.md5(concat({ core_opts.token_url, core_opts.client_id,
    core_opts.client_secret or "", core_opts.cert or "", core_opts.key or "" }, "\n"))
  -- A failed fetch's texts (a token endpoint's error_description) are shared with the
  -- requests waiting on it and logged when a renewal fails: without the secrets in them.
  local function redact(text) return transport:redact(text) end
  transport.tokens = token.new(dict, id, core_opts.token_margin or 60, wait, function()
    local t, left, scope = transport:fetch_token()
    if not t and type(left) == "table" then errors.redact_core(left, redact) end
    return t, left, scope
  end)
  -- Retries wait with ngx.sleep, which yields, not with sapwf.core.sleep, which blocks. A
  -- server's requests share this client: a 403 fetches a fresh token at most once a second
  -- (per worker), not once for every request of a client that lacks an authority.
  return client.wrap(transport, core_opts.api_url, opts.instance, rest, { sleep = ngx.sleep,
    now = function() ngx.update_time(); return ngx.now() end, forbidden_interval = 1 })
end

return sapwf_ngx
