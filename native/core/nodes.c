// The node table: one node per name the kernel holds, found by (parent, name) and, to invalidate
// the other names of an inode whose link count changed, by backing inode. One lock guards it; it
// is never held across a system call on the root.
#include "core.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RG_BUCKETS (1u << 17)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rg_node_t root_node;
static rg_node_t *by_name[RG_BUCKETS];
static rg_node_t *by_ino[RG_BUCKETS];
static uint64_t generations;

void rg_lock (void) { pthread_mutex_lock(&lock); }
void rg_unlock (void) { pthread_mutex_unlock(&lock); }

void rg_nodes_init (rg_core_t *c) {
  memset(&root_node, 0, sizeof(root_node));
  root_node.nameless_fd = -1;
  root_node.fd = -1;
  root_node.nlookup = 1;
  root_node.hashed = 1;
  struct stat st;
  if (fstat(c->root_fd, &st) == 0) { root_node.dev = st.st_dev; root_node.ino = st.st_ino; }
}

rg_node_t *rg_node (fuse_ino_t id) {
  return id == FUSE_ROOT_ID ? &root_node : (rg_node_t *) (uintptr_t) id;
}

fuse_ino_t rg_node_id (rg_node_t *n) {
  return n == &root_node ? FUSE_ROOT_ID : (fuse_ino_t) (uintptr_t) n;
}

static uint32_t name_hash (rg_node_t *parent, const char *name) {
  uint64_t h = (uintptr_t) parent * 0x9E3779B97F4A7C15ull;
  for (const unsigned char *p = (const unsigned char *) name; *p; p++) h = (h ^ *p) * 0x100000001B3ull;
  return (uint32_t) (h ^ (h >> 32)) & (RG_BUCKETS - 1);
}

static uint32_t ino_hash (dev_t dev, ino_t ino) {
  uint64_t h = ((uint64_t) ino * 0x9E3779B97F4A7C15ull) ^ (uint64_t) dev;
  return (uint32_t) (h ^ (h >> 29)) & (RG_BUCKETS - 1);
}

static void unhash_name (rg_node_t *n) {
  if (!n->hashed) return;
  rg_node_t **p = &by_name[name_hash(n->parent, n->name)];
  while (*p && *p != n) p = &(*p)->next_name;
  if (*p) *p = n->next_name;
  n->hashed = 0;
}

static void hash_name (rg_node_t *n) {
  uint32_t h = name_hash(n->parent, n->name);
  n->next_name = by_name[h];
  by_name[h] = n;
  n->hashed = 1;
}

static void unhash_ino (rg_node_t *n) {
  rg_node_t **p = &by_ino[ino_hash(n->dev, n->ino)];
  while (*p && *p != n) p = &(*p)->next_ino;
  if (*p) *p = n->next_ino;
}

static void hash_ino (rg_node_t *n) {
  uint32_t h = ino_hash(n->dev, n->ino);
  n->next_ino = by_ino[h];
  by_ino[h] = n;
}

static rg_node_t *find (rg_node_t *parent, const char *name) {
  for (rg_node_t *n = by_name[name_hash(parent, name)]; n; n = n->next_name) {
    if (n->parent == parent && strcmp(n->name, name) == 0) return n;
  }
  return NULL;
}

rg_node_t *rg_node_find (rg_node_t *parent, const char *name) {
  return find(parent, name);
}

// Lock held. Frees n once neither the kernel nor a child nor a handle refers to it.
static void maybe_free (rg_node_t *n) {
  while (n && n != &root_node && n->nlookup == 0 && n->refs == 0) {
    rg_node_t *parent = n->parent;
    unhash_name(n);
    unhash_ino(n);
    if (n->nameless_fd >= 0) close(n->nameless_fd);
    if (n->fd >= 0) { close(n->fd); rg_dir_fd_closed(); }
    free(n->name);
    free(n);
    parent->refs--;
    n = parent;
  }
}

void rg_node_set_inode (rg_node_t *n, const struct stat *st) {
  if (n->dev == st->st_dev && n->ino == st->st_ino) return;
  if (n != &root_node) unhash_ino(n);
  n->dev = st->st_dev;
  n->ino = st->st_ino;
  if (n != &root_node) hash_ino(n);
}

rg_node_t *rg_node_ref (rg_node_t *parent, const char *name, const struct stat *st) {
  rg_lock();
  rg_node_t *n = find(parent, name);
  if (n != NULL && (n->dev != st->st_dev || n->ino != st->st_ino)) {
    // Changed behind the mount's back: the old node keeps the kernel's references to the old
    // inode (ESTALE from now on), the name gets a new node.
    unhash_name(n);
    n->replaced = 1;
    n = NULL;
  }
  if (n == NULL) {
    n = calloc(1, sizeof(*n));
    char *copy = n ? strdup(name) : NULL;
    if (copy == NULL) { free(n); rg_unlock(); return NULL; }
    n->name = copy;
    n->parent = parent;
    n->nameless_fd = -1;
    n->fd = -1;
    n->generation = ++generations;
    parent->refs++;
    hash_name(n);
    n->dev = st->st_dev;
    n->ino = st->st_ino;
    hash_ino(n);
  }
  n->nlookup++;
  rg_unlock();
  return n;
}

int rg_node_is (rg_node_t *n, const struct stat *st) {
  rg_lock();
  int r = n->hashed && n->dev == st->st_dev && n->ino == st->st_ino;
  rg_unlock();
  return r;
}

// Inodes made into objects through the mount (op_link), by (dev, ino): their user.ostreemeta is
// the hook's, never unpacked by a copy-up. Only grows while the mount lives.
typedef struct rg_linked { struct rg_linked *next; dev_t dev; ino_t ino; } rg_linked_t;
static rg_linked_t *linked[1024];
static pthread_mutex_t linked_lock = PTHREAD_MUTEX_INITIALIZER;

// Lock held: the entry of st's inode, or NULL.
static rg_linked_t *linked_find (const struct stat *st) {
  rg_linked_t *l = linked[ino_hash(st->st_dev, st->st_ino) & 1023];
  while (l && (l->dev != st->st_dev || l->ino != st->st_ino)) l = l->next;
  return l;
}

void rg_linked_add (const struct stat *st) {
  pthread_mutex_lock(&linked_lock);
  rg_linked_t *l = linked_find(st) ? NULL : malloc(sizeof(*l));
  if (l != NULL) {
    uint32_t h = ino_hash(st->st_dev, st->st_ino) & 1023;
    *l = (rg_linked_t) { linked[h], st->st_dev, st->st_ino };
    linked[h] = l;
  }
  pthread_mutex_unlock(&linked_lock);
}

int rg_linked_has (const struct stat *st) {
  pthread_mutex_lock(&linked_lock);
  int r = linked_find(st) != NULL;
  pthread_mutex_unlock(&linked_lock);
  return r;
}

void rg_node_forget (rg_node_t *n, uint64_t count) {
  if (n == &root_node) return;
  rg_lock();
  n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
  maybe_free(n);
  rg_unlock();
}

void rg_node_release (rg_node_t *n) {
  rg_lock();
  n->refs--;
  maybe_free(n);
  rg_unlock();
}

// Lock held.
static char *path_of (rg_node_t *n, const char *name) {
  size_t len = name ? strlen(name) + 1 : 0;
  for (rg_node_t *p = n; p != &root_node; p = p->parent) len += strlen(p->name) + 1;
  char *out = malloc(len + 2);
  if (out == NULL) return NULL;
  char *at = out + len;
  *at = 0;
  if (name) { at -= strlen(name); memcpy(at, name, strlen(name)); *--at = '/'; }
  for (rg_node_t *p = n; p != &root_node; p = p->parent) {
    size_t l = strlen(p->name);
    at -= l;
    memcpy(at, p->name, l);
    *--at = '/';
  }
  if (len == 0) strcpy(out, "/");
  return out;
}

char *rg_node_path (rg_node_t *n) {
  rg_lock();
  char *p = path_of(n, NULL);
  rg_unlock();
  return p;
}

char *rg_child_path (rg_node_t *parent, const char *name) {
  rg_lock();
  char *p = path_of(parent, name);
  rg_unlock();
  return p;
}

void rg_node_detach (rg_node_t *n, int nameless_fd) {
  rg_lock();
  unhash_name(n);
  if (n->nameless_fd >= 0) close(n->nameless_fd);
  n->nameless_fd = nameless_fd;
  rg_unlock();
}

void rg_node_move (rg_node_t *n, rg_node_t *parent, const char *name) {
  char *copy = strdup(name);
  if (copy == NULL) return;
  rg_lock();
  unhash_name(n);
  rg_node_t *old_parent = n->parent;
  free(n->name);
  n->name = copy;
  n->parent = parent;
  parent->refs++;
  hash_name(n);
  old_parent->refs--;
  maybe_free(old_parent);
  rg_unlock();
}

// A node's attributes only (offset -1; its pages stay): the kernel marks them stale under a
// spinlock and waits for nothing a caller may hold, so the reading thread sends it itself.
void rg_inval_node (rg_core_t *c, rg_node_t *n) {
  fuse_lowlevel_notify_inval_inode(c->se, rg_node_id(n), -1, 0);
}

void rg_inval_ino (rg_core_t *c, dev_t dev, ino_t ino, rg_node_t *skip) {
  fuse_ino_t ids[64];
  int n = 0;
  rg_lock();
  for (rg_node_t *p = by_ino[ino_hash(dev, ino)]; p && n < 64; p = p->next_ino) {
    if (p != skip && p->dev == dev && p->ino == ino && p->nlookup > 0) ids[n++] = rg_node_id(p);
  }
  rg_unlock();
  // Outside the lock. A node freed meanwhile is not a problem: the kernel ignores ids it no longer
  // knows. Attributes only: the reader may send these itself (rg_inval_node).
  for (int i = 0; i < n; i++) fuse_lowlevel_notify_inval_inode(c->se, ids[i], -1, 0);
}
