-- `make docs`: LDoc builds the reference of the Lua API from its doc comments (config.ld)
-- into DOCS_DIR: an index, a page per module, each client method shown as `wf:name (...)`
-- with its parameters, results and failures; only the public API, nothing of the source's
-- inner workings; and a doc comment LDoc cannot read fails the target.
local helpers = require "spec.helpers"

local MODULES = { "sapwf", "sapwf.client", "sapwf.definitions", "sapwf.instances", "sapwf.tasks",
  "sapwf.messages", "sapwf.jobs", "sapwf.paging", "sapwf.request", "sapwf.batch",
  "sapwf.errors", "sapwf.ngx" }

-- The text of an HTML page, tags dropped.
local function text_of(html)
  return (html:gsub("<[^>]+>", " "):gsub("&quot;", '"'):gsub("&lt;", "<"):gsub("&gt;", ">")
    :gsub("&amp;", "&"):gsub("%s+", " "))
end

-- The entries of a page: anchor name -> its text up to the next entry.
local function entries(html)
  local found, names = {}, {}
  for pos, name in html:gmatch('()<a name = "([^"]+)"></a>') do names[#names + 1] = { pos, name } end
  for i, e in ipairs(names) do
    local stop = names[i + 1] and names[i + 1][1] or #html
    found[e[2]] = text_of(html:sub(e[1], stop))
  end
  return found
end

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
    assert.truthy(batch:find('<a name = "methods:start_many"></a>', 1, true))
    assert.truthy(batch:find("<strong>wf:start_many (items[, opts])</strong>", 1, true))
    assert.truthy(batch:find("<strong>wf:map (list, fn[, opts])</strong>", 1, true))
    assert.truthy(pages["sapwf.instances"]:find("<strong>wf:instance (id[, opts])</strong>", 1,
                                                true))
  end)

  it("documents every client method", function()
    require "sapwf"
    local all = ""
    for _, name in ipairs(MODULES) do all = all .. pages[name] end
    local missing = {}
    for name in pairs(require("sapwf.client").methods) do
      if not all:find('<a name = "methods:' .. name .. '"></a>', 1, true) then
        missing[#missing + 1] = name
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("lists only wf:token and wf:close on the sapwf.client page", function()
    local names = {}
    for name in pages["sapwf.client"]:gmatch('<a name = "([^"]+)"></a>') do
      names[#names + 1] = name
    end
    table.sort(names)
    assert.are.same({ "methods:close", "methods:token" }, names)
  end)

  -- Only what a program calls: the error object's fields, not the functions that make it;
  -- no page for the JSON, service key, option or sending internals.
  it("shows only the public API", function()
    local public = {
      ["sapwf"] = { "array", "from_env", "is_error", "new", "object" },
      ["sapwf.errors"] = { "err" },
      ["sapwf.ngx"] = { "decode", "sapwf_ngx.new", "sapwf_ngx.warm_up" },
    }
    for page, want in pairs(public) do
      local names = {}
      for name in pairs(entries(pages[page])) do names[#names + 1] = name end
      table.sort(names)
      assert.are.same(want, names, page)
    end
    local index = helpers.read_file(docs .. "/index.html")
    for _, internal in ipairs({ "sapwf.json", "sapwf.servicekey", "sapwf.options", "sapwf.base",
                                "sapwf.send", "sapwf.query", "sapwf.operations" }) do
      assert.falsy(index:find(internal .. ".html", 1, true), internal)
    end
  end)

  it("gives every function its parameters, results and failures", function()
    local missing = {}
    for _, page in ipairs(MODULES) do
      for name, text in pairs(entries(pages[page])) do
        local takes = not text:find("%(%)") and not text:find("wf:close")
        if page == "sapwf.errors" then
          if not text:find("Fields:") then missing[#missing + 1] = page .. " " .. name end
        else
          if takes and not text:find("Parameters:") then
            missing[#missing + 1] = page .. " " .. name .. ": parameters"
          end
          if not text:find("wf:close") and not text:find("Returns:") then
            missing[#missing + 1] = page .. " " .. name .. ": returns"
          end
          if page ~= "sapwf" or name == "new" or name == "from_env" then
            if not text:find("Fails:") and not text:find("Raises:") and
                not text:find("wf:close") then
              missing[#missing + 1] = page .. " " .. name .. ": failures"
            end
          end
        end
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  -- Each list method names every filter the API has for it: its page is where a user looks.
  it("names every query filter of each list call", function()
    local ops = require("sapwf.operations").by_name
    local all = entries(pages["sapwf.definitions"])
    for _, page in ipairs({ "sapwf.instances", "sapwf.tasks", "sapwf.jobs", "sapwf.paging" }) do
      for name, text in pairs(entries(pages[page])) do all[name] = text end
    end
    local lists = { definitions = "definitions", definition_versions = "definition_versions",
                    instances = "instances", tasks = "tasks", forms = "forms",
                    task_definitions = "task_definitions", each_instance = "instances",
                    each_task = "tasks" }
    for method, op_name in pairs(lists) do
      local text = assert(all["methods:" .. method], method)
      for q in pairs(ops[op_name].query_names) do
        local name = q:gsub("^%$", "")
        assert.truthy(text:find(name, 1, true), method .. " does not name " .. name)
      end
      -- top's range is query.lua's (0: the count alone); an iterator's pages hold one at least
      local range = method:find("^each_") and "1 to 1000" or "0 to 1000"
      assert.truthy(text:find("top (page size, " .. range .. ")", 1, true),
                    method .. " does not give top as " .. range)
    end
  end)

  -- The kinds a program tells errors apart by: the reference lists every one the README does.
  it("lists every error kind of the README on the sapwf.errors page", function()
    local readme = assert(helpers.read_file("README.md"))
    local row = "|" .. assert(readme:match("\n| `kind` |([^\n]*)"))
    local errors_page, kinds = text_of(pages["sapwf.errors"]), {}
    -- the kinds open the row's items: "| `config`, `network`, `timeout` (also 408), ..."
    for at, kind, after in row:gmatch("()`([%l_]+)`()") do
      local before, next_ = row:sub(at - 2, at - 1), row:sub(after, after + 1)
      if (before == "| " or before == ", ") and (next_:find("^,") or next_ == " ("
                                                 or next_ == " |") then
        kinds[#kinds + 1] = kind
        assert.truthy(errors_page:find('"' .. kind .. '"', 1, true),
                      "sapwf.errors does not list kind " .. kind)
      end
    end
    assert.is_true(#kinds >= 14, table.concat(kinds, " "))
  end)

  -- format = "plain" writes doc text into the HTML as it is: a "<close>" or "<=" would be
  -- read as a tag and cut the text.
  it("has no text that a browser would read as a tag", function()
    local TAGS = { a = true, p = true, h1 = true, h2 = true, h3 = true, h4 = true,
                   strong = true, code = true, pre = true, ul = true, ol = true, li = true,
                   dl = true, dt = true, dd = true, div = true, span = true, table = true,
                   tr = true, td = true, th = true, br = true, em = true, html = true,
                   head = true, body = true, meta = true, link = true, title = true, b = true,
                   i = true, hr = true, big = true, ["!DOCTYPE"] = true, ["!"] = true }
    for _, page in ipairs(MODULES) do
      for tag in pages[page]:gmatch("<(/?[!%w]*)") do
        assert.truthy(TAGS[tag:gsub("^/", "")], page .. ": <" .. tag)
      end
    end
  end)

  -- The reference is for users: no source file names, C internals or design notes.
  it("says nothing of the source's inner workings", function()
    for _, page in ipairs(MODULES) do
      local text = text_of(pages[page])
      for _, leftover in ipairs({ "%.lua%f[^%w]", "src/", "%.c%f[^%w]", "sapwf%.core",
                                  "stand%-in", "coroutine", "_core", "_policy",
                                  "client%.lua", "upvalue" }) do
        assert.falsy(text:find(leftover), page .. " mentions " .. leftover)
      end
    end
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

describe("make man", function()
  it("makes the man page from the command's own --help and --version", function()
    local tmp = helpers.temp_dir()
    local ok, out = make("man MAN_DIR='" .. tmp .. "'")
    local page = helpers.read_file(tmp .. "/sapwf.1")
    helpers.run("rm -rf '" .. tmp .. "'")
    assert.is_true(ok, out)
    assert.is_string(page)
    local version = require("sapwf.core").version
    assert.matches('.TH SAPWF "1" "[^"]*" "sapwf ' .. version:gsub("%.", "%%.") .. '"', page)
    assert.matches("generated by help2man", page, 1, true)
    for _, name in ipairs({ "definitions", "instances", "start", "doctor", "completion",
                            "help" }) do
      assert.matches("\n" .. name .. "\n", page, 1, true)
    end
    -- the whole usage in SYNOPSIS: none of it under DESCRIPTION (help2man takes only
    -- continuation lines that repeat the program name, and argparse's repeat none)
    local synopsis = assert(page:match("\n%.SH SYNOPSIS\n(.-)\n%.SH "))
    assert.matches("<command> \\/\\fR...$", synopsis)
    local description = assert(page:match("\n%.SH DESCRIPTION\n(.-)\n%.SH "))
    assert.matches("^Command line for the SAP BTP Workflow service", description)
    -- an option with two names is one label, its description whole below it
    assert.matches("\n\\fB\\-o\\fR FORMAT, \\fB\\-\\-output\\fR FORMAT\nOutput format: ", page,
                   1, true)
    -- each command with its own options, as its --help says them
    local commands = assert(page:match("\n%.SH COMMANDS\n(.-)\n%.SH "))
    for name, option in pairs({ start = "--concurrency N", instances = "--started-from VALUE",
        tasks = "--task-definition-id VALUE", complete = "--decision ID", message = "--name NAME",
        emulator = "--service-time SECONDS", instance = "--attributes" }) do
      local section = assert(commands:match("%.SS " .. name .. "\n%.nf\n(.-)\n%.fi\n"), name)
      assert.matches("Usage: sapwf " .. name .. " ", section, 1, true)
      assert.matches("\n   " .. option:gsub("%p", "%%%0") .. "[ \n]", section)
    end
    -- the paragraphs after the options in a man page's sections for them
    local function section(heading)     -- help2man quotes a heading with a space
      return assert(page:match("\n%.SH " .. heading .. "\n(.-)\n%.SH ")
                    or page:match("\n%.SH " .. heading .. "\n(.*)$"), heading)
    end
    assert.matches("\n130\n", section('"EXIT STATUS"'), 1, true)
    assert.matches("SAPWF_SERVICE_KEY", section("ENVIRONMENT"), 1, true)
    assert.is_nil(section("EXAMPLES"):find("Exit codes", 1, true))
    assert.matches("docs/CLI.md", section('"SEE ALSO"'), 1, true)
  end)
end)
