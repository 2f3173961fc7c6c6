-- sapwf.core's C files call only downward: scripts/check-layers.sh reads the objects'
-- symbols and names any call into a file of the same or a higher layer (docs/DESIGN.md).
local helpers = require "spec.helpers"

-- The build this run loads (make test gives busted its --cpath), and its interpreter.
local LUA = jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
local BUILD = package.cpath:match("%.?/?(build/[^;?]-)/%?%.so") or "build/" .. LUA
local OBJ_DIR = BUILD .. "/obj"
-- The objects sapwf.core is linked from: one per src/*.c (obj/ may hold stale ones).
local OBJECTS = io.popen("cd src && ls *.c"):read("*a"):gsub("%.c\n", ".o ")

describe("the layers of sapwf.core", function()
  local tmp
  setup(function() tmp = helpers.temp_dir() end)
  teardown(function() if tmp then helpers.run("rm -rf '" .. tmp .. "'") end end)

  it("has no call that goes up or sideways in this build", function()
    local ok, out = helpers.run("env -u MAKEFLAGS -u MFLAGS make --no-print-directory "
      .. "check-layers LUA=" .. LUA .. " BUILD_DIR=" .. BUILD .. " 2>&1")
    assert(ok, out)
    assert.matches("every call goes down", out)
  end)

  it("names a call that goes up, and a file in no layer", function()
    local copy = tmp .. "/obj"
    assert(helpers.run("mkdir '" .. copy .. "' && cd " .. OBJ_DIR .. " && cp " .. OBJECTS
                       .. " '" .. copy .. "'"))
    -- headers.c (the bottom) calling into client.c
    local f = assert(io.open(tmp .. "/up.c", "w"))
    f:write("int sapwf_client_new(void *L);\nint up(void) { return sapwf_client_new(0); }\n")
    f:close()
    assert(helpers.run("cc -c '" .. tmp .. "/up.c' -o '" .. copy .. "/headers.o'"))
    local ok, out = helpers.run("sh scripts/check-layers.sh '" .. copy .. "'/*.o 2>&1")
    assert.is_false(ok)
    assert.matches("headers.c calls sapwf_client_new of client.c", out, 1, true)

    assert(helpers.run("cp '" .. copy .. "/token.o' '" .. copy .. "/stray.o'"))
    ok, out = helpers.run("sh scripts/check-layers.sh '" .. copy .. "'/*.o 2>&1")
    assert.is_false(ok)
    assert.matches("stray.c is in no layer", out, 1, true)
  end)
end)
