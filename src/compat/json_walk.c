/* sapwf.compat.json_walk: the two walks over Lua values that lua/sapwf/compat/cjson21.lua
 * makes around Debian's lua-cjson 2.1.0, in C because they run on every call and cost as
 * much as cjson itself when written in Lua (about 900 VM instructions per table entry on
 * Lua 5.4). A module of its own, not part of sapwf.core: only that old cjson needs it.
 * Neither walk reads or writes JSON text: cjson does all of that; cjson21.lua keeps the
 * slow paths and the placeholders, json.lua the messages.
 *
 *   json_plain(value) -> boolean    true: cjson.encode writes value exactly as it is, and
 *                                   json.lua's validating walk would find nothing wrong.
 *                                   false: anything else (json.lua then walks in Lua, to
 *                                   name what is wrong or to put in placeholders).
 *   json_fix(value) -> value, saw_empty, saw_big
 *                                   after cjson.decode: integral numbers below 2^53 become
 *                                   integers (Lua 5.3+), in place; saw_empty: some table is
 *                                   empty (it may have been []); saw_big: some integral
 *                                   number is at or beyond 2^53 (it may have lost digits).
 * MIT licence, see LICENSE. */
#include "../compat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((visibility("default"))) int luaopen_sapwf_compat_json_walk(lua_State *L);

/* cjson's nesting limit; json.lua's MAX_DEPTH. A cycle reaches it too, and then the Lua
 * walk names the cycle. */
#define MAX_DEPTH 1000
/* %.14g (cjson 2.1.0's number format) writes every integer below this exactly. */
#define EXACT_LIMIT 1e14
/* A double holds every integer below this. */
#define SAFE_INTEGER 9007199254740992.0


/* Whether a finite v is a whole number. From 2^52 up every double is one; below, the
 * conversion to long long is exact. (No floor(): the module does not link libm.) */
static int integral(lua_Number v)
{
  return fabs(v) >= 4503599627370496.0 || (lua_Number)(long long)v == v;
}


/* {====================================================================
 * json_plain
 * ===================================================================== */

/* Plain text for cjson: ASCII only. Other bytes need the UTF-8 check of the Lua walk, which
 * follows the running Lua version's utf8.len (5.3 and 5.4 differ on surrogates). */
static int plain_string(lua_State *L, int idx)
{
  size_t len, i;
  const unsigned char *s = (const unsigned char *)lua_tolstring(L, idx, &len);
  for (i = 0; i < len; i++) {
    if (s[i] >= 0x80)
      return 0;
  }
  return 1;
}


/* A number cjson writes exactly: an integer below 1e14, or a fraction %.14g reads back. */
static int plain_number(lua_State *L, int idx)
{
  lua_Number v;
  char text[64];
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    lua_Integer i = lua_tointeger(L, idx);
    return i < (lua_Integer)EXACT_LIMIT && i > -(lua_Integer)EXACT_LIMIT;
  }
#endif
  v = lua_tonumber(L, idx);
  if (!isfinite(v))
    return 0;
  if (integral(v))
    return v < EXACT_LIMIT && v > -EXACT_LIMIT;
  snprintf(text, sizeof text, "%.14g", (double)v);
  return strtod(text, NULL) == (double)v;
}


/* An array index key: a positive integer. Sets *index. */
static int index_key(lua_State *L, int idx, lua_Number *index)
{
  lua_Number k;
#if LUA_VERSION_NUM >= 503
  if (!lua_isinteger(L, idx))
    return 0;                     /* t[1.5]; t[1.0] is stored under the integer 1 */
#endif
  k = lua_tonumber(L, idx);
  if (!(k >= 1) || !isfinite(k) || !integral(k))
    return 0;
  *index = k;
  return 1;
}


static int plain_value(lua_State *L, int idx, int depth);

/* A table without a metatable whose keys are all ASCII strings (an object) or exactly
 * 1..n (an array), and whose values are plain. */
static int plain_table(lua_State *L, int idx, int depth)
{
  lua_Number count = 0, highest = 0;
  int strings = 0;
  /* A "no" ends the whole walk, so what is left on the stack (here a metatable) is
   * dropped by json_plain's return. */
  if (depth >= MAX_DEPTH || lua_getmetatable(L, idx) || !lua_checkstack(L, 3))
    return 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {                     /* ..., key, value */
    lua_Number index;
    if (lua_type(L, -2) == LUA_TSTRING) {
      if (count > 0 || !plain_string(L, -2))
        return 0;
      strings = 1;
    } else if (!strings && index_key(L, -2, &index)) {
      count++;
      if (index > highest)
        highest = index;
    } else {
      return 0;
    }
    if (!plain_value(L, lua_gettop(L), depth + 1))
      return 0;
    lua_pop(L, 1);                                    /* ..., key */
  }
  return count == highest;        /* no holes: a sparse array needs the Lua walk's message */
}


static int plain_value(lua_State *L, int idx, int depth)
{
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    return plain_string(L, idx);
  case LUA_TNUMBER:
    return plain_number(L, idx);
  case LUA_TBOOLEAN:
    return 1;
  case LUA_TLIGHTUSERDATA:
    return lua_touserdata(L, idx) == NULL;            /* cjson.null */
  case LUA_TTABLE:
    return plain_table(L, idx, depth);
  default:
    return 0;
  }
}


/***
 * Whether cjson.encode writes value exactly and sapwf.json's checks would pass it.
 * @function json_plain
 * @param value
 * @treturn boolean
 */
static int json_plain(lua_State *L)
{
  int plain;
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  plain = plain_value(L, 1, 0);
  lua_pushboolean(L, plain);
  return 1;
}

/* }==================================================================== */


/* {====================================================================
 * json_fix
 * ===================================================================== */

typedef struct {
  int saw_empty, saw_big;
} fix_state;


/* The number at idx as it should stay (returns 0) or be replaced by an integer (returns 1,
 * *out set). Notes integral numbers too large for a double to be exact. */
static int fix_number(lua_State *L, int idx, fix_state *st, lua_Integer *out)
{
  lua_Number v;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx))
    return 0;                     /* already one (a cjson that decodes integers) */
#endif
  v = lua_tonumber(L, idx);
  if (!isfinite(v) || !integral(v))
    return 0;
  if (v < SAFE_INTEGER && v > -SAFE_INTEGER) {
    *out = (lua_Integer)v;
#if LUA_VERSION_NUM >= 503
    return 1;
#else
    return 0;                     /* no integers on Lua 5.1 and LuaJIT */
#endif
  }
#if LUA_VERSION_NUM >= 503
  st->saw_big = 1;                /* Lua 5.1 reads them back as this same double anyway */
#endif
  return 0;
}


static void fix_table(lua_State *L, int idx, fix_state *st)
{
  luaL_checkstack(L, 4, "JSON nested too deeply");  /* cjson stops at 1000 levels */
  lua_pushnil(L);
  if (lua_next(L, idx) == 0) {
    st->saw_empty = 1;
    return;
  }
  do {                                                /* ..., key, value */
    int type = lua_type(L, -1);
    lua_Integer i;
    if (type == LUA_TTABLE) {
      fix_table(L, lua_gettop(L), st);
    } else if (type == LUA_TNUMBER && fix_number(L, -1, st, &i)) {
      lua_pushvalue(L, -2);                           /* ..., key, value, key */
      lua_pushinteger(L, i);
      lua_rawset(L, idx);         /* an existing key: allowed while traversing */
    }
    lua_pop(L, 1);                                    /* ..., key */
  } while (lua_next(L, idx) != 0);
}


/***
 * After cjson.decode: integral numbers below 2^53 become integers, in place.
 * @function json_fix
 * @param value what cjson.decode returned
 * @return value (a number may have become an integer)
 * @treturn boolean some table was empty
 * @treturn boolean some integral number was at or beyond 2^53
 */
static int json_fix(lua_State *L)
{
  fix_state st = {0, 0};
  lua_Integer i;
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  if (lua_type(L, 1) == LUA_TTABLE) {
    fix_table(L, 1, &st);
  } else if (lua_type(L, 1) == LUA_TNUMBER && fix_number(L, 1, &st, &i)) {
    lua_pushinteger(L, i);
    lua_replace(L, 1);
  }
  lua_pushboolean(L, st.saw_empty);
  lua_pushboolean(L, st.saw_big);
  return 3;
}

/* }==================================================================== */


static const luaL_Reg functions[] = {
  {"plain", json_plain},
  {"fix", json_fix},
  {NULL, NULL}
};


__attribute__((visibility("default")))
int luaopen_sapwf_compat_json_walk(lua_State *L)
{
  luaL_newlib(L, functions);
  return 1;
}
