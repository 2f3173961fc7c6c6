-- Workflow instances against the emulator: start, list, read, context, status changes,
-- roles, attachments, bulk delete; ids that try to leave their path segment; JSON edge cases
-- through a real round trip.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

describe("instances", function()
  local emu, wf, limited

  setup(function()
    emu = helpers.start_emulator()
    wf = assert(sapwf.new{ service_key = emu:service_key("full") })
    limited = assert(sapwf.new{ service_key = emu:service_key("limited") })
  end)
  teardown(function()
    if wf then wf:close() end
    if limited then limited:close() end
    if emu then emu:stop() end
  end)
  before_each(function() emu:reset() end)

  local function ids(list)
    local out = {}
    for i, item in ipairs(list) do out[i] = item.id end
    return out
  end

  describe("start", function()
    it("starts with an empty context by default", function()
      local inst, meta = assert(wf:start("simple"))
      assert.equal(201, meta.status)
      assert.equal("RUNNING", inst.status)
      assert.equal("1", inst.definitionVersion)
      local ctx = assert(wf:context(inst.id))
      assert.same({}, ctx)
    end)

    it("answers not_found for an unknown definition, and nothing starts", function()
      local inst, err = wf:start("nope", { a = 1 })
      assert.is_nil(inst)
      assert.equal("not_found", err.kind)
      assert.equal("bpm.workflowruntime.rest.definition.not.found", err.code)
      assert.equal("rejected", err.outcome)
      assert.equal(0, emu:stats().instances_started)
    end)

    it("needs WORKFLOW_INSTANCE_START", function()
      local _, err = limited:start("simple")
      assert.equal("forbidden", err.kind)
      assert.equal("WORKFLOW_INSTANCE_START", err.authority)
    end)

    it("refuses a context that is not JSON, naming the path, before sending", function()
      local inst, err = wf:start("simple", { items = { { price = 1 }, { price = 2 },
                                                       { price = 0 / 0 } } })
      assert.is_nil(inst)
      assert.equal("invalid", err.kind)
      assert.equal("context.items[3].price: NaN is not JSON", err.message)
      assert.equal("not_sent", err.outcome)
      assert.equal("sapwf: invalid POST /v1/workflow-instances: context.items[3].price: NaN "
                   .. "is not JSON [code sapwf.json]", tostring(err))
      assert.equal(0, emu:stats().api_requests)
    end)
  end)

  describe("JSON round trips through start and context", function()
    it("keeps empty arrays, empty objects, null and nesting", function()
      local inst = assert(wf:start("simple", {
        list = sapwf.array{}, map = {}, nested = { sapwf.array{}, { deep = sapwf.array{ 1 } } },
        none = sapwf.null, text = "ü \"q\" \\ /", flag = false,
      }))
      local ctx = assert(wf:context(inst.id))
      assert.same({}, ctx.list)
      assert.equal(getmetatable(sapwf.array{}), getmetatable(ctx.list))
      assert.is_nil(getmetatable(ctx.map))
      assert.equal(sapwf.null, ctx.none)
      assert.equal("ü \"q\" \\ /", ctx.text)
      assert.is_false(ctx.flag)
      assert.same({ 1 }, ctx.nested[2].deep)
      -- Written back as read, the context stays the same JSON: [] stays [], {} stays {}
      -- (the decoder marks a table as array only when the text had []).
      assert.is_true(wf:replace_context(inst.id, ctx))
      local again = assert(wf:context(inst.id))
      assert.equal(getmetatable(sapwf.array{}), getmetatable(again.list))
      assert.is_nil(getmetatable(again.map))
    end)

    it("keeps fractions exactly", function()
      local inst = assert(wf:start("simple", { a = 0.1 + 0.2, pi = math.pi, tiny = 5e-324 }))
      local ctx = assert(wf:context(inst.id))
      assert.equal(0.1 + 0.2, ctx.a)
      assert.equal(math.pi, ctx.pi)
      assert.equal(5e-324, ctx.tiny)
    end)

    if math.type then
      for _, case in ipairs({
        { "2^53", math.tointeger(2^53) },
        { "9007199254740993", 9007199254740993 },
        { "-2^63", math.mininteger },
      }) do
        it("keeps the integer " .. case[1] .. " exact (Lua 5.3+)", function()
          local inst = assert(wf:start("simple", { n = case[2], list = { case[2] } }))
          local ctx = assert(wf:context(inst.id))
          assert.equal("integer", math.type(ctx.n))
          assert.equal(case[2], ctx.n)
          assert.equal(case[2], ctx.list[1])
        end)
      end
    end
  end)

  describe("instances", function()
    it("lists RUNNING and ERRONEOUS instances without a filter, newest first", function()
      local a = assert(wf:start("simple"))
      local b = assert(wf:start("failing"))
      local c = assert(wf:start("simple"))
      assert(wf:cancel(c.id))
      local list, meta = assert(wf:instances())
      assert.same({ b.id, a.id }, ids(list))
      assert.is_nil(meta.total)
    end)

    it("filters, repeats a parameter for a list (OR) and counts", function()
      local a = assert(wf:start("simple"))
      local b = assert(wf:start("failing"))
      local c = assert(wf:start("simple"))
      assert(wf:cancel(c.id))
      local list, meta = assert(wf:instances{ status = { "CANCELED", "ERRONEOUS" },
                                              orderby = "startedAt asc",
                                              inlinecount = "allpages" })
      assert.same({ b.id, c.id }, ids(list))
      assert.equal(2, meta.total)
      local simple = assert(wf:instances{ definitionId = "simple", status = "RUNNING" })
      assert.same({ a.id }, ids(simple))
      local top = assert(wf:instances{ top = 1, skip = 1, orderby = "startedAt asc",
                                       status = { "RUNNING", "ERRONEOUS", "CANCELED" } })
      assert.same({ b.id }, ids(top))
    end)

    it("filters by custom attribute and by text", function()
      local a = assert(wf:start("orderapproval", { product = "Lens", orderId = "A-1" }))
      assert(wf:start("orderapproval", { product = "Bag", orderId = "A-2" }))
      assert.same({ a.id }, ids(assert(wf:instances{ ["attributes.product"] = "Lens" })))
      assert.same({ a.id }, ids(assert(wf:instances{ containsText = "lens" })))
      assert.same({ a.id }, ids(assert(wf:instances{ businessKey = "A-1" })))
    end)

    it("escapes values so they stay one parameter", function()
      local a = assert(wf:start("orderapproval", { product = "X", orderId = "a&status=CANCELED" }))
      local list = assert(wf:instances{ businessKey = "a&status=CANCELED" })
      assert.same({ a.id }, ids(list))
    end)

    it("returns the service's 400 for a bad filter value", function()
      local _, err = wf:instances{ status = "SLEEPING" }
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
      local _, err2 = wf:instances{ top = 1001 }
      assert.matches("between 0 and 1000", err2.message)
    end)
  end)

  describe("instance", function()
    it("reads one, with attributes on request", function()
      local inst = assert(wf:start("orderapproval", { product = "Camera", orderId = "1" }))
      local plain = assert(wf:instance(inst.id))
      assert.is_nil(plain.attributes)
      local expanded = assert(wf:instance(inst.id, { expand = "attributes" }))
      assert.equal("product", expanded.attributes[1].id)
      assert.equal("Camera", expanded.attributes[1].value)
      local attributes = assert(wf:attributes(inst.id))
      assert.same(expanded.attributes, attributes)
    end)

    it("answers not_found for an unknown id", function()
      local _, err = wf:instance(string.rep("0", 36))
      assert.equal("not_found", err.kind)
      assert.equal("bpm.workflowruntime.rest.instance.not.found", err.code)
      assert.equal("/v1/workflow-instances/" .. string.rep("0", 36), err.path)
    end)
  end)

  describe("ids in paths", function()
    it("never reach another resource through / ? # or dot segments", function()
      local target = assert(wf:start("simple", { secret = "target" }))
      local other = assert(wf:start("simple", { secret = "other" }))
      -- Unescaped, libcurl would resolve ".." and reach `other`; escaped, it is one segment.
      local value, err = wf:context(target.id .. "/../" .. other.id)
      assert.is_nil(value)
      assert.equal("not_found", err.kind)
      assert.equal("/v1/workflow-instances/" .. target.id .. "%2F..%2F" .. other.id
                   .. "/context", err.path)
      for _, evil in ipairs({ other.id .. "?x=", other.id .. "#", "./" .. other.id:sub(3),
                              ("x/"):rep(18) }) do
        local v, e = wf:instance(evil)
        assert.is_nil(v)
        assert.is_true(e.kind == "not_found" or e.kind == "invalid", e.kind)
      end
      local _, e36 = wf:instance(("x/"):rep(18))   -- 36 characters: looked up, not found
      assert.equal("not_found", e36.kind)
      local stats = emu:stats().api_requests_by_operation
      assert.equal(5, stats["GET /v1/workflow-instances/{workflowInstanceId}"])
      assert.equal(1, stats["GET /v1/workflow-instances/{workflowInstanceId}/context"])
      assert.is_nil(stats.unknown)
    end)

    it("raise for ids that are dot segments or empty", function()
      assert.has_error(function() wf:instance("..") end,
                       "bad argument #1 to 'instance' (id '..' cannot name a resource)")
      assert.has_error(function() wf:cancel(".") end,
                       "bad argument #1 to 'cancel' (id '.' cannot name a resource)")
      assert.has_error(function() wf:task("") end,
                       "bad argument #1 to 'task' (id is empty and cannot name a resource)")
    end)
  end)

  describe("context", function()
    it("is merged by update_context and replaced by replace_context", function()
      local inst = assert(wf:start("simple", { a = 1, nested = { x = 1, y = 2 } }))
      local ok, meta = wf:update_context(inst.id, { b = 2, nested = { y = 3 } })
      assert.is_true(ok)
      assert.equal(204, meta.status)
      assert.same({ a = 1, b = 2, nested = { x = 1, y = 3 } }, assert(wf:context(inst.id)))
      assert.is_true(wf:replace_context(inst.id, { c = 3 }))
      assert.same({ c = 3 }, assert(wf:context(inst.id)))
    end)

    it("reports errors of each context call", function()
      local missing = string.rep("0", 36)
      local _, e1 = wf:context(missing)
      local _, e2 = wf:update_context(missing, { a = 1 })
      local _, e3 = wf:replace_context(missing, { a = 1 })
      for _, e in ipairs({ e1, e2, e3 }) do assert.equal("not_found", e.kind) end
      local _, e4 = wf:update_context(missing, { f = print })
      assert.equal("patch.f: a function is not JSON", e4.message)
      local _, e5 = limited:context(missing)
      assert.equal("WORKFLOW_INSTANCE_GET_CONTEXT", e5.authority)
      local _, e6 = limited:update_context(missing, {})
      assert.equal("WORKFLOW_INSTANCE_UPDATE_CONTEXT", e6.authority)
    end)
  end)

  describe("status changes", function()
    it("suspend, resume and cancel", function()
      local inst = assert(wf:start("simple"))
      local ok, meta = wf:suspend(inst.id)
      assert.is_true(ok)
      assert.equal(202, meta.status)
      assert.equal("SUSPENDED", assert(wf:instance(inst.id)).status)
      assert.is_true(wf:resume(inst.id))
      assert.equal("RUNNING", assert(wf:instance(inst.id)).status)
      assert.is_true(wf:cancel(inst.id))
      assert.equal("CANCELED", assert(wf:instance(inst.id)).status)
      local _, err = wf:resume(inst.id)
      assert.equal("invalid", err.kind)
      assert.equal(422, err.status)
      assert.equal("bpm.workflowruntime.rest.instance.status.invalid", err.code)
    end)

    it("need their own authorities", function()
      local inst = assert(wf:start("simple"))
      emu:set_client("sb-sapwf-limited!b1|workflow!b10150",
                     { authorities = { "WORKFLOW_INSTANCE_SUSPEND" } })
      local lim = assert(sapwf.new{ service_key = emu:service_key("limited") })
      assert.is_true(lim:suspend(inst.id))
      local _, e1 = lim:resume(inst.id)
      assert.equal("WORKFLOW_INSTANCE_RETRY_RESUME", e1.authority)
      local _, e2 = lim:cancel(inst.id)
      assert.equal("WORKFLOW_INSTANCE_CANCEL", e2.authority)
      assert.matches('%["WORKFLOW_INSTANCE_CANCEL","WORKFLOW_INSTANCE_SUSPEND"%]', e2.hint)
      lim:close()
    end)

    it("retry an erroneous instance; error_messages and execution_logs tell why", function()
      local inst = assert(wf:start("failing"))
      assert.equal("ERRONEOUS", inst.status)
      local messages = assert(wf:error_messages(inst.id))
      assert.equal(1, #messages)
      assert.equal("bpm.workflowruntime.hcp.destination.not.found", messages[1].errorCode)
      assert.is_true(wf:update_context(inst.id, { fixed = true }))
      assert.is_true(wf:resume(inst.id))
      assert.equal("COMPLETED", assert(wf:instance(inst.id)).status)
      local logs = assert(wf:execution_logs(inst.id))
      local types = {}
      for i, log in ipairs(logs) do types[i] = log.type end
      assert.same({ "WORKFLOW_STARTED", "SERVICETASK_FAILED",
                    "WORKFLOW_CONTEXT_PATCHED_BY_ADMIN", "WORKFLOW_RESUMED",
                    "WORKFLOW_COMPLETED" }, types)
      local _, err = limited:execution_logs(inst.id)
      assert.equal("WORKFLOW_INSTANCE_GET_EXECUTION_LOGS", err.authority)
      local _, err2 = limited:error_messages(inst.id)
      assert.equal("WORKFLOW_INSTANCE_GET_ERROR_MESSAGES", err2.authority)
    end)
  end)

  describe("roles", function()
    it("joins arrays with commas and reads them back", function()
      local inst = assert(wf:start("simple"))
      assert.is_true(wf:update_roles(inst.id, { viewerUsers = { "ann@x", "bob@x" },
                                                adminGroups = "Admins" }))
      local roles = assert(wf:roles(inst.id))
      assert.same({ "ann@x", "bob@x" }, roles.viewerUsers)
      assert.same({ "Admins" }, roles.adminGroups)
      local _, err = limited:update_roles(inst.id, {})
      assert.equal("WORKFLOW_INSTANCE_UPDATE_ROLES", err.authority)
      local _, err2 = limited:roles(inst.id)
      assert.equal("WORKFLOW_INSTANCE_GET_ROLES", err2.authority)
    end)
  end)

  describe("attachments", function()
    it("are replaced and read back", function()
      local inst = assert(wf:start("simple"))
      local attachments = { rootFolder = "f1", groups = { docs = { folder = "f2",
        refs = { { objectId = "o1" } } } } }
      assert.is_true(wf:update_attachments(inst.id, attachments))
      assert.same(attachments, assert(wf:attachments(inst.id)))
      local _, err = wf:attachments(string.rep("0", 36))
      assert.equal("not_found", err.kind)
    end)
  end)

  describe("delete_instances", function()
    it("deletes at once (200) or as a job (202)", function()
      local a = assert(wf:start("simple"))
      local ok, meta = wf:delete_instances({ a.id })
      assert.is_true(ok)
      assert.equal(200, meta.status)
      local _, err = wf:instance(a.id)
      assert.equal("not_found", err.kind)

      local many = {}
      for i = 1, 1001 do many[i] = string.format("%036d", i) end
      local job = assert(wf:delete_instances(many))
      assert.matches("^%x+%-", job.job)
      assert.is_table(assert(wf:job(job.job)))
    end)

    it("reports the service's refusal", function()
      local _, err = wf:delete_instances({ "short-id" })
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
      local _, err2 = limited:delete_instances({ string.rep("0", 36) })
      assert.equal("WORKFLOW_INSTANCES_UPDATE", err2.authority)
    end)
  end)
end)
