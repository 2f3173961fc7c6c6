-- User tasks, task definitions and messages against the emulator.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

local unpack = table.unpack or unpack

describe("tasks and messages", function()
  local emu, wf, limited

  setup(function() emu, wf, limited = helpers.start_api() end)
  teardown(function() helpers.stop_api(emu, wf, limited) end)
  before_each(function() emu:reset() end)

  local MISSING = string.rep("0", 36)

  -- An orderapproval instance and its one task.
  local function order(product, order_id)
    local inst = assert(wf:start("orderapproval", { product = product or "Camera", price = 100,
                                                    orderId = order_id or "4711" }))
    local tasks = assert(wf:tasks{ workflowInstanceId = inst.id })
    assert.equal(1, #tasks)
    return inst, tasks[1]
  end

  describe("tasks", function()
    it("lists tasks with filters, paging and a total", function()
      local _, t1 = order("Camera", "1")
      local _, t2 = order("Lens", "2")
      local list, meta = assert(wf:tasks{ inlinecount = true })
      assert.equal(2, #list)
      assert.equal(2, meta.total)
      assert.equal(t1.id, list[1].id)                  -- createdAt asc by default
      local lens = assert(wf:tasks{ containsText = "lens" })
      assert.equal(t2.id, lens[1].id)
      assert.equal(1, #lens)
      local by_group = assert(wf:tasks{ recipientGroups = "OrderApprovers", status = "READY",
                                        orderby = "createdAt desc", top = 1 })
      assert.equal(t2.id, by_group[1].id)
      assert.equal("approve@orderapproval", by_group[1].definitionId)
      local by_attribute = assert(wf:tasks{ ["attributes.price"] = "100" })
      assert.equal(2, #by_attribute)
      local _, err = wf:tasks{ priority = "URGENT" }
      assert.equal("invalid", err.kind)
    end)

    it("reads a task with attributes, its context, attributes and attachments", function()
      local inst, task = order()
      local plain = assert(wf:task(task.id))
      assert.equal("READY", plain.status)
      assert.equal(inst.id, plain.workflowInstanceId)
      assert.is_nil(plain.attributes)
      local expanded = assert(wf:task(task.id, { expand = "attributes" }))
      assert.equal("price", expanded.attributes[1].id)
      assert.same(expanded.attributes, assert(wf:task_attributes(task.id)))
      assert.same({ product = "Camera", price = 100, orderId = "4711" },
                  assert(wf:task_context(task.id)))
      assert.same({}, assert(wf:task_attachments(task.id)))
    end)

    it("reads the task form and its model", function()
      local _, task = order()
      local form = assert(wf:task_form(task.id))
      assert.equal("approvalform", form.id)
      local model = assert(wf:task_form_model(task.id))
      assert.equal("approvalform", model.id)
      assert.equal("approve", model.decisions[1].id)
    end)

    it("answers not_found and forbidden for each task read", function()
      for _, name in ipairs({ "task", "task_context", "task_attributes", "task_attachments",
                              "task_form", "task_form_model" }) do
        local value, err = wf[name](wf, MISSING)
        assert.is_nil(value, name)
        assert.equal("not_found", err.kind, name)
      end
      local _, task = order()
      local expected = { task = "TASK_GET", task_context = "TASK_GET_CONTEXT",
        task_attributes = "TASK_GET_ATTRIBUTES", task_attachments = "TASK_GET_ATTACHMENTS",
        task_form = "TASK_GET_FORM", task_form_model = "TASK_GET_FORM_MODEL" }
      emu:set_client("sb-sapwf-limited!b1|workflow!b10150", { authorities = emu.NONE })
      local none = assert(sapwf.new{ service_key = emu:service_key("limited") })
      for name, authority in pairs(expected) do
        local _, err = none[name](none, task.id)
        assert.equal("forbidden", err.kind, name)
        assert.equal(authority, err.authority, name)
      end
      none:close()
    end)
  end)

  describe("update_task and complete_task", function()
    it("claims and releases with processor, and joins recipient lists", function()
      local _, task = order()
      local ok, meta = wf:update_task(task.id, { processor = "ann", priority = "HIGH",
                                                 recipientUsers = { "ann", "bob" } })
      assert.is_true(ok)
      assert.equal(204, meta.status)
      local claimed = assert(wf:task(task.id))
      assert.equal("RESERVED", claimed.status)
      assert.equal("ann", claimed.processor)
      assert.equal("HIGH", claimed.priority)
      assert.same({ "ann", "bob" }, claimed.recipientUsers)
      assert.is_true(wf:update_task(task.id, { processor = "" }))
      assert.equal("READY", assert(wf:task(task.id)).status)
    end)

    it("reports the service's 422 with its details", function()
      local _, task = order()
      local ok, err = wf:update_task(task.id, { dueDate = "next Tuesday" })
      assert.is_nil(ok)
      assert.equal("invalid", err.kind)
      assert.equal(422, err.status)
      assert.equal("bpm.workflowruntime.rest.task.change.property.invalid", err.code)
      assert.matches("not a date%-time", err.details[1].message)
    end)

    it("completes a task, merging the context; completing twice fails", function()
      local inst, task = order()
      assert.is_true(wf:complete_task(task.id, { approved = true, note = sapwf.array{} }))
      local t = assert(wf:task(task.id))
      assert.equal("COMPLETED", t.status)
      local ctx = assert(wf:context(inst.id))
      assert.is_true(ctx.approved)
      local _, err = wf:complete_task(task.id)
      assert.equal("invalid", err.kind)
      assert.equal(422, err.status)
    end)

    it("completes without a context, and update_task with status completes too", function()
      local _, a = order("A", "1")
      local _, b = order("B", "2")
      assert.is_true(wf:complete_task(a.id))
      assert.is_true(wf:update_task(b.id, { status = "COMPLETED", context = { x = 1 } }))
      assert.equal("COMPLETED", assert(wf:task(b.id)).status)
    end)

    -- SAP Build Process Automation's approval forms: the button pressed is the decision.
    it("completes with a decision the task's form offers; refuses one it does not", function()
      local inst, task = order()
      local model = assert(wf:task_form_model(task.id))
      assert.equal("approve", model.decisions[1].id)
      local _, err = wf:complete_task(task.id, nil, { decision = "maybe" })
      assert.equal("invalid", err.kind)
      assert.equal(422, err.status)
      assert.matches("not one of the task's decisions: approve, reject", err.details[1].message,
                     1, true)
      assert.equal("READY", assert(wf:task(task.id)).status)
      assert.is_true(wf:complete_task(task.id, { note = "ok" }, { decision = "approve" }))
      assert.equal("COMPLETED", assert(wf:task(task.id)).status)
      local completed
      for _, entry in ipairs(assert(wf:execution_logs(inst.id))) do
        if entry.type == "USERTASK_COMPLETED" then completed = entry end
      end
      assert.equal("approve", completed.decision)
      assert.equal("ok", assert(wf:context(inst.id)).note)
      local _, b = order("B", "2")
      assert.is_true(wf:update_task(b.id, { status = "COMPLETED", decision = "reject" }))
      assert.equal("COMPLETED", assert(wf:task(b.id)).status)
    end)

    it("raises for a decision that is no string, or without completing", function()
      local _, task = order()
      helpers.assert_raises_here({
        { function() wf:complete_task(task.id, nil, { decision = 1 }) end,
          "bad argument #3 to 'complete_task' (decision: non-empty string expected, got number)" },
        { function() wf:complete_task(task.id, nil, { decision = "" }) end,
          "bad argument #3 to 'complete_task' (decision: non-empty string expected, got \"\")" },
        { function() wf:complete_task(task.id, nil, { choice = "approve" }) end,
          "bad argument #3 to 'complete_task' (unknown option 'choice' (decision))" },
        { function() wf:complete_task(task.id, nil, "approve") end,
          "bad argument #3 to 'complete_task' (table expected, got string)" },
        { function() wf:update_task(task.id, { decision = "approve" }) end,
          "bad argument #2 to 'update_task' (decision goes with status = \"COMPLETED\")" },
      }, "13%-tasks_messages_spec")
      assert.equal("READY", assert(wf:task(task.id)).status)
    end)

    it("answers conflict while the instance is suspended (retryable)", function()
      local inst, task = order()
      assert(wf:suspend(inst.id))
      local _, err = wf:complete_task(task.id, {})
      assert.equal("conflict", err.kind)
      assert.equal(409, err.status)
      assert.is_true(err.retryable)
    end)

    it("needs TASK_COMPLETE to complete and TASK_UPDATE for other changes", function()
      local _, task = order()
      local _, e1 = limited:complete_task(task.id, { a = 1 })
      assert.equal("TASK_COMPLETE", e1.authority)
      local _, e2 = limited:update_task(task.id, { processor = "x" })
      assert.equal("TASK_UPDATE", e2.authority)
      local _, e3 = limited:update_task(task.id, { status = "COMPLETED" })
      assert.equal("TASK_COMPLETE", e3.authority)
      local _, e4 = wf:complete_task(task.id, { bad = 0 / 0 })
      assert.equal("context.bad: NaN is not JSON", e4.message)
    end)
  end)

  describe("task_definitions", function()
    it("lists task definitions with their attribute definitions on request", function()
      local list, meta = assert(wf:task_definitions{ inlinecount = true })
      assert.equal(1, #list)
      assert.equal(1, meta.total)
      assert.equal("approve@orderapproval", list[1].id)
      assert.is_nil(list[1].attributeDefinitions)
      local expanded = assert(wf:task_definitions{ expand = "attributeDefinitions" })
      assert.equal("price", expanded[1].attributeDefinitions[1].id)
      local _, err = wf:task_definitions{ expand = "attributes" }
      assert.equal("invalid", err.kind)
      emu:set_client("sb-sapwf-limited!b1|workflow!b10150", { authorities = emu.NONE })
      local none = assert(sapwf.new{ service_key = emu:service_key("limited") })
      local _, err2 = none:task_definitions()
      assert.equal("TASK_DEFINITION_GET", err2.authority)
      none:close()
    end)
  end)

  describe("send_message", function()
    it("reaches the instances waiting for it, by definition and business key", function()
      local a, ta = order("A", "key-1")
      local b, tb = order("B", "key-1")
      local c, tc = order("C", "key-2")
      for _, t in ipairs({ ta, tb, tc }) do assert(wf:complete_task(t.id)) end
      local consumed, meta = assert(wf:send_message{ definitionId = "orderShipped",
        workflowDefinitionId = "orderapproval", businessKey = "key-1" })
      assert.equal(200, meta.status)
      local got = { consumed[1].id, consumed[2].id }
      table.sort(got)
      local want = { a.id, b.id }
      table.sort(want)
      assert.same(want, got)
      assert.equal("COMPLETED", assert(wf:instance(a.id)).status)
      assert.equal("RUNNING", assert(wf:instance(c.id)).status)
    end)

    it("fails with 422 when no instance waits for it", function()
      local inst = order()
      local consumed, err = wf:send_message{ definitionId = "orderShipped",
                                             workflowInstanceId = inst.id }
      assert.is_nil(consumed)
      assert.equal("invalid", err.kind)
      assert.equal(422, err.status)
      assert.equal("bpm.workflowruntime.rest.message.no.match", err.code)
      assert.equal("rejected", err.outcome)
      local _, err2 = limited:send_message{ definitionId = "m", workflowInstanceId = inst.id }
      assert.equal("MESSAGE_SEND", err2.authority)
    end)

    it("raises before sending when the addressing rule is broken", function()
      local cases = {
        { "x", "bad argument #1 to 'send_message' (table expected, got string)" },
        { { workflowInstanceId = "i" },
          "bad argument #1 to 'send_message' (field 'definitionId' (the message name) is "
          .. "required)" },
        { { definitionId = "m" },
          "bad argument #1 to 'send_message' (field 'workflowInstanceId', or "
          .. "'workflowDefinitionId' with 'businessKey', is required)" },
        { { definitionId = "m", workflowInstanceId = "i", businessKey = "k" },
          "bad argument #1 to 'send_message' (give either workflowInstanceId or "
          .. "workflowDefinitionId with businessKey, not both)" },
        { { definitionId = "m", workflowDefinitionId = "d" },
          "bad argument #1 to 'send_message' (field 'businessKey' is required with "
          .. "workflowDefinitionId)" },
        { { definitionId = "m", businessKey = "k" },
          "bad argument #1 to 'send_message' (field 'workflowDefinitionId' is required with "
          .. "businessKey)" },
        { { definitionId = "m", workflowInstanceId = 5 },
          "bad argument #1 to 'send_message' (field 'workflowInstanceId' must be a string, "
          .. "got number)" },
        { { definitionId = "m", workflowInstanceId = "i", context = "c" },
          "bad argument #1 to 'send_message' (field 'context' must be a table, got string)" },
        -- an empty address: a script's empty business key would reach every instance
        -- waiting without one
        { { definitionId = "m", workflowDefinitionId = "d", businessKey = "" },
          "bad argument #1 to 'send_message' (field 'businessKey' is empty)" },
        { { definitionId = "m", workflowDefinitionId = "", businessKey = "k" },
          "bad argument #1 to 'send_message' (field 'workflowDefinitionId' is empty)" },
        { { definitionId = "m", workflowInstanceId = "" },
          "bad argument #1 to 'send_message' (field 'workflowInstanceId' is empty)" },
        { { definitionId = "m", workflowInstanceId = "i", contxt = {} },
          "bad argument #1 to 'send_message' (unknown field 'contxt'; known: businessKey, "
          .. "context, definitionId, workflowDefinitionId, workflowInstanceId)" },
      }
      for _, case in ipairs(cases) do
        assert.has_error(function() wf:send_message(case[1]) end, case[2])
      end
      assert.equal(0, emu:stats().api_requests)
    end)

    it("returns an invalid context as nil, err before sending", function()
      local _, err = wf:send_message{ definitionId = "m", workflowInstanceId = "i",
                                      context = { f = print } }
      assert.equal("invalid", err.kind)
      assert.equal("message.context.f: a function is not JSON", err.message)
      assert.equal(0, emu:stats().api_requests)
    end)
  end)

  describe("update_task in detail", function()
    it("changes subject, description, due date and recipients, as task() then shows", function()
      local inst, task = order()
      local ok, meta = wf:update_task(task.id, { subject = "Check the lens order",
        description = "Look at the price", dueDate = "2030-01-31T12:00:00.000Z",
        recipientGroups = { "Buyers", "Approvers" }, recipientUsers = "carl" })
      assert.is_true(ok)
      assert.equal(204, meta.status)
      local changed = assert(wf:task(task.id))
      assert.equal("Check the lens order", changed.subject)
      assert.equal("Look at the price", changed.description)
      assert.equal("2030-01-31T12:00:00.000Z", changed.dueDate)
      assert.same({ "Buyers", "Approvers" }, changed.recipientGroups)
      assert.same({ "carl" }, changed.recipientUsers)
      assert.equal("READY", changed.status)             -- not claimed: no processor given
      assert.equal(task.createdAt, changed.createdAt)
      local found = assert(wf:tasks{ subject = "Check the lens order" })
      assert.same({ task.id }, { found[1].id })
      local logs = assert(wf:execution_logs(inst.id))
      assert.equal("USERTASK_PATCHED_BY_ADMIN", logs[#logs].type)
      assert.equal(task.id, logs[#logs].taskId)
    end)

    it("merges a context given without completing", function()
      local inst, task = order()
      assert.is_true(wf:update_task(task.id, { context = { note = "later" } }))
      assert.equal("READY", assert(wf:task(task.id)).status)
      assert.equal("later", assert(wf:task_context(task.id)).note)
      assert.equal("later", assert(wf:context(inst.id)).note)
    end)

    it("reports the service's 422 for a bad due date or a finished task", function()
      local _, task = order()
      local ok, err = wf:update_task(task.id, { dueDate = "tomorrow" })
      assert.is_nil(ok)
      assert.equal(422, err.status)
      assert.equal("The due date could not be set: it is not a date-time.",
                   err.details[1].message)
      assert(wf:complete_task(task.id))
      local _, err2 = wf:update_task(task.id, { subject = "too late" })
      assert.equal("invalid", err2.kind)
      assert.equal("bpm.workflowruntime.rest.task.change.property.invalid", err2.code)
      assert.equal("The task is COMPLETED and cannot be changed.", err2.details[1].message)
      assert.equal("Approve order Camera", assert(wf:task(task.id)).subject)
    end)
  end)

  describe("task reads in detail", function()
    it("task_context follows the instance's context", function()
      local inst, task = order("Bag", "9")
      assert(wf:update_context(inst.id, { price = 120, extra = { a = 1 } }))
      assert.same({ product = "Bag", price = 120, orderId = "9", extra = { a = 1 } },
                  assert(wf:task_context(task.id)))
    end)

    it("task_attachments shows the instance's attachments", function()
      local inst, task = order()
      assert(wf:update_attachments(inst.id, { rootFolder = "folder-1" }))
      local attachments, meta = assert(wf:task_attachments(task.id))
      assert.equal(200, meta.status)
      assert.same({ rootFolder = "folder-1" }, attachments)
    end)

    it("task_form gives the form's metadata, task_form_model its fields", function()
      local _, task = order()
      local form = assert(wf:task_form(task.id))
      assert.equal("task", form.type)
      assert.equal("1.0", form.revision)
      assert.is_nil(form.workflowDefinitions)             -- SAP lists them for start forms
      local model = assert(wf:task_form_model(task.id))
      local fields = {}
      for i, field in ipairs(model.content) do fields[i] = field.id end
      assert.same({ "product", "price" }, fields)
      assert.same({ "approve", "reject" }, { model.decisions[1].id, model.decisions[2].id })
    end)

    it("task_attributes gives the task's custom attributes with the context's values", function()
      local _, task = order("Lens", "3")
      assert.same({ { id = "price", label = "Price", value = "100", type = "string" } },
                  assert(wf:task_attributes(task.id)))
    end)
  end)

  describe("task_definitions paging", function()
    it("counts without items and skips past the end", function()
      local none, meta = assert(wf:task_definitions{ top = 0, inlinecount = true })
      assert.same({}, none)
      assert.equal(1, meta.total)
      assert.same({}, assert(wf:task_definitions{ skip = 1 }))
      assert.equal("Approve order", assert(wf:task_definitions())[1].name)
    end)
  end)

  describe("send_message to one instance", function()
    it("merges the message context; the instance no longer waits afterwards", function()
      local inst, task = order()
      assert(wf:complete_task(task.id, { approved = true }))
      local consumed, meta = assert(wf:send_message{ definitionId = "orderShipped",
        workflowInstanceId = inst.id, context = { carrier = "DHL", parcels = { 1, 2 } } })
      assert.equal(200, meta.status)
      assert.same({ { id = inst.id } }, consumed)
      local ctx = assert(wf:context(inst.id))
      assert.equal("DHL", ctx.carrier)
      assert.same({ 1, 2 }, ctx.parcels)
      assert.is_true(ctx.approved)
      assert.equal("COMPLETED", assert(wf:instance(inst.id)).status)
      local again, err = wf:send_message{ definitionId = "orderShipped",
                                          workflowInstanceId = inst.id }
      assert.is_nil(again)
      assert.equal("bpm.workflowruntime.rest.message.no.match", err.code)
    end)

    it("is not consumed by a suspended instance, nor by another business key", function()
      local a, ta = order("A", "k-1")
      assert(wf:complete_task(ta.id))
      assert(wf:suspend(a.id))
      local _, err = wf:send_message{ definitionId = "orderShipped", workflowInstanceId = a.id }
      assert.equal(422, err.status)
      local _, err2 = wf:send_message{ definitionId = "orderShipped",
        workflowDefinitionId = "orderapproval", businessKey = "k-2" }
      assert.equal("bpm.workflowruntime.rest.message.no.match", err2.code)
      assert(wf:resume(a.id))
      assert.same({ { id = a.id } }, assert(wf:send_message{ definitionId = "orderShipped",
        workflowDefinitionId = "orderapproval", businessKey = "k-1" }))
    end)

    it("returns the service's 400 for an instance id of the wrong length", function()
      local consumed, err = wf:send_message{ definitionId = "orderShipped",
                                             workflowInstanceId = "short" }
      assert.is_nil(consumed)
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
      assert.equal("POST", err.method)
      assert.equal("/v1/messages/", err.path)
      assert.equal("rejected", err.outcome)
      assert.equal(0, emu:stats().messages)
    end)
  end)

  local ops = require("sapwf.operations").by_name

  local function by_id(id)
    return {
      { "task", { id }, "task" }, { "task", { id, { expand = "attributes" } }, "task" },
      { "task_context", { id }, "task_context" },
      { "task_attributes", { id }, "task_attributes" },
      { "task_attachments", { id }, "task_attachments" },
      { "task_form", { id }, "task_form" }, { "task_form_model", { id }, "task_form_model" },
      { "complete_task", { id, { ok = true } }, "complete_task" },
      { "update_task", { id, { priority = "LOW" } }, "update_task" },
      { "update_task", { id, { status = "COMPLETED" } }, "complete_task" },
    }
  end

  describe("every call of the family", function()
    it("answers not_found for an unknown task id", function()
      for _, case in ipairs(by_id(MISSING)) do
        local name, op = case[1], ops[case[3]]
        local value, err = wf[name](wf, unpack(case[2]))
        assert.is_nil(value, name)
        assert.is_true(sapwf.is_error(err), name)
        assert.equal("not_found", err.kind, name)
        assert.equal(404, err.status, name)
        assert.equal("bpm.workflowruntime.rest.task.not.found", err.code, name)
        assert.equal(op.method, err.method, name)
        assert.equal((op.path:gsub("{taskInstanceId}", MISSING)), err.path, name)
      end
    end)

    it("answers forbidden naming operations.lua's authority for a client without any", function()
      local inst, task = order()
      emu:set_client("sb-sapwf-limited!b1|workflow!b10150", { authorities = emu.NONE })
      local none = assert(sapwf.new{ service_key = emu:service_key("limited") })
      local cases = by_id(task.id)
      cases[#cases + 1] = { "tasks", { { status = "READY" } }, "tasks" }
      cases[#cases + 1] = { "task_definitions", { { top = 1 } }, "task_definitions" }
      cases[#cases + 1] = { "send_message", { { definitionId = "orderShipped",
        workflowInstanceId = inst.id } }, "send_message" }
      for _, case in ipairs(cases) do
        local name, op = case[1], ops[case[3]]
        local value, err = none[name](none, unpack(case[2]))
        assert.is_nil(value, name)
        assert.equal("forbidden", err.kind, name)
        assert.equal(403, err.status, name)
        assert.equal(op.authority, err.authority, case[3])
        assert.equal(op.method, err.method, name)
        assert.truthy(err.hint:find('"' .. op.authority .. '"', 1, true), name)
      end
      none:close()
      local after = assert(wf:task(task.id))
      assert.equal("READY", after.status)
      assert.equal("MEDIUM", after.priority)
    end)

    it("raise for wrong argument types, naming the argument, at the caller's line", function()
      local cases = {
        { function() wf:tasks("READY") end,
          "bad argument #1 to 'tasks' (table expected, got string)" },
        { function() wf:task(7) end, "bad argument #1 to 'task' (string expected, got number)" },
        { function() wf:task("x", true) end,
          "bad argument #2 to 'task' (table expected, got boolean)" },
        { function() wf:task_context(nil) end,
          "bad argument #1 to 'task_context' (string expected, got nil)" },
        { function() wf:task_attributes({}) end,
          "bad argument #1 to 'task_attributes' (string expected, got table)" },
        { function() wf:task_attachments(false) end,
          "bad argument #1 to 'task_attachments' (string expected, got boolean)" },
        { function() wf:task_form(nil) end,
          "bad argument #1 to 'task_form' (string expected, got nil)" },
        { function() wf:task_form_model(".") end,
          "bad argument #1 to 'task_form_model' (id '.' cannot name a resource)" },
        { function() wf:complete_task(nil) end,
          "bad argument #1 to 'complete_task' (string expected, got nil)" },
        { function() wf:complete_task("x", "approved") end,
          "bad argument #2 to 'complete_task' (table expected, got string)" },
        { function() wf:update_task(5, {}) end,
          "bad argument #1 to 'update_task' (string expected, got number)" },
        { function() wf:update_task("x", nil) end,
          "bad argument #2 to 'update_task' (table expected, got nil)" },
        { function() wf:update_task("x", { procesor = "ann" }) end,
          "bad argument #2 to 'update_task' (unknown field 'procesor'; known: attachments, "
          .. "context, decision, description, dueDate, priority, processor, recipientGroups, "
          .. "recipientUsers, status, subject)" },
        { function() wf:update_task("x", { priority = 3 }) end,
          "bad argument #2 to 'update_task' (priority: string expected, got number)" },
        { function() wf:update_task("x", { context = "{}" }) end,
          "bad argument #2 to 'update_task' (context: table expected, got string)" },
        { function() wf:update_task("x", { recipientGroups = true }) end,
          "bad argument #2 to 'update_task' (recipientGroups: string or list of strings "
          .. "expected, got boolean)" },
        { function() wf:task_definitions(1) end,
          "bad argument #1 to 'task_definitions' (table expected, got number)" },
        { function() wf:task_definitions{ status = "READY" } end,
          "bad argument #1 to 'task_definitions' (unknown query name 'status'; "
          .. "task_definitions takes expand, inlinecount, skip, top)" },
      }
      helpers.assert_raises_here(cases, "13%-tasks_messages_spec%.lua$")
      assert.equal(0, emu:stats().api_requests)
    end)
  end)
end)
