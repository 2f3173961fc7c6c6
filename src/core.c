/* sapwf.core: libcurl client for the SAP BTP Workflow REST API (module entry point). It
 * only gathers: libcurl's global setup, the metatables of client.c, batch.c and
 * lua_request.c (header blocks), and the module table of the other files' functions.
 * MIT licence, see LICENSE. */
#include "sapwf.h"

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


static const luaL_Reg core_functions[] = {
  {"new", sapwf_client_new},
  {"escape", sapwf_core_escape},
  {"sleep", sapwf_core_sleep},
  {"monotonic", sapwf_core_monotonic},
  {"retry_after", sapwf_core_retry_after},
  {"parse_count", sapwf_core_parse_count},
  {"path_problem", sapwf_core_path_problem},
  {"fingerprint", sapwf_core_fingerprint},
  {"file_id", sapwf_core_file_id},
  {"temp_file", sapwf_core_temp_file},
  {"rename_noreplace", sapwf_core_rename_noreplace},
  {"file_kind", sapwf_core_file_kind},
  {"is_link", sapwf_core_is_link},
  {"real_path", sapwf_core_real_path},
  {"lock_file", sapwf_core_lock_file},
  {"mode_like", sapwf_core_mode_like},
  {"catch_sigint", sapwf_core_catch_sigint},
  {"sigint_caught", sapwf_core_sigint_caught},
  {"header", sapwf_core_header},
  {"headers", sapwf_core_headers},
  {"header_text", sapwf_core_header_text},
  {"redact", sapwf_core_redact},
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
  lua_pushvalue(L, -1);                               /* decode, decode */
  sapwf_client_open(L);                               /* decode */
  sapwf_batch_open(L);                                /* <empty>: adds client:batch */
  sapwf_headers_open(L);

  luaL_newlib(L, core_functions);                     /* core */
  lua_pushliteral(L, SAPWF_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, curl_version());
  lua_setfield(L, -2, "curl_version");
  return 1;
}
