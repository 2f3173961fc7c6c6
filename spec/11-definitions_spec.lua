-- Workflow definitions, jobs and forms against the emulator: each call's success and errors.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

local unpack = table.unpack or unpack

describe("definitions", function()
  local emu, wf, limited

  setup(function() emu, wf, limited = helpers.start_api() end)
  teardown(function() helpers.stop_api(emu, wf, limited) end)
  before_each(function() emu:reset() end)

  local ids = helpers.ids

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

  describe("definitions, versions and samples in detail", function()
    it("read one version's own data, by integer or string", function()
      local first = assert(wf:definition_version("orderapproval", 1))
      local second = assert(wf:definition_version("orderapproval", "2"))
      assert.equal("orderapproval", first.id)
      assert.equal("Order approval", first.name)
      -- Each version keeps its own deployment time: the two answers differ where they should.
      assert.equal("2024-01-15T09:30:00.000Z", first.createdAt)
      assert.equal("2024-03-04T14:05:00.000Z", second.createdAt)
      assert.equal(second.createdAt, assert(wf:definition("orderapproval")).createdAt)
    end)

    it("page the versions with top and skip", function()
      local page, meta = assert(wf:definition_versions("orderapproval",
        { orderby = "version desc", top = 1, skip = 1, inlinecount = true }))
      assert.equal(1, #page)
      assert.equal("1", page[1].version)
      assert.equal(2, meta.total)
      local _, err = wf:definition_versions("orderapproval", { orderby = "colour asc" })
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
    end)

    it("read the sample context of a version given as integer or string", function()
      local latest = assert(wf:sample_context("orderapproval"))
      assert.equal("default-start-context", latest.id)
      assert.equal("startevent1", latest.modelElementId)
      assert.same(latest, assert(wf:sample_context("orderapproval", 2)))
      local _, err = wf:sample_context("orderapproval", 9)
      assert.equal("not_found", err.kind)
      assert.equal("bpm.workflowruntime.rest.sample.context.not.found", err.code)
      assert.equal("/v1/workflow-definitions/orderapproval/versions/9/sample-contexts/"
                   .. "default-start-context", err.path)
    end)

    it("read a version's model, which names that version", function()
      local model = assert(wf:definition_model("orderapproval", "2"))
      local ids = {}
      for _, element in pairs(model.contents) do ids[#ids + 1] = element.id end
      table.sort(ids)
      assert.same({ "approve", "endevent1", "orderapproval", "ordershipped", "startevent1" },
                  ids)
    end)
  end)

  describe("undeploy as a job", function()
    it("shows the running job on the definition until the job is read", function()
      local a = assert(wf:start("simple"))
      local b = assert(wf:start("simple"))
      assert(wf:cancel(b.id))
      local result = assert(wf:undeploy("simple", { cascade = true }))
      local running = assert(wf:definition("simple"))
      assert.same({ { id = result.job, purpose = "delete" } }, running.jobs)
      local _, start_err = wf:start("simple")           -- no new instance while it goes
      assert.equal("not_found", start_err.kind)

      local job, meta = assert(wf:job(result.job))
      assert.equal(200, meta.status)
      assert.equal("RUNNING", job.status)
      assert.same({ instancesInitial = 2, instancesLeft = 0 }, job.details)

      local _, gone = wf:job(result.job)
      assert.equal("not_found", gone.kind)
      assert.equal("/v1/jobs/" .. result.job, gone.path)
      local _, def_err = wf:definition("simple")
      assert.equal("bpm.workflowruntime.rest.definition.not.found", def_err.code)
      for _, inst in ipairs({ a, b }) do
        local _, inst_err = wf:instance(inst.id)
        assert.equal("not_found", inst_err.kind)
      end
      assert.same({ "orderapproval", "failing" }, ids(assert(wf:definitions())))
    end)

    it("undeploys a definition without instances without cascade", function()
      local result, meta = assert(wf:undeploy("failing"))
      assert.equal(202, meta.status)
      assert.equal("/workflow-service/rest/v1/jobs/" .. result.job, result.location)
      assert.equal(0, assert(wf:job(result.job)).details.instancesInitial)
    end)

    it("returns the service's 400 for a cascade value it does not take", function()
      local result, err = wf:undeploy("simple", { cascade = "maybe" })
      assert.is_nil(result)
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
      assert.matches("cascade", err.message)
      assert(wf:definition("simple"))                   -- still deployed
    end)
  end)

  describe("forms", function()
    it("filters start forms and pages", function()
      local start_forms = assert(wf:forms{ type = "start" })
      assert.same({ "orderform" }, ids(start_forms))
      assert.equal("start", start_forms[1].type)
      assert.same({ { id = "orderapproval" } }, start_forms[1].workflowDefinitions)
      local page, meta = assert(wf:forms{ top = 1, skip = 1, inlinecount = true })
      assert.same({ "approvalform" }, ids(page))         -- newest first: orderform, approvalform
      assert.equal(2, meta.total)
    end)
  end)

  -- Each call of this family, its operation in operations.lua, and arguments that name
  -- something that exists (so only the authority is missing) or that does not.
  local ops = require("sapwf.operations").by_name

  describe("every call of the family", function()
    local MISSING_JOB = "00000000-0000-0000-0000-000000000000"

    it("answers not_found with the service's code for an unknown id", function()
      local cases = {
        { "definition", { "nope" }, "definition.not.found", "/v1/workflow-definitions/nope" },
        { "definition_versions", { "nope" }, "definition.not.found",
          "/v1/workflow-definitions/nope/versions" },
        { "definition_version", { "nope", 1 }, "definition.version.not.found",
          "/v1/workflow-definitions/nope/versions/1" },
        { "definition_model", { "nope" }, "json.model.not.found",
          "/v1/workflow-definitions/nope/model" },
        { "definition_model", { "nope", 1 }, "json.model.not.found",
          "/v1/workflow-definitions/nope/versions/1/model" },
        { "sample_context", { "nope" }, "sample.context.not.found",
          "/v1/workflow-definitions/nope/sample-contexts/default-start-context" },
        { "sample_context", { "nope", "1" }, "sample.context.not.found",
          "/v1/workflow-definitions/nope/versions/1/sample-contexts/default-start-context" },
        { "undeploy", { "nope" }, "definition.not.found", "/v1/workflow-definitions/nope" },
        { "job", { MISSING_JOB }, "job.not.found", "/v1/jobs/" .. MISSING_JOB },
      }
      for _, case in ipairs(cases) do
        local name, args = case[1], case[2]
        local value, err = wf[name](wf, unpack(args))
        assert.is_nil(value, name)
        assert.is_true(sapwf.is_error(err), name)
        assert.equal("not_found", err.kind, name)
        assert.equal(404, err.status, name)
        assert.equal("bpm.workflowruntime.rest." .. case[3], err.code, name)
        assert.equal(case[4], err.path, name)
        assert.equal("rejected", err.outcome, name)
      end
    end)

    it("answers forbidden naming operations.lua's authority for the limited client", function()
      local cases = {
        { "definitions", {}, "definitions" },
        { "definition", { "orderapproval" }, "definition" },
        { "definition_versions", { "orderapproval" }, "definition_versions" },
        { "definition_version", { "orderapproval", 1 }, "definition_version" },
        { "definition_model", { "orderapproval" }, "definition_model" },
        { "definition_model", { "orderapproval", 1 }, "definition_version_model" },
        { "sample_context", { "orderapproval" }, "sample_context" },
        { "sample_context", { "orderapproval", 1 }, "definition_version_sample_context" },
        { "undeploy", { "simple", { cascade = true } }, "undeploy" },
        { "job", { MISSING_JOB }, "job" },
        { "forms", { { type = "task" } }, "forms" },
      }
      for _, case in ipairs(cases) do
        local name, op = case[1], ops[case[3]]
        local value, err = limited[name](limited, unpack(case[2]))
        assert.is_nil(value, name)
        assert.equal("forbidden", err.kind, name)
        assert.equal(403, err.status, name)
        assert.equal(op.authority, err.authority, case[3])
        assert.equal(op.method, err.method, name)
        assert.truthy(err.hint:find('"' .. op.authority .. '"', 1, true), name)
      end
      assert(wf:definition("simple"))                   -- the refused undeploy did nothing
    end)

    it("raise for wrong argument types, naming the argument, at the caller's line", function()
      local cases = {
        { function() wf:definitions("top=1") end,
          "bad argument #1 to 'definitions' (table expected, got string)" },
        { function() wf:definitions{ status = "RUNNING" } end,
          "bad argument #1 to 'definitions' (unknown query name 'status'; definitions takes "
          .. "inlinecount, orderby, skip, top)" },
        { function() wf:definition(5) end,
          "bad argument #1 to 'definition' (string expected, got number)" },
        { function() wf:definition_versions(nil) end,
          "bad argument #1 to 'definition_versions' (string expected, got nil)" },
        { function() wf:definition_versions("orderapproval", "top=1") end,
          "bad argument #2 to 'definition_versions' (table expected, got string)" },
        { function() wf:definition_versions("orderapproval", { status = "x" }) end,
          "bad argument #2 to 'definition_versions' (unknown query name 'status'; "
          .. "definition_versions takes inlinecount, orderby, skip, top)" },
        { function() wf:definition_version({}, 1) end,
          "bad argument #1 to 'definition_version' (string expected, got table)" },
        { function() wf:definition_version("orderapproval") end,
          "bad argument #2 to 'definition_version' (string or integer expected, got nil)" },
        { function() wf:definition_model(false) end,
          "bad argument #1 to 'definition_model' (string expected, got boolean)" },
        { function() wf:definition_model("orderapproval", -1) end,
          "bad argument #2 to 'definition_model' (version must be a non-negative integer)" },
        { function() wf:definition_model("orderapproval", {}) end,
          "bad argument #2 to 'definition_model' (string or integer expected, got table)" },
        { function() wf:sample_context(1) end,
          "bad argument #1 to 'sample_context' (string expected, got number)" },
        { function() wf:sample_context("orderapproval", "..") end,
          "bad argument #2 to 'sample_context' (version '..' cannot name a resource)" },
        { function() wf:undeploy(nil) end,
          "bad argument #1 to 'undeploy' (string expected, got nil)" },
        { function() wf:undeploy("simple", true) end,
          "bad argument #2 to 'undeploy' (table expected, got boolean)" },
        { function() wf:undeploy("simple", { cascdae = true }) end,
          "bad argument #2 to 'undeploy' (unknown query name 'cascdae'; undeploy takes "
          .. "cascade)" },
        { function() wf:job(42) end, "bad argument #1 to 'job' (string expected, got number)" },
        { function() wf:job("") end,
          "bad argument #1 to 'job' (id is empty and cannot name a resource)" },
        { function() wf:forms("task") end,
          "bad argument #1 to 'forms' (table expected, got string)" },
        { function() wf:forms{ definitionId = "x" } end,
          "bad argument #1 to 'forms' (unknown query name 'definitionId'; forms takes "
          .. "inlinecount, skip, top, type)" },
      }
      helpers.assert_raises_here(cases, "11%-definitions_spec%.lua$")
      assert.equal(0, emu:stats().api_requests)
    end)
  end)
end)
