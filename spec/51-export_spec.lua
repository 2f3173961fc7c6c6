-- Binary and large answers: GET /v1/export answers a zip, so it is asked for with the Accept
-- a zip needs, and wf:export / wf:request's to_file write an answer to a file as it comes,
-- in constant memory and beyond max_response. The file at the path changes only when a
-- whole answer came; a failure, or a raise meanwhile, leaves it as it was and nothing
-- beside it. A link's file is replaced (the link stays); a path naming no regular file is
-- refused, as a rename over it would replace it.
local helpers = require "spec.helpers"
local sapwf = require "sapwf"
local core = require "sapwf.core"

local EXPORT = "GET /v1/export"

-- What the emulator's export holds after emu:export_lines(n).
-- (a hundred lines a format: CI's GC stage collects at every allocation)
local FORMAT_100 = ("%08d\n"):rep(100)
local unpack = table.unpack or unpack
local function numbered(n)
  local parts, numbers = {}, {}
  for first = 1, n, 100 do
    local count = math.min(100, n - first + 1)
    for j = 1, count do numbers[j] = first + j - 1 end
    parts[#parts + 1] = string.format(count == 100 and FORMAT_100 or ("%08d\n"):rep(count),
                                      unpack(numbers, 1, count))
  end
  return table.concat(parts)
end

describe("binary answers", function()
  local emu, wf, limited, dir

  local function exports()
    return emu:stats().api_requests_by_operation[EXPORT] or 0
  end

  setup(function()
    emu, wf, limited = helpers.start_api()
    dir = helpers.temp_dir()
  end)
  teardown(function()
    helpers.stop_api(emu, wf, limited)
    if dir then os.execute("rm -rf " .. dir) end
  end)
  before_each(function()
    emu:reset()
    os.execute("rm -rf " .. dir .. "/*")
  end)

  it("are asked for with the Accept they need", function()
    -- the export answers a zip: asked for as JSON, the service has nothing acceptable
    local _, err = wf:request("GET", "/v1/export", { accept = "application/json" })
    assert.equal(406, err.status)
    local zip, request_meta = assert(wf:request("GET", "/v1/export"))
    assert.equal("application/zip", request_meta.headers["content-type"])
    assert.equal("PK\5\6", zip:sub(1, 4))
    local bytes, meta = assert(wf:export(dir .. "/empty.zip"))
    assert.equal(22, bytes)
    assert.equal(200, meta.status)
    assert.equal("PK\5\6", helpers.read_file(dir .. "/empty.zip"):sub(1, 4))
  end)

  it("go to a file as they come, beyond max_response", function()
    local small = assert(sapwf.new{ service_key = emu:service_key("full"),
                                    max_response = 16 * 1024 })
    emu:export_lines(20000)                          -- 180 KB, 11 times max_response
    local _, err = small:request("GET", "/v1/export")
    assert.equal("server", err.kind)                 -- in memory: refused, as promised
    assert.matches("max_response", err.message, 1, true)
    collectgarbage("collect")
    local before = collectgarbage("count")
    local bytes = assert(small:export(dir .. "/big.zip"))
    local grown = collectgarbage("count") - before
    assert.equal(20000 * 9, bytes)
    assert.is_true(grown < 64, grown .. " KiB more Lua heap for a 180 KB answer")
    assert.equal(numbered(20000), helpers.read_file(dir .. "/big.zip"))
    -- wf:request's to_file does the same for any call
    assert.equal(20000 * 9, assert(small:request("GET", "/v1/export",
                                                 { to_file = dir .. "/req.zip" })))
    assert.equal(numbered(20000), helpers.read_file(dir .. "/req.zip"))
    assert.same({ "big.zip", "req.zip" }, helpers.listing(dir))
    small:close()
  end)

  it("leave the file as it was when the call fails, and nothing beside it", function()
    local target = dir .. "/keep.zip"
    helpers.write_file(target, "the export of yesterday")
    local _, err = limited:export(target)
    assert.equal("forbidden", err.kind)
    assert.equal("DATA_EXPORT", err.authority)
    assert.equal("the export of yesterday", helpers.read_file(target))
    assert.same({ "keep.zip" }, helpers.listing(dir))
    -- the connection breaks in the middle of the body, every time
    emu:export_lines(5000)
    emu:fault{ fault = "truncate", method = "GET", path = "/v1/export", times = -1 }
    local once = assert(sapwf.new{ service_key = emu:service_key("full"), retries = 0 })
    _, err = once:export(target)
    assert.equal("network", err.kind)
    assert.equal("the export of yesterday", helpers.read_file(target))
    assert.same({ "keep.zip" }, helpers.listing(dir))
    once:close()
  end)

  it("leave nothing beside the file when something raises meanwhile, and raise that",
     function()
    local target = dir .. "/keep.zip"
    helpers.write_file(target, "the export of yesterday")
    -- one 503 (a retry, so the log hook is called), and the hook raises
    emu:fault{ fault = "status", status = 503, method = "GET", path = "/v1/export", times = 1 }
    local raising = assert(sapwf.new{ service_key = emu:service_key("full"), backoff_base = 0,
                                      log = function() error("the log hook broke") end })
    local ok, err = pcall(raising.export, raising, target)
    assert.is_false(ok)
    assert.matches("the log hook broke", tostring(err), 1, true)
    assert.equal("the export of yesterday", helpers.read_file(target))
    assert.same({ "keep.zip" }, helpers.listing(dir))
    -- to_file the same
    emu:fault{ fault = "status", status = 503, method = "GET", path = "/v1/export", times = 1 }
    ok, err = pcall(raising.request, raising, "GET", "/v1/export", { to_file = target })
    assert.is_false(ok)
    assert.matches("the log hook broke", tostring(err), 1, true)
    assert.same({ "keep.zip" }, helpers.listing(dir))
    raising:close()
  end)

  it("go to a file from a batch's item too, whose wait before a retry yields", function()
    -- the protected call around the sending lets it yield (Lua 5.2 on, LuaJIT)
    emu:export_lines(10)
    emu:fault{ fault = "status", status = 503, method = "GET", path = "/v1/export", times = 1 }
    local quick = assert(sapwf.new{ service_key = emu:service_key("full"),
                                    backoff_base = 0.01 })
    local done = quick:map({ 1 }, function(w) return w:export(dir .. "/mapped.zip") end)
    assert.equal(90, done[1], tostring(done[1]))
    assert.equal(numbered(10), helpers.read_file(dir .. "/mapped.zip"))
    assert.same({ "mapped.zip" }, helpers.listing(dir))
    assert.equal(2, exports())
    quick:close()
  end)

  it("end at once when a signal comes while core.catch_sigint catches it, as a GET does; a " ..
     "start does not", function()
    local target = dir .. "/keep.zip"
    helpers.write_file(target, "the export of yesterday")
    local pid = helpers.our_pid()
    emu:fault{ fault = "delay", delay = 3, method = "GET", path = "/v1/export", times = 1 }
    core.catch_sigint(true)
    local ok, bytes, err = pcall(function()
      assert(helpers.run("(sleep 0.3; kill -INT " .. pid .. ") >/dev/null 2>&1 &"))
      local started = core.monotonic()
      local b, e = wf:export(target)
      assert.is_true(core.monotonic() - started < 2)    -- not after the 3 s the answer takes
      return b, e
    end)
    local caught, name = core.sigint_caught()
    -- a call that may change something runs to its end; a GET (nothing changes) does not
    emu:fault{ fault = "delay", delay = 0.2, method = "POST", path = "/v1/workflow-instances",
               times = 1 }
    local inst = wf:start("simple")
    local definitions, derr = wf:definitions()
    core.catch_sigint(false)
    assert.is_true(ok, tostring(bytes))
    assert.is_nil(bytes)
    assert.equal("interrupted", err.kind)
    assert.is_false(err.retryable)
    assert.is_true(caught)
    assert.equal("SIGINT", name)
    assert.is_string(inst and inst.id)
    assert.is_nil(definitions)
    assert.equal("interrupted", derr.kind)
    assert.equal("interrupted before the whole answer came", derr.message)
    assert.equal("the export of yesterday", helpers.read_file(target))
    assert.same({ "keep.zip" }, helpers.listing(dir))
  end)

  it("waiting to be sent again (503, Retry-After 5): a signal catch_sigint catches ends the " ..
     "wait, and it is not sent again", function()
    local target = dir .. "/keep.zip"
    helpers.write_file(target, "the export of yesterday")
    local pid = helpers.our_pid()
    emu:fault{ fault = "status", status = 503, retry_after = 5, method = "GET",
               path = "/v1/export", times = 1 }
    local events = {}
    local quick = assert(sapwf.new{ service_key = emu:service_key("full"), log = function(e)
      events[#events + 1] = e.event
      -- the signal 0.1 s into the wait, however long the 503 took to come (valgrind)
      if e.event == "retry" then
        assert(helpers.run("(sleep 0.1; kill -INT " .. pid .. ") >/dev/null 2>&1 &"))
      end
    end })
    assert(quick:token())                         -- not the signal's business
    local caught, ok, bytes, err, took = helpers.caught_while(function()
      local started = core.monotonic()
      local b, e = quick:export(target)
      return b, e, core.monotonic() - started
    end)
    quick:close()
    assert.is_true(ok, tostring(bytes))
    assert.is_true(took < 2, "took " .. took .. " s")   -- not the 5 s the service asked for
    assert.is_nil(bytes)
    assert.equal(503, err.status)                 -- the last attempt's error, marked
    assert.is_true(err.interrupted)
    assert.is_nil(err.attempts)                   -- sent once
    assert.equal("rejected", err.outcome)
    assert.is_true(caught)
    assert.equal(1, exports())
    assert.same({ "retry", "retry_cancelled" }, events)
    assert.equal("the export of yesterday", helpers.read_file(target))
    assert.same({ "keep.zip" }, helpers.listing(dir))
  end)

  it("refuse a path that names no regular file, send nothing and leave it as it was",
     function()
    -- a rename would put a regular file in place of a FIFO or a device (as root, of
    -- /dev/null), and cannot replace a directory
    local fifo, folder = dir .. "/pipe", dir .. "/folder"
    assert(helpers.run("mkfifo " .. fifo .. " && mkdir " .. folder))
    local cases = { { fifo, "fifo" }, { folder, "directory" } }
    -- a device node needs root; /dev/null itself is no place to try it
    if helpers.run("mknod " .. dir .. "/null c 1 3 2>/dev/null") then
      cases[#cases + 1] = { dir .. "/null", "character device" }
    end
    for _, case in ipairs(cases) do
      local _, err = wf:export(case[1])
      assert.equal("io", err.kind)
      assert.equal("not_sent", err.outcome)
      assert.equal(case[1] .. " is no regular file (" .. case[2] .. "): the answer is written "
        .. "beside it and renamed over it, which would replace it; give the name of a file",
        err.message)
      assert.equal(case[2], (core.file_kind(case[1])))
      _, err = wf:request("GET", "/v1/export", { to_file = case[1] })
      assert.equal("io", err.kind)
    end
    assert.equal(0, exports())
    assert.same(#cases == 3 and { "folder", "null", "pipe" } or { "folder", "pipe" },
                helpers.listing(dir))
  end)

  it("follow a link to the file it names, and refuse a link to nothing or a loop", function()
    helpers.write_file(dir .. "/2026.zip", "the export of yesterday")
    assert(helpers.run("ln -s 2026.zip " .. dir .. "/latest.zip"))
    emu:export_lines(10)
    assert.equal(90, assert(wf:export(dir .. "/latest.zip")))
    assert.is_true(core.is_link(dir .. "/latest.zip"))     -- still the link
    assert.equal(numbered(10), helpers.read_file(dir .. "/2026.zip"))
    assert.same({ "2026.zip", "latest.zip" }, helpers.listing(dir))
    -- a link to nothing names no file to replace: it stays, nothing is sent
    assert(helpers.run("ln -s nowhere.zip " .. dir .. "/dangling.zip"))
    local _, err = wf:export(dir .. "/dangling.zip")
    assert.equal("io", err.kind)
    assert.equal("not_sent", err.outcome)
    assert.matches("dangling.zip is a symbolic link to nothing", err.message, 1, true)
    assert.same({ "2026.zip", "dangling.zip", "latest.zip" }, helpers.listing(dir))
    -- nor does a path that cannot be examined (a link loop)
    assert(helpers.run("ln -s loop.zip " .. dir .. "/loop.zip"))
    _, err = wf:export(dir .. "/loop.zip")
    assert.equal("not_sent", err.outcome)
    assert.equal("cannot examine " .. dir .. "/loop.zip: Too many levels of symbolic links",
                 err.message)
    assert.same({ "2026.zip", "dangling.zip", "latest.zip", "loop.zip" }, helpers.listing(dir))
    assert.equal(1, exports())
  end)

  it("keep the permissions of the file they replace; a new file gets a new file's", function()
    emu:export_lines(1)
    local target, linked = dir .. "/served.zip", dir .. "/linked.zip"
    helpers.write_file(target, "old")
    helpers.write_file(linked, "old")
    assert(helpers.run("chmod 644 " .. target .. " && chmod 444 " .. linked
                       .. " && ln -s linked.zip " .. dir .. "/link.zip"))
    assert(wf:export(target))
    assert.equal("644", helpers.file_mode(target))       -- not the part file's 600
    assert(wf:export(dir .. "/link.zip"))
    assert.equal("444", helpers.file_mode(linked))
    assert.equal(numbered(1), helpers.read_file(linked))
    assert(wf:export(dir .. "/new.zip"))
    assert(io.open(dir .. "/plain", "w")):close()        -- what the umask gives a new file
    assert.equal(helpers.file_mode(dir .. "/plain"), helpers.file_mode(dir .. "/new.zip"))
  end)

  it("start over when a read is retried, so the file holds one answer", function()
    emu:export_lines(3000)
    emu:fault{ fault = "truncate", method = "GET", path = "/v1/export", times = 1 }
    local target = dir .. "/retried.zip"
    local bytes = assert(wf:export(target))
    assert.equal(3000 * 9, bytes)
    assert.equal(numbered(3000), helpers.read_file(target))
    assert.equal(2, exports())
  end)

  it("say when the file cannot be written, and send nothing then", function()
    local _, err = wf:export(dir .. "/no/such/folder/x.zip")
    assert.equal("io", err.kind)
    assert.equal("not_sent", err.outcome)
    assert.matches("cannot write a file beside " .. dir .. "/no/such/folder/x.zip: ", err.message,
                   1, true)
    assert.equal(0, exports())
    -- a disk that fills up while the answer comes: the C core's write fails and says why
    local c = assert(core.new(helpers.core_options(emu, "full")))
    local status, cerr = c:request("GET", "/v1/export", nil, nil, { to_file = "/dev/full",
      accept = "application/zip" })
    assert.is_nil(status)
    assert.equal("io", cerr.kind)
    assert.matches("cannot write the answer to /dev/full: No space left on device",
                   cerr.message, 1, true)
    c:close()
  end)

  it("raise for arguments of the wrong kind, naming them", function()
    helpers.assert_raises_here({
      { function() wf:export() end,
        "bad argument #1 to 'export' (non-empty string expected, got nil)" },
      { function() wf:export("") end,
        "bad argument #1 to 'export' (non-empty string expected, got an empty one)" },
      { function() wf:request("GET", "/v1/export", { to_file = 1 }) end,
        "bad argument #3 to 'request' (to_file: non-empty string expected, got number)" },
      { function() wf:request("GET", "/v1/export", { accept = "a\r\nX-Evil: 1" }) end,
        "bad argument #3 to 'request' (accept: a header value without control characters "
          .. "expected)" },
    }, "spec/51%-export_spec%.lua$")
    local c = assert(core.new(helpers.core_options(emu, "full")))
    assert.has_error(function() c:request("GET", "/v1/export", nil, nil, { accept = "a\nb" }) end,
      "bad argument #5 to 'request' (accept: a header value without control characters "
        .. "expected)")
    assert.has_error(function() c:request("GET", "/v1/export", nil, nil, { to_file = 5 }) end,
      "bad argument #5 to 'request' (to_file: string expected)")
    c:close()
  end)
end)
