-- each_instance / each_task past the API's 5000 window ($skip <= 4000, $top <= 1000): windows
-- of startedAt / createdAt over 20,000+ instances seeded with many equal times, a tie group
-- larger than a page and one as large as a whole window.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

-- 2024-02-29T23:59:50.000Z plus ms milliseconds (under 10 minutes): a leap day's last
-- seconds, so the millisecond after the big tie group carries into March.
local function time_at(ms)
  local total = 50000 + ms                       -- milliseconds after 23:59:00.000
  if total < 60000 then
    return string.format("2024-02-29T23:59:%02d.%03dZ", math.floor(total / 1000), total % 1000)
  end
  total = total - 60000
  return string.format("2024-03-01T00:%02d:%02d.%03dZ", math.floor(total / 60000),
                       math.floor(total / 1000) % 60, total % 1000)
end

local BIG_TIE = "2024-02-29T23:59:59.999Z"       -- 5000 simple instances share it

-- The startedAt of the i-th of the 20,000 simple instances: 3 per millisecond, then 1500 at
-- one time (more than a page), 5000 at BIG_TIE (a whole window), then 2 per millisecond from
-- the very next millisecond.
local function simple_time(i)
  if i <= 6000 then return time_at(math.floor((i - 1) / 3)) end
  if i <= 7500 then return time_at(5000) end
  if i <= 12500 then return BIG_TIE end
  return time_at(10000 + math.floor((i - 12501) / 2))
end

-- The 6000 orderapproval instances (a task each): 10 per millisecond among the simple ones,
-- then 1200 at one time.
local function order_time(i)
  if i <= 4800 then return time_at(math.floor((i - 1) / 10)) end
  return time_at(3000)
end

describe("paging past the window", function()
  local emu, wf
  local SIMPLE, ORDERS = 20000, 6000
  local simple_ids, simple_at = {}, {}   -- ids in seeding order; id -> startedAt
  local order_ids = {}

  local function list_op_count(path)
    return emu:stats().api_requests_by_operation["GET " .. path] or 0
  end

  setup(function()
    emu = helpers.start_emulator{ max_instances = 0 }
    wf = assert(sapwf.new{ service_key = emu:service_key("full") })
    local seeded = emu:seed_instances{ count = SIMPLE, definition = "simple",
                                       started_at = simple_time }
    for i, id in ipairs(seeded.ids) do
      simple_ids[i] = id
      simple_at[id] = simple_time(i)
    end
    order_ids = emu:seed_instances{ count = ORDERS, definition = "orderapproval",
                                    started_at = order_time,
                                    context = { product = "Tea", orderId = "9" } }.ids
    -- Not listed without a status filter: a window's startedFrom must not bring them in.
    emu:seed_instances{ count = 300, definition = "failing", status = "COMPLETED",
                        started_at = time_at(4000) }
  end)
  teardown(function()
    if wf then wf:close() end
    if emu then emu:stop() end
  end)
  after_each(function() emu:clear_faults() end)

  -- No id twice in got (a list), and each one of allowed (a list of ids, or a list of such
  -- lists). Returns the ids seen (a set).
  local function once_among(allowed, got)
    local want = {}
    for _, entry in ipairs(allowed) do
      if type(entry) == "table" then
        for _, id in ipairs(entry) do want[id] = true end
      else
        want[entry] = true
      end
    end
    local seen = {}
    for i, id in ipairs(got) do
      assert.is_nil(seen[id], "yielded twice: " .. id .. " at " .. i)
      assert.is_true(want[id], "not expected: " .. id)
      seen[id] = true
    end
    return seen
  end

  -- Every id of expected exactly once in got (a list), and nothing else.
  local function exactly_once(expected, got)
    assert.equal(#expected, #got, "how many")
    once_among(expected, got)
  end

  it("each_instance yields all 20,000 once, oldest first, ties of a page and a window",
     function()
    local before = list_op_count("/v1/workflow-instances")
    local got, last = {}, ""
    for inst in wf:each_instance{ definitionId = "simple" } do
      assert.is_true(inst.startedAt >= last, "not oldest first")
      last = inst.startedAt
      got[#got + 1] = inst.id
    end
    exactly_once(simple_ids, got)
    -- 20 pages of matches, the default-order first page, a few pages again for the ties at
    -- each window's start and one count of the 5000 that share BIG_TIE
    local requests = list_op_count("/v1/workflow-instances") - before
    assert.is_true(requests >= 22 and requests <= 30, requests .. " requests")
  end)

  it("with top 100 a tie is read in pages of 1000: the 5000 tie too, each match once",
     function()
    local before = list_op_count("/v1/workflow-instances")
    local got = {}
    for inst in wf:each_instance{ definitionId = "simple", top = 100 } do
      got[#got + 1] = inst.id
    end
    exactly_once(simple_ids, got)
    -- pages of 100 but for the two ties (1500, 5000), read in pages of 1000
    local requests = list_op_count("/v1/workflow-instances") - before
    assert.is_true(requests < 20000 / 100 + 20, requests .. " requests")
  end)

  it("a tie read over pages after the query's own skip: the matches skipped are not missed",
     function()
    local tie = time_at(5000)                          -- the 1500 simple instances at one time
    local got = {}
    for inst in wf:each_instance{ definitionId = "simple", startedFrom = tie, startedUpTo = tie,
                                  orderby = "startedAt asc", skip = 5 } do
      got[#got + 1] = inst.id
    end
    local tied = {}
    for i = 6001, 7500 do tied[#tied + 1] = simple_ids[i] end
    assert.equal(1495, #got)
    once_among(tied, got)
  end)

  it("more than 5000 at one millisecond: raises there, after the earlier ones and 5000 of "
     .. "them", function()
    local tie = time_at(7000)
    local ids = emu:seed_instances{ count = 5001, definition = "failing",
                                    status = "SUSPENDED", started_at = tie }.ids
    local early = emu:seed_instances{ count = 3, definition = "failing", status = "SUSPENDED",
                                      started_at = time_at(6999) }.ids
    for _, top in ipairs({ 1000, 100 }) do
      local got = {}
      local ok, err = pcall(function()
        for inst in wf:each_instance{ definitionId = "failing", status = "SUSPENDED",
                                      top = top } do
          got[#got + 1] = inst.id
        end
      end)
      assert.is_false(ok, top)
      assert.is_true(sapwf.is_error(err), tostring(err))
      assert.same({ "invalid", "sapwf.paging.limit", 5001, 5000, tie },
                  { err.kind, err.code, err.total, err.limit, err.startedAt })
      assert.matches("5001 matches share startedAt " .. tie:gsub("%-", "%%-")
                     .. ", but the API can page through only 5000", err.message)
      assert.not_matches("startedFrom", err.message)   -- a time filter cannot help here
      -- the three before the tie, and the 5000 of it one query reaches, once each
      assert.equal(3 + 5000, #got, top)
      local seen = once_among({ ids, early }, got)
      for _, id in ipairs(early) do assert.is_true(seen[id]) end
    end
  end)

  -- SAP names no order among equal times: the emulator can give them in a new random order
  -- for every request, and the iterator must not skip or repeat one then.
  describe("with ties in a new order for every request", function()
    before_each(function() emu:set_tie_order("shuffled") end)
    after_each(function() emu:set_tie_order("creation") end)

    it("a tie of up to 1000 comes whole in one answer: each match once, whatever top",
       function()
      local ids = {}
      local function seed(count, at)
        for _, id in ipairs(emu:seed_instances{ count = count, definition = "failing",
                                                status = "CANCELED", started_at = at }.ids) do
          ids[#ids + 1] = id
        end
      end
      seed(900, time_at(20000))
      for ms = 1, 100 do seed(3, time_at(20000 + ms)) end
      seed(1000, time_at(20200))
      seed(2, time_at(20201))
      for _, top in ipairs({ 10, 1000 }) do
        local got = {}
        for inst in wf:each_instance{ definitionId = "failing", status = "CANCELED",
                                      top = top } do
          got[#got + 1] = inst.id
        end
        exactly_once(ids, got)
      end
    end)

    it("a larger tie: the matches that did not come raise sapwf.paging.ties, not skipped "
       .. "unseen", function()
      local ids = emu:seed_instances{ count = 1200, definition = "failing",
                                      status = "SUSPENDED", started_at = time_at(30000) }.ids
      local got = {}
      local ok, err = pcall(function()
        for inst in wf:each_instance{ definitionId = "failing", status = "SUSPENDED",
                                      startedFrom = time_at(30000) } do
          got[#got + 1] = inst.id
        end
      end)
      -- (a new random order for each page: that all 1200 come is as likely as drawing the
      -- same 200 of 1200 twice)
      assert.is_false(ok, #got .. " yielded")
      assert.is_true(sapwf.is_error(err), tostring(err))
      assert.same({ "invalid", "sapwf.paging.ties", 1200, time_at(30000) },
                  { err.kind, err.code, err.total, err.startedAt })
      assert.equal(#got, err.yielded)
      assert.is_true(#got < 1200)
      assert.matches("1200 matches share startedAt " .. time_at(30000):gsub("%-", "%%-")
        .. ", more than one page of 1000 holds, and " .. #got .. " of them came: the "
        .. "service's order among them changed between pages", err.message)
      local seen = {}
      for _, id in ipairs(ids) do seen[id] = false end
      for _, id in ipairs(got) do
        assert.is_false(seen[id])                     -- one of them, and not yet yielded
        seen[id] = true
      end
    end)
  end)

  it("combines the user's definitionId, startedFrom and startedUpTo with the windows",
     function()
    local from, upto = time_at(100), time_at(9000)    -- short of the 5000 tie: top 700
    local expected = {}
    for _, id in ipairs(simple_ids) do
      if simple_at[id] >= from and simple_at[id] <= upto then expected[#expected + 1] = id end
    end
    assert.is_true(#expected > 5000)
    local got = {}
    for inst in wf:each_instance{ definitionId = "simple", startedFrom = from,
                                  startedUpTo = upto, top = 700 } do
      got[#got + 1] = inst.id
    end
    exactly_once(expected, got)

    -- the other spelling of dates, and an explicit orderby = "startedAt asc"
    local from2 = "20240229235955.000"
    local expected2 = {}
    for _, id in ipairs(simple_ids) do
      if simple_at[id] >= time_at(5000) then expected2[#expected2 + 1] = id end
    end
    local got2 = {}
    for inst in wf:each_instance{ definitionId = "simple", startedFrom = from2,
                                  orderby = "startedAt asc" } do
      got2[#got2 + 1] = inst.id
    end
    exactly_once(expected2, got2)
  end)

  it("a whole window at the user's startedUpTo ends the loop: no range past it is asked",
     function()
    local iterator = wf:each_instance{ definitionId = "simple", startedUpTo = BIG_TIE }
    local got = {}
    for _ = 1, 12500 do got[#got + 1] = assert(iterator()).id end
    -- every match is in hand; a query from the millisecond after BIG_TIE would fail here.
    -- (The window at BIG_TIE ends by its total: a millisecond jump needs a later match in
    -- the query, so it never passes the user's own UpTo.)
    emu:fault{ fault = "status", status = 503, method = "GET",
               path = "/v1/workflow-instances", times = -1 }
    assert.is_nil(iterator())
    assert.is_nil(iterator())
    local expected = {}
    for i = 1, 12500 do expected[i] = simple_ids[i] end
    exactly_once(expected, got)
  end)

  it("without any filter lists RUNNING and ERRONEOUS only, in every window", function()
    local _, meta = assert(wf:instances{ top = 0, inlinecount = true })
    assert.is_true(meta.total >= SIMPLE + ORDERS)
    local n, seen = 0, {}
    for inst in wf:each_instance() do
      assert.is_nil(seen[inst.id])
      seen[inst.id] = true
      assert.is_true(inst.status == "RUNNING" or inst.status == "ERRONEOUS", inst.status)
      n = n + 1
    end
    assert.equal(meta.total, n)
  end)

  it("without any filter the first page says RUNNING and ERRONEOUS too", function()
    -- SAP's default holds "if no parameters are specified": whether $top and the like
    -- count, no source says, so the first page names the statuses as the later ones do.
    -- A page whose query names them answers [] here: the loop then yields nothing.
    emu:fault{ fault = "body", method = "GET", path = "/v1/workflow-instances",
               query = "status=RUNNING&status=ERRONEOUS", body = "[]" }
    local before = emu:stats().faults_applied
    local iterator = wf:each_instance()
    assert.is_nil(iterator())
    assert.equal(before + 1, emu:stats().faults_applied)
  end)

  it("an empty filter value raises before any request: the service would take it for none",
     function()
    local before = emu:stats().api_requests
    for _, q in ipairs({ { businessKey = "" }, { status = { "RUNNING", "" } } }) do
      local ok, err = pcall(wf.each_instance, wf, q)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'each_instance' (query '", tostring(err), 1, true)
      assert.matches("empty (the service would take it for no filter", tostring(err), 1, true)
    end
    assert.equal(before, emu:stats().api_requests)
  end)

  it("the iterator called again after a failed page goes on where it was", function()
    -- past the 5000 at BIG_TIE, whose count is asked before the next page: the count goes
    -- through (a short delay), the page fails; the next call asks for that page again
    local iterator = wf:each_instance{ definitionId = "simple" }
    local got, at_tie = {}, 0
    while at_tie < 5000 do
      local inst = assert(iterator())
      got[#got + 1] = inst.id
      if simple_at[inst.id] == BIG_TIE then at_tie = at_tie + 1 end
    end
    emu:fault{ fault = "delay", delay = 0.01, method = "GET", path = "/v1/workflow-instances" }
    emu:fault{ fault = "status", status = 503, method = "GET", path = "/v1/workflow-instances",
               times = -1 }
    local ok, err = pcall(iterator)
    assert.is_false(ok)
    assert.equal(503, err.status)
    emu:clear_faults()
    for inst in iterator do got[#got + 1] = inst.id end
    exactly_once(simple_ids, got)
  end)

  it("instances started during the loop: no original twice or missed, none yielded twice",
     function()
    local got, started, seen = {}, {}, {}
    local originals = 0
    for inst in wf:each_instance{ definitionId = "simple", top = 1000 } do
      assert.is_nil(seen[inst.id], "yielded twice")
      seen[inst.id] = true
      if simple_at[inst.id] then
        originals = originals + 1
        got[#got + 1] = inst.id
        if originals % 1500 == 0 then
          started[#started + 1] = assert(wf:start("simple", { n = originals })).id
        end
      end
    end
    exactly_once(simple_ids, got)
    assert.equal(13, #started)
    -- They started after every seeded time, so they come at the end, those started before
    -- the last window began at least; none of them twice (checked above).
    assert.is_true(seen[started[1]])
    assert.is_true(wf:delete_instances(started))
  end)

  it("each_task goes past the window in createdAt windows, ties of 1200 included", function()
    local by_instance = {}
    for _, id in ipairs(order_ids) do by_instance[id] = true end
    local n, seen, last = 0, {}, ""
    for task in wf:each_task{ workflowDefinitionId = "orderapproval", top = 500 } do
      assert.is_nil(seen[task.id], "yielded twice")
      assert.is_true(task.createdAt >= last)
      last = task.createdAt
      seen[task.id] = true
      if by_instance[task.workflowInstanceId] then
        by_instance[task.workflowInstanceId] = nil
        n = n + 1
      end
    end
    assert.equal(ORDERS, n)
    assert.is_nil(next(by_instance))
  end)

  it("an orderby that prevents windows raises the clear error before yielding", function()
    local before = list_op_count("/v1/workflow-instances")
    local ok, err = pcall(wf.each_instance, wf, { definitionId = "simple",
                                                  orderby = "startedAt desc" })
    assert.is_false(ok)
    assert.equal("sapwf.paging.limit", err.code)
    assert.equal(SIMPLE, err.total)
    assert.equal(5000, err.limit)
    assert.matches("order by startedAt asc %(or leave orderby out%) to page past it", err.message)
    assert.matches("sapwf instances %-%-started%-from/%-%-started%-up%-to", err.message)
    assert.equal(1, list_op_count("/v1/workflow-instances") - before)

    local ok2, err2 = pcall(wf.each_instance, wf, { definitionId = "simple", skip = 10 })
    assert.is_false(ok2)
    assert.matches("or leave skip out", err2.message)
    local ok3, err3 = pcall(wf.each_instance, wf, { startedAt = BIG_TIE, top = 999 })
    assert.is_false(ok3)
    assert.matches("fewer startedAt values", err3.message)
    local ok4, err4 = pcall(wf.each_task, wf, { orderby = "createdAt desc" })
    assert.is_false(ok4)
    assert.equal("sapwf.paging.limit", err4.code)
    assert.matches("order by createdAt asc .* sapwf tasks %-%-created%-from", err4.message)
  end)

  it("a failure of a page in a later window raises its error object", function()
    local iterator = wf:each_instance{ definitionId = "simple" }
    for _ = 1, 6000 do assert.is_table(iterator()) end     -- into the second window
    emu:fault{ fault = "status", status = 503, method = "GET",
               path = "/v1/workflow-instances", times = -1 }
    local ok, err, more = true, nil, 0
    while ok and more <= 1000 do               -- the rest of the page at hand, then a fetch
      ok, err = pcall(iterator)
      more = more + 1
    end
    assert.is_false(ok)
    assert.is_true(sapwf.is_error(err))
    assert.equal("server", err.kind)
    assert.equal(503, err.status)
  end)

  it("the emulator's seed control is listed and checks its input", function()
    local index = assert(emu:control("GET", "/"))
    local listed = false
    for _, op in ipairs(index.operations) do
      if op.method == "POST" and op.path == "/_emulator/instances/seed" then listed = true end
    end
    assert.is_true(listed)
    local _, err = emu:control("POST", "/instances/seed", { count = 0 })
    assert.matches("400 count must be", err)
    _, err = emu:control("POST", "/instances/seed", { count = 2, started_at = { "x", "y" } })
    assert.matches("400 started_at%[1%]: not a date%-time", err)
    _, err = emu:control("POST", "/instances/seed", { count = 1, started_at = "2999-01-01T00:00:00.000Z" })
    assert.matches("in the future", err)
    assert.has_error(function() emu:seed_instances{ count = 1, when = "now" } end,
      "bad option 'when' to 'seed_instances' (count, definition, started_at, status, context)")
  end)
end)
