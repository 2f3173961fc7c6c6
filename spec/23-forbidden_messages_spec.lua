-- A 403 on a client with every authority but one: tostring stays one short line however
-- many authorities the token has (the full cf command is in err.hint), and the hint keeps
-- every authority granted.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"
local operations = require "sapwf.operations"

describe("a 403's message", function()
  local emu
  local ALMOST = "sb-sapwf-almost!b1|workflow!b10150"

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)

  it("is a short line with every authority granted but the one missing", function()
    local all = {}
    for _, a in ipairs(operations.authorities) do
      if a ~= "WORKFLOW_INSTANCE_START" then all[#all + 1] = a end
    end
    emu:set_client(ALMOST, { secret = "almost-all-secret", authorities = all })
    local wf = assert(sapwf.new{ service_key = emu:service_key(ALMOST), instance = "my-wf" })
    local _, err = wf:start("simple")
    assert.equal("forbidden", err.kind)
    assert.equal("WORKFLOW_INSTANCE_START", err.authority)
    local line = tostring(err)
    assert.is_true(#line < 250, #line .. " characters: " .. line)
    assert.matches("Needs authority WORKFLOW_INSTANCE_START; fix: see err.hint", line, 1, true)
    assert.matches("^cf update%-service my%-wf %-c", err.hint)
    for _, a in ipairs(all) do assert.matches('"' .. a .. '"', err.hint, 1, true) end
    assert.is_true(#err.hint > 1000)
    assert.equal(#all, #err.granted)
    wf:close()
  end)
end)
