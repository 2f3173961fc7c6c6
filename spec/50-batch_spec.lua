-- Many calls at once (lua/sapwf/batch.lua on src/batch.c): wf:start_many and wf:map against
-- the emulator. Order, partial failure, one token for the batch, the 401 path, progress,
-- concurrency, starts whose outcome is unknown, and connections shared between clients.
local sapwf = require "sapwf"
local core = require "sapwf.core"
local helpers = require "spec.helpers"

local our_pid = helpers.our_pid

-- The ESTABLISHED TCP connections this process holds to 127.0.0.1:port, read from the
-- kernel (/proc), not from sapwf: which of our sockets are connected to the emulator.
-- /proc/net/tcp is no snapshot: read in pieces while other sockets come and go, it can show
-- a socket twice (on a busy machine one connection counted as two). So it is read in large
-- pieces (one for up to some 7,000 sockets), and each socket counts once, by its inode.
local function connections_to(port)
  local inodes = {}
  local ls = assert(io.popen("ls -l /proc/" .. our_pid() .. "/fd 2>/dev/null"))
  for inode in ls:read("*a"):gmatch("socket:%[(%d+)%]") do inodes[inode] = true end
  ls:close()
  local f, chunks = assert(io.open("/proc/net/tcp")), {}
  while true do
    local chunk = f:read(1024 * 1024)
    if not chunk then break end
    chunks[#chunks + 1] = chunk
  end
  f:close()
  local text = table.concat(chunks)
  local count, counted = 0, {}
  -- only the lines whose remote address ends in the port (as the kernel writes it: four
  -- upper-case hex digits) are taken apart: the table holds every socket of the machine,
  -- and the GC stage of CI collects at every allocation
  local remote = string.format(" %%x+:%04X ", port)
  for line in text:gmatch("\n([^\n]*" .. remote .. "[^\n]*)") do
    local remote_port, state, inode =
      line:match("^%s*%d+:%s+%x+:%x+%s+%x+:(%x+)%s+(%x+)%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(%d+)")
    if remote_port and tonumber(remote_port, 16) == port and state == "01"
        and inodes[inode] and not counted[inode] then
      counted[inode] = true
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

    it("holds a failed token fetch's error back only until a token is cached again",
       function()
      local wf = client{ retries = 0 }
      emu:fault{ fault = "status", status = 503, path = "/oauth/token", times = 1 }
      local results = wf:map({ 1, 2 }, function(w, n)
        if n == 2 then assert(w:token()) end        -- the endpoint answers again: cached
        return w:start("simple", { n = n })
      end, { concurrency = 1 })
      assert.equal("token", results[1].phase)       -- the failed fetch
      assert.is_false(sapwf.is_error(results[2]), tostring(results[2]))
      assert.equal(1, starts_seen())
      wf:close()
    end)

    it("when on_progress raises: the starts in flight end, and every start's result comes " ..
       "with the raise", function()
      local wf = client()
      emu:fault{ fault = "delay", delay = 0.1, method = "POST", path = "/v1/workflow-instances",
                 times = -1 }
      local ok, err = pcall(function()
        wf:start_many(items(8), { concurrency = 4, on_progress = function(done)
          if done == 1 then error("progress bar broke", 0) end
        end })
      end)
      emu:clear_faults()
      assert.is_false(ok)
      assert.equal("progress bar broke", err.cause)
      local started = 0
      for _, r in pairs(err.results) do
        assert.is_false(sapwf.is_error(r), tostring(r))
        started = started + 1
      end
      assert.equal(stats().instances_started, started)
      assert.equal(4, started)                    -- the first four; no more were taken
      wf:close()
    end)

    it("binds each item's attachments to its instance, and none where an item has none",
       function()
      local wf = client()
      local list = items(6)
      for i = 1, 6, 2 do
        list[i].attachments = { rootFolder = "folder-" .. i }
      end
      local results = wf:start_many(list, { concurrency = 3 })
      local found = wf:map(results, function(w, inst) return w:attachments(inst.id) end)
      for i = 1, 6 do
        assert.is_false(sapwf.is_error(results[i]), i)
        assert.same(i % 2 == 1 and { rootFolder = "folder-" .. i } or {}, found[i], i)
      end
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
          .. "(definitionId, context, attachments))")
      list[4] = { definitionId = "simple", attachments = "f1" }
      assert.has_error(function() wf:start_many(list) end,
        "bad argument #1 to 'start_many' (items[4].attachments: table expected, got string)")
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

  describe("the limit in flight", function()
    it("refills a slot as soon as it frees: two slow starts hold up nothing else", function()
      local wf = client()
      assert(wf:token())
      -- the first two starts to arrive (two of items 1 to 4) take 3 s; the other 38 flow
      emu:fault{ fault = "delay", delay = 3, method = "POST", path = "/v1/workflow-instances",
                 times = 2 }
      local order, n = {}, 0
      local list = items(40)
      wf:start_each(function()
        n = n + 1
        return list[n]
      end, function(i) order[#order + 1] = i end, { concurrency = 4 })
      assert.equal(40, #order)
      -- in waves, items 37 to 40 would end last; here the slow two (first wave) do
      assert.is_true(order[39] <= 4 and order[40] <= 4, "last: " .. order[39] .. ", "
        .. order[40])
      assert.equal(40, stats().instances_started)
      wf:close()
    end)
  end)

  describe("wf:start_each", function()
    -- next_item over list, counting the calls
    local function feed(list)
      local n, calls = 0, 0
      return function()
        calls = calls + 1
        n = n + 1
        return list[n]
      end, function() return calls end
    end

    it("hands each result over with its index and item, failures in their place", function()
      local wf = client()
      local list = items(30)
      for _, i in ipairs({ 4, 17, 30 }) do list[i].definitionId = "no_such_definition" end
      local seen, count = {}, 0
      local next_item, calls = feed(list)
      local n = wf:start_each(next_item, function(i, r, item)
        count = count + 1
        assert.is_nil(seen[i])
        seen[i] = r
        assert.equal(list[i], item)
      end, { concurrency = 8 })
      assert.equal(30, n)
      assert.equal(30, count)
      assert.equal(31, calls())                  -- the nil that ended the items
      for i = 1, 30 do
        if i == 4 or i == 17 or i == 30 then
          assert.equal("not_found", seen[i].kind)
          assert.equal("rejected", seen[i].outcome)
        else
          assert.is_false(sapwf.is_error(seen[i]), i)
          assert.equal(i, wf:context(seen[i].id).n)      -- item i started instance i
        end
      end
      assert.equal(27, stats().instances_started)
      wf:close()
    end)

    it("renews an expired token once for all its items", function()
      local wf = client()
      local list, n = items(60), 0
      local before = stats().token_requests
      wf:start_each(function()
        n = n + 1
        if n == 20 then emu:expire_tokens() end
        return list[n]
      end, function(_, r) assert.is_false(sapwf.is_error(r), tostring(r)) end,
        { concurrency = 8 })
      assert.equal(2, stats().token_requests - before)     -- the first, and one renewal
      assert.equal(60, stats().instances_started)
      wf:close()
    end)

    it("when on_result raises: takes no more items, lets the starts in flight end, and " ..
       "raises with their results", function()
      local wf = client()
      assert(wf:token())
      emu:fault{ fault = "delay", delay = 0.2, method = "POST", path = "/v1/workflow-instances",
                 times = -1 }
      local next_item, calls = feed(items(100))
      local got = 0
      local ok, err = pcall(wf.start_each, wf, next_item, function()
        got = got + 1
        if got == 5 then error("disk full", 0) end
      end, { concurrency = 4 })
      assert.is_false(ok)
      assert.equal("disk full", err.cause)
      assert.matches("^disk full %(%d results? of items in flight not handed over", tostring(err))
      local taken = calls()
      assert.is_true(taken < 100, "taken " .. taken)
      -- every item taken started once: 5 reached on_result, the rest are in err.pending
      assert.equal(taken, 5 + #err.pending)
      assert.equal(taken, stats().instances_started)
      assert.equal(taken, starts_seen())
      for _, p in ipairs(err.pending) do
        assert.is_false(sapwf.is_error(p.result))
        assert.equal(p.index, p.item.context.n)
        assert.equal(p.index, wf:context(p.result.id).n)
      end
      emu:clear_faults()
      wf:close()
    end)

    it("when next_item raises: the starts in flight end and reach on_result, then its " ..
       "error is raised as it was", function()
      local wf = client()
      emu:fault{ fault = "delay", delay = 0.1, method = "POST", path = "/v1/workflow-instances",
                 times = -1 }
      local list, n, got = items(20), 0, {}
      assert.has_error(function()
        wf:start_each(function()
          n = n + 1
          if n == 10 then error("input broke", 0) end
          return list[n]
        end, function(i, r)
          assert.is_false(sapwf.is_error(r))
          got[#got + 1] = i
        end, { concurrency = 4 })
      end, "input broke")
      assert.equal(10, n)                                  -- not called again
      assert.equal(9, #got)
      assert.equal(9, stats().instances_started)
      emu:clear_faults()
      wf:close()
    end)

    it("an item whose fields raise when read (a strict table): as when next_item raises",
      function()
      local wf = client()
      emu:fault{ fault = "delay", delay = 0.1, method = "POST", path = "/v1/workflow-instances",
                 times = -1 }
      local list, n, got = items(20), 0, {}
      list[10] = setmetatable({}, { __index = function(_, k) error("strict: no " .. k, 0) end })
      assert.has_error(function()
        wf:start_each(function() n = n + 1; return list[n] end, function(i, r)
          assert.is_false(sapwf.is_error(r))
          got[#got + 1] = i
        end, { concurrency = 4 })
      end, "strict: no definitionId")
      assert.equal(10, n)
      assert.equal(9, #got)
      assert.equal(9, stats().instances_started)
      emu:clear_faults()
      wf:close()
    end)

    -- start_each over `count` items at `concurrency` that closes wf at its first start:
    -- pcall's ok and err, and how many started, were refused as not sent, and were taken.
    local function start_each_closing(wf, count, concurrency)
      local list, n, started, unsent = items(count), 0, 0, 0
      local ok, err = pcall(function()
        wf:start_each(function() n = n + 1; return list[n] end, function(_, r)
          if sapwf.is_error(r) then
            assert.equal("not_sent", r.outcome)
            assert.matches("attempt to use a closed sapwf client", tostring(r), 1, true)
            unsent = unsent + 1
          else
            started = started + 1
            if started == 1 then wf:close() end
          end
        end, { concurrency = concurrency })
      end)
      return ok, err, started, unsent, n
    end

    it("when the client is closed meanwhile: the starts in flight end and reach on_result, " ..
       "what was not sent says so, then it raises at the caller", function()
      local wf = client()
      emu:fault{ fault = "delay", delay = 0.3, method = "POST", path = "/v1/workflow-instances",
                 times = -1 }
      local ok, err, started, unsent, n = start_each_closing(wf, 10, 4)
      emu:clear_faults()
      assert.is_false(ok)
      assert.matches("50%-batch_spec%.lua:%d+: attempt to use a closed sapwf client$", err)
      assert.equal(4, started)                       -- every start the service saw ...
      assert.equal(4, stats().instances_started)     -- ... was handed over
      assert.equal(1, unsent)                        -- the item taken when the first ended
      assert.equal(5, n)                             -- and no more
    end)

    it("when the client is closed while an item waits out a Retry-After: it ends at once, " ..
       "not sent, instead of waiting to be refused", function()
      local wf = client()
      assert(wf:token())
      emu:fault{ fault = "status", status = 429, retry_after = 3, method = "POST",
                 path = "/v1/workflow-instances", times = 1 }
      local t0 = core.monotonic()
      local ok, err, started, unsent = start_each_closing(wf, 3, 2)
      local took = core.monotonic() - t0
      assert.is_false(ok)
      assert.matches("50%-batch_spec%.lua:%d+: attempt to use a closed sapwf client$", err)
      -- the start the 429 refused, and the third item (taken when the first ended)
      assert.same({ 1, 2 }, { started, unsent })
      assert.equal(1, stats().instances_started)
      assert.is_true(took < 2, "took " .. took .. " s: the Retry-After (3 s) was waited out")
    end)

    it("while core.catch_sigint catches signals, one ends its waits: the item waiting out a " ..
       "Retry-After is not sent again, one the limit holds is not sent", function()
      local events = {}
      local wf = client{ log = function(e) events[#events + 1] = e end }
      assert(wf:token())
      -- the 429 comes at once, the other start's answer 0.1 s later: the third item, taken
      -- then, waits for the limit the Retry-After holds (or, later, meets the stop); a
      -- signal that comes sooner or later than meant ends the same way
      emu:set_limits({ service_time = 0.1 })
      finally(function() emu:set_limits({}) end)
      emu:fault{ fault = "status", status = 429, retry_after = 5, method = "POST",
                 path = "/v1/workflow-instances", times = 1 }
      local caught, ok, results, took = helpers.caught_while(function()
        assert(helpers.run("(sleep 0.15; kill -INT " .. our_pid() .. ") >/dev/null 2>&1 &"))
        local t0 = core.monotonic()
        local r = wf:start_many(items(3), { concurrency = 2 })
        return r, core.monotonic() - t0
      end)
      emu:clear_faults()
      assert(ok, results)
      assert.is_true(caught)
      assert.is_true(took < 2, "took " .. took .. " s: the Retry-After (5 s) was waited out")
      local refused, started, held = 0, 0, 0
      for i, r in ipairs(results) do
        if not sapwf.is_error(r) then
          started = started + 1
        elseif r.status == 429 then             -- its last answer, not sent again
          assert.is_true(r.interrupted, tostring(r))
          assert.is_nil(r.attempts)
          assert.equal("rejected", r.outcome)
          refused = refused + 1
        else                                    -- never sent
          assert.same({ "interrupted", "not_sent", true, false },
                      { r.kind, r.outcome, r.interrupted, r.retryable }, i .. ": " .. tostring(r))
          held = held + 1
        end
      end
      assert.same({ 1, 1, 1 }, { refused, started, held })
      -- the log heard of the wait for the limit, and that no retry followed it
      local names, cancelled = {}, nil
      for _, e in ipairs(events) do
        if e.event ~= "concurrency" then names[#names + 1] = e.event end
        if e.event == "retry_cancelled" then cancelled = e end
      end
      assert.same({ "rate_limited", "retry_cancelled" }, names)
      assert.same({ event = "retry_cancelled", reason = "interrupted",
                    waited_for = "rate_limited", method = "POST",
                    path = "/v1/workflow-instances" }, cancelled)
      assert.equal(2, starts_seen())
      assert.equal(1, stats().instances_started)
      wf:close()
    end)

    it("while core.catch_sigint catches signals, one also ends the wait of a request held " ..
       "only by the limit on requests in flight: it is not sent", function()
      local wf = client()
      assert(wf:token())
      -- a 429 without Retry-After halves the limit (4 to 2) while three starts are in
      -- flight for 0.6 s: the refused one waits for a slot, with no time of its own
      emu:set_limits({ service_time = 0.6 })
      finally(function() emu:set_limits({}) end)
      emu:fault{ fault = "status", status = 429, method = "POST",
                 path = "/v1/workflow-instances", times = 1 }
      local caught, ok, results, took = helpers.caught_while(function()
        assert(helpers.run("(sleep 0.3; kill -INT " .. our_pid() .. ") >/dev/null 2>&1 &"))
        local t0 = core.monotonic()
        local r = wf:start_many(items(4), { concurrency = 4 })
        return r, core.monotonic() - t0
      end)
      emu:clear_faults()
      assert(ok, results)
      assert.is_true(caught)
      local started, unsent = 0, 0
      for _, r in ipairs(results) do
        if not sapwf.is_error(r) then
          started = started + 1
        elseif r.interrupted then
          unsent = unsent + 1
        end
      end
      assert.same({ 3, 1 }, { started, unsent })
      assert.equal(4, starts_seen())             -- the 429's and the three; no retry
      assert.is_true(took < 1.5, "took " .. took .. " s")
      wf:close()
    end)

    it("raises for a bad item where it comes, after the items before it", function()
      local wf = client()
      local list, got = items(8), 0
      list[6] = { definitionId = 42 }
      local next_item = feed(list)
      local ok, err = pcall(function()
        wf:start_each(next_item, function() got = got + 1 end, { concurrency = 2 })
      end)
      assert.is_false(ok)
      assert.matches("^spec/50%-batch_spec%.lua:%d+: bad argument #1 to 'start_each' %(item 6"
        .. "%.definitionId: non%-empty string expected, got number%)$", err)
      assert.equal(5, got)
      assert.equal(5, stats().instances_started)
      wf:close()
    end)

    it("checks its arguments", function()
      local wf = client()
      helpers.assert_raises_here({
        { function() wf:start_each("x", print) end,
          "bad argument #1 to 'start_each' (function expected, got string)" },
        { function() wf:start_each(print) end,
          "bad argument #2 to 'start_each' (function expected, got nil)" },
        { function() wf:start_each(print, print, { on_progress = print }) end,
          "bad argument #3 to 'start_each' (unknown option 'on_progress' (concurrency, "
            .. "adaptive, rate_limit_wait))" },
        { function() wf:map_each(print, print, 1) end,
          "bad argument #3 to 'map_each' (function expected, got number)" },
        { function() wf:map_each(print, print, print, { concurrency = 0 }) end,
          "bad argument #4 to 'map_each' (concurrency: integer from 1 to 1024 expected)" },
      }, "50%-batch_spec")
      assert.equal(0, wf:start_each(function() return nil end, print))
      assert.equal(0, stats().token_requests)              -- no items: no token
      wf:close()
      assert.has_error(function() wf:start_each(print, print) end,
        "attempt to use a closed sapwf client")
    end)

    it("streams 20,000 starts in a heap that does not grow with the count #bulk", function()
      local wf = client()
      local n, total, failed = 0, 20000, 0
      local samples = {}
      collectgarbage()
      collectgarbage()
      local count = wf:start_each(function()
        if n >= total then return nil end
        n = n + 1
        return { definitionId = "simple", context = { n = n } }
      end, function(i, r)
        if sapwf.is_error(r) then failed = failed + 1 end
        if i % 2000 == 0 then
          collectgarbage()
          samples[#samples + 1] = collectgarbage("count")
        end
      end, { concurrency = 16 })
      assert.equal(total, count)
      assert.equal(0, failed)
      assert.equal(10, #samples)
      local first, most = samples[1], 0
      for k = 2, #samples do
        if samples[k] > most then most = samples[k] end
      end
      -- kept results would add several kilobytes a start; 2,000 starts add less than 1 MiB
      assert.is_true(most - first < 1024, ("heap from %.0f KiB to at most %.0f KiB")
        :format(first, most))
      assert.equal(total, stats().instances_started)
      wf:close()
    end)
  end)

  describe("wf:map_each", function()
    it("runs fn for each item and hands its result over as it finishes", function()
      local wf = client()
      local ids = {}
      for _, inst in ipairs(wf:start_many(items(10))) do ids[#ids + 1] = inst.id end
      ids[5] = "00000000-0000-0000-0000-000000000000"
      local k, got = 0, {}
      local n = wf:map_each(function()
        k = k + 1
        return ids[k]
      end, function(w, id) return w:context(id) end, function(i, ctx, id)
        got[i] = { ctx, id }
      end, { concurrency = 3 })
      assert.equal(10, n)
      for i = 1, 10 do
        assert.equal(ids[i], got[i][2])
        if i == 5 then assert.equal("not_found", got[i][1].kind)
        else assert.equal(i, got[i][1].n) end
      end
      wf:close()
    end)

    it("raises what fn raises once the others in flight have ended", function()
      local wf = client()
      local k, got = 0, 0
      assert.has_error(function()
        wf:map_each(function()
          k = k + 1
          if k <= 8 then return k end
        end, function(w, n)
          if n == 3 then error("item three broke", 0) end
          return w:start("simple", { n = n })
        end, function() got = got + 1 end, { concurrency = 4 })
      end, "item three broke")
      -- items 1, 2 and 4 were taken with 3 and ended; nothing was taken after the raise
      assert.equal(got, stats().instances_started)
      assert.is_true(k <= 5 and got == k - 1, "taken " .. k .. ", results " .. got)
      wf:close()
    end)
  end)

  describe("the adaptive limit", function()
    local function logger()
      local events = {}
      return events, function(e) e.at = core.monotonic(); events[#events + 1] = e end
    end

    local function changes(events)
      local list = {}
      for _, e in ipairs(events) do
        if e.event == "concurrency" then list[#list + 1] = e end
      end
      return list
    end

    it("backs off on 429, grows back while clean, and starts every item exactly once " ..
       "without using up retries", function()
      local events, log = logger()
      local wf = client{ retries = 0, backoff_base = 0.1, backoff_max = 0.4, log = log }
      assert(wf:token())
      emu:fault{ fault = "status", status = 429, method = "POST",
                 path = "/v1/workflow-instances", times = 24 }
      local results = wf:start_many(items(120), { concurrency = 8 })
      for i, r in ipairs(results) do assert.is_false(sapwf.is_error(r), i .. ": " .. tostring(r)) end
      assert.equal(120, stats().instances_started)
      assert.equal(144, starts_seen())           -- the 24 refused went again, once each
      local seen = {}
      for _, inst in ipairs(emu:instances()) do
        assert.is_nil(seen[inst.context.n], "started twice: " .. tostring(inst.context.n))
        seen[inst.context.n] = true
      end
      local list = changes(events)
      assert.equal("backoff", list[1].reason)
      assert.same({ 8, 4, 429 }, { list[1].previous, list[1].concurrency, list[1].status })
      local lowest, last = 8, list[#list]
      for _, e in ipairs(list) do
        if e.concurrency < lowest then lowest = e.concurrency end
        assert.is_true(e.concurrency >= 1 and e.concurrency <= 8)
      end
      assert.is_true(lowest < 8)
      assert.equal("growth", last.reason)
      assert.equal(8, last.concurrency)          -- back at the ceiling while clean
      local refused = 0
      for _, e in ipairs(events) do
        if e.event == "rate_limited" then
          refused = refused + 1
          -- the README's fields: the item's refusals in a row so far, and the wait
          assert.is_true(math.type == nil or math.type(e.refusals) == "integer")
          assert.is_true(e.refusals >= 1 and e.refusals <= 24, tostring(e.refusals))
          assert.is_true(type(e.delay) == "number" and e.delay >= 0 and e.delay <= 0.4,
                         tostring(e.delay))
          assert.same({ 429, "POST", "/v1/workflow-instances" }, { e.status, e.method, e.path })
        end
        assert.is_true(e.event ~= "retry", "a 429 used a retry")
      end
      assert.equal(24, refused)
      wf:close()
    end)

    -- #bulk: it grows back to the ceiling only 20 round trips after the backoff, which a
    -- client under valgrind does not reach within its 60 items (.ci/reliability.sh)
    it("does not grow on 500s, which say nothing of the service's room, and grows on 4xx #bulk",
       function()
      local events, log = logger()
      local wf = client{ retries = 0, backoff_base = 0.1, backoff_max = 0.2, log = log }
      assert(wf:token())
      -- the first round refused (the limit halves to 4), then 500s, then clean answers
      emu:fault{ fault = "status", status = 429, method = "POST",
                 path = "/v1/workflow-instances", times = 8 }
      emu:fault{ fault = "status", status = 500, method = "POST",
                 path = "/v1/workflow-instances", times = 16 }
      emu:fault{ fault = "status", status = 404, method = "POST",
                 path = "/v1/workflow-instances", times = 8 }
      local results = wf:start_many(items(60), { concurrency = 8 })
      local failed = { [500] = 0, [404] = 0 }
      for _, r in ipairs(results) do
        if sapwf.is_error(r) then failed[r.status] = failed[r.status] + 1 end
      end
      assert.same({ [500] = 16, [404] = 8 }, failed)   -- a start is never sent again on 500
      local list, grown = changes(events), {}
      assert.same({ "backoff", 8, 4 }, { list[1].reason, list[1].previous, list[1].concurrency })
      for _, e in ipairs(list) do
        if e.reason == "growth" then grown[e.status] = true end
      end
      assert.is_nil(grown[500], "the limit grew on a 500")
      -- 16 answers 500 at a limit of 4 were worth four steps of growth; it grew only on the
      -- 4xx and 201 answers after them, back to the ceiling
      assert.is_true(grown[404] or grown[201])
      assert.equal(8, list[#list].concurrency)
      wf:close()
    end)

    it("neither grows nor halves on 500, 502 and 504", function()
      local events, log = logger()
      local wf = client{ retries = 0, backoff_base = 0.1, backoff_max = 0.2, log = log }
      assert(wf:token())
      emu:fault{ fault = "status", status = 429, method = "POST",
                 path = "/v1/workflow-instances", times = 8 }
      for _, status in ipairs({ 500, 502, 504 }) do
        emu:fault{ fault = "status", status = status, method = "POST",
                   path = "/v1/workflow-instances", times = 6 }
      end
      local results = wf:start_many(items(60), { concurrency = 8 })
      local failed = 0
      for _, r in ipairs(results) do
        if sapwf.is_error(r) then failed = failed + 1 end
      end
      assert.equal(18, failed)
      for _, e in ipairs(changes(events)) do
        assert.is_true(e.status == 429 or e.status < 500,
          e.reason .. " on " .. tostring(e.status))
      end
      wf:close()
    end)

    it("with adaptive = false keeps its concurrency, and 429s use up the retries", function()
      local events, log = logger()
      local wf = client{ retries = 0, log = log }
      emu:fault{ fault = "status", status = 429, method = "POST",
                 path = "/v1/workflow-instances", times = 6 }
      local results = wf:start_many(items(30), { concurrency = 8, adaptive = false })
      local limited = 0
      for _, r in ipairs(results) do
        if sapwf.is_error(r) then
          limited = limited + 1
          assert.equal("rate_limited", r.kind)
          assert.equal("rejected", r.outcome)
        end
      end
      assert.equal(6, limited)
      assert.equal(24, stats().instances_started)
      assert.same({}, changes(events))
      wf:close()
    end)

    it("honours Retry-After: nothing more is sent until it has passed", function()
      local events, log = logger()
      local wf = client{ log = log }
      assert(wf:token())
      emu:fault{ fault = "status", status = 429, retry_after = 1, method = "POST",
                 path = "/v1/workflow-instances", times = 1 }
      local done_at = {}
      local results = wf:start_many(items(60), { concurrency = 4, on_progress = function()
        done_at[#done_at + 1] = core.monotonic()
      end })
      for _, r in ipairs(results) do assert.is_false(sapwf.is_error(r)) end
      local change = changes(events)[1]
      assert.equal(1, change.retry_after)
      assert.equal("backoff", change.reason)
      local t, during, after = change.at, 0, 0
      for _, at in ipairs(done_at) do
        if at > t and at < t + 0.9 then during = during + 1 end
        if at >= t + 0.9 then after = after + 1 end
      end
      -- only starts sent before the 429 came back end during the second it asked for
      assert.is_true(during <= 4, during .. " ended during the Retry-After")
      assert.is_true(after >= 40, after .. " ended after it")
      assert.equal(60, stats().instances_started)
      wf:close()
    end)

    it("holds the run for a Retry-After rate_limit_wait seconds at most", function()
      local events, log = logger()
      local wf = client{ log = log }
      assert(wf:token())
      -- (30 s, not an hour: a run the cap does not hold fails this spec in 30 s)
      emu:fault{ fault = "status", status = 503, retry_after = 30, method = "POST",
                 path = "/v1/workflow-instances", times = 1 }
      local t0 = core.monotonic()
      local results = wf:start_many(items(10), { concurrency = 2, rate_limit_wait = 0.5 })
      local took = core.monotonic() - t0
      assert.is_true(took < 3, "took " .. took .. " s")
      local unknown, started = 0, 0
      for _, r in ipairs(results) do
        if sapwf.is_error(r) then
          assert.equal("unknown", r.outcome)              -- the 503's start: not sent again
          unknown = unknown + 1
        else
          started = started + 1
        end
      end
      assert.same({ 1, 9 }, { unknown, started })
      assert.equal(30, changes(events)[1].retry_after)
      wf:close()
    end)

    it("gives up on an item after rate_limit_wait seconds of 429s: rejected, not started",
       function()
      local wf = client{ retries = 0, backoff_base = 0.1, backoff_max = 0.2 }
      emu:fault{ fault = "status", status = 429, method = "POST",
                 path = "/v1/workflow-instances", times = -1 }
      local got = {}
      wf:start_each(function()
        if #got == 0 and not got.taken then
          got.taken = true
          return { definitionId = "simple" }
        end
      end, function(_, r) got[#got + 1] = r end, { rate_limit_wait = 0.5 })
      assert.equal(1, #got)
      local err = got[1]
      assert.equal("rate_limited", err.kind)
      assert.equal("rejected", err.outcome)
      assert.is_true(err.attempts >= 2)
      assert.equal(0, stats().instances_started)
      emu:clear_faults()
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

    it("writes w:request's to_file and w:export's file, and sends w:request's accept, as " ..
       "the client's own calls do", function()
      local wf = client()
      local dir = helpers.temp_dir()
      local direct = assert(wf:request("GET", "/v1/workflow-definitions",
                                       { to_file = dir .. "/direct.json" }))
      local results = wf:map({ 1, 2 }, function(w, i)
        return w:request("GET", "/v1/workflow-definitions", { to_file = dir .. "/" .. i })
      end, { concurrency = 2 })
      local expected = helpers.read_file(dir .. "/direct.json")
      for i = 1, 2 do
        assert.equal(direct, results[i])
        assert.equal(expected, helpers.read_file(dir .. "/" .. i))
      end
      local exported = wf:map({ 1 }, function(w) return w:export(dir .. "/export.zip") end)
      assert.is_number(exported[1], tostring(exported[1]))
      assert.equal(exported[1], #helpers.read_file(dir .. "/export.zip"))
      local zipped = wf:map({ 1 }, function(w)
        return w:request("GET", "/v1/export", { accept = "application/zip" })
      end)
      assert.is_false(sapwf.is_error(zipped[1]), tostring(zipped[1]))
      assert.equal("PK", zipped[1]:sub(1, 2))
      wf:close()
      helpers.run("rm -rf '" .. dir .. "'")
    end)

    it("refuses w kept after its run, or called in a coroutine fn made: nothing goes nowhere",
       function()
      local wf = client()
      local kept
      assert.same({ true }, wf:map({ 1 }, function(w) kept = w; return true end))
      local before = stats().api_requests
      local ok, err = pcall(kept.start, kept, "simple")
      assert.is_false(ok)
      assert.matches("works only in fn's own calls while its run lasts", err, 1, true)
      ok, err = pcall(wf.map, wf, { 1 }, function(w)
        return coroutine.wrap(function() return w:start("simple") end)()
      end)
      assert.is_false(ok)
      assert.matches("works only in fn's own calls while its run lasts", tostring(err), 1, true)
      assert.equal(before, stats().api_requests)
      assert(wf:start("simple"))                      -- the client itself still works
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

    it("raises what the function raises with the results of the items that ended, and the " ..
       "client stays usable", function()
      local wf = client()
      local ok, err = pcall(wf.map, wf, { 1, 2, 3 }, function(w, n)
        if n == 2 then error("boom", 0) end
        return w:definition("simple")
      end)
      assert.is_false(ok)
      assert.equal("boom", err.cause)
      assert.equal("simple", err.results[1].id)            -- in flight: ran to its end
      assert.is_nil(err.results[2])
      assert.is_nil(err.results[3])                        -- never taken
      assert.equal("boom (the results of the 1 item that ended: see err.results)",
                   tostring(err))
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

    it("passes on_progress's raise on with every result, and leaves nothing running",
       function()
      local wf = client()
      local ok, err = pcall(wf.map, wf, { 1, 2, 3, 4 },
        function(w) return w:definition("simple") end,
        { concurrency = 2, on_progress = function(done)
          if done == 2 then error("stop", 0) end
        end })
      assert.is_false(ok)
      assert.equal("stop", err.cause)
      local n = 0
      for _, r in pairs(err.results) do
        assert.equal("simple", r.id)
        n = n + 1
      end
      assert.is_true(n >= 2 and n <= 3, n .. " results")   -- the 4th was never taken
      assert.is_nil(err.results[4])
      collectgarbage()
      assert.equal(4, #wf:map({ 1, 2, 3, 4 }, function(w) return w:definition("simple") end))
      wf:close()
    end)
  end)

  describe("a request's time (timeout)", function()
    -- The batch, not libcurl, ends a request that outlived `timeout` (src/batch.c, expire):
    -- libcurl would judge it before reading what came meanwhile.
    it("counts the program's own pauses against no start: answers that came while a slow " ..
       "next_item ran are handed over", function()
      local wf = client{ timeout = 1 }
      local n, results = 0, {}
      local count = wf:start_each(function()
        n = n + 1
        if n == 5 then core.sleep(1.5) end       -- 1 to 4 answered long before it returns
        if n <= 8 then return { definitionId = "simple", context = { n = n } } end
      end, function(i, r) results[i] = r end, { concurrency = 4 })
      wf:close()
      assert.equal(8, count)
      for i = 1, 8 do
        assert.is_false(sapwf.is_error(results[i]), i .. ": " .. tostring(results[i]))
        assert.is_string(results[i].id)
      end
      assert.equal(8, starts_seen())
    end)

    it("starts when the request can go out: a slow next_item right after a start was " ..
       "handed to the batch fails nothing", function()
      local wf = client{ timeout = 1, retries = 0 }
      local n, results = 0, {}
      wf:start_each(function()
        n = n + 1
        if n == 2 then core.sleep(1.5) end         -- start 1 is in the batch, not yet sent
        if n <= 3 then return { definitionId = "simple", context = { n = n } } end
      end, function(i, r) results[i] = r end, { concurrency = 4 })
      wf:close()
      for i = 1, 3 do
        assert.is_false(sapwf.is_error(results[i]), i .. ": " .. tostring(results[i]))
      end
      assert.equal(3, starts_seen())
    end)

    it("still ends a start the service does not answer within it: outcome unknown, on time",
       function()
      emu:fault{ fault = "delay", delay = 3, method = "POST", path = "/v1/workflow-instances",
                 times = -1 }
      local wf = client{ timeout = 0.5, retries = 0 }
      local t0 = core.monotonic()
      local results = wf:start_many(items(3), { concurrency = 3 })
      local elapsed = core.monotonic() - t0
      wf:close()
      emu:clear_faults()
      for i = 1, 3 do
        local err = results[i]
        assert.is_true(sapwf.is_error(err), i .. ": not an error")
        assert.equal("timeout", err.kind)
        assert.equal("unknown", err.outcome)
        assert.matches("Operation timed out after %d+ milliseconds with 0 bytes received",
                       tostring(err))
      end
      -- at its deadline, not at the delay's end nor a poll's second later
      assert.is_true(elapsed >= 0.5 and elapsed < 1.3, "took " .. elapsed)
      assert.equal(3, starts_seen())
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

    it("once the client is closed, wait hands over every request it was given, then raises "
       .. "the closed error instead of returning nothing", function()
      local wf = client()
      local c = wf._core
      local b = c:batch(3)
      for k = 1, 3 do b:submit(k, "GET", "/v1/workflow-definitions") end
      local first = { b:wait() }                -- one answered before the close ...
      c:close()
      local got = { [first[1]] = first[2] }
      for _ = 1, 2 do                           -- ... the others in flight at the close
        local slot, status = b:wait()
        assert.is_nil(got[slot], "slot " .. tostring(slot) .. " twice")
        got[slot] = status
      end
      assert.same({ 200, 200, 200 }, got)
      assert.has_error(function() b:wait() end, "attempt to use a closed sapwf client")
      local t0 = core.monotonic()               -- with a timeout too: no sleep first
      assert.has_error(function() b:wait(0.5) end, "attempt to use a closed sapwf client")
      assert.is_true(core.monotonic() - t0 < 0.25)
      b:close()
      wf:close()
    end)
  end)

  describe("connections", function()
    -- Collects until no earlier test's object is left to finalize: any client alive keeps
    -- the process's shared connections open, and one finalized in the middle of a case
    -- closes them there. On LuaJIT a chain (a batch that holds a client that holds the
    -- share) takes a cycle per link; a count that holds still between two cycles proves
    -- nothing (a batch's finalizer closes no connection, its client's does a cycle later),
    -- so it collects a fixed number of times, more than any chain here is long. Also on
    -- LuaJIT, a compiled trace keeps what it specialized on alive until the trace goes (an
    -- immutable upvalue, such as an earlier case's client, is a constant in its code): the
    -- traces are flushed first, or that client keeps the shared connections open until
    -- some later flush, in the middle of another case.
    local function collect()
      if jit then jit.flush() end
      collectgarbage("collect")
    end
    local function settle()
      for _ = 1, 8 do collect() end
      return connections_to(port)
    end

    it("are shared by the clients of a process, and closed with the last of them", function()
      settle()
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
      -- b's token one and the shared one (once no earlier test's client is left to
      -- finalize: any client alive keeps the shared ones open)
      local after = connections_to(port)
      for _ = 1, 8 do
        if after == before - 3 then break end
        collect()
        after = connections_to(port)
      end
      assert.equal(before - 3, after)
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
      local base = settle()
      local wf = client()
      for _ = 1, 5 do assert(wf:start("simple")) end
      assert.equal(base + 2, connections_to(port))   -- token + API
      -- slow starts, so that all 6 slots are in flight at once (a server that answers faster
      -- than requests are handed over gets fewer connections: libcurl reuses idle ones first)
      emu:fault{ fault = "delay", delay = 0.05, method = "POST",
                 path = "/v1/workflow-instances", times = -1 }
      wf:start_many(items(24), { concurrency = 6 })
      -- one connection per slot, reusing the idle ones the loop left (its API connection,
      -- maybe the token's: same host here) where libcurl finds them idle at the moment,
      -- which a busy machine changes; all still open after the batch
      local after = connections_to(port)
      assert.is_true(after >= base + 6 and after <= base + 2 + 6, "connections: " .. after
        .. " with " .. base .. " before")
      wf:start_many(items(24), { concurrency = 6 })
      assert.equal(after, connections_to(port))   -- the same ones again
      emu:clear_faults()
      wf:close()
      assert.equal(base, connections_to(port))
    end)
  end)
end)
