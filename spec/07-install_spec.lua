-- Installing: the rockspec lists every module, `luarocks make` installs offline into a
-- local tree, and `make install` into a prefix; in both cases a separate Lua process that
-- sees only the installed copy (not ./lua or ./build) talks to the emulator.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local run, make_temp_dir = helpers.run, helpers.temp_dir

local function read_file(path)
  return assert(helpers.read_file(path))
end

describe("installing", function()
  local emu, tmp, key_file

  setup(function()
    emu = helpers.start_emulator()
    tmp = make_temp_dir()
    key_file = tmp .. "/key.json"
    local f = assert(io.open(key_file, "wb"))
    f:write(cjson.encode(emu:service_key("full")))
    f:close()
  end)
  teardown(function()
    if emu then emu:stop() end
    if tmp then run("rm -rf '" .. tmp .. "'") end
  end)

  describe("the rockspec", function()
    local rockspec
    setup(function() rockspec = read_file("sapwf-scm-1.rockspec") end)

    it("passes luarocks lint", function()
      local ok, out = run("luarocks lint sapwf-scm-1.rockspec")
      assert.is_true(ok, out)
    end)

    it("lists every Lua file under lua/ and every C source", function()
      local ok, out = run("find lua -name '*.lua' | sort; ls src/*.c")
      assert.is_true(ok, out)
      local missing = {}
      for file in out:gmatch("[^\n]+") do
        if not rockspec:find('"' .. file .. '"', 1, true) then missing[#missing + 1] = file end
      end
      assert.are.same({}, missing)
    end)
  end)

  -- Runs a Lua program in a fresh lua5.4 whose paths hold only `lpath`/`cpath` and the
  -- system directories (for Debian's lua-cjson), from a directory with no ./lua in it.
  local function run_installed(lpath, cpath, program)
    local file = tmp .. "/program.lua"
    local f = assert(io.open(file, "wb"))
    f:write(program)
    f:close()
    return run(string.format("cd '%s' && LUA_PATH='%s;;' LUA_CPATH='%s;;' lua5.4 '%s'",
                             tmp, lpath, cpath, file))
  end

  local PROGRAM = [[
    local sapwf = require "sapwf"
    local where = package.searchpath("sapwf.core", package.cpath)
    local wf = assert(sapwf.new{ service_key = %q })
    local inst = assert(wf:start("simple", { n = 1 }))
    io.write(where, " ", inst.status, "\n")
  ]]

  -- The module and the command installed under root (a luarocks tree or a PREFIX) work
  -- from there: a start through the module, and `sapwf --output json <command>`, whose
  -- output must hold one of `expected`. (A custom tree needs its paths, as `luarocks path
  -- --tree` prints them.)
  local function assert_works_from(root, command, expected)
    local lpath = root .. "/share/lua/5.4/?.lua;" .. root .. "/share/lua/5.4/?/init.lua"
    local cpath = root .. "/lib/lua/5.4/?.so"
    local ran, text = run_installed(lpath, cpath, PROGRAM:format(key_file))
    assert.is_true(ran, text)
    assert.equal(root .. "/lib/lua/5.4/sapwf/core.so RUNNING\n", text)
    local cli_ok, cli_out = run(string.format(
      "LUA_PATH='%s;;' LUA_CPATH='%s;;' '%s/bin/sapwf' --service-key '%s' --output json %s",
      lpath, cpath, root, key_file, command))
    assert.is_true(cli_ok, cli_out)
    local found = false
    for _, word in ipairs(expected) do found = found or cli_out:find(word, 1, true) ~= nil end
    assert.is_true(found, cli_out)
  end

  it("luarocks make installs offline into a local tree, and the module works from there",
     function()
    local tree = tmp .. "/rocks"
    local ok, out = run("luarocks --lua-version=5.4 --tree='" .. tree
                        .. "' make --deps-mode=none sapwf-scm-1.rockspec")
    assert.is_true(ok, out)
    assert_works_from(tree, "definitions", { "orderapproval" })
  end)

  it("make install puts the module and the command under PREFIX", function()
    local prefix = tmp .. "/prefix"
    -- LUA=lua5.4 and no inherited MAKEFLAGS: under `make test LUA=luajit` the outer make's
    -- variables would otherwise install a LuaJIT build into the 5.1 directories.
    local ok, out = run("env -u MAKEFLAGS -u MFLAGS make --no-print-directory install "
                        .. "LUA=lua5.4 PREFIX='" .. prefix .. "'")
    assert.is_true(ok, out)
    assert_works_from(prefix, "token", { "expires", "seconds" })
  end)

  -- The installed command, with no LUA_PATH or LUA_CPATH at all, under each interpreter it
  -- can be built for: it runs that interpreter and finds its own modules under PREFIX.
  for _, lua in ipairs({ "lua5.4", "luajit", "lua5.1" }) do
    it("make install LUA=" .. lua .. " installs a command that runs " .. lua
       .. " from any PREFIX", function()
      local prefix = tmp .. "/prefix-" .. lua
      local ok, out = run("env -u MAKEFLAGS -u MFLAGS make --no-print-directory install LUA="
                          .. lua .. " PREFIX='" .. prefix .. "'")
      assert.is_true(ok, out)
      local bin = prefix .. "/bin/sapwf"
      assert.equal("#!/usr/bin/env " .. lua, (read_file(bin):match("^[^\n]*")))
      local clean = "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 "
      ok, out = run(clean .. "'" .. bin .. "' --service-key '" .. key_file
                    .. "' --output json definitions")
      assert.is_true(ok, out)
      assert.matches("orderapproval", out)
    end)
  end
end)
