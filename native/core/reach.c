// Where a name is: its directory's descriptor and the name, not a path from the root: below the
// mount a path may be longer than PATH_MAX from the backing root, while each name is at most
// NAME_MAX. A directory node opens its O_PATH descriptor on first use, from its parent's; it
// follows the directory through renames. (Only without a descriptor to spare, a path from the
// root: from_root.) Every directory is opened beneath its parent with no symlink, magic link or
// mount crossed (rg_open_beneath): the server never leaves the root, nor enters its own mount.
#include "core.h"
#include "../copyup.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

// Directory descriptors kept, and how many may be: half the open-files limit, so that opens of
// files and listings always find one.
static long dir_fds, dir_fds_max = -1;

void rg_dir_fd_closed (void) {
  __atomic_sub_fetch(&dir_fds, 1, __ATOMIC_RELAXED);
}

int rg_dir_fd (rg_core_t *c, rg_node_t *n) {
  if (n->parent == NULL) return c->root_fd;
  int fd = __atomic_load_n(&n->fd, __ATOMIC_ACQUIRE);
  if (fd >= 0) return fd;
  if (__atomic_load_n(&dir_fds_max, __ATOMIC_RELAXED) < 0) {
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long) rl.rlim_cur / 2 : 1L << 20;
    __atomic_store_n(&dir_fds_max, max, __ATOMIC_RELAXED);
  }
  if (__atomic_add_fetch(&dir_fds, 1, __ATOMIC_RELAXED) > dir_fds_max) {
    rg_dir_fd_closed();
    return -EMFILE; // reached from the root instead (from_root)
  }
  rg_lock();
  rg_node_t *parent = n->parent;
  int hashed = n->hashed;
  char name[256];
  snprintf(name, sizeof(name), "%s", n->name);
  rg_unlock();
  if (!hashed) return -ENOENT;
  int pfd = rg_dir_fd(c, parent);
  // Without the parent's descriptor, this one is opened from the root.
  char *path = pfd < 0 && (pfd == -EMFILE || pfd == -ENFILE) ? rg_node_path(n) : NULL;
  fd = pfd >= 0 ? rg_open_beneath(pfd, name, O_PATH | O_DIRECTORY)
     : path ? rg_open_beneath(c->root_fd, path + 1, O_PATH | O_DIRECTORY) : pfd;
  free(path);
  if (fd < 0) { rg_dir_fd_closed(); return fd; }
  int none = -1;
  if (!__atomic_compare_exchange_n(&n->fd, &none, fd, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    close(fd);
    rg_dir_fd_closed();
    fd = none;
  }
  return fd;
}

// Without a descriptor to spare for a directory (EMFILE, ENFILE: a tree with more directories than
// the open-files limit), the name's directory is opened from the root for this request only:
// resolved beneath the root with no symlink followed, and closed by rg_loc_done.
static int from_root (rg_core_t *c, rg_node_t *parent, const char *name, rg_loc_t *l, int err) {
  if (err != -EMFILE && err != -ENFILE) return err;
  char *path = name ? rg_child_path(parent, name) : rg_node_path(parent);
  if (path == NULL) return -ENOMEM;
  char *slash = strrchr(path, '/');
  int r = 0;
  if (path[1] == 0) {
    l->dirfd = c->root_fd;
    strcpy(l->name, ".");
  } else if (strlen(slash + 1) >= sizeof(l->name)) {
    r = -ENAMETOOLONG;
  } else {
    strcpy(l->name, slash + 1);
    *slash = 0;
    int fd = rg_open_beneath(c->root_fd, path[0] ? path + 1 : "", O_PATH | O_DIRECTORY);
    if (fd < 0) r = fd;
    else { l->dirfd = fd; l->own = 1; }
  }
  free(path);
  return r;
}

static void set_proc (rg_loc_t *l) {
  snprintf(l->proc, sizeof(l->proc), "/proc/self/fd/%d/%s", l->dirfd, l->name);
}

void rg_loc_done (rg_loc_t *l) {
  if (l->own) close(l->dirfd);
  l->own = 0;
}

int rg_loc_child (rg_core_t *c, rg_node_t *parent, const char *name, rg_loc_t *l) {
  l->own = 0;
  if (strlen(name) > 255) return -ENAMETOOLONG;
  l->dirfd = rg_dir_fd(c, parent);
  int r = l->dirfd < 0 ? from_root(c, parent, name, l, l->dirfd) : (strcpy(l->name, name), 0);
  if (r == 0) set_proc(l);
  return r;
}

int rg_loc_node (rg_core_t *c, rg_node_t *n, rg_loc_t *l) {
  l->own = 0;
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
  int r = l->dirfd < 0 ? from_root(c, n, NULL, l, l->dirfd) : 0;
  if (r < 0) return r;
  set_proc(l);
  return 0;
}
