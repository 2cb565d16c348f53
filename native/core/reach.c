// Where a name is: its directory's descriptor and the name. Never a path from the root: below
// the mount a path may be longer than PATH_MAX from the backing root, while each name is at most
// NAME_MAX. A directory node opens its O_PATH descriptor on first use, from its parent's; it
// follows the directory through renames.
#include "core.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rg_dir_fd (rg_core_t *c, rg_node_t *n) {
  if (n->parent == NULL) return c->root_fd;
  int fd = __atomic_load_n(&n->fd, __ATOMIC_ACQUIRE);
  if (fd >= 0) return fd;
  rg_lock();
  rg_node_t *parent = n->parent;
  int hashed = n->hashed;
  char name[256];
  snprintf(name, sizeof(name), "%s", n->name);
  rg_unlock();
  if (!hashed) return -ENOENT;
  int pfd = rg_dir_fd(c, parent);
  if (pfd < 0) return pfd;
  fd = openat(pfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
  int none = -1;
  if (!__atomic_compare_exchange_n(&n->fd, &none, fd, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    close(fd);
    fd = none;
  }
  return fd;
}

static void set_proc (rg_loc_t *l) {
  snprintf(l->proc, sizeof(l->proc), "/proc/self/fd/%d/%s", l->dirfd, l->name);
}

int rg_loc_child (rg_core_t *c, rg_node_t *parent, const char *name, rg_loc_t *l) {
  if (strlen(name) >= sizeof(l->name)) return -ENAMETOOLONG;
  l->dirfd = rg_dir_fd(c, parent);
  if (l->dirfd < 0) return l->dirfd;
  strcpy(l->name, name);
  set_proc(l);
  return 0;
}

int rg_loc_node (rg_core_t *c, rg_node_t *n, rg_loc_t *l) {
  if (n->parent == NULL) {
    l->dirfd = c->root_fd;
    strcpy(l->name, ".");
    set_proc(l);
    return 0;
  }
  rg_lock();
  rg_node_t *parent = n->parent;
  int hashed = n->hashed;
  snprintf(l->name, sizeof(l->name), "%s", n->name);
  rg_unlock();
  if (!hashed) return -ENOENT;
  l->dirfd = rg_dir_fd(c, parent);
  if (l->dirfd < 0) return l->dirfd;
  set_proc(l);
  return 0;
}
