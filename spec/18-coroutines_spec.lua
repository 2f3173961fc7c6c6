-- Several clients and coroutines in one Lua state: each call completes inside its C
-- function (a coroutine cannot yield in the middle of one), so coroutines that interleave
-- their calls, on one client or on several, each get their own answers, and one client's
-- token, errors or closing never reach another.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

-- Resumes the coroutines in turn until all are dead; raises what one of them raised.
local function round_robin(threads)
  local alive = #threads
  while alive > 0 do
    alive = 0
    for _, co in ipairs(threads) do
      if coroutine.status(co) ~= "dead" then
        local ok, err = coroutine.resume(co)
        if not ok then error(err, 0) end
        if coroutine.status(co) ~= "dead" then alive = alive + 1 end
      end
    end
  end
end

describe("several clients and coroutines in one process", function()
  local emu

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function client(name)
    return assert(sapwf.new{ service_key = emu:service_key(name), instance = name })
  end

  it("interleaves starts and reads on two clients, each coroutine getting its own answers",
     function()
    local a, b = client("full"), client("full")
    local results, threads = {}, {}
    for i = 1, 12 do
      local wf = i % 2 == 0 and a or b
      threads[i] = coroutine.create(function()
        local inst = assert(wf:start("simple", { owner = i, items = { i, i * 10 } }))
        coroutine.yield()
        local ctx = assert(wf:context(inst.id))
        coroutine.yield()
        local read = assert((i % 3 == 0 and a or b):instance(inst.id))
        results[i] = { id = inst.id, ctx = ctx, read = read }
      end)
    end
    round_robin(threads)
    local ids = {}
    for i = 1, 12 do
      local r = results[i]
      assert.same({ owner = i, items = { i, i * 10 } }, r.ctx)
      assert.equal(r.id, r.read.id)
      assert.is_nil(ids[r.id])
      ids[r.id] = true
    end
    local stats = emu:stats()
    assert.equal(12, stats.instances_started)
    assert.equal(2, stats.token_requests)            -- one per client, not per coroutine
    a:close()
    b:close()
  end)

  it("pages through a list in one coroutine while others start instances", function()
    local wf = client("full")
    local expected = {}
    for i = 1, 7 do expected[assert(wf:start("simple", { n = i })).id] = true end
    local seen, started = {}, 0
    local threads = {
      coroutine.create(function()
        for inst in wf:each_instance{ definitionId = "simple", top = 2 } do
          seen[#seen + 1] = inst.id
          coroutine.yield()
        end
      end),
    }
    for i = 1, 3 do
      threads[#threads + 1] = coroutine.create(function()
        for _ = 1, 4 do
          assert(wf:start("orderapproval", { product = "p" .. i, price = i }))
          started = started + 1
          coroutine.yield()
        end
      end)
    end
    round_robin(threads)
    assert.equal(7, #seen)
    for _, id in ipairs(seen) do
      assert.is_true(expected[id])
      expected[id] = nil
    end
    assert.is_nil(next(expected))
    assert.equal(12, started)
    assert.equal(7 + 12, emu:stats().instances_started)
  end)

  it("keeps each client's token and errors to itself", function()
    local full, limited = client("full"), client("limited")
    local outcomes = {}
    round_robin({
      coroutine.create(function()
        for _ = 1, 3 do
          outcomes[#outcomes + 1] = { "full", full:start("simple") }
          coroutine.yield()
        end
      end),
      coroutine.create(function()
        for _ = 1, 3 do
          outcomes[#outcomes + 1] = { "limited", limited:start("simple") }
          coroutine.yield()
        end
      end),
    })
    assert.equal(6, #outcomes)
    for _, o in ipairs(outcomes) do
      local who, value, err = o[1], o[2], o[3]
      if who == "full" then
        assert.equal("RUNNING", value.status)
      else
        assert.is_nil(value)
        assert.equal("forbidden", err.kind)
        assert.equal("WORKFLOW_INSTANCE_START", err.authority)
        -- the hint keeps the limited client's own authorities, not the full client's
        assert.matches("cf update%-service limited ", err.hint)
        assert.matches('"TASK_GET"', err.hint)
        assert.is_nil(err.hint:find("WORKFLOW_INSTANCE_GET", 1, true))
      end
    end
    local _, _, full_scope = assert(full:token())
    local _, _, limited_scope = assert(limited:token())
    assert.matches("WORKFLOW_INSTANCE_START", full_scope)
    assert.is_nil(limited_scope:find("WORKFLOW_INSTANCE_START", 1, true))
    assert.equal(3, emu:stats().instances_started)
  end)

  it("leaves a client usable after a coroutine raised or was dropped mid-iteration", function()
    local wf = client("full")
    for i = 1, 5 do assert(wf:start("simple", { n = i })) end
    local dropped = coroutine.create(function()
      for _ in wf:each_instance{ definitionId = "simple", top = 2 } do coroutine.yield() end
    end)
    assert.is_true((coroutine.resume(dropped)))
    assert.equal("suspended", coroutine.status(dropped))
    local failing = coroutine.create(function() return wf:instance(42) end)
    local ok, err = coroutine.resume(failing)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'instance' %(string expected, got number%)", err)
    dropped = nil
    collectgarbage()
    local list = assert(wf:instances{ definitionId = "simple", top = 10 })
    assert.equal(5, #list)
  end)

  it("makes a client closed in one coroutine raise in the others, and no other client",
     function()
    local a, b = client("full"), client("full")
    local after_close = {}
    round_robin({
      coroutine.create(function()
        assert(a:definitions())
        coroutine.yield()
        a:close()
      end),
      coroutine.create(function()
        assert(a:definitions())
        coroutine.yield()
        coroutine.yield()
        after_close.a = { pcall(a.definitions, a) }
        after_close.b = { b:definitions() }
      end),
    })
    assert.is_false(after_close.a[1])
    assert.matches("attempt to use a closed sapwf client", after_close.a[2])
    assert.equal("orderapproval", after_close.b[1][1].id)
  end)
end)
