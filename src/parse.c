/* The header parsers of headers.c for the Lua layer: core.header and core.headers read
 * the header block that client:request and batch:wait return, core.retry_after and
 * core.parse_count the values of Retry-After and X-Total-Count. MIT licence, see LICENSE. */
#include "sapwf.h"

#include <time.h>


/***
 * The value of one header in a block of header lines (the last one, when it came more
 * than once), or nil.
 * @function header
 * @tparam string block as client:request returns it (names lower-cased)
 * @tparam string name lower-case
 * @treturn string|nil
 */
int sapwf_core_header(lua_State *L)
{
  size_t len, name_len;
  const char *block = luaL_checklstring(L, 1, &len);
  const char *name = luaL_checklstring(L, 2, &name_len);
  const char *value;
  size_t value_len;
  if (sapwf_header_value(block, len, name, name_len, &value, &value_len))   /* headers.c */
    lua_pushlstring(L, value, value_len);
  else
    lua_pushnil(L);
  return 1;
}


/***
 * Every header of a block of header lines as a table: t[name] = value (the last one, when
 * a name came more than once).
 * @function headers
 * @tparam string block as client:request returns it (names lower-cased)
 * @treturn table
 */
int sapwf_core_headers(lua_State *L)
{
  size_t len;
  const char *block = luaL_checklstring(L, 1, &len);
  const char *pos = block, *end = block + len;
  sapwf_header_field f;
  lua_createtable(L, 0, 8);
  while (sapwf_header_next(&pos, end, &f)) {
    lua_pushlstring(L, f.name, f.name_len);           /* t, name */
    lua_pushlstring(L, f.value, f.value_len);         /* t, name, value */
    lua_rawset(L, -3);                                /* t */
  }
  return 1;
}

/***
 * The seconds a Retry-After value asks to wait (delay-seconds or an HTTP-date), or nil when
 * the value is malformed. At most a year; 0 for a date in the past.
 * @function retry_after
 * @tparam string value
 * @treturn number|nil
 */
int sapwf_core_retry_after(lua_State *L)
{
  size_t len;
  const char *value = luaL_checklstring(L, 1, &len);
  double seconds;
  if (sapwf_retry_after(value, len, time(NULL), &seconds))
    lua_pushnumber(L, (lua_Number)seconds);
  else
    lua_pushnil(L);
  return 1;
}


/***
 * A header value that must be a count (X-Total-Count) as an integer, or nil unless it is
 * 1*DIGIT (spaces around allowed) and at most 2^53.
 * @function parse_count
 * @tparam string value
 * @treturn integer|nil
 */
int sapwf_core_parse_count(lua_State *L)
{
  size_t len;
  const char *value = luaL_checklstring(L, 1, &len);
  long long count;
  if (sapwf_parse_count(value, len, &count))
#if LUA_VERSION_NUM >= 503
    lua_pushinteger(L, (lua_Integer)count);
#else
    lua_pushnumber(L, (lua_Number)count);             /* a double holds 2^53 exactly */
#endif
  else
    lua_pushnil(L);
  return 1;
}


/***
 * Why a request path would leave the API's base path, or nil when it stays below it (the
 * rule of client:request and batch:submit, for the Lua layer's own argument checks).
 * @function path_problem
 * @tparam string path
 * @treturn string|nil
 */
int sapwf_core_path_problem(lua_State *L)
{
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  const char *problem = sapwf_path_problem(path, len);
  if (problem != NULL)
    lua_pushstring(L, problem);
  else
    lua_pushnil(L);
  return 1;
}
