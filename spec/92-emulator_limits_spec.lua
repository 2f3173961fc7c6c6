-- The emulator's tenant limits (server/limits.lua): service time, the tenant's token bucket,
-- what it counts (connections, TLS, HTTP/2, requests in flight, keyed starts), and not
-- keeping instances. Driven with the curl command line, many requests in one curl command
-- (one process: its connections are reused, its TLS sessions resumed, its transfers run in
-- parallel with --parallel). Times are only checked as lower bounds, or against a bound far
-- above what the limit itself gives: the machine may be busy.
local cjson = require "cjson.safe"
local core = require "sapwf.core"
local helpers = require "spec.helpers"

local FULL = "sb-sapwf-full!b1|workflow!b10150"
local JSON = "application/json;charset=UTF-8"
local RATE_LIMITED = '{"error":{"code":"bpm.workflowruntime.rate.limit.exceeded",'
  .. '"message":"Your tenant is performing too many requests."}}'
local INSTANCES = "/workflow-service/rest/v1/workflow-instances"

local curl = helpers.curl

-- A value in curl's config file syntax.
local function q(s)
  return '"' .. s:gsub('[\\"]', "\\%0") .. '"'
end

local function token(emu)
  local secret = emu:clients()[FULL].clientsecret
  local answer = curl(emu.dir, "POST", emu.url .. "/oauth/token",
    { user = FULL .. ":" .. secret, form = { "grant_type=client_credentials" } })
  assert.equal(200, answer.status)
  return answer.json.access_token
end

local batch_seq = 0

-- Several requests in one curl command. opts: base (default emu.url), token, parallel,
-- http2 (else HTTP/1.1), close (Connection: close: a new connection each), and requests: a list of
-- { method, path (under the API), json } (or count = n starts of "simple" with no context).
-- Writes curl's config; returns the command, the files' common prefix, and
-- answers_of(what curl printed) -> the answers (see batch).
local function prepare(emu, opts)
  batch_seq = batch_seq + 1
  local base = string.format("%s/tmp/batch-%d", emu.dir, batch_seq)
  local requests = opts.requests
  if not requests then
    requests = {}
    for i = 1, opts.count do requests[i] = { "POST", INSTANCES, { definitionId = "simple" } } end
  end
  local lines = { "silent" }
  if opts.parallel then
    lines[#lines + 1] = "parallel"
    lines[#lines + 1] = "parallel-immediate"     -- a connection each, not one to wait for
    lines[#lines + 1] = "parallel-max = " .. #requests
  end
  for i, request in ipairs(requests) do
    if i > 1 then lines[#lines + 1] = "next" end
    lines[#lines + 1] = "request = " .. q(request[1])
    lines[#lines + 1] = "url = " .. q((opts.base or emu.url) .. request[2])
    lines[#lines + 1] = "output = " .. q(base .. "-" .. i .. ".body")
    lines[#lines + 1] = 'write-out = "## %{urlnum} %{http_code} %{time_total} '
      .. '%{num_connects} [%header{retry-after}]\\n"'
    lines[#lines + 1] = "header = " .. q("Authorization: Bearer " .. opts.token)
    lines[#lines + 1] = "max-time = 60"
    if opts.close then lines[#lines + 1] = 'header = "Connection: close"' end
    -- the https listener offers HTTP/2, which curl takes unless told otherwise
    lines[#lines + 1] = opts.http2 and "http2" or "http1.1"
    if emu.ca_file then lines[#lines + 1] = "cacert = " .. q(emu.ca_file) end
    if request[3] then
      helpers.write_file(base .. "-" .. i .. ".request", assert(cjson.encode(request[3])))
      lines[#lines + 1] = 'header = "Content-Type: application/json"'
      lines[#lines + 1] = "data-binary = " .. q("@" .. base .. "-" .. i .. ".request")
    end
  end
  helpers.write_file(base .. ".config", table.concat(lines, "\n") .. "\n")
  -- curl's exit code is its last transfer's: each transfer's status is in its line instead
  local command = "curl -K '" .. base .. ".config'"
  local function answers_of(out)
    local answers = {}
    for num, status, time, connects, retry_after in
        out:gmatch("## (%d+) (%d+) ([%d%.]+) (%d+) %[([^%]]*)%]") do
      local i = tonumber(num) + 1
      local body = helpers.read_file(base .. "-" .. i .. ".body") or ""
      answers[i] = { status = tonumber(status), time = tonumber(time),
        connects = tonumber(connects), retry_after = retry_after, body = body,
        json = cjson.decode(body) }
      os.remove(base .. "-" .. i .. ".body")
      os.remove(base .. "-" .. i .. ".request")
    end
    os.remove(base .. ".config")
    assert.equal(#requests, #answers, out)
    return answers
  end
  return command, base, answers_of
end

-- Runs the requests (see prepare) and returns their answers in request order: { status,
-- time, connects (new connections the transfer made), retry_after, body, json }.
local function batch(emu, opts)
  local command, _, answers_of = prepare(emu, opts)
  local _, out = helpers.run(command)
  return answers_of(out)
end

-- Waits until cond() is true; fails with message after `seconds`.
local function wait_until(seconds, cond, message)
  local deadline = core.monotonic() + seconds
  while not cond() do
    assert(core.monotonic() < deadline, message)
    core.sleep(0.05)
  end
end

-- The same in the background: returns finish(), which waits for curl to end and returns
-- the answers.
local function batch_in_background(emu, opts)
  local command, base, answers_of = prepare(emu, opts)
  local out, done = base .. ".out", base .. ".done"
  assert(helpers.execute("{ " .. command .. " >'" .. out .. "' 2>&1; touch '" .. done
    .. "'; } &"))
  return function()
    wait_until(60, function() return helpers.read_file(done) end, "curl did not end")
    local text = helpers.read_file(out)
    os.remove(out)
    os.remove(done)
    return answers_of(text)
  end
end

local function statuses(answers)
  local out = {}
  for _, answer in ipairs(answers) do out[answer.status] = (out[answer.status] or 0) + 1 end
  return out
end

local function start(order)
  return { "POST", INSTANCES, { definitionId = "simple", context = { order = order } } }
end

describe("emulator limits", function()
  local emu, tok

  setup(function()
    emu = helpers.start_emulator({ tls = true, http2 = true })
    tok = token(emu)
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function()
    emu:set_limits({})
    emu:reset()
  end)
  -- a Lua error inside nginx answers 500 and lands in the error log: no test may cause one
  after_each(function() assert.same({}, emu:log_errors()) end)

  describe("service time", function()
    it("answers an API request after service_time, the token endpoint at once", function()
      local limits = emu:set_limits({ service_time = 0.3 })
      assert.same({ service_time = 0.3, jitter = 0, keep_instances = true, retry_after = true },
                  limits)
      local answers = batch(emu, { token = tok, requests = { start(1),
        { "GET", INSTANCES } } })
      for _, answer in ipairs(answers) do
        -- nginx times its sleep from its cached clock, which may lag the client's by a
        -- millisecond or two (0.299956 s was seen)
        assert.truthy(answer.time >= 0.298, tostring(answer.time))
        assert.truthy(answer.status == 201 or answer.status == 200, answer.body)
      end
      local secret = emu:clients()[FULL].clientsecret
      local issued = curl(emu.dir, "POST", emu.url .. "/oauth/token",
        { user = FULL .. ":" .. secret, form = { "grant_type=client_credentials" } })
      assert.equal(200, issued.status)
      assert.truthy(issued.time < 0.3, tostring(issued.time))
      -- the control API is no tenant's either: it answers at once
      local control = curl(emu.dir, "GET", emu.url .. "/_emulator/limits")
      assert.equal(200, control.status)
      assert.truthy(control.time < 0.3, tostring(control.time))
      assert.same({ service_time = 0.3, jitter = 0, keep_instances = true, retry_after = true },
                  control.json)
    end)

    it("adds a random jitter from 0 to jitter", function()
      emu:set_limits({ service_time = 0.1, jitter = 0.3 })
      local answers = batch(emu, { token = tok, parallel = true, requests = {
        { "GET", INSTANCES }, { "GET", INSTANCES }, { "GET", INSTANCES }, { "GET", INSTANCES },
        { "GET", INSTANCES }, { "GET", INSTANCES }, { "GET", INSTANCES }, { "GET", INSTANCES } } })
      local low, high = math.huge, 0
      for _, answer in ipairs(answers) do
        assert.equal(200, answer.status)
        low, high = math.min(low, answer.time), math.max(high, answer.time)
      end
      assert.truthy(low >= 0.1, tostring(low))
      assert.truthy(high < 0.4 + 2, tostring(high))     -- 0.4 at most, plus a busy machine
      assert.truthy(high - low > 0.01, "no jitter: " .. low .. " .. " .. high)
    end)

    it("sleeps without blocking: 20 requests in parallel take about one service time",
        function()
      emu:set_limits({ service_time = 0.3 })
      local answers = batch(emu, { token = tok, parallel = true, count = 20 })
      local slowest = 0
      for _, answer in ipairs(answers) do
        assert.equal(201, answer.status)
        assert.truthy(answer.time >= 0.3)
        slowest = math.max(slowest, answer.time)
      end
      assert.truthy(slowest < 20 * 0.3 / 2, tostring(slowest))   -- one after the other: 6 s
      local stats = emu:stats()
      assert.truthy(stats.in_flight_max >= 10 and stats.in_flight_max <= 20,
        tostring(stats.in_flight_max))
      assert.equal(0, stats.in_flight)
      assert.equal(20, stats.connections)
    end)
  end)

  describe("the tenant's token bucket", function()
    it("refuses beyond burst with SAP's 429 and a Retry-After, and refills at rate", function()
      local limits = emu:set_limits({ rate = 5, burst = 5 })
      assert.equal(5, limits.rate)
      assert.equal(5, limits.burst)
      local answers = batch(emu, { token = tok, count = 8 })
      assert.same({ [201] = 5, [429] = 3 }, statuses(answers))
      for i, answer in ipairs(answers) do
        if i <= 5 then
          assert.equal(201, answer.status)
        else
          assert.equal(429, answer.status)
          assert.equal(RATE_LIMITED, answer.body)
          assert.equal("bpm.workflowruntime.rate.limit.exceeded", answer.json.error.code)
          assert.truthy(tonumber(answer.retry_after) >= 1, answer.retry_after)
          assert.equal(math.floor(tonumber(answer.retry_after)), tonumber(answer.retry_after))
        end
      end
      local stats = emu:stats()
      assert.equal(3, stats.rate_limited)
      assert.equal(5, stats.instances_started)
      assert.equal(3, stats.api_responses_by_status["429"])
      helpers.run("sleep 1.2")                  -- 6 tokens' worth, at most 5 kept
      assert.same({ [201] = 5, [429] = 1 }, statuses(batch(emu, { token = tok, count = 6 })))
    end)

    it("retry_after = false: the 429 without Retry-After, as SAP's definition shows", function()
      assert.is_false(emu:set_limits({ rate = 2, burst = 2, retry_after = false }).retry_after)
      local answers = batch(emu, { token = tok, count = 3 })
      assert.same({ [201] = 2, [429] = 1 }, statuses(answers))
      assert.equal(429, answers[3].status)
      assert.equal(RATE_LIMITED, answers[3].body)
      assert.equal("", answers[3].retry_after)           -- no such header
    end)

    it("answers a 429 with headers as the service's, without the service time", function()
      emu:set_limits({ rate = 0.01, burst = 1, service_time = 0.5 })
      local answers = batch(emu, { token = tok, requests = { { "GET", INSTANCES },
        { "GET", INSTANCES } } })
      assert.equal(200, answers[1].status)
      assert.truthy(answers[1].time >= 0.5)
      assert.equal(429, answers[2].status)
      assert.truthy(answers[2].time < 0.5, tostring(answers[2].time))
      -- one token every 100 s: the next is (nearly) 100 s away
      assert.truthy(tonumber(answers[2].retry_after) >= 99, answers[2].retry_after)
      local single = curl(emu.dir, "GET", emu.url .. INSTANCES,
        { headers = { "Authorization: Bearer " .. tok } })
      assert.equal(429, single.status)
      assert.equal(JSON, single.headers["content-type"])
      assert.truthy(single.headers["x-vcap-request-id"])
    end)

    it("a burst defaults to one second's worth; the token endpoint is not limited", function()
      assert.same({ service_time = 0, jitter = 0, rate = 3, burst = 3, keep_instances = true,
                    retry_after = true },
        emu:set_limits({ rate = 3 }))
      assert.same({ [201] = 3, [429] = 2 }, statuses(batch(emu, { token = tok, count = 5 })))
      for _ = 1, 4 do token(emu) end
      assert.equal(2, emu:stats().rate_limited)
    end)

    it("set_limits{} removes every limit, reset keeps them and fills the bucket", function()
      emu:set_limits({ rate = 0.01, burst = 2, service_time = 0.2 })
      assert.same({ [201] = 2, [429] = 1 }, statuses(batch(emu, { token = tok, count = 3 })))
      emu:reset()
      local kept = emu:limits()
      assert.equal(0.01, kept.rate)
      assert.equal(0.2, kept.service_time)
      assert.same({ [201] = 2, [429] = 1 }, statuses(batch(emu, { token = tok, count = 3 })))
      assert.same({ service_time = 0, jitter = 0, keep_instances = true, retry_after = true },
                  emu:set_limits({}))
      local answers = batch(emu, { token = tok, count = 4 })
      assert.same({ [201] = 4 }, statuses(answers))
      for _, answer in ipairs(answers) do assert.truthy(answer.time < 2) end
    end)
  end)

  describe("counts", function()
    it("counts connections, TLS handshakes, resumed sessions", function()
      local stats = emu:stats()
      for _, name in ipairs({ "connections", "tls_handshakes", "tls_resumed", "http2_requests",
          "rate_limited", "in_flight", "in_flight_max", "starts_keyed", "starts_doubled",
          "starts_unkeyed" }) do
        assert.equal(0, stats[name], name)
      end
      assert.same({}, stats.connections_by_worker)
      -- three requests on one kept-alive connection
      local answers = batch(emu, { token = tok, requests = { { "GET", INSTANCES },
        { "GET", INSTANCES }, { "GET", INSTANCES } } })
      assert.same({ 1, 0, 0 }, { answers[1].connects, answers[2].connects, answers[3].connects })
      stats = emu:stats()
      assert.equal(1, stats.connections)
      assert.same({ ["0"] = 1 }, stats.connections_by_worker)   -- the one worker
      assert.equal(0, stats.tls_handshakes)
      assert.equal(1, stats.in_flight_max)

      -- https: one connection, one handshake
      emu:reset()
      batch(emu, { token = tok, base = emu.https_url, requests = { { "GET", INSTANCES },
        { "GET", INSTANCES } } })
      stats = emu:stats()
      assert.same({ 1, 1, 0 }, { stats.connections, stats.tls_handshakes, stats.tls_resumed })

      -- a new connection each: curl resumes its TLS session on the later ones
      emu:reset()
      answers = batch(emu, { token = tok, base = emu.https_url, close = true, requests = {
        { "GET", INSTANCES }, { "GET", INSTANCES }, { "GET", INSTANCES } } })
      stats = emu:stats()
      assert.equal(3, stats.connections)
      assert.equal(3, stats.tls_handshakes + stats.tls_resumed)
      assert.truthy(stats.tls_handshakes >= 1)
      assert.equal(2, stats.tls_resumed)
      assert.equal(0, stats.http2_requests)
    end)

    it("counts the requests in flight at a reset in in_flight_max", function()
      emu:set_limits({ service_time = 2.5 })   -- time for a reset and 3 more meanwhile
      local finish = batch_in_background(emu, { token = tok, parallel = true, count = 5 })
      wait_until(30, function() return emu:stats().in_flight >= 5 end,
        "5 requests never were in flight at once")
      emu:reset()
      local stats = emu:stats()
      assert.equal(5, stats.in_flight)          -- still being served
      assert.equal(5, stats.in_flight_max)      -- the highest since the reset: theirs
      -- 3 more while the 5 are in flight: 8 at once, not 3 (a ladder that forgot the 5
      -- would count one per request beyond them)
      local answers = batch(emu, { token = tok, parallel = true, count = 3 })
      assert.same({ [201] = 3 }, statuses(answers))
      assert.same({ [201] = 5 }, statuses(finish()))
      stats = emu:stats()
      assert.equal(8, stats.in_flight_max)
      assert.equal(0, stats.in_flight)
    end)

    it("in_flight comes back to 0 after a request a fault dropped", function()
      emu:set_limits({ service_time = 0.1 })
      emu:fault({ fault = "drop_before", path = "/v1/workflow-instances" })
      emu:fault({ fault = "drop_after", path = "/v1/workflow-instances" })
      local answers = batch(emu, { token = tok, requests = { { "GET", INSTANCES },
        { "GET", INSTANCES }, { "GET", INSTANCES } } })
      assert.same({ 0, 0, 200 }, { answers[1].status, answers[2].status, answers[3].status })
      local stats = emu:stats()
      assert.equal(0, stats.in_flight)
      assert.equal(1, stats.in_flight_max)
      assert.equal(3, stats.connections)        -- a dropped connection is not reused
    end)

    it("counts HTTP/2 requests, many on one connection, and reads their bodies", function()
      local answers = batch(emu, { token = tok, base = emu.https_url, http2 = true,
        requests = { start("h2"), { "GET", INSTANCES }, start("h2b") } })
      assert.same({ 201, 200, 201 }, { answers[1].status, answers[2].status, answers[3].status })
      local stats = emu:stats()
      assert.equal(3, stats.http2_requests)
      assert.equal(1, stats.connections)
      assert.equal(1, stats.tls_handshakes)
      local orders = {}
      for _, instance in ipairs(emu:instances()) do
        if instance.context.order then orders[#orders + 1] = instance.context.order end
      end
      table.sort(orders)
      assert.same({ "h2", "h2b" }, orders)    -- the bodies arrived whole
    end)

    it("counts the first start of each count_key value and the doubled ones", function()
      emu:set_limits({ count_key = "order" })
      local answers = batch(emu, { token = tok, requests = { start(1), start(2), start(1),
        start("1"), { "POST", INSTANCES, { definitionId = "simple" } }, start(1) } })
      assert.same({ [201] = 6 }, statuses(answers))
      local stats = emu:stats()
      assert.equal(3, stats.starts_keyed)       -- 1, 2 and "1" (a string is not the number)
      assert.equal(2, stats.starts_doubled)
      assert.equal(0, stats.starts_unkeyed)
      -- a start that fails is no start
      local failed = batch(emu, { token = tok, requests = { { "POST", INSTANCES,
        { definitionId = "nosuchdefinition", context = { order = 3 } } } } })
      assert.equal(404, failed[1].status)
      assert.equal(3, emu:stats().starts_keyed)
      -- reset zeroes the counts and forgets the values
      emu:reset()
      batch(emu, { token = tok, requests = { start(1) } })
      stats = emu:stats()
      assert.equal(1, stats.starts_keyed)
      assert.equal(0, stats.starts_doubled)
    end)

    it("keep_instances = false answers starts as usual but keeps none", function()
      local before = #emu:instances()
      emu:set_limits({ keep_instances = false, count_key = "order" })
      local answers = batch(emu, { token = tok, requests = { start(1), start(2), start(3) } })
      assert.same({ [201] = 3 }, statuses(answers))
      assert.equal("RUNNING", answers[1].json.status)
      assert.equal(before, #emu:instances())
      local gone = batch(emu, { token = tok, requests = { { "GET", INSTANCES .. "/"
        .. answers[1].json.id } } })
      assert.equal(404, gone[1].status)
      local stats = emu:stats()
      assert.equal(3, stats.instances_started)
      assert.equal(3, stats.starts_keyed)
    end)
  end)

  describe("set_limits", function()
    it("refuses unknown fields and bad values with a clear message", function()
      local cases = {
        { { bogus = 1 }, "400 unknown limit 'bogus' (known: service_time, jitter, rate, "
          .. "burst, count_key, keep_instances, retry_after)" },
        { { service_time = "1" }, "400 limit 'service_time' must be a number" },
        { { service_time = -1 }, "400 limit 'service_time' must be from 0 to 3600 seconds" },
        { { jitter = 4000 }, "400 limit 'jitter' must be from 0 to 3600 seconds" },
        { { rate = 0 }, "400 limit 'rate' must be a positive number of requests a second" },
        { { burst = 5 }, "400 limit 'burst' needs a rate" },
        { { rate = 5, burst = 0.5 }, "400 limit 'burst' must be at least 1 (a token)" },
        { { count_key = 1 }, "400 limit 'count_key' must be a string" },
        { { count_key = "" }, "400 limit 'count_key' must not be empty" },
        { { keep_instances = "no" }, "400 limit 'keep_instances' must be a boolean" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(emu.set_limits, emu, case[1])
        assert.is_false(ok)
        -- Lua 5.1 adds no position when the level it names is pcall itself
        assert.equal("control PUT /limits: " .. case[2], (err:gsub("^[^:]*:%d+: ", "")))
      end
      assert.has_error(function() emu:set_limits("fast") end,
        "bad argument #1 to 'set_limits' (table expected, got string)")
      local answer = curl(emu.dir, "PUT", emu.url .. "/_emulator/limits", { body = "[1]",
        headers = { "Content-Type: application/json" } })
      assert.equal(400, answer.status)
      assert.equal("the limits must be a JSON object", answer.json.error)
      -- nothing changed
      assert.same({ service_time = 0, jitter = 0, keep_instances = true, retry_after = true },
                  emu:limits())
    end)

    it("is listed in the control index", function()
      local listed = {}
      for _, operation in ipairs(emu:control("GET", "/").operations) do
        listed[operation.method .. " " .. operation.path] = true
      end
      assert.truthy(listed["PUT /_emulator/limits"])
      assert.truthy(listed["GET /_emulator/limits"])
    end)
  end)
end)

describe("emulator limits with two workers", function()
  local emu

  setup(function() emu = helpers.start_emulator({ tls = false, workers = 2 }) end)
  teardown(function() if emu then emu:stop() end end)
  after_each(function() assert.same({}, emu:log_errors()) end)

  it("keeps the bucket exact across workers", function()
    -- one token in 100 s: nothing refills during the test
    emu:set_limits({ rate = 0.01, burst = 10, service_time = 0.2 })
    local tok = token(emu)
    local answers = batch(emu, { token = tok, parallel = true, requests = (function()
      local list = {}
      for i = 1, 40 do list[i] = { "GET", INSTANCES } end
      return list
    end)() })
    assert.same({ [200] = 10, [429] = 30 }, statuses(answers))
    local stats = emu:stats()
    assert.equal(30, stats.rate_limited)
    assert.equal(41, stats.connections)         -- the token's one, too
    assert.equal(0, stats.in_flight)
    -- the bucket was shared: both workers took connections (ngx.worker.id 0 and 1)
    local by_worker = stats.connections_by_worker
    assert.truthy((by_worker["0"] or 0) > 0 and (by_worker["1"] or 0) > 0,
      "connections by worker: " .. tostring(by_worker["0"]) .. ", " .. tostring(by_worker["1"]))
    assert.equal(41, by_worker["0"] + by_worker["1"])
  end)
end)

describe("emulator limits with little key memory", function()
  local emu

  setup(function() emu = helpers.start_emulator({ tls = false, key_memory = 1 }) end)
  teardown(function() if emu then emu:stop() end end)

  it("counts a value it has no room for as unkeyed, never as a first start", function()
    emu:set_limits({ count_key = "order", keep_instances = false })
    local tok = token(emu)
    local requests = {}
    -- values of 60,000 bytes: a few fill a megabyte
    for i = 1, 30 do requests[i] = start(string.format("%05d", i) .. string.rep("x", 60000)) end
    requests[31] = start(requests[1][3].context.order)
    local answers = batch(emu, { token = tok, requests = requests })
    assert.same({ [201] = 31 }, statuses(answers))
    local stats = emu:stats()
    assert.truthy(stats.starts_unkeyed > 0)
    assert.truthy(stats.starts_keyed > 0)
    assert.equal(31, stats.starts_keyed + stats.starts_doubled + stats.starts_unkeyed)
    assert.equal(1, stats.starts_doubled)       -- the first value is still there
    assert.same({}, emu:log_errors())
    -- reset frees the memory: the values fit again
    emu:reset()
    batch(emu, { token = tok, requests = { requests[1], requests[2] } })
    stats = emu:stats()
    assert.equal(2, stats.starts_keyed)
    assert.equal(0, stats.starts_unkeyed)
  end)

  it("refuses a key_memory that is no size", function()
    local emulator = require "sapwf.emulator"
    assert.has_error(function() emulator.start({ key_memory = 0 }) end,
      "bad option 'key_memory' (megabytes from 1 to 65536 expected)")
    assert.has_error(function() emulator.start({ key_memory = "1" }) end,
      "bad option 'key_memory' (number expected, got string)")
  end)
end)
