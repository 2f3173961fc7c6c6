/* Lua 5.1, LuaJIT and Lua 5.3 shims: the C code is written against the Lua 5.4 API.
 * Included first by every C file of sapwf.core. MIT licence, see LICENSE. */
#ifndef SAPWF_COMPAT_H
#define SAPWF_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#ifndef LUA_OK
#define LUA_OK 0
#endif

#if LUA_VERSION_NUM < 502

/* LuaJIT reports 501 as well, but it already has luaL_setfuncs and defines luaL_newlib
 * as a macro; plain Lua 5.1 has neither. So the macro is the feature test. The shim has a
 * private name: redefining luaL_setfuncs itself would clash with LuaJIT's declaration. */
#ifndef luaL_newlib
static inline void sapwf_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++)
      lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#define luaL_setfuncs(L, l, nup) sapwf_compat_setfuncs((L), (l), (nup))
#define luaL_newlibtable(L, l) lua_createtable((L), 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#define luaL_newlib(L, l) (luaL_newlibtable(L, l), luaL_setfuncs((L), (l), 0))
#endif

static inline int sapwf_compat_absindex(lua_State *L, int idx)
{
  return (idx > 0 || idx <= LUA_REGISTRYINDEX) ? idx : lua_gettop(L) + idx + 1;
}
#define lua_absindex(L, idx) sapwf_compat_absindex((L), (idx))
#define lua_rawlen(L, idx) lua_objlen((L), (idx))

#endif /* LUA_VERSION_NUM < 502 */

#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, size, nuvalue) lua_newuserdata((L), (size))
#define luaL_pushfail(L) lua_pushnil(L)
#endif

#endif /* SAPWF_COMPAT_H */
