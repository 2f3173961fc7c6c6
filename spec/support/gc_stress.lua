-- A busted helper that runs the specs with the garbage collector at its most aggressive:
--   busted --lua=lua5.4 --helper=spec/support/gc_stress.lua      (.ci/run's GC stage)
-- The collector works after every allocation and never pauses between cycles, and a full
-- collection runs every SAPWF_GC_EVERY (default 1000) VM instructions. A C function that
-- keeps a pointer into a Lua string or userdata after it lost its last reference, or a
-- finalizer (__gc, close) that runs in an order the code did not expect, fails here rather
-- than once in a while in production.
local every = tonumber(os.getenv("SAPWF_GC_EVERY") or "") or 1000

if _VERSION == "Lua 5.4" then
  collectgarbage("incremental", 0, 1000, 0)     -- pause 0, step multiplier 1000, step 1 byte
else
  collectgarbage("setpause", 0)
  collectgarbage("setstepmul", 1000)
end
collectgarbage("collect")

-- A count hook belongs to one coroutine: this one is the main thread's, where busted runs
-- the specs. (Coroutines the code under test makes run without it.)
debug.sethook(function() collectgarbage("collect") end, "", every)
