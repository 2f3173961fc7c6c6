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

  -- Each rock's rockspec passes luarocks lint and lists every file of its tree: `files`
  -- (a shell command run in `dir`) prints the paths, relative to the rockspec's folder.
  local ROCKS = {
    { name = "the rockspec", dir = ".", spec = "sapwf-scm-1.rockspec",
      files = "find lua -name '*.lua' | sort; ls src/*.c src/compat/*.c",
      what = "every Lua file under lua/ and every C source" },
    { name = "the emulator's rockspec", dir = "emulator", spec = "sapwf-emulator-scm-1.rockspec",
      files = "find lua -name '*.lua' | sort",
      what = "every Lua file under emulator/lua/, relative to emulator/" },
  }
  for _, rock in ipairs(ROCKS) do
    describe(rock.name, function()
      local rockspec
      setup(function() rockspec = read_file(rock.dir .. "/" .. rock.spec) end)

      it("passes luarocks lint", function()
        local ok, out = run("cd '" .. rock.dir .. "' && luarocks lint " .. rock.spec)
        assert.is_true(ok, out)
      end)

      it("lists " .. rock.what, function()
        local ok, out = run("cd '" .. rock.dir .. "' && { " .. rock.files .. "; }")
        assert.is_true(ok, out)
        assert.truthy(out:find("%.lua\n"), out)
        local missing = {}
        for file in out:gmatch("[^\n]+") do
          if not rockspec:find('"' .. file .. '"', 1, true) then missing[#missing + 1] = file end
        end
        assert.are.same({}, missing)
      end)
    end)
  end

  it("the library's rock ships no emulator file: those are the sapwf-emulator rock's", function()
    local rockspec = read_file("sapwf-scm-1.rockspec")
    assert.is_nil(rockspec:find("sapwf/emulator/", 1, true))
    assert.is_nil(rockspec:find('"sapwf.emulator', 1, true))
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

  -- `sapwf emulator` on an installed command: a clear config error (exit 3) without the
  -- emulator's rock, the emulator with it.
  local function emulator_command(root)
    local lpath = root .. "/share/lua/5.4/?.lua;" .. root .. "/share/lua/5.4/?/init.lua"
    local cpath = root .. "/lib/lua/5.4/?.so"
    -- Ctrl-C (SIGINT) once the key file is there; a command that hangs is killed after 20 s.
    return run(string.format("cd '%s' && LUA_PATH='%s;;' LUA_CPATH='%s;;' "
      .. "'%s/bin/sapwf' emulator --key-file '%s/emu-key.json' </dev/null & pid=$!; "
      .. "for i in $(seq 200); do [ -s '%s/emu-key.json' ] && break; "
      .. "kill -0 $pid 2>/dev/null || break; sleep 0.1; done; kill -INT $pid 2>/dev/null; "
      .. "( sleep 20; kill -9 $pid 2>/dev/null ) & wait $pid", tmp, lpath, cpath, root, root,
      root))
  end

  it("luarocks make installs offline into a local tree, and the module works from there",
     function()
    local tree = tmp .. "/rocks"
    local ok, out = run("luarocks --lua-version=5.4 --tree='" .. tree
                        .. "' make --deps-mode=none sapwf-scm-1.rockspec")
    assert.is_true(ok, out)
    assert_works_from(tree, "definitions", { "orderapproval" })
    local listed
    ok, listed = run("find '" .. tree .. "' -path '*/sapwf/emulator*'")
    assert.is_true(ok, listed)
    assert.equal("", listed)

    local code
    ok, out, code = emulator_command(tree)
    assert.is_false(ok)
    assert.equal(3, code, out)
    assert.matches("the local emulator is not installed: it is the rock sapwf-emulator", out,
                   1, true)

    ok, out = run("cd emulator && luarocks --lua-version=5.4 --tree='" .. tree
                  .. "' make --deps-mode=none sapwf-emulator-scm-1.rockspec")
    assert.is_true(ok, out)
    ok, out = emulator_command(tree)
    assert.matches("the full client's service key: " .. tree .. "/emu-key.json", out, 1, true)
    assert.matches("emulator stopped", out, 1, true)
    -- its key named the emulator that stopped: removed with it
    assert.is_nil(helpers.read_file(tree .. "/emu-key.json"))
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

  it("make man install puts the man page under PREFIX too, as the README says", function()
    local prefix = tmp .. "/prefix-man"
    local ok, out = run("env -u MAKEFLAGS -u MFLAGS make --no-print-directory man install "
                        .. "LUA=lua5.4 PREFIX='" .. prefix .. "'")
    assert.is_true(ok, out)
    local page = helpers.read_file(prefix .. "/share/man/man1/sapwf.1")
    assert.is_string(page, "no man page under " .. prefix)
    assert.matches("\n%.TH SAPWF ", "\n" .. page)
    assert.matches("start", page, 1, true)
  end)

  -- README: "A module built for another Lua fails to load, and says which build nginx
  -- needs", and shows the message for LuaJIT: the Lua 5.4 build, loaded by LuaJIT.
  it("require 'sapwf' with a sapwf.core of another Lua names the build this one needs",
     function()
    local ok, out = run("env -u MAKEFLAGS -u MFLAGS make --no-print-directory LUA=lua5.4")
    assert.is_true(ok, out)
    ok, out = run("luajit -e 'package.path = \"./lua/?.lua;./lua/?/init.lua;\" .. package.path "
      .. "package.cpath = \"./build/lua5.4/?.so\" require \"sapwf\"'")
    assert.is_false(ok, out)
    assert.matches("core.so: undefined symbol: lua_", out, 1, true)
    local got, version = run("luajit -e 'io.write(jit.version)'")
    assert.is_true(got, version)
    local promised = read_file("README.md"):match("\n(sapwf%.core was built for another Lua "
      .. "than this [^\n]*)\n")
    assert.is_string(promised, "README.md no longer shows the message")
    assert.matches((promised:gsub("LuaJIT [%w.-]+:", version .. ":")), out, 1, true)
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
