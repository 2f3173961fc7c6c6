-- operations.lua against SAP's API definition (Swagger 2.0 YAML), read as text: every
-- operation sapwf knows exists there with the same method, path, query names and success
-- statuses, and needs the scope the spec states for it. And the reverse: every operation of
-- the spec is in the table.
local operations = require "sapwf.operations"

-- SAP's definition is not part of the project: CI has it beside the clone, and
-- SAPWF_API_DEFINITION may point to it elsewhere. Without it, the cross-check is reported
-- as not run (pending: never counted as passed) and the rest of this file still runs.
local SPEC_PATH = os.getenv("SAPWF_API_DEFINITION")
  or "../shared/reference/SAP_CP_Workflow_CF.yaml"

-- The `paths:` section as { ["GET /v1/..."] = { scopes = {...}, query = {...},
-- responses = {...} } }. Layout of the file: paths at two spaces, methods at four,
-- parameter items at six ("- "), their fields at eight, response codes at eight.
local function read_spec()
  local f = io.open(SPEC_PATH, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  local ops = {}
  local in_paths, path, current, param, in_success = false, nil, nil, nil, false
  for line in text:gmatch("([^\n]*)\n?") do
    if line:match("^%S") then
      in_paths = line == "paths:"
      current = nil
    elseif in_paths then
      local p = line:match("^  (/%S*):%s*$")
      local m = line:match("^    (%a+):%s*$")
      if p then
        path, current = p, nil
      elseif m and (m == "get" or m == "post" or m == "put" or m == "patch"
                    or m == "delete") then
        current = { query = {}, responses = {}, lines = {} }
        in_success = false
        ops[m:upper() .. " " .. path] = current
        param = nil
      elseif current then
        current.lines[#current.lines + 1] = line
        if line:match("^      %- ") then param = {} end
        if line:match("^      %S") and not line:match("^      %- ") then param = nil end
        local field, value = line:match("^      [%- ] (%a+): (.-)%s*$")
        if param and field then
          param[field] = value
          if param["in"] == "query" and param.name then
            current.query[param.name] = true
            param = {}
          end
        end
        local code = line:match("^        '(%d%d%d)':")
        if code then
          current.responses[tonumber(code)] = true
          in_success = code:sub(1, 1) == "2"
        elseif in_success then
          -- the success answer's schema: a type, a definition, or a shared response
          local t = line:match("^            type: (%a+)")
          local def = line:match("^            %$ref: '#/definitions/([%w_]+)'")
          local response = line:match("^          %$ref: '#/responses/([%w_]+)'")
          if t or def or response then
            current.answer = current.answer or { type = t, def = def, response = response }
          end
          if line:match("^        %S") or line:match("^      %S") then in_success = false end
        end
      end
    end
  end
  -- The types of the definitions, and the schema of the shared responses (`definitions:`
  -- and `responses:` at the top level, names at two spaces, their fields at four).
  local defs, responses, section, name = {}, {}, nil, nil
  for line in text:gmatch("([^\n]*)\n?") do
    if line:match("^%S") then section, name = line, nil
    else
      local n = line:match("^  ([%w_]+):%s*$")
      if n then name = n
      elseif name and section == "definitions:" then
        local t = line:match("^    type: (%a+)")
        if t and not defs[name] then defs[name] = t end
      elseif name and section == "responses:" then
        local def = line:match("^      %$ref: '#/definitions/([%w_]+)'")
        if def and not responses[name] then responses[name] = def end
      end
    end
  end
  for _, op in pairs(ops) do
    local a = op.answer
    if a then
      local def = a.def or (a.response and responses[a.response])
      op.answer = a.type or (def and defs[def]) or nil
    end
  end
  -- Scopes are stated in the description: "Scope: X" or "Scopes: A, B, C". Long quoted
  -- descriptions are folded over lines ending in "\" and continuing with "\ ".
  for _, op in pairs(ops) do
    local joined = table.concat(op.lines, "\n"):gsub("\\\n%s*\\?", ""):gsub("\\n", "\n")
    op.scopes = {}
    for list in joined:gmatch("%f[%w]Scopes?:[ \t]*([%u_][%u_, \t]*)") do
      for scope in list:gmatch("[%u_]+") do op.scopes[#op.scopes + 1] = scope end
    end
    op.lines = nil
  end
  return ops
end

local spec = read_spec()

local function keys(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function contains(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

if not spec then
  describe("operations.lua against SAP's API definition", function()
    pending("not run: " .. SPEC_PATH .. " is not there (set SAPWF_API_DEFINITION to its path)")
  end)
else
  describe("the spec reader", function()
    -- Guards the reader itself: if it found nothing, every check below would pass vacuously.
    it("finds the spec's operations, query names, responses and scopes", function()
      local start = spec["POST /v1/workflow-instances"]
      assert.truthy(start)
      assert.same({ "WORKFLOW_INSTANCE_START" }, start.scopes)
      assert.is_true(start.responses[201])
      assert.is_true(spec["GET /v1/workflow-instances"].query["$top"])
      assert.is_true(spec["GET /v1/forms"].query["type"])
      assert.same({ "FORM_DEFINITION_GET" }, spec["GET /v1/forms"].scopes)  -- a folded one
      assert.same({ "WORKFLOW_INSTANCE_CANCEL", "WORKFLOW_INSTANCE_RETRY_RESUME",
                    "WORKFLOW_INSTANCE_SUSPEND" },
                  spec["PATCH /v1/workflow-instances/{workflowInstanceId}"].scopes)
      assert.equal(41, #keys(spec))   -- 44 in operations.lua: two PATCHes serve 5 calls
      assert.equal("object", start.answer)                                 -- a definition
      assert.equal("array", spec["GET /v1/workflow-instances"].answer)     -- a type
      assert.equal("object", spec["GET /v1/task-instances/{taskInstanceId}/form"].answer)
      assert.is_nil(spec["PATCH /v1/workflow-instances/{workflowInstanceId}"].answer)
    end)
  end)

  describe("operations.lua conforms to the spec", function()
    for _, op in ipairs(operations.list) do
      local key = op.method .. " " .. op.path
      describe(op.name, function()
        local s = spec[key]

        it("exists as " .. key, function()
          assert.is_table(s, key .. " is not in the spec")
        end)

        it("takes exactly the spec's query names", function()
          local expected = {}
          local custom = false
          for name in pairs(s.query) do
            if name:match("^attributes%.") then custom = true else expected[name] = true end
          end
          assert.same(keys(expected), keys(op.query_names))
          assert.equal(custom, op.attributes == true)
        end)

        it("expects success statuses the spec lists", function()
          for _, status in ipairs(op.success) do
            assert.is_true(s.responses[status] == true,
                           key .. " has no " .. status .. " in the spec")
          end
        end)

        it("expects the JSON type of the spec's success answer", function()
          -- base.call refuses a 2xx of another type: null or [] where an instance is due
          if op.body == "json" then
            assert.is_string(s.answer, key .. " has no answer schema in the spec")
            assert.equal(s.answer, op.answer)
          else
            assert.is_nil(op.answer)
          end
        end)

        it("needs the spec's scope", function()
          if #s.scopes == 0 then
            assert.is_true(op.inferred, key .. " states no scope: mark the authority inferred")
          else
            assert.is_nil(op.inferred)
            assert.is_true(contains(s.scopes, op.authority),
                           op.authority .. " is not among " .. table.concat(s.scopes, ", "))
          end
          assert.is_true(contains(operations.authorities, op.authority))
        end)
      end)
    end

    it("covers every operation of the spec", function()
      local ours = {}
      for _, op in ipairs(operations.list) do ours[op.method .. " " .. op.path] = true end
      for _, key in ipairs(keys(spec)) do
        assert.is_true(ours[key] == true, key .. " has no entry in operations.lua")
      end
    end)

    it("splits a shared method and path over exactly the spec's scopes", function()
      local by_key = {}
      for _, op in ipairs(operations.list) do
        local key = op.method .. " " .. op.path
        by_key[key] = by_key[key] or {}
        table.insert(by_key[key], op.authority)
      end
      for key, authorities in pairs(by_key) do
        if #spec[key].scopes > 1 then
          table.sort(authorities)
          local scopes = { (table.unpack or unpack)(spec[key].scopes) }
          table.sort(scopes)
          assert.same(scopes, authorities)
        end
      end
    end)

    it("lists every scope of the spec among the authorities, sorted and unique", function()
      for _, s in pairs(spec) do
        for _, scope in ipairs(s.scopes) do
          assert.is_true(contains(operations.authorities, scope), scope)
        end
      end
      for i = 2, #operations.authorities do
        assert.is_true(operations.authorities[i - 1] < operations.authorities[i])
      end
    end)
  end)
end

describe("operations.match", function()
  it("finds the operation of a concrete path", function()
    local found = operations.match("GET", "/v1/workflow-instances/abc/context")
    assert.equal(1, #found)
    assert.equal("context", found[1].name)
    assert.equal(0, #operations.match("GET", "/v1/workflow-instances/a/b/context"))
    assert.equal(0, #operations.match("GET", "/v1/nothing"))
  end)

  it("returns every operation that shares a method and path", function()
    local names = {}
    for i, op in ipairs(operations.match("PATCH", "/v1/task-instances/t1")) do
      names[i] = op.name
    end
    assert.same({ "complete_task", "update_task" }, names)
  end)
end)
