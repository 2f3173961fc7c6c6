-- Files that may hold the only record of something are never truncated or replaced:
-- core.temp_file makes the file an export or the emulator's key is written into before
-- the rename (a new file, never one that is there, which io.open "wb" would truncate), and
-- core.rename_noreplace moves the command line's earlier failed file aside without
-- replacing a file that has the new name (os.rename would). core.file_kind tells a file that
-- is not there from one that cannot be examined; core.lock_file keeps two bulk runs off one
-- record file; core.is_link and core.real_path find the file a link names, which an export
-- replaces instead of the link.
local helpers = require "spec.helpers"
local core = require "sapwf.core"

local mode = helpers.file_mode

describe("files", function()
  local dir
  setup(function() dir = helpers.temp_dir() end)
  teardown(function() if dir then os.execute("rm -rf " .. dir) end end)
  before_each(function() os.execute("rm -rf " .. dir .. "/* " .. dir .. "/.[!.]*") end)

  describe("core.temp_file", function()
    it("makes a new empty file, the owner's only, named by the prefix and six characters",
       function()
      local a = assert(core.temp_file(dir .. "/x.zip.part-"))
      local b = assert(core.temp_file(dir .. "/x.zip.part-"))
      assert.matches("^" .. dir:gsub("%p", "%%%0") .. "/x%.zip%.part%-%w%w%w%w%w%w$", a)
      assert.are_not.equal(a, b)
      assert.equal("", helpers.read_file(a))
      assert.equal("600", mode(a))                  -- whatever the umask (022 here)
      local names = { (a:match("[^/]+$")), (b:match("[^/]+$")) }
      table.sort(names)
      assert.same(names, helpers.listing(dir))
    end)

    it("gives a new name each time, and leaves the files there alone", function()
      local made = {}
      for i = 1, 50 do
        local name = assert(core.temp_file(dir .. "/k."))
        helpers.write_file(name, "record " .. i)
        assert.is_nil(made[name])
        made[name] = i
      end
      for name, i in pairs(made) do assert.equal("record " .. i, helpers.read_file(name)) end
    end)

    it("says why it cannot, and raises for a prefix that is no file name", function()
      local name, err = core.temp_file(dir .. "/no/such/folder/x.")
      assert.is_nil(name)
      assert.equal("No such file or directory", err)
      assert.has_error(function() core.temp_file(nil) end,
                       "bad argument #1 to 'temp_file' (string expected, got nil)")
      assert.has_error(function() core.temp_file(dir .. "/a\0b") end,
                       "bad argument #1 to 'temp_file' (file name contains a NUL byte)")
    end)
  end)

  describe("core.mode_like", function()
    it("gives a file the bits of another, or a new file's, and says why it cannot", function()
      local a, b = dir .. "/a", dir .. "/b"
      helpers.write_file(a, "a")
      helpers.write_file(b, "b")
      assert(helpers.run("chmod 640 " .. b))
      assert.is_true(core.mode_like(a, b))
      assert.equal("640", mode(a))
      assert.equal("a", helpers.read_file(a))
      -- no such file: what io.open gives a new one (the umask's doing)
      assert.is_true(core.mode_like(b, dir .. "/none"))
      assert(io.open(dir .. "/new", "w")):close()
      assert.equal(mode(dir .. "/new"), mode(b))
      local ok, err = core.mode_like(dir .. "/none", a)
      assert.is_nil(ok)
      assert.equal("No such file or directory", err)
      assert.has_error(function() core.mode_like(a) end,
                       "bad argument #2 to 'mode_like' (string expected, got no value)")
    end)
  end)

  describe("core.rename_noreplace", function()
    it("renames a file to a free name", function()
      helpers.write_file(dir .. "/failed.jsonl", "line 7 failed")
      assert.is_true(core.rename_noreplace(dir .. "/failed.jsonl", dir .. "/failed.jsonl.1"))
      assert.same({ "failed.jsonl.1" }, helpers.listing(dir))
      assert.equal("line 7 failed", helpers.read_file(dir .. "/failed.jsonl.1"))
    end)

    it("never replaces a file or a link that has the new name, and says so", function()
      helpers.write_file(dir .. "/new", "this run")
      helpers.write_file(dir .. "/kept", "the only record")
      local ok, err, taken = core.rename_noreplace(dir .. "/new", dir .. "/kept")
      assert.is_nil(ok)
      assert.equal("File exists", err)
      assert.is_true(taken)
      assert.equal("this run", helpers.read_file(dir .. "/new"))
      assert.equal("the only record", helpers.read_file(dir .. "/kept"))
      -- a dangling link is a name that is taken too
      assert(helpers.run("ln -s " .. dir .. "/nowhere " .. dir .. "/link"))
      ok, err, taken = core.rename_noreplace(dir .. "/new", dir .. "/link")
      assert.is_nil(ok)
      assert.is_true(taken)
      assert.same({ "kept", "link", "new" }, helpers.listing(dir))
    end)

    it("says why for any other failure, and raises for names that are no file names",
       function()
      local ok, err, taken = core.rename_noreplace(dir .. "/absent", dir .. "/x")
      assert.is_nil(ok)
      assert.equal("No such file or directory", err)
      assert.is_false(taken)
      assert.has_error(function() core.rename_noreplace(dir .. "/a") end,
                       "bad argument #2 to 'rename_noreplace' (string expected, got no value)")
      assert.has_error(function() core.rename_noreplace(dir .. "/a\0b", dir .. "/c") end,
                       "bad argument #1 to 'rename_noreplace' (file name contains a NUL byte)")
    end)
  end)

  describe("core.file_id", function()
    it("names one file however the path is spelt, and nil for none", function()
      helpers.write_file(dir .. "/f", "x")
      assert(helpers.run("ln -s f " .. dir .. "/l"))
      local id = assert(core.file_id(dir .. "/f"))
      assert.equal(id, core.file_id(dir .. "/./l"))
      assert.is_nil(core.file_id(dir .. "/absent"))
      assert.has_error(function() core.file_id(dir .. "/f\0x") end,
                       "bad argument #1 to 'file_id' (file name contains a NUL byte)")
    end)
  end)

  describe("core.file_kind", function()
    it("names what a path is, a file with its size; missing only for a name that is not there",
       function()
      helpers.write_file(dir .. "/f", "12345")
      assert(helpers.run("ln -s f " .. dir .. "/l && mkfifo " .. dir .. "/p"))
      assert.same({ "file", 5 }, { core.file_kind(dir .. "/l") })
      assert.same({ "directory" }, { core.file_kind(dir) })
      assert.same({ "character device" }, { core.file_kind("/dev/null") })
      assert.same({ "fifo" }, { core.file_kind(dir .. "/p") })
      assert.same({ nil, "No such file or directory", true }, { core.file_kind(dir .. "/x") })
      -- a path through a file, a link loop: no answer, and not "missing"
      assert.same({ nil, "Not a directory", false }, { core.file_kind(dir .. "/f/x") })
      assert(helpers.run("ln -s loop " .. dir .. "/loop"))
      assert.same({ nil, "Too many levels of symbolic links", false },
                  { core.file_kind(dir .. "/loop") })
      assert.has_error(function() core.file_kind(dir .. "/f\0x") end,
                       "bad argument #1 to 'file_kind' (file name contains a NUL byte)")
    end)
  end)

  describe("core.is_link and core.real_path", function()
    it("tell a link (also one to nothing) from what it names", function()
      helpers.write_file(dir .. "/f", "x")
      assert(helpers.run("ln -s f " .. dir .. "/l && ln -s nowhere " .. dir .. "/dangling"))
      assert.is_true(core.is_link(dir .. "/l"))
      assert.is_true(core.is_link(dir .. "/dangling"))
      assert.is_false(core.is_link(dir .. "/f"))
      assert.is_false(core.is_link(dir .. "/absent"))
      assert.has_error(function() core.is_link(dir .. "/f\0x") end,
                       "bad argument #1 to 'is_link' (file name contains a NUL byte)")
    end)

    it("give a link's file by its absolute name, and say why not for none", function()
      helpers.write_file(dir .. "/f", "x")
      assert(helpers.run("ln -s f " .. dir .. "/l && ln -s ./l " .. dir .. "/ll && ln -s "
        .. "nowhere " .. dir .. "/dangling"))
      local real = assert(core.real_path(dir .. "/ll"))
      assert.equal(assert(core.real_path(dir)) .. "/f", real)
      assert.equal(real, core.real_path(dir .. "/./l"))
      assert.same({ nil, "No such file or directory", true },
                  { core.real_path(dir .. "/dangling") })
      assert.same({ nil, "Not a directory", false }, { core.real_path(dir .. "/f/x") })
      assert.has_error(function() core.real_path(nil) end,
                       "bad argument #1 to 'real_path' (string expected, got nil)")
    end)
  end)

  describe("core.lock_file", function()
    it("holds an exclusive lock until closed; a second lock fails at once, saying why",
       function()
      local path = dir .. "/record"
      local lock, created = core.lock_file(path)
      assert.is_truthy(lock)
      assert.is_true(created)
      assert.equal("", helpers.read_file(path))
      local again, err, busy = core.lock_file(path)
      assert.is_nil(again)
      assert.equal("Resource temporarily unavailable", err)
      assert.is_true(busy)
      -- another process: flock(1) fails at once while the lock is held, then succeeds
      local probe = "flock -n " .. path .. " true"
      assert.is_false((helpers.run(probe)))
      lock:close()
      lock:close()                                        -- idempotent
      assert.is_truthy((helpers.run(probe)))
      local second
      second, created = core.lock_file(path)
      assert.is_truthy(second)
      assert.is_false(created)
      second = nil
      collectgarbage()
      collectgarbage()                                    -- __gc releases it
      assert.is_truthy((helpers.run(probe)))
    end)

    it("never truncates the file it locks, and refuses what is no regular file", function()
      local path = dir .. "/record"
      helpers.write_file(path, '{"line":1,"id":"a"}\n')
      local lock = assert(core.lock_file(path))
      lock:close()
      assert.equal('{"line":1,"id":"a"}\n', helpers.read_file(path))
      assert.same({ nil, "not a regular file", false }, { core.lock_file("/dev/null") })
      local none, err, busy = core.lock_file(dir)
      assert.is_nil(none)
      assert.equal("Is a directory", err)
      assert.is_false(busy)
      assert.same({ nil, "No such file or directory", false },
                  { core.lock_file(dir .. "/no/such/record") })
      assert.has_error(function() core.lock_file(nil) end,
                       "bad argument #1 to 'lock_file' (string expected, got nil)")
    end)
  end)
end)
