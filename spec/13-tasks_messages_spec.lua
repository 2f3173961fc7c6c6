-- User tasks, task definitions and messages against the emulator.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

describe("tasks and messages", function()
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
      emu:set_client("sb-sapwf-limited!b1|workflow!b10150", { authorities = {} })
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
      local ok, err = wf:update_task(task.id, { priority = "URGENT" })
      assert.is_nil(ok)
      assert.equal("invalid", err.kind)
      assert.equal(422, err.status)
      assert.equal("bpm.workflowruntime.rest.task.change.property.invalid", err.code)
      assert.matches("URGENT", err.details[1].message)
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
      emu:set_client("sb-sapwf-limited!b1|workflow!b10150", { authorities = {} })
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
end)
