-- `make docs`: LDoc builds the reference of the Lua API from its doc comments (config.ld)
-- into DOCS_DIR: an index, a page per module, each client method shown as `wf:name (...)`;
-- and a doc comment LDoc cannot read fails the target.
local helpers = require "spec.helpers"

local MODULES = { "sapwf", "sapwf.client", "sapwf.definitions", "sapwf.instances", "sapwf.tasks",
  "sapwf.messages", "sapwf.jobs", "sapwf.paging", "sapwf.request", "sapwf.batch",
  "sapwf.errors", "sapwf.json", "sapwf.servicekey", "sapwf.ngx" }

-- make in a clean environment: under `make test` the outer make's MAKEFLAGS would reach it.
local function make(args)
  return helpers.run("env -u MAKEFLAGS -u MFLAGS make --no-print-directory " .. args)
end

describe("make docs", function()
  local tmp, docs, pages

  setup(function()
    tmp = helpers.temp_dir()
    docs = tmp .. "/docs"
    local ok, out = make("docs DOCS_DIR='" .. docs .. "'")
    assert(ok, out)
    pages = {}
    for _, name in ipairs(MODULES) do
      pages[name] = helpers.read_file(docs .. "/modules/" .. name .. ".html")
    end
  end)
  teardown(function()
    if tmp then helpers.run("rm -rf '" .. tmp .. "'") end
  end)

  it("writes an index that links a page for each module", function()
    local index = assert(helpers.read_file(docs .. "/index.html"), "no index.html")
    for _, name in ipairs(MODULES) do
      assert.truthy(index:find('href="modules/' .. name .. '.html"', 1, true), name)
      assert.truthy(pages[name], "no page for " .. name)
    end
    assert.truthy(pages["sapwf"]:find("<strong>new (opts)</strong>", 1, true))
  end)

  it("shows the client methods as wf:name, wf:start_many on the sapwf.batch page", function()
    local batch = pages["sapwf.batch"]
    assert.truthy(batch:find('<a name = "methods.start_many"></a>', 1, true))
    assert.truthy(batch:find("<strong>wf:start_many (items, opts)</strong>", 1, true))
    assert.truthy(batch:find("<strong>wf:map (list, fn, opts)</strong>", 1, true))
    assert.truthy(pages["sapwf.instances"]:find("<strong>wf:instance (id, opts)</strong>", 1,
                                                true))
  end)

  it("documents every client method", function()
    require "sapwf"
    local all = ""
    for _, name in ipairs(MODULES) do all = all .. pages[name] end
    local missing = {}
    for name in pairs(require("sapwf.client").methods) do
      if not all:find('<a name = "methods.' .. name .. '"></a>', 1, true) then
        missing[#missing + 1] = name
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  -- client.lua also holds the internals every method uses; only wf:token and wf:close are API.
  it("lists only wf:token and wf:close on the sapwf.client page", function()
    local names = {}
    for name in pages["sapwf.client"]:gmatch('<a name = "([^"]+)"></a>') do
      names[#names + 1] = name
    end
    table.sort(names)
    assert.are.same({ "methods.close", "methods.token" }, names)
  end)

  it("fails when LDoc cannot attach a doc comment to code", function()
    local copy = tmp .. "/copy"
    local ok, out = helpers.run("mkdir '" .. copy .. "' && cp -R config.ld Makefile scripts lua '"
                                .. copy .. "'")
    assert(ok, out)
    local f = assert(io.open(copy .. "/lua/sapwf/messages.lua", "ab"))
    f:write("--- A doc comment with nothing to document after it.\nlocal a, b = 1, 2\n")
    f:close()
    local built, text = make("-C '" .. copy .. "' docs DOCS_DIR='" .. tmp .. "/broken'")
    assert.is_false(built, text)
    assert.matches("messages%.lua:%d+: definition cannot be parsed", text)
    assert.matches("make docs: LDoc failed, or cannot read the doc comments it names above", text)
  end)
end)
