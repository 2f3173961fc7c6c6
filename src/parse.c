/* core.retry_after and core.parse_count: the header parsers of headers.c for the Lua layer,
 * which reads Retry-After and X-Total-Count from the headers table of client:request.
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <time.h>

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
