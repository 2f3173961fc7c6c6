-- Shared by the specs (busted loads it as the helper, and specs `require "spec.helpers"`).
local helpers = {}

---------------------------------------------------------------------------------------------
-- The emulator (emulator/lua/sapwf/emulator): nginx on free 127.0.0.1 ports, its own prefix
-- directory.
-- Start it in setup() and stop it in teardown():
--
--   setup(function() emu = helpers.start_emulator() end)
--   teardown(function() if emu then emu:stop() end end)
--
-- opts go to sapwf.emulator.start ({ workers =, tls =, max_instances =, ... }). A start that
-- fails raises with nginx's or openssl's message: nothing can be tested without it.

local emulator = require "sapwf.emulator"

function helpers.start_emulator(opts)
  local emu, err = emulator.start(opts)
  if not emu then error("cannot start the emulator: " .. tostring(err), 2) end
  return emu
end

-- The emulator plus two clients, for the API specs: `wf` with every authority and
-- `limited` with only those a new service instance has (for 403 paths).
--
--   setup(function() emu, wf, limited = helpers.start_api() end)
--   teardown(function() helpers.stop_api(emu, wf, limited) end)
function helpers.start_api(opts)
  local sapwf = require "sapwf"
  local emu = helpers.start_emulator(opts)
  local wf = assert(sapwf.new{ service_key = emu:service_key("full") })
  local limited = assert(sapwf.new{ service_key = emu:service_key("limited") })
  return emu, wf, limited
end

--- sapwf.core.new's options for an emulator client ("full" by default), with extra ones.
function helpers.core_options(emu, name, extra)
  local servicekey = require "sapwf.servicekey"
  local opts = assert(servicekey.resolve(emu:service_key(name or "full")))
  for k, v in pairs(extra or {}) do opts[k] = v end
  return opts
end

function helpers.stop_api(emu, wf, limited)
  if wf then wf:close() end
  if limited then limited:close() end
  if emu then emu:stop() end
end

--- Each case {fn, message} raises exactly message, reported at a line of the spec file
-- matching file_pattern (argument errors must point at the caller, not into sapwf).
function helpers.assert_raises_here(cases, file_pattern)
  local assert = require "luassert"   -- this module is required outside busted's environment
  for _, case in ipairs(cases) do
    local ok, msg = pcall(case[1])
    assert.is_false(ok, case[2])
    local where, text = tostring(msg):match("^(.-):%d+: (.*)$")
    assert.equal(case[2], text)
    assert.matches(file_pattern, where)
  end
end

--- The ids of a list of API objects, in order.
function helpers.ids(list)
  local out = {}
  for i, item in ipairs(list) do out[i] = item.id end
  return out
end

---------------------------------------------------------------------------------------------
-- os.execute with Lua 5.2+ results on every version: true|nil, "exit"|"signal", code.
-- Lua 5.1 and LuaJIT (without its 5.2 compatibility) return the raw wait status instead.

function helpers.execute(command)
  local a, b, c = os.execute(command)
  if type(a) ~= "number" then return a, b, c end
  local code, signal = math.floor(a / 256), a % 256
  if signal ~= 0 then return nil, "signal", signal end
  return code == 0 or nil, "exit", code
end

--- Runs a shell command (a list or pipeline too). Returns true|false, its stdout and stderr
-- together, and its exit code.
function helpers.run(command)
  local out = os.tmpname()
  local ok, _, code = helpers.execute("{ " .. command .. "\n} >" .. out .. " 2>&1")
  local text = helpers.read_file(out)
  os.remove(out)
  return ok == true, text, code
end

--- f() with core.catch_sigint(true) on, for a spec that sends itself a signal meanwhile:
-- whether the signal came, then pcall(f)'s results. The signal is waited for up to 3 s
-- more, so that a failure before it came does not leave it to end the run later.
-- Catching is off again after.
function helpers.caught_while(f)
  local core = require "sapwf.core"
  core.catch_sigint(true)
  local results = (function(...) return { n = select("#", ...), ... } end)(pcall(f))
  local caught = core.sigint_caught()
  for _ = 1, 60 do
    if caught then break end
    core.sleep(0.05)
    caught = core.sigint_caught()
  end
  core.catch_sigint(false)
  return caught, (table.unpack or unpack)(results, 1, results.n)
end

--- This process's id (the busted process: a spec's signals go to it).
function helpers.our_pid()
  local stat = assert(io.open("/proc/self/stat", "rb"))
  local pid = stat:read("*a"):match("^(%d+)")
  stat:close()
  return pid
end

--- A file's permission bits in octal, as stat(1) writes them ("644").
function helpers.file_mode(path)
  local ok, out = helpers.run("stat -c %a " .. path)
  assert(ok, out)
  return (out:gsub("%s+$", ""))
end

--- The contents of a file, or nil when it cannot be read (the emulator's shell helper).
helpers.read_file = require("sapwf.emulator.shell").read_file

--- A new empty directory (mktemp -d); the caller removes it.
function helpers.temp_dir()
  local ok, out = helpers.run("mktemp -d")
  assert(ok, out)
  return (out:gsub("%s+$", ""))
end

--- Writes text to the file at path (created or emptied); raises when it cannot.
function helpers.write_file(path, text)
  local file = assert(io.open(path, "wb"))
  assert(file:write(text))
  assert(file:close())
end

--- The names in a directory, dot files included, sorted.
function helpers.listing(dir)
  local ok, out = helpers.run("ls -A " .. dir)
  assert(ok, out)
  local names = {}
  for name in out:gmatch("[^\n]+") do names[#names + 1] = name end
  table.sort(names)
  return names
end

---------------------------------------------------------------------------------------------
-- curl

-- A value in curl's config file syntax (so nothing goes through the shell).
local function q(s)
  s = s:gsub('[\\"]', "\\%0"):gsub("\n", "\\n"):gsub("\r", "\\r"):gsub("\t", "\\t")
  return '"' .. s .. '"'
end

local call_seq = 0
local cjson_safe = require "cjson.safe"

--- One request with the curl command line (spec/90, spec/91 drive the emulator with it).
-- opts: headers (list), user ("id:secret"), json (a table, sent as the JSON body), body
-- (text; untyped = true sends it with no Content-Type unless a header gives one, where
-- curl would send a form's), form (list of "name=value", sent url-encoded), get (form
-- goes into the query), cacert, cert, key, timeout.
-- Returns { status, exit (curl's exit code), body, headers (lower-case names), json, time }.
function helpers.curl(dir, method, url, opts)
  opts = opts or {}
  call_seq = call_seq + 1
  local base = string.format("%s/tmp/spec-%d", dir, call_seq)
  local lines = { "silent", "request = " .. q(method), "url = " .. q(url),
    "output = " .. q(base .. ".body"), "dump-header = " .. q(base .. ".headers"),
    'write-out = "%{http_code} %{time_total}"', "max-time = " .. (opts.timeout or 20) }
  for _, header in ipairs(opts.headers or {}) do lines[#lines + 1] = "header = " .. q(header) end
  if opts.user then lines[#lines + 1] = "user = " .. q(opts.user) end
  local body = opts.body
  if opts.json ~= nil then
    body = assert(cjson_safe.encode(opts.json))
    lines[#lines + 1] = 'header = "Content-Type: application/json"'
  elseif body and opts.untyped then
    local typed = false
    for _, header in ipairs(opts.headers or {}) do
      typed = typed or header:lower():find("^content%-type:") ~= nil
    end
    if not typed then lines[#lines + 1] = 'header = "Content-Type:"' end
  end
  if body then
    helpers.write_file(base .. ".request", body)
    lines[#lines + 1] = "data-binary = " .. q("@" .. base .. ".request")
  end
  for _, field in ipairs(opts.form or {}) do lines[#lines + 1] = "data-urlencode = " .. q(field) end
  if opts.get then lines[#lines + 1] = "get" end
  if opts.cacert then lines[#lines + 1] = "cacert = " .. q(opts.cacert) end
  if opts.cert then lines[#lines + 1] = "cert = " .. q(opts.cert) end
  if opts.key then lines[#lines + 1] = "key = " .. q(opts.key) end
  helpers.write_file(base .. ".config", table.concat(lines, "\n") .. "\n")

  local pipe = assert(io.popen("curl -K '" .. base .. ".config' 2>/dev/null; echo \" $?\""))
  local out = pipe:read("*a")
  pipe:close()
  local status, seconds, exit = out:match("^(%d+) ([%d%.]+)%s+(%d+)%s*$")
  local result = { status = tonumber(status), exit = tonumber(exit), time = tonumber(seconds),
    body = helpers.read_file(base .. ".body") or "", headers = {} }
  -- the last header block is the final answer (after any 100 Continue)
  local header_text = helpers.read_file(base .. ".headers") or ""
  for block in header_text:gmatch("HTTP/[^\r\n]*\r?\n(.-)\r?\n\r?\n") do
    result.headers = {}
    for name, value in block:gmatch("([^:\r\n]+):%s*([^\r\n]*)") do
      result.headers[name:lower()] = value
    end
  end
  result.json = cjson_safe.decode(result.body)
  for _, suffix in ipairs({ ".config", ".body", ".headers", ".request" }) do
    os.remove(base .. suffix)
  end
  return result
end

return helpers
