-- sapwf.json: validation with paths, exact integers, empty arrays, null, and decoding.
local json = require "sapwf.json"
local cjson = require "cjson"

local has_integers = math.type ~= nil

-- Decodes text with plain cjson, to check what we wrote independently of our decoder.
local function plain(text) return cjson.decode(text) end

describe("sapwf.json encode", function()
  it("writes objects, arrays, strings, booleans and null", function()
    local text = assert(json.encode({ a = { 1, 2, 3 }, b = "x\"y", c = true, d = json.null }))
    local back = plain(text)
    assert.same({ 1, 2, 3 }, back.a)
    assert.equal("x\"y", back.b)
    assert.is_true(back.c)
    assert.equal(cjson.null, back.d)
  end)

  it("writes an empty plain table as an object and array{} as an array", function()
    assert.equal("{}", json.encode({}))
    assert.equal("[]", json.encode(json.array()))
    local text = assert(json.encode({ list = json.array{}, map = {} }))
    assert.truthy(text:find('"list":[]', 1, true))
    assert.truthy(text:find('"map":{}', 1, true))
  end)

  it("writes nested empty arrays", function()
    assert.equal("[[],[[]]]", json.encode(json.array{ json.array{}, json.array{ json.array{} } }))
  end)

  it("writes integer keys of an object() table as member names", function()
    local back = plain(assert(json.encode(json.object{ [1] = "a", [7] = "b" })))
    assert.same({ ["1"] = "a", ["7"] = "b" }, back)
  end)

  it("does not change the value it encodes", function()
    local inner = json.array{}
    local value = { n = 2^60, list = inner, s = "x" }
    assert(json.encode(value))
    assert.equal(inner, value.list)
    assert.equal(json.array_mt, getmetatable(inner))
    assert.is_nil(getmetatable(value))
  end)

  it("accepts a table reached twice without a cycle", function()
    local shared = { 1, 2 }
    local back = plain(assert(json.encode({ a = shared, b = shared })))
    assert.same({ 1, 2 }, back.a)
    assert.same({ 1, 2 }, back.b)
  end)

  it("writes fractions exactly where cjson's 14 digits would round them", function()
    local v = 0.1 + 0.2
    assert.are_not.equal(v, tonumber(string.format("%.14g", v)))   -- what cjson alone loses
    local text = assert(json.encode({ v = v, pi = math.pi, small = 1.5 }))
    assert.equal(v, tonumber(text:match('"v":([^,}]+)')))
    assert.equal(math.pi, tonumber(text:match('"pi":([^,}]+)')))
    assert.equal("1.5", text:match('"small":([^,}]+)'))
  end)

  it("writes large integral floats with every digit", function()
    local text = assert(json.encode({ f = 2^53 + 0.0, g = -2^62 + 0.0 }))
    assert.equal("9007199254740992", text:match('"f":(%-?%d+)'))
    assert.equal("-4611686018427387904", text:match('"g":(%-?%d+)'))
  end)

  it("keeps a user string that contains the placeholder prefix", function()
    local prefix = json._nonce()
    local tricky = prefix .. "1"
    local text = assert(json.encode({ s = tricky, big = 2^60 }))
    assert.equal(tricky, plain(text).s)
    assert.truthy(text:find('"big":1152921504606846976', 1, true))
    assert.are_not.equal(prefix, json._nonce())          -- a fresh prefix was chosen
  end)
end)

if has_integers then
  describe("sapwf.json integers (Lua 5.3+)", function()
    local cases = {
      { "2^53", math.tointeger(2^53), "9007199254740992" },
      { "2^53 + 1", 9007199254740993, "9007199254740993" },
      { "-2^63", math.mininteger, "-9223372036854775808" },
      { "2^63 - 1", math.maxinteger, "9223372036854775807" },
      { "10^14", 100000000000000, "100000000000000" },
      { "small", 42, "42" },
    }
    for _, case in ipairs(cases) do
      it("writes and reads " .. case[1] .. " exactly", function()
        local text = assert(json.encode({ n = case[2] }))
        assert.equal('{"n":' .. case[3] .. '}', text)
        local back = assert(json.decode(text))
        assert.equal("integer", math.type(back.n))
        assert.equal(case[2], back.n)
      end)
    end

    it("reads integral numbers within 2^53 as integers, others as floats", function()
      local v = assert(json.decode('{"a":1,"b":2.0,"c":2.5,"d":1e300,"e":-7,"f":[3,4]}'))
      assert.equal("integer", math.type(v.a))
      assert.equal("integer", math.type(v.b))
      assert.equal("float", math.type(v.c))
      assert.equal("float", math.type(v.d))
      assert.equal("integer", math.type(v.e))
      assert.equal("integer", math.type(v.f[2]))
      assert.equal("integer", math.type(json.decode("12")))
    end)

    it("leaves long digit runs inside strings and fractions alone", function()
      local v = assert(json.decode(
        '{"s":"12345678901234567890","t":"[]","x":0.12345678901234567891}'))
      assert.equal("12345678901234567890", v.s)
      assert.equal("[]", v.t)
      assert.equal("float", math.type(v.x))
    end)

    it("reads integers beyond 64 bits as floats", function()
      local v = assert(json.decode('[123456789012345678901234]'))
      assert.equal("float", math.type(v[1]))
      assert.equal(1.2345678901234568e+23, v[1])
    end)
  end)
end

describe("sapwf.json refuses what is not JSON, naming the path", function()
  local function refused(value, root)
    local text, msg = json.encode(value, root or "context")
    assert.is_nil(text)
    assert.is_string(msg)
    return msg
  end

  it("NaN deep in a context", function()
    local ctx = { items = { { price = 1 }, { price = 2 }, { price = 0 / 0 } } }
    assert.equal("context.items[3].price: NaN is not JSON", refused(ctx))
  end)

  it("infinity", function()
    assert.equal("context.x: infinity is not JSON", refused({ x = math.huge }))
    assert.equal("context.x: infinity is not JSON", refused({ x = -math.huge }))
  end)

  it("functions, userdata, threads", function()
    assert.equal("context.f: a function is not JSON", refused({ f = print }))
    assert.equal("context.list[2]: a userdata is not JSON", refused({ list = { 1, io.stdout } }))
    assert.equal("context.co: a thread is not JSON",
                 refused({ co = coroutine.create(function() end) }))
  end)

  it("a cycle", function()
    local t = { a = {} }
    t.a.back = t
    assert.equal("context.a.back: cycle (a table contains itself)", refused(t))
  end)

  it("mixed keys", function()
    assert.matches("^context%.m: table mixes array indexes %(2%) and string keys %(1%)$",
                   refused({ m = { 1, 2, x = 3 } }))
  end)

  it("a sparse array", function()
    assert.matches("^context%.s: sparse array %(2 values, highest index 3%)",
                   refused({ s = { 1, nil, 3 } }))
  end)

  it("keys that are neither strings nor 1..n", function()
    assert.matches("^context: key true %(a boolean%) is not JSON", refused({ [true] = 1 }))
    assert.matches("^context: key 1%.5 %(a number%) is not JSON", refused({ [1.5] = 1 }))
    assert.matches("^context: key 0 %(a number%) is not JSON", refused({ [0] = 1 }))
  end)

  it("string keys in a table marked as array", function()
    local t = json.array{}
    t.x = 1
    assert.equal("context: table marked as array has string keys", refused(t))
  end)

  it("names odd keys in brackets", function()
    assert.equal('context["a b"][1]: a function is not JSON', refused({ ["a b"] = { print } }))
  end)

  it("nesting deeper than cjson allows", function()
    local deep = {}
    local t = deep
    for _ = 1, 1001 do t.x = {}; t = t.x end
    assert.matches("nested more than 1000 levels deep$", refused(deep))
  end)

  if utf8 then
    it("invalid UTF-8 (Lua 5.3+)", function()
      assert.equal("context.s: string is not valid UTF-8", refused({ s = "a\255b" }))
      assert.equal('context["\\255"]: key is not valid UTF-8', refused({ ["\255"] = 1 }))
    end)
  end

  it("leaves no state behind after a failure", function()
    local t = { x = 0 / 0 }
    refused({ a = t })
    -- The same table is fine in a later call that has no NaN in it.
    t.x = 1
    assert.equal('{"a":{"x":1}}', json.encode({ a = t }))
  end)
end)

describe("sapwf.json decode", function()
  it("marks empty arrays so they are written back as arrays", function()
    local v = assert(json.decode('{"list":[],"spaced":[ \n ],"map":{},"nested":[[]]}'))
    assert.equal(json.array_mt, getmetatable(v.list))
    assert.equal(json.array_mt, getmetatable(v.spaced))
    assert.is_nil(getmetatable(v.map))
    local text = assert(json.encode(v))
    assert.truthy(text:find('"list":[]', 1, true))
    assert.truthy(text:find('"map":{}', 1, true))
    assert.truthy(text:find('"nested":[[]]', 1, true))
    assert.equal(json.array_mt, getmetatable(assert(json.decode("[]"))))
  end)

  it("tells [] inside strings, after escaped quotes, from real empty arrays", function()
    local v = assert(json.decode('{"s":"a\\"[]\\\\","t":[],"u":"\\\\\\"[]","w":["[]"]}'))
    assert.equal('a"[]\\', v.s)
    assert.equal(json.array_mt, getmetatable(v.t))
    assert.equal('\\"[]', v.u)
    assert.equal("[]", v.w[1])
  end)

  it("reads null as sapwf.null (cjson.null)", function()
    local v = assert(json.decode('{"a":null,"b":[null]}'))
    assert.equal(cjson.null, v.a)
    assert.equal(json.null, v.b[1])
  end)

  it("returns nil and a position, never the text, for bad JSON", function()
    local v, msg = json.decode('{"secret":"s3cr3t-value", broken')
    assert.is_nil(v)
    assert.matches("character", msg)
    assert.is_nil(msg:find("s3cr3t", 1, true))
    assert.is_nil(json.decode(""))
    assert.is_nil(json.decode('{"a":NaN}'))
  end)

  it("reads a text that contains the placeholder prefix unchanged", function()
    local tricky = json._nonce() .. "1"
    local v = assert(json.decode('{"s":"' .. tricky .. '","a":[]}'))
    assert.equal(tricky, v.s)
    assert.equal(json.array_mt, getmetatable(v.a))
  end)
end)

describe("sapwf.array and sapwf.object", function()
  it("return the table they mark, or a new one", function()
    local t = { 1 }
    assert.equal(t, json.array(t))
    assert.equal(json.object_mt, getmetatable(json.object()))
  end)

  it("raise for a non-table or a table with another metatable", function()
    assert.has_error(function() json.array(5) end,
                     "bad argument #1 to 'array' (table expected, got number)")
    assert.has_error(function() json.object(setmetatable({}, {})) end,
                     "bad argument #1 to 'object' (table already has a metatable)")
  end)
end)
