// What the core did, for the journal in JS: each change with the prior state of the paths it
// touched, queued here and drained by the addon (addon.c) on the JS thread.
#include "core.h"
#include "../copyup.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <fcntl.h>
#include <unistd.h>

#define RG_MAX_EVENTS 100000

static int cmp_names (const void *a, const void *b) {
  return strcmp(*(const char * const *) a, *(const char * const *) b);
}

// One "name=hexvalue\n" line onto out (grown as needed); 0, or -1 out of memory (out freed).
static int add_line (char **out, size_t *cap, size_t *used, const char *name, const unsigned char *v, size_t vlen) {
  size_t need = *used + strlen(name) + 2 * vlen + 3;
  if (need > *cap) {
    while (*cap < need) *cap *= 2;
    char *more = realloc(*out, *cap);
    if (more == NULL) { free(*out); *out = NULL; return -1; }
    *out = more;
  }
  *used += (size_t) sprintf(*out + *used, "%s=", name);
  for (size_t k = 0; k < vlen; k++) *used += (size_t) sprintf(*out + *used, "%02x", v[k]);
  (*out)[(*used)++] = '\n';
  (*out)[*used] = 0;
  return 0;
}

// The xattrs a bare-user file's user.ostreemeta records, by name.
typedef struct { const char *name; const unsigned char *value; size_t vlen; } rg_xattr_t;
typedef struct { rg_xattr_t x[1024]; size_t n; } rg_xattrs_t;

static int collect (void *arg, const char *name, const void *value, size_t vlen) {
  rg_xattrs_t *xs = arg;
  if (xs->n >= 1024) return -E2BIG;
  xs->x[xs->n++] = (rg_xattr_t) { name, value, vlen };
  return 0;
}

static int cmp_xattrs (const void *a, const void *b) {
  return strcmp(((const rg_xattr_t *) a)->name, ((const rg_xattr_t *) b)->name);
}

// A path's xattrs as "name=hexvalue\n" lines by name ("" when it has none), or NULL where they
// cannot be read. lib/server/backing.ts writes the same form for the state after a hook. A file
// of a bare-user checkout (a user.ostreemeta recording a regular file) shows the xattrs recorded
// there, which are the file's in the tree (and what its copy-up gets): like is compared with like.
// `follow`: path is a descriptor's /proc link, which stands for the inode itself.
static char *xattr_lines (const char *path, int follow) {
  size_t cap = 256, used = 0;
  char *out = malloc(cap);
  if (out == NULL) return NULL;
  out[0] = 0;
  char names[65536];
  ssize_t len = follow ? listxattr(path, names, sizeof(names)) : llistxattr(path, names, sizeof(names));
  if (len < 0) { if (errno == ENOTSUP) return out; free(out); return NULL; }
  const char *list[1024];
  size_t n = 0;
  int meta_listed = 0;
  for (char *nm = names; nm < names + len && n < 1024; nm += strlen(nm) + 1) {
    list[n++] = nm;
    if (strcmp(nm, "user.ostreemeta") == 0) meta_listed = 1;
  }
  if (meta_listed) {
    static __thread unsigned char meta[65536];
    static __thread rg_xattrs_t xs;
    xs.n = 0;
    ssize_t mlen = follow ? getxattr(path, "user.ostreemeta", meta, sizeof(meta)) : lgetxattr(path, "user.ostreemeta", meta, sizeof(meta));
    if (mlen >= 0 && rg_ostreemeta_genuine(meta, (size_t) mlen) && rg_ostreemeta_each(meta, (size_t) mlen, collect, &xs) == 0) {
      qsort(xs.x, xs.n, sizeof(xs.x[0]), cmp_xattrs);
      for (size_t i = 0; out != NULL && i < xs.n; i++) add_line(&out, &cap, &used, xs.x[i].name, xs.x[i].value, xs.x[i].vlen);
      return out;
    }
  }
  qsort(list, n, sizeof(list[0]), cmp_names);
  static __thread unsigned char value[65536];
  for (size_t i = 0; out != NULL && i < n; i++) {
    ssize_t vlen = follow ? getxattr(path, list[i], value, sizeof(value)) : lgetxattr(path, list[i], value, sizeof(value));
    if (vlen < 0) continue; // removed meanwhile
    add_line(&out, &cap, &used, list[i], value, (size_t) vlen);
  }
  return out;
}

// The first half of a prior state: the stat, which is also what the object test needs.
static void prior_stat (const rg_loc_t *l, rg_prior_t *p) {
  p->target = NULL;
  p->xattrs = NULL;
  p->exists = fstatat(l->dirfd, l->name, &p->st, AT_SYMLINK_NOFOLLOW) == 0;
}

// The rest, read only for a change that is going to be made: the xattrs and a symlink's target.
void rg_prior_details (const rg_loc_t *l, rg_prior_t *p) {
  if (!p->exists || p->xattrs) return;
  p->xattrs = xattr_lines(l->proc, 0);
  if (!S_ISLNK(p->st.st_mode)) return;
  char buf[4096];
  ssize_t n = readlinkat(l->dirfd, l->name, buf, sizeof(buf) - 1);
  if (n < 0) return;
  buf[n] = 0;
  p->target = strdup(buf);
}

void rg_prior_fd (int fd, const struct stat *st, rg_prior_t *p) {
  char path[32];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  p->exists = 1;
  p->st = *st;
  p->target = NULL;
  p->xattrs = xattr_lines(path, 1);
  if (!S_ISLNK(st->st_mode)) return;
  char buf[4096];
  ssize_t n = readlinkat(fd, "", buf, sizeof(buf) - 1);
  if (n < 0) return;
  buf[n] = 0;
  p->target = strdup(buf);
}

void rg_prior (const rg_loc_t *l, rg_prior_t *p) {
  prior_stat(l, p);
  rg_prior_details(l, p);
}

void rg_prior_free (rg_prior_t *p) {
  free(p->target);
  free(p->xattrs);
  p->target = p->xattrs = NULL;
}

static size_t len0 (const char *s) {
  return s ? strlen(s) + 1 : 0;
}

// Queues what was done, with the prior state of path and path2 where the caller took it.
void rg_event_p (rg_core_t *c, const char *op, const char *path, const char *path2, int32_t outcome,
                 const rg_prior_t *p1, const rg_prior_t *p2) {
  size_t len = strlen(path) + 1, len2 = len0(path2);
  size_t extra = 0;
  if (p1) extra += len0(p1->target) + len0(p1->xattrs);
  if (p2) extra += len0(p2->target) + len0(p2->xattrs);
  rg_event_t *e = malloc(sizeof(rg_event_t) + len + len2 + extra);
  if (e == NULL) return;
  e->next = NULL;
  e->outcome = outcome;
  strncpy(e->op, op, sizeof(e->op) - 1);
  e->op[sizeof(e->op) - 1] = 0;
  char *at = e->path;
  memcpy(at, path, len);
  at += len;
  e->path2 = NULL;
  if (path2) { e->path2 = at; memcpy(at, path2, len2); at += len2; }
  const rg_prior_t *ps[2] = { p1, p2 };
  for (int i = 0; i < 2; i++) {
    e->prior[i].exists = ps[i] ? ps[i]->exists : 0;
    if (ps[i]) e->prior[i].st = ps[i]->st;
    e->prior[i].target = e->prior[i].xattrs = NULL;
    if (ps[i] && ps[i]->target) { e->prior[i].target = at; at = stpcpy(at, ps[i]->target) + 1; }
    if (ps[i] && ps[i]->xattrs) { e->prior[i].xattrs = at; at = stpcpy(at, ps[i]->xattrs) + 1; }
  }
  pthread_mutex_lock(&c->ev_mut);
  int was_empty = c->ev_head == NULL;
  if (c->ev_count >= RG_MAX_EVENTS) {
    c->ev_dropped++;
    free(e);
  } else {
    if (c->ev_tail) c->ev_tail->next = e; else c->ev_head = e;
    c->ev_tail = e;
    c->ev_count++;
  }
  pthread_mutex_unlock(&c->ev_mut);
  // Wake JS only when the queue stops being empty: it drains everything queued by then.
  if (was_empty) uv_async_send(&c->ev_async);
}

void rg_event (rg_core_t *c, const char *op, const char *path, int32_t outcome) {
  rg_event_p(c, op, path, NULL, outcome, NULL, NULL);
}
