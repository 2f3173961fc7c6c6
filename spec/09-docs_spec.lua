-- `make docs`: LDoc builds the reference of the Lua API from its doc comments (config.ld)
-- into DOCS_DIR: an index, a page per module, each client method shown as `wf:name (...)`;
-- and a doc comment LDoc cannot read fails the target.
local helpers = require "spec.helpers"

-- Client methods the pages do not document yet, because their files are being reworked:
-- instances.lua opens with a plain `--` comment, so LDoc takes wf:start's doc comment for
-- the module's, and eight of its methods have no doc comment; wf:token and wf:close are in
-- client.lua, which config.ld leaves out. The test fails when one of these gets documented,
-- so that this list only shrinks.
local NOT_YET = {
  start = true, context = true, cancel = true, suspend = true, attributes = true,
  execution_logs = true, error_messages = true, roles = true, attachments = true,
  token = true, close = true,
}

local MODULES = { "sapwf", "sapwf.definitions", "sapwf.instances", "sapwf.tasks",
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

  it("documents every client method but the ones listed as not yet", function()
    require "sapwf"
    local all = ""
    for _, name in ipairs(MODULES) do all = all .. pages[name] end
    local missing, now_documented = {}, {}
    for name in pairs(require("sapwf.client").methods) do
      local documented = all:find('<a name = "methods.' .. name .. '"></a>', 1, true) ~= nil
      if not documented and not NOT_YET[name] then missing[#missing + 1] = name end
      if documented and NOT_YET[name] then now_documented[#now_documented + 1] = name end
    end
    table.sort(missing)
    table.sort(now_documented)
    assert.are.same({}, missing)
    assert.are.same({}, now_documented, "documented now: take them off NOT_YET")
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
