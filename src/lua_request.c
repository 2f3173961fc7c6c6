/* What crosses between Lua and an exchange: the arguments of a request, checked (raising,
 * naming the argument), and its answer or failure pushed. client:request and batch:submit
 * / batch:wait go through here, so both take and give the same values.
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <string.h>


/* Checks the method, path and body arguments at arg, arg + 1, arg + 2 (raising, naming
 * the argument) and fills r; the strings stay on the Lua stack. */
void sapwf_check_request(lua_State *L, int arg, sapwf_request *r)
{
  size_t i;
  const char *problem;
  r->method = luaL_checkoption(L, arg, NULL, sapwf_method_names);
  r->path = luaL_checklstring(L, arg + 1, &r->path_len);
  problem = sapwf_path_problem(r->path, r->path_len);
  if (problem != NULL)
    luaL_argerror(L, arg + 1, problem);
  for (i = 0; i < r->path_len; i++)
    luaL_argcheck(L, (unsigned char)r->path[i] > ' ' && r->path[i] != 0x7f, arg + 1,
                  "path must not contain spaces or control characters");
  r->body = NULL;
  r->body_len = 0;
  r->accept = r->to_file = NULL;
  if (!lua_isnoneornil(L, arg + 2)) {
    if (lua_type(L, arg + 2) != LUA_TSTRING)
      luaL_argerror(L, arg + 2, lua_pushfstring(L, "string or nil expected, got %s",
                                                luaL_typename(L, arg + 2)));
    r->body = lua_tolstring(L, arg + 2, &r->body_len);
  }
}


/* Checks the optional table at arg of how the answer is taken (raising, naming the field)
 * and fills r: `accept`, the Accept header's value (default application/json), and
 * `to_file`, a path a 2xx body is written to instead of being returned. Both values stay
 * on the Lua stack until the call returns: the table alone would not keep them alive when
 * an __index function made them, and a collection during the call would free them. */
void sapwf_check_output(lua_State *L, int arg, sapwf_request *r)
{
  size_t len;
  if (lua_isnoneornil(L, arg))
    return;
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_getfield(L, arg, "accept");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, arg, "accept: string expected");
    r->accept = lua_tolstring(L, -1, &len);
    luaL_argcheck(L, len > 0 && sapwf_header_text_ok(r->accept, len, 1), arg,
                  "accept: a header value without control characters expected");
  }
  lua_getfield(L, arg, "to_file");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, arg, "to_file: string expected");
    r->to_file = lua_tolstring(L, -1, &len);
    luaL_argcheck(L, len > 0 && strlen(r->to_file) == len, arg,
                  "to_file: a file name without NUL bytes expected");
  }
}


/* The one error funnel: pushes nil and the error table, returns 2. */
int sapwf_push_error(lua_State *L, const sapwf_error *e)
{
  luaL_checkstack(L, 4, "too many nested calls");
  luaL_pushfail(L);
  lua_createtable(L, 0, 7);                           /* nil, err */
  lua_pushstring(L, e->kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, e->message);
  lua_setfield(L, -2, "message");
  lua_pushstring(L, e->phase);
  lua_setfield(L, -2, "phase");
  lua_pushboolean(L, e->sent);
  lua_setfield(L, -2, "sent");
  if (e->curl_code >= 0) {
    lua_pushinteger(L, (lua_Integer)e->curl_code);
    lua_setfield(L, -2, "curl_code");
  }
  if (e->status > 0) {
    lua_pushinteger(L, (lua_Integer)e->status);
    lua_setfield(L, -2, "status");
  }
  if (e->code[0] != '\0') {
    lua_pushstring(L, e->code);
    lua_setfield(L, -2, "code");
  }
  if (e->retry_after >= 0) {
    lua_pushnumber(L, (lua_Number)e->retry_after);
    lua_setfield(L, -2, "retry_after");
  }
  return 2;
}


/* The one way an answer goes to Lua: pushes status, body and the header lines of the last
 * response (names lower-cased; core.header and core.headers read them), then readies the
 * buffers for the next answer. Returns 3. One block of headers instead of a table: a call
 * reads one or two headers, and a table of all costs a dozen strings per call. The block
 * is a userdata, not a string: LuaJIT interns every string, and hashes a long one from a
 * few of its bytes, which two header blocks share but for the Date and the request id; so
 * each block went down a chain of its look-alikes, comparing them whole (start_many ran at
 * half its speed there). */
int sapwf_push_answer(lua_State *L, long status, sapwf_response *r)
{
  char *block;
  luaL_checkstack(L, 4, "too many nested calls");
  lua_pushinteger(L, (lua_Integer)status);
  lua_pushlstring(L, r->body.data != NULL ? r->body.data : "", r->body.len);
  block = (char *)lua_newuserdatauv(L, r->headers.len, 0);
  if (r->headers.len > 0)
    memcpy(block, r->headers.data, r->headers.len);
  luaL_getmetatable(L, SAPWF_HEADERS_MT);
  lua_setmetatable(L, -2);
  sapwf_buffer_reuse(&r->body);
  sapwf_buffer_reuse(&r->headers);
  return 3;
}


/* tostring of a header block: its name and size, the same in every Lua (5.1 and LuaJIT
 * know no __name). */
static int headers_tostring(lua_State *L)
{
  size_t len = lua_rawlen(L, 1);
  lua_pushfstring(L, SAPWF_HEADERS_MT " (%d bytes)", (int)len);
  return 1;
}


/* The metatable of header blocks: a name and tostring, for type errors and logs (the
 * lines themselves come out through core.header, core.headers and core.header_text). */
void sapwf_headers_open(lua_State *L)
{
  luaL_newmetatable(L, SAPWF_HEADERS_MT);
  lua_pushliteral(L, SAPWF_HEADERS_MT);
  lua_setfield(L, -2, "__name");
  lua_pushcfunction(L, headers_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}
