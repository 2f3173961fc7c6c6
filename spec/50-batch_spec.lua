-- Many calls at once (lua/sapwf/batch.lua on src/batch.c): wf:start_many and wf:map against
-- the emulator. Order, partial failure, one token for the batch, the 401 path, progress,
-- concurrency, starts whose outcome is unknown, and connections shared between clients.
local sapwf = require "sapwf"
local core = require "sapwf.core"
local helpers = require "spec.helpers"

-- The ESTABLISHED TCP connections this process holds to 127.0.0.1:port, read from the
-- kernel (/proc), not from sapwf: which of our sockets are connected to the emulator.
local function our_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*l"):match("^(%d+)")
  f:close()
  return pid
end

local function connections_to(port)
  local inodes = {}
  local ls = assert(io.popen("ls -l /proc/" .. our_pid() .. "/fd 2>/dev/null"))
  for inode in ls:read("*a"):gmatch("socket:%[(%d+)%]") do inodes[inode] = true end
  ls:close()
  local count = 0
  for line in io.lines("/proc/net/tcp") do
    local remote_port, state, inode =
      line:match("^%s*%d+:%s+%x+:%x+%s+%x+:(%x+)%s+(%x+)%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(%d+)")
    if remote_port and tonumber(remote_port, 16) == port and state == "01"
        and inodes[inode] then
      count = count + 1
    end
  end
  return count
end

describe("batches", function()
  local emu, port

  setup(function()
    emu = helpers.start_emulator()
    port = tonumber(emu.url:match(":(%d+)$"))
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function client(extra)
    local opts = { service_key = emu:service_key("full") }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(sapwf.new(opts))
  end

  local function stats() return emu:stats() end

  local function starts_seen()
    return stats().api_requests_by_operation["POST /v1/workflow-instances"] or 0
  end

  -- n items of the simple definition, items[i].context.n == i
  local function items(n)
    local list = {}
    for i = 1, n do list[i] = { definitionId = "simple", context = { n = i } } end
    return list
  end

  describe("wf:start_many", function()
    it("returns one result per item in input order, failures where they happened", function()
      local wf = client()
      local list = items(30)
      for _, i in ipairs({ 4, 17, 30 }) do list[i].definitionId = "no_such_definition" end
      local results = wf:start_many(list, { concurrency = 8 })
      assert.equal(30, #results)
      local ids, ns = {}, {}
      for i, r in ipairs(results) do
        if i == 4 or i == 17 or i == 30 then
          assert.is_true(sapwf.is_error(r), i)
          assert.equal("not_found", r.kind)
          assert.equal(404, r.status)
          assert.equal("POST", r.method)
          assert.equal("rejected", r.outcome)
        else
          assert.is_false(sapwf.is_error(r), i)
          assert.equal("simple", r.definitionId)
          ids[#ids + 1], ns[#ns + 1] = r.id, i
        end
      end
      -- each instance has its own item's context: results are in input order
      local contexts = wf:map(ids, function(w, id) return w:context(id) end)
      for k, ctx in ipairs(contexts) do assert.equal(ns[k], ctx.n) end
      assert.equal(27, stats().instances_started)
      wf:close()
    end)

    it("goes on after an item fails: a 500 fails that item only", function()
      local wf = client()
      emu:fault{ fault = "status", status = 500, method = "POST", path = "/v1/workflow-instances",
                 times = 1 }
      local list = items(20)
      list[9].definitionId = "no_such_definition"
      local results = wf:start_many(list, { concurrency = 5 })
      local ok, server, not_found = 0, 0, 0
      for i, r in ipairs(results) do
        if not sapwf.is_error(r) then
          ok = ok + 1
        elseif r.kind == "server" then
          server = server + 1
          assert.equal(500, r.status)
          assert.equal("unknown", r.outcome)
          assert.is_false(r.retryable)
        else
          assert.equal(9, i)
          assert.equal("not_found", r.kind)
          not_found = not_found + 1
        end
      end
      assert.same({ 18, 1, 1 }, { ok, server, not_found })
      assert.equal(20, starts_seen())            -- a POST that got a 500 is not sent again
      assert.equal(18, stats().instances_started)
      wf:close()
    end)

    it("gets one token for the whole batch", function()
      local wf = client()
      local before = stats().token_requests
      local results = wf:start_many(items(50), { concurrency = 16 })
      for _, r in ipairs(results) do assert.is_false(sapwf.is_error(r)) end
      assert.equal(1, stats().token_requests - before)
      wf:close()
    end)

    it("fetches a new token once when the tokens expire between batches, not per item",
       function()
      local wf = client()
      assert.equal(10, #wf:start_many(items(10)))
      emu:expire_tokens()
      local before = stats()
      local results = wf:start_many(items(40), { concurrency = 8 })
      for _, r in ipairs(results) do assert.is_false(sapwf.is_error(r)) end
      local after = stats()
      assert.equal(1, after.token_requests - before.token_requests)
      -- the requests that carried the old token were refused and replayed once each
      local refused = (after.api_responses_by_status["401"] or 0)
        - (before.api_responses_by_status["401"] or 0)
      assert.is_true(refused >= 1 and refused <= 8, "401 answers: " .. refused)
      assert.equal(50, after.instances_started)
      wf:close()
    end)

    it("asks a failing token endpoint once, not once per item", function()
      local wf = client{ retries = 0 }
      emu:fault{ fault = "status", status = 503, path = "/oauth/token", times = -1 }
      local results = wf:start_many(items(20), { concurrency = 5 })
      for _, r in ipairs(results) do
        assert.is_true(sapwf.is_error(r))
        assert.equal("token", r.phase)
        assert.equal("not_sent", r.outcome)
      end
      assert.equal(1, stats().token_requests)
      assert.equal(0, starts_seen())
      emu:clear_faults()
      wf:close()
    end)

    it("calls on_progress with done counting up to the total", function()
      local wf = client()
      local calls = {}
      wf:start_many(items(25), { concurrency = 4, on_progress = function(done, total)
        calls[#calls + 1] = { done, total }
      end })
      assert.equal(25, #calls)
      for k, call in ipairs(calls) do assert.same({ k, 25 }, call) end
      wf:close()
    end)

    it("keeps `concurrency` starts in flight: 20 slow starts at 10 take two rounds", function()
      local wf = client()
      assert(wf:token())
      emu:fault{ fault = "delay", delay = 0.2, method = "POST", path = "/v1/workflow-instances",
                 times = 20 }
      local t0 = core.monotonic()
      local results = wf:start_many(items(20), { concurrency = 10 })
      local elapsed = core.monotonic() - t0
      for _, r in ipairs(results) do assert.is_false(sapwf.is_error(r)) end
      -- all at once would take 0.2 s, one at a time 4 s
      assert.is_true(elapsed >= 0.38 and elapsed < 1.5, "took " .. elapsed .. " s")
      wf:close()
    end)

    it("reports a start whose connection dropped as unknown, and never sends it twice",
       function()
      local wf = client()
      assert.equal(4, #wf:start_many(items(4), { concurrency = 4 }))  -- connections to reuse
      local before = stats()
      emu:fault{ fault = "drop_after", method = "POST", path = "/v1/workflow-instances",
                 times = 1 }
      local results = wf:start_many(items(12), { concurrency = 4 })
      local started, unknown = 0, 0
      for _, r in ipairs(results) do
        if sapwf.is_error(r) then
          unknown = unknown + 1
          assert.equal("network", r.kind)
          assert.equal("unknown", r.outcome)
          assert.is_false(r.retryable)
        else
          started = started + 1
        end
      end
      assert.same({ 11, 1 }, { started, unknown })
      local after = stats()
      assert.equal(12, (after.api_requests_by_operation["POST /v1/workflow-instances"] or 0)
        - (before.api_requests_by_operation["POST /v1/workflow-instances"] or 0))
      -- drop_after performs the start: the unknown one did start
      assert.equal(started + unknown, after.instances_started - before.instances_started)
      wf:close()
    end)

    it("waits out a retry without holding up the other items", function()
      local wf = client{ backoff_base = 0.3, backoff_max = 0.3 }
      assert(wf:token())
      emu:fault{ fault = "status", status = 429, method = "POST", path = "/v1/workflow-instances",
                 times = 1 }
      local order = {}
      local results = wf:start_many(items(12), { concurrency = 4, on_progress = function(done)
        order[#order + 1] = done
      end })
      for _, r in ipairs(results) do assert.is_false(sapwf.is_error(r)) end
      assert.equal(13, starts_seen())           -- the refused one went again, once
      assert.equal(12, stats().instances_started)
      wf:close()
    end)

    it("checks every item before sending any", function()
      local wf = client()
      local list = items(5)
      list[4] = { definitionId = 42 }
      assert.has_error(function() wf:start_many(list) end,
        "bad argument #1 to 'start_many' (items[4].definitionId: non-empty string expected, "
          .. "got number)")
      list[4] = { definitionId = "simple", contxt = {} }
      assert.has_error(function() wf:start_many(list) end,
        "bad argument #1 to 'start_many' (items[4]: unknown field 'contxt' "
          .. "(definitionId, context))")
      list[4] = { definitionId = "simple", context = "x" }
      assert.has_error(function() wf:start_many(list) end,
        "bad argument #1 to 'start_many' (items[4].context: table expected, got string)")
      list[4] = "simple"
      assert.has_error(function() wf:start_many(list) end,
        "bad argument #1 to 'start_many' (items[4]: table expected, got string)")
      assert.equal(0, starts_seen())
      assert.has_error(function() wf:start_many("x") end,
        "bad argument #1 to 'start_many' (table expected, got string)")
      assert.has_error(function() wf:start_many({}, { concurrency = 0 }) end,
        "bad argument #2 to 'start_many' (concurrency: integer from 1 to 1024 expected)")
      assert.has_error(function() wf:start_many({}, { concurrency = 2.5 }) end,
        "bad argument #2 to 'start_many' (concurrency: integer from 1 to 1024 expected)")
      assert.has_error(function() wf:start_many({}, { on_progress = true }) end,
        "bad argument #2 to 'start_many' (on_progress: function expected, got boolean)")
      assert.has_error(function() wf:start_many({}, { concurency = 2 }) end,
        "bad argument #2 to 'start_many' (unknown option 'concurency' (concurrency, "
          .. "adaptive, rate_limit_wait, on_progress))")
      assert.has_error(function() wf:start_many({}, { adaptive = "no" }) end,
        "bad argument #2 to 'start_many' (adaptive: boolean expected, got string)")
      assert.has_error(function() wf:start_many({}, { rate_limit_wait = -1 }) end,
        "bad argument #2 to 'start_many' (rate_limit_wait: seconds (a number from 0) expected)")
      wf:close()
      assert.has_error(function() wf:start_many({}) end, "attempt to use a closed sapwf client")
    end)

    it("gives a JSON problem of one item to that item, as wf:start returns it", function()
      local wf = client()
      local list = items(3)
      list[2].context = { price = 0 / 0 }
      local results = wf:start_many(list)
      assert.is_false(sapwf.is_error(results[1]))
      assert.is_false(sapwf.is_error(results[3]))
      assert.is_true(sapwf.is_error(results[2]))
      assert.equal("invalid", results[2].kind)
      assert.equal("not_sent", results[2].outcome)
      assert.equal(2, starts_seen())
      wf:close()
    end)

    it("returns an empty list for no items, without a token", function()
      local wf = client()
      assert.same({}, wf:start_many({}))
      assert.equal(0, stats().token_requests)
      wf:close()
    end)
  end)

  describe("wf:map", function()
    it("reads many instances, an unknown id failing alone", function()
      local wf = client()
      local started = wf:start_many(items(12))
      local ids = {}
      for i, inst in ipairs(started) do ids[i] = inst.id end
      ids[6] = "00000000-0000-0000-0000-000000000000"
      local before = stats().token_requests
      local read = wf:map(ids, function(w, id) return w:instance(id) end, { concurrency = 5 })
      assert.equal(12, #read)
      for i, inst in ipairs(read) do
        if i == 6 then
          assert.equal("not_found", inst.kind)
          assert.equal("GET", inst.method)
        else
          assert.equal(ids[i], inst.id)
          assert.equal("RUNNING", inst.status)
        end
      end
      assert.equal(0, stats().token_requests - before)   -- the cached token serves
      wf:close()
    end)

    it("runs several calls per item, each item's in order", function()
      local wf = client()
      local results = wf:map({ 1, 2, 3, 4, 5 }, function(w, n)
        local inst, err = w:start("simple", { n = n })
        if not inst then return nil, err end
        assert(w:update_context(inst.id, { doubled = n * 2 }))
        return w:context(inst.id)
      end, { concurrency = 3 })
      for n, ctx in ipairs(results) do assert.same({ n = n, doubled = n * 2 }, ctx) end
      wf:close()
    end)

    -- start_many's calls skip meta (nobody sees it); map's function sees every value.
    it("gives the function each call's meta, as the client's own calls do", function()
      local wf = client()
      local metas = wf:map({ 1, 2, 3 }, function(w, n)
        local inst, meta = w:start("simple", { n = n })
        if not inst then return nil, meta end
        return meta
      end, { concurrency = 3 })
      for i = 1, 3 do
        assert.equal(201, metas[i].status)
        assert.is_string(metas[i].request_id)
      end
      wf:close()
    end)

    it("raises what the function raises, and the client stays usable", function()
      local wf = client()
      assert.has_error(function()
        wf:map({ 1, 2, 3 }, function(w, n)
          if n == 2 then error("boom", 0) end
          return w:definition("simple")
        end)
      end, "boom")
      assert.has_error(function()
        wf:map({ 1 }, function(w) return w:instance(42) end)
      end)
      assert.equal("simple", assert(wf:definition("simple")).id)
      assert.has_error(function() wf:map({}, "f") end,
        "bad argument #2 to 'map' (function expected, got string)")
      assert.has_error(function() wf:map(nil, print) end,
        "bad argument #1 to 'map' (table expected, got nil)")
      wf:close()
    end)

    it("passes on_progress's raise on and leaves nothing running", function()
      local wf = client()
      assert.has_error(function()
        wf:map({ 1, 2, 3, 4 }, function(w) return w:definition("simple") end,
               { concurrency = 2, on_progress = function(done)
                 if done == 2 then error("stop", 0) end
               end })
      end, "stop")
      collectgarbage()
      assert.equal(4, #wf:map({ 1, 2, 3, 4 }, function(w) return w:definition("simple") end))
      wf:close()
    end)
  end)

  describe("the core batch", function()
    -- Each test keeps the sapwf client: collected, it would close the core under test.
    it("checks its arguments and refuses use after close", function()
      local wf = client()
      local c = wf._core
      assert.has_error(function() c:batch(0) end)
      assert.has_error(function() c:batch(1025) end)
      local b = c:batch(2)
      assert.matches("sapwf.core.Batch %(2 slots%)", tostring(b))
      assert.has_error(function() b:submit(3, "GET", "/v1/workflow-definitions") end)
      assert.has_error(function() b:submit(1, "GET", "v1") end)
      assert.has_error(function() b:submit(1, "FETCH", "/v1/workflow-definitions") end)
      assert.has_error(function() b:wait(-1) end)
      assert.is_nil(b:wait())                    -- nothing in flight
      b:submit(1, "GET", "/v1/workflow-definitions")
      assert.has_error(function() b:submit(1, "GET", "/v1/workflow-definitions") end,
        "bad argument #1 to 'submit' (slot is busy)")
      local slot, status, body, headers = b:wait()
      assert.same({ 1, 200 }, { slot, status })
      assert.is_string(body)
      assert.matches("^application/json", core.header(headers, "content-type"))
      b:close()
      b:close()
      assert.has_error(function() b:wait() end, "attempt to use a closed sapwf batch")
      wf:close()
    end)

    it("sleeps out a timeout when nothing is in flight", function()
      local wf = client()
      local c = wf._core
      local b = c:batch(1)
      local t0 = core.monotonic()
      assert.is_nil(b:wait(0.2))
      local elapsed = core.monotonic() - t0
      assert.is_true(elapsed >= 0.19 and elapsed < 1, "took " .. elapsed)
      b:close()
      wf:close()
    end)

    it("refuses new requests once the client is closed, and still finishes its own",
       function()
      local wf = client()
      local c = wf._core
      local b = c:batch(2)
      b:submit(1, "GET", "/v1/workflow-definitions")
      c:close()
      assert.has_error(function() b:submit(2, "GET", "/v1/workflow-definitions") end,
        "attempt to use a closed sapwf client")
      local slot, status = b:wait()
      assert.same({ 1, 200 }, { slot, status })
      b:close()
      wf:close()
    end)
  end)

  describe("connections", function()
    it("are shared by the clients of a process, and closed with the last of them", function()
      collectgarbage()
      collectgarbage()
      local a = client()
      assert(a:definitions())
      local b = client()
      assert(b:token())                          -- b's own token connection
      local before = connections_to(port)
      assert(b:definitions())
      assert.equal(before, connections_to(port))  -- b's call went on a's connection
      a:close()
      assert(b:definitions())                     -- the shared one outlives a
      assert.equal(before - 1, connections_to(port))  -- a's token connection is gone
      b:close()
      assert.equal(before - 3, connections_to(port))  -- b's token one and the shared one
    end)

    it("are one, multiplexed, when the server speaks HTTP/2", function()
      local h2 = helpers.start_emulator{ tls = true, http2 = true }
      local h2_port = tonumber(h2.https_url:match(":(%d+)$"))
      local key = h2:service_key("full")
      key.endpoints.workflow_rest_url = h2.https_url .. "/workflow-service/rest"
      local wf = assert(sapwf.new{ service_key = key, cafile = h2.ca_file })
      local most = 0
      local results = wf:start_many(items(64), { concurrency = 32, on_progress = function()
        local n = connections_to(h2_port)
        if n > most then most = n end
      end })
      for _, r in ipairs(results) do assert.is_false(sapwf.is_error(r), tostring(r)) end
      assert.equal(1, most)
      wf:close()
      h2:stop()
    end)

    it("are kept alive between calls and batches: a batch opens one per slot it needs",
       function()
      collectgarbage()
      collectgarbage()
      local base = connections_to(port)
      local wf = client()
      for _ = 1, 5 do assert(wf:start("simple")) end
      assert.equal(base + 2, connections_to(port))   -- token + API
      -- slow starts, so that all 6 slots are in flight at once (a server that answers faster
      -- than requests are handed over gets fewer connections: libcurl reuses idle ones first)
      emu:fault{ fault = "delay", delay = 0.05, method = "POST",
                 path = "/v1/workflow-instances", times = -1 }
      wf:start_many(items(24), { concurrency = 6 })
      -- the loop's API connection and 5 new ones, still open after the batch
      assert.equal(base + 1 + 6, connections_to(port))
      wf:start_many(items(24), { concurrency = 6 })
      assert.equal(base + 1 + 6, connections_to(port))   -- the same ones again
      emu:clear_faults()
      wf:close()
      assert.equal(base, connections_to(port))
    end)
  end)
end)
