-- When a call is sent again: every rule of it, in one place. base.lua sends every API call
-- through send.send, and wf:token through send.token.
--
-- What is sent again, and when:
-- - a call that surely never reached the service (no connection, no token: outcome
--   not_sent), any method, when the failure may pass (network, timeout, token endpoint 408,
--   429 or 5xx);
-- - an answer 408 or 429, any method: the service refused before acting;
-- - idempotent calls also on 500, 502, 503, 504 and on network failures after sending: GET, PUT
--   and the PATCHes that set values (instance status, context merge, roles);
-- - never a start or message (POST) that may have reached the service: the error says
--   outcome "unknown" instead;
-- - nothing more once a signal the command line catches (core.catch_sigint) came: it ends
--   the wait before a retry, and the call returns the last attempt's error with
--   interrupted = true (see `interrupted` below).
-- Besides those retries (which wait, and count in err.attempts), two answers get one more
-- sending at once:
-- - a 401: the API refused the token, so it did not act, and even a POST is sent once more
--   after the transport renewed the token (transport:renew, which knows when that cannot
--   help: see src/token.c and sapwf/ngx/token.lua);
-- - a 403: one fresh token and one more try, so that authorities granted since the token
--   was cached work at once (README, "Credentials and authorities").
--
-- A transport is what a client sends through: a sapwf.core client, a batch's stand-in
-- (batch.lua) or sapwf.ngx's. It offers
--   request(method, target, body [, deadline]) -> status, body, headers, gen, deadline
--                                               | nil, core error
--   renew(gen, replayed [, deadline])          -> true (send again) | false | nil, err
--   token([force])                             -> token, seconds left, scope | nil, err
--   redact(text)                               -> text without the secret, the Basic
--                                                 credentials, the tokens it holds and
--                                                 its headers' values
-- gen names the token a request carried; deadline is when the request must be done, which
-- its replay after a 401 shares. A transport without renew gets no replay; one without
-- redact (a spec's stand-in) leaves a server's texts as they came.
local core = require "sapwf.core"
local errors = require "sapwf.errors"
local operations = require "sapwf.operations"

local ipairs, pairs, tostring, tonumber = ipairs, pairs, tostring, tonumber
local match = string.match
local floor = math.floor
local header, parse_retry_after = core.header, core.retry_after

local send = {}

-- Retry defaults (README "Retries"): at most `retries` more attempts, none begun later than
-- `retry_deadline` seconds after the first, waits from backoff_base doubling up to
-- backoff_max (with jitter), or longer when Retry-After asks.
send.RETRY_DEFAULTS = { retries = 3, retry_deadline = 30, backoff_base = 0.5, backoff_max = 8 }

-- HTTP statuses worth sending an idempotent call again for.
local RETRY_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true,
                       [504] = true }
-- Answers that say the request was not acted on, so even a start is sent again: 408 (the
-- server did not get the whole request) and 429 (SAP's rate limit refuses before acting).
-- Not 503: a proxy may answer it after the service already started the workflow.
local REFUSED_STATUS = { [408] = true, [429] = true }
-- Operations besides GET and PUT whose second sending has the effect of the first. Not
-- resume: on an ERRONEOUS instance it retries the failed activities (SAP's definition), so a
-- second sending after a lost answer may run them, and what they call, once more.
local IDEMPOTENT_OPS = { cancel = true, suspend = true, update_context = true,
                         update_roles = true }
-- A 429 through a batch's adaptive limiter (policy.rate_limit_wait set by batch.lua): the
-- service refused before acting and the limiter slows the whole batch down, so the refusal
-- is not one of the `retries`: the call waits (Retry-After, or the backoff of its n-th
-- refusal in a row) and is sent again, for at most rate_limit_wait seconds from its first
-- 429; after that its 429s take the ordinary retries. That wait does not count in
-- retry_deadline either.
-- A 403 fetches a fresh token once per call; a call that began before another one's
-- refresh just tries again with that token. With policy.forbidden_interval set (batch.lua
-- sets it for a batch's items, sapwf.ngx for a server's client), at most one refresh every
-- forbidden_interval seconds, so a thousand forbidden items or requests do not ask the
-- token endpoint a thousand times.

-- Whether sending method to a path (no query) twice has the effect of once.
function send.idempotent(method, bare_path, op_name)
  if method == "GET" or method == "PUT" then return true end
  if op_name then return IDEMPOTENT_OPS[op_name] == true end
  local found = operations.match(method, bare_path)
  for _, op in ipairs(found) do
    if not IDEMPOTENT_OPS[op.name] then return false end
  end
  return found[1] ~= nil
end

-- The same, once per operation, for base.lua.
send.IDEMPOTENT = {}
for name, op in pairs(operations.by_name) do
  send.IDEMPOTENT[op] = send.idempotent(op.method, op.path, name)
end

-- A policy: the retry options (RETRY_DEFAULTS' names), log, sleep, now, the time of the
-- last 403 refresh (forbidden_refresh), for one client, and forbidden_interval when the
-- environment bounds 403 refreshes (sapwf.ngx: a server's requests share one client).
function send.policy(opts, env)
  local policy = { log = opts.log, sleep = env.sleep or core.sleep,
                   now = env.now or core.monotonic, forbidden_interval = env.forbidden_interval }
  for name, default in pairs(send.RETRY_DEFAULTS) do
    if opts[name] ~= nil then policy[name] = opts[name] else policy[name] = default end
  end
  return policy
end

-- Jitter spreads the retries of many processes. math.random is seeded randomly only on Lua
-- 5.4, and seeding it here would change the sequence a program set up for itself, so the
-- jitter has a Park-Miller generator of its own, seeded from the clock and an address.
local jitter_state = floor((core.monotonic() * 1e6 + os.time()
  + (tonumber(match(tostring({}), "0x(%x+)") or "0", 16) or 0)) % 2147483646) + 1
local function jitter()
  jitter_state = (jitter_state * 16807) % 2147483647
  return jitter_state / 2147483647
end

-- The wait before retry number n: base * 2^(n-1), at most backoff_max, of which a random
-- part ("equal jitter": from half the step to the whole step).
local function backoff(policy, n)
  local step = policy.backoff_base * 2 ^ (n - 1)
  if step > policy.backoff_max then step = policy.backoff_max end
  return step / 2 + step / 2 * jitter()
end

-- Passes an event to the log hook. Events carry what happened, never a token or secret.
local function log(policy, event)
  if policy.log then policy.log(event) end
end

-- policy.sleep(wait): true when a signal the command line catches (core.catch_sigint) ended
-- the wait; core.sleep and batch.lua's yielding sleep say so, nothing else does. The retry
-- is then not sent: the user said stop while it waited, and the earlier attempt did not
-- take effect (or its error says outcome "unknown", as without the signal). The call
-- returns that attempt's error, marked interrupted (send.annotate), and the log hook, told
-- of the retry as the wait began (event: that "retry" or "rate_limited" event), hears that
-- it was not sent.
local function interrupted(policy, state, wait, event)
  if policy.sleep(wait) == true then
    state.interrupted = true
    log(policy, { event = "retry_cancelled", reason = "interrupted", waited_for = event.event,
                  method = event.method, path = event.path })
    return true
  end
  return false
end

-- Waits before the next attempt when the policy allows one: returns true after the wait,
-- false when the retries or the deadline are used up (at once) or a caught signal ended
-- the wait (state.interrupted). state: {started, retries}.
local function pause(policy, state, retry_after, event)
  if state.retries >= policy.retries then return false end
  local wait = backoff(policy, state.retries + 1)
  if retry_after and retry_after > wait then wait = retry_after end
  if policy.now() - state.started + wait > policy.retry_deadline then return false end
  local attempt = state.retries + 1
  event.event, event.attempt, event.delay, event.retry_after = "retry", attempt, wait,
    retry_after
  log(policy, event)
  if interrupted(policy, state, wait, event) then return false end
  state.retries = attempt                 -- counted once it goes out (err.attempts)
  return true
end

local function new_state(started)
  return { started = started, retries = 0, uncertain = false, refusals = 0 }
end

-- The wait for a 429 under a batch's limiter (see the top): true after the wait, false
-- (at once) when the call has waited rate_limit_wait seconds for the limit already, or
-- when a caught signal ended the wait (state.interrupted, as for pause).
local function wait_for_limit(policy, state, retry_after, method, path)
  local t = policy.now()
  state.limited_since = state.limited_since or t
  local wait = backoff(policy, state.refusals + 1)
  if retry_after and retry_after > wait then wait = retry_after end
  if t - state.limited_since + wait > policy.rate_limit_wait then return false end
  local event = { event = "rate_limited", method = method, path = path, status = 429,
                  outcome = "rejected", refusals = state.refusals + 1, delay = wait,
                  retry_after = retry_after }
  log(policy, event)
  if interrupted(policy, state, wait, event) then return false end
  state.refusals = state.refusals + 1
  state.started = state.started + (policy.now() - t)    -- not spent from retry_deadline
  return true
end

-- What errors.lua runs a server's texts through before an error keeps them (a token
-- endpoint or an API may quote what it was sent): transport t's redact, or nil.
function send.redactor(t)
  if not (t and t.redact) then return nil end
  return function(text) return t:redact(text) end
end
local redactor = send.redactor

-- Adds what the retries did to a final error: how many attempts went out, an unknown
-- outcome when an earlier attempt may have taken effect, and interrupted = true when a
-- caught signal ended the wait for the next one (which was then not sent).
function send.annotate(err, state, retry_after)
  if state then
    local attempts = state.retries + (state.refusals or 0)
    if attempts > 0 then err.attempts = attempts + 1 end
    if state.uncertain and err.outcome ~= "unknown" then err.outcome = "unknown" end
    if state.interrupted then err.interrupted = true end
  end
  if retry_after and err.retry_after == nil then err.retry_after = retry_after end
  return err
end

-- Whether the cached token grants authority: true, false, or nil when it cannot tell (no
-- authority named, no token cached, no scope known).
local function token_grants(t, authority)
  if not authority then return nil end
  local token, _, scope = t:token()
  if not (token and scope) then return nil end
  for _, granted in ipairs(errors.granted(scope)) do
    if granted == authority then return true end
  end
  return false
end

-- Whether a 403 is worth a fresh token: the cached one lacks the authority (or cannot tell),
-- and (in a batch, in nginx) no 403 fetched one during the last policy.forbidden_interval
-- seconds.
local function refresh_may_help(t, policy, authority)
  local last = policy.forbidden_refresh
  local interval = policy.forbidden_interval
  if interval and last and policy.now() - last < interval then return false end
  return token_grants(t, authority) ~= true
end

-- Sends method to target (path .. query; body: text or nil) through transport t with the
-- rules above. path: the path without query (for errors and log events); authority: the
-- one a 403 names; idempotent: whether sending it twice does what once does; output:
-- how the answer is taken (client:request's `accept` and `to_file`), or nil. Returns
-- status, body, headers, state for any final HTTP answer, or nil, err (an error object,
-- annotated). state is nil when the first answer was final; otherwise what the retries
-- did, for send.annotate.
function send.send(t, policy, method, target, body, path, authority, idempotent, output)
  local started = policy.now()
  local state            -- made at the first retry or token refresh: most calls need none
  local refreshed, replayed = false, false
  local deadline         -- set for the replay after a 401: it shares the request's time
  while true do
    local status, resp, headers, gen, used = t:request(method, target, body, deadline, output)
    deadline = nil
    if status == 401 and t.renew then
      -- The API refused the token and did nothing. Renew it and send once more; a 401 to
      -- that replay tells the transport its fresh token is refused too.
      local again, err = t:renew(gen, replayed, used)
      if again and not replayed then
        replayed, deadline = true, used
        status = false                                  -- to the top of the loop
      elseif again == nil then
        status, resp = nil, err                         -- the renewal failed: as a call
      end
    end
    if status then
      if status < 400 then                                               -- the usual case
        if state then state.retry_after = nil end
        return status, resp, headers, state
      end
      state = state or new_state(started)
      state.retry_after = nil
      local last = policy.forbidden_refresh
      if status == 403 and not refreshed and last and last > started
          and token_grants(t, authority) ~= false then
        -- another call fetched a fresh token after this one began (its request may have
        -- carried the old one): one more try with that token, no fetch of its own
        refreshed = true
      elseif status == 403 and not refreshed and refresh_may_help(t, policy, authority) then
        refreshed = true
        policy.forbidden_refresh = policy.now()
        log(policy, { event = "token_refresh", reason = "forbidden", method = method,
                      path = path, status = 403 })
        if not t:token(true) then return status, resp, headers, state end
      elseif RETRY_STATUS[status] and (idempotent or REFUSED_STATUS[status]) then
        local retry_after = header(headers, "retry-after")
        retry_after = retry_after and parse_retry_after(retry_after) or nil
        state.retry_after = retry_after       -- for the error, if this answer is the last
        -- a 503 is only retried for idempotent calls, where it counts as a refusal
        local outcome = (REFUSED_STATUS[status] or status == 503) and "rejected" or "unknown"
        -- under a batch's limiter a 429 waits for the limit, not counted as a retry
        local limited = status == 429 and policy.rate_limit_wait
          and wait_for_limit(policy, state, retry_after, method, path)
        if not limited and (state.interrupted or not pause(policy, state, retry_after, {
            method = method, path = path, status = status, outcome = outcome })) then
          return status, resp, headers, state
        end
        if outcome == "unknown" then state.uncertain = true end
      else
        return status, resp, headers, state
      end
    elseif status == nil then
      state = state or new_state(started)
      state.retry_after = nil
      local err = errors.from_core(resp, method, path, idempotent, redactor(t))
      local again = err.retryable and (idempotent or err.outcome == "not_sent")
      if not (again and pause(policy, state, err.retry_after, {
          method = method, path = path, kind = err.kind, status = err.status,
          phase = err.phase, outcome = err.outcome })) then
        return nil, send.annotate(err, state)
      end
      if err.outcome == "unknown" then state.uncertain = true end
    end
  end
end

-- The token of transport t (for wf:token), with the retries of a call that was never sent.
function send.token(t, policy, force)
  local state = new_state(policy.now())
  while true do
    local token, left, scope = t:token(force)
    if token then return token, left, scope end
    local err = errors.from_core(left, nil, nil, nil, redactor(t))
    if not (err.retryable and pause(policy, state, err.retry_after, {
        kind = err.kind, status = err.status, phase = "token", outcome = err.outcome })) then
      return nil, send.annotate(err, state)
    end
  end
end

return send
