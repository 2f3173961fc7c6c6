/* Files on disk, where Lua's io library falls short. core.file_id: which file a path names,
 * so the command line can tell that two paths are the same file (a record file given as
 * the input would be overwritten); comparing path strings misses "./x", links and other
 * spellings. core.temp_file: a new file that is surely no existing one, for what is
 * written beside its target and renamed over it when whole (io.open "wb" would truncate a
 * file that happens to have the name). core.rename_noreplace: a rename that never
 * replaces a file (os.rename does), for moving a file that may hold the only record of
 * something aside, or putting one in place where the path may name such a file (the
 * emulator's key file: it may be given a real key's name). MIT licence, see LICENSE. */
#if defined(__linux__)
#define _GNU_SOURCE                             /* renameat2 and RENAME_NOREPLACE (glibc) */
#endif
#include "sapwf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkstemp's pattern: it replaces these six characters. */
#define TEMPLATE "XXXXXX"

/* Argument arg as a file name: a NUL byte raises, as the system would read only the part
 * before it (another file). */
static const char *check_name(lua_State *L, int arg, size_t *len)
{
  size_t n;
  const char *name = luaL_checklstring(L, arg, &n);
  luaL_argcheck(L, strlen(name) == n, arg, "file name contains a NUL byte");
  if (len != NULL)
    *len = n;
  return name;
}

/***
 * The identity of the file a path names ("device:inode", following links), or nil when
 * there is no such file (or it cannot be examined).
 * @function file_id
 * @tparam string path
 * @treturn string|nil
 */
int sapwf_core_file_id(lua_State *L)
{
  const char *path = check_name(L, 1, NULL);
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
  const char *prefix = check_name(L, 1, &len);
  char *name;
  int fd, err;
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


/* rename(2) unless `to` exists, atomically: renameat2's RENAME_NOREPLACE where the kernel
 * and file system have it, else a hard link (which fails on an existing name) and an
 * unlink. -1 with errno set when not renamed (EEXIST: `to` exists). */
static int rename_noreplace(const char *from, const char *to)
{
  int err;
#if defined(__linux__) && defined(RENAME_NOREPLACE)
  if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS)         /* EINVAL: this file system cannot */
    return -1;
#endif
  if (link(from, to) != 0)
    return -1;
  if (unlink(from) == 0)
    return 0;
  /* Two names for one file: truncating the old name would empty the kept one too. */
  err = errno;
  unlink(to);
  errno = err;
  return -1;
}


/***
 * Renames a file unless a file (or link) has the new name: never replaces one, as
 * os.rename does.
 * @function rename_noreplace
 * @tparam string from
 * @tparam string to
 * @treturn[1] true
 * @treturn[2] nil
 * @treturn[2] string why not: the system's reason (the callers say which files)
 * @treturn[2] boolean true when it is because `to` exists
 */
int sapwf_core_rename_noreplace(lua_State *L)
{
  const char *from = check_name(L, 1, NULL);
  const char *to = check_name(L, 2, NULL);
  int err;
  if (rename_noreplace(from, to) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  err = errno;
  lua_pushnil(L);
  lua_pushstring(L, strerror(err));
  lua_pushboolean(L, err == EEXIST);
  return 3;
}
