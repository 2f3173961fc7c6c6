-- One access token for every nginx worker and thread: kept in a lua_shared_dict, renewed
-- by one request at a time (single flight).
--
-- Each nginx worker is a process with its own Lua state, and each thread of its thread
-- pool has another one; a token cached in any of them would be fetched once per state.
-- The shared dict is the one memory they all see, so the token lives there, under a key
-- made from the token URL, the client id and the credentials (an MD5 digest: the secret
-- itself is never a key; ngx.lua):
--   "<id>"       JSON {t = token, e = expiry (ngx.now() seconds; false: none), l = lifetime,
--                s = scope}, set in one call so no reader sees half of it
--   "<id>:lock"  present while one request fetches, holding who fetches; it always has
--                a TTL, so a holder that died (a crashed worker, a light thread killed
--                mid-fetch, whose code never runs again) stops the others no longer than
--                that; and its holder deletes it only while it is still its own (a fetch
--                that outlived the TTL must not free the lock of the one that came after)
--   "<id>:refused"  a token the API refused although it was fetched anew for a 401; kept
--                RENEW_HOLD seconds, during which a 401 to it renews nothing (as src/token.c
--                does for the plain client and batches)
--   "<id>:fail"  JSON {at = ngx.now(), err = {...}}: the last failed fetch, kept FAIL_TTL
--                seconds, so the requests that waited for it get its error instead of each
--                fetching in turn, and a renewal within the margin is not tried again at once
--
-- get(): a token with more than the margin left is used as is. Within the margin, one
-- request takes the lock and fetches a new token while the others keep using the old one,
-- which is still valid. With no valid token at all, one request fetches and the others
-- wait (ngx.sleep, which yields: the event loop runs on) until it is stored.
-- renew(rejected): after the API answered 401 to `rejected`: the first request to see it
-- fetches, the others wait for and use the token it stores; none fetches twice.
--
-- The fetch itself (libcurl, blocking) is `fetch`, run by the caller in a worker thread.
local cjson = require "cjson.safe"

local type, tostring, pairs, pcall, error, setmetatable =
  type, tostring, pairs, pcall, error, setmetatable
local min, huge = math.min, math.huge
local format = string.format

local token = {}

local Tokens = {}
Tokens.__index = Tokens

local FAIL_TTL = 5                     -- seconds a failure is kept for the requests waiting on it
local UNBOUNDED_LOCK_TTL = 300         -- the lock's lifetime when fetches have no timeout
local RENEW_HOLD = 1                   -- seconds a refused fresh token renews nothing
local FIRST_POLL, MAX_POLL = 0.005, 0.05
-- Seconds a fetch's timer may take to begin. A timer due at once begins within the next
-- turns of the event loop; one that has not after this was dropped (nginx drops a timer
-- that is due while lua_max_running_timers are running, logging an alert), and the
-- request that started it fetches instead.
local TIMER_GRACE = 0.5
token.TIMER_GRACE = TIMER_GRACE                   -- (ngx.lua's worker holder goes by it too)
-- Seconds the fetch lock is taken for until a fetch begins under it (Tokens:lock).
local LOCK_START_TTL = 2 * TIMER_GRACE
-- wait_for's answer when its `stalled` said the fetch it waited for never began.
local STALLED = {}

-- Fields of a core error that may be passed on (none holds a secret).
local ERROR_FIELDS = { "kind", "message", "phase", "sent", "status", "code", "curl_code",
                       "retry_after" }

--- dict: the ngx.shared.DICT; id: a string naming the credentials; margin: renew this many
-- seconds before expiry (at most half the token's lifetime); wait: seconds to wait for
-- another request's fetch, also the lock's lifetime (math.huge: no timeout; the lock then
-- lives UNBOUNDED_LOCK_TTL, a dict's TTL of 0 being forever); fetch(): token,
-- seconds_left, scope | nil, err (a plain table).
function token.new(dict, id, margin, wait, fetch)
  return setmetatable({ dict = dict, key = id, lock_key = id .. ":lock",
                        fail_key = id .. ":fail", refused_key = id .. ":refused",
                        margin = margin, wait = wait,
                        lock_ttl = wait < huge and wait or UNBOUNDED_LOCK_TTL,
                        fetch = fetch, last_raw = nil, last = nil }, Tokens)
end

-- The stored entry, decoded; the last decoding is reused while the text is unchanged.
-- With nothing stored (a dict too full to keep it: fetch_and_store logs that), the last
-- entry this worker fetched or read, while it is still valid: else every request would
-- fetch a token of its own.
function Tokens:read()
  local raw = self.dict:get(self.key)
  if raw == nil then
    local last = self.last
    if last and (not last.e or last.e > ngx.now()) then return last end
    return nil
  end
  if raw ~= self.last_raw then
    local entry = cjson.decode(raw)
    if type(entry) ~= "table" or type(entry.t) ~= "string" then return nil end
    self.last_raw, self.last = raw, entry
  end
  return self.last
end

local function seconds_left(entry)
  if not entry.e then return huge end
  return entry.e - ngx.now()
end

-- Renew when less than this is left: the margin, or half the lifetime for tokens that
-- live shorter than twice the margin (else every call would renew).
function Tokens:margin_of(entry)
  local lifetime = entry.l
  if type(lifetime) == "number" and lifetime < huge then return min(self.margin, lifetime / 2) end
  return self.margin
end

local function fresh(self, entry)
  return entry ~= nil and seconds_left(entry) > self:margin_of(entry)
end

local function valid(entry)
  return entry ~= nil and seconds_left(entry) > 0
end

local function result(entry)
  return entry.t, seconds_left(entry), entry.s
end

local locks_taken = 0                  -- this worker's; with its pid, names each holder

-- A renewal near expiry failed (err: its plain error, redacted already): the valid token
-- serves meanwhile, and the log says why no new one came.
local function renewal_failed(err)
  ngx.log(ngx.WARN, "sapwf.ngx: renewing the token failed, still using the old one: ",
          tostring(err.message))
end

-- The holder's name when this request now holds the lock, else nil. A dict that cannot
-- take the lock (full) counts as held by us (true: nothing to release): fetching without
-- the lock beats waiting for nobody. The lock is taken for LOCK_START_TTL only, and lasts
-- its lifetime once a fetch begins under it (keep_lock): a fetch's timer that never runs
-- (nginx drops it; its request killed meanwhile) holds up the others a second, not the
-- lock's lifetime, while the token they wait for may expire.
function Tokens:lock()
  locks_taken = locks_taken + 1
  local holder = ngx.worker.pid() .. ":" .. locks_taken
  ngx.update_time()          -- the dict dates the lifetime by this worker's cached clock
  local ok, err = self.dict:add(self.lock_key, holder, min(LOCK_START_TTL, self.lock_ttl))
  if ok then return holder end
  if err ~= "exists" then return true end
  return nil
end

-- A fetch begins under the lock: true, the lock now lasting its lifetime, while holder
-- holds it, or took it again (it expired, and nobody else took it); false when another
-- holds it (taken for too short: another fetch runs under it).
function Tokens:keep_lock(holder)
  if holder == true then return true end
  local dict, key = self.dict, self.lock_key
  ngx.update_time()
  local current = dict:get(key)
  if current ~= nil and current ~= holder then return false end
  -- Ours: extended with expire, not set (should it pass to another worker between the two,
  -- a clock a little ahead, its name stays, and both fetch, once). Gone (lapsed, or
  -- evicted meanwhile): taken again.
  if current == holder and dict:expire(key, self.lock_ttl) then return true end
  return (dict:add(key, holder, self.lock_ttl)) == true
end

function Tokens:unlock(holder)
  if holder ~= true and self.dict:get(self.lock_key) == holder then
    self.dict:delete(self.lock_key)
  end
end

local function plain_error(err)
  local out = {}
  if type(err) == "table" then
    for _, name in pairs(ERROR_FIELDS) do out[name] = err[name] end
  end
  out.kind = out.kind or "auth"
  out.message = out.message or tostring(err)
  out.phase = "token"
  out.sent = false
  return out
end

-- Fetches and stores a token; the caller holds the lock and releases it. Returns the
-- entry, or nil and the error (also recorded for the requests waiting on this fetch).
function Tokens:fetch_and_store()
  local t, left, scope = self.fetch()
  ngx.update_time()
  local now = ngx.now()
  if not t then
    local err = plain_error(left)
    self.dict:set(self.fail_key, cjson.encode({ at = now, err = err }), FAIL_TTL)
    return nil, err
  end
  local finite = left < huge
  local entry = { t = t, e = finite and now + left or false, l = finite and left or false,
                  s = scope }
  local raw = cjson.encode(entry)
  -- exptime 0 keeps an entry without expiry until the API rejects it. When the dict is
  -- full, set evicts old entries; if even that fails, this worker keeps it (read).
  local stored, why = self.dict:set(self.key, raw, finite and left or 0)
  if not stored then
    ngx.log(ngx.ERR, "sapwf.ngx: cannot keep the token in the shared dict (", tostring(why),
            "): each worker fetches its own; give sapwf.ngx a lua_shared_dict of its own")
  end
  self.dict:delete(self.fail_key)
  self.last_raw, self.last = raw, entry
  return entry
end

-- Holding the lock (holder: what lock returned): unless `acceptable` already holds
-- (another request stored a token between our read and our lock), fetches, and releases
-- the lock. Returns entry | nil, err. detached: the caller has a valid token to go on with
-- (a renewal near expiry), so when the fetch runs in its timer this returns nil at once,
-- without waiting for it (nor for the token endpoint, however slow), and the timer logs a
-- failure.
--
-- The fetch runs in a timer of its own, which stores the token (or the failure) and
-- releases the lock whatever becomes of this request: a light thread killed while it waits
-- (ngx.thread.kill, ngx.exit elsewhere, a client abort) never runs another line, so a
-- fetch of its own would neither store its token nor release the lock, and every request
-- after it would wait out the lock's lifetime. This request then waits for the result as
-- any other does. Without a timer (too many pending), or when nginx drops it (too many
-- running: TIMER_GRACE), the fetch runs here. (A renewal near expiry does not wait to see:
-- its dropped timer leaves the lock to expire after LOCK_START_TTL, the valid token serving
-- meanwhile; so does a request killed before its timer began.)
function Tokens:locked_fetch(acceptable, holder, until_at, detached)
  local current = self:read()
  if current and acceptable(current) then
    self:unlock(holder)
    return current
  end
  -- ok, entry | nil, err as fetch_and_store's, the lock released whatever happened; or
  -- true, nil, nil, true (lost) without fetching when the lock is another's by now
  local function fetch_and_release()
    if not self:keep_lock(holder) then return true, nil, nil, true end
    -- begun late (a busy loop, a lapsed lock taken again), it may find a token stored
    local stored = self:read()
    if stored and acceptable(stored) then
      self:unlock(holder)
      return true, stored
    end
    local ok, entry, err = pcall(self.fetch_and_store, self)
    self:unlock(holder)
    return ok, entry, err
  end
  ngx.update_time()
  local since = ngx.now()
  -- Without a lock (holder true: the dict had no room for one) nothing keeps the others
  -- out and nothing is left to release: the fetch runs here, as without a timer. (Waiting
  -- for a timer's fetch would find no lock to wait on, and start another fetch, and
  -- another, before the first one could run.)
  local began, taken_over = false, false      -- this worker's: no other thread sees them
  local started = holder ~= true and ngx.timer.at(0, function()
    if taken_over then return end               -- late: the request fetched, and released
    began = true
    local ok, entry, err, lost = fetch_and_release()
    if lost then return end                     -- late: another fetch runs
    if not ok then
      ngx.log(ngx.ERR, "sapwf.ngx: the token fetch failed: ", tostring(entry))
    elseif detached and not entry then
      renewal_failed(err)
    end
  end)
  if started and detached then return nil end
  if started then
    local function stalled()
      if began or ngx.now() - since < TIMER_GRACE then return false end
      taken_over = true
      return true
    end
    local entry, err = self:wait_for(acceptable, since, until_at, stalled)
    if entry ~= STALLED then
      if not began then                         -- done before the timer began (out of time,
        taken_over = true                       -- or another worker's token came): it never
        self:unlock(holder)                     -- will fetch, and the lock is free
      end
      return entry, err
    end
    ngx.log(ngx.WARN, "sapwf.ngx: the token fetch's timer did not run (is ",
            "lua_max_running_timers too low?); fetching in the request")
  end
  local ok, entry, err, lost = fetch_and_release()
  if lost then return self:wait_for(acceptable, since, until_at) end
  if not ok then error(entry, 0) end                 -- a bug: do not hide it
  return entry, err
end

-- Waits for the request holding the lock, until `acceptable` holds for the stored token,
-- the lock is free (then takes it and fetches), or a fetch failed since `since` (default:
-- now). until_at (ngx.now()'s clock, or nil): when the call's own time runs out, which
-- ends the wait sooner (its error has cut = true). stalled (or nil): asked while the lock
-- is held; true ends the wait with STALLED, the lock still held.
function Tokens:wait_for(acceptable, since, until_at, stalled)
  ngx.update_time()
  since = since or ngx.now()
  local deadline, cut = since + self.wait, false
  if until_at and until_at < deadline then deadline, cut = until_at, true end
  local pause = FIRST_POLL
  while true do
    local entry = self:read()
    if entry and acceptable(entry) then return entry end
    -- The failure first: its fetch has released the lock by now.
    local fail = self.dict:get(self.fail_key)
    if fail then
      fail = cjson.decode(fail)
      if type(fail) == "table" and type(fail.at) == "number" and fail.at >= since
          and type(fail.err) == "table" then
        return nil, plain_error(fail.err)
      end
    end
    local holder = self:lock()
    if holder then return self:locked_fetch(acceptable, holder, until_at) end
    ngx.update_time()
    if stalled and stalled() then return STALLED end
    if ngx.now() >= deadline then
      if cut then
        return nil, { kind = "timeout", phase = "token", sent = false, cut = true,
                      message = "the call's timeout ran out while it waited for a token "
                        .. "fetch" }
      end
      return nil, { kind = "timeout", phase = "token", sent = false,
                    message = format("no token after waiting %gs for another request's "
                                     .. "token fetch", self.wait) }
    end
    ngx.sleep(pause)
    pause = min(pause * 1.5, MAX_POLL)
  end
end

-- When `within` seconds from now have passed (ngx.now()'s clock), or nil for no bound.
local function until_now_plus(within)
  if within == nil then return nil end
  ngx.update_time()
  return ngx.now() + within
end

--- A token for the next call: token, seconds_left, scope | nil, err (a plain table).
-- within: the seconds the call has left (nil: no bound), which bound a wait for another
-- request's fetch.
function Tokens:get(within)
  local entry = self:read()
  if fresh(self, entry) then return result(entry) end
  local until_at = until_now_plus(within)
  local function is_fresh(e) return fresh(self, e) end
  if valid(entry) then
    -- Near expiry: one request renews, the others go on with the valid one; after a failed
    -- renewal nobody tries again for FAIL_TTL seconds, the old token serving meanwhile.
    local holder = not self.dict:get(self.fail_key) and self:lock()
    if not holder then return result(entry) end
    -- the call goes on with the valid token while the renewal runs in its timer
    local renewed, err = self:locked_fetch(is_fresh, holder, until_at, true)
    if renewed then return result(renewed) end
    if err then renewal_failed(err) end              -- fetched here: no timer to spare
    if not err or valid(entry) then return result(entry) end
    err.cut = nil
    return nil, err
  end
  local got, err
  local holder = self:lock()
  if holder then
    got, err = self:locked_fetch(valid, holder, until_at)
  else
    got, err = self:wait_for(valid, nil, until_at)
  end
  if not got then
    err.cut = nil
    return nil, err
  end
  return result(got)
end

--- The API answered 401 to t, which a 401 had made us fetch: it refuses this client's tokens
-- for now (another audience, a deleted binding). Renewing for every call would cost a token
-- request each; for RENEW_HOLD seconds a 401 to t is the answer.
function Tokens:refused(t)
  self.dict:set(self.refused_key, t, RENEW_HOLD)
end

--- Whether a 401 to t may renew it (false within RENEW_HOLD of refused(t)).
function Tokens:may_renew(t)
  return self.dict:get(self.refused_key) ~= t
end

--- A token other than `rejected` (the API answered 401 to it, or the caller forces a
-- renewal): token, seconds_left, scope | nil, err. within: as for get.
function Tokens:renew(rejected, within)
  local function replaced(e) return e.t ~= rejected and valid(e) end
  local entry = self:read()
  if entry and replaced(entry) then return result(entry) end
  local until_at = until_now_plus(within)
  local got, err
  local holder = self:lock()
  if holder then
    got, err = self:locked_fetch(replaced, holder, until_at)
  else
    got, err = self:wait_for(replaced, nil, until_at)
  end
  if not got then
    err.cut = nil
    return nil, err
  end
  return result(got)
end

return token
