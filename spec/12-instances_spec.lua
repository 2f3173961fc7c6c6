-- Workflow instances against the emulator: start, list, read, context, status changes,
-- roles, attachments, bulk delete; ids that try to leave their path segment; JSON edge cases
-- through a real round trip.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

local unpack = table.unpack or unpack

describe("instances", function()
  local emu, wf, limited

  setup(function() emu, wf, limited = helpers.start_api() end)
  teardown(function() helpers.stop_api(emu, wf, limited) end)
  before_each(function() emu:reset() end)

  local ids = helpers.ids

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
      local b = assert(wf:start("orderapproval", { product = "Bag", orderId = "A-2" }))
      assert.same({ a.id }, ids(assert(wf:instances{ ["attributes.product"] = "Lens" })))
      assert.same({ a.id }, ids(assert(wf:instances{ containsText = "lens" })))
      -- a list is any of the texts (SAP's instance list ORs a repeated containsText)
      assert.same({ a.id, b.id }, ids(assert(wf:instances{ containsText = { "lens", "a-2" },
                                                           orderby = "startedAt asc" })))
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
      -- Escaped, a "/" in an id is data: the id stays one segment.
      local value, err = wf:context(target.id .. "/" .. other.id)
      assert.is_nil(value)
      assert.equal("not_found", err.kind)
      assert.equal("/v1/workflow-instances/" .. target.id .. "%2F" .. other.id
                   .. "/context", err.path)
      for _, evil in ipairs({ other.id .. "?x=", other.id .. "#", ("x/"):rep(18) }) do
        local v, e = wf:instance(evil)
        assert.is_nil(v)
        assert.is_true(e.kind == "not_found" or e.kind == "invalid", e.kind)
      end
      local _, e36 = wf:instance(("x/"):rep(18))   -- 36 characters: looked up, not found
      assert.equal("not_found", e36.kind)
      local stats = emu:stats().api_requests_by_operation
      assert.equal(4, stats["GET /v1/workflow-instances/{workflowInstanceId}"])
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
      -- Unescaped, libcurl would resolve ".." and reach another resource; escaped, a server
      -- or proxy that decodes "%2F" before it resolves the path would still.
      local before = emu:stats().api_requests
      for _, evil in ipairs({ "a/../b", "./x", "x/.", "x\\..\\y", "../../workflow-definitions" }) do
        assert.has_error(function() wf:context(evil) end,
                         "bad argument #1 to 'context' (id '" .. evil .. "' cannot name a resource)")
      end
      assert.has_error(function() wf:definition_version("simple", "1/..") end,
        "bad argument #2 to 'definition_version' (version '1/..' cannot name a resource)")
      assert.equal(before, emu:stats().api_requests)
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

    it("are bound at the start, beside the context, and read back", function()
      local attachments = { rootFolder = "f1", groups = { docs = { folder = "f2",
        refs = { { objectId = "o1" }, { objectId = "o2" } } } } }
      local inst = assert(wf:start("simple", { order = 7 }, attachments))
      assert.same(attachments, assert(wf:attachments(inst.id)))
      assert.same({ order = 7 }, assert(wf:context(inst.id)))
      -- none given: none sent, and the instance has none
      local plain = assert(wf:start("simple", nil, nil))
      assert.same({}, assert(wf:attachments(plain.id)))
      assert.same({}, assert(wf:context(plain.id)))
    end)

    it("at the start: not JSON, or an array, is refused before sending", function()
      local inst, err = wf:start("simple", {}, { rootFolder = 0 / 0 })
      assert.is_nil(inst)
      assert.equal("invalid", err.kind)
      assert.equal("attachments.rootFolder: NaN is not JSON", err.message)
      assert.equal("not_sent", err.outcome)
      assert.equal(0, emu:stats().api_requests)
      inst, err = wf:start("simple", {}, { "a" })
      assert.is_nil(inst)
      assert.equal("invalid", err.kind)
      assert.equal("attachments: a JSON object expected, got an array", err.message)
      assert.equal("not_sent", err.outcome)
      assert.equal(0, emu:stats().api_requests)
      assert.has_error(function() wf:start("simple", {}, "f1") end,
                       "bad argument #3 to 'start' (table expected, got string)")
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

      -- nothing to delete (a query found none): true, and no request (README)
      local before = emu:stats().api_requests
      local none, none_meta = wf:delete_instances({})
      assert.is_true(none)
      assert.same({}, none_meta)
      assert.equal(before, emu:stats().api_requests)
    end)

    it("raises for what SAP's limits refuse, before sending; reports the service's refusal",
      function()
      local before = emu:stats().api_requests
      assert.has_error(function() wf:delete_instances({ string.rep("0", 36), "short-id" }) end,
        "bad argument #1 to 'delete_instances' (ids[2]: an instance id has 36 characters, "
        .. "got 8)")
      local many = {}
      for i = 1, 10001 do many[i] = string.format("%036d", i) end
      assert.has_error(function() wf:delete_instances(many) end,
        "bad argument #1 to 'delete_instances' (10001 ids: at most 10000 in one call (SAP's "
        .. "limit); split the list)")
      many[10001] = nil
      assert.is_table((wf:delete_instances(many)))      -- 10000: a job
      assert.equal(before + 1, emu:stats().api_requests)
      emu:fault{ fault = "status", status = 400, method = "PATCH",
                 path = "/v1/workflow-instances", times = 1 }
      local _, err = wf:delete_instances({ string.rep("0", 36) })
      emu:clear_faults()
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
      local _, err2 = limited:delete_instances({ string.rep("0", 36) })
      assert.equal("WORKFLOW_INSTANCES_UPDATE", err2.authority)
    end)
  end)

  describe("status changes in detail", function()
    it("cancel ends the instance and its open task; later status changes are 422", function()
      local inst = assert(wf:start("orderapproval", { product = "Lens", orderId = "7" }))
      local task = assert(wf:tasks{ workflowInstanceId = inst.id })[1]
      local ok, meta = wf:cancel(inst.id)
      assert.is_true(ok)
      assert.equal(202, meta.status)
      local canceled = assert(wf:instance(inst.id))
      assert.equal("CANCELED", canceled.status)
      assert.is_string(canceled.completedAt)
      assert.equal("CANCELED", assert(wf:task(task.id)).status)
      for _, name in ipairs({ "cancel", "suspend", "resume" }) do
        local again, err = wf[name](wf, inst.id)
        assert.is_nil(again, name)
        assert.equal("invalid", err.kind, name)
        assert.equal(422, err.status, name)
        assert.equal("bpm.workflowruntime.rest.instance.status.invalid", err.code, name)
        assert.equal("PATCH", err.method, name)
        assert.equal("/v1/workflow-instances/" .. inst.id, err.path, name)
      end
      assert.equal("CANCELED", assert(wf:instance(inst.id)).status)
    end)

    it("suspend twice stays SUSPENDED; resuming a suspended erroneous one retries it", function()
      local inst = assert(wf:start("failing"))
      assert.is_true(wf:suspend(inst.id))
      assert.is_true(wf:suspend(inst.id))
      assert.equal("SUSPENDED", assert(wf:instance(inst.id)).status)
      assert.is_true(wf:resume(inst.id))
      -- The retry ran and failed the same way again.
      assert.equal("ERRONEOUS", assert(wf:instance(inst.id)).status)
      assert.equal(1, #assert(wf:error_messages(inst.id)))
    end)
  end)

  describe("execution_logs", function()
    it("records each change in order, by whom, with the context changes", function()
      local user = emu:service_key("full").uaa.clientid
      local inst = assert(wf:start("simple", { a = 1 }))
      assert(wf:suspend(inst.id))
      assert(wf:resume(inst.id))
      assert(wf:update_context(inst.id, { a = 2, b = 3 }))
      assert(wf:replace_context(inst.id, { c = 1 }))
      assert(wf:update_roles(inst.id, { viewerUsers = "ann" }))
      assert(wf:cancel(inst.id))
      local logs, meta = assert(wf:execution_logs(inst.id))
      assert.equal(200, meta.status)
      local types, previous = {}, -1
      for i, entry in ipairs(logs) do
        types[i] = entry.type
        assert.is_string(entry.id)                      -- ids are strings, in log order
        assert.is_true(tonumber(entry.id) > previous)
        previous = tonumber(entry.id)
        assert.equal(inst.id, entry.referenceInstanceId)
        assert.equal(user, entry.userId)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT", entry.timestamp)
      end
      assert.same({ "WORKFLOW_STARTED", "WORKFLOW_SUSPENDED", "WORKFLOW_RESUMED",
                    "WORKFLOW_CONTEXT_PATCHED_BY_ADMIN", "WORKFLOW_CONTEXT_OVERWRITTEN_BY_ADMIN",
                    "WORKFLOW_ROLES_PATCHED_BY_ADMIN", "WORKFLOW_CANCELED" }, types)
      assert.same({ create = { "b" }, update = { "a" } }, logs[4].changes)
      table.sort(logs[5].changes.delete)
      assert.same({ create = { "c" }, delete = { "a", "b" } }, logs[5].changes)
    end)
  end)

  describe("error_messages and attributes", function()
    it("tell what failed in an erroneous instance, and nothing for a healthy one", function()
      local failed = assert(wf:start("failing"))
      local messages, meta = assert(wf:error_messages(failed.id))
      assert.equal(200, meta.status)
      assert.equal(1, #messages)
      local m = messages[1]
      assert.equal("servicetask1", m.activityId)
      assert.equal("Call the ERP system", m.activityName)
      assert.matches("destination 'ERP' could not be found", m.message)
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", m.logId)
      -- The execution log's failure entry carries the same log id.
      local logs = assert(wf:execution_logs(failed.id))
      assert.equal("SERVICETASK_FAILED", logs[2].type)
      assert.equal(m.logId, logs[2].error.logId)

      local healthy = assert(wf:start("simple"))
      local none = assert(wf:error_messages(healthy.id))
      assert.same({}, none)
      assert.equal(getmetatable(sapwf.array{}), getmetatable(none))
    end)

    it("attributes are the definition's custom attributes with the context's values", function()
      local order = assert(wf:start("orderapproval", { product = "Lens", orderId = "A-9" }))
      local attributes, meta = assert(wf:attributes(order.id))
      assert.equal(200, meta.status)
      assert.same({ { id = "product", label = "Product", value = "Lens", type = "string" },
                    { id = "orderId", label = "Order ID", value = "A-9", type = "string" } },
                  attributes)
      assert.same({}, assert(wf:attributes(assert(wf:start("simple")).id)))
    end)
  end)

  describe("roles in detail", function()
    it("replace only the roles given; {} and \"\" clear one", function()
      local inst = assert(wf:start("simple"))
      local empty = assert(wf:roles(inst.id))
      for _, name in ipairs({ "viewerUsers", "viewerGroups", "adminUsers", "adminGroups",
                              "contextViewerUsers", "contextViewerGroups",
                              "contextAdminUsers", "contextAdminGroups" }) do
        assert.same({}, empty[name], name)
      end
      assert.is_true(wf:update_roles(inst.id, { viewerUsers = { "ann@x", "bob@x" },
        viewerGroups = "G1", adminUsers = { "root@x" },
        contextAdminGroups = { "CA1", "CA2", "CA3" } }))
      local ok, meta = wf:update_roles(inst.id, { viewerUsers = {}, adminUsers = "" })
      assert.is_true(ok)
      assert.equal(204, meta.status)
      local roles = assert(wf:roles(inst.id))
      assert.same({}, roles.viewerUsers)
      assert.same({}, roles.adminUsers)
      assert.same({ "G1" }, roles.viewerGroups)
      assert.same({ "CA1", "CA2", "CA3" }, roles.contextAdminGroups)
    end)

    it("returns the service's 400 for more than 100 members, changing nothing", function()
      local inst = assert(wf:start("simple"))
      assert(wf:update_roles(inst.id, { viewerUsers = "ann@x" }))
      local many = {}
      for i = 1, 101 do many[i] = "user" .. i .. "@x" end
      local ok, err = wf:update_roles(inst.id, { viewerUsers = many })
      assert.is_nil(ok)
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
      assert.equal("At most 100 users or groups can be assigned to viewerUsers", err.message)
      assert.same({ "ann@x" }, assert(wf:roles(inst.id)).viewerUsers)
    end)
  end)

  describe("contexts and attachments that are not objects", function()
    it("are refused before sending, as the service refuses them (400): nothing changes",
       function()
      local inst = assert(wf:start("simple", { keep = true }))
      assert(wf:update_attachments(inst.id, { rootFolder = "f1" }))
      local cases = {
        { "update_context", "PATCH", "/context", "patch" },
        { "replace_context", "PUT", "/context", "context" },
        { "update_attachments", "PUT", "/attachments", "attachments" },
      }
      for _, case in ipairs(cases) do
        local path = "/v1/workflow-instances/" .. inst.id .. case[3]
        local before = emu:stats().api_requests
        local ok, err = wf[case[1]](wf, inst.id, { "a", "b" })  -- a JSON array
        assert.is_nil(ok, case[1])
        assert.same({ "invalid", "sapwf.json", "not_sent", case[2], path },
                    { err.kind, err.code, err.outcome, err.method, err.path }, case[1])
        assert.equal(case[4] .. ": a JSON object expected, got an array", err.message)
        assert.equal(before, emu:stats().api_requests, case[1])
        -- what the service answers, sent all the same
        ok, err = wf:request(case[2], path, { body = { "a", "b" } })
        assert.is_nil(ok, case[1])
        assert.equal(400, err.status, case[1])
        assert.equal("bpm.workflowruntime.rest.content.format.invalid", err.code, case[1])
      end
      assert.same({ keep = true }, assert(wf:context(inst.id)))
      assert.same({ rootFolder = "f1" }, assert(wf:attachments(inst.id)))
    end)

    it("update_attachments replaces, never merges", function()
      local inst = assert(wf:start("simple"))
      assert(wf:update_attachments(inst.id, { rootFolder = "f1", groups = { a = 1 } }))
      local ok, meta = wf:update_attachments(inst.id, { rootFolder = "f2" })
      assert.is_true(ok)
      assert.equal(204, meta.status)
      assert.same({ rootFolder = "f2" }, assert(wf:attachments(inst.id)))
    end)
  end)

  describe("delete_instances in detail", function()
    it("deletes exactly the ids given; unknown ids of the right length are ignored", function()
      local a = assert(wf:start("simple"))
      local b = assert(wf:start("simple"))
      local c = assert(wf:start("simple"))
      assert.is_true(wf:delete_instances({ a.id, c.id, string.rep("0", 36) }))
      for _, gone in ipairs({ a, c }) do
        local _, err = wf:context(gone.id)
        assert.equal("not_found", err.kind)
      end
      assert.same({ b.id }, ids(assert(wf:instances{ definitionId = "simple" })))
    end)

    it("follows a bulk delete job until it is gone", function()
      local many = {}
      for i = 1, 1001 do many[i] = string.format("%036d", i) end
      local result, meta = assert(wf:delete_instances(many))
      assert.equal(202, meta.status)
      assert.equal("/workflow-service/rest/v1/jobs/" .. result.job, result.location)
      local job = assert(wf:job(result.job))
      assert.equal("RUNNING", job.status)
      assert.equal(1001, job.details.instancesInitial)
      local _, err = wf:job(result.job)
      assert.equal("not_found", err.kind)
    end)
  end)

  -- Each call of the family with arguments naming an instance; `instance` is filled in.
  local ops = require("sapwf.operations").by_name
  local MISSING = string.rep("0", 36)

  local function by_id(id)
    return {
      { "instance", { id } }, { "instance", { id, { expand = "attributes" } } },
      { "context", { id } }, { "update_context", { id, { x = 1 } } },
      { "replace_context", { id, { x = 1 } } }, { "cancel", { id } }, { "suspend", { id } },
      { "resume", { id } }, { "attributes", { id } }, { "execution_logs", { id } },
      { "error_messages", { id } }, { "roles", { id } },
      { "update_roles", { id, { viewerUsers = { "a@x" } } } }, { "attachments", { id } },
      { "update_attachments", { id, { rootFolder = "f" } } },
    }
  end

  describe("every call of the family", function()
    it("answers not_found for an unknown instance id", function()
      for _, case in ipairs(by_id(MISSING)) do
        local name = case[1]
        local value, err = wf[name](wf, unpack(case[2]))
        assert.is_nil(value, name)
        assert.is_true(sapwf.is_error(err), name)
        assert.equal("not_found", err.kind, name)
        assert.equal(404, err.status, name)
        assert.equal("bpm.workflowruntime.rest.instance.not.found", err.code, name)
        assert.equal(ops[name].method, err.method, name)
        assert.equal((ops[name].path:gsub("{workflowInstanceId}", MISSING)), err.path, name)
        assert.equal("rejected", err.outcome, name)
      end
    end)

    it("answers forbidden naming operations.lua's authority for the limited client", function()
      local inst = assert(wf:start("simple", { keep = 1 }))
      local cases = by_id(inst.id)
      cases[#cases + 1] = { "instances", { { definitionId = "simple" } } }
      cases[#cases + 1] = { "start", { "simple", { a = 1 } } }
      cases[#cases + 1] = { "delete_instances", { { inst.id } } }
      for _, case in ipairs(cases) do
        local name = case[1]
        local op = ops[name]
        local value, err = limited[name](limited, unpack(case[2]))
        assert.is_nil(value, name)
        assert.equal("forbidden", err.kind, name)
        assert.equal(403, err.status, name)
        assert.equal(op.authority, err.authority, name)
        assert.equal(op.method, err.method, name)
        assert.truthy(err.hint:find('"' .. op.authority .. '"', 1, true), name)
      end
      -- Nothing that was refused happened.
      local after = assert(wf:instance(inst.id))
      assert.equal("RUNNING", after.status)
      assert.same({ keep = 1 }, assert(wf:context(inst.id)))
      assert.same({}, assert(wf:roles(inst.id)).viewerUsers)
      assert.same({}, assert(wf:attachments(inst.id)))
      assert.equal(1, emu:stats().instances_started)
    end)

    it("raise for wrong argument types, naming the argument, at the caller's line", function()
      local cases = {
        { function() wf:start(5) end, "bad argument #1 to 'start' (string expected, got number)" },
        { function() wf:start("simple", true) end,
          "bad argument #2 to 'start' (table expected, got boolean)" },
        { function() wf:instances(true) end,
          "bad argument #1 to 'instances' (table expected, got boolean)" },
        { function() wf:instance(nil) end,
          "bad argument #1 to 'instance' (string expected, got nil)" },
        { function() wf:instance("x", "attributes") end,
          "bad argument #2 to 'instance' (table expected, got string)" },
        { function() wf:instance("x", { top = 1 }) end,
          "bad argument #2 to 'instance' (unknown query name 'top'; instance takes expand)" },
        { function() wf:context(5) end,
          "bad argument #1 to 'context' (string expected, got number)" },
        { function() wf:update_context(nil, {}) end,
          "bad argument #1 to 'update_context' (string expected, got nil)" },
        { function() wf:update_context("x", "a=1") end,
          "bad argument #2 to 'update_context' (table expected, got string)" },
        { function() wf:replace_context(1, {}) end,
          "bad argument #1 to 'replace_context' (string expected, got number)" },
        { function() wf:replace_context("x", nil) end,
          "bad argument #2 to 'replace_context' (table expected, got nil)" },
        { function() wf:cancel(nil) end, "bad argument #1 to 'cancel' (string expected, got nil)" },
        { function() wf:suspend(5) end,
          "bad argument #1 to 'suspend' (string expected, got number)" },
        { function() wf:suspend("..") end,
          "bad argument #1 to 'suspend' (id '..' cannot name a resource)" },
        { function() wf:resume({}) end,
          "bad argument #1 to 'resume' (string expected, got table)" },
        { function() wf:attributes(true) end,
          "bad argument #1 to 'attributes' (string expected, got boolean)" },
        { function() wf:execution_logs(nil) end,
          "bad argument #1 to 'execution_logs' (string expected, got nil)" },
        { function() wf:error_messages(1) end,
          "bad argument #1 to 'error_messages' (string expected, got number)" },
        { function() wf:roles(nil) end, "bad argument #1 to 'roles' (string expected, got nil)" },
        { function() wf:update_roles("x", "viewerUsers=a") end,
          "bad argument #2 to 'update_roles' (table expected, got string)" },
        { function() wf:update_roles("x", { viewerUsers = { "a", false } }) end,
          "bad argument #2 to 'update_roles' (viewerUsers[2]: string expected, got boolean)" },
        -- the service splits the joined list at commas: one name would become two, and
        -- {""} would clear the list
        { function() wf:update_roles("x", { viewerUsers = { "ann@x", "Doe, John" } }) end,
          "bad argument #2 to 'update_roles' (viewerUsers[2]: a name cannot hold a comma "
          .. "(the service splits the list at commas))" },
        { function() wf:update_roles("x", { adminGroups = { "" } }) end,
          "bad argument #2 to 'update_roles' (adminGroups[1]: empty name)" },
        { function() wf:update_roles("x", { viewerUsers = 5 }) end,
          "bad argument #2 to 'update_roles' (viewerUsers: string or list of strings "
          .. "expected, got number)" },
        { function() wf:attachments(nil) end,
          "bad argument #1 to 'attachments' (string expected, got nil)" },
        { function() wf:update_attachments("x", "f1") end,
          "bad argument #2 to 'update_attachments' (table expected, got string)" },
        { function() wf:update_attachments("", {}) end,
          "bad argument #1 to 'update_attachments' (id is empty and cannot name a resource)" },
        { function() wf:delete_instances("id") end,
          "bad argument #1 to 'delete_instances' (table expected, got string)" },
        { function() wf:delete_instances({ "" }) end,
          "bad argument #1 to 'delete_instances' (ids[1]: non-empty string expected, got \"\")" },
      }
      helpers.assert_raises_here(cases, "12%-instances_spec%.lua$")
      assert.equal(0, emu:stats().api_requests)
    end)
  end)
end)
