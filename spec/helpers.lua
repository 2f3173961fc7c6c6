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

--- The contents of a file, or nil when it cannot be read (the emulator's shell helper).
helpers.read_file = require("sapwf.emulator.shell").read_file

--- A new empty directory (mktemp -d); the caller removes it.
function helpers.temp_dir()
  local ok, out = helpers.run("mktemp -d")
  assert(ok, out)
  return (out:gsub("%s+$", ""))
end

return helpers
