-- sapwf.errors: kinds, the server's words, retry and outcome rules, the 403 hint, one line.
-- The API specs (10-15) check the same errors as they come from the emulator; these check
-- every rule, including answers the emulator has no reason to give.
local errors = require "sapwf.errors"

local JSON = { ["content-type"] = "application/json;charset=UTF-8",
               ["x-vcap-request-id"] = "req-1" }

local function from(status, body, headers, method, extra)
  local ctx = { method = method or "GET", path = "/v1/workflow-instances/abc" }
  for k, v in pairs(extra or {}) do ctx[k] = v end
  return errors.from_response(status, body, headers or JSON, ctx)
end

describe("errors.kind_for_status", function()
  it("maps statuses to kinds", function()
    local expected = { [400] = "invalid", [401] = "auth", [403] = "forbidden",
                       [404] = "not_found", [409] = "conflict", [412] = "conflict",
                       [422] = "invalid", [429] = "rate_limited", [500] = "server",
                       [502] = "server", [503] = "server", [504] = "server",
                       [405] = "invalid", [418] = "invalid", [301] = "server" }
    for status, kind in pairs(expected) do
      assert.equal(kind, errors.kind_for_status(status), "status " .. status)
    end
  end)
end)

describe("errors.from_response", function()
  it("takes message, code and logId from a TechnicalError", function()
    local e = from(404, '{"error":{"code":"bpm.workflowruntime.rest.instance.not.found",'
      .. '"message":"Workflow instance abc not found","logId":"log-9"}}')
    assert.is_true(errors.is_error(e))
    assert.equal("not_found", e.kind)
    assert.equal(404, e.status)
    assert.equal("Workflow instance abc not found", e.message)
    assert.equal("bpm.workflowruntime.rest.instance.not.found", e.code)
    assert.equal("log-9", e.log_id)
    assert.equal("req-1", e.request_id)
    assert.equal("GET", e.method)
    assert.equal("/v1/workflow-instances/abc", e.path)
    assert.equal("sapwf: not_found (404) GET /v1/workflow-instances/abc: Workflow instance "
      .. "abc not found [code bpm.workflowruntime.rest.instance.not.found, log_id log-9, "
      .. "request_id req-1]", tostring(e))
  end)

  it("keeps the details of a 422", function()
    local e = from(422, '{"error":{"code":"bpm.workflowruntime.rest.task.change.property.invalid",'
      .. '"message":"Invalid","details":[{"severity":"ERROR","message":"bad priority"}]}}',
      nil, "PATCH")
    assert.equal("invalid", e.kind)
    assert.equal("bad priority", e.details[1].message)
    -- the generic message alone would not say why: the line gives the first detail too
    assert.matches("PATCH /v1/workflow-instances/abc: Invalid (bad priority) [code ",
                   tostring(e), 1, true)
    local long = from(422, '{"error":{"message":"Invalid","details":[{"message":"'
      .. ("x"):rep(2000) .. '"}]}}', nil, "PATCH")
    assert.is_true(#tostring(long) < 700)
  end)

  it("reads an API gateway's fault (SAP API Management)", function()
    local e = from(401, '{"fault":{"faultstring":"Invalid ApiKey","detail":{"errorcode":'
      .. '"oauth.v2.InvalidApiKey"}}}')
    assert.equal("auth", e.kind)
    assert.equal("Invalid ApiKey", e.message)
    assert.equal("oauth.v2.InvalidApiKey", e.code)
  end)

  it("reads the OAuth layer's 401 shape", function()
    local e = from(401, '{"error":"unauthorized","error_description":"Full authentication '
      .. 'is required to access this resource."}')
    assert.equal("auth", e.kind)
    assert.equal("unauthorized", e.code)
    assert.equal("Full authentication is required to access this resource.", e.message)
  end)

  it("summarises a body that is not JSON, never copying it", function()
    local page = "<html><body><h1>502 Bad Gateway</h1>" .. string.rep("x", 5000) .. "</body></html>"
    local e = from(502, page, { ["content-type"] = "text/html; charset=utf-8" })
    assert.equal("HTTP 502 with a body that is not JSON (text/html)", e.message)
    assert.is_nil(tostring(e):find("<html>", 1, true))
    local e2 = from(500, "", {})
    assert.equal("HTTP 500 with an empty body", e2.message)
    local e3 = from(500, "oops", {})
    assert.equal("HTTP 500 with a body that is not JSON (no content type)", e3.message)
  end)

  it("keeps a long server message to one clipped line", function()
    local e = from(400, '{"error":{"message":"line one\\nline two ' .. string.rep("y", 900)
      .. '"}}')
    assert.is_nil(e.message:find("\n", 1, true))
    assert.is_true(#e.message <= 503)
    assert.matches("^line one line two y+%.%.%.$", e.message)
    assert.is_nil(tostring(e):find("\n", 1, true))
  end)

  describe("retry and outcome rules", function()
    -- A call that may have acted is retryable only when sending it twice does what once
    -- does (send.idempotent: GET, PUT, the PATCHes that set values); the method alone does
    -- not tell (completing a task is a PATCH, and not idempotent).
    local cases = {
      -- status, idempotent, retryable, outcome
      { 429, false, true, "rejected" }, { 408, false, true, "rejected" },
      { 503, false, false, "unknown" }, { 503, true, true, "rejected" },
      { 409, true, true, "rejected" }, { 409, false, true, "rejected" },
      { 500, true, true, "unknown" }, { 500, false, false, "unknown" },
      { 502, true, true, "unknown" }, { 502, false, false, "unknown" },
      { 504, true, true, "unknown" }, { 504, false, false, "unknown" },
      { 400, false, false, "rejected" }, { 404, true, false, "rejected" },
      { 403, false, false, "rejected" }, { 422, false, false, "rejected" },
      -- no status names their outcome, or one says the request was processed: not again
      { 501, false, false, "unknown" }, { 507, true, false, "unknown" },
      { 524, false, false, "unknown" }, { 599, false, false, "unknown" },
      { 303, false, false, "unknown" }, { 302, false, false, "rejected" },
      { 307, false, false, "rejected" },
    }
    for _, c in ipairs(cases) do
      it(string.format("%d, %s: retryable %s, outcome %s", c[1],
                       c[2] and "idempotent" or "not idempotent", tostring(c[3]), c[4]),
         function()
           local e = from(c[1], '{"error":{"message":"m"}}', nil, "PATCH",
                          { idempotent = c[2] })
           assert.equal(c[3], e.retryable)
           assert.equal(c[4], e.outcome)
         end)
    end

    it("counts a call as not idempotent when the caller does not say", function()
      local e = from(500, "", {}, "GET")
      assert.is_false(e.retryable)
    end)

    it("says in tostring when a change may have happened", function()
      assert.matches("may have taken effect %(outcome unknown%)",
                     tostring(from(504, "", {}, "POST")))
      assert.is_nil(tostring(from(500, "", {}, "GET", { idempotent = true }))
        :find("outcome", 1, true))
    end)
  end)

  it("puts authority and hint on a 403 only", function()
    local e = from(403, '{"error":{"message":"User does not have sufficient privileges."}}',
                   nil, "POST", { authority = "WORKFLOW_INSTANCE_START", hint = "do X" })
    assert.equal("forbidden", e.kind)
    assert.equal("WORKFLOW_INSTANCE_START", e.authority)
    assert.equal("do X", e.hint)
    assert.equal("sapwf: forbidden (403) POST /v1/workflow-instances/abc: User does not have "
      .. "sufficient privileges. Needs authority WORKFLOW_INSTANCE_START; fix: do X "
      .. "[request_id req-1]", tostring(e))
    local e2 = from(404, "", {}, "GET", { authority = "X", hint = "y" })
    assert.is_nil(e2.authority)
    assert.not_equal("y", e2.hint)       -- a 404's hint is about the base URL (spec/24)
  end)
end)

describe("errors.decode", function()
  it("says a start may have happened", function()
    local e = errors.decode(201, { ["content-type"] = "text/html" },
                            { method = "POST", path = "/v1/workflow-instances", op = "start" },
                            "Expected value but found invalid token at character 1")
    assert.equal("decode", e.kind)
    assert.equal("unknown", e.outcome)
    assert.is_false(e.retryable)
    assert.matches("the workflow may have started; look it up before retrying$", e.message)
    assert.matches("not valid JSON %(text/html%)", e.message)
  end)

  it("names an empty body", function()
    local e = errors.decode(200, {}, { method = "GET", path = "/v1/x" })
    assert.equal("the 200 answer has an empty body where JSON was expected", e.message)
  end)
end)

describe("errors.unexpected", function()
  it("names what came and what was due, and that a start may have happened", function()
    local e = errors.unexpected(201, { ["x-vcap-request-id"] = "r1" },
                                { method = "POST", path = "/v1/workflow-instances", op = "start" },
                                "JSON null", "an object")
    assert.same({ "decode", 201, "unknown", false, "r1" },
                { e.kind, e.status, e.outcome, e.retryable, e.request_id })
    assert.equal("sapwf: decode (201) POST /v1/workflow-instances: the 201 answer is JSON null "
      .. "where an object was expected; the workflow may have started; look it up before "
      .. "retrying [request_id r1]", tostring(e))
  end)

  it("says a change may have been made, and nothing more for a read", function()
    local ctx = { method = "POST", path = "/v1/messages/", op = "send_message" }
    assert.equal("the 200 answer is an object where an array was expected; the change may "
      .. "have been made", errors.unexpected(200, {}, ctx, "an object", "an array").message)
    ctx = { method = "GET", path = "/v1/forms", op = "forms" }
    assert.equal("the 200 answer is a number where an array was expected",
                 errors.unexpected(200, nil, ctx, "a number", "an array").message)
  end)
end)

describe("errors.from_core", function()
  it("copies the core's fields and marks a failure before sending retryable", function()
    local e = errors.from_core({ kind = "network", message = "Could not connect",
                                 curl_code = 7, sent = false, phase = "request" },
                               "POST", "/v1/workflow-instances", false)
    assert.is_true(errors.is_error(e))
    assert.equal(7, e.curl_code)
    assert.equal("not_sent", e.outcome)
    assert.is_true(e.retryable)
    assert.equal("sapwf: network POST /v1/workflow-instances: Could not connect", tostring(e))
  end)

  it("makes a call that may have been sent unknown, retryable only when idempotent",
     function()
    local e = errors.from_core({ kind = "timeout", message = "Operation timed out",
                                 curl_code = 28, sent = true, phase = "request" },
                               "POST", "/v1/workflow-instances", false)
    assert.equal("unknown", e.outcome)
    assert.is_false(e.retryable)
    assert.matches("outcome unknown", tostring(e))
    -- completing a task is a PATCH, and not idempotent
    local p = errors.from_core({ kind = "network", message = "recv failure", sent = true,
                                 phase = "request" }, "PATCH", "/v1/task-instances/t1", false)
    assert.same({ false, "unknown" }, { p.retryable, p.outcome })
    local g = errors.from_core({ kind = "timeout", message = "t", sent = true,
                                 phase = "request" }, "GET", "/v1/x", true)
    assert.is_true(g.retryable)
  end)

  it("treats token failures as not sent; retryable only for network and 5xx", function()
    local auth = errors.from_core({ kind = "auth", status = 401, code = "invalid_client",
                                    message = "Bad credentials", phase = "token",
                                    sent = false }, "GET", "/v1/x")
    assert.equal("not_sent", auth.outcome)
    assert.is_false(auth.retryable)
    assert.equal("sapwf: auth (401) GET /v1/x: getting a token: Bad credentials "
      .. "[code invalid_client]", tostring(auth))
    local busy = errors.from_core({ kind = "server", status = 503, message = "busy",
                                    phase = "token", sent = false }, "GET", "/v1/x")
    assert.is_true(busy.retryable)
    local tls = errors.from_core({ kind = "tls", message = "certificate problem",
                                   phase = "request", sent = false }, "GET", "/v1/x")
    assert.is_false(tls.retryable)
  end)
end)

describe("the 403 hint", function()
  local scope = "workflow!b10150.TASK_GET workflow!b10150.TASK_DEFINITION_GET uaa.resource "
    .. "workflow!b10150.WORKFLOW_DEFINITION_DEPLOY"

  it("reads the authorities of a scope string", function()
    assert.same({ "TASK_GET", "TASK_DEFINITION_GET", "WORKFLOW_DEFINITION_DEPLOY" },
                errors.granted(scope))
    assert.same({}, errors.granted(nil))
    assert.same({}, errors.granted("uaa.resource openid"))
  end)

  it("lists the granted authorities plus the missing one, sorted", function()
    assert.equal("cf update-service my-wf -c '{\"authorities\":[\"TASK_DEFINITION_GET\","
      .. "\"TASK_GET\",\"WORKFLOW_DEFINITION_DEPLOY\",\"WORKFLOW_INSTANCE_START\"]}' "
      .. "(the list replaces the old one; it keeps the 3 authorities this token has), then "
      .. "get a new token with wf:token(true)",
      errors.forbidden_hint("my-wf", scope, "WORKFLOW_INSTANCE_START"))
  end)

  it("names the instance <instance> when it is not known", function()
    assert.matches("^cf update%-service <instance> %-c '{\"authorities\":%[\"JOB_STATUS_GET\"%]}'",
                   errors.forbidden_hint(nil, "uaa.resource", "JOB_STATUS_GET"))
  end)

  it("points elsewhere when the token already has the authority", function()
    assert.matches("^the token already has TASK_GET, so the 403 has another cause",
                   errors.forbidden_hint("x", scope, "TASK_GET"))
  end)
end)
