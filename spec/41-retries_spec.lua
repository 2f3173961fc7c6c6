-- The retry policy (send.lua): options and their checks, backoff with jitter, Retry-After,
-- the deadline, which methods are sent again, the 401 replay, the 403 refresh, tokens not
-- fetched in storms, timeouts, and the log hook.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"
local R = require "spec.support.reliability"

local LIMITED_ID = "sb-sapwf-limited!b1|workflow!b10150"

describe("retries", function()
  local emu

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function fault(spec)
    if spec.times == nil then spec.times = 1 end
    return emu:fault(spec)
  end

  describe("options", function()
    it("have documented defaults", function()
      assert.same({ retries = 3, retry_deadline = 30, backoff_base = 0.5, backoff_max = 8 },
                  require("sapwf.send").RETRY_DEFAULTS)
    end)

    it("raise on a wrong type or range, naming the option", function()
      local key = emu:service_key("full")
      local cases = {
        { { retries = "3" }, "bad option 'retries' (number expected, got string)" },
        { { retries = -1 }, "bad option 'retries' (integer from 0 to 100 expected)" },
        { { retries = 1.5 }, "bad option 'retries' (integer from 0 to 100 expected)" },
        { { retries = 101 }, "bad option 'retries' (integer from 0 to 100 expected)" },
        { { retries = 0 / 0 }, "bad option 'retries' (integer from 0 to 100 expected)" },
        { { retry_deadline = -0.1 },
          "bad option 'retry_deadline' (number from 0 to 86400 expected)" },
        { { retry_deadline = math.huge },
          "bad option 'retry_deadline' (number from 0 to 86400 expected)" },
        { { backoff_base = true }, "bad option 'backoff_base' (number expected, got boolean)" },
        { { backoff_max = -1 }, "bad option 'backoff_max' (number from 0 to 3600 expected)" },
        { { log = "print" }, "bad option 'log' (function expected, got string)" },
      }
      for _, case in ipairs(cases) do
        local opts = { service_key = key }
        for k, v in pairs(case[1]) do opts[k] = v end
        local ok, err = pcall(sapwf.new, opts)
        assert.is_false(ok)
        assert.matches(case[2], err, 1, true)
      end
      assert.equal(0, emu:stats().token_requests)
    end)

    it("retries = 0 sends once", function()
      local wf, events = R.client(emu, "full", { retries = 0 })
      fault{ fault = "status", status = 503, method = "GET", path = "/v1/workflow-definitions" }
      local _, err = wf:definitions()
      assert.equal(503, err.status)
      assert.is_nil(err.attempts)
      assert.equal(0, #events)
      assert.equal(1, R.count(emu, "GET /v1/workflow-definitions"))
    end)
  end)

  describe("backoff", function()
    it("doubles from backoff_base, with jitter, and the attempts show in the error", function()
      local wf, events = R.client(emu, "full", { backoff_base = 0.2, backoff_max = 10 })
      fault{ fault = "status", status = 503, method = "GET", path = "/v1/workflow-definitions",
             times = -1 }
      local started = R.now()
      local _, err = wf:definitions()
      local elapsed = R.now() - started
      assert.equal(503, err.status)
      assert.equal(4, err.attempts)
      assert.matches("; after 4 attempts", tostring(err), 1, true)
      assert.equal(4, R.count(emu, "GET /v1/workflow-definitions"))
      assert.equal(3, #events)
      local total = 0
      for i, event in ipairs(events) do
        local step = 0.2 * 2 ^ (i - 1)
        assert.is_true(event.delay >= step / 2 and event.delay <= step, event.delay)
        assert.equal(503, event.status)
        assert.equal("rejected", event.outcome)
        total = total + event.delay
      end
      assert.is_true(elapsed >= total)
      emu:clear_faults()
    end)

    it("never waits longer than backoff_max (unless Retry-After asks)", function()
      local wf, events = R.client(emu, "full", { backoff_base = 5, backoff_max = 0.05,
                                                 retries = 5 })
      fault{ fault = "status", status = 502, method = "GET", path = "/v1/workflow-definitions",
             times = -1 }
      local started = R.now()
      assert.is_nil((wf:definitions()))
      assert.is_true(R.now() - started < 2)
      assert.equal(5, #events)
      for _, event in ipairs(events) do assert.is_true(event.delay <= 0.05) end
      emu:clear_faults()
    end)

    it("spreads the waits at random", function()
      local wf, events = R.client(emu, "full", { backoff_base = 0.01, backoff_max = 0.01,
                                                 retries = 12 })
      fault{ fault = "status", status = 503, method = "GET", path = "/v1/workflow-definitions",
             times = -1 }
      assert.is_nil((wf:definitions()))
      local distinct, n = {}, 0
      for _, event in ipairs(events) do
        if not distinct[event.delay] then n = n + 1 end
        distinct[event.delay] = true
      end
      assert.is_true(n >= 6, "only " .. n .. " different waits")
      emu:clear_faults()
    end)
  end)

  describe("Retry-After and the deadline", function()
    it("waits as long as Retry-After asks", function()
      local wf, events = R.client(emu, "full")
      fault{ fault = "status", status = 503, retry_after = 1, method = "GET",
             path = "/v1/workflow-definitions" }
      local started = R.now()
      assert(wf:definitions())
      assert.is_true(R.now() - started >= 1)
      assert.equal(1, events[1].retry_after)
      assert.equal(1, events[1].delay)
    end)

    it("does not retry when Retry-After is past the deadline, and says when to", function()
      local wf, events = R.client(emu, "full", { retry_deadline = 2 })
      fault{ fault = "status", status = 429, retry_after = 5, method = "POST",
             path = "/v1/workflow-instances" }
      local started = R.now()
      local _, err = wf:start("simple")
      assert.is_true(R.now() - started < 1)
      assert.equal("rate_limited", err.kind)
      assert.equal(5, err.retry_after)
      assert.equal("rejected", err.outcome)
      assert.is_true(err.retryable)
      assert.equal(0, #events)
      assert.equal(0, emu:stats().instances_started)
    end)

    it("starts no retry after retry_deadline", function()
      local wf, events = R.client(emu, "full", { backoff_base = 0.3, backoff_max = 0.3,
                                                 retries = 50, retry_deadline = 1 })
      fault{ fault = "status", status = 500, method = "GET", path = "/v1/workflow-definitions",
             times = -1 }
      local started = R.now()
      local _, err = wf:definitions()
      local elapsed = R.now() - started
      assert.equal(500, err.status)
      assert.is_true(elapsed <= 1.2, "took " .. elapsed)
      assert.is_true(#events >= 2 and #events <= 7, #events .. " retries")
      assert.equal(#events + 1, err.attempts)
      emu:clear_faults()
    end)

    it("a stalled server cannot hold a caller past timeout and deadline", function()
      local wf = R.client(emu, "full", { timeout = 0.5, retry_deadline = 1 })
      assert(wf:token())
      fault{ fault = "delay", delay = 5, method = "GET", path = "/v1/workflow-definitions",
             times = -1 }
      local started = R.now()
      local _, err = wf:definitions()
      local elapsed = R.now() - started
      assert.equal("timeout", err.kind)
      assert.is_true(elapsed < 1 + 0.5 + 0.3, "took " .. elapsed)
      emu:clear_faults()
    end)
  end)

  describe("which calls are sent again", function()
    local inst

    local function started_instance(wf)
      return assert(wf:start("orderapproval", { orderId = "1", product = "Lens" }))
    end

    it("a cancel whose first attempt acted: its retry meets a final CANCELED, and the " ..
       "cancel is done", function()
      local wf = R.client(emu, "full")
      inst = started_instance(wf)
      -- the first sending cancels the instance, then the connection drops: no answer
      fault{ fault = "drop_after", method = "PATCH", path = "/v1/workflow-instances/" }
      local done, meta = wf:cancel(inst.id)
      assert.is_true(done)
      -- value, meta as every method: the meta of the read that found it CANCELED
      assert.equal(200, meta.status)
      assert.is_string(meta.request_id)
      assert.equal(2, R.count(emu, "PATCH /v1/workflow-instances/{workflowInstanceId}"))
      assert.equal("CANCELED", assert(wf:instance(inst.id)).status)
      -- without an earlier attempt, canceling a CANCELED instance is the service's 422
      local _, err = wf:cancel(inst.id)
      assert.same({ 422, "invalid", "rejected" }, { err.status, err.kind, err.outcome })
    end)

    it("a cancel whose first attempt acted: a 409 to its retry (the service still at work " ..
       "on the first) reads the instance too", function()
      local wf = R.client(emu, "full")
      inst = started_instance(wf)
      fault{ fault = "drop_after", method = "PATCH", path = "/v1/workflow-instances/" }
      fault{ fault = "status", status = 409, method = "PATCH", path = "/v1/workflow-instances/" }
      assert.is_true(wf:cancel(inst.id))
      assert.equal(2, R.count(emu, "PATCH /v1/workflow-instances/{workflowInstanceId}"))
      assert.equal("CANCELED", assert(wf:instance(inst.id)).status)
      -- not canceled (the first attempt did not act): the 409 comes back, outcome unknown
      inst = started_instance(wf)
      fault{ fault = "status", status = 500, method = "PATCH", path = "/v1/workflow-instances/" }
      fault{ fault = "status", status = 409, method = "PATCH", path = "/v1/workflow-instances/" }
      local _, err = wf:cancel(inst.id)
      assert.same({ 409, "conflict", "unknown" }, { err.status, err.kind, err.outcome })
      assert.equal("RUNNING", assert(wf:instance(inst.id)).status)
    end)

    it("a suspend whose first attempt acted: a 422 or 409 to its retry reads the instance " ..
       "too", function()
      local wf = R.client(emu, "full")
      for _, refusal in ipairs({ 422, 409 }) do
        inst = started_instance(wf)
        local before = R.count(emu, "PATCH /v1/workflow-instances/{workflowInstanceId}")
        -- the first sending suspends it and the answer is lost; the retry is refused
        fault{ fault = "drop_after", method = "PATCH", path = "/v1/workflow-instances/" }
        fault{ fault = "status", status = refusal, method = "PATCH",
               path = "/v1/workflow-instances/" }
        local done, meta = wf:suspend(inst.id)
        assert.is_true(done, refusal)
        assert.equal(200, meta.status)
        assert.equal(before + 2,
                     R.count(emu, "PATCH /v1/workflow-instances/{workflowInstanceId}"))
        assert.equal("SUSPENDED", assert(wf:instance(inst.id)).status)
      end
      -- not suspended (the first attempt did not act): the refusal comes back
      inst = started_instance(wf)
      fault{ fault = "status", status = 500, method = "PATCH", path = "/v1/workflow-instances/" }
      fault{ fault = "status", status = 422, method = "PATCH", path = "/v1/workflow-instances/" }
      local _, err = wf:suspend(inst.id)
      assert.same({ 422, "invalid", "unknown" }, { err.status, err.kind, err.outcome })
      assert.equal("RUNNING", assert(wf:instance(inst.id)).status)
    end)

    it("idempotent PATCH (status): after its retries, a 500 is retryable", function()
      local wf = R.client(emu, "full", { retries = 1, backoff_base = 0.01, backoff_max = 0.01 })
      inst = started_instance(wf)
      fault{ fault = "status", status = 500, method = "PATCH", path = "/v1/workflow-instances/",
             times = 2 }
      local _, err = wf:suspend(inst.id)
      assert.same({ 500, "unknown", true, 2 }, { err.status, err.outcome, err.retryable,
                                               err.attempts })
    end)

    it("idempotent PATCH (status) and PUT: retried after a 500", function()
      local wf = R.client(emu, "full")
      inst = started_instance(wf)
      fault{ fault = "status", status = 500, method = "PATCH", path = "/v1/workflow-instances/" }
      assert(wf:suspend(inst.id))
      fault{ fault = "status", status = 502, method = "PUT", path = "/v1/workflow-instances/" }
      assert(wf:replace_context(inst.id, { orderId = "2" }))
      assert.equal("2", assert(wf:context(inst.id)).orderId)
      assert.equal(2, R.count(emu, "PATCH /v1/workflow-instances/{workflowInstanceId}"))
      assert.equal(2, R.count(emu, "PUT /v1/workflow-instances/{workflowInstanceId}/context"))
    end)

    it("completing a task (PATCH that is not idempotent): not retried after a 500", function()
      local wf, events = R.client(emu, "full")
      inst = started_instance(wf)
      local task = assert(wf:tasks{ workflowInstanceId = inst.id })[1]
      fault{ fault = "status", status = 500, method = "PATCH", path = "/v1/task-instances/" }
      local _, err = wf:complete_task(task.id, { approved = true })
      assert.equal(500, err.status)
      assert.equal("unknown", err.outcome)
      assert.is_false(err.retryable)          -- it may have completed the task: not again
      assert.equal(0, #events)
      assert.equal(1, R.count(emu, "PATCH /v1/task-instances/{taskInstanceId}"))
      -- a 503 may come from a proxy after the service acted: not retried, outcome unknown
      fault{ fault = "status", status = 503, method = "PATCH", path = "/v1/task-instances/" }
      _, err = wf:complete_task(task.id, { approved = true })
      assert.same({ 503, "unknown", false }, { err.status, err.outcome, err.retryable })
      assert.equal(2, R.count(emu, "PATCH /v1/task-instances/{taskInstanceId}"))
      -- but on 429 (refused before acting) it is
      fault{ fault = "status", status = 429, method = "PATCH", path = "/v1/task-instances/" }
      assert(wf:complete_task(task.id, { approved = true }))
      assert.equal(4, R.count(emu, "PATCH /v1/task-instances/{taskInstanceId}"))
    end)

    it("a message (POST): not retried after a lost answer, retried after a 429", function()
      local wf, events = R.client(emu, "full")
      inst = started_instance(wf)
      local task = assert(wf:tasks{ workflowInstanceId = inst.id })[1]
      assert(wf:complete_task(task.id, { approved = true }))
      fault{ fault = "status", status = 429, method = "POST", path = "/v1/messages" }
      assert(wf:send_message{ definitionId = "orderShipped", workflowInstanceId = inst.id })
      assert.equal(1, #events)
      assert.equal(1, emu:stats().messages)
    end)

    it("an earlier attempt that may have acted makes the outcome unknown", function()
      local wf = R.client(emu, "full")
      inst = started_instance(wf)
      -- The first attempt ends in a 500 (it may have acted), the retry meets a 409.
      fault{ fault = "status", status = 500, method = "PUT", path = "/v1/workflow-instances/" }
      fault{ fault = "status", status = 409, method = "PUT", path = "/v1/workflow-instances/" }
      local _, err = wf:replace_context(inst.id, { orderId = "3" })
      assert.equal("conflict", err.kind)
      assert.equal(409, err.status)
      assert.equal("unknown", err.outcome)
      assert.equal(2, err.attempts)
    end)

    it("wf:request: GET retried, POST after a 500 not", function()
      local wf = R.client(emu, "full")
      fault{ fault = "status", status = 504, method = "GET", path = "/v1/forms" }
      assert(wf:request("GET", "/v1/forms"))
      assert.equal(2, R.count(emu, "GET /v1/forms"))
      fault{ fault = "status", status = 500, method = "POST", path = "/v1/purge" }
      local _, err = wf:request("POST", "/v1/purge")
      assert.equal(500, err.status)
      assert.equal("unknown", err.outcome)
      assert.equal(1, R.count(emu, "POST /v1/purge"))
    end)

    it("a 409 (try again later) is left to the caller", function()
      local wf = R.client(emu, "full")
      inst = started_instance(wf)
      fault{ fault = "status", status = 409, method = "PATCH", path = "/v1/workflow-instances/" }
      local _, err = wf:cancel(inst.id)
      assert.equal("conflict", err.kind)
      assert.is_true(err.retryable)
      assert.equal(1, R.count(emu, "PATCH /v1/workflow-instances/{workflowInstanceId}"))
    end)
  end)

  describe("tokens", function()
    it("a 401 drops the token, fetches one and replays once; Lua does not add more", function()
      local wf = R.client(emu, "full")
      assert(wf:definitions())
      emu:expire_tokens()
      assert(wf:definitions())
      assert.equal(2, emu:stats().token_requests)
      assert.equal(3, R.count(emu, "GET /v1/workflow-definitions"))
      fault{ fault = "status", status = 401, method = "GET", path = "/v1/workflow-definitions",
             times = 2 }
      local _, err = wf:definitions()
      assert.equal("auth", err.kind)
      assert.equal(3, emu:stats().token_requests)
      assert.equal(5, R.count(emu, "GET /v1/workflow-definitions"))
    end)

    it("many calls, one token; expired, one more", function()
      local wf = R.client(emu, "full")
      for _ = 1, 30 do assert(wf:definitions()) end
      assert.equal(1, emu:stats().token_requests)
      emu:expire_tokens()
      for _ = 1, 30 do assert(wf:instances()) end
      assert.equal(2, emu:stats().token_requests)
    end)

    it("processes calling at once fetch one token each, no more", function()
      local key_file = os.tmpname()
      local f = assert(io.open(key_file, "w"))
      f:write(require("cjson").encode(emu:service_key("full")))
      f:close()
      local script = [[
        package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
        package.cpath = "./build/lua5.4/?.so;" .. package.cpath
        local wf = assert(require("sapwf").new{ service_key = arg[1] })
        for _ = 1, 20 do assert(wf:definitions()) end
      ]]
      local runner = os.tmpname()
      f = assert(io.open(runner, "w"))
      f:write(script)
      f:close()
      local line = {}
      for i = 1, 4 do line[i] = "lua5.4 " .. runner .. " " .. key_file .. " &" end
      assert.is_true(R.run("(" .. table.concat(line, " ") .. " wait) >/dev/null 2>&1"))
      os.remove(runner)
      os.remove(key_file)
      assert.equal(4, emu:stats().token_requests)
      assert.equal(80, R.count(emu, "GET /v1/workflow-definitions"))
    end)

    it("wf:token() retries the fetch like a call", function()
      local wf, events = R.client(emu, "full")
      fault{ fault = "status", status = 503, path = "/oauth/token" }
      assert(wf:token())
      assert.equal(1, #events)
      assert.equal(2, emu:stats().token_requests)
    end)

    describe("a 403", function()
      it("fetches a fresh token once: authorities granted since work at once", function()
        local wf, events = R.client(emu, "limited")
        assert(wf:token())
        emu:set_client(LIMITED_ID, { authorities = { "TASK_GET", "WORKFLOW_INSTANCE_START" } })
        local inst = assert(wf:start("simple"))
        assert.is_string(inst.id)
        assert.equal(2, emu:stats().token_requests)
        assert.equal(2, R.count(emu, "POST /v1/workflow-instances"))
        assert.equal(1, emu:stats().instances_started)
        assert.equal(1, #events)
        assert.same({ event = "token_refresh", reason = "forbidden", method = "POST",
                      path = "/v1/workflow-instances", status = 403 }, events[1])
      end)

      it("still refused after the fresh token: the 403 with its hint", function()
        local wf = R.client(emu, "limited")
        local _, err = wf:start("simple")
        assert.equal("forbidden", err.kind)
        assert.equal("WORKFLOW_INSTANCE_START", err.authority)
        assert.matches("^cf update%-service", err.hint)
        assert.equal(2, emu:stats().token_requests)
        assert.equal(2, R.count(emu, "POST /v1/workflow-instances"))
        assert.equal(0, emu:stats().instances_started)
      end)

      it("does not fetch when the token already has the authority", function()
        local wf = R.client(emu, "full")
        assert(wf:token())
        fault{ fault = "status", status = 403, method = "GET", path = "/v1/workflow-definitions" }
        local _, err = wf:definitions()
        assert.matches("^the token already has WORKFLOW_DEFINITION_GET", err.hint)
        assert.equal(1, emu:stats().token_requests)
      end)

      it("the call right after a grant works, even within a second of a refresh", function()
        local wf = R.client(emu, "limited")
        assert(wf:token())
        assert.is_nil((wf:start("simple")))               -- 403: refreshed, still refused
        local before = emu:stats().token_requests
        emu:set_client(LIMITED_ID, { authorities = { "TASK_GET", "WORKFLOW_INSTANCE_START" } })
        local t0 = R.now()
        local inst = assert(wf:start("simple"))           -- at once: a fresh token, then 201
        assert.is_true(R.now() - t0 < 1)
        assert.is_string(inst.id)
        assert.equal(before + 1, emu:stats().token_requests)
        wf:close()
      end)

      -- README, "Time": with retries = 0 a call takes at most timeout, or 3 * timeout when
      -- a 403 fetches a fresh token and tries once more. Each stage here takes 0.9 s of a
      -- 1.5 s timeout (margins for the valgrind stage), so together they take more than
      -- one timeout, and a stalled stage is cut at its own timeout.
      local SLOW, TIMEOUT = 0.9, 1.5

      it("may take up to 3 x timeout: the request, the fresh token and the second try " ..
         "each get a timeout of their own", function()
        local wf = R.client(emu, "limited", { timeout = TIMEOUT, retries = 0 })
        assert(wf:token())
        fault{ fault = "delay", delay = SLOW, method = "POST", path = "/v1/workflow-instances",
               times = 2 }
        fault{ fault = "delay", delay = SLOW, path = "/oauth/token" }
        local t0 = R.now()
        local _, err = wf:start("simple")
        local elapsed = R.now() - t0
        assert.equal("forbidden", err.kind)
        assert.equal(2, R.count(emu, "POST /v1/workflow-instances"))
        assert.equal(2, emu:stats().token_requests)
        assert.is_true(elapsed >= 3 * SLOW and elapsed < 3 * TIMEOUT, "took " .. elapsed)
        wf:close()
      end)

      it("a stalled token fetch or second try after a 403 is cut at timeout", function()
        local wf = R.client(emu, "limited", { timeout = TIMEOUT, retries = 0 })
        assert(wf:token())
        -- the fetch stalls: the first 403 comes back once the fetch has used its timeout
        fault{ fault = "delay", delay = SLOW, method = "POST", path = "/v1/workflow-instances" }
        fault{ fault = "delay", delay = 5, path = "/oauth/token" }
        local t0 = R.now()
        local _, err = wf:start("simple")
        local elapsed = R.now() - t0
        assert.equal("forbidden", err.kind)
        assert.is_true(elapsed >= SLOW + TIMEOUT - 0.1 and elapsed < 3 * TIMEOUT,
                       "took " .. elapsed)
        emu:clear_faults()
        -- the second try stalls: a timeout, once it has used its own
        fault{ fault = "delay", delay = SLOW, method = "POST", path = "/v1/workflow-instances" }
        fault{ fault = "delay", delay = 5, method = "POST", path = "/v1/workflow-instances" }
        t0 = R.now()
        _, err = wf:start("simple")
        elapsed = R.now() - t0
        assert.equal("timeout", err.kind)
        assert.is_true(elapsed >= SLOW + TIMEOUT - 0.1 and elapsed < 3 * TIMEOUT,
                       "took " .. elapsed)
        emu:clear_faults()
        wf:close()
      end)

      it("forbidden calls in a loop fetch one token per call, never more", function()
        local wf = R.client(emu, "limited")
        assert(wf:token())
        for _ = 1, 10 do assert.is_nil((wf:start("simple"))) end
        assert.equal(1 + 10, emu:stats().token_requests)
        assert.equal(20, R.count(emu, "POST /v1/workflow-instances"))
        wf:close()
      end)

      it("the items of a batch in flight when it was granted all go through on one fresh " ..
         "token", function()
        local wf, events = R.client(emu, "limited")
        assert(wf:token())
        emu:set_client(LIMITED_ID, { authorities = { "TASK_GET", "WORKFLOW_INSTANCE_START" } })
        -- slow answers: all six are in flight with the old token when the first 403 comes
        fault{ fault = "delay", delay = 0.3, method = "POST", path = "/v1/workflow-instances",
               times = -1 }
        local items = {}
        for i = 1, 6 do items[i] = { definitionId = "simple", context = { i = i } } end
        local results = wf:start_many(items, { concurrency = 6 })
        for i = 1, 6 do assert.is_false(sapwf.is_error(results[i]), tostring(results[i])) end
        assert.equal(2, emu:stats().token_requests)          -- the first, and one fresh
        assert.equal(6, emu:stats().instances_started)
        local refreshes = 0
        for _, e in ipairs(events) do
          if e.event == "token_refresh" then refreshes = refreshes + 1 end
        end
        assert.equal(1, refreshes)
        wf:close()
      end)

      it("forbidden items of a batch fetch at most one token a second", function()
        local wf = R.client(emu, "limited")
        assert(wf:token())
        local items = {}
        for i = 1, 40 do items[i] = { definitionId = "simple", context = { i = i } } end
        local started = R.now()
        local results = wf:start_many(items, { concurrency = 8 })
        local seconds = R.now() - started
        for i = 1, 40 do assert.equal("forbidden", results[i].kind) end
        local fetched = emu:stats().token_requests - 1
        assert.is_true(fetched >= 1 and fetched <= math.floor(seconds) + 1,
                       fetched .. " fetches in " .. seconds .. " s")
        wf:close()              -- its batch's connections must not outlive the test
      end)
    end)
  end)

  describe("the log hook", function()
    it("gets one event per retry, with what happened and nothing secret", function()
      local needles = R.needles(emu, "full")
      local wf, events = R.client(emu, "full")
      needles.token = assert(wf:token())
      fault{ fault = "status", status = 502, method = "GET", path = "/v1/workflow-definitions" }
      fault{ fault = "status", status = 429, method = "GET", path = "/v1/workflow-definitions" }
      assert(wf:definitions{ top = 5 })
      assert.equal(2, #events)
      assert.same({ "attempt", "delay", "event", "method", "outcome", "path", "status" },
                  (function() local k = {} for name in pairs(events[1]) do k[#k + 1] = name end
                    table.sort(k) return k end)())
      assert.equal("/v1/workflow-definitions", events[1].path)     -- no query string
      assert.equal(502, events[1].status)
      assert.equal("unknown", events[1].outcome)
      assert.equal(429, events[2].status)
      assert.equal("rejected", events[2].outcome)
      assert.equal(2, events[2].attempt)
      R.assert_no_secret(events, needles, "a log event")
    end)

    it("an error raised by the hook reaches the caller; nothing is sent twice", function()
      local wf = assert(sapwf.new{ service_key = emu:service_key("full"),
                                   log = function() error("log hook failed") end })
      fault{ fault = "status", status = 429, method = "POST", path = "/v1/workflow-instances" }
      assert.has_error(function() wf:start("simple") end, "log hook failed")
      assert.equal(1, R.count(emu, "POST /v1/workflow-instances"))
      assert.equal(0, emu:stats().instances_started)
    end)
  end)
end)
