-- The deployed content the emulator starts with (and goes back to on reset):
--
--   orderapproval  versions "1" and "2", "Order approval". Sample context
--                  {"product":"Camera","price":100,"orderId":"4711"}; subject
--                  "Order <product>", businessKey <orderId>. Starts a user task
--                  "approve" (form "approvalform"); once it is COMPLETED the instance waits
--                  for the message "orderShipped", which completes it.
--   simple         version "1": no task, no message, stays RUNNING. No sample context.
--   failing        version "1": its service task fails at once, so the instance is
--                  ERRONEOUS with one error message. A retry (status RUNNING) fails again
--                  unless the context has "fixed": true, then the instance COMPLETES.
--
-- Forms: "approvalform" (task form of "approve") and "orderform" (start form).
--
-- In SAP Build Process Automation mode (seed(store, true)) the same definitions have SPA ids
-- (<region>.<subdomain>.<project>.<process>, SPA_SEEDS below) and the inputs of an API
-- trigger, which a start must give (server/spa.lua).
-- A definition's steps (on_start, on_task_completed, on_message, on_retry) are called by
-- engine.lua with the instance and the engine itself.
local defaults = require "sapwf.emulator.defaults"

local ipairs, pairs = ipairs, pairs

local workflows = {}

local DEPLOYER = "sapwf-emulator-deployer"

local function order_model(version)
  return { contents = {
    ["1b7f0c1e-7a8e-4b3e-9a0f-2f4f6a1c9d01"] = {
      classDefinition = "com.sap.bpm.wfs.Model", id = "orderapproval",
      name = "Order approval", subject = "Order ${context.product}",
      businessKey = "${context.orderId}", version = version,
      customAttributes = { { id = "product", label = "Product", type = "string",
        value = "${context.product}" }, { id = "orderId", label = "Order ID",
        type = "string", value = "${context.orderId}" } },
      events = { ["1b7f0c1e-7a8e-4b3e-9a0f-2f4f6a1c9d02"] = { name = "StartEvent1" },
        ["1b7f0c1e-7a8e-4b3e-9a0f-2f4f6a1c9d04"] = { name = "Order shipped" },
        ["1b7f0c1e-7a8e-4b3e-9a0f-2f4f6a1c9d05"] = { name = "EndEvent1" } },
      activities = { ["1b7f0c1e-7a8e-4b3e-9a0f-2f4f6a1c9d03"] = { name = "Approve order" } },
    },
    ["1b7f0c1e-7a8e-4b3e-9a0f-2f4f6a1c9d02"] = { classDefinition = "com.sap.bpm.wfs.StartEvent",
      id = "startevent1", name = "StartEvent1" },
    ["1b7f0c1e-7a8e-4b3e-9a0f-2f4f6a1c9d03"] = { classDefinition = "com.sap.bpm.wfs.UserTask",
      id = "approve", name = "Approve order", subject = "Approve order ${context.product}",
      priority = "MEDIUM", formReference = "approvalform",
      recipientGroups = "OrderApprovers" },
    ["1b7f0c1e-7a8e-4b3e-9a0f-2f4f6a1c9d04"] = {
      classDefinition = "com.sap.bpm.wfs.IntermediateMessageEvent", id = "ordershipped",
      name = "Order shipped", messageName = "orderShipped" },
    ["1b7f0c1e-7a8e-4b3e-9a0f-2f4f6a1c9d05"] = { classDefinition = "com.sap.bpm.wfs.EndEvent",
      id = "endevent1", name = "EndEvent1" },
  } }
end

local function simple_model(id, name)
  return { contents = {
    ["6d1e5a7b-3c2f-4e8d-9b1a-0f7c2e4d6a01"] = { classDefinition = "com.sap.bpm.wfs.Model",
      id = id, name = name, subject = name },
    ["6d1e5a7b-3c2f-4e8d-9b1a-0f7c2e4d6a02"] = { classDefinition = "com.sap.bpm.wfs.StartEvent",
      id = "startevent1", name = "StartEvent1" },
  } }
end

local function order_approval()
  return {
    id = "orderapproval", name = "Order approval", createdBy = DEPLOYER,
    versions = {
      { version = "1", createdAt = "2024-01-15T09:30:00.000Z", model = order_model("1") },
      { version = "2", createdAt = "2024-03-04T14:05:00.000Z", model = order_model("2") },
    },
    sample_context = { product = "Camera", price = 100, orderId = "4711" },
    tasks = { { id = "approve", name = "Approve order",
      attributeDefinitions = { { id = "price", label = "Price", type = "string" } } } },
    message_activity = "ordershipped",

    on_start = function(instance, engine)
      local context, text = instance.context, engine.text
      instance.subject = "Order " .. text(context.product)
      instance.businessKey = text(context.orderId)
      instance.attributes = {
        { id = "product", label = "Product", value = text(context.product), type = "string" },
        { id = "orderId", label = "Order ID", value = text(context.orderId), type = "string" },
      }
      engine.create_task(instance, {
        activityId = "approve", subject = "Approve order " .. text(context.product),
        description = "Approve or reject order " .. text(context.orderId),
        priority = "MEDIUM", recipientGroups = { "OrderApprovers" }, form = "approvalform",
        attributes = { { id = "price", label = "Price", value = text(context.price),
          type = "string" } },
      })
    end,
    on_task_completed = function(instance, _, engine)
      engine.wait_for_message(instance, "orderShipped", "ordershipped", "Order shipped")
    end,
    on_message = function(instance, engine)
      engine.complete(instance)
    end,
    on_retry = function() end,
  }
end

local function simple()
  return {
    id = "simple", name = "Simple", createdBy = DEPLOYER,
    versions = { { version = "1", createdAt = "2024-02-01T08:00:00.000Z",
      model = simple_model("simple", "Simple") } },
    tasks = {},
    on_start = function(instance) instance.subject = "Simple" end,
    on_task_completed = function() end,
    on_message = function() end,
    on_retry = function() end,
  }
end

local SERVICE_FAILURE = {
  log_type = "SERVICETASK_FAILED", activityId = "servicetask1",
  activityName = "Call the ERP system",
  errorCode = "bpm.workflowruntime.hcp.destination.not.found",
  message = "The destination 'ERP' could not be found. Check the spelling or create a"
    .. " destination with this name.",
}

local function failing()
  local definition = {
    id = "failing", name = "Failing service call", createdBy = DEPLOYER,
    versions = { { version = "1", createdAt = "2024-02-10T10:00:00.000Z",
      model = simple_model("failing", "Failing service call") } },
    tasks = {},
    on_task_completed = function() end,
    on_message = function() end,
  }
  local function call_service(instance, engine)
    if instance.context.fixed == true then
      instance.errors = {}
      engine.complete(instance)
    else
      engine.fail(instance, SERVICE_FAILURE)
    end
  end
  definition.on_start = function(instance, engine)
    instance.subject = "Failing service call"
    call_service(instance, engine)
  end
  definition.on_retry = call_service
  return definition
end

local APPROVAL_FORM_MODEL = {
  id = "approvalform", name = "Approval form", revision = "1.0", type = "task",
  readOnly = false,
  content = {
    { id = "product", type = "string", label = "Product", readOnly = true,
      value = "${context.product}", constraints = { { required = false } } },
    { id = "price", type = "string", label = "Price", readOnly = true,
      value = "${context.price}", constraints = { { required = false } } },
  },
  decisions = {
    { id = "approve", text = "Approve", decisionType = "positive" },
    { id = "reject", text = "Reject", decisionType = "negative" },
  },
}

local ORDER_FORM_MODEL = {
  id = "orderform", name = "Order form", revision = "1.0", type = "start", readOnly = false,
  content = {
    { id = "product", type = "string", label = "Product", readOnly = false,
      value = "${context.product}", constraints = { { required = true } } },
  },
}

local function forms()
  return {
    -- a task form names no workflow definitions (views.form); its task names the form
    approvalform = { id = "approvalform", name = "Approval form", version = 1,
      revision = "1.0", type = "task", createdAt = "2024-03-04T14:05:00.000Z",
      createdBy = DEPLOYER, model = APPROVAL_FORM_MODEL },
    orderform = { id = "orderform", name = "Order form", version = 1, revision = "1.0",
      type = "start", createdAt = "2024-03-04T14:06:00.000Z", createdBy = DEPLOYER,
      workflowDefinitions = { { id = "orderapproval" } }, model = ORDER_FORM_MODEL },
  }
end

-- SPA mode: the project of each seeded process, and its API trigger's inputs (name, type,
-- required). [inferred: SPA ids as samples show them; the inputs are ours.]
local SPA_SEEDS = {
  orderapproval = { project = "orderproject", inputs = {
    { name = "product", type = "string", required = true },
    { name = "price", type = "number", required = true },
    { name = "orderId", type = "string", required = true } } },
  simple = { project = "basicproject", inputs = {
    { name = "note", type = "string", required = false } } },
  failing = { project = "basicproject", inputs = {
    { name = "fixed", type = "boolean", required = false } } },
}

--- The id a seeded definition has in SPA mode ("orderapproval" ->
-- "eu10.emulator.orderproject.orderapproval").
function workflows.spa_id(id)
  return defaults.spa_definition_id(SPA_SEEDS[id].project, id)
end

--- Puts the seed content into store (fresh tables every time: they are changed later);
-- spa: SAP Build Process Automation ids and trigger inputs.
function workflows.seed(store, spa)
  for seq, make in ipairs({ order_approval, simple, failing }) do
    local definition = make()
    if spa then
      definition.inputs = SPA_SEEDS[definition.id].inputs
      definition.id = workflows.spa_id(definition.id)
    end
    definition.seq = seq               -- breaks ties when sorting
    local latest = definition.versions[#definition.versions]
    definition.latest, definition.createdAt = latest.version, latest.createdAt
    definition.by_version = {}
    for _, version in ipairs(definition.versions) do
      definition.by_version[version.version] = version
    end
    store.definitions[definition.id] = definition
  end
  store.forms = forms()
  if spa then
    for _, form in pairs(store.forms) do
      for _, item in ipairs(form.workflowDefinitions or {}) do
        item.id = workflows.spa_id(item.id)
      end
    end
  end
end

return workflows
