-- The README's authority table is made from lua/sapwf/operations.lua; this keeps them equal.
local readme_table = dofile("scripts/authority-table.lua")

describe("README", function()
  local readme
  setup(function()
    local f = assert(io.open("README.md", "rb"))
    readme = f:read("*a")
    f:close()
  end)

  it("holds the authority table generated from operations.lua", function()
    local s = assert(readme:find(readme_table.BEGIN, 1, true), "no start marker")
    local e = assert(readme:find(readme_table.END, s, true), "no end marker")
    local shown = readme:sub(s + #readme_table.BEGIN + 1, e - 1)
    assert.are.equal(readme_table.table_text(), shown)
  end)

  it("opens with the two commands, make demo and make test", function()
    local first_block = readme:match("```sh\n(.-)```")
    assert.truthy(first_block, "no shell block")
    assert.truthy(first_block:find("make demo", 1, true))
    assert.truthy(first_block:find("make test", 1, true))
  end)

  it("documents every public client method", function()
    local sapwf = require "sapwf"
    local client = require "sapwf.client"
    local missing = {}
    for name in pairs(client.methods) do
      if not (readme:find("wf:" .. name .. "(", 1, true)
              or readme:find("wf:" .. name .. "{", 1, true)) then
        missing[#missing + 1] = name
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
    assert.truthy(sapwf.new)
  end)
end)
