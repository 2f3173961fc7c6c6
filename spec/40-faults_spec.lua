-- The fault matrix: every fault the emulator can inject, against a read (GET), a start (POST)
-- and the token endpoint, with sapwf's default retry policy (quick waits). For each case the
-- error kind and outcome are asserted, and the emulator's exact counters are compared with
-- what the client reported: no start is lost (every instance the service has was reported
-- as started, or as "outcome unknown") and none is doubled (no second send of a start that
-- may have run). RELIABILITY.md lists the same table.
local helpers = require "spec.helpers"
local R = require "spec.support.reliability"

local GET_OP, START_OP = "GET /v1/workflow-definitions", "POST /v1/workflow-instances"
local GET_PATH, START_PATH = "/v1/workflow-definitions", "/v1/workflow-instances"
local TIMEOUT, DELAY = 1, 2          -- a delay past the whole-request timeout

-- performed: whether the emulator carries the operation out despite the fault (faults.lua).
-- get: what a read ends with (ok = true: a retry succeeded) and how many requests it took.
-- start: the same for a start; instances: how many the service has afterwards.
local MATRIX = {
  { name = "delay past the timeout", fault = { fault = "delay", delay = DELAY },
    performed = true,
    get = { ok = true, requests = 2 },
    start = { kind = "timeout", outcome = "unknown", requests = 1 } },
  { name = "connection reset before the answer (not performed)",
    fault = { fault = "drop_before" }, performed = false,
    get = { ok = true, requests = 2 },
    start = { kind = "network", outcome = "unknown", requests = 1 } },
  { name = "connection reset after performing", fault = { fault = "drop_after" },
    performed = true,
    get = { ok = true, requests = 2 },
    start = { kind = "network", outcome = "unknown", requests = 1 } },
  { name = "500", fault = { fault = "status", status = 500 }, performed = false,
    get = { ok = true, requests = 2 },
    start = { kind = "server", status = 500, outcome = "unknown", requests = 1 } },
  { name = "502", fault = { fault = "status", status = 502 }, performed = false,
    get = { ok = true, requests = 2 },
    start = { kind = "server", status = 502, outcome = "unknown", requests = 1 } },
  { name = "503", fault = { fault = "status", status = 503 }, performed = false,
    get = { ok = true, requests = 2 },
    start = { kind = "server", status = 503, outcome = "unknown", requests = 1 } },
  { name = "504", fault = { fault = "status", status = 504 }, performed = false,
    get = { ok = true, requests = 2 },
    start = { kind = "server", status = 504, outcome = "unknown", requests = 1 } },
  { name = "408", fault = { fault = "status", status = 408 }, performed = false,
    get = { ok = true, requests = 2 },
    start = { ok = true, requests = 2 } },
  { name = "429 without Retry-After", fault = { fault = "status", status = 429 },
    performed = false,
    get = { ok = true, requests = 2 },
    start = { ok = true, requests = 2 } },
  { name = "429 with Retry-After: 1", fault = { fault = "status", status = 429, retry_after = 1 },
    performed = false, min_seconds = 1,
    get = { ok = true, requests = 2 },
    start = { ok = true, requests = 2 } },
  { name = "truncated body", fault = { fault = "truncate" }, performed = true,
    get = { ok = true, requests = 2 },
    start = { kind = "network", outcome = "unknown", requests = 1 } },
  { name = "malformed JSON", fault = { fault = "malformed" }, performed = true,
    get = { kind = "decode", outcome = "unknown", requests = 1 },
    start = { kind = "decode", outcome = "unknown", requests = 1 } },
  { name = "HTML error page from a proxy (502)", fault = { fault = "html" }, performed = false,
    get = { ok = true, requests = 2 },
    start = { kind = "server", status = 502, outcome = "unknown", requests = 1 } },
  -- JSON, but not of the type the call answers (an array for the read, the new instance
  -- for the start): a result of null would read as success and break the caller.
  { name = "2xx JSON null", fault = { fault = "body", body = "null" }, performed = false,
    get = { kind = "decode", outcome = "unknown", requests = 1,
            message = "null where an array was expected" },
    start = { kind = "decode", outcome = "unknown", requests = 1,
              message = "null where an object was expected" } },
  { name = "empty 200", fault = { fault = "empty" }, performed = true,
    get = { kind = "decode", outcome = "unknown", requests = 1 },
    start = { kind = "decode", outcome = "unknown", requests = 1 } },
  { name = "oversized body", fault = { fault = "oversize", size = 256 * 1024 },
    performed = true,
    get = { kind = "server", outcome = "unknown", requests = 1, message = "max_response" },
    start = { kind = "server", outcome = "unknown", requests = 1, message = "max_response" } },
}

describe("fault matrix", function()
  local emu

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  -- A fresh client per case. Its request may go out on a connection an earlier client left
  -- open (clients of one Lua state share them): after a dropped connection libcurl then
  -- re-sends a GET by itself instead of sapwf retrying it, and refuses to re-send a POST.
  -- The counts below hold either way.
  local function fresh_client(extra)
    local opts = { timeout = TIMEOUT, max_response = 64 * 1024 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local wf, events = R.client(emu, "full", opts)
    assert(wf:token())
    return wf, events
  end

  local function with_fault(case, method, path)
    local spec = { method = method, path = path, times = 1 }
    for k, v in pairs(case.fault) do spec[k] = v end
    emu:fault(spec)
  end

  local function check_error(expected, value, err)
    assert.is_nil(value)
    assert.equal(expected.kind, err.kind, tostring(err))
    assert.equal(expected.outcome, err.outcome)
    if expected.status then assert.equal(expected.status, err.status) end
    if expected.message then assert.matches(expected.message, err.message, 1, true) end
    assert.is_string(tostring(err))
  end

  for _, case in ipairs(MATRIX) do
    describe(case.name, function()
      it("a read: " .. (case.get.ok and "retried, and succeeds" or case.get.kind), function()
        local wf = fresh_client()
        with_fault(case, "GET", GET_PATH)
        local started = R.now()
        local list, err = wf:definitions()
        if case.get.ok then
          assert.is_table(list, tostring(err))
          assert.is_true(#list > 0)
        else
          check_error(case.get, list, err)
        end
        if case.min_seconds then assert.is_true(R.now() - started >= case.min_seconds) end
        assert.equal(case.get.requests, R.count(emu, GET_OP))
      end)

      it("a start: " .. (case.start.ok and "retried, started once"
                         or case.start.kind .. ", outcome " .. case.start.outcome), function()
        local wf = fresh_client()
        with_fault(case, "POST", START_PATH)
        local started = R.now()
        local inst, err = wf:start("simple", { case = case.name })
        local elapsed = R.now() - started
        local reported, unknown = {}, 0
        if case.start.ok then
          assert.is_table(inst, tostring(err))
          reported[#reported + 1] = inst.id
        else
          check_error(case.start, inst, err)
          assert.is_false(err.retryable)
          if err.outcome == "unknown" then unknown = unknown + 1 end
          assert.matches(err.kind == "decode" and "may have started" or "outcome unknown",
                         tostring(err), 1, true)
        end
        if case.min_seconds then assert.is_true(elapsed >= case.min_seconds) end
        assert.equal(case.start.requests, R.count(emu, START_OP))
        -- The client still works after the fault.
        for i = 1, 2 do reported[#reported + 1] = assert(wf:start("simple", { after = i })).id end
        if case.fault.fault == "delay" then R.sleep(DELAY) end    -- the delayed start runs late
        -- What the service has = what the client reported started, plus the unknowns that
        -- did run (those the emulator performed): nothing lost, nothing doubled.
        local stats = emu:stats()
        assert.equal(#reported + (case.performed and unknown or 0), stats.instances_started)
        local ids = {}
        for _, instance in ipairs(emu:instances()) do
          assert.is_nil(ids[instance.id], "an instance id twice")
          ids[instance.id] = true
        end
        for _, id in ipairs(reported) do assert.is_true(ids[id], id) end
      end)
    end)
  end

  describe("the token endpoint", function()
    local function start_with_token_fault(spec, extra)
      local wf, events = R.client(emu, "full", extra)
      spec.path = "/oauth/token"
      emu:fault(spec)
      local started = R.now()
      local inst, err = wf:start("simple")
      return inst, err, R.now() - started, events
    end

    it("slow (within the timeout): works, one token request", function()
      local inst, err = start_with_token_fault({ fault = "delay", delay = 0.3 }, { timeout = 2 })
      assert.is_table(inst, tostring(err))
      assert.equal(1, emu:stats().token_requests)
      assert.equal(1, emu:stats().instances_started)
    end)

    it("stalled past the timeout once: the fetch is retried, the start runs once", function()
      local inst, err, _, events = start_with_token_fault(
        { fault = "delay", delay = DELAY, times = 1 }, { timeout = TIMEOUT })
      assert.is_table(inst, tostring(err))
      assert.equal(2, emu:stats().token_requests)
      assert.equal(1, emu:stats().instances_started)
      assert.equal(1, #events)
      assert.equal("token", events[1].phase)
      assert.equal("timeout", events[1].kind)
    end)

    it("stalled for good: kind timeout, not sent, bounded by the deadline", function()
      local inst, err, elapsed = start_with_token_fault(
        { fault = "delay", delay = 5, times = -1 }, { timeout = 0.5, retry_deadline = 1.2 })
      assert.is_nil(inst)
      assert.equal("timeout", err.kind)
      assert.equal("token", err.phase)
      assert.equal("not_sent", err.outcome)
      assert.is_true(elapsed < 1.2 + 0.5 + 0.5, "took " .. elapsed)
      assert.is_true(err.attempts >= 2)
      assert.equal(0, emu:stats().api_requests)
      assert.equal(0, emu:stats().instances_started)
      emu:clear_faults()
    end)

    it("failing with 500 for good: kind server, not sent, one fetch per attempt", function()
      local inst, err, _, events = start_with_token_fault({ fault = "status", status = 500,
                                                            times = -1 })
      assert.is_nil(inst)
      assert.equal("server", err.kind)
      assert.equal(500, err.status)
      assert.equal("token", err.phase)
      assert.equal("not_sent", err.outcome)
      assert.equal(4, err.attempts)                 -- the first and 3 retries
      assert.equal(3, #events)
      assert.equal(4, emu:stats().token_requests)
      assert.equal(0, emu:stats().api_requests)
      assert.matches("after 4 attempts", tostring(err), 1, true)
    end)

    for _, status in ipairs({ 502, 503, 504 }) do
      it(status .. " once: retried, the start runs once", function()
        local inst, err = start_with_token_fault({ fault = "status", status = status })
        assert.is_table(inst, tostring(err))
        assert.equal(2, emu:stats().token_requests)
        assert.equal(1, emu:stats().instances_started)
      end)
    end

    it("429 with Retry-After: waits as asked, then gets the token", function()
      local inst, err, elapsed, events = start_with_token_fault(
        { fault = "status", status = 429, retry_after = 1 })
      assert.is_table(inst, tostring(err))
      assert.is_true(elapsed >= 1)
      assert.equal(1, events[1].retry_after)
      assert.equal("rate_limited", events[1].kind)
      assert.equal(2, emu:stats().token_requests)
    end)

    it("429 for good: kind rate_limited, retry_after on the error", function()
      local inst, err = start_with_token_fault(
        { fault = "status", status = 429, retry_after = 60, times = -1 })
      assert.is_nil(inst)
      assert.equal("rate_limited", err.kind)
      assert.equal("token", err.phase)
      assert.equal(60, err.retry_after)
      -- 60 s is past the 30 s deadline: no retry waits that long
      assert.equal(1, emu:stats().token_requests)
    end)

    it("connection dropped once: the fetch is retried", function()
      local inst, err = start_with_token_fault({ fault = "drop_before" })
      assert.is_table(inst, tostring(err))
      assert.equal(2, emu:stats().token_requests)
      assert.equal(1, emu:stats().instances_started)
    end)

    it("an HTML proxy page once: retried", function()
      local inst, err = start_with_token_fault({ fault = "html" })
      assert.is_table(inst, tostring(err))
      assert.equal(2, emu:stats().token_requests)
    end)

    for _, kind in ipairs({ "malformed", "empty" }) do
      it(kind .. " token answer: kind decode, not retried, nothing sent", function()
        local inst, err = start_with_token_fault({ fault = kind })
        assert.is_nil(inst)
        assert.equal("decode", err.kind)
        assert.equal("token", err.phase)
        assert.equal("not_sent", err.outcome)
        assert.equal(1, emu:stats().token_requests)
        assert.equal(0, emu:stats().api_requests)
      end)
    end

    it("an oversized token answer is refused, not buffered", function()
      -- 1 MiB at most, whatever a smaller max_response says (that one is for the API)
      local inst, err = start_with_token_fault({ fault = "oversize", size = 2048 * 1024 },
                                               { max_response = 64 * 1024 })
      assert.is_nil(inst)
      assert.equal("server", err.kind)
      assert.equal("token", err.phase)
      assert.equal("token answer larger than 1048576 bytes", err.message)
      assert.equal(0, emu:stats().api_requests)
    end)

    it("invalid_client: kind auth, never retried", function()
      local key = emu:service_key("full")
      key.uaa.clientsecret = "wrong"
      local wf, events = R.client(emu, "full", { service_key = key })
      local inst, err = wf:start("simple")
      assert.is_nil(inst)
      assert.equal("auth", err.kind)
      assert.equal("invalid_client", err.code)
      assert.equal(0, #events)
      assert.equal(1, emu:stats().token_requests)
      assert.equal(0, emu:stats().api_requests)
    end)
  end)

  describe("nothing listening", function()
    it("a start is retried (it surely never arrived) and reports not_sent", function()
      local wf, events = R.client(emu, "full", {
        api_url = "http://127.0.0.1:1/workflow-service/rest" })
      assert(wf:token())                       -- the token comes from the emulator
      local inst, err = wf:start("simple")
      assert.is_nil(inst)
      assert.equal("network", err.kind)
      assert.equal("not_sent", err.outcome)
      assert.is_true(err.retryable)
      assert.equal(4, err.attempts)
      assert.equal(3, #events)
      for i, event in ipairs(events) do
        assert.equal("retry", event.event)
        assert.equal(i, event.attempt)
        assert.equal("POST", event.method)
        assert.equal("/v1/workflow-instances", event.path)
        assert.equal("not_sent", event.outcome)
      end
      assert.equal(0, emu:stats().api_requests)
    end)

    it("no token endpoint: kind network, phase token, after the retries", function()
      local wf, events = R.client(emu, "full", { token_url = "http://127.0.0.1:1/oauth/token" })
      local _, err = wf:definitions()
      assert.equal("network", err.kind)
      assert.equal("token", err.phase)
      assert.equal(3, #events)
      local token, terr = wf:token()
      assert.is_nil(token)
      assert.equal("network", terr.kind)
      assert.equal(4, terr.attempts)
    end)
  end)
end)
