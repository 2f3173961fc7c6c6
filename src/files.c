/* Files on disk, where Lua's io library falls short. core.file_id: which file a path names,
 * so the command line can tell that two paths are the same file (a record file given as
 * the input would be overwritten); comparing path strings misses "./x", links and other
 * spellings. core.temp_file: a new file that is surely no existing one, for what is
 * written beside its target and renamed over it when whole (io.open "wb" would truncate a
 * file that happens to have the name). core.rename_noreplace: a rename that never
 * replaces a file (os.rename does), for moving a file that may hold the only record of
 * something aside, or putting one in place where the path may name such a file (the
 * emulator's key file: it may be given a real key's name). core.file_kind: what a path
 * names and why it cannot be told, where io.open only fails (a file that cannot be read is
 * not a file that is not there) or succeeds on what is no file (a directory).
 * core.lock_file: an exclusive lock on a file for as long as a run uses it (two runs that
 * append to one record would both start its lines). core.mode_like: the permission bits of
 * the file an answer written beside it replaces. core.is_link and core.real_path: a
 * link's file, which an export written beside it and renamed replaces instead of the link.
 * MIT licence, see LICENSE. */
#if defined(__linux__)
#define _GNU_SOURCE                             /* renameat2 and RENAME_NOREPLACE (glibc) */
#endif
#include "sapwf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkstemp's pattern: it replaces these six characters. */
#define TEMPLATE "XXXXXX"

#define LOCK_MT "sapwf.core.Lock"

/* A lock of core.lock_file: the descriptor that holds it, -1 once released. */
typedef struct {
  int fd;
} file_lock;

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

/* The one way a failure leaves these functions: nil, the system's reason (the callers say
 * which file) and a flag that tells one failure from the others. */
static int push_failure(lua_State *L, int err, int flag)
{
  lua_pushnil(L);
  lua_pushstring(L, strerror(err));
  lua_pushboolean(L, flag);
  return 3;
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


/***
 * Gives path the permission bits of the file `like` names, or, when there is none, those of
 * a new file io.open would make (0666 less the umask). For an answer written beside the
 * file it replaces (core.temp_file makes it the owner's only): the replaced file's bits
 * are the user's (one a web server serves stays readable to it). Only the bits 0777. The
 * umask can only be read by setting it: set to 077 for that moment, so a file another
 * thread makes meanwhile is only ever more private, never less.
 * @function mode_like
 * @tparam string path
 * @tparam string like
 * @treturn[1] boolean true
 * @treturn[2] nil
 * @treturn[2] string why not: the system's reason (the callers say which file)
 */
int sapwf_core_mode_like(lua_State *L)
{
  const char *path = check_name(L, 1, NULL);
  const char *like = check_name(L, 2, NULL);
  struct stat st;
  mode_t mode;
  if (stat(like, &st) == 0) {
    mode = st.st_mode & 0777;
  } else if (errno == ENOENT) {
    mode_t mask = umask(077);
    umask(mask);
    mode = 0666 & ~mask;
  } else {
    return push_failure(L, errno, 0);
  }
  if (chmod(path, mode) != 0)
    return push_failure(L, errno, 0);
  lua_pushboolean(L, 1);
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
  return push_failure(L, err, err == EEXIST);
}


/***
 * What a path names, following links: "file" (and its size), "directory", "character
 * device", "block device", "fifo", "socket" or "other". Only a path that names nothing
 * ("No such file or directory") is missing: any other failure (a folder that may not be
 * searched, a link loop) says nothing about whether the file is there.
 * @function file_kind
 * @tparam string path
 * @treturn[1] string the kind
 * @treturn[1] integer|nil the size in bytes of a file, nil for the other kinds
 * @treturn[2] nil
 * @treturn[2] string why not: the system's reason (the callers say which file)
 * @treturn[2] boolean true when nothing has that name
 */
int sapwf_core_file_kind(lua_State *L)
{
  const char *path = check_name(L, 1, NULL);
  struct stat st;
  const char *kind = "other";
  if (stat(path, &st) != 0)
    return push_failure(L, errno, errno == ENOENT);
  if (S_ISREG(st.st_mode)) {
    lua_pushliteral(L, "file");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    return 2;
  }
  if (S_ISDIR(st.st_mode))
    kind = "directory";
  else if (S_ISCHR(st.st_mode))
    kind = "character device";
  else if (S_ISBLK(st.st_mode))
    kind = "block device";
  else if (S_ISFIFO(st.st_mode))
    kind = "fifo";
  else if (S_ISSOCK(st.st_mode))
    kind = "socket";
  lua_pushstring(L, kind);
  return 1;
}


/***
 * Whether a path is a symbolic link (also one to nothing; lstat), not following it.
 * @function is_link
 * @tparam string path
 * @treturn boolean
 */
int sapwf_core_is_link(lua_State *L)
{
  const char *path = check_name(L, 1, NULL);
  struct stat st;
  lua_pushboolean(L, lstat(path, &st) == 0 && S_ISLNK(st.st_mode));
  return 1;
}


/***
 * The absolute name of the file a path names, without links, "." or ".." (realpath): where
 * a file written beside a link's target goes, so that renaming it over the target keeps
 * the link.
 * @function real_path
 * @tparam string path
 * @treturn[1] string
 * @treturn[2] nil
 * @treturn[2] string why not: the system's reason (the callers say which file)
 * @treturn[2] boolean true when nothing has that name
 */
int sapwf_core_real_path(lua_State *L)
{
  const char *path = check_name(L, 1, NULL);
  /* realpath's PATH_MAX form, into a userdata: its malloc form would leak the name if
   * lua_pushstring raised (memory). */
  char *real = (char *)lua_newuserdata(L, PATH_MAX);
  if (realpath(path, real) == NULL)
    return push_failure(L, errno, errno == ENOENT);
  lua_pushstring(L, real);
  return 1;
}


/* Opens a regular file to lock it, made when missing: *created says whether this call made
 * it. Written to, not read: NFS emulates flock with fcntl locks, whose exclusive lock
 * needs a descriptor open for writing. O_NONBLOCK: a fifo put in its place meanwhile would
 * otherwise wait for a reader. -1 with errno set when it cannot. */
static int open_for_lock(const char *path, int *created)
{
  const int flags = O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC;
  int attempt;
  for (attempt = 0; attempt < 10; attempt++) {
    int fd = open(path, flags | O_CREAT | O_EXCL, 0666);
    if (fd >= 0) {
      *created = 1;
      return fd;
    }
    if (errno != EEXIST)
      return -1;
    *created = 0;
    fd = open(path, flags);
    if (fd >= 0 || errno != ENOENT)
      return fd;
    /* removed between the two opens: make it again */
  }
  return -1;
}


static int lock_release(lua_State *L)
{
  file_lock *k = luaL_checkudata(L, 1, LOCK_MT);
  if (k->fd >= 0) {
    close(k->fd);                              /* closing the last descriptor unlocks */
    k->fd = -1;
  }
  return 0;
}


static int lock_tostring(lua_State *L)
{
  file_lock *k = luaL_checkudata(L, 1, LOCK_MT);
  lua_pushstring(L, k->fd >= 0 ? LOCK_MT : LOCK_MT " (released)");
  return 1;
}


static const luaL_Reg lock_metamethods[] = {
  {"__gc", lock_release},
  {"__close", lock_release},
  {"__tostring", lock_tostring},
  {NULL, NULL}
};


static const luaL_Reg lock_methods[] = {
  {"close", lock_release},
  {NULL, NULL}
};


/***
 * Takes an exclusive lock (flock) on a regular file, made (empty) when missing, without
 * waiting: held until the lock's close (also __gc, __close) or the end of the process.
 * Other locks of the file, in this process or another, fail while it is held. The lock is
 * on the file the path names when it returns, even if another run renamed the one it
 * opened first.
 * @function lock_file
 * @tparam string path
 * @treturn[1] userdata the lock, with close()
 * @treturn[1] boolean true when this call made the file
 * @treturn[2] nil
 * @treturn[2] string why not: the system's reason (the callers say which file); "not a
 * regular file" for anything else (a device, a fifo, a directory)
 * @treturn[2] boolean true when it is because another lock holds the file
 */
int sapwf_core_lock_file(lua_State *L)
{
  const char *path = check_name(L, 1, NULL);
  file_lock *k;
  struct stat st, now;
  int created = 0, err, attempt;
  /* The userdata first: a raise while making it (memory) then leaks no descriptor. */
  k = (file_lock *)lua_newuserdatauv(L, sizeof *k, 0);
  k->fd = -1;
  if (luaL_newmetatable(L, LOCK_MT)) {
    luaL_setfuncs(L, lock_metamethods, 0);
    luaL_newlib(L, lock_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
  for (attempt = 0; attempt < 10; attempt++) {
    k->fd = open_for_lock(path, &created);
    if (k->fd < 0)
      return push_failure(L, errno, 0);
    err = fstat(k->fd, &st) != 0 ? errno : 0;
    if (err != 0 || !S_ISREG(st.st_mode)) {
      close(k->fd);
      k->fd = -1;
      if (err != 0)
        return push_failure(L, err, 0);
      /* A device is no record of a run's: there is nothing in it for two runs to share. */
      lua_pushnil(L);
      lua_pushliteral(L, "not a regular file");
      lua_pushboolean(L, 0);
      return 3;
    }
    while (flock(k->fd, LOCK_EX | LOCK_NB) != 0) {
      err = errno;
      if (err == EINTR)
        continue;
      close(k->fd);
      k->fd = -1;
      return push_failure(L, err, err == EWOULDBLOCK);
    }
    /* Still the file at the path? The run that held the lock may have moved it aside (an
     * earlier failed file) and made a new one meanwhile: a lock on the old one keeps
     * nobody out of the new one. Then the new one is locked instead. */
    if (stat(path, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino) {
      lua_pushboolean(L, created);
      return 2;
    }
    close(k->fd);
    k->fd = -1;
  }
  return push_failure(L, EAGAIN, 1);            /* moved away each time: as if held */
}
