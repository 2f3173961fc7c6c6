-- Every public function has specs: the inventory below, and a check that keeps it true.
--
-- Columns: where each function's success (values the emulator returned), its server or data
-- error (nil, err with the right kind; 404 for an unknown id), its 403 (err.authority equal
-- to operations.lua's) and its argument errors (raise, naming the argument, at the caller's
-- line) are asserted. Spec numbers: 01 json, 02 servicekey, 04 errors, 10 client,
-- 11 definitions, 12 instances, 13 tasks_messages, 14 paging, 15 failures.
--
--   function                 success      error             403    raises
--   sapwf.new                02 10        02 15 (config)    -      02 10
--   sapwf.from_env           02           02 (config)       02 15  02
--   sapwf.array/object/null  01 08 12     01 (not JSON)     -      01 08
--   sapwf.is_error           02 08 11-14  -                 -      -
--   wf:token                 10           15 (auth)         -      10
--   wf:close                 10           -                 -      10 (closed)
--   wf:request               10           10                10     10
--   wf:definitions           11           11 (400)          11     11
--   wf:definition            11           11 (404)          11     11
--   wf:definition_versions   11           11 (404 400)      11     11
--   wf:definition_version    11           11 (404)          11     10 11
--   wf:definition_model      11           11 (404)          11     11
--   wf:sample_context        11           11 (404)          11     11
--   wf:undeploy              11           11 (404 412 400)  11     11
--   wf:job                   11 12        11 (404)          11     11
--   wf:forms                 11           11 (400)          11     11
--   wf:start                 10 12        12 15 16          12 15  10 12
--   wf:instances             12           12 (400)          12 15  10 12
--   wf:instance              12           12 (404)          12     10 12
--   wf:context               12           12 (404)          12     10 12
--   wf:update_context        12           12 (404 400)      12     10 12
--   wf:replace_context       12           12 (404 400)      12     12
--   wf:cancel                12           12 (404 422)      12     12
--   wf:suspend               12           12 (404 422)      12     12
--   wf:resume                12           12 (404 422)      12     12
--   wf:attributes            12           12 (404)          12     12
--   wf:execution_logs        12           12 (404)          12     12
--   wf:error_messages        12           12 (404)          12     12
--   wf:roles                 12           12 (404)          12     12
--   wf:update_roles          12           12 (404 400)      12     10 12
--   wf:attachments           12           12 (404)          12     12
--   wf:update_attachments    12           12 (404 400)      12     12
--   wf:delete_instances      12           12 (400)          12     10 12
--   wf:tasks                 13           13 (400)          13     13
--   wf:task                  13           13 (404)          13     12 13
--   wf:task_context          13           13 (404)          13     13
--   wf:task_attributes       13           13 (404)          13     13
--   wf:task_attachments      13           13 (404)          13     13
--   wf:task_form             13           13 (404)          13     13
--   wf:task_form_model       13           13 (404)          13     13
--   wf:complete_task         10 13        13 (404 409 422)  13     13
--   wf:update_task           13           13 (404 422)      13     10 13
--   wf:task_definitions      13           13 (400)          13     13
--   wf:send_message          10 13        13 (400 422)      13     13
--   wf:each_instance         14           14 (raised)       14     14
--   wf:each_task             14           14 (raised)       -      14
--
-- The check below fails when a client method is called in no spec file other than this one
-- and spec/06 (which only looks for it in the README), so a new method needs its own specs.
local sapwf = require "sapwf"
local client = require "sapwf.client"
local json = require "sapwf.json"

-- name -> text of every spec file except those two.
local function spec_texts()
  local texts = {}
  local pipe = assert(io.popen("ls spec/*_spec.lua"))
  for path in pipe:lines() do
    if not path:find("/0[68]%-[^/]*$") then
      local f = assert(io.open(path, "rb"))
      texts[path] = f:read("*a")
      f:close()
    end
  end
  pipe:close()
  return texts
end

-- Whether text calls method `name` on a client: wf:name(...), wf:name{...}, or passes
-- wf.name to pcall (wf.name, ...).
local function calls(text, name)
  for _, form in ipairs({ ":" .. name .. "(", ":" .. name .. "{", ":" .. name .. " {",
                          "." .. name .. ", " }) do
    if text:find(form, 1, true) then return true end
  end
  return false
end

describe("coverage", function()
  local texts

  setup(function() texts = spec_texts() end)

  it("reads the spec files", function()
    local n = 0
    for path in pairs(texts) do
      n = n + 1
      assert.is_nil(path:find("08%-coverage"), path)
    end
    assert.is_true(n >= 10, "only " .. n .. " spec files found")
    assert.truthy(texts["spec/12-instances_spec.lua"])
  end)

  it("finds a call of every client method in another spec file", function()
    local names, missing = {}, {}
    for name in pairs(client.methods) do names[#names + 1] = name end
    table.sort(names)
    assert.is_true(#names >= 40, "client.methods has only " .. #names .. " methods")
    for _, name in ipairs(names) do
      local found = false
      for _, text in pairs(texts) do
        if calls(text, name) then found = true; break end
      end
      if not found then missing[#missing + 1] = name end
    end
    assert.same({}, missing)
  end)

  it("would notice a method without specs", function()
    for _, text in pairs(texts) do
      assert.is_false(calls(text, "no_such_method_anywhere"))
    end
    -- A name that is a prefix of a tested one is not taken for it.
    local found = false
    for _, text in pairs(texts) do
      if calls(text, "task_form_mode") then found = true end
    end
    assert.is_false(found)
  end)

  it("finds every public field of sapwf used in a spec file (this one included)", function()
    local f = assert(io.open("spec/08-coverage_spec.lua", "rb"))
    local all = { f:read("*a") }
    f:close()
    for _, text in pairs(texts) do all[#all + 1] = text end
    local missing = {}
    for name in pairs(sapwf) do
      -- sapwf.<name> as a value, not inside a module name such as "sapwf.operations".
      local pattern = "[^\"'%w_]sapwf%." .. name:gsub("%p", "%%%0") .. "[^%w_\"']"
      local found = name:sub(1, 1) == "_"
      for _, text in ipairs(all) do
        if found then break end
        found = text:find(pattern) ~= nil
      end
      if not found then missing[#missing + 1] = name end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)
end)

-- The module table's own fields (other specs test the functions behind them).
describe("the sapwf module table", function()
  it("gives the C core's version", function()
    local core = require "sapwf.core"
    assert.matches("^%d+%.%d+%.%d+", sapwf.version)
    assert.equal(core.version, sapwf.version)
    assert.equal(sapwf.version, sapwf._VERSION)
  end)

  it("marks arrays and objects, and has JSON null", function()
    assert.equal("[]", json.encode(sapwf.array{}, "v"))
    assert.equal("{}", json.encode(sapwf.object{}, "v"))
    assert.equal("[null]", json.encode({ sapwf.null }, "v"))
    assert.equal(sapwf.null, json.decode("[null]")[1])
    local t = {}
    assert.equal(t, sapwf.array(t))
    assert.has_error(function() sapwf.object(5) end,
                     "bad argument #1 to 'object' (table expected, got number)")
  end)

  it("tells sapwf errors from anything else", function()
    local wf, err = sapwf.new{ timeout = 5 }               -- no credentials: config error
    assert.is_nil(wf)
    assert.is_true(sapwf.is_error(err))
    assert.equal("config", err.kind)
    assert.is_false(sapwf.is_error({ kind = "config", message = "look-alike" }))
    assert.is_false(sapwf.is_error(tostring(err)))
    assert.is_false(sapwf.is_error(nil))
  end)

  it("exposes the operations table the methods use", function()
    assert.equal(require("sapwf.operations"), sapwf.operations)
    assert.equal("WORKFLOW_INSTANCE_START", sapwf.operations.by_name.start.authority)
  end)
end)
