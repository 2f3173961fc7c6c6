/* sapwf.core's plain functions (no client): the header parsers of headers.c for the Lua
 * layer (core.header and core.headers read the header block that client:request and
 * batch:wait return, core.retry_after and core.parse_count the values of Retry-After and
 * X-Total-Count), core.path_problem, the clock (core.monotonic, core.sleep),
 * core.escape, core.fingerprint, and core.redact with the redaction client:redact uses
 * too.
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <limits.h>
#include <time.h>

/* A day: far more than any backoff; a longer sleep is a bug in the caller. */
#define MAX_SLEEP 86400.0


/***
 * Seconds on a monotonic clock (CLOCK_MONOTONIC, the core's own): for deadlines, never
 * for dates.
 * @function monotonic
 * @treturn number
 */
int sapwf_core_monotonic(lua_State *L)
{
  lua_pushnumber(L, (lua_Number)sapwf_now());
  return 1;
}


/***
 * Blocks the calling thread for `seconds` (0 to 86400; fractions allowed). A signal that
 * interrupts the sleep does not shorten it, except while catch_sigint(true) catches them:
 * then Ctrl-C, SIGTERM or SIGHUP ends it (and one that came before keeps it from
 * beginning), so that the retries, which wait here, send nothing more once told to stop.
 * @function sleep
 * @tparam number seconds
 * @treturn boolean true when a caught signal ended it early, false after the whole time
 */
int sapwf_core_sleep(lua_State *L)
{
  double seconds;
  luaL_checktype(L, 1, LUA_TNUMBER);                  /* not "1": a string is a mistake here */
  seconds = (double)lua_tonumber(L, 1);
  luaL_argcheck(L, seconds >= 0 && seconds <= MAX_SLEEP, 1,
                "seconds from 0 to 86400 expected");  /* also refuses NaN */
  lua_pushboolean(L, sapwf_sleep_unless_caught(seconds));
  return 1;
}


/* Runs protected from sapwf_core_escape: lua_pushstring may raise a memory error, and the
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
int sapwf_core_escape(lua_State *L)
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


/* The bytes of a header block (an answer's, or one in a string: sapwf.ngx's Transport
 * hands over the text of its worker threads' blocks, see core.header_text), raising,
 * naming argument arg, for anything else. */
static const char *check_block(lua_State *L, int arg, size_t *len)
{
  if (lua_type(L, arg) == LUA_TUSERDATA && lua_getmetatable(L, arg)) {
    int ours;
    luaL_getmetatable(L, SAPWF_HEADERS_MT);
    ours = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (ours) {
      *len = lua_rawlen(L, arg);
      return (const char *)lua_touserdata(L, arg);
    }
  }
  if (lua_type(L, arg) == LUA_TSTRING)
    return lua_tolstring(L, arg, len);
  luaL_argerror(L, arg, lua_pushfstring(L, "header block expected, got %s",
                                        luaL_typename(L, arg)));
  return NULL;
}


/***
 * The value of one header in a block of header lines (the last one, when it came more
 * than once), or nil.
 * @function header
 * @tparam userdata|string block as client:request returns it (names lower-cased)
 * @tparam string name lower-case
 * @treturn string|nil
 */
int sapwf_core_header(lua_State *L)
{
  size_t len, name_len;
  const char *block = check_block(L, 1, &len);
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
 * @tparam userdata|string block as client:request returns it (names lower-cased)
 * @treturn table
 */
int sapwf_core_headers(lua_State *L)
{
  size_t len;
  const char *block = check_block(L, 1, &len);
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
 * The lines of a header block as one string, which core.header and core.headers read as
 * they read the block: for handing a block to another Lua state (sapwf.ngx's worker
 * threads hand back strings, never userdata).
 * @function header_text
 * @tparam userdata|string block
 * @treturn string
 */
int sapwf_core_header_text(lua_State *L)
{
  size_t len;
  const char *block = check_block(L, 1, &len);
  lua_pushlstring(L, block, len);
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


/***
 * A fingerprint of text: 16 hex digits (FNV-1a, 64 bits). It tells a changed text from the
 * one fingerprinted before (the bulk start's record knows each line it sent by it); it is
 * no cryptographic digest, and nothing secret is fingerprinted.
 * @function fingerprint
 * @tparam string text
 * @treturn string
 */
int sapwf_core_fingerprint(lua_State *L)
{
  size_t len, i;
  const unsigned char *text = (const unsigned char *)luaL_checklstring(L, 1, &len);
  unsigned long long hash = 14695981039346656037ULL;
  char hex[17];
  for (i = 0; i < len; i++) {
    hash ^= text[i];
    hash *= 1099511628211ULL;
  }
  snprintf(hex, sizeof hex, "%016llx", hash);
  lua_pushlstring(L, hex, 16);
  return 1;
}


/* What stands in a text for a secret taken out of it. */
#define REDACTED "[redacted]"

/* Pushes s (len bytes) with every occurrence of the n secrets replaced by REDACTED, the
 * longest where two start at one place. The one redaction of server texts: client:redact
 * (client.c) with its own secrets, core.redact with those given. */
void sapwf_push_redacted(lua_State *L, const char *s, size_t len, const sapwf_text *secrets,
                         int n)
{
  luaL_Buffer b;
  size_t i = 0, run = 0;
  luaL_buffinit(L, &b);
  while (i < len) {
    size_t found = sapwf_secret_at(s + i, len - i, secrets, n);   /* buffer.c */
    if (found == 0) {
      i++;
      continue;
    }
    luaL_addlstring(&b, s + run, i - run);
    luaL_addstring(&b, REDACTED);
    i += found;
    run = i;
  }
  luaL_addlstring(&b, s + run, len - run);
  luaL_pushresult(&b);
}


/***
 * text with every occurrence of each secret given replaced by "[redacted]" (what
 * client:redact does with the client's own), for a transport that keeps its secrets in
 * Lua (sapwf.ngx). nil or empty secrets are skipped.
 * @function redact
 * @tparam string text
 * @tparam ?string ... the secrets, at most 32
 * @treturn string
 */
int sapwf_core_redact(lua_State *L)
{
  sapwf_text secrets[32];
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  int n = lua_gettop(L) - 1, i;
  if (n > 32)
    return luaL_error(L, "bad argument to 'redact' (at most 32 secrets, got %d)", n);
  for (i = 0; i < n; i++) {
    secrets[i].data = luaL_optlstring(L, i + 2, NULL, &secrets[i].len);
    if (secrets[i].data == NULL)
      secrets[i].len = 0;
  }
  sapwf_push_redacted(L, text, len, secrets, n);
  return 1;
}
