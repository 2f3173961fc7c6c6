/* The rule for request paths: what a caller may append to the API's base URL. Plain C
 * without Lua, like headers.c. MIT licence, see LICENSE. */
#ifndef SAPWF_PATH_H
#define SAPWF_PATH_H

#include <stddef.h>

const char *sapwf_path_problem(const char *path, size_t len);

#endif /* SAPWF_PATH_H */
