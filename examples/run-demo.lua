-- run-demo.lua: what `make demo` runs. With SAPWF_SERVICE_KEY set, quickstart.lua runs
-- against that tenant; otherwise this starts the local emulator, hands quickstart.lua a
-- service key for it, and stops the emulator afterwards (also when the example fails).
package.path = "./lua/?.lua;./lua/?/init.lua;./emulator/lua/?.lua;./emulator/lua/?/init.lua;"
  .. package.path
local lua = arg[-1] or "lua5.4"
local build = os.getenv("SAPWF_BUILD_DIR") or "build/lua5.4"
local env = string.format("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./%s/?.so;;' ", build)

local function run(key_path)
  local ok = os.execute(env .. "SAPWF_SERVICE_KEY='" .. key_path .. "' " .. lua .. " examples/quickstart.lua")
  return ok == true or ok == 0
end

local key = os.getenv("SAPWF_SERVICE_KEY")
if key and key ~= "" then
  os.exit(run(key) and 0 or 1)
end

local emulator = require "sapwf.emulator"
local cjson = require "cjson"
local emu = assert(emulator.start{})
io.stderr:write("emulator: ", emu.url, " (nginx in ", emu.dir, ")\n")
local key_path = emu.dir .. "/service-key.json"
local f = assert(io.open(key_path, "w"))
f:write(cjson.encode(emu:service_key("full")))
f:close()
local ok = run(key_path)
emu:stop()
io.stderr:write("emulator stopped\n")
os.exit(ok and 0 or 1)
