-- Secrets never leave: the client secret, the Basic header it makes, the access tokens and
-- private keys appear in no error (any field, tostring), no tostring of a client, no log
-- event, no raised message and no output of the command line, whatever went wrong.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"
local R = require "spec.support.reliability"

describe("secrets", function()
  local emu, needles, key

  setup(function()
    emu = helpers.start_emulator()
    needles, key = R.needles(emu, "full")
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  -- Everything a program could print about these calls.
  local function collect(into, ...)
    for i = 1, select("#", ...) do into[#into + 1] = (select(i, ...)) end
    local last = select(select("#", ...), ...)
    if last ~= nil then into[#into + 1] = tostring(last) end
  end

  it("no error, tostring or log event of a failing client holds one", function()
    local seen = {}
    local wf, events = R.client(emu, "full", { timeout = 0.5, retry_deadline = 2 })
    local tokens = {}
    tokens[1] = assert(wf:token())
    -- A forced refresh that works after a retry (a slow machine: valgrind) hands out a token
    -- on purpose: keep its other results (seconds left and scope, or the error) only.
    local function token_refresh() return select(2, wf:token(true)) end
    local calls = {
      { { fault = "status", status = 500, method = "POST", path = "/v1/workflow-instances" },
        function() return wf:start("simple") end },
      { { fault = "status", status = 503, times = -1, method = "GET" },
        function() return wf:definitions() end },
      { { fault = "html", times = -1, method = "GET" }, function() return wf:instances() end },
      { { fault = "drop_after", method = "POST", path = "/v1/workflow-instances" },
        function() return wf:start("simple") end },
      { { fault = "malformed", method = "GET" }, function() return wf:tasks() end },
      { { fault = "delay", delay = 2, times = -1, method = "GET" },
        function() return wf:forms() end },
      { { fault = "status", status = 401, times = 2, method = "GET" },
        function() return wf:definitions() end },
      { { fault = "status", status = 500, times = -1, path = "/oauth/token" },
        token_refresh },
      { { fault = "status", status = 401, times = -1, path = "/oauth/token" },
        function() return wf:instances() end },
      { { fault = "malformed", path = "/oauth/token" }, token_refresh },
      { { fault = "oversize", size = 20 * 1024 * 1024, path = "/oauth/token" },
        token_refresh },
    }
    for _, call in ipairs(calls) do
      emu:clear_faults()
      call[1].times = call[1].times or 1
      emu:fault(call[1])
      collect(seen, call[2]())
      emu:clear_faults()
      local token = wf:token()
      if token then tokens[#tokens + 1] = token end
    end
    collect(seen, wf:request("GET", "/v1/forms", { query = { x = tokens[1] ~= nil } }))
    seen[#seen + 1] = tostring(wf)
    seen[#seen + 1] = tostring(rawget(wf, "_core"))
    seen[#seen + 1] = wf                           -- every field of the client table
    seen[#seen + 1] = events
    assert.is_true(#events > 5)
    local all = {}
    for k, v in pairs(needles) do all[k] = v end
    for i, token in ipairs(tokens) do all["token " .. i] = token end
    assert.is_true(#tokens >= 2)
    R.assert_no_secret(seen, all, "what the client handed out")
    wf:close()
    R.assert_no_secret({ tostring(wf), wf }, all, "a closed client")
  end)

  -- A server's own words go into err.message, err.details, err.code and tostring(err): a
  -- token endpoint or an API that quotes what it was sent must not carry it into them.
  it("a server's text that quotes the secret, the Basic credentials or the token: redacted",
     function()
    local cjson = require "cjson"
    local wf = R.client(emu, "full", { retries = 0 })
    -- the token before the last renewal too: a request in flight may have carried it
    local old = assert(wf:token())
    local token = assert(wf:token(true))
    assert.are_not.equal(old, token)
    local all = { token = token, ["the token before"] = old,
                  ["secret's start"] = needles.secret:sub(1, 12) }
    for k, v in pairs(needles) do all[k] = v end
    local seen = {}
    -- the token endpoint's OAuth error; the second description is longer than the core's
    -- message, which must not cut the secret in two and keep its start
    for _, description in ipairs({
        "client secret " .. needles.secret .. " refused (" .. needles["Basic header"] .. ")",
        string.rep("x", 400) .. needles.secret }) do
      emu:clear_faults()
      emu:fault{ fault = "body", status = 400, path = "/oauth/token", body = cjson.encode{
        error = "invalid_client " .. needles.secret, error_description = description } }
      local t, err = wf:token(true)
      assert.is_nil(t)
      assert.equal("auth", err.kind)
      collect(seen, t, err)
    end
    assert.matches("client secret [redacted] refused (Basic [redacted])", seen[2], 1, true)
    -- an API answer that echoes the token it was sent, in each field an error takes
    emu:clear_faults()
    emu:fault{ fault = "body", status = 400, method = "GET", body = cjson.encode{ error = {
      message = "token " .. token .. " refused, not " .. old, code = "c" .. token,
      logId = token,
      details = { { message = "Bearer " .. token, target = needles.secret } } } } }
    collect(seen, wf:definitions())
    assert.matches("token [redacted] refused, not [redacted]", seen[#seen], 1, true)
    emu:clear_faults()
    emu:fault{ fault = "body", status = 502, method = "GET", body = cjson.encode{
      fault = { faultstring = "no route for " .. needles.basic } } }
    collect(seen, wf:request("GET", "/v1/forms"))
    assert.matches("no route for [redacted]", seen[#seen], 1, true)
    emu:clear_faults()
    R.assert_no_secret(seen, all, "an error quoting a server")
    wf:close()
  end)

  it("answers a batch hands over after its client was closed: still redacted", function()
    local cjson = require "cjson"
    local wf = R.client(emu, "full", { retries = 0 })
    local token = assert(wf:token())
    local all = { token = token }
    for k, v in pairs(needles) do all[k] = v end
    emu:fault{ fault = "body", status = 400, method = "POST", times = -1,
               path = "/v1/workflow-instances", body = cjson.encode{ error = {
                 message = "token " .. token .. " of " .. needles.secret .. " refused ("
                   .. needles["Basic header"] .. ")" } } }
    local items = {}
    for i = 1, 8 do items[i] = { definitionId = "simple" } end
    -- the first result closes the client: the other starts in flight end after the close
    local ok, err = pcall(wf.start_many, wf, items, { concurrency = 4, on_progress =
      function(done) if done == 1 then wf:close() end end })
    emu:clear_faults()
    assert.is_false(ok)
    assert.matches("closed sapwf client", tostring(err))
    local seen, answered = { tostring(err) }, 0
    for _, r in pairs(err.results) do
      collect(seen, r)
      if r.status == 400 then
        answered = answered + 1
        -- (a failure here names no text: it would print the secrets)
        assert.is_truthy(tostring(r):find(
          "token [redacted] of [redacted] refused (Basic [redacted])", 1, true),
          "an error handed over after the close is not redacted")
      else                                      -- the next item: refused, not sent
        assert.same({ "config", "not_sent" }, { r.kind, r.outcome })
      end
    end
    assert.equal(4, answered)                   -- the first and the three in flight with it
    R.assert_no_secret(seen, all, "an answer handed over after the close")
  end)

  it("a batch's answer that quotes a token two renewals old: redacted", function()
    local cjson = require "cjson"
    local wf = R.client(emu, "full", { retries = 0 })
    local first = assert(wf:token())
    emu:fault{ fault = "body", status = 400, delay = 0.5, method = "GET",
               path = "/v1/workflow-definitions",
               body = cjson.encode{ error = { message = "token " .. first .. " refused" } } }
    local renewed = {}
    local results = wf:map({ 1, 2 }, function(w, item)
      if item == 1 then return w:definitions() end
      -- while item 1's request carries the first token, two renewals: the client then
      -- keeps neither it as its token nor as the one before
      renewed[1] = assert(w:token(true))
      renewed[2] = assert(w:token(true))
      return true
    end, { concurrency = 2 })
    emu:clear_faults()
    assert.is_true(first ~= renewed[1] and renewed[1] ~= renewed[2], "two renewals")
    local err = results[1]
    assert.equal(400, err.status)
    -- (a failure here names no text: it would print the token)
    assert.is_truthy(tostring(err):find("token [redacted] refused", 1, true),
                     "an answer quoting a token two renewals old is not redacted")
    R.assert_no_secret({ tostring(err), err }, { token = first }, "the error")
    wf:close()
  end)

  it("a closed client keeps what redact takes out only while a batch of it is open",
     function()
    -- (each client is kept: collected, its finalizer would close its core under the test)
    local wf = assert(sapwf.new{ service_key = key })
    local c = wf._core
    local token = assert(c:token())
    local text = "token " .. token .. " of " .. needles.secret
    local b1, b2 = c:batch(2), c:batch(1)
    c:close()
    assert.equal("token [redacted] of [redacted]", c:redact(text))
    b1:close()
    assert.equal("token [redacted] of [redacted]", c:redact(text))
    b2:close()                                  -- the last one: the secrets are wiped
    assert.is_true(c:redact(text) == text, "a closed client without batches still redacts")
    -- with no batch open, close wipes them at once
    local wf2 = assert(sapwf.new{ service_key = key })
    local c2 = wf2._core
    assert(c2:token())
    c2:close()
    assert.is_true(c2:redact(needles.secret) == needles.secret)
    wf:close()                                  -- (closing again does nothing)
    wf2:close()
  end)

  it("a wrong secret: no part of it in the error, its tostring or the client", function()
    local wrong = "Wr0ng$ecret/+=" .. string.rep("q", 30)
    local bad_key = emu:service_key("full")
    bad_key.uaa.clientsecret = wrong
    local wf = assert(sapwf.new{ service_key = bad_key, backoff_base = 0.01 })
    local _, err = wf:start("simple")
    assert.equal("auth", err.kind)
    local wrong_needles = { wrong = wrong, basic = R.base64(bad_key.uaa.clientid .. ":" .. wrong),
                            half = wrong:sub(1, 12) }
    R.assert_no_secret({ err, tostring(err), tostring(wf), wf }, wrong_needles, "an auth error")
  end)

  it("raised argument errors do not quote a secret given in an option", function()
    local cases = {
      { api_url = "https://x", token_url = "https://x", client_id = "c",
        client_secret = needles.secret, timeout = "soon" },
      { api_url = "https://x", token_url = "https://x", client_id = "c",
        client_secret = needles.secret, bogus = needles.secret },
      { api_url = "https://x", token_url = "https://x", client_id = "c",
        client_secret = needles.secret .. "\0" },
      { service_key = key, retries = needles.secret },
    }
    for _, opts in ipairs(cases) do
      local ok, err = pcall(sapwf.new, opts)
      assert.is_false(ok)
      R.assert_no_secret({ err }, needles, "a raised message")
    end
  end)

  it("service key text that is not JSON is never quoted back", function()
    local cjson = require "cjson"
    local text = cjson.encode(key)
    for _, broken in ipairs({ "[" .. text .. "]", text:sub(2), "x" .. text, text:sub(1, -3) }) do
      local wf, err = sapwf.new{ service_key = broken }
      assert.is_nil(wf)
      assert.equal("config", err.kind)
      R.assert_no_secret({ err, tostring(err) }, needles, "a service key error")
    end
    -- a byte order mark before the JSON is read past
    assert(sapwf.new{ service_key = "\239\187\191" .. text })
  end)

  -- Every piece of 6 bytes of marker: an error holding any part of it holds one of them.
  local function pieces(marker)
    local list = {}
    for i = 1, #marker - 5 do list["piece " .. i] = marker:sub(i, i + 5) end
    return list
  end
  local MARKER = "zQ7TOPSECRETk9W"

  -- Key strings that are not a path the user gave (text, text gone wrong, or a name that
  -- cannot be opened), each holding MARKER: the error names none of it.
  local function not_paths(marker)
    return {
      marker .. "\0tail",                              -- io.open would name what is before
      "uaa.clientsecret=" .. marker .. "\0\n",
      "head\0" .. marker,
      marker .. "\n",
      "Getting key k...\n" .. marker,
      "\239\187\191" .. marker,                        -- a byte order mark, then no file
      "/nonexistent/" .. marker .. "/key.json",         -- no such file
      "/dev/null/" .. marker,                           -- not a directory
      string.rep("x", 300) .. marker,                   -- a name too long
      marker .. string.rep("/..", 2000),                 -- a path too long
      "%s%d" .. marker .. "%",                          -- format directives
      '{"uaa":{"clientsecret":"' .. marker .. '"}',     -- cut short
    }
  end

  it("no part of a key string that is not a path comes back in an error", function()
    local needles_ = pieces(MARKER)
    for i, text in ipairs(not_paths(MARKER)) do
      local wf, err = sapwf.new{ service_key = text }
      assert.is_nil(wf, "case " .. i)
      assert.equal("config", err.kind, "case " .. i)
      R.assert_no_secret({ err, tostring(err) }, needles_, "the error of case " .. i)
      local _, load_err = require("sapwf.servicekey").load(text)
      R.assert_no_secret({ load_err, tostring(load_err) }, needles_, "load's error, case " .. i)
    end
  end)

  it("a private key never appears, even when it does not fit the certificate", function()
    local x509 = emu:service_key("x509", { tls = true })
    local body = x509.uaa.key:match("\n([A-Za-z0-9+/=]+)\n")
    assert.is_string(body)
    local key_needles = { ["private key line"] = body, ["private key"] = x509.uaa.key }
    -- the right certificate with a key that does not belong to it: the server's
    local server_key = io.open((emu.ca_file:gsub("ca%.pem$", "server.key")), "rb")
    local mismatched = assert(server_key):read("*a")
    server_key:close()
    assert.matches("PRIVATE KEY", mismatched)
    local cases = {
      { cert = x509.uaa.certificate, key = mismatched },
      { cert = x509.uaa.certificate, key = "not a key" },
      { cert = "not a certificate", key = x509.uaa.key },
    }
    for _, case in ipairs(cases) do
      local wf, err = sapwf.new{ api_url = x509.endpoints.workflow_rest_url,
        token_url = x509.uaa.certurl .. "/oauth/token", client_id = x509.uaa.clientid,
        cert = case.cert, key = case.key, cafile = emu.ca_file, retries = 0 }
      if wf then
        local token
        token, err = wf:token()
        assert.is_nil(token)
        R.assert_no_secret({ err, tostring(err), tostring(wf), wf }, key_needles, "an x509 error")
        R.assert_no_secret({ err, tostring(err) }, { mismatched = mismatched:match(
          "\n([A-Za-z0-9+/=]+)\n") or mismatched }, "an x509 error")
      else
        R.assert_no_secret({ err, tostring(err) }, key_needles, "an x509 error")
      end
    end
  end)

  describe("the command line", function()
    local dir

    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      assert.is_true(R.run("mkdir -p " .. dir))
    end)
    teardown(function() R.run("rm -rf " .. dir) end)

    -- stdout and stderr of bin/sapwf, together.
    local function run(args)
      local quoted = {}
      for i, a in ipairs(args) do quoted[i] = "'" .. a:gsub("'", "'\\''") .. "'" end
      local pipe = assert(io.popen("env -u SAPWF_SERVICE_KEY -u VCAP_SERVICES lua5.4 bin/sapwf "
        .. table.concat(quoted, " ") .. " </dev/null 2>&1"))
      local out = pipe:read("*a")
      pipe:close()
      return out
    end

    it("prints no secret, Basic header or token on any failure", function()
      local cjson = require "cjson"
      local full, bad = dir .. "/full.json", dir .. "/bad.json"
      helpers.write_file(full, cjson.encode(key))
      local bad_key = emu:service_key("full")
      bad_key.uaa.clientsecret = needles.secret .. "x"
      helpers.write_file(bad, cjson.encode(bad_key))
      local limited = dir .. "/limited.json"
      helpers.write_file(limited, cjson.encode(emu:service_key("limited")))
      local limited_needles = R.needles(emu, "limited")

      local outputs = {}
      local function capture(args, fault)
        emu:clear_faults()
        if fault then emu:fault(fault) end
        outputs[#outputs + 1] = run(args)
      end
      capture({ "--service-key", bad, "definitions" })
      capture({ "--service-key", bad, "token" })
      capture({ "--service-key", bad, "doctor" })
      capture({ "--service-key", limited, "start", "simple" })
      capture({ "--service-key", limited, "doctor" })
      capture({ "--service-key", full, "definitions" },
              { fault = "status", status = 500, times = -1, path = "/oauth/token" })
      -- failures sapwf does not retry (a start that may have run), so the test stays quick
      capture({ "--service-key", full, "-o", "json", "start", "simple" },
              { fault = "html", times = 1, method = "POST" })
      capture({ "--service-key", full, "start", "simple" },
              { fault = "drop_after", times = 1, method = "POST" })
      capture({ "--service-key", full, "--timeout", "0.3", "start", "simple" },
              { fault = "delay", delay = 1, times = 1, method = "POST" })
      capture({ "--service-key", full, "token" })
      capture({ "--service-key", full, "-o", "json", "token" })
      capture({ "--service-key", full, "doctor" })
      emu:clear_faults()
      assert.is_true(#outputs == 12)
      for i, out in ipairs(outputs) do
        assert.is_true(#out > 0, "run " .. i .. " printed nothing")
      end
      local all = {}
      for k, v in pairs(needles) do all[k] = v end
      for k, v in pairs(limited_needles) do all["limited " .. k] = v end
      all["bad secret"] = bad_key.uaa.clientsecret
      all["a JWT"] = "eyJ"                           -- any access token, whoever fetched it
      R.assert_no_secret(outputs, all, "the command line's output")
    end)

    it("prints no part of a key that is text, in a file or given, on any failure", function()
      local outputs = {}
      local texts = not_paths(MARKER)
      -- in a file (its content is never taken as a path): the NUL bytes, and JSON cut short.
      -- A few cases only, each run costs a process; the module's spec above has them all.
      for _, i in ipairs({ 1, 2, 3, 12 }) do
        local file = dir .. "/text" .. i .. ".json"
        helpers.write_file(file, texts[i])
        outputs[#outputs + 1] = run({ "--service-key", file, "token" })
      end
      -- given as text (an argument cannot hold a NUL byte): cf's line, names that fail
      for _, i in ipairs({ 5, 7, 9 }) do
        outputs[#outputs + 1] = run({ "--service-key", texts[i], "token" })
      end
      for i, out in ipairs(outputs) do
        assert.is_truthy(out:find("^sapwf: config: "), "run " .. i .. " did not end on the key")
      end
      R.assert_no_secret(outputs, pieces(MARKER), "the command line's output")
    end)
  end)
end)
