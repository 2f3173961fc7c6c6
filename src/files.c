/* Files on disk, where Lua's io library falls short. core.file_id: which file a path names,
 * so the command line can tell that two paths are the same file (a record file given as
 * the input would be overwritten); comparing path strings misses "./x", links and other
 * spellings. core.temp_file: a new file that is surely no existing one, for what is
 * written beside its target and renamed over it when whole (io.open "wb" would truncate a
 * file that happens to have the name). MIT licence, see LICENSE. */
#include "sapwf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkstemp's pattern: it replaces these six characters. */
#define TEMPLATE "XXXXXX"

/***
 * The identity of the file a path names ("device:inode", following links), or nil when
 * there is no such file (or it cannot be examined).
 * @function file_id
 * @tparam string path
 * @treturn string|nil
 */
int sapwf_core_file_id(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  char id[64];
  if (stat(path, &st) != 0) {
    lua_pushnil(L);
    return 1;
  }
  /* lua_pushfstring has no conversion for these widths: snprintf does. */
  snprintf(id, sizeof id, "%llu:%llu", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino);
  lua_pushstring(L, id);
  return 1;
}


/***
 * Creates a new empty file named prefix and six random characters, readable and writable
 * by its owner only (mkstemp: O_CREAT | O_EXCL, so never a file or link that is there
 * already), and returns its name.
 * @function temp_file
 * @tparam string prefix e.g. "/data/export.zip.part-"
 * @treturn[1] string the name
 * @treturn[2] nil
 * @treturn[2] string why not: the system's reason (the callers say which file)
 */
int sapwf_core_temp_file(lua_State *L)
{
  size_t len;
  const char *prefix = luaL_checklstring(L, 1, &len);
  char *name;
  int fd, err;
  luaL_argcheck(L, strlen(prefix) == len, 1, "prefix contains a NUL byte");
  /* A userdata, not malloc: a raise in lua_pushstring (memory) cannot leak it. */
  name = (char *)lua_newuserdata(L, len + sizeof TEMPLATE);
  memcpy(name, prefix, len);
  memcpy(name + len, TEMPLATE, sizeof TEMPLATE);
  fd = mkstemp(name);
  err = errno;
  if (fd >= 0 && close(fd) != 0) {
    err = errno;
    unlink(name);
    fd = -1;
  }
  if (fd < 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(err));
    return 2;
  }
  lua_pushstring(L, name);
  return 1;
}
