-- sapwf.query: Lua names to the spec's parameters, escaped by libcurl (sapwf.core.escape).
local query = require "sapwf.query"
local ops = require "sapwf.operations".by_name

local INSTANCES, TASKS, FORMS = ops.instances, ops.tasks, ops.forms

local function build(op, q) return query.build(op, q, "instances", 1) end

describe("query.build", function()
  it("is empty without a query", function()
    assert.equal("", build(INSTANCES, nil))
    assert.equal("", build(INSTANCES, {}))
  end)

  it("maps the Lua paging names and sorts parameters", function()
    assert.equal("?$inlinecount=allpages&$orderby=startedAt%20desc&$skip=20&$top=10"
                 .. "&definitionId=orderapproval",
                 build(INSTANCES, { top = 10, skip = 20, orderby = "startedAt desc",
                                    inlinecount = true, definitionId = "orderapproval" }))
  end)

  it("accepts the spec's $ names too", function()
    assert.equal("?$expand=attributes&$top=5", build(INSTANCES, { ["$top"] = 5,
                                                                   ["$expand"] = "attributes" }))
    assert.equal("?$inlinecount=none", build(INSTANCES, { inlinecount = false }))
  end)

  it("repeats a parameter for an array (OR)", function()
    assert.equal("?status=RUNNING&status=ERRONEOUS",
                 build(INSTANCES, { status = { "RUNNING", "ERRONEOUS" } }))
  end)

  it("escapes values with libcurl, so they cannot add parameters", function()
    assert.equal("?businessKey=a%26b%3Dc%20d%2F%C3%BC%23%3F",
                 build(INSTANCES, { businessKey = "a&b=c d/ü#?" }))
  end)

  it("writes numbers as integers and booleans as words", function()
    assert.equal("?$top=3", build(INSTANCES, { top = 3.0 }))
    assert.equal("?subject=true", build(INSTANCES, { subject = true }))
  end)

  it("allows attributes.<id> where the spec does, escaping the id", function()
    assert.equal("?attributes.customer%20id=C%2B1",
                 build(INSTANCES, { ["attributes.customer id"] = "C+1" }))
    assert.equal("?attributes.x=1", query.build(TASKS, { ["attributes.x"] = 1 }, "tasks", 1))
    assert.has_error(function() query.build(FORMS, { ["attributes.x"] = 1 }, "forms", 1) end)
  end)

  it("raises for an unknown name, naming it and what the call takes", function()
    local ok, msg = pcall(build, INSTANCES, { stauts = "RUNNING" })
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'instances' %(unknown query name 'stauts'; instances "
                   .. "takes .*status.*attributes%.<id>%)", msg)
    assert.has_error(function() query.build(FORMS, { definitionId = "x" }, "forms", 1) end,
      "bad argument #1 to 'forms' (unknown query name 'definitionId'; forms takes "
      .. "inlinecount, skip, top, type)")
  end)

  it("raises for values without a text form and for a name given twice", function()
    assert.has_error(function() build(INSTANCES, { status = print }) end,
      "bad argument #1 to 'instances' (query 'status': string, number, boolean or list "
      .. "expected, got function)")
    assert.has_error(function() build(INSTANCES, { status = {} }) end,
      "bad argument #1 to 'instances' (query 'status' is an empty list)")
    assert.has_error(function() build(INSTANCES, { status = { "A", {} } }) end,
      "bad argument #1 to 'instances' (query 'status' item 2: string, number or boolean "
      .. "expected, got table)")
    assert.has_error(function() build(INSTANCES, { top = 1, ["$top"] = 2 }) end,
      "bad argument #1 to 'instances' (query name '$top' given twice)")
    -- an empty filter is none to the service: a script's empty id would list everything
    assert.has_error(function() build(INSTANCES, { definitionId = "" }) end,
      "bad argument #1 to 'instances' (query 'definitionId' is empty (the service would take "
      .. "it for no filter, and list every item))")
    assert.has_error(function() build(INSTANCES, { status = { "RUNNING", "" } }) end,
      "bad argument #1 to 'instances' (query 'status' item 2 is empty (the service would take "
      .. "it for no filter))")
    assert.equal("?$orderby=", build(INSTANCES, { orderby = "" }))   -- no filter: as given
    -- a list is ORed by the service, but for what it takes once: a list raises there
    for _, case in ipairs({ { INSTANCES, "orderby", "$orderby" },
        { INSTANCES, "startedFrom", "startedFrom" }, { INSTANCES, "completedUpTo", "completedUpTo" },
        { TASKS, "containsText", "containsText" }, { TASKS, "dueDateFrom", "dueDateFrom" },
        { FORMS, "type", "type" }, { ops.undeploy, "cascade", "cascade" } }) do
      assert.has_error(function() build(case[1], { [case[2]] = { "a", "b" } }) end,
        "bad argument #1 to 'instances' (query '" .. case[3] .. "' is taken once: a single "
        .. "value expected, got a list)")
    end
    assert.equal("?containsText=a&containsText=b",
                 build(INSTANCES, { containsText = { "a", "b" } }))
    assert.equal("?recipientUsers=a&recipientUsers=b",
                 build(TASKS, { recipientUsers = { "a", "b" } }))
    -- SAP's task list: "You must not specify texts that contain commas" (subject, description)
    assert.has_error(function() build(TASKS, { subject = "Approve order 1, urgent" }) end,
      "bad argument #1 to 'instances' (query 'subject' cannot hold a comma (SAP's definition "
      .. "forbids it there))")
    assert.has_error(function() build(TASKS, { description = { "a", "b,c" } }) end,
      "bad argument #1 to 'instances' (query 'description' item 2 cannot hold a comma (SAP's "
      .. "definition forbids it there))")
    assert.equal("?subject=a%2Cb", build(INSTANCES, { subject = "a,b" }))
    assert.has_error(function() build(INSTANCES, "status=RUNNING") end,
      "bad argument #1 to 'instances' (table expected, got string)")
    assert.has_error(function() build(INSTANCES, { top = 0 / 0 }) end)
  end)

  -- The service answers 400 to any other $top or $skip, and a float form ($top=1e+20) is
  -- no integer to it: both are the caller's mistake, raised before anything is sent.
  it("raises for a top or skip that is not an integer in the API's range", function()
    assert.equal("?$skip=4000&$top=0", build(INSTANCES, { top = 0, skip = 4000 }))
    assert.equal("?$skip=0&$top=1000", build(TASKS, { ["$top"] = 1000, ["$skip"] = 0 }))
    local cases = { { top = 1001 }, { top = -1 }, { top = 2.5 }, { top = 2^63 }, { top = 1e20 },
      { top = "10" }, { top = math.huge }, { top = 0 / 0 }, { ["$top"] = 1001 },
      { skip = 4001 }, { skip = -1 }, { skip = 0.5 }, { ["$skip"] = "0" }, { skip = true } }
    for _, q in ipairs(cases) do
      local name = next(q):gsub("^%$", "")
      local high = name == "top" and 1000 or 4000
      assert.has_error(function() build(INSTANCES, q) end, string.format(
        "bad argument #1 to 'instances' (%s must be an integer from 0 to %d)", name, high))
    end
    assert.has_error(function() query.build(FORMS, { top = 2^63 }, "forms", 1) end,
      "bad argument #1 to 'forms' (top must be an integer from 0 to 1000)")
  end)

  it("writes an integer beyond 64 bits in digits, never in a float form", function()
    assert.equal("?businessKey=100000000000000000000", build(INSTANCES, { businessKey = 1e20 }))
    assert.equal("?businessKey=-9223372036854775808",
                 build(INSTANCES, { businessKey = -2^63 }))
    assert.equal("?k=18446744073709551616", query.free({ k = 2^64 }, "request", 3))
    assert.equal("?k=0.5", query.free({ k = 0.5 }, "request", 3))
  end)
end)

describe("query.free", function()
  it("takes any names, escaping what is not plain", function()
    assert.equal("?$top=2&%24weird%20name=1&x=a%20b",
                 query.free({ x = "a b", ["$top"] = 2, ["$weird name"] = 1 }, "request", 3))
    assert.equal("?k=1&k=2", query.free({ k = { 1, 2 } }, "request", 3))
    assert.equal("", query.free(nil, "request", 3))
  end)
end)
