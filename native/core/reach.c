// Reaching a path of the root for calls that have no *at form here (truncate and the xattr calls:
// Linux 6.1 has no truncateat or *xattrat).
#include "core.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

// "/a/b" relative to the root descriptor: "a/b"; the root itself: ".".
const char *rg_rel (const char *path) {
  return path[1] ? path + 1 : ".";
}

void rg_at_close (rg_at_t *a) {
  if (a->dirfd >= 0) close(a->dirfd);
  a->dirfd = -1;
}

// Usually root + path as one string; when that passes PATH_MAX, the parent directory opened with
// O_PATH relative to the root descriptor and "/proc/self/fd/N/name". Release with rg_at_close.
int rg_at_open (rg_core_t *c, rg_at_t *a, const char *path) {
  a->dirfd = -1;
  int n = snprintf(a->p, sizeof(a->p), "%s%s", strcmp(c->root, "/") == 0 ? "" : c->root, path);
  if (n >= 0 && n < (int) sizeof(a->p)) return 0;
  const char *rel = rg_rel(path);
  const char *slash = strrchr(rel, '/');
  int dfd = c->root_fd;
  const char *name = rel;
  if (slash != NULL) {
    char parent[4096];
    size_t len = (size_t) (slash - rel);
    if (len >= sizeof(parent)) return -ENAMETOOLONG;
    memcpy(parent, rel, len);
    parent[len] = 0;
    dfd = a->dirfd = openat(c->root_fd, parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -errno;
    name = slash + 1;
  }
  n = snprintf(a->p, sizeof(a->p), "/proc/self/fd/%d/%s", dfd, name);
  if (n < 0 || n >= (int) sizeof(a->p)) { rg_at_close(a); return -ENAMETOOLONG; }
  return 0;
}
