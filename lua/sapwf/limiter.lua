-- The limit of a batch's requests in flight, adapted to the service's rate limit: one per
-- run of wf:map, wf:start_many and their streaming forms. batch.lua's scheduler asks it
-- before each request and tells it each answer; so does the gate batch.lua puts in front of
-- a transport that runs the calls itself (sapwf.ngx's light threads). Not API.
local core = require "sapwf.core"

local setmetatable, floor, min = setmetatable, math.floor, math.min
local header, parse_retry_after = core.header, core.retry_after

local limiter = {}

-- How many requests a batch has in flight (AIMD). `limit` starts at the
-- ceiling (`concurrency`); an answer 429 or 503, or one with Retry-After, halves it (at
-- least 1), once per round: only for a request sent since the last decrease, so a burst of
-- refusals to requests sent together counts once. Each clean answer (below 500: a 4xx says
-- the service handled the request) adds 1/limit, so a limit's worth of clean answers adds
-- one, up to the ceiling; a 500, 502 or 504 leaves the limit as it is, since a failing
-- service is no sign of room for more. Retry-After holds every new request until it has
-- passed, max_hold seconds at most (the run's rate_limit_wait: no item waits longer for a
-- rate limit; one that meets it again then ends `rate_limited`, as its own 429s would).
-- Not adaptive: the ceiling, always, and no hold.
--
-- Below the ceiling, two more rules, for several processes on one tenant's rate (a token
-- bucket: a request beyond it is refused at once). Sends are paced, one every round trip /
-- limit (the round trip: the running mean of the times of clean answers to the first
-- requests and to those sent below the ceiling), PACE_SLACK's worth at once at most: a
-- limit alone sends a limit's worth together whenever answers free its slots, and such
-- bursts from every process meet at the empty bucket and are refused together. And the
-- limit grows again only QUIET_ROUNDS round trips after its last decrease: each process
-- grows by one a round trip, so N of them overrun the rate N times as fast as one, and
-- every overrun costs 429s. Measured with 4 processes at 200 starts a second and 50 ms a
-- start, without Retry-After: 50% of the requests were 429s before these rules, 11% with
-- them (most of it the first round, the ceiling's worth each).

local BACKOFF_FACTOR = 0.5
local PACE_SLACK = 0.01      -- seconds: below a few ms the waits themselves would set the pace
local QUIET_ROUNDS = 20

local Limiter = {}
Limiter.__index = Limiter

function limiter.new(ceiling, adaptive, max_hold, now, log)
  -- rtt: the round trip (nil until a clean answer came); next_at: when the pace lets the next
  -- request go (0: no pace, at the ceiling); backed_off: when the limit last decreased
  -- (0: it grew since)
  return setmetatable({ ceiling = ceiling, limit = ceiling, adaptive = adaptive, now = now,
                        log = log, epoch = 0, hold = 0, max_hold = max_hold, next_at = 0,
                        backed_off = 0 }, Limiter)
end

-- Whether one more request may go out with `inflight` in flight.
function Limiter:allows(inflight)
  if inflight >= floor(self.limit) then return false end
  if self.hold == 0 and self.next_at == 0 then return true end
  local t = self.now()
  return t >= self.hold and t >= self.next_at - PACE_SLACK
end

-- A request goes out now: moves the pace to its next slot (below the ceiling, once the
-- round trip is known). Returns when, if its answer is to be timed: below the ceiling,
-- where the pace and the quiet growth need the round trip, and until a first answer told
-- it; else nil: at the ceiling, the usual case, a request costs no clock.
function Limiter:sending()
  local rtt = self.rtt
  if not self.adaptive or (self.limit >= self.ceiling and rtt) then return nil end
  local t = self.now()
  if rtt and self.limit < self.ceiling then
    local at = self.next_at
    if at < t - PACE_SLACK then at = t - PACE_SLACK end
    self.next_at = at + rtt / self.limit
  end
  return t
end

-- Seconds until the hold ends or the pace lets a request go (nil: now).
function Limiter:held()
  if self.hold == 0 and self.next_at == 0 then return nil end
  local t = self.now()
  if self.hold ~= 0 and t >= self.hold then self.hold = 0 end
  local left = self.next_at - PACE_SLACK - t
  if self.hold - t > left then left = self.hold - t end
  if left <= 0 then return nil end
  return left
end

-- The log event of a change of the limit (when its whole part changes); returns the
-- event, for the scheduler to pass to the log hook, or nil.
local function change(self, old, status, retry_after)
  local new = floor(self.limit)
  if new == floor(old) or not self.log then return nil end
  return { event = "concurrency", concurrency = new, previous = floor(old),
           ceiling = self.ceiling, status = status, retry_after = retry_after,
           reason = new < floor(old) and "backoff" or "growth" }
end

-- An answer to a request sent in round `epoch`: status (nil: none came), headers, and the
-- seconds it took. Returns a log event or nil.
function Limiter:observe(epoch, status, headers, took)
  if not self.adaptive or not status then return nil end
  local retry_after = header(headers, "retry-after")
  retry_after = retry_after and parse_retry_after(retry_after) or nil
  local old = self.limit
  if status == 429 or status == 503 or retry_after then
    if retry_after and retry_after > 0 then
      local until_ = self.now() + min(retry_after, self.max_hold)
      if until_ > self.hold then self.hold = until_ end
    end
    if epoch ~= self.epoch then return nil end          -- this round has backed off already
    self.epoch = self.epoch + 1
    local limit = old * BACKOFF_FACTOR
    self.limit = limit < 1 and 1 or limit
    self.backed_off = self.now()
    return change(self, old, status, retry_after)
  end
  if status < 500 and took then
    local rtt = self.rtt
    self.rtt = rtt and rtt + (took - rtt) * 0.125 or took
  end
  if old < self.ceiling and status < 500 then
    -- (the round trip as it is now: a 429 may come before any clean answer told it)
    if self.backed_off ~= 0 then
      if not self.rtt or self.now() < self.backed_off + QUIET_ROUNDS * self.rtt then
        return nil
      end
      self.backed_off = 0
    end
    local limit = old + 1 / old
    if limit >= self.ceiling then limit, self.next_at = self.ceiling, 0 end
    self.limit = limit
    return change(self, old, status, nil)
  end
  return nil
end

return limiter
