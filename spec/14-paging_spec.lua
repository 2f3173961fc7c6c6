-- Totals and the each_instance / each_task iterators over thousands of matches, up to and past
-- the API's paging limits ($top <= 1000, $skip <= 4000).
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

describe("paging", function()
  local emu, wf
  local SIMPLE, ORDERS = 4100, 1100
  local all_simple          -- ids of the simple instances, newest first (the API's order)
  local most_at_once = 0    -- the most of them that share one startedAt

  local function list_op_count()
    return emu:stats().api_requests_by_operation["GET /v1/workflow-instances"] or 0
  end

  setup(function()
    emu = helpers.start_emulator()
    wf = assert(sapwf.new{ service_key = emu:service_key("full") })
    for i = 1, SIMPLE do assert(wf:start("simple", { n = i })) end
    for i = 1, ORDERS do
      assert(wf:start("orderapproval", { product = "P" .. i, orderId = tostring(i) }))
    end
    -- The reference order, read page by page with the plain list call.
    all_simple = {}
    local at_once = {}
    for skip = 0, 4000, 1000 do
      local page = assert(wf:instances{ definitionId = "simple", top = 1000, skip = skip })
      for _, inst in ipairs(page) do all_simple[#all_simple + 1] = inst.id end
      for _, inst in ipairs(page) do
        at_once[inst.startedAt] = (at_once[inst.startedAt] or 0) + 1
        most_at_once = math.max(most_at_once, at_once[inst.startedAt])
      end
    end
  end)
  teardown(function()
    if wf then wf:close() end
    if emu then emu:stop() end
  end)
  after_each(function() emu:clear_faults() end)

  -- Compares long lists without printing thousands of ids on a failure.
  local function same_list(expected, got)
    assert.equal(#expected, #got, "length")
    for i = 1, #expected do
      if expected[i] ~= got[i] then
        assert.equal(expected[i], got[i], "first difference at " .. i)
      end
    end
  end

  it("set up what the tests below count on", function()
    assert.equal(SIMPLE, #all_simple)
    local seen = {}
    for _, id in ipairs(all_simple) do seen[id] = true end
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equal(SIMPLE, n)
  end)

  it("gives meta.total as an integer when inlinecount is asked", function()
    local list, meta = assert(wf:instances{ definitionId = "simple", top = 1,
                                            inlinecount = true })
    assert.equal(1, #list)
    assert.equal(SIMPLE, meta.total)
    if math.type then assert.equal("integer", math.type(meta.total)) end
    local _, tmeta = assert(wf:tasks{ top = 0, inlinecount = "allpages" })
    assert.equal(ORDERS, tmeta.total)
  end)

  -- all_simple oldest first: each_* without orderby goes by startedAt ascending
  local function oldest_first()
    local list = {}
    for i = #all_simple, 1, -1 do list[#list + 1] = all_simple[i] end
    return list
  end

  it("each_instance yields every match once, oldest first, a page per 1000", function()
    local before = list_op_count()
    local got = {}
    for inst in wf:each_instance{ definitionId = "simple" } do
      assert.equal("simple", inst.definitionId)
      got[#got + 1] = inst.id
    end
    same_list(oldest_first(), got)
    -- each page after the first is the query from the last startedAt seen, which comes
    -- again and is dropped: 4100 matches in 5 pages of 1000
    assert.equal(5, list_op_count() - before)
  end)

  it("instances started during the loop push no page: none twice, no original missed",
     function()
    local got, seen, started = {}, {}, nil
    for inst in wf:each_instance{ definitionId = "simple" } do
      assert.is_nil(seen[inst.id], "yielded twice: " .. inst.id)
      seen[inst.id] = true
      if inst.id ~= started then got[#got + 1] = inst.id end
      -- one more at the newest end: with pages by position, in the API's order (newest
      -- first), it would shift the next page and one of this page would come again
      if #got == 1000 then started = assert(wf:start("simple", { n = 0 })).id end
    end
    same_list(oldest_first(), got)
    assert.is_true(seen[started])                      -- it came, at the end
    assert.is_true(wf:delete_instances({ started }))
  end)

  it("matches that leave the set during the loop push none out", function()
    -- each RUNNING order suspended as it comes: with pages by position the second page
    -- would start 1000 matches too far
    local n, seen = 0, {}
    for inst in wf:each_instance{ definitionId = "orderapproval", status = "RUNNING",
                                  top = 500 } do
      assert.is_nil(seen[inst.id], "yielded twice")
      seen[inst.id] = true
      n = n + 1
      assert(wf:suspend(inst.id))
    end
    assert.equal(ORDERS, n)
    for id in pairs(seen) do assert(wf:resume(id)) end
  end)

  it("a page that is not a list of objects with ids raises a decode error", function()
    -- not an array at all: base.call refuses it for every list call; an array of what is
    -- not an instance: the pager
    local NOT_AN_ARRAY = "answer is [^;]* where an array was expected"
    local NOT_INSTANCES = "answer to a page of instances is not a list of them"
    for _, case in ipairs({ { "{}", NOT_AN_ARRAY }, { "null", NOT_AN_ARRAY },
                            { "[1,2,3]", NOT_INSTANCES }, { '{"value":[]}', NOT_AN_ARRAY },
                            { '[{"name":"x"}]', NOT_INSTANCES } }) do
      local body = case[1]
      local iterator = wf:each_instance{ definitionId = "simple" }
      for _ = 1, 1000 do assert.is_table(iterator()) end
      emu:fault{ fault = "body", status = 200, body = body, method = "GET",
                 path = "/v1/workflow-instances", times = 1 }
      local ok, err = pcall(iterator)
      assert.is_false(ok, body)
      assert.is_true(sapwf.is_error(err), body)
      assert.equal("decode", err.kind)
      assert.matches(case[2], err.message)
      -- the failed page is asked for again by the next call
      local rest = 0
      for _ in iterator do rest = rest + 1 end
      assert.equal(SIMPLE - 1000, rest, body)
    end
  end)

  it("reaches the matches past $skip 4000 from a skip (last page asked at 4000)", function()
    local got = {}
    for inst in wf:each_instance{ definitionId = "simple", skip = 50 } do
      got[#got + 1] = inst.id
    end
    assert.equal(SIMPLE - 50, #got)
    same_list({ (table.unpack or unpack)(all_simple, 51) }, got)
  end)

  it("uses top as the page size", function()
    local before = list_op_count()
    local n = 0
    for _ in wf:each_instance{ definitionId = "simple", top = 900, status = "RUNNING" } do
      n = n + 1
    end
    assert.equal(SIMPLE, n)
    assert.equal(5, list_op_count() - before)          -- 4 x 900 + 500
  end)

  it("past the window without orderby: every match once, oldest first, in startedAt windows",
     function()
    local before = list_op_count()
    local got = {}
    -- pages of 80: the window (4000 + 80) ends before the 4100th match
    for inst in wf:each_instance{ definitionId = "simple", top = 80 } do
      got[#got + 1] = inst.id
    end
    same_list(oldest_first(), got)
    -- pages of 80 from the last startedAt seen: each brings back at most the matches of
    -- that one time, so at least 80 - most_at_once new ones (and one more, empty, at the
    -- end). The setup's loop starts up to 30 a millisecond on a fast machine.
    local pages = list_op_count() - before
    assert.is_true(most_at_once < 40, "the setup started too fast: " .. most_at_once)
    assert.is_true(pages >= 4100 / 80, pages)
    assert.is_true(pages <= 2 + math.ceil(4020 / (80 - most_at_once)), pages)
  end)

  it("raises sapwf.paging.limit before yielding when matches are out of reach", function()
    local before = list_op_count()
    local ok, err = pcall(wf.each_instance, wf, { definitionId = "simple", top = 50,
                                                  orderby = "startedAt desc" })
    assert.is_false(ok)
    assert.is_true(sapwf.is_error(err))
    assert.equal("invalid", err.kind)
    assert.equal("sapwf.paging.limit", err.code)
    assert.equal(SIMPLE, err.total)
    assert.equal(4050, err.limit)
    assert.matches("^sapwf: invalid GET /v1/workflow%-instances: 4100 matches from skip 0, "
                   .. "but the API can page through only 4050 of them", tostring(err))
    assert.matches("narrow the filter %(e%.g%. startedFrom/startedUpTo", err.message)
    assert.matches("order by startedAt asc %(or leave orderby out%)", err.message)
    assert.equal(1, list_op_count() - before)          -- only the first page was asked

    local ok2, err2 = pcall(wf.each_instance, wf, { definitionId = "simple", skip = 200,
                                                     top = 1000 })
    assert.is_true(ok2, tostring(err2))                -- 3900 from 200: within 4800
    local ok3, err3 = pcall(wf.each_instance, wf, { skip = 200, top = 100 })
    assert.is_false(ok3)
    assert.equal(3900, err3.limit)
  end)

  it("each_task yields every task", function()
    local n, seen = 0, {}
    for task in wf:each_task{ status = "READY" } do
      n = n + 1
      seen[task.id] = true
    end
    assert.equal(ORDERS, n)
    local unique = 0
    for _ in pairs(seen) do unique = unique + 1 end
    assert.equal(ORDERS, unique)
  end)

  it("raises the error object when a later page fails", function()
    local iterator = wf:each_task{ top = 500 }
    local n = 0
    for _ = 1, 500 do
      assert.is_table(iterator())
      n = n + 1
    end
    -- times = -1: every retry sapwf makes by itself meets the fault too (after_each clears it)
    emu:fault{ fault = "status", status = 503, method = "GET", path = "/v1/task-instances",
               times = -1 }
    local ok, err = pcall(iterator)
    assert.is_false(ok)
    assert.is_true(sapwf.is_error(err))
    assert.equal("server", err.kind)
    assert.equal(503, err.status)
    assert.is_true(err.retryable)
    assert.equal(500, n)
  end)

  it("raises when the client was closed between pages", function()
    local other = assert(sapwf.new{ service_key = emu:service_key("full") })
    local iterator = other:each_task{ top = 1000 }
    for _ = 1, 1000 do assert(iterator()) end
    other:close()
    assert.has_error(iterator, "attempt to use a closed sapwf client")
  end)

  it("raises for bad page options and unknown names", function()
    assert.has_error(function() wf:each_instance{ top = 0 } end,
      "bad argument #1 to 'each_instance' (top must be an integer from 1 to 1000)")
    assert.has_error(function() wf:each_instance{ top = 1001 } end,
      "bad argument #1 to 'each_instance' (top must be an integer from 1 to 1000)")
    assert.has_error(function() wf:each_task{ ["$skip"] = 4001 } end,
      "bad argument #1 to 'each_task' (skip must be an integer from 0 to 4000)")
    assert.has_error(function() wf:each_task{ skip = 1.5 } end,
      "bad argument #1 to 'each_task' (skip must be an integer from 0 to 4000)")
    assert.has_error(function() wf:each_task("READY") end,
      "bad argument #1 to 'each_task' (table expected, got string)")
    -- both spellings, and the type of inlinecount (each_* asks for the total itself)
    assert.has_error(function() wf:each_instance{ top = 10, ["$top"] = 5000 } end,
      "bad argument #1 to 'each_instance' (query name '$top' given twice)")
    assert.has_error(function() wf:each_task{ skip = 0, ["$skip"] = "x" } end,
      "bad argument #1 to 'each_task' (query name '$skip' given twice)")
    assert.has_error(function() wf:each_instance{ inlinecount = print } end,
      "bad argument #1 to 'each_instance' (query '$inlinecount': string, number, boolean or "
      .. "list expected, got function)")
    local ok, msg = pcall(function() local it = wf:each_task{ stauts = "READY" }; return it end)
    assert.is_false(ok)
    assert.matches("14%-paging_spec%.lua:%d+: bad argument #1 to 'each_task' %(unknown query "
                   .. "name 'stauts'", msg)
  end)

  it("yields exactly the matches of a narrow filter, with their data", function()
    local target = all_simple[123]
    local got = {}
    for inst in wf:each_instance{ id = target, definitionId = "simple" } do got[#got + 1] = inst end
    assert.equal(1, #got)
    assert.equal(target, got[1].id)
    assert.equal("RUNNING", got[1].status)
    local orders = {}
    for inst in wf:each_instance{ businessKey = { "7", "8" }, orderby = "startedAt asc" } do
      orders[#orders + 1] = inst.subject
    end
    assert.same({ "Order P7", "Order P8" }, orders)
    local tasks = {}
    for task in wf:each_task{ containsText = "P1000" } do tasks[#tasks + 1] = task.subject end
    assert.same({ "Approve order P1000" }, tasks)
    local none = 0
    for _ in wf:each_task{ status = "COMPLETED" } do none = none + 1 end
    assert.equal(0, none)
  end)

  it("raises the error object when the first page fails, before yielding", function()
    local limited = assert(sapwf.new{ service_key = emu:service_key("limited") })
    local ok, err = pcall(limited.each_instance, limited, { definitionId = "simple" })
    limited:close()
    assert.is_false(ok)
    assert.is_true(sapwf.is_error(err))
    assert.equal("forbidden", err.kind)
    assert.equal(require("sapwf.operations").by_name.instances.authority, err.authority)

    local ok2, err2 = pcall(wf.each_instance, wf, { status = "SLEEPING" })
    assert.is_false(ok2)
    assert.equal("invalid", err2.kind)
    assert.equal(400, err2.status)

    -- A status no client sends again, so the first answer is the last.
    emu:fault{ fault = "status", status = 404, method = "GET", path = "/v1/task-instances" }
    local ok3, err3 = pcall(wf.each_task, wf, { status = "READY" })
    assert.is_false(ok3)
    assert.equal("not_found", err3.kind)
    assert.equal("/v1/task-instances", err3.path)
  end)

  it("raises for arguments of the wrong type, at the caller's line", function()
    local cases = {
      { function() wf:each_instance("simple") end,
        "bad argument #1 to 'each_instance' (table expected, got string)" },
      { function() wf:each_instance{ top = "10" } end,
        "bad argument #1 to 'each_instance' (top must be an integer from 1 to 1000)" },
      { function() wf:each_task{ skip = -1 } end,
        "bad argument #1 to 'each_task' (skip must be an integer from 0 to 4000)" },
      { function() wf:each_task{ status = print } end,
        "bad argument #1 to 'each_task' (query 'status': string, number, boolean or list "
        .. "expected, got function)" },
    }
    helpers.assert_raises_here(cases, "14%-paging_spec%.lua$")
  end)
end)

describe("paging within one millisecond", function()
  local emu, wf

  setup(function()
    emu = helpers.start_emulator()
    wf = assert(sapwf.new{ service_key = emu:service_key("full") })
  end)
  teardown(function()
    if wf then wf:close() end
    if emu then emu:stop() end
  end)

  it("a loop that cancels what it gets, over a tie larger than a page: every match once",
     function()
    -- 300 instances share one startedAt: past the first page the iterator pages by position
    -- within that time, and each cancel moves the unseen ones forward
    local at = os.date("!%Y-%m-%dT%H:%M:%S.000Z", os.time() - 3600)
    for _, top in ipairs({ 100, 33, 299 }) do
      emu:reset()
      emu:seed_instances{ count = 300, definition = "simple", started_at = at,
                          status = "RUNNING" }
      local n, seen = 0, {}
      for inst in wf:each_instance{ status = "RUNNING", top = top } do
        assert.is_nil(seen[inst.id], "yielded twice")
        seen[inst.id] = true
        n = n + 1
        assert(wf:cancel(inst.id))
      end
      assert.equal(300, n, "top " .. top)
      assert.same({}, assert(wf:instances{ status = "RUNNING", top = 1000 }))
    end
  end)
end)
