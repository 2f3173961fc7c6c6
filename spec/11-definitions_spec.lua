-- Workflow definitions, jobs and forms against the emulator: each call's success and errors.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

describe("definitions", function()
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

  describe("definitions", function()
    it("lists the latest version of each, newest first", function()
      local list, meta = assert(wf:definitions())
      assert.same({ "orderapproval", "failing", "simple" }, ids(list))
      assert.equal("2", list[1].version)
      assert.equal("Order approval", list[1].name)
      assert.is_nil(meta.total)
    end)

    it("pages, orders and counts", function()
      local list, meta = assert(wf:definitions{ orderby = "id asc", top = 2, skip = 1,
                                                inlinecount = true })
      assert.same({ "orderapproval", "simple" }, ids(list))
      assert.equal(3, meta.total)
      assert.equal(math.type and "integer" or "number",
                   math.type and math.type(meta.total) or type(meta.total))
    end)

    it("returns the service's 400 for a bad query value", function()
      local list, err = wf:definitions{ orderby = "colour asc" }
      assert.is_nil(list)
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
      assert.equal("bpm.workflowruntime.rest.content.format.invalid", err.code)
      assert.matches("%$orderby", err.message)
    end)

    it("needs WORKFLOW_DEFINITION_GET", function()
      local list, err = limited:definitions()
      assert.is_nil(list)
      assert.equal("forbidden", err.kind)
      assert.equal("WORKFLOW_DEFINITION_GET", err.authority)
      assert.matches('"WORKFLOW_DEFINITION_GET"', err.hint)
    end)
  end)

  describe("definition", function()
    it("reads one definition", function()
      local d = assert(wf:definition("orderapproval"))
      assert.equal("orderapproval", d.id)
      assert.equal("2", d.version)
    end)

    it("answers not_found for an unknown id", function()
      local d, err = wf:definition("nope")
      assert.is_nil(d)
      assert.equal("not_found", err.kind)
      assert.equal(404, err.status)
      assert.equal("bpm.workflowruntime.rest.definition.not.found", err.code)
      assert.is_false(err.retryable)
      assert.is_string(err.log_id)
      assert.is_string(err.request_id)
    end)
  end)

  describe("definition_versions and definition_version", function()
    it("lists the versions, with a query", function()
      local list = assert(wf:definition_versions("orderapproval"))
      assert.equal(2, #list)
      local asc, meta = assert(wf:definition_versions("orderapproval",
        { orderby = "version asc", inlinecount = true }))
      assert.same({ "1", "2" }, { asc[1].version, asc[2].version })
      assert.equal(2, meta.total)
    end)

    it("reads one version by number or string", function()
      assert.equal("1", assert(wf:definition_version("orderapproval", 1)).version)
      assert.equal("2", assert(wf:definition_version("orderapproval", "2")).version)
      local v, err = wf:definition_version("orderapproval", 9)
      assert.is_nil(v)
      assert.equal("bpm.workflowruntime.rest.definition.version.not.found", err.code)
    end)

    it("raises for a query name the versions call does not take", function()
      assert.has_error(function() wf:definition_versions("orderapproval", { status = "x" }) end)
    end)
  end)

  describe("definition_model", function()
    it("reads the latest model or a version's", function()
      local latest = assert(wf:definition_model("orderapproval"))
      local first = assert(wf:definition_model("orderapproval", 1))
      local function version_of(model)
        for _, element in pairs(model.contents) do
          if element.classDefinition == "com.sap.bpm.wfs.Model" then return element.version end
        end
      end
      assert.equal("2", version_of(latest))
      assert.equal("1", version_of(first))
      local _, err = wf:definition_model("orderapproval", 7)
      assert.equal("not_found", err.kind)
      local _, err2 = limited:definition_model("orderapproval")
      assert.equal("WORKFLOW_DEFINITION_GET_MODEL", err2.authority)
    end)
  end)

  describe("sample_context", function()
    it("reads the default start context, latest or by version", function()
      local sample = assert(wf:sample_context("orderapproval"))
      assert.same({ product = "Camera", price = 100, orderId = "4711" }, sample.content)
      assert.same(sample, assert(wf:sample_context("orderapproval", "1")))
    end)

    it("answers not_found where there is none", function()
      local s, err = wf:sample_context("simple")
      assert.is_nil(s)
      assert.equal("bpm.workflowruntime.rest.sample.context.not.found", err.code)
    end)
  end)

  describe("undeploy and job", function()
    it("refuses while instances run, then undeploys with cascade as a job", function()
      local inst = assert(wf:start("simple"))
      local job, err = wf:undeploy("simple")
      assert.is_nil(job)
      assert.equal("conflict", err.kind)
      assert.equal(412, err.status)
      assert.equal("bpm.workflowruntime.rest.instances.running", err.code)

      local result, meta = assert(wf:undeploy("simple", { cascade = true }))
      assert.equal(202, meta.status)
      assert.matches("^%x+%-", result.job)
      assert.equal("/workflow-service/rest/v1/jobs/" .. result.job, result.location)

      local again = assert(wf:undeploy("simple"))      -- 303: the same job is still running
      assert.equal(result.job, again.job)

      local status = assert(wf:job(result.job))
      assert.is_string(status.status)
      local gone, err2 = wf:job(result.job)             -- a finished job is unknown
      assert.is_nil(gone)
      assert.equal("not_found", err2.kind)
      assert.equal("bpm.workflowruntime.rest.job.not.found", err2.code)
      local _, err3 = wf:instance(inst.id)
      assert.equal("not_found", err3.kind)
      local _, err4 = wf:definition("simple")
      assert.equal("not_found", err4.kind)
    end)

    it("raises for an option the call does not take", function()
      assert.has_error(function() wf:undeploy("simple", { cascdae = true }) end)
    end)

    it("needs WORKFLOW_DEFINITION_UNDEPLOY and JOB_STATUS_GET", function()
      local _, err = limited:undeploy("simple")
      assert.equal("WORKFLOW_DEFINITION_UNDEPLOY", err.authority)
      local _, err2 = limited:job("00000000-0000-0000-0000-000000000000")
      assert.equal("JOB_STATUS_GET", err2.authority)
    end)
  end)

  describe("forms", function()
    it("lists the forms and filters by type", function()
      local list, meta = assert(wf:forms{ inlinecount = true })
      assert.equal(2, #list)
      assert.equal(2, meta.total)
      local task_forms = assert(wf:forms{ type = "task" })
      assert.same({ "approvalform" }, ids(task_forms))
      local _, err = wf:forms{ type = "report" }
      assert.equal("invalid", err.kind)
      local _, err2 = limited:forms()
      assert.equal("FORM_DEFINITION_GET", err2.authority)
    end)
  end)
end)
