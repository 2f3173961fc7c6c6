-- libcurl re-sends a request by itself when a kept-alive connection it reuses turns out to
-- be dead before any answer byte arrives. For a GET that is harmless; for a start it could
-- create a second instance. This proves both halves against the emulator: libcurl does
-- re-send (the GET case), and sapwf never lets it re-send a POST (the start case) nor any
-- other call whose second sending could act again (a PATCH completing a task).
--
-- The emulator's drop_after fault performs the operation and then closes the connection
-- without answering: on a reused connection that is exactly the situation libcurl retries.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

describe("libcurl's automatic re-send on a dead reused connection", function()
  local emu, wf

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function()
    emu:reset()
    wf = assert(sapwf.new{ service_key = emu:service_key("full") })
    -- One API call first, so the next one goes out on a reused connection.
    assert(wf:definitions())
  end)
  after_each(function() wf:close() end)

  local function count(operation)
    return emu:stats().api_requests_by_operation[operation] or 0
  end

  it("happens for a GET: the call succeeds and the server saw it twice", function()
    local before = count("GET /v1/workflow-definitions")
    emu:fault{ fault = "drop_after", method = "GET", path = "/v1/workflow-definitions" }
    local list = assert(wf:definitions())
    assert.is_true(#list > 0)
    assert.equal(before + 2, count("GET /v1/workflow-definitions"))
  end)

  it("never happens for a start: one instance, and the error says the outcome is unknown",
     function()
    emu:fault{ fault = "drop_after", method = "POST", path = "/v1/workflow-instances" }
    local inst, err = wf:start("simple", { order = 42 })
    assert.is_nil(inst)
    assert.equal("network", err.kind)
    assert.equal("unknown", err.outcome)
    assert.is_false(err.retryable)
    assert.equal(1, count("POST /v1/workflow-instances"))
    assert.equal(1, emu:stats().instances_started)
    assert.equal(1, #assert(emu:control("GET", "/instances")))
    -- The client is still usable, and the instance can be looked up instead of restarted.
    local found = assert(wf:instances{ definitionId = "simple" })
    assert.equal(1, #found)
    assert.equal(42, assert(wf:context(found[1].id)).order)
  end)

  it("says a connection lost after sending in the same words on a fresh connection",
     function()
    local fresh = assert(sapwf.new{ service_key = emu:service_key("full") })
    finally(function() fresh:close() end)
    assert(fresh:token())                       -- the token's own connection: not the API's
    emu:fault{ fault = "drop_after", method = "POST", path = "/v1/workflow-instances" }
    local inst, err = fresh:start("simple", { order = 43 })
    assert.is_nil(inst)
    assert.same({ "network", "unknown" }, { err.kind, err.outcome })
    assert.matches("connection lost after the request was sent (", tostring(err), 1, true)
    local _, said = tostring(err):gsub("outcome unknown", "")
    assert.equal(1, said, tostring(err))
    assert.equal(1, emu:stats().instances_started)
  end)

  it("never happens for a message either", function()
    local inst = assert(wf:start("orderapproval", { orderId = "7", product = "Lens" }))
    local tasks = assert(wf:tasks{ workflowInstanceId = inst.id })
    assert(wf:complete_task(tasks[1].id, { approved = true }))
    emu:fault{ fault = "drop_after", method = "POST", path = "/v1/messages" }
    local consumed, err = wf:send_message{ definitionId = "orderShipped",
                                           workflowInstanceId = inst.id }
    assert.is_nil(consumed)
    assert.equal("unknown", err.outcome)
    assert.equal(1, emu:stats().messages)
  end)

  it("never happens for a PATCH that is no idempotent call: completing a task", function()
    local inst = assert(wf:start("orderapproval", { orderId = "8", product = "Lens" }))
    local task = assert(wf:tasks{ workflowInstanceId = inst.id })[1]
    assert(wf:task(task.id))                    -- the next call reuses the connection
    local before = count("PATCH /v1/task-instances/{taskInstanceId}")
    emu:fault{ fault = "drop_after", method = "PATCH", path = "/v1/task-instances/" }
    local ok, err = wf:complete_task(task.id, { approved = true })
    assert.is_nil(ok)
    assert.equal("network", err.kind)
    assert.equal("unknown", err.outcome)        -- not 422 "already completed" from a re-send
    assert.matches("connection lost after the request was sent", tostring(err))
    -- said once, by the funnel ("; the request may have taken effect (outcome unknown)")
    local _, said = tostring(err):gsub("outcome unknown", "")
    assert.equal(1, said, tostring(err))
    assert.equal(before + 1, count("PATCH /v1/task-instances/{taskInstanceId}"))
    assert.equal("COMPLETED", assert(wf:task(task.id)).status)
  end)

  it("never happens for a resume: on an ERRONEOUS instance each one retries the failed step",
     function()
    local inst = assert(wf:start("failing", {}))
    assert.equal("ERRONEOUS", assert(wf:instance(inst.id)).status)
    local function failures()
      local n = 0
      for _, entry in ipairs(assert(wf:execution_logs(inst.id))) do
        if entry.type == "SERVICETASK_FAILED" then n = n + 1 end
      end
      return n
    end
    local before = failures()                   -- (also: the next call reuses the connection)
    emu:fault{ fault = "drop_after", method = "PATCH", path = "/v1/workflow-instances/" }
    local ok, err = wf:resume(inst.id)
    assert.is_nil(ok)
    assert.equal("unknown", err.outcome)
    assert.is_false(err.retryable)
    assert.equal(before + 1, failures())        -- the step ran once more, not twice
  end)

  it("leaves an idempotent PATCH to sapwf's own retries: a context merge goes through",
     function()
    local inst = assert(wf:start("simple", { a = 1 }))
    local events = {}
    local w = assert(sapwf.new{ service_key = emu:service_key("full"), backoff_base = 0.05,
                                log = function(e) events[#events + 1] = e end })
    assert(w:instance(inst.id))                 -- the next call reuses the connection
    emu:fault{ fault = "drop_after", method = "PATCH", path = "/v1/workflow-instances/" }
    assert(w:update_context(inst.id, { b = 2 }))
    w:close()
    assert.same({ a = 1, b = 2 }, assert(wf:context(inst.id)))
    local retried
    for _, e in ipairs(events) do if e.event == "retry" then retried = e end end
    assert.is_table(retried, "no retry event: the PATCH was not refused and sent again")
  end)
end)
