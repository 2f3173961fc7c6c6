/* One libcurl share handle per Lua state: the API handles of every client and batch in
 * that state share one connection cache, one DNS cache and one TLS session cache, so a
 * second client to the same service reuses the first one's kept-alive connections.
 *
 * Per Lua state, not per process: libcurl does not support sharing connections between
 * threads, and a Lua state is used by one thread at a time (sapwf.ngx runs one state per
 * thread of nginx's thread pool). The token handles stay out of it: they carry the secret or
 * a client certificate, and a TLS session or connection made with one client's certificate
 * must never serve another client's token request.
 *
 * The share is reference counted by its users (clients and batches), not by the garbage
 * collector: whatever order the collector finalizes them in, the last user to go frees it,
 * after its own easy handles have left it. MIT licence, see LICENSE. */
#include "sapwf.h"

#include <stdlib.h>

struct sapwf_share {
  CURLSH *handle;
  int users;
};

/* Its address is the registry key of the state's current share (a light userdata). */
static const char share_key = 0;


/* The state's share, or NULL. */
static sapwf_share *current(lua_State *L)
{
  sapwf_share *s;
  lua_pushlightuserdata(L, (void *)&share_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}


/* registry[share_key] = s (NULL: false). The key exists once this ran for the first time,
 * so later calls only overwrite a value and cannot fail for memory. */
static void set_current(lua_State *L, sapwf_share *s)
{
  lua_pushlightuserdata(L, (void *)&share_key);
  if (s != NULL)
    lua_pushlightuserdata(L, s);
  else
    lua_pushboolean(L, 0);
  lua_rawset(L, LUA_REGISTRYINDEX);
}


/* A reference to the state's share, made when there is none. NULL when libcurl cannot
 * make one (out of memory): clients then work without sharing. */
sapwf_share *sapwf_share_acquire(lua_State *L)
{
  sapwf_share *s = current(L);
  if (s == NULL) {
    CURLSHcode rc = CURLSHE_OK;
    set_current(L, NULL);                 /* may raise: nothing is allocated yet */
    s = malloc(sizeof *s);
    if (s == NULL)
      return NULL;
    s->users = 0;
    s->handle = curl_share_init();
    if (s->handle == NULL)
      rc = CURLSHE_NOMEM;
    if (rc == CURLSHE_OK)
      rc = curl_share_setopt(s->handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    if (rc == CURLSHE_OK)
      rc = curl_share_setopt(s->handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    if (rc == CURLSHE_OK)
      rc = curl_share_setopt(s->handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (rc != CURLSHE_OK) {
      if (s->handle != NULL)
        curl_share_cleanup(s->handle);
      free(s);
      return NULL;
    }
    set_current(L, s);
  }
  s->users++;
  return s;
}


/* One more reference to a share a user already holds (a batch to its client's). */
sapwf_share *sapwf_share_retain(sapwf_share *s)
{
  if (s != NULL)
    s->users++;
  return s;
}


CURLSH *sapwf_share_handle(const sapwf_share *s)
{
  return s->handle;
}


/* Drops a reference; the last one frees the share. Every easy handle that used it must
 * have been cleaned up (or had CURLOPT_SHARE set to NULL) before. */
void sapwf_share_release(lua_State *L, sapwf_share *s)
{
  if (s == NULL || --s->users > 0)
    return;
  if (current(L) == s)
    set_current(L, NULL);
  curl_share_cleanup(s->handle);
  free(s);
}
