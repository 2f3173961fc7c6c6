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

-- docs/DESIGN.md is the map a newcomer reads first: it must name every C file and Lua
-- module of the library, the layers in the order the check uses, and no file that is gone.
describe("docs/DESIGN.md", function()
  local design = assert(helpers.read_file("docs/DESIGN.md"))

  it("names every C file and every Lua module of the library", function()
    local ok, out = helpers.run("cd src && ls *.c compat/*.c && cd ../lua/sapwf "
                                .. "&& ls *.lua ngx/*.lua compat/*.lua")
    assert(ok, out)
    local missing = {}
    for file in out:gmatch("[^\n]+") do
      local name = file:gsub("^compat/", ""):gsub("^ngx/", "")
      if not design:find(name, 1, true) then missing[#missing + 1] = file end
    end
    assert.are.same({}, missing)
  end)

  -- The tree names the files of these folders one by one, and every top-level folder (but
  -- the ones .gitignore lists: build output): a file or folder added without its line in
  -- DESIGN.md fails here.
  it("names every file of the folders it lists file by file, and every top-level folder",
      function()
    local ok, out = helpers.run("ls src/*.h examples/*.lua .ci/* scripts/* spec/support/* "
      .. "emulator/lua/sapwf/emulator/*.lua emulator/lua/sapwf/emulator/server/*.lua "
      .. "emulator/lua/sapwf/emulator/server/api/*.lua && ls -d */ .ci/")
    assert(ok, out)
    local ignored = {}
    for line in assert(helpers.read_file(".gitignore")):gmatch("[^\n]+") do
      local folder = line:match("^/?([^/*]+/)$")
      if folder then ignored[folder] = true end
    end
    local missing = {}
    for path in out:gmatch("[^\n]+") do
      local name = path:match("/$") and path or path:match("[^/]+$")
      if not ignored[name] and not design:find(name, 1, true) then
        missing[#missing + 1] = path
      end
    end
    assert.are.same({}, missing)
  end)

  it("draws the C layers in the order scripts/check-layers.sh checks them", function()
    local picture = design:match("\n## The layers\n(.-)\n## ")
    assert.truthy(picture, "no section \"The layers\"")
    local script = assert(helpers.read_file("scripts/check-layers.sh"))
    local layers = {}
    for line in script:match("LAYERS='\n(.-)\n'"):gmatch("[^\n]+") do
      layers[#layers + 1] = line
    end
    -- bottom first in the script, top first in the picture
    local last = math.huge
    for _, line in ipairs(layers) do
      for file in line:gmatch("%S+") do
        local at = picture:find(file .. ".c", 1, true)
        assert.truthy(at, file .. ".c is not in DESIGN.md")
        local row = select(2, picture:sub(1, at):gsub("\n", ""))
        assert.is_true(row <= last, file .. ".c is drawn above a layer that calls it")
      end
      local first_row = math.huge
      for file in line:gmatch("%S+") do
        local at = picture:find(file .. ".c", 1, true)
        local row = select(2, picture:sub(1, at):gsub("\n", ""))
        if row < first_row then first_row = row end
      end
      last = first_row
    end
  end)

  it("names no source file that does not exist", function()
    local gone = {}
    for path in design:gmatch("[%w_/%.%-]+%.[ch]%f[^%w]") do
      local file = path:match("^src/") and path or "src/" .. path
      if not path:find("/", 1, true) and not helpers.read_file(file)
          and not helpers.read_file("src/compat/" .. path)
          and not helpers.read_file(".ci/" .. path) then
        gone[#gone + 1] = path
      end
    end
    for path in design:gmatch("[%w_/%-]+%.lua") do
      local candidates = { path, "lua/sapwf/" .. path, "lua/sapwf/cli/" .. path, "lua/" .. path,
                           "examples/" .. path,
                           "emulator/lua/sapwf/emulator/" .. path,
                           "emulator/lua/sapwf/emulator/server/" .. path,
                           "emulator/lua/sapwf/emulator/server/api/" .. path,
                           "spec/support/" .. path, "scripts/" .. path, ".ci/" .. path }
      local found = false
      for _, c in ipairs(candidates) do found = found or helpers.read_file(c) ~= nil end
      if not found then gone[#gone + 1] = path end
    end
    table.sort(gone)
    assert.are.same({}, gone)
  end)
end)

-- A comment that sends the reader to a file that is not there (a name from before a file
-- was renamed) misleads as much as a wrong one.
describe("the library's comments", function()
  it("name no Lua file that does not exist", function()
    local ok, out = helpers.run("ls lua/sapwf/*.lua lua/sapwf/*/*.lua")
    assert(ok, out)
    local gone = {}
    for file in out:gmatch("[^\n]+") do
      for name in assert(helpers.read_file(file)):gmatch("[%w_/%-]+%.lua%f[^%w]") do
        local found = false
        for _, dir in ipairs({ "", "lua/sapwf/", "lua/sapwf/cli/", "lua/sapwf/ngx/", "lua/",
                               "emulator/lua/sapwf/emulator/" }) do
          found = found or helpers.read_file(dir .. name) ~= nil
        end
        if not found then gone[#gone + 1] = file .. ": " .. name end
      end
    end
    assert.are.same({}, gone)
  end)
end)
