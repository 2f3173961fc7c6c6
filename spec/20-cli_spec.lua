-- The sapwf command line as users get it: installed by `make install` under a temporary
-- PREFIX and run as a real process (PREFIX/bin/sapwf) against the emulator:
-- every command, the exit codes, bulk starts (failed and record files, unknown outcomes,
-- Ctrl-C), the progress bar and table output on a terminal (util-linux `script` gives the
-- pty), the emulator command, and that no secret ever shows in what it prints.
local json = require "sapwf.json"
local monotonic = require("sapwf.core").monotonic
local operations = require "sapwf.operations"
local helpers = require "spec.helpers"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local file = io.open(path, "rb")
  if not file then
    return nil
  end
  local text = file:read("*a")
  file:close()
  return text
end

local function write_file(path, text)
  local file = assert(io.open(path, "wb"))
  file:write(text)
  file:close()
end

local function exists(path)
  return read_file(path) ~= nil
end

local function lines_of(path)
  local list = {}
  for line in (read_file(path) or ""):gmatch("[^\n]+") do
    list[#list + 1] = line
  end
  return list
end

-- The record file's entries of what became of a start (an id, or an unknown outcome), as
-- text: not the sending entry written before each start, nor the failed one after a
-- failure, nor the entries of lines read and not sent (blank, bad).
local function results_of(path)
  local list = {}
  for _, text in ipairs(lines_of(path)) do
    local entry = json.decode(text)
    if not (entry and (entry.outcome == "sending" or entry.outcome == "failed"
                       or entry.outcome == "blank")) then
      list[#list + 1] = text
    end
  end
  return list
end

local function sleep(seconds)
  os.execute("sleep " .. seconds)
end

local function shell(command)
  local ok, _, code = helpers.execute(command)
  return ok == true and code == 0
end

-- Waits up to `seconds` for check() to be true.
local function wait_for(check, seconds)
  for _ = 1, seconds * 20 do
    if check() then
      return true
    end
    sleep(0.05)
  end
  return check()
end

local function contains(list, value)
  for _, item in ipairs(list) do
    if item == value then
      return true
    end
  end
  return false
end

describe("sapwf command line", function()
  local emu, dir, full_key, limited_key, secrets
  local installed          -- { bin =, env = } of the command `make install` put under PREFIX
  local tokens = {}        -- tokens printed by `token --raw`; no other output may hold them
  local seq = 0

  -- Every output the tests capture goes through here: no client secret, Basic header or
  -- token may appear in it (only `token --raw` prints a token, and only its own).
  local function assert_no_secret(text, allowed_token)
    for _, secret in ipairs(secrets) do
      assert.is_nil(text:find(secret, 1, true), "a client secret appeared in the output")
    end
    assert.is_nil(text:find("Basic ", 1, true), "a Basic header appeared in the output")
    for _, token in ipairs(tokens) do
      if token ~= allowed_token then
        assert.is_nil(text:find(token, 1, true), "a token appeared in the output")
      end
    end
  end

  -- The sapwf command line as a child process: the environment carries no key, so only
  -- what the test passes counts. Returns {code, stdout, stderr, json}.
  -- The environment of every command the tests run: no key, no Lua paths but those of the
  -- installed command (none after make install: it finds its own modules).
  local function child_env()
    local parts = { "env -u SAPWF_SERVICE_KEY -u VCAP_SERVICES -u LUA_PATH -u LUA_CPATH"
      .. " -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_PATH_5_3 -u LUA_CPATH_5_3"
      .. " -u LUA_INIT -u LUA_INIT_5_4 -u LUA_INIT_5_3 -u SAPWF_DEBUG" }
    for name, value in pairs(installed.env) do
      parts[#parts + 1] = name .. "=" .. quote(value)
    end
    return table.concat(parts, " ")
  end

  local function command_line(args, opts)
    opts = opts or {}
    local parts = { child_env() }
    for name, value in pairs(opts.env or {}) do
      parts[#parts + 1] = name .. "=" .. quote(value)
    end
    parts[#parts + 1] = quote(installed.bin)
    for _, arg in ipairs(args) do
      parts[#parts + 1] = quote(arg)
    end
    local command = table.concat(parts, " ")
    if opts.cwd then command = "cd " .. quote(opts.cwd) .. " && " .. command end
    return command
  end

  local function sapwf(args, opts)
    opts = opts or {}
    seq = seq + 1
    local out, err = dir .. "/out." .. seq, dir .. "/err." .. seq
    local input = "/dev/null"
    if opts.stdin then
      input = dir .. "/in." .. seq
      write_file(input, opts.stdin)
    end
    -- opts.pipe: a shell command whose output is the standard input, readable only once
    local from, stdin = "", " <" .. quote(input)
    if opts.pipe then from, stdin = opts.pipe .. " | ", "" end
    local ok, how, code = helpers.execute(from .. command_line(args, opts) .. stdin .. " >"
      .. quote(out) .. " 2>" .. quote(err))
    assert.equal("exit", how, "sapwf did not exit normally")
    local result = { code = code, ok = ok, stdout = read_file(out), stderr = read_file(err) }
    os.remove(out)
    os.remove(err)
    assert_no_secret(result.stdout, opts.allowed_token)
    assert_no_secret(result.stderr)
    result.json = json.decode(result.stdout)
    return result
  end

  -- With the full key.
  local function run(args, opts)
    local full = { "--service-key", full_key }
    for _, arg in ipairs(args) do
      full[#full + 1] = arg
    end
    return sapwf(full, opts)
  end

  -- The pid a backgrounded shell writes with `echo $! > pid_file`: the file is there before
  -- the digits are, so this waits for them (5 s at most).
  local function pid_from(pid_file)
    local pid
    assert.is_true(wait_for(function()
      pid = (read_file(pid_file) or ""):match("%d+")
      return pid ~= nil
    end, 5), "no pid in " .. pid_file)
    return pid
  end

  -- Runs `sapwf args` in the background and sends it `signal` after `after` seconds (or
  -- once after(), a function, is true: within 5 s).
  -- Returns its exit code, its summary (stdout as JSON), its stderr and the seconds from the
  -- last signal to its end. prefix: shell words before the command (`trap '' HUP;` as nohup
  -- does); again: seconds after which the same signal is sent a second time.
  local function run_signalled(args, signal, after, prefix, again)
    seq = seq + 1
    local base = dir .. "/bg." .. seq
    local pid_file, rc_file, out, err = base .. ".pid", base .. ".rc", base .. ".out",
      base .. ".err"
    local inner = (prefix or "") .. command_line(args) .. " </dev/null >" .. quote(out)
      .. " 2>" .. quote(err)
      .. " & echo $! > " .. quote(pid_file) .. "; wait $!; echo $? > " .. quote(rc_file)
    -- The command gets the default handling of the signals it is sent, whatever this
    -- process ignores (under nohup, SIGHUP): an ignored one stays ignored in children.
    assert.is_true(shell("env --default-signal=HUP,TERM sh -c " .. quote(inner)
      .. " >/dev/null 2>&1 &"))
    local kill = "kill -" .. signal .. " " .. pid_from(pid_file)
    if type(after) == "function" then
      assert.is_true(wait_for(after, 5))
    else
      sleep(after)
    end
    if again == 0 then                          -- twice at once, as `timeout` sends it
      assert.is_true(shell(kill .. "; " .. kill))
    elseif again then
      assert.is_true(shell(kill))
      sleep(again)
      assert.is_true(shell(kill))
    else
      assert.is_true(shell(kill))
    end
    local signalled = monotonic()
    assert.is_true(wait_for(function() return (read_file(rc_file) or "") ~= "" end, 15))
    local took = monotonic() - signalled
    local stderr = read_file(err)
    assert_no_secret(stderr)
    return tonumber(read_file(rc_file):match("%d+")), json.decode(read_file(out) or ""),
      stderr, took
  end

  local function start(definition, context)
    local r = run({ "start", definition, "--context", json.encode(context or {}) })
    assert.equal(0, r.code, r.stderr)
    return r.json
  end

  local function instances_started()
    return emu:stats().instances_started
  end

  -- One more match than the API's window reaches ($skip 4000 + $top 1000): `definition`'s
  -- instances, each a millisecond after the one before. Returns their ids, oldest first.
  local PAST_WINDOW = 5001
  local function seed_past_window(definition)
    return emu:seed_instances{ count = PAST_WINDOW, definition = definition,
      context = { product = "Tea", orderId = "w" }, started_at = function(i)
        return string.format("2025-01-01T00:00:%02d.%03dZ", math.floor(i / 1000), i % 1000)
      end }.ids
  end

  -- `sapwf COMMAND --all` over seed_past_window's instances: each of ids once, the time
  -- `field` ascending (id_of: an item's instance id); with --orderby "FIELD desc" it stops
  -- before any output (exit 9). Returns that error's text.
  local function assert_all_past_window(command, ids, field, id_of)
    local all = run({ command, "--all" })
    assert.equal(0, all.code, all.stderr)
    assert.equal(#ids, #all.json)
    local last = ""
    for i, item in ipairs(all.json) do
      assert.equal(ids[i], id_of(item), "item " .. i)
      assert.is_true(item[field] >= last, "not oldest first at " .. i)
      last = item[field]
    end
    local desc = run({ command, "--all", "--orderby", field .. " desc" })
    assert.equal(9, desc.code, desc.stderr)
    assert.equal("", desc.stdout)
    assert.matches(PAST_WINDOW .. " matches from skip 0, but the API can page through only "
      .. "5000 of them", desc.stderr, 1, true)
    return desc.stderr
  end

  setup(function()
    emu = helpers.start_emulator()
    local pipe = io.popen("mktemp -d /tmp/sapwf-cli-spec.XXXXXX")
    dir = pipe:read("*l")
    pipe:close()
    full_key, limited_key = dir .. "/full.json", dir .. "/limited.json"
    local full, limited = emu:service_key("full"), emu:service_key("limited")
    write_file(full_key, json.encode(full))
    write_file(limited_key, json.encode(limited))
    secrets = { full.uaa.clientsecret, limited.uaa.clientsecret }
    assert.is_true(#secrets[1] >= 8 and #secrets[2] >= 8)
    -- Installed for the interpreter the suite runs on (make test LUA=lua5.1 runs the command
    -- on Lua 5.1), with no inherited MAKEFLAGS, as in spec/07, the emulator beside it (for
    -- `sapwf emulator`); run with no LUA_PATH: the installed command finds its own modules.
    -- SAPWF_CLI names a command installed otherwise (CI: a rock, `luarocks make`), with the
    -- Lua paths of its tree in SAPWF_CLI_LUA_PATH / SAPWF_CLI_LUA_CPATH.
    if os.getenv("SAPWF_CLI") then
      installed = { bin = os.getenv("SAPWF_CLI"),
                    env = { LUA_PATH = os.getenv("SAPWF_CLI_LUA_PATH"),
                            LUA_CPATH = os.getenv("SAPWF_CLI_LUA_CPATH") } }
      return
    end
    local lua = rawget(_G, "jit") and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
    local prefix = dir .. "/prefix"
    assert.is_true(shell("env -u MAKEFLAGS -u MFLAGS make --no-print-directory -s install "
      .. "install-emulator LUA=" .. lua .. " PREFIX=" .. quote(prefix) .. " >"
      .. quote(dir .. "/install.log") .. " 2>&1"), read_file(dir .. "/install.log"))
    installed = { bin = prefix .. "/bin/sapwf", env = {} }
  end)

  teardown(function()
    if emu then
      emu:stop()
    end
    if dir then
      os.execute("rm -rf " .. quote(dir))
    end
  end)

  before_each(function()
    emu:reset()
  end)

  describe("conventions", function()
    it("--version prints the version; `sapwf` alone and `sapwf help` print the help", function()
      local v = sapwf({ "--version" })
      assert.equal(0, v.code)
      assert.matches("^sapwf %d+%.%d+%.%d+\n$", v.stdout)
      local alone = sapwf({})
      assert.equal(0, alone.code)
      assert.matches("^Usage: sapwf ", alone.stdout)
      assert.matches("\n   definitions ", alone.stdout)
      local help = sapwf({ "help" })
      assert.equal(0, help.code)
      assert.equal(alone.stdout, help.stdout)
      local start = sapwf({ "help", "start" })
      assert.equal(0, start.code)
      assert.matches("^Usage: sapwf start ", start.stdout)
      assert.equal(sapwf({ "start", "--help" }).stdout, start.stdout)
    end)

    it("completion prints scripts for bash, zsh and fish that name every command", function()
      for _, shell_name in ipairs({ "bash", "zsh", "fish" }) do
        local r = sapwf({ "completion", shell_name })
        assert.equal(0, r.code, r.stderr)
        for _, name in ipairs({ "definitions", "instances", "start", "doctor", "emulator" }) do
          assert.matches(name, r.stdout, 1, true)
        end
        if shell_name == "bash" then
          local file = dir .. "/completion.bash"
          write_file(file, r.stdout)
          assert.is_true(shell("bash -n " .. quote(file)), "bash cannot parse it")
          assert.is_true(shell("bash -c " .. quote(". " .. file .. " && complete -p sapwf")
            .. " >/dev/null"))
        end
      end
      assert.matches("^#compdef sapwf", sapwf({ "completion", "zsh" }).stdout)
      assert.matches("complete %-c sapwf", sapwf({ "completion", "fish" }).stdout)
    end)
  end)

  describe("output", function()
    it("-o ndjson writes one item per line; with --all page by page, as the pages come",
      function()
        for i = 1, 5 do start("simple", { i = i }) end
        local list = run({ "-o", "ndjson", "instances" })
        assert.equal(0, list.code, list.stderr)
        local lines = 0
        for line in list.stdout:gmatch("[^\n]+") do
          lines = lines + 1
          assert.is_string(json.decode(line).id)
        end
        assert.equal(5, lines)
        -- Each page of the service takes 0.6 s: the first line must come out long before
        -- the last page was fetched (the list is never held whole).
        emu:fault{ fault = "delay", delay = 0.6, times = -1, method = "GET",
                   path = "/v1/workflow-instances" }
        local pipe = io.popen(command_line({ "--service-key", full_key, "-o", "ndjson",
          "instances", "--all", "--top", "2" }) .. " 2>/dev/null")
        local clock = require("sapwf.core").monotonic
        local t0 = clock()
        local first = pipe:read("*l")
        local first_at = clock() - t0
        local rest = pipe:read("*a")
        local total = clock() - t0
        pipe:close()
        emu:clear_faults()
        assert.is_string(json.decode(first).id)
        local count = 1
        for line in rest:gmatch("[^\n]+") do
          count = count + 1
          assert.is_string(json.decode(line).id)
        end
        assert.equal(5, count)
        assert.is_true(total >= 1.8, "3 pages took " .. total .. " s")
        assert.is_true(first_at < total - 1, "first line at " .. first_at .. " s of " .. total)
      end)

    it("a table of a list whose items are not all objects: such an item is its own row",
      function()
        emu:fault({ fault = "body", status = 200, times = 1, method = "GET",
          path = "/v1/workflow-instances", body = '[{"id":"i1","status":"RUNNING"},5,"x"]' })
        local r = run({ "-o", "table", "instances" }, { env = { COLUMNS = "200" } })
        assert.equal(0, r.code, r.stderr)
        local rows = {}
        for line in r.stdout:gmatch("[^\n]+") do rows[#rows + 1] = line:gsub("%s+$", "") end
        assert.equal(4, #rows, r.stdout)
        assert.matches("^i1 +RUNNING$", rows[2])
        assert.same({ "5", "x" }, { rows[3], rows[4] })
      end)

    it("tables fit the terminal's width", function()
      for _, columns in ipairs({ "40", "60", "200" }) do
        local r = run({ "-o", "table", "definitions" }, { env = { COLUMNS = columns } })
        assert.equal(0, r.code, r.stderr)
        local lines = 0
        for line in r.stdout:gmatch("[^\n]+") do
          lines = lines + 1
          local chars = select(2, line:gsub("[^\128-\191]", ""))
          assert.is_true(chars <= tonumber(columns), chars .. " > " .. columns .. ": " .. line)
        end
        assert.equal(4, lines)
        if columns == "200" then assert.matches("Order approval", r.stdout, 1, true) end
      end
    end)

    it("on a terminal without $COLUMNS, tables fit the width `stty size` says", function()
      local typescript = dir .. "/stty-typescript"
      local inner = "unset COLUMNS; stty cols 50 rows 24; "
        .. command_line({ "--service-key", full_key, "definitions" })
      assert.is_true(shell("script -qec " .. quote(inner) .. " " .. quote(typescript)
        .. " </dev/null >/dev/null 2>&1"))
      local screen = read_file(typescript)
      assert_no_secret(screen)
      local rows = 0
      for line in screen:gmatch("[^\r\n]+") do
        if line:find("^id ") or line:find("^orderap") or line:find("^failing ")
          or line:find("^simple ") then
          rows = rows + 1
          local chars = select(2, line:gsub("[^\128-\191]", ""))
          assert.is_true(chars <= 50, chars .. " > 50: " .. line)
        end
      end
      assert.equal(4, rows, screen)
      assert.matches("…", screen, 1, true)     -- cut to fit, not a narrow table anyway
    end)
  end)

  -- -H: the key of an API gateway in front of the service, on every call, never printed.
  describe("--header", function()
    local API_KEY = "gw-cli-" .. ("7"):rep(20)
    before_each(function() emu:api_key("APIKey", API_KEY) end)
    after_each(function() emu:api_key(nil) end)

    local function assert_no_key(r)
      assert.is_nil((r.stdout .. r.stderr):find(API_KEY, 1, true), "the API key appeared")
    end

    it("sends it with every call; without it the gateway refuses (exit 4)", function()
      local r = run({ "-H", "APIKey: " .. API_KEY, "definitions" })
      assert.equal(0, r.code, r.stderr)
      assert.equal(3, #r.json)
      assert_no_key(r)
      local refused = run({ "definitions" })
      assert.equal(4, refused.code, refused.stderr)
      assert.matches("Invalid ApiKey", refused.stderr, 1, true)
      assert.matches("behind an API gateway, give its key with --header", refused.stderr, 1,
                     true)
      -- doctor without it: every list fails with 401, so its verdict is FAIL with that
      -- failure's exit code, not "every authority needed is granted" (docs/CLI.md)
      local doctor = run({ "-o", "table", "doctor" })
      assert.equal(4, doctor.code, doctor.stdout)
      assert.matches("\nFAIL  5 calls failed, the first: auth %(401%) GET /v1/workflow%-"
        .. "definitions: Invalid ApiKey[^\n]*\n$", doctor.stdout)
      assert.is_nil(doctor.stdout:find("OK    every authority", 1, true))
      assert.matches("  ERR  auth (401) GET /v1/forms: Invalid ApiKey", doctor.stdout, 1, true)
      assert.matches("behind an API gateway, give its key with --header", doctor.stderr, 1,
                     true)
      local report = run({ "-o", "json", "doctor" }).json
      assert.is_false(report.ok)
      assert.equal(5, report.errors)
    end)

    it("is a usage error (exit 2), never echoed, when it cannot be sent", function()
      for _, header in ipairs({ "APIKey " .. API_KEY, "Authorization: Bearer " .. API_KEY,
                                "APIKey: " .. API_KEY .. "\1" }) do
        local r = run({ "--header", header, "definitions" })
        assert.equal(2, r.code, r.stderr)
        assert.matches("^sapwf: %-%-header[ :#]", r.stderr)
        assert.is_nil(r.stderr:find("bad option", 1, true))   -- the Lua option's name
        assert_no_key(r)
      end
      local own = run({ "--header", "Authorization: x", "definitions" })
      assert.matches("sapwf: --header: header 'Authorization' is sapwf's own: it cannot be "
        .. "replaced\n", own.stderr, 1, true)
    end)
  end)

  describe("arguments", function()
    it("a --timeout beyond the library's bound is a usage error (exit 2), not an internal one",
      function()
        for _, value in ipairs({ "100000000", "1e999" }) do
          local r = run({ "--timeout", value, "definitions" })
          assert.equal(2, r.code, r.stderr)
          assert.matches("^sapwf: %-%-timeout must be a number from 0%.001 to 2147483, "
            .. "got '" .. value .. "'\n", r.stderr)
          assert.is_nil(r.stderr:find("internal error", 1, true))
        end
      end)

    -- What each command hands the library as an id, a name or a file, with the values the
    -- library refuses by raising (a script's empty "$ID" among them): the parser refuses
    -- them first, naming the argument. In process: a parse takes no process start.
    local REFUSED = {
      { { "instance", "" }, "ID is empty", "instance", { "" } },
      { { "instance", "..", "--attributes" }, "ID must be an id, got '..'", "instance", { ".." } },
      { { "context", "" }, "ID is empty", "context", { "" } },
      { { "context", "." }, "ID must be an id, got '.'", "context", { "." } },
      { { "cancel", "" }, "ID is empty", "cancel", { "" } },
      { { "cancel", "." }, "ID must be an id, got '.'", "cancel", { "." } },
      { { "suspend", "" }, "ID is empty", "suspend", { "" } },
      { { "suspend", ".." }, "ID must be an id, got '..'", "suspend", { ".." } },
      { { "resume", "" }, "ID is empty", "resume", { "" } },
      { { "resume", "." }, "ID must be an id, got '.'", "resume", { "." } },
      { { "resume", "a/../b" }, "ID must be an id, got 'a/../b'", "resume", { "a/../b" } },
      { { "complete", "" }, "TASK is empty", "complete_task", { "", {} } },
      { { "complete", ".." }, "TASK must be an id, got '..'", "complete_task", { "..", {} } },
      { { "complete", "t", "--decision", "" }, "--decision is empty", "complete_task",
        { "t", {}, { decision = "" } } },
      { { "start", "" }, "DEFINITION is empty", "start", { "", {} } },
      { { "start", "", "--from", "f" }, "DEFINITION is empty" },
      { { "export", "" }, "FILE is empty", "export", { "" } },
      { { "message", "--name", "", "--instance-id", "i" }, "--name is empty", "send_message",
        { { definitionId = "", workflowInstanceId = "i" } } },
      { { "message", "--name", "m", "--instance-id", "" }, "--instance-id is empty" },
      { { "message", "--name", "m", "--definition-id", "", "--business-key", "k" },
        "--definition-id is empty" },
      -- file names that would fail only once something was done (nginx started, a key read)
      { { "start", "d", "--from", "" }, "--from is empty" },
      { { "start", "d", "--from", "f", "--failed", "" }, "--failed is empty" },
      { { "start", "d", "--from", "f", "--record", "" }, "--record is empty" },
      { { "emulator", "--key-file", "" }, "--key-file is empty" },
      { { "--cafile", "", "token" }, "--cafile is empty" },
      -- an empty filter is none to the service: the list would widen to every item
      { { "instances", "--definition-id", "" }, "--definition-id is empty", "instances",
        { { definitionId = "" } } },
      { { "instances", "--status", "RUNNING", "--status", "" }, "--status is empty",
        "instances", { { status = { "RUNNING", "" } } } },
      { { "instances", "--started-from", "" }, "--started-from is empty", "instances",
        { { startedFrom = "" } } },
      { { "tasks", "--subject", "a,b" }, "--subject: query 'subject' cannot hold a comma",
        "tasks", { { subject = "a,b" } } },
      { { "tasks", "--instance-id", "" }, "--instance-id is empty", "tasks",
        { { workflowInstanceId = "" } } },
      { { "message", "--name", "m", "--definition-id", "d", "--business-key", "" },
        "--business-key is empty" },
      { { "--service-key", "", "token" }, "--service-key is empty" },
      { { "--instance", "", "token" }, "--instance is empty" },
      { { "--header", "no colon here", "definitions" }, "--header: Name: value expected" },
    }

    it("refuses, naming the argument, every id, name and file the library would refuse",
      function()
        local cli = require("sapwf.cli.parser").build()
        local wf = assert(require("sapwf").new{ service_key = emu:service_key("full") })
        for _, case in ipairs(REFUSED) do
          local what = table.concat(case[1], " ")
          local parsed, message = cli:pparse(case[1])
          assert.is_false(parsed, what)
          assert.equal(1, select(2, message:gsub("%f[%w%-]" .. case[2]:gsub("%p", "%%%0"), "")),
            what .. ": " .. message)
          if case[3] then       -- the library refuses it too, so this refusal is no stricter
            local raised, err = pcall(wf[case[3]], wf, (table.unpack or unpack)(case[4]))
            assert.is_false(raised, what)
            assert.matches("^bad argument", tostring(err):gsub("^[^:]+:%d+: ", ""), nil, false)
          end
        end
        -- what the library takes, the parser takes: odd ids are escaped, not refused
        for _, argv in ipairs({ { "instance", "a b/..%" }, { "cancel", "..." },
            { "start", "." }, { "complete", "t", "--decision", " " }, { "export", "-" } }) do
          assert.is_true((cli:pparse(argv)), table.concat(argv, " "))
        end
        wf:close()
        assert.equal(0, emu:stats().api_requests)
      end)

    it("a refused argument is a usage error (exit 2) before the key is read: never an " ..
       "internal error, nothing sent", function()
        for _, argv in ipairs({ { "instance", "" }, { "cancel", "." }, { "complete", "",
            "--context", "{}" }, { "message", "--name", "", "--instance-id", "i" } }) do
          local r = run(argv)
          assert.equal(2, r.code, r.stderr)
          assert.matches("^sapwf: [%w%-]+ [im]", r.stderr)
          assert.is_nil(r.stderr:find("internal error", 1, true), r.stderr)
          assert.equal("", r.stdout)
        end
        local keyless = sapwf({ "export", "" })
        assert.equal(2, keyless.code, keyless.stderr)
        assert.equal("sapwf: FILE is empty\n", keyless.stderr:match("^[^\n]*\n"))
        local all = sapwf({ "instances", "--all", "--top", "0" })
        assert.equal(2, all.code, all.stderr)
        assert.equal("sapwf: --top must be an integer from 1 to 1000 with --all (the page "
          .. "size), got '0'\nhint: see `sapwf instances --help`.\n", all.stderr)
        -- a global option's error points at the help that lists it
        for _, argv in ipairs({ { "-o", "bogus", "token" }, { "--timeout", "x", "token" } }) do
          local global = sapwf(argv)
          assert.equal(2, global.code, global.stderr)
          assert.equal("hint: see `sapwf --help`.", global.stderr:match("([^\n]*)\n$"))
        end
        assert.equal("hint: see `sapwf instances --help`.", sapwf({ "-o", "json", "instances",
          "--orderby" }).stderr:match("([^\n]*)\n$"))
        assert.equal(0, emu:stats().api_requests, "a usage error sent a request")
      end)

    -- One way for every number option: "OPTION must be an integer|a number from LOW to
    -- HIGH, got 'TEXT'"; the ranges are the API's ($top, $skip) and the library's.
    it("number options: one message form, and no value the service would refuse", function()
      local cli = require("sapwf.cli.parser").build()
      local cases = {
        { { "instances", "--top", "99999999999999999999" }, "--top must be an integer from 0 "
          .. "to 1000, got '99999999999999999999'" },
        { { "instances", "--top", "1001" }, "--top must be an integer from 0 to 1000" },
        { { "tasks", "--top", "2.5" }, "--top must be an integer from 0 to 1000" },
        { { "definitions", "--top", "ten" }, "--top must be an integer from 0 to 1000" },
        { { "tasks", "--skip", "4001" }, "--skip must be an integer from 0 to 4000, got '4001'" },
        { { "definitions", "--skip=-1" }, "--skip must be an integer from 0 to 4000" },
        { { "instances", "--skip", "1e20" }, "--skip must be an integer from 0 to 4000" },
        { { "--timeout", "0", "token" }, "--timeout must be a number from 0.001 to 2147483" },
        { { "--timeout", "1e999", "token" }, "--timeout must be a number from 0.001 to " },
        { { "start", "d", "--from", "f", "--concurrency", "0" }, "--concurrency must be an "
          .. "integer from 1 to 1024, got '0'" },
        { { "emulator", "--rate", "1e10" }, "--rate must be a number from 0.001 to 999999999, "
          .. "got '1e10'" },
        { { "emulator", "--service-time", "4000" }, "--service-time must be a number from 0 to "
          .. "3600, got '4000'" },
      }
      for _, case in ipairs(cases) do
        local parsed, message = cli:pparse(case[1])
        assert.is_false(parsed, table.concat(case[1], " "))
        assert.matches(case[2], message, 1, true)
      end
      local ok, args = cli:pparse({ "instances", "--top", "1e3", "--skip", "4000" })
      assert.is_true(ok)
      assert.equal("1000", string.format("%s", args.top))   -- an integer, never 1e+03
      assert.equal(4000, args.skip)
      local r = run({ "instances", "--top", "99999999999999999999" })
      assert.equal(2, r.code, r.stderr)
      assert.equal(0, emu:stats().api_requests, "an out-of-range number was sent")
    end)

    it("--help lists the commands and the exit codes, and exits 0", function()
      local r = sapwf({ "--help" })
      assert.equal(0, r.code)
      for _, name in ipairs({ "token", "definitions", "instances", "instance", "context",
        "cancel", "suspend", "resume", "tasks", "complete", "message", "start", "authorities",
        "doctor", "emulator" }) do
        assert.matches("\n   " .. name .. " ", r.stdout)
      end
      assert.matches("Exit codes:", r.stdout)
      assert.matches("130  interrupted", r.stdout)
      local sub = sapwf({ "start", "--help" })
      assert.equal(0, sub.code)
      assert.matches("%-%-from FILE", sub.stdout)
    end)

    it("answers unknown commands, options and bad values with exit 2", function()
      local unknown = sapwf({ "frobnicate" })
      assert.equal(2, unknown.code)
      -- `help NAME` for a name that is no command: the same usage error, in the same words
      local help = sapwf({ "help", "frobnicate" })
      assert.equal(2, help.code)
      assert.equal(unknown.stderr, help.stderr)
      assert.equal("sapwf: unknown command 'frobnicate'\nhint: see `sapwf --help`.\n", help.stderr)
      assert.equal("", help.stdout)
      assert.equal(2, run({ "instances", "--colour" }).code)
      local r = run({ "instances", "--top", "ten" })
      assert.equal(2, r.code)
      assert.matches("%-%-top must be an integer from 0 to 1000, got 'ten'", r.stderr)
      -- each message names the option once, then what was wrong with it
      local context = run({ "start", "simple", "--context", "{not json" })
      assert.equal(2, context.code)
      assert.matches("sapwf: --context: the value is not valid JSON: ", context.stderr, 1, true)
      context = run({ "start", "simple", "--context", "[1]" })
      assert.equal(2, context.code)
      assert.matches("sapwf: --context: the value must be a JSON object\n", context.stderr, 1, true)
      -- JSON text that encodes to no JSON (a number beyond a double) is the user's to fix,
      -- not a refusal of the service's: nothing is sent
      context = run({ "start", "simple", "--context", '{"a":{"b":1e400}}' })
      assert.equal(2, context.code)
      assert.matches("sapwf: --context: the value cannot be sent: context.a.b: infinity is not "
        .. "JSON\n", context.stderr, 1, true)
      context = run({ "start", "simple", "--attachments", '{"rootFolder":-1e400}' })
      assert.equal(2, context.code)
      assert.matches("sapwf: --attachments: the value cannot be sent: attachments.rootFolder: "
        .. "infinity is not JSON\n", context.stderr, 1, true)
      write_file(dir .. "/array.json", "[1]")
      context = run({ "complete", "t", "--context", "@" .. dir .. "/array.json" })
      assert.equal(2, context.code)
      assert.matches("sapwf: --context: " .. dir .. "/array.json must be a JSON object\n",
        context.stderr, 1, true)
      context = run({ "message", "--name", "m", "--instance-id", "a", "--context", "-" },
        { stdin = "7" })
      assert.equal(2, context.code)
      assert.matches("sapwf: --context: standard input must be a JSON object\n", context.stderr,
        1, true)
      -- a CA file that cannot be read is a bad argument, over http too (never used there)
      local ca = run({ "--cafile", dir .. "/missing.pem", "token" })
      assert.equal(2, ca.code)
      assert.matches("sapwf: --cafile cannot be read: " .. dir .. "/missing.pem: No such file "
        .. "or directory\n", ca.stderr, 1, true)
      local missing = run({ "start", "simple", "--context", "@" .. dir .. "/missing.json" })
      assert.equal(2, missing.code)
      assert.matches("sapwf: --context: cannot read " .. dir .. "/missing.json: No such file",
        missing.stderr, 1, true)
      -- a directory opens, and only the read fails: its message names no file of its own
      local folder = run({ "start", "simple", "--context", "@" .. dir })
      assert.equal(2, folder.code)
      assert.matches("sapwf: --context: cannot read " .. dir .. ": Is a directory\n",
        folder.stderr, 1, true)
      assert.equal(2, run({ "start", "simple", "--context", "{}", "--from", "x" }).code)
      for _, bad in ipairs({ "0.5", "0", "1025", "many" }) do
        local c = run({ "start", "simple", "--from", "x", "--concurrency", bad })
        assert.equal(2, c.code, bad)
        assert.matches("%-%-concurrency must be an integer from 1 to 1024, got '"
          .. bad:gsub("%p", "%%%0") .. "'", c.stderr)
      end
      assert.equal(2, run({ "message", "--name", "m", "--instance-id", "a",
        "--definition-id", "d", "--business-key", "k" }).code)
      assert.equal(0, emu:stats().api_requests, "a usage error sent a request")
    end)
  end)

  describe("token", function()
    it("shows expiry and authorities but not the token; --raw prints a token that works",
      function()
        local r = run({ "token" })
        assert.equal(0, r.code, r.stderr)
        assert.is_true(r.json.expiresIn > 43000 and r.json.expiresIn <= 43199)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", r.json.expiresAt)
        assert.is_true(contains(r.json.authorities, "WORKFLOW_INSTANCE_START"))
        assert.is_true(contains(r.json.scopes, "workflow!b10150.WORKFLOW_INSTANCE_START"))

        local raw = run({ "token", "--raw" }, { allowed_token = true })
        assert.equal(0, raw.code)
        local token = raw.stdout:match("^(%S+)\n$")
        assert.is_truthy(token)
        assert.is_true(#token > 20)
        tokens[#tokens + 1] = token
        local base = emu:service_key("full").endpoints.workflow_rest_url
        local function status(auth)
          local pipe = io.popen("curl -s -o /dev/null -w '%{http_code}' -H " ..
            quote("Authorization: Bearer " .. auth) .. " " .. quote(base .. "/v1/workflow-definitions"))
          local code = pipe:read("*a")
          pipe:close()
          return code
        end
        assert.equal("200", status(token))
        assert.equal("401", status(token .. "x"))
      end)

    it("a token answer without expires_in: no expiry, null in JSON, said in a table; " ..
       "doctor alike", function()
      local token = run({ "token", "--raw" }, { allowed_token = true }).stdout:match("^(%S+)\n$")
      tokens[#tokens + 1] = token
      -- RFC 6749 only recommends expires_in: the library then reports math.huge seconds
      local answer = json.encode({ access_token = token, token_type = "bearer" })
      emu:fault{ fault = "body", method = "POST", path = "/oauth/token", times = -1,
                 body = answer }
      local r = run({ "token" })
      assert.equal(0, r.code, r.stderr)
      assert.equal(json.null, r.json.expiresIn)
      assert.equal(json.null, r.json.expiresAt)
      local tabled = run({ "-o", "table", "token" })
      assert.equal(0, tabled.code, tabled.stderr)
      assert.matches("\nexpiresIn  no expiry given\n", "\n" .. tabled.stdout, 1, true)
      local raw = run({ "token", "--raw" }, { allowed_token = token })
      assert.equal(0, raw.code, raw.stderr)
      assert.equal(token .. "\n", raw.stdout)
      local doctor = run({ "doctor" })
      assert.equal(0, doctor.code, doctor.stderr)
      assert.equal(json.null, doctor.json.token.expiresIn)
      assert.is_false(doctor.json.token.scopeKnown)    -- the answer named no scopes either
      local human = run({ "-o", "table", "doctor" })
      assert.matches("\nOK    token: no expiry given; the answer names no scopes", human.stdout,
                     1, true)
      -- no scopes named, and a call answers 403: the cf command, which replaces the list,
      -- keeps every authority needed (those that answered too), and says so
      emu:clear_faults()
      local limited_client = assert(require("sapwf").new{ service_key = limited_key })
      local limited_token = assert(limited_client:token())
      limited_client:close()
      tokens[#tokens + 1] = limited_token
      emu:fault{ fault = "body", method = "POST", path = "/oauth/token", times = -1,
                 body = json.encode({ access_token = limited_token, token_type = "bearer" }) }
      local partial = sapwf({ "--service-key", limited_key, "doctor", "instances", "tasks" })
      assert.equal(5, partial.code, partial.stderr)
      assert.same({ "WORKFLOW_INSTANCE_GET" }, partial.json.missing)
      assert.matches('"authorities":["TASK_GET","WORKFLOW_INSTANCE_GET"]',
                     partial.json.command, 1, true)
      assert.matches("add any other the instance has", partial.json.commandNote, 1, true)
      emu:clear_faults()
      -- a lifetime past any four-digit year (the library says math.huge only beyond 1e15):
      -- its seconds, but no expiresAt
      emu:clear_faults()
      emu:fault{ fault = "body", method = "POST", path = "/oauth/token", times = -1,
                 body = answer:sub(1, -2) .. ',"expires_in":1e12}' }
      local far = run({ "token" })
      assert.equal(0, far.code, far.stderr)
      assert.is_true(far.json.expiresIn > 1e12 - 60 and far.json.expiresIn <= 1e12)
      assert.equal(json.null, far.json.expiresAt)
    end)

    it("the limited key's token lacks the start authority", function()
      local r = sapwf({ "--service-key", limited_key, "token" })
      assert.equal(0, r.code)
      assert.is_false(contains(r.json.authorities, "WORKFLOW_INSTANCE_START"))
      assert.is_true(contains(r.json.authorities, "TASK_GET"))
    end)
  end)

  describe("definitions and instances", function()
    it("definitions: JSON that parses, with the deployed definitions", function()
      local r = run({ "definitions" })
      assert.equal(0, r.code, r.stderr)
      local ids = {}
      for _, definition in ipairs(r.json) do
        ids[#ids + 1] = definition.id
      end
      table.sort(ids)
      assert.same({ "failing", "orderapproval", "simple" }, ids)
      assert.equal(1, #run({ "definitions", "--top", "1" }).json)
    end)

    it("start takes the context inline, from @file and from stdin", function()
      local inline = { product = "Lens", price = 12.5, orderId = "i-1", items = json.array() }
      local a = run({ "start", "orderapproval", "--context", json.encode(inline) })
      assert.equal(0, a.code, a.stderr)
      assert.equal("RUNNING", a.json.status)
      assert.equal("i-1", a.json.businessKey)

      write_file(dir .. "/ctx.json", '{"product":"File","orderId":"f-2"}')
      local b = run({ "start", "orderapproval", "--context", "@" .. dir .. "/ctx.json" })
      assert.equal(0, b.code, b.stderr)
      local c = run({ "start", "orderapproval", "--context", "-" },
        { stdin = '{"product":"Stdin","orderId":"s-3"}' })
      assert.equal(0, c.code, c.stderr)
      assert.equal(3, instances_started())

      local ctx = run({ "context", a.json.id })
      assert.equal(0, ctx.code)
      assert.equal("Lens", ctx.json.product)
      assert.equal(12.5, ctx.json.price)
      -- An empty array stays an array through decode, start and output.
      assert.matches('"items":%[%]', ctx.stdout)
      assert.equal("File", run({ "context", b.json.id }).json.product)
      assert.equal("Stdin", run({ "context", c.json.id }).json.product)
    end)

    it("an answer holding text that is not UTF-8 is shown, not an internal error", function()
      -- written by another client (sapwf on Lua 5.3+ sends none): a raw body
      local wf = assert(require("sapwf").new{ service_key = emu:service_key("full") })
      local inst = assert(wf:request("POST", "/v1/workflow-instances",
        { body = '{"definitionId":"simple","context":{"name":"M\252ller","ok":"\226\130\172"}}' }))
      wf:close()
      local r = run({ "context", inst.id })
      assert.equal(0, r.code, r.stderr)
      assert.equal("\226\130\172", r.json.ok)                 -- valid text stays as it is
      if utf8 then
        -- JSON must be UTF-8: the byte that starts no character is shown as U+FFFD, once said
        assert.equal("M\239\191\189ller", r.json.name)
        assert.equal("sapwf: the answer holds text that is not valid UTF-8: each byte that "
          .. "starts no character is written as U+FFFD\n", r.stderr)
      else
        assert.equal("M\252ller", r.json.name)                 -- Lua 5.1: as it came
      end
      local t = run({ "-o", "table", "context", inst.id })
      assert.equal(0, t.code, t.stderr)
    end)

    it("start --attachments binds them at the start: inline, @file or stdin; not with --from",
      function()
        local function attachments_of(id)
          for _, inst in ipairs(emu:instances()) do
            if inst.id == id then return inst.attachments end
          end
          error("no instance " .. tostring(id))
        end
        local att = { rootFolder = "r1", groups = { docs = { folder = "d1",
          refs = { { objectId = "o1" } } } } }
        local a = run({ "start", "simple", "--context", '{"n":1}', "--attachments",
                        json.encode(att) })
        assert.equal(0, a.code, a.stderr)
        assert.same(att, attachments_of(a.json.id))
        assert.same({ n = 1 }, run({ "context", a.json.id }).json)
        write_file(dir .. "/att.json", '{"rootFolder":"r2"}')
        local b = run({ "start", "simple", "--attachments", "@" .. dir .. "/att.json" })
        assert.equal(0, b.code, b.stderr)
        assert.same({ rootFolder = "r2" }, attachments_of(b.json.id))
        local c = run({ "start", "simple", "--attachments", "-" },
                      { stdin = '{"rootFolder":"r3"}' })
        assert.equal(0, c.code, c.stderr)
        assert.same({ rootFolder = "r3" }, attachments_of(c.json.id))
        local started = instances_started()
        for _, case in ipairs({
          { { "start", "simple", "--attachments", "[1]" }, "--attachments: the value must be "
            .. "a JSON object" },
          { { "start", "simple", "--attachments", "-", "--context", "-" }, "--context and "
            .. "--attachments cannot both read standard input" },
          { { "start", "simple", "--from", dir .. "/att.json", "--attachments", "{}" },
            "--attachments goes with a single start; with --from, give each line's in" },
        }) do
          local r = run(case[1], { stdin = "{}" })
          assert.equal(2, r.code, r.stderr)
          assert.matches(case[2], r.stderr, 1, true)
        end
        assert.equal(started, instances_started())
      end)

    it("--context @file and - read past a UTF-8 byte order mark, as editors on Windows write",
      function()
        write_file(dir .. "/bom.json", '\239\187\191{"product":"Bom","orderId":"b-1"}')
        local a = run({ "start", "orderapproval", "--context", "@" .. dir .. "/bom.json" })
        assert.equal(0, a.code, a.stderr)
        local b = run({ "start", "orderapproval", "--context", "-" },
          { stdin = '\239\187\191{"product":"BomStdin","orderId":"b-2"}' })
        assert.equal(0, b.code, b.stderr)
        assert.equal("Bom", run({ "context", a.json.id }).json.product)
        assert.equal("BomStdin", run({ "context", b.json.id }).json.product)
      end)

    it("instance, context, cancel, suspend and resume", function()
      local inst = start("simple", { n = 1 })
      local shown = run({ "instance", inst.id })
      assert.equal(0, shown.code)
      assert.equal(inst.id, shown.json.id)
      assert.equal("RUNNING", shown.json.status)
      assert.same({ n = 1 }, run({ "context", inst.id }).json)

      local suspended = run({ "suspend", inst.id })
      assert.equal(0, suspended.code, suspended.stderr)
      assert.same({ id = inst.id, requestedStatus = "SUSPENDED" }, suspended.json)
      assert.equal("SUSPENDED", run({ "instance", inst.id }).json.status)
      assert.equal(0, run({ "resume", inst.id }).code)
      assert.equal("RUNNING", run({ "instance", inst.id }).json.status)
      local canceled = run({ "cancel", inst.id })
      assert.equal(0, canceled.code)
      assert.equal("CANCELED", canceled.json.requestedStatus)
      assert.equal("CANCELED", run({ "instance", inst.id }).json.status)
    end)

    it("instance --attributes adds the custom attributes, with the context's values",
      function()
        local inst = start("orderapproval", { product = "Camera", orderId = "a-1" })
        local plain = run({ "instance", inst.id })
        assert.equal(0, plain.code, plain.stderr)
        assert.is_nil(plain.json.attributes)
        local shown = run({ "instance", inst.id, "--attributes" })
        assert.equal(0, shown.code, shown.stderr)
        assert.equal(inst.id, shown.json.id)
        assert.equal("product", shown.json.attributes[1].id)
        assert.equal("Camera", shown.json.attributes[1].value)
      end)

    it("instances --started-from / --started-up-to: the README's way to split a long list",
      function()
        local ids = emu:seed_instances{ count = 3, definition = "simple", started_at = {
          "2026-01-10T08:00:00.000Z", "2026-02-10T08:00:00.000Z", "2026-03-10T08:00:00.000Z" }
        }.ids
        local from = run({ "instances", "--started-from", "2026-02-01T00:00:00.000Z" })
        assert.equal(0, from.code, from.stderr)
        local up_to = run({ "instances", "--started-up-to", "2026-02-01T00:00:00.000Z" })
        local between = run({ "instances", "--started-from", "2026-02-01T00:00:00.000Z",
                              "--started-up-to", "2026-03-01T00:00:00.000Z" })
        local function ids_of(r)
          local out = {}
          for _, inst in ipairs(r.json) do out[#out + 1] = inst.id end
          table.sort(out)
          return out
        end
        local later = { ids[2], ids[3] }
        table.sort(later)
        assert.same(later, ids_of(from))
        assert.same({ ids[1] }, ids_of(up_to))
        assert.same({ ids[2] }, ids_of(between))
        -- a bound, or --contains-text, twice: the service takes them once, so it is a usage
        -- error here, before any request (its help does not say "repeat")
        for _, args in ipairs({
            { "instances", "--started-from", "2026-02-01T00:00:00.000Z", "--started-from",
              "2026-03-01T00:00:00.000Z" },
            { "tasks", "--contains-text", "a", "--contains-text", "b" } }) do
          local twice = run(args)
          assert.equal(2, twice.code, twice.stderr)
          assert.matches("option '" .. args[2]:gsub("%-", "%%-") .. "' must be used at most 1 time",
                         twice.stderr)
        end
        local help = run({ "instances", "--help" })
        assert.matches("%-%-started%-from VALUE +Only instances started at or after this time",
                       help.stdout)
        assert.not_matches("this time %(e%.g%. [^)]*%)%.%s+Repeat", help.stdout)
        assert.matches("Only items up to VALUE %(the API's completedUpTo", help.stdout)
      end)

    it("a start of an unknown definition names the command that lists them", function()
      local r = run({ "start", "no-such-definition" })
      assert.equal(6, r.code, r.stderr)
      assert.matches("(`sapwf definitions` lists them)", r.stderr, 1, true)
      assert.not_matches("wf:definitions", r.stderr, 1, true)
      -- SAP Build Process Automation's wrong base URL: the command line has no api_url
      local e = require("sapwf.errors").new{ kind = "not_found", status = 404, method = "GET",
        path = "/v1/workflow-definitions", message = "Not Found",
        hint = "SPA serves it at the gateway URL + /public/workflow/rest: give api_url to pick" }
      assert.matches("put that URL in the key's endpoints.api to pick",
                     require("sapwf.cli").describe_error(e), 1, true)
    end)

    it("each list's --orderby example in its help is an order the service takes", function()
      for _, command in ipairs({ "instances", "tasks", "definitions" }) do
        local help = run({ command, "--help" })
        local example = help.stdout:match("Sort order, e%.g%. '([^']+)'")
        assert.is_string(example, command)
        local r = run({ command, "--orderby", example })
        assert.equal(0, r.code, command .. " --orderby '" .. example .. "': " .. r.stderr)
      end
    end)

    it("instances: filters, repeated --status, and --all over several pages", function()
      local ids = {}
      for i = 1, 5 do
        ids[#ids + 1] = start("orderapproval", { product = "P" .. i, orderId = "order-" .. i }).id
      end
      local simple = start("simple")
      assert.equal(0, run({ "cancel", ids[1] }).code)

      local by_key = run({ "instances", "--business-key", "order-3" })
      assert.equal(0, by_key.code, by_key.stderr)
      assert.equal(1, #by_key.json)
      assert.equal(ids[3], by_key.json[1].id)

      local by_definition = run({ "instances", "--definition-id", "simple" })
      assert.equal(1, #by_definition.json)
      assert.equal(simple.id, by_definition.json[1].id)

      -- No filter: RUNNING and ERRONEOUS only, so the canceled one is missing.
      assert.equal(5, #run({ "instances" }).json)
      local both = run({ "instances", "--status", "RUNNING", "--status", "CANCELED" })
      assert.equal(6, #both.json)
      local canceled = run({ "instances", "--status", "CANCELED" })
      assert.equal(1, #canceled.json)
      assert.equal(ids[1], canceled.json[1].id)
      assert.equal(1, #run({ "instances", "--contains-text", "order-4" }).json)

      local page = run({ "instances", "--definition-id", "orderapproval", "--status", "RUNNING",
        "--status", "CANCELED", "--top", "2" })
      assert.equal(2, #page.json)
      local all = run({ "instances", "--definition-id", "orderapproval", "--status", "RUNNING",
        "--status", "CANCELED", "--top", "2", "--all" })
      assert.equal(0, all.code, all.stderr)
      local seen = {}
      for _, inst in ipairs(all.json) do
        seen[inst.id] = true
      end
      for _, id in ipairs(ids) do
        assert.is_true(seen[id], "missing " .. id)
      end
      assert.equal(5, #all.json)
      assert.equal(2, run({ "instances", "--all", "--top", "0" }).code)

      local empty = run({ "instances", "--business-key", "no-such-key" })
      assert.equal(0, empty.code)
      assert.equal("[]\n", empty.stdout)
    end)

    it("instances --all past the API's 5000: every match once, oldest first; with --orderby " ..
       "or --skip it stops before any output, saying why (exit 9)", function()
      local desc = assert_all_past_window("instances", seed_past_window("simple"), "startedAt",
        function(inst) return inst.id end)
      assert.matches("order by startedAt asc (or leave orderby out) to page past it", desc, 1,
        true)
      local skipped = run({ "instances", "--all", "--skip", "10" })
      assert.equal(9, skipped.code, skipped.stderr)
      assert.equal("", skipped.stdout)
      assert.matches("4991 matches from skip 10, but the API can page through only 4990",
        skipped.stderr, 1, true)
      assert.matches("(or leave skip out)", skipped.stderr, 1, true)

      -- --skip past the service's 4000 (its --help says so): a usage error before any call,
      -- for one page as with --all
      local requests = emu:stats().api_requests
      for _, argv in ipairs({ { "instances", "--skip", "4001" },
                              { "instances", "--all", "--skip", "4001" } }) do
        local far = run(argv)
        assert.equal(2, far.code, far.stderr)
        -- in the words of the other usage errors, with the command's own help
        assert.equal("sapwf: --skip must be an integer from 0 to 4000, got '4001'\n"
          .. "hint: see `sapwf instances --help`.\n", far.stderr)
      end
      assert.equal(requests, emu:stats().api_requests)
    end)
  end)

  describe("tasks and messages", function()
    it("lists the task, completes it, and the message completes the instance", function()
      local inst = start("orderapproval", { product = "Camera", orderId = "t-1" })
      local tasks = run({ "tasks", "--instance-id", inst.id })
      assert.equal(0, tasks.code, tasks.stderr)
      assert.equal(1, #tasks.json)
      assert.equal("READY", tasks.json[1].status)
      local task_id = tasks.json[1].id

      local done = run({ "complete", task_id, "--context", '{"approved":true}' })
      assert.equal(0, done.code, done.stderr)
      assert.same({ id = task_id, status = "COMPLETED" }, done.json)
      assert.equal(0, #run({ "tasks", "--instance-id", inst.id, "--status", "READY" }).json)
      assert.equal(1, #run({ "tasks", "--instance-id", inst.id, "--status", "COMPLETED" }).json)
      assert.is_true(run({ "context", inst.id }).json.approved)

      local sent = run({ "message", "--name", "orderShipped", "--instance-id", inst.id,
        "--context", '{"shipped":true}' })
      assert.equal(0, sent.code, sent.stderr)
      assert.same({ { id = inst.id } }, sent.json)
      assert.equal("COMPLETED", run({ "instance", inst.id }).json.status)
      assert.is_true(run({ "context", inst.id }).json.shipped)
    end)

    it("completes with --decision, the button of an approval form; an unknown one is exit 9",
       function()
      local inst = start("orderapproval", { product = "Cam", orderId = "d-1" })
      local task = run({ "tasks", "--instance-id", inst.id }).json[1]
      local wrong = run({ "complete", task.id, "--decision", "maybe" })
      assert.equal(9, wrong.code, wrong.stderr)
      assert.matches("not one of the task's decisions: approve, reject", wrong.stderr, 1, true)
      local done = run({ "complete", task.id, "--decision", "reject" })
      assert.equal(0, done.code, done.stderr)
      assert.same({ id = task.id, status = "COMPLETED", decision = "reject" }, done.json)
      local wf = assert(require("sapwf").new{ service_key = full_key })
      local decided
      for _, entry in ipairs(assert(wf:execution_logs(inst.id))) do
        if entry.type == "USERTASK_COMPLETED" then decided = entry.decision end
      end
      wf:close()
      assert.equal("reject", decided)
    end)

    it("sends a message by definition and business key; no receiver is exit 9", function()
      local inst = start("orderapproval", { product = "Cam", orderId = "bk-7" })
      local task = run({ "tasks", "--instance-id", inst.id }).json[1]
      assert.equal(0, run({ "complete", task.id }).code)
      local sent = run({ "message", "--name", "orderShipped", "--definition-id", "orderapproval",
        "--business-key", "bk-7" })
      assert.equal(0, sent.code, sent.stderr)
      assert.same({ { id = inst.id } }, sent.json)
      local none = run({ "message", "--name", "orderShipped", "--definition-id", "orderapproval",
        "--business-key", "bk-7" })
      assert.equal(9, none.code)
      assert.matches("invalid %(422%)", none.stderr)
    end)

    it("tasks --all pages as instances --all does, by createdAt: past 5000 every task once, " ..
       "oldest first; with --orderby it stops saying why (exit 9)", function()
      local ids = seed_past_window("orderapproval")      -- a task each
      local page = run({ "tasks", "--top", "3" })
      assert.equal(0, page.code, page.stderr)
      assert.equal(3, #page.json)
      local desc = assert_all_past_window("tasks", ids, "createdAt",
        function(task) return task.workflowInstanceId end)
      assert.matches("sapwf tasks --created-from/--created-up-to", desc, 1, true)
      assert.equal(2, run({ "tasks", "--all", "--top", "1001" }).code)
    end)
  end)

  describe("export", function()
    it("writes the zip to a file, and leaves the file alone when it fails", function()
      emu:export_lines(1000)
      local r = run({ "export", dir .. "/cli.zip" })
      assert.equal(0, r.code, r.stderr)
      assert.equal(9000, r.json.bytes)
      assert.equal(dir .. "/cli.zip", r.json.file)
      local text = read_file(dir .. "/cli.zip")
      assert.equal(9000, #text)
      assert.equal("00001000\n", text:sub(-9))
      local denied = sapwf({ "--service-key", limited_key, "export", dir .. "/cli.zip" })
      assert.equal(5, denied.code)
      assert.matches("DATA_EXPORT", denied.stderr, 1, true)
      assert.equal(text, read_file(dir .. "/cli.zip"))
      -- the default name, in the current folder
      local home = dir .. "/export-home"
      assert.is_true(shell("mkdir -p " .. quote(home)))
      local default = run({ "export" }, { cwd = home })
      assert.equal(0, default.code, default.stderr)
      assert.equal(text, read_file(home .. "/export.zip"))
      -- a FILE that cannot take it is a usage error, as for --record: nothing sent
      local requests = emu:stats().api_requests
      for _, target in ipairs({ home, "/dev/null", home .. "/no/such/folder/e.zip" }) do
        local refused = run({ "export", target })
        assert.equal(2, refused.code, refused.stderr)
        assert.matches("hint: see `sapwf export --help`", refused.stderr, 1, true)
      end
      assert.equal(requests, emu:stats().api_requests)
    end)
  end)

  describe("export, interrupted", function()
    -- The export's answer held up 3 s; the signal after 0.4 s, while it is on its way.
    for _, signal in ipairs({ "INT", "TERM" }) do
      it("by SIG" .. signal .. ": stops at once, the file stays as it was, nothing beside it, "
         .. "exit 130", function()
        local sub = dir .. "/export-" .. signal
        assert.is_true(shell("mkdir " .. quote(sub)))
        write_file(sub .. "/e.zip", "precious")
        emu:fault({ fault = "delay", delay = 3, times = 1, method = "GET", path = "/v1/export" })
        local code, shown, stderr, took = run_signalled({ "--service-key", full_key, "export",
          sub .. "/e.zip" }, signal, 0.4)
        emu:clear_faults()
        assert.equal(130, code, stderr)
        assert.is_nil(shown)
        assert.matches("interrupted (SIG" .. signal .. "): the export stopped; " .. sub
          .. "/e.zip is as it was, and nothing is left beside it", stderr, 1, true)
        assert.is_true(took < 2, "took " .. took .. " s after the signal")
        assert.equal("precious", read_file(sub .. "/e.zip"))
        local pipe = io.popen("ls -A " .. quote(sub))
        assert.equal("e.zip\n", pipe:read("*a"))
        pipe:close()
      end)
    end

    it("by the same signal twice at once, as timeout(1) sends it (to the command, then to " ..
       "its process group): as by one", function()
      local sub = dir .. "/export-twice"
      assert.is_true(shell("mkdir " .. quote(sub)))
      write_file(sub .. "/e.zip", "precious")
      -- the token held up 1 s: the signals come while it is on its way, which the first
      -- ends, and the export then stops before its first byte
      emu:fault({ fault = "delay", delay = 1, times = 1, method = "POST",
                  path = "/oauth/token" })
      local base = dir .. "/export-twice"
      local pid_file, rc_file, err_file = base .. ".pid", base .. ".rc", base .. ".err"
      assert.is_true(shell("env --default-signal=HUP,TERM sh -c " .. quote(command_line({
        "--service-key", full_key, "export", sub .. "/e.zip" }) .. " </dev/null >/dev/null 2>"
        .. quote(err_file) .. " & echo $! > " .. quote(pid_file) .. "; wait $!; echo $? > "
        .. quote(rc_file)) .. " >/dev/null 2>&1 &"))
      assert.is_true(wait_for(function() return emu:stats().token_requests > 0 end, 5))
      -- back to back, as timeout sends them: the second comes while the first is handled,
      -- or (the export ends within milliseconds of the first, a busy machine may run it in
      -- between) finds the process gone. Either way exit 130: a second signal's default
      -- action would end it with 143.
      local pid = pid_from(pid_file)
      assert.is_true(shell("kill -TERM " .. pid .. "; kill -TERM " .. pid .. " 2>/dev/null; "
        .. "true"))
      assert.is_true(wait_for(function() return (read_file(rc_file) or "") ~= "" end, 10))
      emu:clear_faults()
      local stderr = read_file(err_file)
      assert.equal(130, tonumber(read_file(rc_file):match("%d+")), stderr)
      assert.matches("interrupted (SIGTERM): the export stopped", stderr, 1, true)
      assert.equal("precious", read_file(sub .. "/e.zip"))
      local pipe = io.popen("ls -A " .. quote(sub))
      assert.equal("e.zip\n", pipe:read("*a"))
      pipe:close()
    end)
  end)

  describe("authorities", function()
    it("prints what the named operations need, and everything with no names", function()
      local r = sapwf({ "authorities", "start", "instances", "context" })
      assert.equal(0, r.code)
      assert.same({ authorities = { "WORKFLOW_INSTANCE_GET", "WORKFLOW_INSTANCE_GET_CONTEXT",
        "WORKFLOW_INSTANCE_START" } }, r.json)
      local aliases = sapwf({ "authorities", "complete", "message", "task-context" })
      assert.same({ "MESSAGE_SEND", "TASK_COMPLETE", "TASK_GET_CONTEXT" },
        aliases.json.authorities)
      local all = sapwf({ "authorities" })
      assert.same(operations.authorities, all.json.authorities)
      local bad = sapwf({ "authorities", "start", "launch" })
      assert.equal(2, bad.code)
      assert.matches("unknown operation: launch", bad.stderr)
    end)
  end)

  describe("doctor", function()
    it("the full key: every check OK, nothing missing, exit 0", function()
      start("orderapproval", { product = "D", orderId = "d-1" })   -- so id calls are tried
      local r = run({ "doctor" })
      assert.equal(0, r.code, r.stdout .. r.stderr)
      assert.is_true(r.json.ok)
      assert.same({}, r.json.missing)
      assert.is_nil(r.json.command)
      -- a fresh instance has no error messages or attachments: those GETs by id are not
      -- lists an application scope filters, so no advice to change the service's config
      assert.is_nil(r.json.emptyNote)
      assert.is_true(r.json.key.ok)
      assert.equal(emu:service_key("full").uaa.clientid, r.json.key.clientId)
      assert.equal(emu:service_key("full").uaa.url .. "/oauth/token", r.json.key.tokenUrl)
      assert.equal(emu:service_key("full").endpoints.workflow_rest_url, r.json.key.apiUrl)
      assert.equal("secret", r.json.key.credential)
      assert.matches("tokenUrl is not https://", r.json.key.warnings[1], 1, true)
      assert.equal("workflow", r.json.key.service)
      assert.is_true(r.json.token.scopeKnown)
      assert.equal(0, r.json.errors)
      assert.same({}, r.json.forbidden)
      local results = {}
      for _, check in ipairs(r.json.checks) do
        results[check.operation] = check.result
      end
      for _, name in ipairs({ "definitions", "instances", "tasks", "task_definitions", "forms",
        "context", "task_context", "definition_model" }) do
        assert.equal("ok", results[name], name)
      end
    end)

    it("shows the key's URLs without user info, which may hold a password", function()
      local key = emu:service_key("full")
      key.endpoints.workflow_rest_url = key.endpoints.workflow_rest_url:gsub("^http://",
        "http://gw:gw-pass-4711@")
      write_file(dir .. "/userinfo.json", json.encode(key))
      local r = sapwf({ "--service-key", dir .. "/userinfo.json", "--allow-http", "doctor" })
      assert.is_nil((r.stdout .. r.stderr):find("gw-pass-4711", 1, true))
      assert.equal(emu:service_key("full").endpoints.workflow_rest_url, r.json.key.apiUrl)
    end)

    it("the limited key: lists what is missing and a cf command that keeps the granted ones",
      function()
        local r = sapwf({ "--service-key", limited_key, "--instance", "my-wf", "doctor" })
        assert.equal(5, r.code, r.stderr)
        assert.is_false(r.json.ok)
        assert.is_true(contains(r.json.missing, "WORKFLOW_INSTANCE_START"))
        assert.is_true(contains(r.json.missing, "WORKFLOW_DEFINITION_GET"))
        assert.is_false(contains(r.json.missing, "TASK_GET"))
        local results = {}
        for _, check in ipairs(r.json.checks) do
          results[check.operation] = check.result
        end
        assert.equal("forbidden", results.definitions)
        assert.equal("forbidden", results.instances)
        assert.equal("ok", results.tasks)
        assert.equal("ok", results.task_definitions)

        local list = r.json.command:match("^cf update%-service my%-wf %-c '(.*)'$")
        assert.is_truthy(list, r.json.command)
        local granted_now = json.decode(list).authorities
        for _, authority in ipairs({ "TASK_GET", "TASK_DEFINITION_GET",
          "WORKFLOW_DEFINITION_DEPLOY", "FORM_DEFINITION_DEPLOY", "PROCESS_TEMPLATE_DEPLOY",
          "PROCESS_VARIANT_DEPLOY" }) do
          assert.is_true(contains(r.json.granted, authority), authority)
          assert.is_true(contains(granted_now, authority), "cf command drops " .. authority)
        end
        for _, authority in ipairs(r.json.missing) do
          assert.is_true(contains(granted_now, authority), "cf command lacks " .. authority)
        end
        assert.equal(#r.json.granted + #r.json.missing, #granted_now)

        -- Only the operations named: tasks need nothing more.
        local tasks_only = sapwf({ "--service-key", limited_key, "doctor", "tasks" })
        assert.equal(0, tasks_only.code)
        local human = sapwf({ "--service-key", limited_key, "--instance", "my-wf",
          "--output", "table", "doctor" })
        assert.equal(5, human.code)
        assert.matches("403  missing WORKFLOW_DEFINITION_GET", human.stdout)
        assert.matches("cf update%-service my%-wf %-c", human.stdout)
      end)

    it("SAP Build Process Automation: the calls that got 403 and the roles, no cf command",
      function()
        local r = sapwf({ "--service-key", limited_key, "--service", "process-automation",
          "doctor" })
        assert.equal(5, r.code, r.stderr)
        assert.equal("process-automation", r.json.key.service)
        assert.is_true(contains(r.json.forbiddenCalls, "definitions"))
        assert.is_true(contains(r.json.forbiddenCalls, "instances"))
        assert.is_false(contains(r.json.forbiddenCalls, "tasks"))
        assert.is_true(contains(r.json.roles, "ProcessAutomationDeveloper"))
        assert.is_true(contains(r.json.roles, "ProcessAutomationAdmin"))
        assert.is_nil(r.json.command)
        assert.same({ {}, {}, {} }, { r.json.needed, r.json.granted, r.json.missing })
        assert.matches("grants access by roles", r.json.explanation, 1, true)
        local human = sapwf({ "--service-key", limited_key, "--service", "process-automation",
          "--output", "table", "doctor" })
        assert.equal(5, human.code)
        assert.matches("403  (SAP names the role ProcessAutomationDeveloper)", human.stdout, 1,
          true)
        assert.is_nil(human.stdout:find("cf update%-service %S+ %-c"))    -- no command to run
        -- a 403 for a call not named does not count (README), as with authorities
        local tasks_only = sapwf({ "--service-key", limited_key, "--service",
          "process-automation", "-o", "table", "doctor", "tasks" })
        assert.equal(0, tasks_only.code, tasks_only.stdout)
        assert.matches("\nOK    every call needed is allowed\n", tasks_only.stdout, 1, true)
        local named = sapwf({ "--service-key", limited_key, "--service", "process-automation",
          "doctor", "tasks", "definitions" })
        assert.equal(5, named.code, named.stderr)
        assert.same({ "definitions" }, named.json.forbiddenCalls)
        assert.same({ "ProcessAutomationDeveloper" }, named.json.roles)
        assert.same({ "definitions", "ProcessAutomationDeveloper" },
          { named.json.checks[1].operation, named.json.checks[1].role })
        assert.is_true(contains(named.json.forbidden, "forms"))    -- every call that got 403
        local full = sapwf({ "--service-key", full_key, "--service", "process-automation",
          "doctor" })
        assert.equal(0, full.code, full.stderr)
        assert.same({}, full.json.forbiddenCalls)
        -- a start that got 403 speaks SPA as well
        local started = sapwf({ "--service-key", limited_key, "--service", "process-automation",
          "start", "simple" })
        assert.equal(5, started.code)
        assert.matches("Needs role ProcessAutomationParticipant", started.stderr, 1, true)
        assert.matches("hint: SAP Build Process Automation answers 403", started.stderr, 1, true)
        assert.is_nil(started.stderr:find("cf update%-service %S+ %-c"))
        assert.is_nil(started.stderr:find("err.hint", 1, true))
      end)

    it("prints a hint too long for the error line below it, in its own words", function()
      local key = emu:service_key("full")
      key.endpoints.workflow_rest_url = key.endpoints.workflow_rest_url .. "/workflow/rest"
      write_file(dir .. "/wrong-base.json", json.encode(key))
      local r = sapwf({ "--service-key", dir .. "/wrong-base.json", "definitions" })
      assert.equal(6, r.code, r.stderr)
      assert.matches("fix: see the hint below", r.stderr, 1, true)
      assert.matches("\nhint: nothing answers this path under " .. key.endpoints.workflow_rest_url,
        r.stderr, 1, true)
      assert.is_nil(r.stderr:find("err.hint", 1, true))
    end)

    it("notes lists that are empty although allowed", function()
      local r = run({ "doctor" })              -- a reset emulator has no instance yet
      assert.equal(0, r.code, r.stderr)
      assert.matches("empty instances", r.json.emptyNote, 1, true)
      assert.is_nil(r.json.emptyNote:find("definitions", 1, true))
      -- a service instance of another application scope: every list empty, all allowed
      local other = "sb-sapwf-other-app!b7|workflow!b10150"
      emu:set_client(other, { secret = "other-app-secret", authorities = operations.authorities,
                              scope = "other-app", query_filter = "own" })
      local key = emu:service_key(other)
      secrets[#secrets + 1] = key.uaa.clientsecret
      write_file(dir .. "/other.json", json.encode(key))
      local scoped = sapwf({ "--service-key", dir .. "/other.json", "doctor" })
      assert.equal(0, scoped.code, scoped.stderr)
      assert.matches("empty definitions, instances, tasks", scoped.json.emptyNote, 1, true)
      assert.matches("defaultCollectionQueryFilter", scoped.json.emptyNote, 1, true)
      -- the cf command names the instance as the one that grants authorities does
      local named = sapwf({ "--service-key", dir .. "/other.json", "--instance", "my-workflow",
        "doctor" })
      assert.matches("cf update-service my-workflow -c '{\"defaultCollectionQueryFilter\":"
        .. "\"shared\"}'", named.json.emptyNote, 1, true)
      local human = sapwf({ "--service-key", dir .. "/other.json", "--output", "table",
        "doctor" })
      assert.matches("note: empty definitions", human.stdout, 1, true)
      assert.matches(" cf update-service INSTANCE -c '{\"defaultCollectionQueryFilter\"",
        human.stdout, 1, true)
      assert.matches("\n      INSTANCE is the name of the Workflow service instance (`cf "
        .. "services` lists it); give it with --instance NAME and sapwf fills it in.\n",
        human.stdout, 1, true)
    end)

    it("--output json: the report has the fields docs/CLI.md names, each check's result one " ..
       "of its four", function()
      -- the limited key on a reset emulator: 403s, calls with no instance to try them on, and
      -- a call that fails otherwise
      emu:fault{ fault = "status", status = 400, times = -1, method = "GET",
                 path = "/v1/task-definitions" }
      local r = sapwf({ "--service-key", limited_key, "--output", "json", "doctor" })
      emu:clear_faults()
      -- a call that failed decides the exit code (400: 9) over the missing authorities (5):
      -- doctor could not check everything
      assert.equal(9, r.code, r.stderr)
      assert.equal(1, r.json.errors)
      assert.is_table(r.json.key)
      assert.is_true(r.json.key.ok)
      assert.is_table(r.json.token)
      assert.is_true(r.json.token.ok)
      local results = {}
      for _, check in ipairs(r.json.checks) do
        assert.is_string(check.operation)
        assert.equal(operations.describe(operations.by_name[check.operation]), check.call)
        assert.equal(operations.by_name[check.operation].authority, check.authority)
        assert.is_true(contains({ "ok", "forbidden", "error", "skipped" }, check.result),
          tostring(check.result))
        results[check.operation] = check.result
      end
      assert.same({ tasks = "ok", instances = "forbidden", task_definitions = "error",
        context = "skipped" }, { tasks = results.tasks, instances = results.instances,
        task_definitions = results.task_definitions, context = results.context })
      for _, check in ipairs(r.json.checks) do
        if check.operation == "task_definitions" then
          assert.matches("^invalid %(400%) GET /v1/task%-definitions: ", check.error)
        elseif check.operation == "tasks" then
          assert.equal("empty", check.note)
        elseif check.operation == "context" then
          assert.equal("no instance to try it on", check.note)
        end
      end
      for _, field in ipairs({ "needed", "granted", "missing" }) do
        assert.is_table(r.json[field], field)
        for _, authority in ipairs(r.json[field]) do
          assert.is_true(contains(operations.authorities, authority), authority)
        end
      end
      assert.is_true(contains(r.json.missing, "WORKFLOW_INSTANCE_GET"))
      -- no --instance: the placeholder of every other 403 hint of the command line
      assert.matches("^cf update%-service INSTANCE %-c '", r.json.command)
      assert.is_false(r.json.ok)
      assert.same({ "FORM_DEFINITION_GET", "WORKFLOW_DEFINITION_GET", "WORKFLOW_INSTANCE_GET" },
        r.json.forbidden)
      assert.is_nil(r.json.forbiddenDespiteGrant)
      -- a 403 for an authority the token has: a note (an older token, another application
      -- scope), nothing to grant, so no failure
      emu:fault{ fault = "status", status = 403, times = -1, method = "GET", path = "/v1/forms" }
      local puzzled = run({ "doctor" })
      assert.equal(0, puzzled.code, puzzled.stdout)
      assert.same({ "FORM_DEFINITION_GET" }, puzzled.json.forbiddenDespiteGrant)
      assert.same({ "FORM_DEFINITION_GET" }, puzzled.json.forbidden)
    end)

    it("a wrong secret: explains invalid_client, exit 4", function()
      local key = emu:service_key("full")
      key.uaa.clientsecret = "not-the-secret"
      write_file(dir .. "/wrong.json", json.encode(key))
      local r = sapwf({ "--service-key", dir .. "/wrong.json", "doctor" })
      assert.equal(4, r.code)
      assert.is_false(r.json.token.ok)
      assert.equal("invalid_client", r.json.token.code)
      assert.same({ "auth", 401 }, { r.json.token.kind, r.json.token.status })
      assert.matches("invalid_client", r.json.token.explanation)
    end)
  end)

  describe("exit codes", function()
    it("docs/CLI.md's table has the rows --help shows, word for word", function()
      local rows = {}
      local doc = read_file("docs/CLI.md")
      local section = assert(doc:match("\n## Exit codes\n(.-)\n## ")
        or doc:match("\n## Exit codes\n(.*)$"))
      for code, text in section:gmatch("\n| (%d+) | ([^\n]-) |") do
        rows[#rows + 1] = { tonumber(code), (text:gsub("`", "")) }
      end
      assert.same(require("sapwf.cli.exitcodes").descriptions, rows)
    end)

    it("1 for an internal error: one line saying how to get a traceback, which " ..
       "SAPWF_DEBUG=1 adds", function()
      -- a bug, stood in for by a command module that raises (LUA_INIT runs before sapwf)
      local bug = { LUA_INIT = 'package.preload["sapwf.cli.authorities"] = function() '
        .. 'return { run = function() error("a bug in the command", 0) end } end' }
      local plain = sapwf({ "authorities" }, { env = bug })
      assert.equal(1, plain.code, plain.stderr)
      assert.equal("sapwf: internal error: a bug in the command\n"
        .. "(set SAPWF_DEBUG=1 for a traceback; please report it)\n", plain.stderr)
      bug.SAPWF_DEBUG = "1"
      local traced = sapwf({ "authorities" }, { env = bug })
      assert.equal(1, traced.code, traced.stderr)
      assert.matches("^sapwf: internal error: a bug in the command\nstack traceback:\n",
        traced.stderr)
      assert.matches("\n%s+[^\n]*sapwf/cli/init%.lua:%d+: in ", traced.stderr)
    end)

    it("3 for no key, a missing key file and a key without fields", function()
      local none = sapwf({ "definitions" })
      assert.equal(3, none.code)
      assert.matches("no service key", none.stderr)
      -- the hint agrees with the README: cf's "Getting key ..." line may stay
      assert.matches("\nhint: `cf service-key INSTANCE KEY > key.json` saves a key (its "
        .. "\"Getting key ...\" line may stay), then --service-key key.json", none.stderr, 1, true)
      assert.equal(3, sapwf({ "--service-key", dir .. "/nope.json", "definitions" }).code)
      write_file(dir .. "/bad.json", '{"uaa":{"url":"http://127.0.0.1:1"}}')
      local bad = sapwf({ "--service-key", dir .. "/bad.json", "definitions" })
      assert.equal(3, bad.code)
      assert.matches("uaa.clientid", bad.stderr)
      -- SAPWF_SERVICE_KEY works as a path and as JSON text.
      assert.equal(0, sapwf({ "definitions" }, { env = { SAPWF_SERVICE_KEY = full_key } }).code)
      assert.equal(0, sapwf({ "definitions" },
        { env = { SAPWF_SERVICE_KEY = read_file(full_key) } }).code)
    end)

    it("reads the binding from VCAP_SERVICES; --instance picks it by name", function()
      local vcap = json.encode({ workflow = { { label = "workflow", name = "wf-limited",
        credentials = emu:service_key("limited") } } })
      local env = { VCAP_SERVICES = vcap }
      local listed = sapwf({ "tasks" }, { env = env })
      assert.equal(0, listed.code, listed.stderr)
      assert.equal(3, sapwf({ "--instance", "other", "tasks" }, { env = env }).code)
      -- The cf command names the bound instance.
      local doctor = sapwf({ "doctor" }, { env = env })
      assert.equal(5, doctor.code)
      assert.matches("^cf update%-service wf%-limited ", doctor.json.command)
      local forbidden = sapwf({ "--instance", "wf-limited", "start", "simple" }, { env = env })
      assert.equal(5, forbidden.code)
      assert.matches("cf update%-service wf%-limited", forbidden.stderr)
    end)

    it("--instance picks a user-provided service holding a key by its name", function()
      local vcap = json.encode({ ["user-provided"] = {
        { label = "user-provided", name = "my-wf", credentials = emu:service_key("full") },
        { label = "user-provided", name = "db", credentials = { uri = "postgres://x" } } } })
      local env = { VCAP_SERVICES = vcap }
      local picked = sapwf({ "--instance", "my-wf", "token" }, { env = env })
      assert.equal(0, picked.code, picked.stderr)
      local unnamed = sapwf({ "token" }, { env = env })
      assert.equal(3, unnamed.code)
      assert.matches("(found: my-wf, db): to use one of them, give --instance NAME",
                     unnamed.stderr, 1, true)
      local other = sapwf({ "--instance", "db", "token" }, { env = env })
      assert.equal(3, other.code)
      assert.matches("binding 'db' (label user-provided) holds no workflow service key",
                     other.stderr, 1, true)
    end)

    it("several bindings in VCAP_SERVICES: 3, asking for --instance NAME", function()
      local vcap = json.encode({ workflow = {
        { label = "workflow", name = "wf-one", credentials = emu:service_key("limited") },
        { label = "workflow", name = "wf-two", credentials = emu:service_key("full") } } })
      local env = { VCAP_SERVICES = vcap }
      local r = sapwf({ "token" }, { env = env })
      assert.equal(3, r.code, r.stderr)
      assert.matches("VCAP_SERVICES has 2 workflow or process-automation-service bindings "
        .. "(wf-one, wf-two): give --instance NAME", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("from_env", 1, true))
      local doctor = sapwf({ "doctor" }, { env = env })
      assert.equal(3, doctor.code, doctor.stderr)
      assert.matches("give --instance NAME", doctor.json.key.error, 1, true)
      assert.is_nil(doctor.stdout:find("from_env", 1, true))
      local picked = sapwf({ "--instance", "wf-two", "token" }, { env = env })
      assert.equal(0, picked.code, picked.stderr)
    end)

    it("4 for a wrong secret, 5 for a missing authority, 6 for an unknown instance", function()
      local key = emu:service_key("full")
      key.uaa.clientsecret = "wrong-" .. key.uaa.clientsecret:sub(1, 3)
      write_file(dir .. "/wrong.json", json.encode(key))
      local wrong = sapwf({ "--service-key", dir .. "/wrong.json", "definitions" })
      assert.equal(4, wrong.code)
      assert.matches("invalid_client", wrong.stderr)

      local forbidden = sapwf({ "--service-key", limited_key, "--instance", "my-wf", "start",
        "simple" })
      assert.equal(5, forbidden.code)
      assert.matches("WORKFLOW_INSTANCE_START", forbidden.stderr)
      assert.matches("cf update%-service my%-wf", forbidden.stderr)
      assert.equal(0, instances_started())
      -- the fix in the command line's words: no Lua call, no placeholder to guess
      assert.matches("each sapwf command gets a new token", forbidden.stderr, 1, true)
      assert.is_nil(forbidden.stderr:find("wf:token", 1, true))
      assert.is_nil(forbidden.stderr:find("<instance>", 1, true))
      for line in forbidden.stderr:gmatch("[^\n]+") do
        if line:find("^sapwf: forbidden") then assert.is_true(#line < 250, line) end
      end
      local unnamed = sapwf({ "--service-key", limited_key, "start", "simple" })
      assert.equal(5, unnamed.code)
      assert.matches("cf update%-service INSTANCE %-c", unnamed.stderr)
      assert.matches("give it with %-%-instance NAME", unnamed.stderr)
      assert.is_nil(unnamed.stderr:find("<instance>", 1, true))

      local missing = run({ "instance", "00000000-0000-4000-8000-000000000000" })
      assert.equal(6, missing.code)
      assert.matches("not_found %(404%)", missing.stderr)
      -- doctor: a list that answers 404 (an API URL that is not the API's) is a failure
      local key = emu:service_key("full")
      key.endpoints.workflow_rest_url = key.endpoints.workflow_rest_url .. "/not-the-api"
      write_file(dir .. "/wrong-url.json", json.encode(key))
      local wrong = sapwf({ "--service-key", dir .. "/wrong-url.json", "doctor" })
      assert.equal(6, wrong.code, wrong.stderr)
      assert.is_false(wrong.json.ok)
      assert.equal(5, wrong.json.errors)
    end)

    it("7 for a closed port, a TLS failure and a timeout; --cafile and --timeout work", function()
      write_file(dir .. "/dead.json", json.encode({ uaa = { url = "http://127.0.0.1:1",
        clientid = "x", clientsecret = "y" }, endpoints = { workflow_rest_url =
        "http://127.0.0.1:1/workflow-service/rest" } }))
      assert.equal(7, sapwf({ "--service-key", dir .. "/dead.json", "definitions" }).code)

      write_file(dir .. "/tls.json", json.encode(emu:service_key("full", { tls = true })))
      local untrusted = sapwf({ "--service-key", dir .. "/tls.json", "definitions" })
      assert.equal(7, untrusted.code)
      assert.matches("tls", untrusted.stderr)
      -- the advice in the command line's words: its option, not the library's
      assert.matches("(check --cafile / the CA)", untrusted.stderr, 1, true)
      assert.matches("or pass --cafile (behind", untrusted.stderr, 1, true)
      assert.not_matches("[^-]cafile", untrusted.stderr)
      local trusted = sapwf({ "--service-key", dir .. "/tls.json", "--cafile", emu.ca_file,
        "definitions" })
      assert.equal(0, trusted.code, trusted.stderr)
      -- doctor too when only the API fails so: a token, then every call a network failure
      local mixed = json.decode(read_file(full_key))
      mixed.endpoints = json.decode(read_file(dir .. "/tls.json")).endpoints
      write_file(dir .. "/mixed.json", json.encode(mixed))
      local doctor = sapwf({ "--service-key", dir .. "/mixed.json", "doctor" })
      assert.equal(7, doctor.code, doctor.stdout)
      assert.is_true(doctor.json.token.ok)
      assert.equal(5, doctor.json.errors)

      -- times = -1: sapwf retries a timed-out GET by itself, and each retry must time out too
      emu:fault({ fault = "delay", delay = 3, times = -1, method = "GET",
        path = "/v1/workflow-definitions" })
      local slow = run({ "--timeout", "0.5", "definitions" })
      emu:clear_faults()
      assert.equal(7, slow.code)
      assert.matches("timeout", slow.stderr)
    end)

    it("8 for a server error", function()
      emu:fault({ fault = "status", status = 503, times = -1, method = "GET",
        path = "/v1/workflow-definitions" })
      local r = run({ "definitions" })
      assert.equal(8, r.code)
      emu:clear_faults()
      -- doctor too, when the token endpoint fails before any check (docs/CLI.md)
      emu:fault({ fault = "status", status = 500, times = -1, method = "POST",
        path = "/oauth/token" })
      local doctor = run({ "doctor" })
      emu:clear_faults()
      assert.equal(8, doctor.code, doctor.stderr)
      -- and when a call fails so (501: a 5xx sapwf does not send again, so no wait)
      emu:fault({ fault = "status", status = 501, times = -1, method = "GET", path = "/v1/forms" })
      local call = run({ "doctor" })
      assert.equal(8, call.code, call.stdout)
      assert.equal(1, call.json.errors)
    end)
  end)

  describe("start --from", function()
    local input

    before_each(function()
      seq = seq + 1
      input = dir .. "/bulk" .. seq .. ".ndjson"
    end)

    -- Runs a bash line (pipes, <(...)); its stdout and stderr are captured as sapwf's are.
    local function piped(shell_line)
      seq = seq + 1
      local out, err = dir .. "/out." .. seq, dir .. "/err." .. seq
      local _, how, code = helpers.execute("bash -c " .. quote(shell_line) .. " >"
        .. quote(out) .. " 2>" .. quote(err))
      assert.equal("exit", how)
      local r = { code = code, stdout = read_file(out), stderr = read_file(err) }
      assert_no_secret(r.stdout)
      assert_no_secret(r.stderr)
      r.json = json.decode(r.stdout)
      return r
    end

    it("starts each good line, writes bad ones to a failed file that can be fed back, and " ..
      "records exactly what started", function()
        write_file(input, table.concat({
          '{"n":1}',
          'not json',
          '{"definitionId":"simple","context":{"n":3}}',
          '',
          '[1,2]',
          '{"definitionId":"nosuchdefinition","context":{"n":6}}',
          '{"n":7}',
        }, "\n") .. "\n")
        local r = run({ "start", "simple", "--from", input })
        assert.equal(10, r.code, r.stderr)
        assert.equal(6, r.json.total)
        assert.equal(3, r.json.started)
        assert.equal(3, r.json.failed)
        assert.equal(2, r.json.invalidLines)
        assert.equal(0, r.json.notAttempted)
        assert.is_false(r.json.interrupted)
        assert.matches("line 2: not valid JSON", r.stderr)

        local record = results_of(input .. ".started.ndjson")
        assert.equal(3, #record)
        assert.equal(#record, instances_started())
        -- the record is written as starts finish, several in flight: in any order
        local started_lines, id_of = {}, {}
        for _, text in ipairs(record) do
          local entry = json.decode(text)
          started_lines[#started_lines + 1] = entry.line
          id_of[entry.line] = entry.id
          assert.equal(entry.id, run({ "instance", entry.id }).json.id)
        end
        table.sort(started_lines)
        assert.same({ 1, 3, 7 }, started_lines)
        assert.same({ n = 3 }, run({ "context", id_of[3] }).json)

        local failed_path = input .. ".failed.ndjson"
        local failed = lines_of(failed_path)
        assert.equal(3, #failed)
        assert.equal("not json", failed[1])
        assert.equal("[1,2]", failed[2])
        local unstarted = json.decode(failed[3])
        assert.equal("nosuchdefinition", unstarted.definitionId)
        assert.same({ n = 6 }, unstarted.context)
        assert.equal(6, unstarted.line)
        assert.equal("not_found", unstarted.error.kind)

        -- Fix the lines in the failed file and feed it back.
        write_file(failed_path, table.concat({ '{"n":2}', '{"definitionId":"simple",' ..
          '"context":{"n":5}}', (failed[3]:gsub("nosuchdefinition", "simple")) }, "\n") .. "\n")
        local again = run({ "start", "simple", "--from", failed_path })
        assert.equal(0, again.code, again.stderr)
        assert.equal(3, again.json.started)
        assert.equal(6, instances_started())
        assert.equal(3, #results_of(failed_path .. ".started.ndjson"))
        assert.is_false(exists(failed_path .. ".failed.ndjson"))
      end)

    it("refuses an existing record file unless --resume, which skips recorded lines",
      function()
        write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n')
        write_file(input .. ".started.ndjson", '{"line":2,"id":"earlier"}\n')
        local refused = run({ "start", "simple", "--from", input })
        assert.equal(2, refused.code)
        assert.matches("%-%-resume", refused.stderr)
        assert.equal(0, instances_started())
        local resumed = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(0, resumed.code, resumed.stderr)
        assert.equal(2, resumed.json.started)
        assert.equal(1, resumed.json.skippedAsRecorded)
        assert.equal(2, instances_started())
        local lines = {}
        for _, text in ipairs(results_of(input .. ".started.ndjson")) do
          lines[#lines + 1] = json.decode(text).line
        end
        assert.same({ 2, 1, 3 }, lines)
      end)

    it("--resume refuses an input that changed since its record: before sending from a " ..
      "file, from the first changed line on from a pipe", function()
        write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n')
        assert.equal(0, run({ "start", "simple", "--from", input }).code)
        assert.equal(3, instances_started())
        -- the next day's export, under the same name: line numbers 1 to 3 are recorded
        write_file(input, '{"n":11}\n{"n":12}\n{"n":13}\n{"n":14}\n')
        local r = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(2, r.code, r.stderr)
        assert.matches("--resume: line 1 of " .. input .. " is not the line the record "
          .. input .. ".started.ndjson holds for it (the input changed since that run?)",
          r.stderr, 1, true)
        assert.equal(3, instances_started())
        -- a line deleted: the lines after it moved up, the first of them is line 2 now
        write_file(input, '{"n":1}\n{"n":3}\n{"n":4}\n')
        r = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(2, r.code, r.stderr)
        assert.matches("line 2 of", r.stderr, 1, true)
        assert.equal(3, instances_started())
        -- from a pipe: the lines before the first changed one are read as usual
        local record = input .. ".started.ndjson"
        write_file(input, '{"n":1}\n{"n":2}\n{"n":30}\n{"n":4}\n')
        r = run({ "start", "simple", "--from", "-", "--record", record, "--failed",
                 input .. ".f", "--resume" }, { stdin = read_file(input) })
        assert.equal(2, r.code, r.stderr)
        assert.matches("line 3 of - is not the line", r.stderr, 1, true)
        assert.equal(2, r.json.skippedAsRecorded)
        assert.equal(0, r.json.started)
        assert.equal(3, instances_started())
        -- the input as it was: the run goes on
        write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n')
        r = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(0, r.code, r.stderr)
        assert.same({ 1, 3 }, { r.json.started, r.json.skippedAsRecorded })
        assert.equal(4, instances_started())
      end)

    it("a line's attachments are bound to its instance, and kept in the failed file",
      function()
        write_file(input, table.concat({
          '{"definitionId":"simple","context":{"n":1},"attachments":{"rootFolder":"a1"}}',
          '{"definitionId":"nosuchdefinition","context":{"n":2},"attachments":'
            .. '{"rootFolder":"a2"}}',
          '{"definitionId":"simple","context":{"n":3},"attachments":[1]}',
          '{"definitionId":"simple","context":{"n":4}}',
        }, "\n") .. "\n")
        local r = run({ "start", "--from", input })
        assert.equal(10, r.code, r.stderr)
        assert.equal(2, r.json.started)
        assert.matches("line 3: has attachments that are not a JSON object", r.stderr, 1, true)
        local by_n = {}
        for _, inst in ipairs(emu:instances()) do by_n[inst.context.n] = inst end
        assert.same({ rootFolder = "a1" }, by_n[1].attachments)
        assert.is_nil(by_n[4].attachments)
        local failed = lines_of(input .. ".failed.ndjson")
        assert.equal(2, #failed)
        local unstarted_text
        for _, text in ipairs(failed) do
          if json.decode(text).line == 2 then unstarted_text = text end
        end
        assert.same({ rootFolder = "a2" }, json.decode(unstarted_text).attachments)
        -- fed back, fixed: it starts with its attachments
        write_file(input .. ".failed.ndjson", (unstarted_text:gsub("nosuchdefinition", "simple"))
          .. "\n")
        local again = run({ "start", "--from", input .. ".failed.ndjson" })
        assert.equal(0, again.code, again.stderr)
        for _, inst in ipairs(emu:instances()) do by_n[inst.context.n] = inst end
        assert.same({ rootFolder = "a2" }, by_n[2].attachments)
      end)

    it("a line that could fail only once sent is a bad line, kept verbatim, never sent",
      function()
        local lines = {
          '{"orderId":"A-1","price":1e400}',
          '{"definitionId":"simple","context":[1]}',
          '{"definitionId":"simple","context":{"n":3},"attachments":{"size":1e999}}',
          '{"definitionId":"simple","context":{"n":4}}',
        }
        write_file(input, table.concat(lines, "\n") .. "\n")
        local before = instances_started()
        local r = run({ "start", "simple", "--from", input })
        assert.equal(10, r.code, r.stderr)
        assert.same({ 1, 3, 3 }, { r.json.started, r.json.failed, r.json.invalidLines })
        assert.equal(before + 1, instances_started())
        assert.matches("line 1: cannot be sent: context.price: infinity is not JSON", r.stderr,
          1, true)
        assert.matches("line 2: has a context that is not a JSON object", r.stderr, 1, true)
        assert.matches("line 3: cannot be sent: attachments.size: infinity is not JSON",
          r.stderr, 1, true)
        -- the failed file holds each line as it was: no other copy of a piped line exists
        assert.same({ lines[1], lines[2], lines[3] }, lines_of(input .. ".failed.ndjson"))
        -- recorded as read and not sent, so --resume sends none of them
        for _, text in ipairs(lines_of(input .. ".started.ndjson")) do
          local entry = json.decode(text)
          if entry.line and entry.line <= 3 then
            assert.equal("failed", entry.outcome, text)
          end
        end
      end)

    it("--resume starts a failed line fixed in place, but not a started one moved onto it",
      function()
        write_file(input, '{"n":1}\n{"definitionId":"nosuchdefinition","context":{}}\n'
          .. '{"n":3}\n')
        local r = run({ "start", "simple", "--from", input })
        assert.equal(1, r.json.failed, r.stderr)
        assert.equal(2, instances_started())
        -- line 2 deleted: line 2 is now the started {"n":3}, which must not start again
        local fixed_in_place = '{"n":1}\n{"n":2}\n{"n":3}\n'
        write_file(input, '{"n":1}\n{"n":3}\n')
        r = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(2, r.code, r.stderr)
        assert.matches("line 2 of", r.stderr, 1, true)
        assert.equal(2, instances_started())
        -- line 2 fixed where it was, as the report advises: it starts, nothing else does
        write_file(input, fixed_in_place)
        r = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(0, r.code, r.stderr)
        assert.same({ 1, 2 }, { r.json.started, r.json.skippedAsRecorded })
        assert.equal(3, instances_started())
      end)

    it("--resume: a bad or blank line deleted above started ones moves none of them onto a " ..
       "number the record knows nothing of", function()
        for _, gone in ipairs({ "not json", "" }) do
          seq = seq + 1
          input = dir .. "/bulk" .. seq .. ".ndjson"
          local before = instances_started()
          write_file(input, '{"n":1}\n' .. gone .. '\n{"n":3}\n')
          local r = run({ "start", "simple", "--from", input })
          assert.equal(before + 2, instances_started(), r.stderr)
          -- the line read and not sent is in the record, with its fingerprint
          assert.matches('"line":2', read_file(input .. ".started.ndjson"), 1, true)
          write_file(input, '{"n":1}\n{"n":3}\n')
          r = run({ "start", "simple", "--from", input, "--resume" })
          assert.equal(2, r.code, r.stderr)
          assert.matches("line 2 of", r.stderr, 1, true)
          assert.equal(before + 2, instances_started())
        end
      end)

    it("takes the definition from each line when none is given, and reads stdin with " ..
      "--from -", function()
        local text = '{"definitionId":"simple","context":{"n":1}}\n{"n":2}\n'
          .. '{"definitionId":"orderapproval","context":{"orderId":"w-3","product":"W"}}\n'
        local failed, record = input .. ".f", input .. ".r"
        assert.equal(2, run({ "start", "--from", "-" }, { stdin = text }).code)
        local r = run({ "start", "--from", "-", "--failed", failed, "--record", record },
          { stdin = text })
        assert.equal(10, r.code, r.stderr)
        assert.equal(2, r.json.started)
        assert.is_nil(r.json.total)
        assert.matches("line 2: names no definitionId", r.stderr)
        assert.same({ '{"n":2}' }, lines_of(failed))
        assert.equal(2, #results_of(record))
        local second                    -- recorded as the starts finished: in any order
        for _, text in ipairs(results_of(record)) do
          local entry = json.decode(text)
          if entry.line ~= 1 then second = entry end
        end
        assert.equal(3, second.line)
        assert.equal("orderapproval", run({ "instance", second.id }).json.definitionId)
        assert.equal(2, instances_started())
      end)

    it("without --concurrency: the first line alone, then at most 4 in flight", function()
      local lines = {}
      for i = 1, 12 do lines[i] = json.encode({ n = i }) end
      write_file(input, table.concat(lines, "\n") .. "\n")
      emu:set_limits({ service_time = 0.3 })
      finally(function() emu:set_limits({}) end)
      emu:reset()
      local clock = require("sapwf.core").monotonic
      local t0 = clock()
      local r = run({ "start", "simple", "--from", input })
      local took = clock() - t0
      assert.equal(0, r.code, r.stderr)
      assert.equal(12, r.json.started)
      assert.equal(4, emu:stats().in_flight_max)
      -- the first alone, then 11 four at a time: at least 4 service times
      assert.is_true(took >= 1.15, took)
    end)

    it("reads a pipe, <(...) or /dev/stdin once, as --from -: every line starts once",
      function()
        write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n')
        local started = 0
        for i, from in ipairs({ "/dev/stdin", "<(cat " .. quote(input) .. ")" }) do
          local record, failed = input .. ".r" .. i, input .. ".f" .. i
          local r = piped("cat " .. quote(input) .. " | " .. command_line({ "--service-key",
            full_key, "start", "simple", "--failed", failed, "--record", record })
            .. " --from " .. from)
          assert.equal(0, r.code, r.stderr)
          assert.equal(3, r.json.started)
          assert.is_nil(r.json.total)              -- counted only where it can be read twice
          assert.is_nil(r.json.notAttempted)       -- docs/CLI.md: neither without a total
          assert.equal(3, #results_of(record))
          started = started + 3
          assert.equal(started, instances_started())
        end
        -- Beside a pipe's name no record could be found again: the names must be given.
        local r = piped("cat " .. quote(input) .. " | " .. command_line({ "--service-key",
          full_key, "start", "simple", "--from", "/dev/stdin" }))
        assert.equal(2, r.code, r.stderr)
        assert.matches("not a regular file", r.stderr)
        assert.equal(started, instances_started())
      end)

    it("an empty definitionId is a bad line and an empty DEFINITION a usage error: nothing " ..
      "is recorded as sent for them", function()
        write_file(input, '{"definitionId":"","context":{}}\n{"n":2}\n')
        local r = run({ "start", "simple", "--from", input })
        assert.equal(10, r.code, r.stderr)
        assert.matches("line 1: has an empty definitionId", r.stderr)
        assert.equal(1, r.json.invalidLines)
        assert.equal(1, r.json.started)
        local record = read_file(input .. ".started.ndjson")
        assert.equal("{", record:sub(1, 1))               -- no blank line before the first
        for _, text in ipairs(lines_of(input .. ".started.ndjson")) do
          local entry = json.decode(text)
          if entry.line == 1 then                         -- read, not sent: its fingerprint
            assert.equal("failed", entry.outcome)
            assert.matches("^%x+$", entry.fingerprint)
          else
            assert.equal(2, entry.line)
          end
        end
        r = run({ "start", "", "--from", input, "--record", input .. ".r2" })
        assert.equal(2, r.code, r.stderr)
        assert.matches("DEFINITION is empty", r.stderr)
        assert.equal(1, instances_started())
        -- a definitionId with no context object: a start of it, or DEFINITION's context?
        -- a bad line, with or without DEFINITION, saying what to write
        write_file(input .. ".3", '{"definitionId":"orderapproval"}\n'
          .. '{"definitionId":"orderapproval","context":"x"}\n')
        for i, argv in ipairs({ { "start", "simple" }, { "start" } }) do
          for _, arg in ipairs({ "--from", input .. ".3", "--record", input .. ".r3" .. i,
                                 "--failed", input .. ".f3" .. i }) do
            argv[#argv + 1] = arg
          end
          r = run(argv)
          assert.equal(10, r.code, r.stderr)
          assert.equal(2, r.json.invalidLines)
          assert.matches('line 1: has a definitionId but no context object: write '
            .. '{"definitionId":"orderapproval","context":{}}', r.stderr, 1, true)
        end
        assert.equal(1, instances_started())
      end)

    it("reports a start with an unknown outcome and never starts it again", function()
      write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n')
      -- The first start is performed, but the connection closes before the answer.
      emu:fault({ fault = "drop_after", times = 1, method = "POST",
        path = "/v1/workflow-instances" })
      local r = run({ "start", "simple", "--from", input })
      assert.equal(10, r.code, r.stderr)
      assert.equal(1, r.json.outcomeUnknown)
      assert.equal(2, r.json.started)
      assert.matches("unknown outcome", r.stderr)
      -- The dropped start did create an instance: record + unknown = what the service has.
      assert.equal(3, instances_started())
      local recorded = results_of(input .. ".started.ndjson")
      assert.equal(3, #recorded)                -- two ids and the unknown one, in any order
      local unknown_entry
      for _, text in ipairs(recorded) do
        local entry = json.decode(text)
        if entry.outcome then unknown_entry = entry end
      end
      assert.equal("unknown", unknown_entry.outcome)
      assert.equal(1, unknown_entry.line)
      local failed = lines_of(input .. ".failed.ndjson")
      assert.equal(1, #failed)
      local entry = json.decode(failed[1])
      assert.equal("unknown", entry.outcome)
      assert.equal(1, entry.line)

      -- Fed back, the line is passed on again, not started.
      local again = run({ "start", "simple", "--from", input .. ".failed.ndjson" })
      assert.equal(10, again.code)
      assert.equal(0, again.json.started)
      assert.equal(1, again.json.outcomeUnknown)
      assert.equal(3, instances_started())
      assert.equal(failed[1], lines_of(input .. ".failed.ndjson.failed.ndjson")[1])
    end)

    it("a 201 whose body is not an instance with an id: that line's outcome is unknown, " ..
      "the other lines start", function()
        write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n')
        -- the first start is answered null (it crashed the run), the second {} (it was
        -- recorded as started, with no id)
        for _, body in ipairs({ "null", "{}" }) do
          emu:fault({ fault = "body", status = 201, body = body, times = 1, method = "POST",
            path = "/v1/workflow-instances" })
        end
        local r = run({ "start", "simple", "--from", input, "--concurrency", "1" })
        assert.equal(10, r.code, r.stderr)
        assert.is_nil(r.stderr:find("internal error", 1, true))
        assert.same({ 2, 2, 2 }, { r.json.started, r.json.outcomeUnknown, r.json.failed })
        assert.matches("line 1: [^\n]*JSON null[^\n]*may have started", r.stderr)
        assert.matches("line 2: [^\n]*without an id string[^\n]*may have started", r.stderr)
        assert.equal(2, instances_started())     -- the faults answered without starting
        local ids, unknown = 0, {}
        for _, text in ipairs(results_of(input .. ".started.ndjson")) do
          local entry = json.decode(text)
          if entry.id then ids = ids + 1 end
          if entry.outcome == "unknown" then unknown[#unknown + 1] = entry.line end
          assert.is_true(entry.id ~= nil or entry.outcome ~= nil, text)  -- never {"line":2}
        end
        assert.equal(2, ids)
        assert.same({ 1, 2 }, unknown)
        local failed = lines_of(input .. ".failed.ndjson")
        assert.equal(2, #failed)
        for i, text in ipairs(failed) do
          assert.same({ "unknown", i }, { json.decode(text).outcome, json.decode(text).line })
        end
      end)

    -- In this process, on a stand-in client: the library never hands such a result over
    -- (base.call refuses it), but the run's accounting must survive whatever comes.
    it("a start result that is neither an instance with an id nor an error counts as " ..
      "unknown, and the run goes on", function()
        local bulk = require "sapwf.cli.bulk"
        local output = require "sapwf.cli.output"
        local odd = { require("sapwf.json").null, 5, true, {}, { id = 5 },
                      { kind = "server", message = "a plain table" } }
        local lines = {}
        for i = 1, #odd + 1 do lines[i] = '{"n":' .. i .. '}' end
        write_file(input, table.concat(lines, "\n") .. "\n")
        local k = 0
        local wf = {
          token = function() return "token" end,
          start_each = function(_, next_item, on_result)
            local i = 0
            while true do
              local item = next_item()
              if item == nil then return i end
              i, k = i + 1, k + 1
              on_result(i, odd[k] or { id = "inst-" .. k }, item)
            end
          end,
        }
        local out_path, err_path = input .. ".out", input .. ".err"
        local out_file, err_file = assert(io.open(out_path, "w")), assert(io.open(err_path, "w"))
        local ctx = { out = output.new("json", out_file, err_file),
                      client = function() return wf end }
        local code = bulk.run(ctx, { from = input, definition = "simple", concurrency = 2 })
        out_file:close()
        err_file:close()
        local stderr = read_file(err_path)
        assert.equal(10, code, stderr)
        local summary = json.decode(read_file(out_path))
        assert.same({ 1, #odd, #odd, 0 }, { summary.started, summary.outcomeUnknown,
                                            summary.failed, summary.notAttempted })
        local unknown, ids = 0, {}
        for _, text in ipairs(results_of(input .. ".started.ndjson")) do
          local entry = json.decode(text)
          if entry.outcome == "unknown" then unknown = unknown + 1 end
          if entry.id then ids[#ids + 1] = entry.id end
        end
        assert.equal(#odd, unknown)
        assert.same({ "inst-" .. #odd + 1 }, ids)
        assert.matches("line 1: [^\n]*JSON null, not the new instance", stderr)
        assert.matches("line 2: [^\n]*number, not the new instance", stderr)
      end)

    it("--resume without the DEFINITION still marks a line of unknown outcome in the " ..
      "failed file, with the definition its record names", function()
        write_file(input, '{"n":1}\n{"n":2}\n')
        emu:fault({ fault = "drop_after", times = 1, method = "POST",
          path = "/v1/workflow-instances" })
        assert.equal(10, run({ "start", "simple", "--from", input }).code)
        local again = run({ "start", "--from", input, "--resume" })
        assert.equal(10, again.code, again.stderr)
        assert.equal(2, instances_started())
        local marked = json.decode(lines_of(input .. ".failed.ndjson")[1])
        assert.same({ "unknown", 1, "simple", { n = 1 } },
                    { marked.outcome, marked.line, marked.definitionId, marked.context })
        -- fed back, it is not started again
        local fed = run({ "start", "--from", input .. ".failed.ndjson" })
        assert.equal(10, fed.code, fed.stderr)
        assert.equal(2, instances_started())
      end)

    it("--resume never starts a line of unknown outcome again, says how to find it, and " ..
      "keeps the earlier failed file", function()
        write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n')
        emu:fault({ fault = "drop_after", times = 1, method = "POST",
          path = "/v1/workflow-instances" })
        local r = run({ "start", "simple", "--from", input })
        assert.equal(10, r.code, r.stderr)
        assert.equal(3, instances_started())
        local failed_path = input .. ".failed.ndjson"
        local failed_before = read_file(failed_path)
        local record_before = read_file(input .. ".started.ndjson")

        local again = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(10, again.code, again.stderr)
        assert.equal(0, again.json.started)
        assert.equal(1, again.json.outcomeUnknown)
        assert.equal(2, again.json.skippedAsRecorded)
        assert.equal(0, again.json.notAttempted)
        assert.equal(3, instances_started())              -- nothing started twice
        assert.matches("line 1: an earlier start has an unknown outcome", again.stderr)
        assert.matches("sapwf instances %-%-definition%-id simple", again.stderr)
        local look = again.stderr:match("(sapwf instances %-%-definition%-id simple [^%(]-) %(")
        assert.matches("%-%-started%-from %d%d%d%d%-%d%d%-%d%dT", look)
        -- the command it prints finds the instance that may have started
        local args = {}
        for word in look:gmatch("%S+") do args[#args + 1] = word end
        table.remove(args, 1)
        local found = run(args)
        assert.equal(0, found.code, found.stderr)
        local recorded_ids = {}
        for _, text in ipairs(results_of(input .. ".started.ndjson")) do
          local e = json.decode(text)
          if e.id then recorded_ids[e.id] = true end
        end
        local unrecorded = 0
        for _, inst in ipairs(found.json) do
          if not recorded_ids[inst.id] then unrecorded = unrecorded + 1 end
        end
        assert.equal(1, unrecorded)          -- the instance of the unknown start is in the list
        -- the new failed file has it, marked: without the mark it could be fed back
        local marked = json.decode(lines_of(failed_path)[1])
        assert.same({ "unknown", 1, "simple", { n = 1 } },
                    { marked.outcome, marked.line, marked.definitionId, marked.context })
        -- nothing that held a record was truncated or deleted
        assert.equal(failed_before, read_file(failed_path .. ".1"))
        assert.matches("kept as " .. failed_path:gsub("%p", "%%%0") .. "%.1", again.stderr)
        assert.equal(record_before, read_file(input .. ".started.ndjson"):sub(1, #record_before))
      end)

    it("refuses --failed or --record naming the input, however spelt, before sending",
      function()
        write_file(input, '{"n":1}\n{"n":2}\n')
        local link = input .. ".link"
        assert.is_true(shell("ln -s " .. quote(input) .. " " .. quote(link)))
        local relative = "./" .. input:match("[^/]+$")
        for _, args in ipairs({ { "--failed", input }, { "--record", input },
                                { "--failed", link }, { "--record", link },
                                { "--failed", input .. ".r", "--record", input .. ".r" } }) do
          local command = { "start", "simple", "--from", input }
          for _, a in ipairs(args) do command[#command + 1] = a end
          local r = run(command)
          assert.equal(2, r.code, r.stderr)
          assert.matches("name the same file", r.stderr)
        end
        -- a relative spelling, run from the input's folder
        local r = sapwf({ "--service-key", full_key, "start", "simple", "--from", input,
                          "--record", relative }, { cwd = dir })
        assert.equal(2, r.code, r.stderr)
        assert.equal(0, instances_started())
        assert.equal('{"n":1}\n{"n":2}\n', read_file(input))
      end)

    it("refuses --failed and --record naming one new file, two spellings, before sending",
      function()
        -- neither is there to compare: one file for both would read a failed line back as
        -- started on --resume
        write_file(input, '{"n":1}\n{"n":2}\n')
        local name = input:match("[^/]+$") .. ".both.ndjson"
        local r = sapwf({ "--service-key", full_key, "start", "simple", "--from", input,
                          "--failed", name, "--record", "./" .. name }, { cwd = dir })
        assert.equal(2, r.code, r.stderr)
        assert.matches("%-%-failed and %-%-record name the same file", r.stderr)
        assert.equal(0, instances_started())
        assert.is_nil(io.open(dir .. "/" .. name), "the file this run made is left behind")
      end)

    it("refuses - for --failed or --record: no file named - appears", function()
        write_file(input, '{"n":1}\n')
        for _, option in ipairs({ "--failed", "--record" }) do
          local r = sapwf({ "--service-key", full_key, "start", "simple", "--from", input,
                            option, "-" }, { cwd = dir })
          assert.equal(2, r.code, r.stderr)
          assert.matches(option .. " %-: give a file", r.stderr)
          assert.is_nil(io.open(dir .. "/-"))
        end
        assert.equal(0, instances_started())
      end)

    it("with standard output that cannot take the summary: the line on stderr, exit 10",
      function()
        write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n')
        emu:fault({ fault = "status", status = 400, times = 1, method = "POST",
          path = "/v1/workflow-instances" })
        local err_file = dir .. "/bulk-full.err"
        local _, how, code = helpers.execute(command_line({ "--service-key", full_key, "start",
          "simple", "--from", input }) .. " </dev/null >/dev/full 2>" .. quote(err_file))
        local stderr = read_file(err_file)
        assert.same({ "exit", 10 }, { how, code }, stderr)
        assert.matches("started 2 of 3 lines, 1 failed", stderr, 1, true)
        assert.matches("cannot write to standard output", stderr, 1, true)
        assert.equal(2, #results_of(input .. ".started.ndjson"))
      end)

    it("sends nothing it cannot record, and says so", function()
        write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n')
        local r = run({ "start", "simple", "--from", input, "--record", "/dev/full" })
        assert.equal(1, r.code, r.stderr)
        -- a line is recorded as being sent before it is sent: not recorded, not sent
        assert.equal(0, instances_started())
        assert.matches("line 1: not sent: the record file cannot be written", r.stderr)
        assert.matches("cannot write the record file /dev/full", r.stderr)
        assert.equal(3, r.json.notAttempted)
        -- a device holds nothing to read back: no --resume advised
        assert.matches("the record is no file that %-%-resume could read back", r.stderr)
        assert.is_nil(r.stderr:find("with --resume", 1, true), r.stderr)
        -- nothing failed: no failed file is left, as the summary says
        assert.equal(json.null, r.json.failedFile)
        assert.is_false(exists(input .. ".failed.ndjson"))
        -- and the failed file likewise
        write_file(input, 'not json\n{"n":2}\n')
        r = run({ "start", "simple", "--from", input, "--failed", "/dev/full",
                  "--record", input .. ".rec" })
        assert.equal(1, r.code, r.stderr)
        assert.matches("cannot write the failed file /dev/full", r.stderr)
        assert.equal(0, instances_started())
      end)

    it("removes only an empty failed file it made itself, never a device or a file that " ..
      "was there", function()
        write_file(input, '{"n":1}\n{"n":2}\n')
        local kept = input .. ".kept"
        write_file(kept, "")
        local r = run({ "start", "simple", "--from", input, "--failed", kept })
        assert.equal(0, r.code, r.stderr)
        assert.equal(json.null, r.json.failedFile)
        assert.is_true(exists(kept))
        -- a character device such as /dev/null (made here, to risk no real one): kept too
        local device = dir .. "/null-device"
        if shell("mknod " .. quote(device) .. " c 1 3 2>/dev/null") then
          r = run({ "start", "simple", "--from", input, "--failed", device, "--record",
                    input .. ".r2" })
          assert.equal(0, r.code, r.stderr)
          assert.is_true(shell("test -c " .. quote(device)), "the device was removed")
        end
        -- one that cannot seek (a pipe) is written to, not mistaken for a file to move aside
        r = piped(command_line({ "--service-key", full_key, "start", "simple", "--from", input,
          "--failed", "/dev/stdout", "--record", input .. ".r3" }) .. " | cat")
        assert.equal(0, r.code, r.stderr)
        assert.equal(0, r.json.failed)
        assert.equal(4 + (exists(device) and 2 or 0), instances_started())
      end)

    it("stops at once when the client may not start instances (exit 5)", function()
      write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n')
      local r = sapwf({ "--service-key", limited_key, "start", "simple", "--from", input })
      assert.equal(5, r.code)
      assert.equal(1, r.json.failed)
      assert.equal(2, r.json.notAttempted)
      assert.matches("WORKFLOW_INSTANCE_START", r.json.aborted)
      -- the summary's fields are those CLI.md lists
      local listed = {}
      for _, name in ipairs({ "input", "total", "started", "failed", "invalidLines",
          "outcomeUnknown", "notAttempted", "skippedAsRecorded", "interrupted", "record",
          "failedFile", "seconds", "aborted" }) do
        listed[name] = true
        assert.is_not_nil(r.json[name], name)
      end
      for name in pairs(r.json) do assert.is_true(listed[name], name) end
      -- the hints of a single start's 403, not a Lua field name
      local function hints(text)
        local list = {}
        for line in text:gmatch("[^\n]+") do
          if line:find("^hint: ") then list[#list + 1] = line end
        end
        return list
      end
      local single = sapwf({ "--service-key", limited_key, "start", "simple" })
      assert.equal(5, single.code)
      assert.matches("^hint: cf update%-service INSTANCE", hints(single.stderr)[1])
      assert.matches("then run the command again", hints(single.stderr)[1], 1, true)
      -- the same, but for what to run next: the bulk start goes on with --resume (run as
      -- it was, it would refuse the record file it left)
      local expected = hints(single.stderr)
      expected[1] = expected[1]:gsub("then run the command again",
                                     "then run the same command with --resume")
      assert.same(expected, hints(r.stderr))
      assert.is_nil(r.stderr:find("err.hint", 1, true))
      assert.matches("fix: see the hint below", r.stderr)
      -- The advice covers the lines not attempted too: --resume, not the failed file alone.
      assert.matches("1 failed %(" .. (input .. ".failed.ndjson"):gsub("%p", "%%%0")
        .. "%), 2 lines not attempted; stopped: ", r.stderr)
      assert.matches("run the same command with %-%-resume: it starts the failed lines and "
        .. "those not attempted", r.stderr)
      assert.is_nil(r.stderr:find("feed it back", 1, true))
      -- followed (the full key being the fix here), it starts every line, each once
      local rest = run({ "start", "simple", "--from", input, "--resume" })
      assert.equal(0, rest.code, rest.stderr)
      assert.equal(3, rest.json.started)
      assert.equal(3, instances_started())
    end)

    it("Ctrl-C: the record lists exactly the instances started, the summary says " ..
      "interrupted", function()
        local lines = {}
        for i = 1, 40 do
          lines[i] = json.encode({ n = i })
        end
        write_file(input, table.concat(lines, "\n") .. "\n")
        emu:fault({ fault = "delay", delay = 0.2, times = -1, method = "POST",
          path = "/v1/workflow-instances" })
        local code, summary, stderr = run_signalled({ "--service-key", full_key, "start",
          "simple", "--from", input }, "INT", 1)
        emu:clear_faults()

        assert.equal(130, code, stderr)
        assert.is_true(summary.interrupted)
        assert.matches("interrupted", stderr)
        local record = results_of(input .. ".started.ndjson")
        assert.is_true(#record > 0 and #record < 40, "started " .. #record)
        assert.equal(#record, instances_started())
        assert.equal(#record, summary.started)
        assert.equal(40 - #record, summary.notAttempted)
        assert.matches(tostring(40 - #record) .. " lines not attempted", stderr)

        -- --resume starts the rest.
        local rest = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(0, rest.code, rest.stderr)
        assert.equal(40, instances_started())
        assert.equal(40, #results_of(input .. ".started.ndjson"))
      end)

    it("Ctrl-C while a line waits for the rate limit (429, Retry-After 5): the run ends at " ..
      "once, that line is not sent again and failed, the next not attempted", function()
        local function starts()
          return emu:stats().api_requests_by_operation["POST /v1/workflow-instances"] or 0
        end
        write_file(input, '{"n":1}\n{"n":2}\n')
        emu:fault({ fault = "status", status = 429, retry_after = 5, times = 1,
          method = "POST", path = "/v1/workflow-instances" })
        local code, summary, stderr, took = run_signalled({ "--service-key", full_key, "start",
          "simple", "--from", input }, "INT", function() return starts() > 0 end)
        emu:clear_faults()
        assert.equal(130, code, stderr)
        assert.is_true(took < 2, "took " .. took .. " s after the signal")
        assert.equal(1, starts())
        assert.equal(0, #emu:instances())
        assert.is_true(summary.interrupted)
        assert.equal(0, summary.started)
        assert.equal(1, summary.failed)
        assert.equal(0, summary.outcomeUnknown)
        assert.equal(1, summary.notAttempted)
        assert.matches("line 1: interrupted (SIGINT) before it was sent again: not started "
          .. "(rate_limited (429)", stderr, 1, true)
        local record = lines_of(input .. ".started.ndjson")
        assert.equal(2, #record)                  -- sending, then what became of it
        assert.same({ line = 1, outcome = "failed" }, json.decode(record[2]))
        -- the same when every line was taken already (no later line to see the signal)
        write_file(input .. ".one", '{"n":1}\n')
        emu:fault({ fault = "status", status = 429, retry_after = 5, times = 1,
          method = "POST", path = "/v1/workflow-instances" })
        code, summary, stderr = run_signalled({ "--service-key", full_key, "start", "simple",
          "--from", input .. ".one" }, "INT", function() return starts() > 1 end)
        emu:clear_faults()
        assert.equal(130, code, stderr)
        assert.is_true(summary.interrupted)
        assert.same({ 0, 1, 0 }, { summary.started, summary.failed, summary.notAttempted })
        assert.matches("--resume", stderr, 1, true)
      end)

    it("SIGTERM and SIGHUP stop it as Ctrl-C does: the starts in flight are recorded, and " ..
      "--resume sends none of them again", function()
        local lines = {}
        for i = 1, 12 do
          lines[i] = json.encode({ orderId = "t-" .. i, product = "T" })
        end
        write_file(input, table.concat(lines, "\n") .. "\n")
        emu:set_limits({ service_time = 0.6, count_key = "orderId" })
        finally(function() emu:set_limits({}) end)
        for _, signal in ipairs({ "TERM", "HUP" }) do
          emu:reset()
          os.remove(input .. ".started.ndjson")
          local code, summary, stderr = run_signalled({ "--service-key", full_key, "start",
            "orderapproval", "--from", input }, signal, 1)
          assert.equal(130, code, stderr)
          assert.is_true(summary.interrupted)
          assert.matches("interrupted %(SIG" .. signal .. "%)", stderr)
          local record = results_of(input .. ".started.ndjson")
          assert.is_true(summary.started > 0 and summary.started < 12, stderr)
          assert.equal(summary.started, instances_started())
          assert.equal(12 - summary.started, summary.notAttempted)

          local rest = run({ "start", "orderapproval", "--from", input, "--resume" })
          assert.equal(0, rest.code, rest.stderr)
          local stats = emu:stats()
          assert.equal(0, stats.starts_doubled)
          assert.equal(12, stats.starts_keyed)
          assert.is_true(#record < #results_of(input .. ".started.ndjson"))
        end
        -- Under nohup (SIGHUP ignored) a closed terminal does not stop the run.
        emu:reset()
        os.remove(input .. ".started.ndjson")
        local code, summary, stderr = run_signalled({ "--service-key", full_key, "start",
          "orderapproval", "--from", input }, "HUP", 1, "trap '' HUP; ")
        assert.equal(0, code, stderr)
        assert.equal(12, summary.started)
        assert.is_false(summary.interrupted)
      end)

    -- n lines {"n": i}: a run of `simple` starts
    local function numbered_input(n)
      local lines = {}
      for i = 1, n do
        lines[i] = json.encode({ n = i })
      end
      write_file(input, table.concat(lines, "\n") .. "\n")
    end

    it("a second signal ends it at once, without waiting for the starts in flight",
      function()
        numbered_input(8)
        emu:set_limits({ service_time = 4 })
        finally(function() emu:set_limits({}) end)
        for _, signal in ipairs({ "INT", "TERM" }) do
          os.remove(input .. ".started.ndjson")
          local code, summary, stderr, took = run_signalled({ "--service-key", full_key,
            "start", "simple", "--from", input }, signal, 1, nil, 0.5)
          -- the shell's code for a process its signal ended: 128 + the signal's number
          assert.equal(signal == "INT" and 130 or 143, code, stderr)
          assert.is_nil(summary)                    -- no summary: it did not wait for one
          -- the starts in flight take 4 s; the first signal alone would have waited for them
          assert.is_true(took < 2, "ended " .. took .. " s after the second signal")
        end
      end)

    it("a signal during its first token fetch: nothing sent, exit 130, the signal named",
      function()
        numbered_input(3)
        for _, signal in ipairs({ "INT", "TERM" }) do
          local before = emu:stats().token_requests
          emu:fault({ fault = "delay", delay = 3, times = 1, method = "POST",
                      path = "/oauth/token" })
          local code, summary, stderr, took = run_signalled({ "--service-key", full_key,
            "start", "simple", "--from", input }, signal,
            function() return emu:stats().token_requests > before end)
          emu:clear_faults()
          assert.equal(130, code, stderr)
          assert.is_nil(summary)
          assert.matches("interrupted (SIG" .. signal .. ") before the request was sent: "
            .. "nothing done", stderr, 1, true)
          assert.is_true(took < 2, "ended " .. took .. " s after the signal")
          assert.equal(0, #emu:instances())
        end
      end)

    it("a signal delivered twice at once (timeout, a service manager) stops it as one does",
      function()
        numbered_input(8)
        emu:set_limits({ service_time = 0.6 })
        finally(function() emu:set_limits({}) end)
        os.remove(input .. ".started.ndjson")
        local code, summary, stderr = run_signalled({ "--service-key", full_key, "start",
          "simple", "--from", input, "--concurrency", "2" }, "INT", 0.9, nil, 0)
        assert.equal(130, code, stderr)
        assert.is_true(summary.interrupted)         -- it waited for the starts in flight
        assert.is_true(summary.started >= 1 and summary.started < 8, summary.started)
        assert.equal(summary.started, #results_of(input .. ".started.ndjson"))
      end)

    -- n lines keyed by orderId (the emulator counts a key's second start as doubled).
    local function keyed_input(n, prefix)
      local lines = {}
      for i = 1, n do
        lines[i] = json.encode({ orderId = prefix .. i, product = "K" })
      end
      write_file(input, table.concat(lines, "\n") .. "\n")
    end

    it("a record write cut short (a full disk) never makes a started line look unstarted: " ..
      "--resume sends none again", function()
        keyed_input(1000, "w-")
        emu:set_limits({ count_key = "orderId" })
        finally(function() emu:set_limits({}) end)
        -- a file size limit cuts the record's writes at 64 KiB, as a full disk would: a few
        -- hundred lines in, so that LuaJIT has compiled the loop by then (its compiled
        -- writes lost the failure: output.interpreted)
        local r = piped("ulimit -f 64; trap '' XFSZ; exec " .. command_line({ "--service-key",
          full_key, "start", "orderapproval", "--from", input, "--concurrency", "8" }))
        assert.equal(1, r.code, r.stderr)
        assert.matches("cannot write the record file", r.stderr)
        local first = emu:stats().starts_keyed
        assert.is_true(first > 100 and first < 1000, "started " .. first)
        local rest = run({ "start", "orderapproval", "--from", input, "--concurrency", "8",
                           "--resume" })
        assert.is_true(rest.code == 0 or rest.code == 10, rest.stderr)
        local stats = emu:stats()
        assert.equal(0, stats.starts_doubled)
        assert.equal(1000, stats.starts_keyed)
        -- what the first run started but could not record is reported, not started again
        assert.equal(1000, first + rest.json.started)
        assert.equal(1000 - rest.json.skippedAsRecorded - rest.json.started,
          rest.json.outcomeUnknown)
      end)

    it("a signal while it waits for more input on a pipe stops it too, with its summary",
      function()
        local fifo = dir .. "/in.fifo"
        assert.is_true(shell("mkfifo " .. quote(fifo)))
        -- one line, then the writer holds the pipe open without writing
        assert.is_true(shell("sh -c " .. quote("{ echo '{\"n\":1}'; sleep 4; } > "
          .. quote(fifo)) .. " >/dev/null 2>&1 &"))
        local code, summary, stderr = run_signalled({ "--service-key", full_key, "start",
          "simple", "--from", fifo, "--failed", dir .. "/fifo.failed.ndjson",
          "--record", dir .. "/fifo.started.ndjson" }, "TERM", 1.5)
        assert.equal(130, code, stderr)
        assert.is_true(summary.interrupted)
        assert.equal(1, summary.started)
        assert.equal(1, instances_started())
      end)

    it("after kill -9, --resume sends no line that was in flight again and reports each as " ..
      "one that may have started", function()
        keyed_input(12, "k-")
        emu:set_limits({ service_time = 1, count_key = "orderId" })
        finally(function() emu:set_limits({}) end)
        local code = run_signalled({ "--service-key", full_key, "start", "orderapproval",
          "--from", input }, "KILL", 1.6)
        assert.equal(137, code)
        local record = input .. ".started.ndjson"
        local sent, answered = {}, {}
        for _, text in ipairs(lines_of(record)) do
          local entry = json.decode(text)
          if entry.outcome == "sending" then sent[entry.line] = true
          else answered[entry.line] = true end
        end
        local in_flight = 0
        for line in pairs(sent) do
          if not answered[line] then in_flight = in_flight + 1 end
        end
        assert.is_true(in_flight > 0, "nothing was in flight")
        emu:set_limits({ count_key = "orderId" })
        local rest = run({ "start", "orderapproval", "--from", input, "--resume" })
        assert.equal(10, rest.code, rest.stderr)
        assert.equal(in_flight, rest.json.outcomeUnknown)
        assert.matches("sent its start but recorded no answer", rest.stderr)
        assert.matches("sapwf instances %-%-definition%-id orderapproval %-%-started%-from "
          .. "%d%d%d%d%-", rest.stderr)
        local stats = emu:stats()
        assert.equal(0, stats.starts_doubled)
        assert.equal(12 - in_flight, rest.json.started + rest.json.skippedAsRecorded)
      end)

    it("--resume refuses a record of the earlier format with a line cut short, and starts " ..
      "its entries on a fresh line", function()
        write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n')
        local record = input .. ".started.ndjson"
        -- line 2's id may be in the cut line: resuming could start it twice
        write_file(record, '{"line":1,"id":"a"}\n{"line":2,"i\n{"line":3,"id":"c"}\n')
        local r = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(2, r.code, r.stderr)
        assert.matches("cannot be read at its line 2", r.stderr)
        assert.equal(0, instances_started())
        -- a last entry without its newline is complete: the next one goes below it
        write_file(record, '{"line":1,"id":"a"}\n{"line":3,"id":"c"}')
        r = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(0, r.code, r.stderr)
        assert.equal(1, r.json.started)
        assert.equal(2, r.json.skippedAsRecorded)
        local entries = lines_of(record)
        assert.equal('{"line":3,"id":"c"}', entries[2])
        assert.is_nil(read_file(record):find("\n\n", 1, true))
        for _, text in ipairs(entries) do
          assert.is_table(json.decode(text), text)
        end
        -- this format writes ahead: a line read and not sent (its fingerprint) comes before
        -- any start, so a cut line after it costs nothing but that line's outcome
        write_file(record, '{"line":1,"outcome":"failed","fingerprint":"0000000000000000"}\n'
          .. '{"line":2,"outc\n')
        write_file(input, 'not json\n{"n":2}\n')
        r = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(10, r.code, r.stderr)                -- line 1 is bad: partly done
        assert.equal(1, r.json.started)
      end)

    -- A shell prefix under which a file of mode 200 cannot be read: none for a user, and for
    -- root setpriv without the capabilities that bypass file modes. nil when neither works.
    local function without_read_override(path)
      for _, prefix in ipairs({ "", "setpriv --bounding-set=-dac_override,-dac_read_search "
          .. "--inh-caps=-dac_override,-dac_read_search " }) do
        if shell(prefix .. "sh -c " .. quote("! cat " .. quote(path)) .. " >/dev/null 2>&1") then
          return prefix
        end
      end
      return nil
    end

    it("never takes a record or failed file that cannot be read for one that is not there: " ..
      "no line starts twice, and an earlier failed file is kept aside", function()
        write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n')
        local first = run({ "start", "simple", "--from", input })
        assert.equal(0, first.code, first.stderr)
        local record = input .. ".started.ndjson"
        local recorded = read_file(record)
        -- a name that cannot be examined (here a link loop) is no missing file either
        local loop = input .. ".loop"
        assert.is_true(shell("ln -s " .. quote(loop) .. " " .. quote(loop)))
        for _, option in ipairs({ "--record", "--failed" }) do
          local r = run({ "start", "simple", "--from", input, option, loop, "--resume" })
          assert.equal(2, r.code, r.stderr)
          assert.matches("cannot examine the " .. (option == "--record" and "record" or "failed")
            .. " file " .. loop .. ": Too many levels of symbolic links", r.stderr, 1, true)
        end
        assert.is_true(shell("chmod 200 " .. quote(record)))
        local prefix = without_read_override(record)
        if not prefix then
          pending("no way to make a file unreadable here (root without setpriv)")
          return
        end
        local function start_as_user(args)
          local command = { "--service-key", full_key, "start", "simple" }
          for _, a in ipairs(args) do command[#command + 1] = a end
          return piped(prefix .. command_line(command) .. " </dev/null")
        end
        local again = start_as_user({ "--from", input })
        assert.equal(2, again.code, again.stderr)
        assert.matches("the record file " .. record .. " exists: to go on with the run it "
          .. "records, add --resume", again.stderr, 1, true)
        local resumed = start_as_user({ "--from", input, "--resume" })
        assert.equal(2, resumed.code, resumed.stderr)
        assert.matches("--resume: cannot read the record file " .. record
          .. ": Permission denied", resumed.stderr, 1, true)
        assert.equal(3, instances_started())
        assert.equal(recorded, read_file(record))
        -- an earlier failed file that cannot be read is moved aside all the same
        local other, failed = input .. ".other", input .. ".other.failed.ndjson"
        write_file(other, '{"n":4}\n')
        write_file(failed, "not json\n")
        assert.is_true(shell("chmod 200 " .. quote(failed)))
        local kept = start_as_user({ "--from", other })
        assert.equal(0, kept.code, kept.stderr)
        assert.equal("not json\n", read_file(failed .. ".1"))
        assert.is_false(exists(failed))
        assert.equal(4, instances_started())
        -- a record that can be read but not locked (locking needs it open for writing)
        assert.is_true(shell("chmod 444 " .. quote(record)))
        local unlocked = start_as_user({ "--from", input, "--resume" })
        assert.equal(2, unlocked.code, unlocked.stderr)
        assert.matches("cannot lock the record file " .. record .. ", so another run could "
          .. "start its lines at the same time: Permission denied", unlocked.stderr, 1, true)
        assert.equal(4, instances_started())
        assert.equal(recorded, read_file(record))
      end)

    it("refuses a record or failed file that is a directory, before sending", function()
        write_file(input, '{"n":1}\n')
        local folder = input .. ".d"
        assert.is_true(shell("mkdir " .. quote(folder)))
        for _, option in ipairs({ "--record", "--failed" }) do
          for _, resume in ipairs({ false, true }) do
            local r = run({ "start", "simple", "--from", input, option, folder,
                            resume and "--resume" or nil })
            assert.equal(2, r.code, r.stderr)
            assert.matches(option .. " " .. folder .. " is a directory: give a file", r.stderr,
              1, true)
          end
        end
        assert.equal(0, instances_started())
        assert.is_true(shell("test -d " .. quote(folder)))
        assert.is_false(exists(folder .. ".1"))
      end)

    it("refuses, before any request, a record or failed file in a folder that is not there",
      function()
        write_file(input, '{"n":1}\n')
        local before = emu:stats().token_requests
        for _, option in ipairs({ "--record", "--failed" }) do
          local r = run({ "start", "simple", "--from", input, option, dir .. "/nowhere/f" })
          assert.equal(2, r.code, r.stderr)
          assert.matches("cannot make the " .. (option == "--record" and "record" or "failed")
            .. " file " .. dir .. "/nowhere/f: there is no folder " .. dir .. "/nowhere",
            r.stderr, 1, true)
        end
        assert.equal(before, emu:stats().token_requests)
        assert.equal(0, instances_started())
      end)

    it("--resume without a record to resume from refuses: it would start every line again",
      function()
        write_file(input, '{"n":1}\n{"n":2}\n')
        local record = input .. ".run1.ndjson"
        local first = run({ "start", "simple", "--from", input, "--record", record })
        assert.equal(0, first.code, first.stderr)
        -- the same run resumed, its --record forgotten: the default record is not there
        local r = run({ "start", "simple", "--from", input, "--resume" })
        assert.equal(2, r.code, r.stderr)
        assert.matches("--resume: there is no record file " .. input .. ".started.ndjson to "
          .. "resume from", r.stderr, 1, true)
        assert.is_false(exists(input .. ".started.ndjson"))
        assert.equal(2, instances_started())
        -- with its record, it resumes: nothing to start
        r = run({ "start", "simple", "--from", input, "--record", record, "--resume" })
        assert.equal(0, r.code, r.stderr)
        assert.equal(2, instances_started())
      end)

    it("reads past a UTF-8 byte order mark at the start of the input", function()
        write_file(input, '\239\187\191{"n":1}\n{"n":2}\n')
        local r = run({ "start", "simple", "--from", input })
        assert.equal(0, r.code, r.stderr)
        assert.equal(2, r.json.started)
        assert.equal(2, r.json.total)
        -- a first line that is only the mark is blank
        write_file(input .. ".2", '\239\187\191\n{"n":3}\n')
        r = run({ "start", "simple", "--from", input .. ".2" })
        assert.equal(0, r.code, r.stderr)
        assert.same({ 1, 1, 0 }, { r.json.total, r.json.started, r.json.notAttempted })
        assert.equal(3, instances_started())
      end)

    it("two runs on one record or one failed file at once: the second refuses at once, " ..
      "sending nothing, and no line starts twice", function()
        local lines = {}
        for i = 1, 12 do lines[i] = json.encode({ orderId = "lock-" .. i, product = "W" }) end
        write_file(input, table.concat(lines, "\n") .. "\n")
        emu:set_limits({ service_time = 0.3, count_key = "orderId" })
        finally(function() emu:set_limits({}) end)
        local record = input .. ".started.ndjson"
        local base = input .. ".first"
        assert.is_true(shell("sh -c " .. quote(command_line({ "--service-key", full_key,
          "start", "orderapproval", "--from", input }) .. " </dev/null >"
          .. quote(base .. ".out") .. " 2>" .. quote(base .. ".err") .. "; echo $? >"
          .. quote(base .. ".rc")) .. " >/dev/null 2>&1 &"))
        -- the first run holds the lock from before its first line is recorded as sent
        assert.is_true(wait_for(function()
          return (read_file(record) or ""):find('"sending"', 1, true) ~= nil end, 5))
        local second = run({ "start", "orderapproval", "--from", input, "--resume" })
        assert.equal(2, second.code, second.stderr)
        assert.matches("the record file " .. record .. " is in use by another run",
          second.stderr, 1, true)
        -- nor a run with a record of its own that shares the first one's failed file: the
        -- two would mix their failed lines, and it would move the first one's file aside
        local failed, other = input .. ".failed.ndjson", input .. ".other"
        write_file(other, json.encode({ orderId = "lock-other", product = "W" }) .. "\n")
        local third = run({ "start", "orderapproval", "--from", other, "--failed", failed })
        assert.equal(2, third.code, third.stderr)
        assert.matches("the failed file " .. failed .. " is in use by another run",
          third.stderr, 1, true)
        assert.is_false(exists(other .. ".started.ndjson"))
        assert.is_true(wait_for(function() return (read_file(base .. ".rc") or "") ~= "" end,
          15))
        assert.equal("0", read_file(base .. ".rc"):match("%d+"), read_file(base .. ".err"))
        local stats = emu:stats()
        assert.equal(0, stats.starts_doubled)
        assert.equal(12, instances_started())
        assert.equal(12, #results_of(record))
      end)

    it("streams a large input: every line started once and recorded", function()
      local lines = {}
      for i = 1, 6000 do
        lines[i] = i % 1000 == 0 and "not json" or json.encode({ n = i })
      end
      write_file(input, table.concat(lines, "\n") .. "\n")
      local r = run({ "start", "simple", "--from", input, "--concurrency", "16" })
      assert.equal(10, r.code, r.stderr)
      assert.equal(6000, r.json.total)
      assert.equal(5994, r.json.started)
      assert.equal(6, r.json.invalidLines)
      assert.equal(0, r.json.notAttempted)
      local seen, record = {}, results_of(input .. ".started.ndjson")
      assert.equal(5994, #record)
      for _, text in ipairs(record) do
        local entry = json.decode(text)
        assert.is_nil(seen[entry.line], "line recorded twice: " .. entry.line)
        assert.is_string(entry.id)
        seen[entry.line] = true
      end
      assert.equal(5994, instances_started())
    end)

    it("draws a progress bar when stderr is a terminal, none otherwise", function()
      write_file(input, '{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n')
      local plain = run({ "start", "simple", "--from", input })
      assert.equal(0, plain.code)
      assert.is_nil(plain.stderr:find("\r", 1, true))

      os.remove(input .. ".started.ndjson")
      local typescript, out = dir .. "/typescript", dir .. "/tty.out"
      local inner = command_line({ "--service-key", full_key, "start", "simple", "--from",
        input }) .. " >" .. quote(out)
      assert.is_true(shell("script -qec " .. quote(inner) .. " " .. quote(typescript)
        .. " </dev/null >/dev/null 2>&1"))
      local screen = read_file(typescript)
      assert_no_secret(screen)
      assert.matches("\r4/4 %[#+%] 100%%", screen)
      assert.matches("%d+%.%d/s", screen)
      assert.equal(4, json.decode(read_file(out)).started)
    end)
  end)

  it("writes a table when stdout is a terminal, JSON when it is not", function()
    start("simple")
    local typescript = dir .. "/table-typescript"
    local inner = command_line({ "--service-key", full_key, "definitions" })
    assert.is_true(shell("script -qec " .. quote(inner) .. " " .. quote(typescript)
      .. " </dev/null >/dev/null 2>&1"))
    local screen = read_file(typescript)
    assert.matches("id%s+name%s+version", screen)
    assert.matches("orderapproval%s+Order approval%s+2", screen)
    assert.is_nil(screen:find("[{", 1, true))
    assert.equal("[", run({ "definitions" }).stdout:sub(1, 1))
    assert.matches("^id ", run({ "--output", "table", "instances" }).stdout)
  end)

  -- README.md's section "From a service key to a running instance", as a newcomer follows it:
  -- each line of its sh blocks runs in sh, in a directory that holds key.json, with bin/ on
  -- the PATH. The key is the limited client's, which has the authorities of a new service
  -- instance. The `cf update-service` line must be the command doctor printed; the test does
  -- what cf would, setting the client's authorities in the emulator. The instance id in the
  -- README is an example: the test puts in the one `start` printed.
  describe("the README walkthrough", function()
    local function walkthrough_lines()
      local readme = assert(read_file("README.md"))
      local section = readme:match("\n## From a service key to a running instance\n(.-)\n## ")
      assert.is_truthy(section, "README.md has no section 'From a service key to a running "
        .. "instance'")
      local lines = {}
      for block in section:gmatch("\n```sh\n(.-)\n```") do
        for line in block:gmatch("[^\n]+") do
          lines[#lines + 1] = line
        end
      end
      return lines
    end

    -- export, cf, or the sapwf command (after the global options).
    local function kind_of(line)
      if line:find("^export ") then
        return "export"
      elseif line:find("^cf update%-service ") then
        return "cf"
      end
      local rest = assert(line:match("^sapwf%s+(.*)$"), line)
      repeat
        local before = rest
        rest = rest:gsub("^%-%-[%w-]+%s+%S+%s+", "")
      until rest == before
      return rest:match("^(%S+)")
    end

    it("runs as written: doctor finds what is missing, cf grants it, then token, start and "
      .. "instance work", function()
        local lines = walkthrough_lines()
        local kinds = {}
        for i, line in ipairs(lines) do
          kinds[i] = kind_of(line)
        end
        assert.same({ "export", "doctor", "cf", "doctor", "token", "definitions", "start",
          "instance" }, kinds)

        local home = dir .. "/walkthrough"
        assert.is_true(shell("mkdir -p " .. quote(home)))
        write_file(home .. "/key.json", read_file(limited_key))
        local path = installed.bin:match("^(.*)/") .. ":" .. os.getenv("PATH")
        local exports, doctors, printed_command, id = {}, 0, nil, nil
        for i, line in ipairs(lines) do
          local kind = kinds[i]
          if kind == "export" then
            exports[#exports + 1] = line
          elseif kind == "cf" then
            assert.equal(printed_command, line)
            local grant = json.decode(line:match("%-c '(.*)'$"))
            emu:set_client(emu:service_key("limited").uaa.clientid,
              { authorities = grant.authorities })
          else
            if kind == "instance" then
              line = line:gsub("%x+%-%x+%-%x+%-%x+%-%x+", id)
            end
            seq = seq + 1
            local out, err = dir .. "/out." .. seq, dir .. "/err." .. seq
            local script = table.concat(exports, "\n") .. "\n" .. line
            local ok, how, code = helpers.execute("cd " .. quote(home)
              .. " && " .. child_env() .. " PATH=" .. quote(path) .. " sh -c " .. quote(script) .. " </dev/null >" .. quote(out) .. " 2>"
              .. quote(err))
            assert.equal("exit", how)
            local stdout, stderr = read_file(out), read_file(err)
            assert_no_secret(stdout)
            assert_no_secret(stderr)
            local result = json.decode(stdout)
            local context = line .. "\n" .. stdout .. stderr
            if kind == "doctor" then
              doctors = doctors + 1
              if doctors == 1 then
                assert.equal(5, code, context)
                assert.same({ "WORKFLOW_DEFINITION_GET", "WORKFLOW_INSTANCE_GET",
                  "WORKFLOW_INSTANCE_START" }, result.missing)
                printed_command = result.command
              else
                assert.equal(0, code, context)
                assert.is_true(result.ok)
                assert.same({}, result.missing)
              end
            else
              assert.is_true(ok, context)
              if kind == "token" then
                assert.is_true(contains(result.authorities, "WORKFLOW_INSTANCE_START"))
              elseif kind == "definitions" then
                assert.is_true(contains(helpers.ids(result), "orderapproval"))
              elseif kind == "start" then
                assert.equal("RUNNING", result.status)
                assert.equal("orderapproval", result.definitionId)
                id = result.id
              elseif kind == "instance" then
                assert.equal(id, result.id)
                assert.equal("RUNNING", result.status)
              end
            end
          end
        end
        assert.equal(1, instances_started())
      end)
  end)

  -- README.md's section "SAP Build Process Automation": its sh lines, as a newcomer runs
  -- them, against the emulator in its SPA mode with its full key. The definition id's
  -- subdomain and the instance and task ids in the README are examples: the test puts in
  -- the emulator's subdomain and the ids the commands before printed.
  describe("the README's SAP Build Process Automation walkthrough", function()
    it("runs as written: doctor, definitions, start, tasks, complete with a decision, "
      .. "instance", function()
        local readme = assert(read_file("README.md"))
        local section = assert(readme:match("\n## SAP Build Process Automation\n(.-)\n## "),
          "README.md has no section 'SAP Build Process Automation'")
        local lines = {}
        for block in section:gmatch("\n```sh\n(.-)\n```") do
          for line in block:gmatch("[^\n]+") do lines[#lines + 1] = line end
        end
        local kinds = {}
        for i, line in ipairs(lines) do
          kinds[i] = line:match("^export ") and "export" or line:match("^sapwf%s+(%S+)")
        end
        assert.same({ "export", "doctor", "definitions", "start", "tasks", "complete",
          "instance" }, kinds)

        local spa = helpers.start_emulator{ spa = true }
        local ok, problem = pcall(function()
          local key = spa:service_key("full")
          secrets[#secrets + 1] = key.uaa.clientsecret
          local home = dir .. "/spa-walkthrough"
          assert.is_true(shell("mkdir -p " .. quote(home)))
          write_file(home .. "/spa-key.json", json.encode(key))
          local path = installed.bin:match("^(.*)/") .. ":" .. os.getenv("PATH")
          local exports, instance_id, task_id = {}, nil, nil
          for i, line in ipairs(lines) do
            local kind = kinds[i]
            if kind == "export" then
              exports[#exports + 1] = line
            else
              line = line:gsub("eu10%.mysubaccount%.", "eu10.emulator.")
              if kind == "tasks" or kind == "instance" then
                line = line:gsub("%x+%-%x+%-%x+%-%x+%-%x+", instance_id)
              elseif kind == "complete" then
                line = line:gsub("%x+%-%x+%-%x+%-%x+%-%x+", task_id)
              end
              seq = seq + 1
              local out, err = dir .. "/out." .. seq, dir .. "/err." .. seq
              local script = table.concat(exports, "\n") .. "\n" .. line
              local _, how, code = helpers.execute("cd " .. quote(home) .. " && "
                .. child_env() .. " PATH=" .. quote(path) .. " sh -c " .. quote(script)
                .. " </dev/null >" .. quote(out) .. " 2>" .. quote(err))
              assert.equal("exit", how)
              local stdout, stderr = read_file(out), read_file(err)
              assert_no_secret(stdout)
              assert_no_secret(stderr)
              local context = line .. "\n" .. stdout .. stderr
              assert.equal(0, code, context)
              local result = json.decode(stdout)
              if kind == "doctor" then
                assert.equal("process-automation", result.key.service)
                assert.same({}, result.forbiddenCalls)
                assert.is_nil(result.command)
              elseif kind == "definitions" then
                assert.is_true(contains(helpers.ids(result),
                  "eu10.emulator.orderproject.orderapproval"), context)
              elseif kind == "start" then
                assert.equal("RUNNING", result.status)
                assert.is_nil(type(result.subject) == "string" and result.subject or nil)
                instance_id = result.id
              elseif kind == "tasks" then
                assert.equal(1, #result, context)
                assert.equal("READY", result[1].status)
                task_id = result[1].id
              elseif kind == "complete" then
                assert.equal("approve", result.decision)
              elseif kind == "instance" then
                assert.equal(instance_id, result.id)
                assert.equal("Order Camera", result.subject)
              end
            end
          end
          assert.equal(1, spa:stats().tasks_completed)
        end)
        spa:stop()
        assert(ok, problem)
      end)
  end)

  describe("emulator command", function()
    local function launch(key_file, name, extra)
      local pid_file, rc_file = dir .. "/" .. name .. ".pid", dir .. "/" .. name .. ".rc"
      local err = dir .. "/" .. name .. ".err"
      local args = { "emulator", "--key-file", key_file }
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      local inner = "umask 000; " .. command_line(args)
        .. " </dev/null"
        .. " >/dev/null 2>" .. quote(err) .. " & echo $! > " .. quote(pid_file)
        .. "; wait $!; echo $? > " .. quote(rc_file)
      assert.is_true(shell("sh -c " .. quote(inner) .. " >/dev/null 2>&1 &"))
      assert.is_true(wait_for(function() return exists(key_file) and
        (read_file(err) or ""):find("Ctrl%-C") end, 20), read_file(err))
      return pid_from(pid_file), rc_file, err
    end

    local function answers(url)
      return shell("curl -s -o /dev/null --max-time 2 " .. quote(url .. "/_emulator/stats"))
    end

    -- Ctrl-C for a command launch() started: it stops and exits 0.
    local function interrupt(pid, rc_file)
      assert.is_true(shell("kill -INT " .. pid))
      assert.is_true(wait_for(function() return (read_file(rc_file) or "") ~= "" end, 10))
      assert.equal("0", read_file(rc_file):match("%d+"))
    end

    -- The key launch() wrote (its secret joins those no output may hold), and the --cafile
    -- the command printed for it (nil without one).
    local function key_of(key_file, err)
      local key = json.decode(read_file(key_file))
      secrets[#secrets + 1] = key.uaa.clientsecret
      return key, read_file(err):match("sapwf %-%-cafile (%S+) doctor")
    end

    it("serves the key it prints until Ctrl-C, then stops", function()
      local key_file = dir .. "/emu-int.json"
      local pid, rc_file, err = launch(key_file, "emu-int")
      -- the key file is private (made so, not narrowed after), whatever the umask (000 here)
      local mode = io.popen("stat -c %a " .. quote(key_file)):read("*l")
      assert.equal("600", mode)
      local key = key_of(key_file, err)
      local r = sapwf({ "--service-key", key_file, "definitions" })
      assert.equal(0, r.code, r.stderr)
      assert.equal(3, #r.json)
      local base = key.uaa.url
      assert.is_true(answers(base))
      interrupt(pid, rc_file)
      assert.matches("emulator stopped", read_file(err))
      assert_no_secret(read_file(err))
      assert.is_false(answers(base))
      -- its key names an emulator that is gone: removed, so the same command runs again
      assert.is_false(exists(key_file))
    end)

    it("stops the same way on SIGTERM, and on Ctrl-C delivered twice at once (timeout)",
       function()
      for _, how in ipairs({ { "TERM", "term" }, { "INT", "twice" } }) do
        local key_file = dir .. "/emu-signal-" .. how[2] .. ".json"
        local pid, rc_file, err = launch(key_file, "emu-signal-" .. how[2])
        local base = key_of(key_file, err).uaa.url
        assert.is_true(answers(base))
        if how[2] == "twice" then
          write_file(key_file, "changed meanwhile\n")     -- not its file now: it stays
        end
        local kill = "kill -" .. how[1] .. " " .. pid
        assert.is_true(shell(how[2] == "twice" and kill .. "; " .. kill or kill))
        assert.is_true(wait_for(function() return (read_file(rc_file) or "") ~= "" end, 10))
        assert.equal("0", read_file(rc_file):match("%d+"), read_file(err))
        assert.matches("emulator stopped", read_file(err))
        assert.is_false(answers(base))            -- nginx stopped by us, not by the watchdog
        assert.equal(how[2] == "twice" and "changed meanwhile\n" or nil, read_file(key_file))
      end
    end)

    it("says why it cannot write the key file, exits 2 and leaves nothing behind",
       function()
      local key_file = dir .. "/no/such/folder/emu.json"
      local r = sapwf({ "emulator", "--key-file", key_file })
      assert.equal(2, r.code)
      assert.matches("--key-file: cannot create a file beside " .. key_file
        .. ": No such file or directory", r.stderr, 1, true)
      assert.is_nil(r.stderr:match("nginx pid %d+"))   -- stopped before it said it runs
      assert.is_false(exists(dir .. "/no"))
    end)

    it("never replaces a file that is there: exits 2 and leaves it as it was", function()
      local sub = dir .. "/emu-taken"
      assert.is_true(shell("mkdir " .. quote(sub)))
      local key_file = sub .. "/realkey.json"
      write_file(key_file, '{"uaa":{"clientsecret":"the only copy"}}\n')
      -- under `timeout`: a command that did replace it would run until interrupted
      local err_file = dir .. "/emu-taken.err"
      local _, how, code = helpers.execute("timeout -s INT 30 " .. command_line({ "emulator",
        "--key-file", key_file }) .. " </dev/null >/dev/null 2>" .. quote(err_file))
      local r = { code = code, stderr = read_file(err_file) }
      os.remove(err_file)
      assert.equal("exit", how)
      assert.equal(2, r.code, r.stderr)
      assert.matches("--key-file: " .. key_file .. " exists: sapwf never replaces a file",
        r.stderr, 1, true)
      assert.equal('{"uaa":{"clientsecret":"the only copy"}}\n', read_file(key_file))
      local pipe = io.popen("ls -A " .. quote(sub))
      assert.equal("realkey.json\n", pipe:read("*a"))   -- no temporary file left beside it
      pipe:close()
    end)

    it("leaves no file with the secret beside the key file when Ctrl-C comes as it is " ..
       "written", function()
      local sub = dir .. "/emu-raise"
      assert.is_true(shell("mkdir " .. quote(sub)))
      local key_file = sub .. "/key.json"
      -- Ctrl-C's "interrupted!" raised while the key goes into its temporary file
      local real_open, opened = io.open, nil
      io.open = function(name, mode)
        if name:sub(1, #key_file) == key_file then
          opened = name
          error("interrupted!")
        end
        return real_open(name, mode)
      end
      local stderr = {}
      local out = { stderr = { write = function(_, ...)
        for _, text in ipairs({ ... }) do stderr[#stderr + 1] = text end
      end, flush = function() end } }
      local ok, problem = pcall(require("sapwf.cli.emulator").run, { out = out },
                                { key = "full", key_file = key_file })
      io.open = real_open
      assert.is_true(ok, tostring(problem))
      assert.matches("^" .. key_file:gsub("%p", "%%%0") .. "%.", opened)
      assert.matches("emulator stopped", table.concat(stderr), 1, true)
      local pipe = io.popen("ls -A " .. quote(sub))
      assert.equal("", pipe:read("*a"))
      pipe:close()
    end)

    it("refuses a key file that is there before it starts nginx", function()
      local key_file = dir .. "/emu-there.json"
      write_file(key_file, '{"uaa":{"clientsecret":"the only copy"}}\n')
      -- an nginx first on PATH that only says it ran
      local bin, ran = dir .. "/fake-nginx", dir .. "/fake-nginx.ran"
      assert.is_true(shell("mkdir -p " .. quote(bin)))
      write_file(bin .. "/nginx", "#!/bin/sh\ntouch " .. quote(ran) .. "\nexit 1\n")
      assert.is_true(shell("chmod +x " .. quote(bin .. "/nginx")))
      local r = sapwf({ "emulator", "--key-file", key_file },
                      { env = { PATH = bin .. ":" .. os.getenv("PATH") } })
      assert.equal(2, r.code, r.stderr)
      assert.matches("--key-file: " .. key_file .. " exists: sapwf never replaces a file",
        r.stderr, 1, true)
      assert.is_false(exists(ran))
      assert.equal('{"uaa":{"clientsecret":"the only copy"}}\n', read_file(key_file))
    end)

    it("stops its nginx when it is ended with SIGTERM", function()
      local key_file = dir .. "/emu-term.json"
      local pid, rc_file, err = launch(key_file, "emu-term")
      local key = key_of(key_file, err)
      local nginx_dir = read_file(err):match("in (/[^%)]+)%)")
      assert.is_truthy(nginx_dir)
      assert.is_true(answers(key.uaa.url))
      assert.is_true(shell("kill -TERM " .. pid))
      assert.is_true(wait_for(function() return (read_file(rc_file) or "") ~= "" end, 10))
      assert.is_true(wait_for(function() return not answers(key.uaa.url) end, 10))
      assert.is_true(wait_for(function() return not shell("test -d " .. quote(nginx_dir)) end, 10))
    end)

    it("--service-time and --rate set the tenant's limits; bad values are usage errors",
        function()
      local key_file = dir .. "/emu-limits.json"
      local pid, rc_file, err = launch(key_file, "emu-limits",
        { "--service-time", "0.25", "--rate", "40" })
      local key = key_of(key_file, err)
      assert.matches("limits: service time 0.25s, rate 40/s", read_file(err), 1, true)
      local pipe = io.popen("curl -s --max-time 5 " .. quote(key.uaa.url .. "/_emulator/limits"))
      local limits = json.decode(pipe:read("*a"))
      pipe:close()
      assert.equal(0.25, limits.service_time)
      assert.equal(40, limits.rate)
      assert.equal(40, limits.burst)
      interrupt(pid, rc_file)
      for _, case in ipairs({ { "--service-time", "-1" }, { "--service-time", "slow" },
          { "--service-time", "4000" }, { "--rate", "0" }, { "--rate", "many" } }) do
        local r = sapwf({ "emulator", case[1] .. "=" .. case[2] })   -- "-1" alone is an option
        assert.equal(2, r.code, case[1] .. " " .. case[2])
        assert.matches(case[1]:gsub("%p", "%%%0") .. " must be a number", r.stderr)
      end
    end)

    it("--spa runs it as SAP Build Process Automation, with an SPA key", function()
      local key_file = dir .. "/emu-spa.json"
      local pid, rc_file, err = launch(key_file, "emu-spa", { "--spa" })
      local key = key_of(key_file, err)
      assert.is_nil(key.endpoints.workflow_rest_url)
      assert.equal(key.uaa.url, key.endpoints.api)
      assert.matches("SAP Build Process Automation emulator running", read_file(err))
      local r = sapwf({ "--service-key", key_file, "definitions" })
      assert.equal(0, r.code, r.stderr)
      assert.equal(3, #r.json)
      for _, definition in ipairs(r.json) do
        assert.matches("^eu10%.emulator%.%w+%.%w+$", definition.id)
      end
      interrupt(pid, rc_file)
      assert.is_false(answers(key.uaa.url))
    end)

    it("--key limited: a client with only the default authorities, for doctor", function()
      local key_file = dir .. "/emu-limited.json"
      local pid, rc_file, err = launch(key_file, "emu-limited", { "--key", "limited" })
      key_of(key_file, err)
      assert.matches("the limited client's service key: " .. key_file, read_file(err), 1, true)
      local r = sapwf({ "--service-key", key_file, "doctor" })
      assert.equal(5, r.code, r.stderr)
      assert.is_true(contains(r.json.missing, "WORKFLOW_INSTANCE_START"))
      assert.is_true(contains(r.json.granted, "TASK_GET"))
      interrupt(pid, rc_file)
    end)

    it("--tls: https URLs in the key, and the --cafile to pass, which verifies them", function()
      local key_file = dir .. "/emu-tls.json"
      local pid, rc_file, err = launch(key_file, "emu-tls", { "--tls" })
      local key, cafile = key_of(key_file, err)
      assert.matches("^https://127%.0%.0%.1:%d+$", key.uaa.url)
      assert.matches("^https://", key.endpoints.workflow_rest_url)
      assert.is_string(cafile, read_file(err))
      local r = sapwf({ "--service-key", key_file, "--cafile", cafile, "definitions" })
      assert.equal(0, r.code, r.stderr)
      assert.equal(3, #r.json)
      assert.equal(7, sapwf({ "--service-key", key_file, "definitions" }).code)  -- no CA: TLS
      interrupt(pid, rc_file)
    end)

    it("--key x509: a certificate key, with https (--tls implied), that works", function()
      local key_file = dir .. "/emu-x509.json"
      local pid, rc_file, err = launch(key_file, "emu-x509", { "--key", "x509" })
      local key, cafile = key_of(key_file, err)
      assert.equal("x509", key.uaa["credential-type"])
      assert.is_nil(key.uaa.clientsecret)
      assert.matches("BEGIN CERTIFICATE", key.uaa.certificate, 1, true)
      secrets[#secrets + 1] = key.uaa.key:match("\n([^\n]+)\n")   -- a line of the private key
      assert.matches("^https://", key.uaa.certurl)
      assert.matches("^https://", key.endpoints.workflow_rest_url)
      assert.is_string(cafile, read_file(err))
      local r = sapwf({ "--service-key", key_file, "--cafile", cafile, "doctor" })
      assert.equal(0, r.code, r.stderr)
      assert.equal("x509", r.json.key.credential)
      interrupt(pid, rc_file)
    end)
  end)

  describe("Ctrl-C in the other commands", function()
    -- They caught no signal: the interpreter's Ctrl-C raised only once the wait to ask again
    -- was over, and SIGTERM ended the process without a word.
    it("while a list waits to be asked again (429, Retry-After 5): the wait ends, exit 130",
      function()
        local function lists()
          return emu:stats().api_requests_by_operation["GET /v1/workflow-instances"] or 0
        end
        local before = lists()
        emu:fault({ fault = "status", status = 429, retry_after = 5, times = 1,
          method = "GET", path = "/v1/workflow-instances" })
        local code, shown, stderr, took = run_signalled({ "--service-key", full_key,
          "instances" }, "INT", function() return lists() > before end)
        emu:clear_faults()
        assert.equal(130, code, stderr)
        assert.is_nil(shown)
        assert.is_true(took < 2, "took " .. took .. " s after the signal")
        assert.matches("interrupted (SIGINT) before the request was sent again (the last "
          .. "attempt: rate_limited (429)", stderr, 1, true)
        assert.equal(before + 1, lists())
      end)

    it("while a read's answer is on its way (a 5 s service time): the GET ends at once, " ..
      "exit 130; doctor prints no report of what it did not try", function()
        emu:set_limits({ service_time = 5 })
        finally(function() emu:set_limits({}) end)
        local function reads()
          return emu:stats().api_requests_by_operation["GET /v1/workflow-definitions"] or 0
        end
        for _, case in ipairs({ { "definitions" }, { "doctor" } }) do
          local before = reads()
          local args = { "--service-key", full_key, "-o", "json" }
          for _, a in ipairs(case) do args[#args + 1] = a end
          local code, shown, stderr, took = run_signalled(args, "INT",
            function() return reads() > before end)
          assert.equal(130, code, case[1] .. ": " .. stderr)
          assert.is_nil(shown, case[1])
          assert.is_true(took < 2, case[1] .. " took " .. took .. " s after the signal")
          assert.matches("^sapwf: interrupted %(SIGINT%)\n", stderr)
          assert.equal(before + 1, reads(), case[1])
        end
      end)

    it("while the token is fetched (a 5 s delay): the fetch ends at once, no token is shown, " ..
      "exit 130", function()
        local before = emu:stats().token_requests
        emu:fault({ fault = "delay", delay = 5, times = 1, path = "/oauth/token" })
        local code, shown, stderr, took = run_signalled({ "--service-key", full_key, "-o",
          "json", "token" }, "INT", function() return emu:stats().token_requests > before end)
        emu:clear_faults()
        assert.equal(130, code, stderr)
        assert.is_nil(shown)
        assert.is_true(took < 2, "took " .. took .. " s after the signal")
        assert.matches("^sapwf: interrupted %(SIGINT%)\n", stderr)
      end)

    it("SIGTERM while a cancel waits to be sent again (503, Retry-After 5): not sent again, " ..
      "exit 130", function()
        local inst = start("simple")
        local path = "/v1/workflow-instances/" .. inst.id
        local function patches()
          return emu:stats().api_requests_by_operation["PATCH /v1/workflow-instances/{workflowInstanceId}"]
            or 0
        end
        local before = patches()
        emu:fault({ fault = "status", status = 503, retry_after = 5, times = 1,
          method = "PATCH", path = path })
        local code, shown, stderr, took = run_signalled({ "--service-key", full_key,
          "cancel", inst.id }, "TERM", function() return patches() > before end)
        emu:clear_faults()
        assert.equal(130, code, stderr)
        assert.is_nil(shown)
        assert.is_true(took < 2, "took " .. took .. " s after the signal")
        assert.matches("interrupted (SIGTERM) before the request was sent again: nothing "
          .. "done (the last attempt: server (503)", stderr, 1, true)
        assert.equal(before + 1, patches())
        for _, i in ipairs(emu:instances()) do
          if i.id == inst.id then assert.equal("RUNNING", i.status) end
        end
      end)
  end)

  describe("a single start", function()
    it("answered 201 with what is not the new instance: exit 9, nothing on stdout, the " ..
      "workflow may have started", function()
        emu:fault({ fault = "body", status = 201, body = "null", times = 1, method = "POST",
          path = "/v1/workflow-instances" })
        local r = run({ "start", "simple" })
        assert.equal(9, r.code, r.stderr)
        assert.equal("", r.stdout)
        assert.matches("the 201 answer is JSON null where an object was expected; the "
          .. "workflow may have started; look it up before retrying", r.stderr, 1, true)
      end)

    -- `sapwf start simple` with the POST to `path` held up 1.5 s, sent `signal` after 0.8 s:
    -- its exit code, what it printed and its stderr.
    local function signalled_while(path, signal)
      emu:fault({ fault = "delay", delay = 1.5, times = 1, method = "POST", path = path })
      local code, shown, stderr = run_signalled({ "--service-key", full_key, "start",
        "simple", "--context", '{"n":1}' }, signal, 0.8)
      emu:clear_faults()
      return code, shown, stderr
    end

    it("Ctrl-C while it is on its way: the start ends, its result is shown, exit 130",
      function()
        local code, shown, stderr = signalled_while("/v1/workflow-instances", "INT")
        assert.equal(130, code, stderr)
        local started = emu:instances()
        assert.equal(1, #started)
        assert.equal(started[1].id, shown.id)
        assert.matches("interrupted (SIGINT) after the request was sent: the instance was "
          .. "started: " .. started[1].id, stderr, 1, true)
      end)

    it("SIGTERM before it is sent (the token on its way): nothing starts, exit 130",
      function()
        local code, shown, stderr = signalled_while("/oauth/token", "TERM")
        assert.equal(130, code, stderr)
        assert.is_nil(shown)
        assert.matches("interrupted (SIGTERM) before the request was sent: nothing done",
                       stderr, 1, true)
        assert.equal(0, #emu:instances())
      end)

    it("Ctrl-C while it waits to be sent again (429, Retry-After 5): the wait ends, it is " ..
      "not sent again, nothing starts, exit 130", function()
        local function starts()
          return emu:stats().api_requests_by_operation["POST /v1/workflow-instances"] or 0
        end
        emu:fault({ fault = "status", status = 429, retry_after = 5, times = 1,
          method = "POST", path = "/v1/workflow-instances" })
        local code, shown, stderr, took = run_signalled({ "--service-key", full_key, "start",
          "simple" }, "INT", function() return starts() > 0 end)
        emu:clear_faults()
        assert.equal(130, code, stderr)
        assert.is_nil(shown)
        assert.is_true(took < 2, "took " .. took .. " s after the signal")
        assert.matches("interrupted (SIGINT) before the request was sent again: nothing done "
          .. "(the last attempt: rate_limited (429)", stderr, 1, true)
        assert.equal(1, starts())
        assert.equal(0, #emu:instances())
      end)

    it("SIGTERM while its token is asked for again (503, Retry-After 5): the wait ends, the " ..
      "start is never sent, exit 130", function()
        emu:fault({ fault = "status", status = 503, retry_after = 5, times = 1,
          method = "POST", path = "/oauth/token" })
        local code, shown, stderr, took = run_signalled({ "--service-key", full_key, "start",
          "simple" }, "TERM", function() return emu:stats().token_requests > 0 end)
        emu:clear_faults()
        assert.equal(130, code, stderr)
        assert.is_nil(shown)
        assert.is_true(took < 2, "took " .. took .. " s after the signal")
        assert.matches("interrupted (SIGTERM) before the request was sent: nothing done (the "
          .. "last attempt: server (503): getting a token", stderr, 1, true)
        assert.equal(1, emu:stats().token_requests)
        assert.equal(0, emu:stats().api_requests)
      end)
  end)

  describe("standard output", function()
    it("that cannot take a completion or a message: stderr says it was done", function()
      local inst = start("orderapproval", { product = "Cam", orderId = "full-1" })
      local task = run({ "tasks", "--instance-id", inst.id }).json[1]
      local err_file = dir .. "/done-full.err"
      for _, case in ipairs({
        { { "complete", task.id }, "the task was completed: " .. task.id },
        { { "message", "--name", "orderShipped", "--instance-id", inst.id },
          "the message was sent, consumed by instance " .. inst.id },
      }) do
        local command = { "--service-key", full_key }
        for _, a in ipairs(case[1]) do command[#command + 1] = a end
        local _, how, code = helpers.execute(command_line(command) .. " </dev/null >/dev/full 2>"
          .. quote(err_file))
        assert.same({ "exit", 1 }, { how, code }, read_file(err_file))
        assert.matches("cannot write to standard output", read_file(err_file))
        assert.matches(case[2], read_file(err_file), 1, true)
      end
      assert.equal("COMPLETED", run({ "instance", inst.id }).json.status)
    end)

    it("that cannot take a message whose consumers are not all objects: stderr still says " ..
      "it was sent", function()
        local inst = start("orderapproval", { product = "Cam", orderId = "full-2" })
        emu:fault({ fault = "body", status = 200, times = 1, method = "POST",
          path = "/v1/messages", body = '[{"id":"' .. inst.id .. '"},5]' })
        local err_file = dir .. "/message-items.err"
        local _, how, code = helpers.execute(command_line({ "--service-key", full_key,
          "message", "--name", "orderShipped", "--instance-id", inst.id })
          .. " </dev/null >/dev/full 2>" .. quote(err_file))
        local stderr = read_file(err_file)
        assert_no_secret(stderr)
        assert.same({ "exit", 1 }, { how, code }, stderr)
        assert.matches("the message was sent, consumed by instance " .. inst.id .. ", 5",
          stderr, 1, true)
      end)

    it("that cannot take the help, the version or a completion script: exit 1", function()
      local err_file = dir .. "/help-full.err"
      for _, args in ipairs({ {}, { "--help" }, { "--version" }, { "help" }, { "help", "start" },
                              { "start", "--help" }, { "completion", "bash" } }) do
        local _, how, code = helpers.execute(command_line(args) .. " </dev/null >/dev/full 2>"
          .. quote(err_file))
        local shown = table.concat(args, " ")
        assert.same({ "exit", 1 }, { how, code }, shown .. ": " .. read_file(err_file))
        assert.matches("cannot write to standard output", read_file(err_file), 1, true)
      end
    end)

    it("that cannot be written is an error (exit 1), never a silent success", function()
      local err_file = dir .. "/stdout-full.err"
      for _, args in ipairs({ { "definitions" }, { "start", "simple" },
                              { "token", "--raw" } }) do
        local command = { "--service-key", full_key }
        for _, a in ipairs(args) do command[#command + 1] = a end
        local ok, how, code = helpers.execute(command_line(command) .. " </dev/null >/dev/full 2>"
          .. quote(err_file))
        assert.equal("exit", how)
        assert.equal(1, code, read_file(err_file))
        assert.matches("cannot write to standard output", read_file(err_file))
        assert_no_secret(read_file(err_file))
        assert.is_not_true(ok)
        if args[1] == "start" then
          -- the instance exists: its id is on stderr, or the user would start it again
          local started = emu:instances()
          assert.equal(1, #started)
          assert.matches("the instance was started: " .. started[1].id, read_file(err_file),
                         1, true)
        end
      end
    end)
  end)

  describe("service key text", function()
    -- What `cf service-key` prints: its first line, an empty line, then the key.
    local function cf_output(key_file)
      return "Getting key my-key for service instance my-workflow as me@example.com...\n\n"
        .. read_file(key_file)
    end

    it("takes cf service-key's output as printed, in SAPWF_SERVICE_KEY and --service-key", function()
      local text = cf_output(full_key)
      local r = sapwf({ "definitions" }, { env = { SAPWF_SERVICE_KEY = text } })
      assert.equal(0, r.code, r.stderr)
      assert.equal(3, #r.json)
      r = sapwf({ "--service-key", text, "definitions" })
      assert.equal(0, r.code, r.stderr)
    end)

    it("never quotes key text that is neither a path nor valid JSON", function()
      local key = read_file(full_key)
      local broken = {
        cf_output(full_key):sub(1, -3),                 -- cut short: not JSON
        "Getting key k...\n" .. key:sub(2),             -- lost its first brace
        (key:gsub("\n", "")):sub(2),                    -- one line, no brace: taken as a path
        "x" .. key,
      }
      for _, text in ipairs(broken) do
        for _, args in ipairs({ { { "definitions" }, { env = { SAPWF_SERVICE_KEY = text } } },
                                { { "--service-key", text, "definitions" }, {} } }) do
          local r = sapwf(args[1], args[2])             -- sapwf() asserts no secret came out
          assert.equal(3, r.code, r.stderr)
          assert.matches("service key", r.stderr)
        end
      end
    end)

    it("says of a bad key file what the library says, and never reads its text as a path",
      function()
        local servicekey = require "sapwf.servicekey"
        local keys = dir .. "/bad-keys"
        assert.is_true(helpers.execute("mkdir -p " .. quote(keys)))
        -- Each run costs a process: the library's spec (spec/02) has the other cases.
        local files = {
          { "array", "[1,2]" },
          { "cf_failed", "Getting key k for service instance i as me...\n\n"
            .. "No service key k found for service instance i\n" },
          { "pointer", full_key },                       -- a path in a file: not a key
        }
        local cases = { keys .. "/" }                    -- a directory
        for _, file in ipairs(files) do
          cases[#cases + 1] = keys .. "/" .. file[1] .. ".json"
          write_file(cases[#cases], file[2])
        end
        for i, path in ipairs(cases) do
          local _, err = servicekey.resolve(path)
          assert.equal("config", err.kind)
          -- SAPWF_SERVICE_KEY takes the same road: once is enough
          local r = i == #cases and sapwf({ "token" }, { env = { SAPWF_SERVICE_KEY = path } })
            or sapwf({ "--service-key", path, "token" })
          assert.equal(3, r.code, r.stderr)
          assert.equal("sapwf: config: " .. err.message .. "\n", r.stderr)
        end
        assert.equal("service key file '" .. keys .. "/' is a directory",
                     select(2, servicekey.resolve(keys .. "/")).message)
        assert.equal(0, emu:stats().token_requests)
      end)

    it("reads the key once: doctor takes it from a pipe", function()
      local r = sapwf({ "--service-key", "/dev/stdin", "-o", "json", "doctor" },
                      { pipe = "cat " .. quote(full_key) })
      assert.equal(0, r.code, r.stderr)
      assert.is_true(r.json.key.ok)
      assert.equal("/dev/stdin", r.json.key.source)
    end)

    it("refuses http:// URLs beyond this machine unless --allow-http is given", function()
      local key = json.decode(read_file(full_key))
      key.endpoints.workflow_rest_url = "http://sapwf-test.invalid/workflow-service/rest"
      local file = dir .. "/cleartext.json"
      write_file(file, json.encode(key))
      local r = sapwf({ "--service-key", file, "definitions" })
      assert.equal(3, r.code)
      assert.matches("api_url is http:// to sapwf%-test%.invalid", r.stderr)
      assert.matches("%-%-allow%-http", r.stderr)
      assert.equal(0, emu:stats().token_requests)
      -- opted in, the call goes ahead (and fails on the name, which does not resolve)
      r = sapwf({ "--allow-http", "--service-key", file, "definitions" })
      assert.equal(7, r.code, r.stderr)
      assert.is_nil(r.stderr:find("clear text", 1, true))
    end)
  end)
end)
