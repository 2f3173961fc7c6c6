/* core.file_id: which file a path names, so the command line can tell that two paths are
 * the same file (a record file given as the input would be overwritten). Lua's io library
 * has no stat; comparing path strings misses "./x", links and other spellings.
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <stdio.h>
#include <sys/stat.h>

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
