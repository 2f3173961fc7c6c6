-- Shared by the specs (busted loads it as the helper, and specs `require "spec.helpers"`).
local helpers = {}

---------------------------------------------------------------------------------------------
-- The emulator (lua/sapwf/emulator): nginx on free 127.0.0.1 ports, its own prefix directory.
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

return helpers
