-- A seeded randomized test over the whole API surface: every method of a client (found by
-- listing them, so new ones are covered too) and the module's functions, called thousands of
-- times with random arguments of every type: nil, booleans, odd numbers, strings with
-- NUL bytes, odd Unicode and path characters, huge strings, nested and cyclic tables,
-- functions, userdata. What must hold for every call:
--   - a raise is an argument error naming the argument (or the closed client), never an
--     internal error, and nothing was sent;
--   - otherwise the call returns a value, or nil and a sapwf error with a known kind whose
--     tostring is one line;
--   - the emulator saw exactly the requests the results account for (checked every batch).
-- SAPWF_RANDOM_SEED and SAPWF_RANDOM_CASES change the seed (default 20240615) and the number
-- of cases (default 3000); a failure names the seed and case to replay.
local sapwf = require "sapwf"
local client = require "sapwf.client"
local helpers = require "spec.helpers"
local R = require "spec.support.reliability"

local SEED = tonumber(os.getenv("SAPWF_RANDOM_SEED") or "") or 20240615
local CASES = tonumber(os.getenv("SAPWF_RANDOM_CASES") or "") or 3000
local BATCH = 100

local KINDS = { config = true, network = true, timeout = true, tls = true, auth = true,
  forbidden = true, not_found = true, conflict = true, invalid = true, rate_limited = true,
  server = true, decode = true, io = true }

-- Raises the API may make: argument errors, and the user's own error from a metamethod.
local RAISES = { "^bad argument #%d+ to '[%w_]+' %(", "^bad option '", "^bad option key",
  "^calling '[%w_]+' on bad self", "^attempt to use a closed sapwf client",
  "sentinel: user metamethod" }

-- Methods whose number of requests the results do not tell (iterators, batches): the test
-- reads the emulator's counter around them instead.
local UNCOUNTED = { each_instance = true, each_task = true, start_many = true, map = true }

describe("randomized API calls (seed " .. SEED .. ", " .. CASES .. " cases)", function()
  local emu

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)

  it("raise only argument errors, return values or error objects, send nothing else", function()
    local random = math.random
    math.randomseed(SEED)

    local ids = {}                    -- ids the service gave out, so some calls hit real things
    local cyclic = {}
    cyclic.self = cyclic
    local raising = setmetatable({}, {
      __index = function() error("sentinel: user metamethod", 0) end,
      __pairs = function() error("sentinel: user metamethod", 0) end })

    local STRINGS = {
      "", ".", "..", "/", "simple", "orderapproval", "orderShipped", "a/b", "a?b=c", "a#b",
      "../x", "..%2F", "%00", "a b", "a\0b", "\0", "ü", "日本", "\226\128\174abc",
      "\226\128\139",
      "😀", "\255\254", "\192\128", "GET", "POST", "get", "/v1/forms", "/v1/export",
      "/v1/workflow-instances", "/../v1/forms", "/v1/forms?x=1", "//", "RUNNING", "COMPLETED",
      "CANCELED", "attributes", "createdAt desc", "$top", "true", "1", "-1", "1e3", "0x10",
      "00000000-0000-4000-8000-000000000000", string.rep("x", 300),
    }
    local NUMBERS = { 0, 1, -1, 2, 1000, 1001, 4000, 4001, 0.5, -0.0, 1e308, 2 ^ 53, 2 ^ 63,
      math.huge, -math.huge, 0 / 0, math.maxinteger or 2 ^ 53, math.mininteger or -2 ^ 53 }
    local KEYS = { "top", "skip", "$top", "orderby", "inlinecount", "expand", "status",
      "definitionId", "businessKey", "workflowInstanceId", "workflowDefinitionId", "context",
      "containsText", "attributes.x", "cascade", "query", "body", "viewerUsers",
      "viewerGroups", "adminUsers", "processor", "subject", "description", "priority",
      "dueDate", "decision", "id", "deleted", "unknown", 1, 2, 3 }

    local value
    local function random_string()
      local r = random(1, 20)
      if r == 1 and random(1, 20) == 1 then return string.rep("y", 1000000) end
      if r <= 3 and #ids > 0 then return ids[random(1, #ids)] end
      if r == 4 then
        local bytes = {}
        for i = 1, random(0, 12) do bytes[i] = string.char(random(0, 255)) end
        return table.concat(bytes)
      end
      return STRINGS[random(1, #STRINGS)]
    end
    local function random_table(depth)
      local r = random(1, 12)
      if r == 1 then return {} end
      if r == 2 then return sapwf.array{} end
      if r == 3 then return sapwf.object{} end
      if r == 4 then return cyclic end
      if r == 5 then return raising end
      if r == 6 then                                  -- a list
        local t = {}
        for i = 1, random(1, 4) do t[i] = value(depth + 1) end
        return t
      end
      local t = {}
      for _ = 1, random(1, 5) do
        local key = KEYS[random(1, #KEYS)]
        t[key] = value(depth + 1)
      end
      return t
    end
    value = function(depth)
      depth = depth or 0
      local r = random(1, depth > 2 and 7 or 10)
      if r == 1 then return nil end
      if r == 2 then return random(1, 2) == 1 end
      if r == 3 then return NUMBERS[random(1, #NUMBERS)] end
      if r <= 6 then return random_string() end
      if r == 7 then
        local odd = { print, coroutine.create(function() end), io.stdout, sapwf.null }
        return odd[random(1, #odd)]
      end
      return random_table(depth)
    end

    local wf
    local function open()
      wf = assert(sapwf.new{ service_key = emu:service_key("full"), retries = 0,
                             timeout = 10 })
    end
    open()

    local names = {}
    -- wf:export writes the file its argument names: random names would litter the folder
    -- the suite runs in (spec/51 owns its checks).
    for name in pairs(client.methods) do
      if name ~= "export" then names[#names + 1] = name end
    end
    table.sort(names)
    local MODULE = { "new", "from_env", "array", "object", "is_error" }

    local tally = { raised = 0, failed = 0, returned = 0, sent = 0 }

    -- One case: returns how many API requests its result accounts for, or nil when the
    -- method is UNCOUNTED.
    local function one_case(n)
      -- Half the time arguments of the shapes the methods take (an id, then tables), so
      -- that calls get past the type checks and reach the service.
      local args, nargs = {}, random(0, 4)
      local plausible = random(1, 2) == 1
      for i = 1, nargs do
        if plausible and i == 1 then
          args[i] = random(1, 4) > 1 and random_string() or random_table(0)
        elseif plausible then
          args[i] = random(1, 3) > 1 and random_table(0) or nil
        else
          args[i] = value()
        end
      end
      local label, fn, self
      if random(1, 12) == 1 then
        label = "sapwf." .. MODULE[random(1, #MODULE)]
        fn = sapwf[label:sub(7)]
      else
        label = names[random(1, #names)]
        fn = client.methods[label]
        self = wf
        if random(1, 30) == 1 then self = value() end          -- a bad self
        if label == "close" and self == wf and random(1, 5) > 1 then      -- close seldom
          label, fn = "token", client.methods.token
        end
      end
      local where = string.format("case %d (seed %d): %s", n, SEED, label)
      local results
      if self ~= nil then
        results = R.pack(pcall(fn, self, R.unpack(args, 1, nargs)))
      else
        results = R.pack(pcall(fn, R.unpack(args, 1, nargs)))
      end
      local ok, first, second = results[1], results[2], results[3]
      if not ok then
        local message = first
        -- A for loop cannot take nil, err: the iterators raise the error object (README).
        if sapwf.is_error(message) and UNCOUNTED[label] then
          assert(KINDS[message.kind], where .. ": unknown kind " .. tostring(message.kind))
          return nil
        end
        assert(type(message) == "string", where .. ": raised a " .. type(message))
        message = message:gsub("^[^\n]-:%d+: ", "", 1)    -- the caller's position
        local known = false
        for _, pattern in ipairs(RAISES) do
          if message:find(pattern) then known = true end
        end
        assert(known, where .. ": raised an unexpected error: " .. message:sub(1, 300))
        tally.raised = tally.raised + 1
        if wf and not rawget(wf, "_core") then open() end      -- closed by a random close
        return 0
      end
      if label:sub(1, 6) == "sapwf." then
        if label == "sapwf.new" or label == "sapwf.from_env" then
          if first == nil then
            assert(sapwf.is_error(second) and second.kind == "config", where)
          else
            first:close()
          end
        end
        return 0
      end
      if not rawget(wf, "_core") then open() return 0 end
      if UNCOUNTED[label] then
        if type(first) == "function" then                 -- an iterator: pull from it
          for _ = 1, random(1, 3) do
            local pulled, item = pcall(first)
            if not pulled then
              assert(sapwf.is_error(item) or (type(item) == "string"
                     and item:find("closed sapwf client")), where .. ": " .. tostring(item))
              break
            end
            if item == nil then break end
          end
        end
        return nil
      end
      if first == nil then
        local err = second
        assert(sapwf.is_error(err), where .. ": nil without an error object")
        assert(KINDS[err.kind], where .. ": unknown kind " .. tostring(err.kind))
        local line = tostring(err)
        assert(type(line) == "string" and not line:find("\n"), where .. ": " .. line)
        tally.failed = tally.failed + 1
        if err.request_id then return 1 end
        return 0
      end
      -- A value: meta (or wf:request's headers) carries the emulator's request id.
      tally.returned = tally.returned + 1
      if type(first) == "table" and first.id and type(first.id) == "string" then
        ids[#ids + 1] = first.id
      end
      if type(first) == "table" and type(first[1]) == "table" and type(first[1].id) == "string" then
        ids[#ids + 1] = first[1].id
      end
      if label == "token" or label == "close" then return 0 end
      local meta = second
      assert(type(meta) == "table", where .. ": no meta")
      if meta.request_id or meta["x-vcap-request-id"] then return 1 end
      return 0
    end

    local base = emu:stats().api_requests
    local expected = 0
    local batch_start = 1
    for n = 1, CASES do
      local sent = one_case(n)
      if sent == nil then
        base = emu:stats().api_requests
        expected = 0
        batch_start = n + 1
      else
        expected = expected + sent
        tally.sent = tally.sent + sent
      end
      if n % BATCH == 0 or n == CASES then
        local seen = emu:stats().api_requests - base
        assert(seen == expected, string.format("cases %d..%d (seed %d): the emulator saw %d "
          .. "requests, the results account for %d", batch_start, n, SEED, seen, expected))
        base, expected, batch_start = base + seen, 0, n + 1
      end
    end
    wf:close()
    -- The mix is wide enough to mean something: many calls reach the service, many do not.
    assert.is_true(tally.raised > CASES / 5, "raised " .. tally.raised)
    assert.is_true(tally.sent > CASES / 10, "sent " .. tally.sent)
    assert.is_true(tally.failed > CASES / 20, "failed " .. tally.failed)
    assert.is_true(tally.returned > CASES / 50, "returned " .. tally.returned)
    if os.getenv("SAPWF_RANDOM_VERBOSE") then
      print(string.format("\nraised %d, nil+err %d, values %d, requests %d", tally.raised,
                          tally.failed, tally.returned, tally.sent))
    end
    assert.same({}, emu:log_errors())
  end)
end)
