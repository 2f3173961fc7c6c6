-- The C code that reads what servers send (src/headers.c, fuzzed by fuzz/): Retry-After,
-- counts such as X-Total-Count, and the header table of client:request; and the clock and
-- sleep the retries use.
local core = require "sapwf.core"
local helpers = require "spec.helpers"

describe("response headers", function()
  describe("core.retry_after", function()
    it("reads delay-seconds", function()
      assert.equal(0, core.retry_after("0"))
      assert.equal(120, core.retry_after("120"))
      assert.equal(5, core.retry_after("  5\t"))
      assert.equal(31536000, core.retry_after("99999999999999999999999999"))   -- clamped
    end)

    it("reads an HTTP-date, in each of the three formats, relative to now", function()
      local t = os.time() + 30
      local formats = { "!%a, %d %b %Y %H:%M:%S GMT", "!%A, %d-%b-%y %H:%M:%S GMT",
                        "!%a %b %e %H:%M:%S %Y" }
      for _, format in ipairs(formats) do
        local seconds = core.retry_after(os.date(format, t))
        assert.is_number(seconds, format)
        assert.is_true(seconds >= 28 and seconds <= 30, format .. ": " .. tostring(seconds))
      end
      assert.equal(0, core.retry_after("Wed, 21 Oct 2015 07:28:00 GMT"))        -- the past
    end)

    it("ignores anything else", function()
      for _, value in ipairs({ "", " ", "-1", "1.5", "+3", "0x10", "1e3", "5 s", "soon",
                               "12\0", "\0", string.rep("9", 10) .. "x",
                               string.rep("a", 100) }) do
        assert.is_nil(core.retry_after(value), value)
      end
    end)

    it("raises for a value that is not a string", function()
      assert.has_error(function() core.retry_after(nil) end)
      assert.has_error(function() core.retry_after({}) end)
    end)
  end)

  describe("core.parse_count", function()
    it("reads 1*DIGIT up to 2^53 as an integer", function()
      assert.equal(0, core.parse_count("0"))
      assert.equal(4711, core.parse_count(" 4711 "))
      assert.equal(2 ^ 53, core.parse_count("9007199254740992"))
      if math.type then assert.equal("integer", math.type(core.parse_count("42"))) end
    end)

    it("refuses signs, fractions, exponents, hex, overflow and junk", function()
      for _, value in ipairs({ "", "-1", "+1", "1.0", "1e3", "0x10", "9007199254740993",
                               "99999999999999999999999", "1 2", "1\0", "NaN", "inf" }) do
        assert.is_nil(core.parse_count(value), value)
      end
    end)
  end)

  describe("the headers table", function()
    local emu

    setup(function() emu = helpers.start_emulator() end)
    teardown(function() if emu then emu:stop() end end)

    it("has lower-case names and trimmed values", function()
      local wf = assert(require("sapwf").new{ service_key = emu:service_key("full") })
      local _, request_meta = assert(wf:request("GET", "/v1/workflow-instances",
                                                { query = { ["$inlinecount"] = "allpages" } }))
      local headers = request_meta.headers
      for name in pairs(headers) do assert.equal(name:lower(), name) end
      assert.matches("^application/json", headers["content-type"])
      assert.matches("^%S+$", headers["x-vcap-request-id"])
      assert.is_not_nil(core.parse_count(headers["x-total-count"]))
      local list, meta = assert(wf:instances{ inlinecount = true })
      assert.equal(#list, meta.total)
      if math.type then assert.equal("integer", math.type(meta.total)) end
    end)

    -- A block, not a string: LuaJIT interns every string, and long header blocks that
    -- differ only in a few bytes (the Date, the request id) fell into one hash chain.
    it("comes from the core as a block that header, headers and header_text read",
       function()
      local c = assert(core.new(helpers.core_options(emu, "full")))
      local function check(status, _, block)
        assert.equal(200, status)
        assert.equal("userdata", type(block))
        assert.matches("^sapwf.core.Headers %(%d+ bytes%)$", tostring(block))
        local text = core.header_text(block)
        assert.equal("string", type(text))
        assert.same(core.headers(block), core.headers(text))
        assert.matches("^application/json", core.header(block, "content-type"))
        assert.equal(core.header(text, "x-vcap-request-id"),
                     core.header(block, "x-vcap-request-id"))
        assert.is_false(getmetatable(block))               -- no way to change what it reads
      end
      check(c:request("GET", "/v1/workflow-definitions"))
      local b = c:batch(2)
      b:submit(1, "GET", "/v1/workflow-definitions")
      local _, status, body, block = b:wait()
      check(status, body, block)
      b:close()
      c:close()
    end)
  end)

  describe("core.header and core.headers", function()
    local BLOCK = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
      .. "set-cookie: a=1\r\nx-empty:\r\nset-cookie:  b=2 \r\n folded: no\r\n"
      .. "no colon here\r\nx-last: tail"

    it("header reads one value: trimmed, the last of repeated names, nil when absent",
       function()
      assert.equal("application/json", core.header(BLOCK, "content-type"))
      assert.equal("b=2", core.header(BLOCK, "set-cookie"))
      assert.equal("", core.header(BLOCK, "x-empty"))
      assert.equal("tail", core.header(BLOCK, "x-last"))      -- no line end
      assert.is_nil(core.header(BLOCK, "folded"))
      assert.is_nil(core.header(BLOCK, "http/1.1 200 ok"))
      assert.is_nil(core.header("", "content-type"))
    end)

    it("headers makes the table of all of them, as header reads them", function()
      assert.same({ ["content-type"] = "application/json", ["set-cookie"] = "b=2",
                    ["x-empty"] = "", ["x-last"] = "tail" }, core.headers(BLOCK))
      assert.same({}, core.headers(""))
    end)

    it("header agrees with headers on random blocks (seeded)", function()
      local PIECES = { "HTTP/1.1 200 OK", "x-vcap-request-id: a1", "x-vcap-request-id:b2 ",
        "content-type:\tapplication/json", " folded: x", "location", ":", "a:", "a: 1",
        "x y: z", "retry-after: 5", "retry-after :6", "", "\r", "x-vcap-request-idx: no" }
      local NAMES = { "x-vcap-request-id", "content-type", "a", "x y", "retry-after",
        "location", "retry-after ", "missing" }
      local seed = 46
      for _ = 1, 500 do
        local lines = {}
        for i = 1, seed % 7 + 1 do
          seed = (seed * 16807) % 2147483647
          lines[i] = PIECES[seed % #PIECES + 1]
        end
        local block = table.concat(lines, seed % 2 == 0 and "\r\n" or "\n")
        local all = core.headers(block)
        for _, name in ipairs(NAMES) do
          assert.equal(all[name], core.header(block, name), ("%q in %q"):format(name, block))
        end
      end
    end)

    it("raise for arguments that are neither blocks nor strings, naming them", function()
      for _, f in ipairs({ core.header, core.headers, core.header_text }) do
        for _, bad in ipairs({ {}, io.stdout, 42 }) do
          local ok, err = pcall(f, bad, "x")
          assert.is_false(ok)
          assert.matches("bad argument #1 .*header block expected, got " .. type(bad), err)
        end
      end
      assert.has_error(function() core.header(nil, "x") end)
      assert.has_error(function() core.header("", nil) end)
    end)
  end)

  describe("core.sleep and core.monotonic", function()
    it("sleep waits as long as asked, on a clock that only goes forward", function()
      local t0 = core.monotonic()
      core.sleep(0.2)
      local t1 = core.monotonic()
      assert.is_true(t1 - t0 >= 0.2 and t1 - t0 < 1, tostring(t1 - t0))
      core.sleep(0)
      assert.is_true(core.monotonic() >= t1)
    end)

    it("sleep raises for a negative, NaN, huge or missing duration", function()
      for _, bad in ipairs({ -1, 0 / 0, math.huge, 86401 }) do
        assert.has_error(function() core.sleep(bad) end)
      end
      assert.has_error(function() core.sleep() end)
      assert.has_error(function() core.sleep("1") end)
    end)

    it("sleep ends early, returning true, when a signal catch_sigint catches comes, or came " ..
       "before it; otherwise, and once the signals are no longer caught, it sleeps on",
       function()
      local pid = helpers.our_pid()
      core.catch_sigint(true)
      local ok, err = pcall(function()
        local t0 = core.monotonic()
        local ended = core.sleep(0.05)                       -- no signal: the whole time
        assert.is_true(core.monotonic() - t0 >= 0.05)
        assert.is_not_true(ended)
        assert(helpers.run("(sleep 0.1; kill -INT " .. pid .. ") >/dev/null 2>&1 &"))
        t0 = core.monotonic()
        ended = core.sleep(5)                                -- a Retry-After's wait
        local took = core.monotonic() - t0
        assert.is_true(took < 2, "slept " .. took .. " s")
        assert.is_true(ended)
        -- the flag stays set: a sleep after it (a retry's wait when the signal came during
        -- the request) does not begin
        t0 = core.monotonic()
        assert.is_true(core.sleep(5))
        assert.is_true(core.monotonic() - t0 < 0.5)
      end)
      local caught, name = core.sigint_caught()
      for _ = 1, 60 do                  -- a failure before the signal came: it still comes
        if caught then break end
        core.sleep(0.05)
        caught, name = core.sigint_caught()
      end
      core.catch_sigint(false)
      assert(ok, err)
      assert.is_true(caught)
      assert.equal("SIGINT", name)
      -- not caught any more: as for a program that never caught them
      local t0 = core.monotonic()
      assert.is_false(core.sleep(0.05))
      assert.is_true(core.monotonic() - t0 >= 0.05)
    end)
  end)
end)
