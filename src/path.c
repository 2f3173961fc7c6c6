/* The rule for request paths (path.h). MIT licence, see LICENSE. */
#include "path.h"

#include <string.h>

/* The byte that p stands for in a path as a server may read it: "%2e" is "." (RFC 3986
 * 6.2.2.2), and a backslash is a "/" to some servers. *step gets how many bytes of p that
 * was. An escaped "/" or "\\" ("%2F", "%5C") is data to the API: that is how the by-id
 * methods send an id with a "/" in it, as one segment. Yet a proxy or server that decodes
 * it before it resolves the path reads it as a separator, so it ends a segment here: a
 * "." or ".." next to it is a dot segment all the same. */
static char path_byte(const char *p, const char *end, size_t *step)
{
  *step = 1;
  if (*p == '%' && end - p >= 3) {
    char hi = p[1], lo = (char)(p[2] | 0x20);
    if ((hi == '2' && lo == 'e') || (hi == '2' && lo == 'f') || (hi == '5' && lo == 'c')) {
      *step = 3;
      return lo == 'e' ? '.' : '/';
    }
  }
  return *p == '\\' ? '/' : *p;
}


/* NULL when path (from "/" to the first "?") stays below the base URL it is appended to;
 * otherwise why not. A "." or ".." segment, written plainly, as "%2e", or between
 * backslashes or escaped slashes, would make libcurl, a proxy or the server resolve the URL
 * to a resource outside the API (wf:request("GET", "/../../x")), and so would "..;x" on
 * the Java servers behind it. Everything after "?" is the query. A "#" begins a fragment, which is never sent, and the
 * query the Lua layer appends would be part of it: the call would go out without its
 * filters. */
const char *sapwf_path_problem(const char *path, size_t len)
{
  const char *p = path, *end = path + len;
  size_t dots = 0, others = 0, step = 1;
  int params = 0;             /* after a ";" in this segment: Java servers (Tomcat, Spring)
                               * drop path parameters, so "..;x" is ".." to them */
  if (len == 0 || path[0] != '/')
    return "path must start with '/'";
  if (memchr(path, '#', len) != NULL)
    return "path must not contain '#' (a fragment is never sent; write it as %23)";
  while (p <= end) {
    char ch = p < end ? path_byte(p, end, &step) : '/';
    if (p < end && *p == '?')
      ch = '/', end = p;                  /* the last segment ends where the query begins */
    if (ch == '/') {
      if (dots > 0 && others == 0 && dots <= 2)
        return "path must not contain '.' or '..' segments (plain or percent-encoded): "
               "they would leave the API's base path";
      dots = others = 0;
      params = 0;
    } else if (params) {
      ;                                   /* a path parameter: not part of the segment */
    } else if (ch == ';') {
      params = 1;
    } else if (ch == '.') {
      dots++;
    } else {
      others++;
    }
    if (p == end)
      break;
    p += step;
  }
  return NULL;
}
