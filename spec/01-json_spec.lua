-- sapwf.json: validation with paths, exact integers, empty arrays, null, and decoding.
local json = require "sapwf.json"
local cjson = require "cjson"

local has_integers = math.type ~= nil
-- The workaround for Debian's lua-cjson 2.1.0 (nil with a cjson that needs none), and
-- `it` for the tests of that workaround: skipped, saying so, when it is not in use.
local compat = json._compat
local it_compat = compat and it or function(name)
  pending(name .. " (the workaround for lua-cjson 2.1.0 is not in use with this cjson)")
end

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

    -- How numbers are read is cjson's: these are the workaround's rules. OpenResty's cjson
    -- reads 2.0 as a float, and an integer beyond 64 bits as the largest integer.
    it_compat("reads integral numbers within 2^53 as integers, others as floats", function()
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

    it_compat("reads integers beyond 64 bits as floats", function()
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

  it("reads a number beyond a double's range as infinity, which encode then refuses", function()
    local v = assert(json.decode('{"up":1E400,"down":[-1e999],"tiny":1e-400}'))
    assert.equal(math.huge, v.up)
    assert.equal(-math.huge, v.down[1])
    assert.equal(0, v.tiny)
    local text, msg = json.encode(v, "context")
    assert.is_nil(text)
    assert.matches("infinity is not JSON", msg)
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

  it_compat("reads a text that contains the placeholder prefix unchanged", function()
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
    -- at the line that called them, as every argument error of sapwf
    local sapwf = require "sapwf"
    for _, name in ipairs({ "array", "object" }) do
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, msg = pcall(function() local t = sapwf[name](5); return t end)
      assert.is_false(ok)
      assert.matches("01%-json_spec%.lua:" .. line .. ": bad argument #1 to '" .. name .. "'",
                     msg)
    end
  end)
end)

-- The common cases of the old cjson's walks run in C (src/compat/json_walk.c); the Lua
-- walks stay for the rest. These hold the C side to the Lua side over seeded random values,
-- so the fast path can never let through what the Lua walk refuses, nor write something
-- else. (Only where the workaround is in use: Debian's lua-cjson.)
describe("sapwf.json's C fast paths agree with its Lua walks", function()
  local core = compat and { json_plain = require("sapwf.compat.json_walk").plain,
                            json_fix = require("sapwf.compat.json_walk").fix }
  local SEED = 20261123
  local seed = SEED
  local function rand(n)                     -- 1..n, Park-Miller: the same on every Lua
    seed = (seed * 16807) % 2147483647
    return seed % n + 1
  end
  local NUMBERS = { 0, 1, -1, 42, 1.5, -0.25, 0.1 + 0.2, math.pi, 1e14, 1e14 - 1, -1e14,
    -(1e14 - 1), 2^53, 2^53 + 2, 1e300, -1e-300, 0 / 0, math.huge, -math.huge, -0.0 }
  if has_integers then
    for _, n in ipairs({ 99999999999999, 100000000000000, -100000000000000, math.maxinteger,
                         math.mininteger, 7 }) do
      NUMBERS[#NUMBERS + 1] = math.tointeger(n)
    end
  end
  local STRINGS = { "", "order", "a\"b\\c", "line\nbreak", "\0nul", "Größe", "\255\254",
    "\237\160\128", "日本", ("x"):rep(300) }

  local value
  local function tbl(depth)
    local t, shape = {}, rand(7)
    local n = rand(4) - 1
    if shape <= 3 then                       -- an object
      for _ = 1, n do t[STRINGS[rand(#STRINGS)] .. rand(9)] = value(depth + 1) end
    elseif shape <= 5 then                   -- an array
      for i = 1, n do t[i] = value(depth + 1) end
    elseif shape == 6 then                   -- odd keys
      local odd = { 1.5, true, 3, "k", 0, -1 }
      for _ = 1, n do t[odd[rand(#odd)]] = value(depth + 1) end
    else                                     -- marked, or with a hole
      local pick = rand(3)
      if pick == 1 then t = json.array() for i = 1, n do t[i] = value(depth + 1) end
      elseif pick == 2 then t = json.object{ [1] = value(depth + 1) }
      else t[1], t[3] = value(depth + 1), value(depth + 1) end
    end
    return t
  end
  function value(depth)
    local kind = rand(depth > 4 and 5 or 7)
    if kind == 1 then return NUMBERS[rand(#NUMBERS)]
    elseif kind == 2 then return STRINGS[rand(#STRINGS)]
    elseif kind == 3 then return rand(2) == 1
    elseif kind == 4 then return json.null
    elseif kind == 5 then return ({ print, io.stdout, coroutine.create(function() end) })[rand(3)]
    end
    return tbl(depth)
  end

  -- No metatable and no byte above 127 anywhere in it.
  local function pure(v, depth)
    depth = depth or 0
    if type(v) == "string" then return not v:find("[\128-\255]") end
    if type(v) ~= "table" then return true end
    if getmetatable(v) or depth > 100 then return false end
    for k, x in pairs(v) do
      if not pure(k, depth + 1) or not pure(x, depth + 1) then return false end
    end
    return true
  end

  it_compat("json_plain says yes exactly where the Lua walk finds a value cjson writes as it is",
     function()
    local plain_count, agreed = 0, 0
    for case = 1, 3000 do
      local v = value(0)
      local fast = core.json_plain(v)
      local verdict, message = json._walk(v)
      if fast then
        plain_count = plain_count + 1
        assert(verdict == "plain", ("case %d (seed %d): C said plain, Lua said %s"):format(
          case, SEED, tostring(verdict or message)))
        assert.equal(cjson.encode(v), json.encode(v))
      end
      -- C may say no to a plain value only for non-ASCII text or a metatable.
      if verdict == "plain" and pure(v) then
        agreed = agreed + 1
        assert(fast, ("case %d (seed %d): Lua said plain, C said no"):format(case, SEED))
      end
    end
    assert.is_true(agreed > 300, "plain pure values: " .. agreed)
    -- The generator must reach both sides, or this proves nothing.
    assert.is_true(plain_count > 300, "plain values: " .. plain_count)
    assert.is_true(plain_count < 2700, "plain values: " .. plain_count)
  end)

  it_compat("json_plain says yes to plain values without metatables or non-ASCII bytes", function()
    local nested = { a = { 1, 2, { b = "c" } }, d = json.null, e = false, f = 0.5 }
    assert.is_true(core.json_plain(nested))
    assert.is_true(core.json_plain({}))
    assert.is_true(core.json_plain("x"))
    assert.is_false(core.json_plain({ s = "Größe" }))          -- the Lua walk checks UTF-8
    assert.is_false(core.json_plain(json.array{ 1 }))          -- marked: the Lua walk
    assert.is_false(core.json_plain({ 1e14 }))                 -- needs a placeholder
    assert.is_false(core.json_plain({ 0.1 + 0.2 }))
    local deep = {}
    local t = deep
    for _ = 1, 1200 do t.x = {}; t = t.x end
    assert.is_false(core.json_plain(deep))                     -- deeper than cjson goes
    local cycle = {}
    cycle.self = cycle
    assert.is_false(core.json_plain(cycle))
  end)

  -- What json_fix must do, written plainly: the Lua walk it replaced.
  local function reference_fix(v, notes)
    if type(v) == "table" then
      if next(v) == nil then notes.empty = true end
      for k, x in pairs(v) do v[k] = reference_fix(x, notes) end
    elseif type(v) == "number" and v % 1 == 0 and v == v and v ~= math.huge
        and v ~= -math.huge then
      if v < 2^53 and v > -2^53 then
        if has_integers then return math.tointeger(v) end
      elseif has_integers then
        notes.big = true
      end
    end
    return v
  end

  local function same(a, b, where)
    assert.equal(type(a), type(b), where)
    if type(a) == "table" then
      for k, x in pairs(a) do same(x, b[k], where .. "." .. tostring(k)) end
      for k in pairs(b) do assert(a[k] ~= nil, where .. ": extra key " .. tostring(k)) end
    elseif type(a) == "number" and has_integers then
      assert.equal(math.type(a), math.type(b), where)
      assert(a == b or (a ~= a and b ~= b), where)
    else
      assert.equal(a, b, where)
    end
  end

  it_compat("json_fix makes the same integers and notes as the Lua walk", function()
    local empties, bigs = 0, 0
    for case = 1, 2000 do
      local v = value(0)
      local text = json.encode(v)
      if text then
        local expected, notes = cjson.decode(text), {}
        expected = reference_fix(expected, notes)
        local got, empty, big = core.json_fix(cjson.decode(text))
        local where = ("case %d (seed %d)"):format(case, SEED)
        same(expected, got, where)
        assert.equal(notes.empty == true, empty, where)
        assert.equal(notes.big == true, big, where)
        if empty then empties = empties + 1 end
        if big then bigs = bigs + 1 end
      end
    end
    assert.is_true(empties > 50, "empty tables: " .. empties)
    if has_integers then assert.is_true(bigs > 50, "big numbers: " .. bigs) end
  end)
end)

-- The workaround is fenced: loaded only for a cjson that lacks exact integers or empty
-- arrays, told by what cjson does. Debian's lua-cjson 2.1.0 lacks both; OpenResty's (what
-- LuaRocks installs) has both, and with it sapwf never loads the workaround. A directory
-- with OpenResty's cjson.so built for this Lua, in SAPWF_MODERN_CJSON, runs that side here.
describe("sapwf.json picks its way by what cjson does", function()
  local helpers = require "spec.helpers"

  it("loads the workaround with a cjson that keeps no empty array or big integer", function()
    local c = cjson.new()
    local keeps = cjson.array_mt ~= nil and c.decode_array_with_array_mt ~= nil
    if keeps then
      pending("this cjson keeps empty arrays: the workaround's side is tested with Debian's")
      return
    end
    assert.truthy(compat)
    assert.equal(compat, package.loaded["sapwf.compat.cjson21"])
    assert.truthy(package.loaded["sapwf.compat.json_walk"])
  end)

  local modern = os.getenv("SAPWF_MODERN_CJSON")
  local check = modern and it or function(name)
    pending(name .. " (set SAPWF_MODERN_CJSON to a directory with OpenResty's cjson.so)")
  end
  check("with OpenResty's cjson, loads no workaround and keeps integers and []", function()
    local lua = jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
    local program = [[
      local cjson = require "cjson"
      assert(cjson.array_mt, "not OpenResty's cjson: " .. package.searchpath("cjson", package.cpath))
      local json = require "sapwf.json"
      assert(json._compat == nil and package.loaded["sapwf.compat.cjson21"] == nil
             and package.loaded["sapwf.compat.json_walk"] == nil, "the workaround was loaded")
      local text = assert(json.encode({ a = json.array(), n = 9007199254740991,
                                        o = json.object{ [1] = "x" }, l = { 1, 2 } }))
      assert(text:find('"a":[]', 1, true), text)
      assert(text:find('"n":9007199254740991', 1, true), text)
      assert(text:find('"o":{"1":"x"}', 1, true), text)
      if math.type then
        local big = assert(json.encode({ b = math.tointeger(2^62) }))
        assert(big == '{"b":4611686018427387904}', big)
        local v = assert(json.decode('{"b":4611686018427387905,"e":[],"i":7}'))
        assert(v.b == 4611686018427387905 and math.type(v.i) == "integer", "integers")
        assert(getmetatable(v.e) == json.array_mt, "[] read back as an array")
        assert(json.encode(v.e) == "[]")
      end
      local _, message = json.encode({ context = { items = { { price = 0 / 0 } } } }, "context")
      assert(message == "context.context.items[1].price: NaN is not JSON", message)
      io.write("ok")
    ]]
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write(program)
    f:close()
    local ok, out = helpers.run(string.format(
      "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='%s/?.so;./build/%s/?.so;;' %s %s",
      modern, lua, lua, file))
    os.remove(file)
    assert.is_true(ok, out)
    assert.equal("ok", out)
  end)
end)
