/* sapwf.core: libcurl client for the SAP BTP Workflow REST API (module entry point).
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <limits.h>
#include <pthread.h>

/* curl_global_init is not reference counted by us: it runs once per process, however
 * many Lua states load the module, and is never undone (other code may use libcurl).
 * Lua states may load the module at the same time from several threads (nginx runs one
 * Lua state per thread of a thread pool, see sapwf.ngx), hence pthread_once. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void init_curl(void)
{
  curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}


/* Runs protected from core_escape: lua_pushstring may raise a memory error, and the
 * string it copies belongs to libcurl and must be freed whatever happens. */
static int push_cstring(lua_State *L)
{
  lua_pushstring(L, (const char *)lua_touserdata(L, 1));
  return 1;
}


/***
 * Percent-encode everything but A-Za-z0-9-._~ (NUL bytes too), with curl_easy_escape.
 * @function escape
 * @tparam string s
 * @treturn string
 */
static int core_escape(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char *escaped;
  int rc;
  luaL_argcheck(L, len <= INT_MAX, 1, "string too long");
  lua_pushcfunction(L, push_cstring);                 /* s, f */
  escaped = curl_easy_escape(NULL, s, (int)len);
  if (escaped == NULL)
    return luaL_error(L, "not enough memory");
  lua_pushlightuserdata(L, escaped);                  /* s, f, p */
  rc = lua_pcall(L, 1, 1, 0);                         /* s, escaped-or-error */
  curl_free(escaped);
  if (rc != LUA_OK)
    return lua_error(L);
  return 1;
}


static const luaL_Reg core_functions[] = {
  {"new", sapwf_client_new},
  {"escape", core_escape},
  {"sleep", sapwf_core_sleep},
  {"monotonic", sapwf_core_monotonic},
  {"retry_after", sapwf_core_retry_after},
  {"parse_count", sapwf_core_parse_count},
  {"path_problem", sapwf_core_path_problem},
  {"file_id", sapwf_core_file_id},
  {"catch_sigint", sapwf_core_catch_sigint},
  {"sigint_caught", sapwf_core_sigint_caught},
  {"header", sapwf_core_header},
  {"headers", sapwf_core_headers},
  {"json_plain", sapwf_core_json_plain},
  {"json_fix", sapwf_core_json_fix},
  {NULL, NULL}
};


/* Loads cjson.safe once and hands its decode function to the client metatable (as an
 * upvalue of the methods), so token answers are decoded by lua-cjson, never by hand. */
__attribute__((visibility("default")))
int luaopen_sapwf_core(lua_State *L)
{
  pthread_once(&curl_once, init_curl);
  if (curl_init_rc != CURLE_OK)
    return luaL_error(L, "sapwf.core: curl_global_init failed");
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson.safe");
  lua_call(L, 1, 1);                                  /* cjson.safe */
  lua_getfield(L, -1, "decode");                      /* cjson.safe, decode */
  if (lua_type(L, -1) != LUA_TFUNCTION)
    return luaL_error(L, "sapwf.core: cjson.safe has no decode function");
  lua_remove(L, -2);                                  /* decode */
  sapwf_client_open(L);                               /* <empty> */

  luaL_newlib(L, core_functions);                     /* core */
  lua_pushliteral(L, SAPWF_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, curl_version());
  lua_setfield(L, -2, "curl_version");
  return 1;
}
