// rofiles-guard's native layer: the requests the patched fuse-native binding serves itself, on
// libfuse's threads, against the root descriptor, instead of handing them to the JS thread; and
// the policy decisions that need no copy-up, with what was done queued for the journal.
//
// This file is compiled as part of the binding: native/fuse-native-2.2.6.patch adds one line to
// fuse-native.c, `#include "guard.c"`, after fuse_thread_t and the JS dispatchers
// (fuse_native_getattr, ...) it uses are defined. scripts/build-native.mjs copies it, with
// guard-abi.h, policy.c, abi.c and copyup.c, into the binding's private copy.
//
// Which layer serves what is rg_install_ops() at the end: one line per operation.
#include "guard-abi.h"

// What a path was just before a change reached it: the journal compares it with the path after
// the hook (the net effect). `target` (a symlink's) and `xattrs` are released by rg_prior_free.
typedef struct {
  int exists;
  struct stat st;
  char *target;
  char *xattrs; // "name=hexvalue\n" per xattr, by name (malloc'd); the journal compares it
} rg_prior_t;

typedef struct rg_event {
  struct rg_event *next;
  int32_t outcome; // enum rg_outcome (done, refused by the policy, done after a copy-up), else -errno
  char op[16];
  char *path2; // rename/link destination, or NULL; points into paths
  rg_prior_t prior[2]; // of path and path2; targets point into paths
  char path[];
} rg_event_t;

static fuse_thread_t *pt_ft (void) {
  return (fuse_thread_t *) fuse_get_context()->private_data;
}

// "/a/b" relative to the root descriptor: "a/b"; the root itself: ".".
static const char *pt_rel (const char *path) {
  return path[1] ? path + 1 : ".";
}

// A path that reaches `path` of the root for calls that have no *at form here (truncate, the
// xattr calls: Linux 6.1 has no truncateat or *xattrat). Usually root + path as one string;
// when that passes PATH_MAX, the parent directory opened with O_PATH relative to the root
// descriptor and "/proc/self/fd/N/name". Release with pt_at_close.
typedef struct { char p[PATH_MAX]; int dirfd; } pt_at_t;

static void pt_at_close (pt_at_t *a) {
  if (a->dirfd >= 0) close(a->dirfd);
  a->dirfd = -1;
}

static int pt_at_open (pt_at_t *a, const char *path) {
  fuse_thread_t *ft = pt_ft();
  a->dirfd = -1;
  int n = snprintf(a->p, sizeof(a->p), "%s%s", ft->passthrough_root, path);
  if (n >= 0 && n < (int) sizeof(a->p)) return 0;
  const char *rel = pt_rel(path);
  const char *slash = strrchr(rel, '/');
  int dfd = ft->root_fd;
  const char *name = rel;
  if (slash != NULL) {
    char parent[PATH_MAX];
    size_t len = (size_t) (slash - rel);
    if (len >= sizeof(parent)) return -ENAMETOOLONG;
    memcpy(parent, rel, len);
    parent[len] = 0;
    dfd = a->dirfd = openat(ft->root_fd, parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -errno;
    name = slash + 1;
  }
  n = snprintf(a->p, sizeof(a->p), "/proc/self/fd/%d/%s", dfd, name);
  if (n < 0 || n >= (int) sizeof(a->p)) { pt_at_close(a); return -ENAMETOOLONG; }
  return 0;
}

// `call` (an expression on `at`, a short path to `path`: see pt_at_open) for a change that has no
// *at form; 0 or -errno.
#define RG_AT(path, call) ({ \
  pt_at_t a_; \
  int r_ = pt_at_open(&a_, (path)); \
  if (r_ == 0) { const char *at = a_.p; r_ = (call) < 0 ? -errno : 0; pt_at_close(&a_); } \
  r_; })

// libfuse's name for an open file that was unlinked: only JS knows where it is now.
static int pt_is_hidden (const char *path) {
  return strstr(path, "/.fuse_hidden") != NULL;
}

static int rg_attr_decision (fuse_thread_t *ft, const char *path, const char *op, int *copied, rg_prior_t *pr);
static int rg_done_c (fuse_thread_t *ft, const char *op, const char *path, int copied, int r, rg_prior_t *pr);
static void rg_prior (fuse_thread_t *ft, const char *path, rg_prior_t *p);
static void rg_prior_stat (fuse_thread_t *ft, const char *path, rg_prior_t *p);
static void rg_prior_free (rg_prior_t *p);
#define RG_TO_JS 1 // not an errno: "let JS handle this request"

// The start of every change to an existing path's data or attributes (as rofiles-fuse has one
// check at each writing entry point): stat the path, decide on that stat (rg_attr_decision:
// refuse, or complete the prior state for the journal and copy up first where needed, or pass),
// and hand the request to JS where the native layer does not serve it. What follows runs only
// when the change is to be made here.
#define RG_CHANGE(op, js_call) \
  fuse_thread_t *ft = pt_ft(); \
  int copied; \
  rg_prior_t pr; \
  rg_prior_stat(ft, path, &pr); \
  int d = rg_attr_decision(ft, path, (op), &copied, &pr); \
  if (d == RG_TO_JS || d < 0) { rg_prior_free(&pr); return d == RG_TO_JS ? (js_call) : d; }

static int pt_getattr (const char *path, struct stat *st) {
  if (pt_is_hidden(path)) return fuse_native_getattr(path, st);
  return fstatat(pt_ft()->root_fd, pt_rel(path), st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int pt_fgetattr (const char *path, struct stat *st, struct fuse_file_info *fi) {
  return fstat(fi->fh, st) < 0 ? -errno : 0;
}

static int pt_readlink (const char *path, char *buf, size_t size) {
  ssize_t n = readlinkat(pt_ft()->root_fd, pt_rel(path), buf, size - 1);
  if (n < 0) return -errno;
  buf[n] = 0;
  return 0;
}

static int pt_readdir (const char *path, void *buf, fuse_fill_dir_t filler, off_t off, struct fuse_file_info *fi) {
  int e;
  int dfd = openat(pt_ft()->root_fd, pt_rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -errno;
  DIR *d = fdopendir(dfd);
  if (d == NULL) { e = errno; close(dfd); return -e; }
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d)) != NULL) {
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_ino = de->d_ino;
    st.st_mode = de->d_type == DT_UNKNOWN ? 0 : DTTOIF(de->d_type);
    if (filler(buf, de->d_name, &st, 0)) break;
    errno = 0;
  }
  e = errno;
  closedir(d);
  return e ? -e : 0;
}

static int pt_read (const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  ssize_t n = pread(fi->fh, buf, size, off);
  return n < 0 ? -errno : (int) n;
}

static int pt_write (const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  ssize_t n = pwrite(fi->fh, buf, size, off);
  return n < 0 ? -errno : (int) n;
}

static int pt_statfs (const char *path, struct statvfs *sv) {
  return fstatvfs(pt_ft()->root_fd, sv) < 0 ? -errno : 0;
}

static int pt_getxattr (const char *path, const char *name, char *value, size_t size) {
  pt_at_t a;
  int e = pt_at_open(&a, path);
  if (e) return e;
  ssize_t n = lgetxattr(a.p, name, value, size);
  e = n < 0 ? -errno : (int) n;
  pt_at_close(&a);
  return e;
}

static int pt_listxattr (const char *path, char *list, size_t size) {
  pt_at_t a;
  int e = pt_at_open(&a, path);
  if (e) return e;
  ssize_t n = llistxattr(a.p, list, size);
  e = n < 0 ? -errno : (int) n;
  pt_at_close(&a);
  return e;
}

// O_DIRECT through the mount: the kernel sends the caller's I/O straight to the server (direct_io,
// no page cache of the mount); the backing file is opened without it, since libfuse's buffers
// need not be aligned as O_DIRECT wants.
static int rg_backing_flags (struct fuse_file_info *fi) {
  if (fi->flags & O_DIRECT) fi->direct_io = 1;
  return fi->flags & ~O_DIRECT;
}

// An open that can change the file: a change like any other (RG_CHANGE), then the open.
static int pt_open_write (const char *path, struct fuse_file_info *fi) {
  RG_CHANGE("open", fuse_native_open(path, fi))
  int wfd = openat(ft->root_fd, pt_rel(path), rg_backing_flags(fi));
  if (wfd < 0) return rg_done_c(ft, "open", path, copied, -errno, &pr);
  fi->fh = wfd;
  fi->keep_cache = !fi->direct_io; // a copy's data is the object's at this moment
  return rg_done_c(ft, "open", path, copied, 0, &pr);
}

static int pt_open (const char *path, struct fuse_file_info *fi) {
  fuse_thread_t *ft = pt_ft();
  int writes = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_APPEND));
  if ((writes && ft->policy < 0) || __atomic_load_n(&ft->js_opens, __ATOMIC_ACQUIRE) > 0 || pt_is_hidden(path)) {
    return fuse_native_open(path, fi);
  }
  if (writes) return pt_open_write(path, fi);
  int fd = openat(ft->root_fd, pt_rel(path), rg_backing_flags(fi));
  if (fd < 0) return -errno;
  fi->fh = fd;
  fi->keep_cache = !fi->direct_io;
  return 0;
}

static int pt_release (const char *path, struct fuse_file_info *fi) {
  close(fi->fh);
  return 0;
}

// --- native policy -------------------------------------------------------------------------

#define RG_MAX_EVENTS 100000

static int rg_cmp_names (const void *a, const void *b) {
  return strcmp(*(const char * const *) a, *(const char * const *) b);
}

// A path's xattrs as "name=hexvalue\n" lines sorted by name ("" when it has none), or NULL where
// they cannot be read. lib/server/backing.ts writes the same form for the state after a hook.
static char *rg_xattr_lines (const char *path) {
  char names[65536];
  ssize_t len = llistxattr(path, names, sizeof(names));
  if (len < 0) return errno == ENOTSUP ? strdup("") : NULL;
  const char *list[1024];
  size_t n = 0;
  for (char *nm = names; nm < names + len && n < 1024; nm += strlen(nm) + 1) list[n++] = nm;
  qsort(list, n, sizeof(list[0]), rg_cmp_names);
  size_t cap = 256, used = 0;
  char *out = malloc(cap);
  unsigned char value[65536];
  for (size_t i = 0; out != NULL && i < n; i++) {
    ssize_t vlen = lgetxattr(path, list[i], value, sizeof(value));
    if (vlen < 0) continue; // removed meanwhile
    size_t need = used + strlen(list[i]) + 2 * (size_t) vlen + 3;
    if (need > cap) {
      while (cap < need) cap *= 2;
      char *more = realloc(out, cap);
      if (more == NULL) { free(out); return NULL; }
      out = more;
    }
    used += sprintf(out + used, "%s=", list[i]);
    for (ssize_t k = 0; k < vlen; k++) used += sprintf(out + used, "%02x", value[k]);
    out[used++] = '\n';
  }
  if (out != NULL) out[used] = 0;
  return out;
}

// The first half of a prior state: the stat, which is also what the object test needs.
static void rg_prior_stat (fuse_thread_t *ft, const char *path, rg_prior_t *p) {
  p->target = NULL;
  p->xattrs = NULL;
  p->exists = fstatat(ft->root_fd, pt_rel(path), &p->st, AT_SYMLINK_NOFOLLOW) == 0;
}

// The rest, read only for a change that is going to be made: the xattrs and a symlink's target.
static void rg_prior_details (fuse_thread_t *ft, const char *path, rg_prior_t *p) {
  if (!p->exists) return;
  pt_at_t a;
  if (pt_at_open(&a, path) == 0) {
    p->xattrs = rg_xattr_lines(a.p);
    pt_at_close(&a);
  }
  if (!S_ISLNK(p->st.st_mode)) return;
  char buf[PATH_MAX];
  ssize_t n = readlinkat(ft->root_fd, pt_rel(path), buf, sizeof(buf) - 1);
  if (n < 0) return;
  buf[n] = 0;
  p->target = strdup(buf);
}

static void rg_prior (fuse_thread_t *ft, const char *path, rg_prior_t *p) {
  rg_prior_stat(ft, path, p);
  rg_prior_details(ft, path, p);
}

static void rg_prior_free (rg_prior_t *p) {
  free(p->target);
  free(p->xattrs);
  p->target = p->xattrs = NULL;
}

static size_t rg_len (const char *s) {
  return s ? strlen(s) + 1 : 0;
}

// Queues what was done, with the prior state of path and path2 where the caller took it.
static void rg_event_p (fuse_thread_t *ft, const char *op, const char *path, const char *path2, int32_t outcome,
                        const rg_prior_t *p1, const rg_prior_t *p2) {
  size_t len = strlen(path) + 1, len2 = rg_len(path2);
  size_t extra = 0;
  if (p1) extra += rg_len(p1->target) + rg_len(p1->xattrs);
  if (p2) extra += rg_len(p2->target) + rg_len(p2->xattrs);
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
  uv_mutex_lock(&ft->ev_mut);
  int was_empty = ft->ev_head == NULL;
  if (ft->ev_count >= RG_MAX_EVENTS) {
    ft->ev_dropped++;
    free(e);
  } else {
    if (ft->ev_tail) ft->ev_tail->next = e; else ft->ev_head = e;
    ft->ev_tail = e;
    ft->ev_count++;
  }
  uv_mutex_unlock(&ft->ev_mut);
  // Wake JS only when the queue stops being empty: it drains everything queued by then.
  if (was_empty) uv_async_send(&ft->ev_async);
}

static void rg_event2 (fuse_thread_t *ft, const char *op, const char *path, const char *path2, int32_t outcome) {
  rg_event_p(ft, op, path, path2, outcome, NULL, NULL);
}

static void rg_event (fuse_thread_t *ft, const char *op, const char *path, int32_t outcome) {
  rg_event2(ft, op, path, NULL, outcome);
}

// One copy-up at a time: a second request for the same object waits, then finds a private
// copy (no longer an object) and does not copy again.
static pthread_mutex_t rg_copyup_lock = PTHREAD_MUTEX_INITIALIZER;

static int rg_native_copy_up (fuse_thread_t *ft, const char *path) {
  pt_at_t a;
  int e = pt_at_open(&a, path);
  if (e) return e;
  pthread_mutex_lock(&rg_copyup_lock);
  struct stat st;
  int r = 0;
  if (fstatat(ft->root_fd, pt_rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) && st.st_nlink > 1) {
    r = rg_copy_up(a.p);
    if (r == 0) {
      // Handles opened on the object before now may refill the page cache with its data. Which
      // they are must be seen now, before they can be closed: "dev:ino:fd,fd,...". Until JS has
      // the event, opens go to JS (it resets the count when it processes it).
      char info[1024];
      int n = snprintf(info, sizeof(info), "%llu:%llu:", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
      DIR *d = opendir("/proc/self/fd");
      int found = 0;
      if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
          if (de->d_name[0] == '.') continue;
          int fd = atoi(de->d_name);
          struct stat fst;
          if (fd == dirfd(d) || fstat(fd, &fst) < 0) continue;
          if (fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) continue;
          if (n < (int) sizeof(info) - 16) n += snprintf(info + n, sizeof(info) - n, "%s%d", found ? "," : "", fd);
          found++;
        }
        closedir(d);
      }
      if (found) {
        __atomic_add_fetch(&ft->js_opens, 1, __ATOMIC_ACQ_REL);
        rg_event2(ft, "copyup", path, info, 0);
      }
    }
  }
  pthread_mutex_unlock(&rg_copyup_lock);
  pt_at_close(&a);
  return r;
}

// For a change of an existing path's data or attributes, whose stat *pr has just taken:
// -EROFS when refused (recorded), -errno when a needed copy-up failed (recorded), 0 to apply it
// here (*copied set when a copy-up was done first; *pr then complete), RG_TO_JS for a path only
// JS knows.
static int rg_attr_decision (fuse_thread_t *ft, const char *path, const char *op, int *copied, rg_prior_t *pr) {
  *copied = 0;
  if (ft->policy < 0 || pt_is_hidden(path)) return RG_TO_JS;
  enum rg_op_class cls = strcmp(op, "open") == 0 ? RG_WRITE_OPEN : RG_ATTR;
  int object = pr->exists && rg_is_object_mode(pr->st.st_mode, pr->st.st_nlink);
  switch (rg_decide(cls, (enum rg_mode) ft->policy, object)) {
    case RG_PASS: rg_prior_details(ft, path, pr); return 0;
    case RG_DENY: rg_event(ft, op, path, RG_REFUSED); return -EROFS;
    case RG_COPYUP: break;
  }
  rg_prior_details(ft, path, pr); // before the copy-up: the state the hook saw
  int r = rg_native_copy_up(ft, path);
  if (r < 0) { rg_event(ft, op, path, r); return r; }
  *copied = 1;
  return 0;
}

// Records the outcome of a change whose prior state is *pr (released here).
static int rg_done_c (fuse_thread_t *ft, const char *op, const char *path, int copied, int r, rg_prior_t *pr) {
  rg_event_p(ft, op, path, NULL, r < 0 ? r : (copied ? RG_COPIED_UP : RG_DONE), pr, NULL);
  rg_prior_free(pr);
  return r;
}

static int rg_done (fuse_thread_t *ft, const char *op, const char *path, int r, rg_prior_t *pr) {
  return rg_done_c(ft, op, path, 0, r, pr);
}

static int pt_chmod (const char *path, mode_t mode) {
  RG_CHANGE("chmod", fuse_native_chmod(path, mode))
  return rg_done_c(ft, "chmod", path, copied, fchmodat(ft->root_fd, pt_rel(path), mode, 0) < 0 ? -errno : 0, &pr);
}

static int pt_chown (const char *path, uid_t uid, gid_t gid) {
  RG_CHANGE("chown", fuse_native_chown(path, uid, gid))
  return rg_done_c(ft, "chown", path, copied, fchownat(ft->root_fd, pt_rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0, &pr);
}

static int pt_utimens (const char *path, const struct timespec tv[2]) {
  RG_CHANGE("utimens", fuse_native_utimens(path, tv))
  return rg_done_c(ft, "utimens", path, copied, utimensat(ft->root_fd, pt_rel(path), tv, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0, &pr);
}

static int pt_truncate (const char *path, off_t size) {
  RG_CHANGE("truncate", fuse_native_truncate(path, size))
  return rg_done_c(ft, "truncate", path, copied, RG_AT(path, truncate(at, size)), &pr);
}

static int pt_setxattr (const char *path, const char *name, const char *value, size_t size, int flags) {
  RG_CHANGE("setxattr", fuse_native_setxattr(path, name, value, size, flags))
  return rg_done_c(ft, "setxattr", path, copied, RG_AT(path, lsetxattr(at, name, value, size, flags)), &pr);
}

static int pt_removexattr (const char *path, const char *name) {
  RG_CHANGE("removexattr", fuse_native_removexattr(path, name))
  return rg_done_c(ft, "removexattr", path, copied, RG_AT(path, lremovexattr(at, name)), &pr);
}

// New entries belong to the process that made them, not to the server (root); in a set-group-ID
// directory the kernel already gave the entry the directory's group.
static int rg_give_to_caller (fuse_thread_t *ft, const char *path) {
  struct fuse_context *c = fuse_get_context();
  if (c->uid == 0 && c->gid == 0) return 0;
  gid_t gid = c->gid;
  char parent[PATH_MAX];
  strncpy(parent, path, sizeof(parent) - 1);
  parent[sizeof(parent) - 1] = 0;
  char *slash = strrchr(parent, '/');
  if (slash == parent) slash[1] = 0; else if (slash) *slash = 0;
  struct stat st;
  if (fstatat(ft->root_fd, pt_rel(parent), &st, 0) == 0 && (st.st_mode & S_ISGID)) gid = (gid_t) -1;
  return fchownat(ft->root_fd, pt_rel(path), c->uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

// Namespace changes need no copy-up: readonly refuses them, other modes let them through.
// Requests only JS can serve (libfuse's .fuse_hidden names, opens while stale pages may be
// cached) go to JS.
// Refuses a namespace change (and records the refusal) where the policy says so.
#define RG_NAMESPACE(ft, op, path, path2) \
  if (rg_decide(RG_NAMESPACE, (enum rg_mode) (ft)->policy, 0) == RG_DENY) { rg_event2((ft), (op), (path), (path2), RG_REFUSED); return -EROFS; }

static int pt_create (const char *path, mode_t mode, struct fuse_file_info *fi) {
  fuse_thread_t *ft = pt_ft();
  if (ft->policy < 0 || pt_is_hidden(path) || __atomic_load_n(&ft->js_opens, __ATOMIC_ACQUIRE) > 0) return fuse_native_create(path, mode, fi);
  RG_NAMESPACE(ft, "create", path, NULL)
  rg_prior_t pr;
  rg_prior(ft, path, &pr);
  int fd = openat(ft->root_fd, pt_rel(path), rg_backing_flags(fi) | O_CREAT, mode);
  if (fd < 0) return rg_done(ft, "create", path, -errno, &pr);
  int r = rg_give_to_caller(ft, path);
  if (r < 0) { close(fd); unlinkat(ft->root_fd, pt_rel(path), 0); return rg_done(ft, "create", path, r, &pr); }
  fi->fh = fd;
  fi->keep_cache = !fi->direct_io;
  return rg_done(ft, "create", path, 0, &pr);
}

static int pt_mkdir (const char *path, mode_t mode) {
  fuse_thread_t *ft = pt_ft();
  if (ft->policy < 0) return fuse_native_mkdir(path, mode);
  RG_NAMESPACE(ft, "mkdir", path, NULL)
  rg_prior_t pr;
  rg_prior(ft, path, &pr);
  if (mkdirat(ft->root_fd, pt_rel(path), mode) < 0) return rg_done(ft, "mkdir", path, -errno, &pr);
  int r = rg_give_to_caller(ft, path);
  if (r < 0) unlinkat(ft->root_fd, pt_rel(path), AT_REMOVEDIR);
  return rg_done(ft, "mkdir", path, r, &pr);
}

static int pt_symlink (const char *target, const char *path) {
  fuse_thread_t *ft = pt_ft();
  if (ft->policy < 0) return fuse_native_symlink(target, path);
  RG_NAMESPACE(ft, "symlink", path, NULL)
  rg_prior_t pr;
  rg_prior(ft, path, &pr);
  if (symlinkat(target, ft->root_fd, pt_rel(path)) < 0) return rg_done(ft, "symlink", path, -errno, &pr);
  int r = rg_give_to_caller(ft, path);
  if (r < 0) unlinkat(ft->root_fd, pt_rel(path), 0);
  return rg_done(ft, "symlink", path, r, &pr);
}

static int pt_link (const char *from, const char *to) {
  fuse_thread_t *ft = pt_ft();
  if (ft->policy < 0 || pt_is_hidden(from)) return fuse_native_link(from, to);
  RG_NAMESPACE(ft, "link", from, to)
  rg_prior_t pr;
  rg_prior(ft, to, &pr);
  int r = linkat(ft->root_fd, pt_rel(from), ft->root_fd, pt_rel(to), 0) < 0 ? -errno : 0;
  rg_event_p(ft, "link", from, to, r, NULL, &pr);
  rg_prior_free(&pr);
  return r;
}

static int pt_unlink (const char *path) {
  fuse_thread_t *ft = pt_ft();
  if (ft->policy < 0 || pt_is_hidden(path)) return fuse_native_unlink(path);
  RG_NAMESPACE(ft, "unlink", path, NULL)
  rg_prior_t pr;
  rg_prior(ft, path, &pr);
  return rg_done(ft, "unlink", path, unlinkat(ft->root_fd, pt_rel(path), 0) < 0 ? -errno : 0, &pr);
}

static int pt_rmdir (const char *path) {
  fuse_thread_t *ft = pt_ft();
  if (ft->policy < 0) return fuse_native_rmdir(path);
  RG_NAMESPACE(ft, "rmdir", path, NULL)
  rg_prior_t pr;
  rg_prior(ft, path, &pr);
  return rg_done(ft, "rmdir", path, unlinkat(ft->root_fd, pt_rel(path), AT_REMOVEDIR) < 0 ? -errno : 0, &pr);
}

static int pt_rename (const char *from, const char *to) {
  fuse_thread_t *ft = pt_ft();
  if (ft->policy < 0 || pt_is_hidden(from) || pt_is_hidden(to)) return fuse_native_rename(from, to);
  RG_NAMESPACE(ft, "rename", from, to)
  rg_prior_t pr[2];
  rg_prior(ft, from, &pr[0]);
  rg_prior(ft, to, &pr[1]);
  int r = renameat(ft->root_fd, pt_rel(from), ft->root_fd, pt_rel(to)) < 0 ? -errno : 0;
  rg_event_p(ft, "rename", from, to, r, &pr[0], &pr[1]);
  rg_prior_free(&pr[0]);
  rg_prior_free(&pr[1]);
  return r;
}

// mknod: refused in every mode (JS is never asked).
static int pt_mknod (const char *path, mode_t mode, dev_t dev) {
  // rg_decide refuses RG_MKNOD in every mode: nothing to ask.
  rg_event(pt_ft(), "mknod", path, RG_REFUSED);
  return -EROFS;
}

static void rg_on_events (uv_async_t *handle) {
  fuse_thread_t *ft = (fuse_thread_t *) handle->data;
  if (ft->on_events == NULL) return;
  napi_env env = ft->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value ctx;
  napi_get_reference_value(env, ft->ctx, &ctx);
  napi_value callback;
  napi_get_reference_value(env, ft->on_events, &callback);
  NAPI_MAKE_CALLBACK(env, NULL, ctx, callback, 0, NULL, NULL)
  napi_close_handle_scope(env, scope);
}

// A prior state for JS: null (did not exist, or not taken) or
// [mode, uid, gid, size, mtimeSec, mtimeNsec, ino, symlinkTarget|null, xattrLines|null].
static napi_value rg_prior_value (napi_env env, const rg_prior_t *p) {
  napi_value out, v;
  if (!p->exists) { napi_get_null(env, &out); return out; }
  double f[7] = { p->st.st_mode, p->st.st_uid, p->st.st_gid, (double) p->st.st_size,
                  (double) p->st.st_mtim.tv_sec, (double) p->st.st_mtim.tv_nsec, (double) p->st.st_ino };
  napi_create_array_with_length(env, 9, &out);
  for (uint32_t i = 0; i < 7; i++) {
    napi_create_double(env, f[i], &v);
    napi_set_element(env, out, i, v);
  }
  const char *strs[2] = { p->target, p->xattrs };
  for (uint32_t i = 0; i < 2; i++) {
    if (strs[i]) napi_create_string_utf8(env, strs[i], NAPI_AUTO_LENGTH, &v);
    else napi_get_null(env, &v);
    napi_set_element(env, out, 7 + i, v);
  }
  return out;
}

// drainEvents(ft) -> [op, path, outcome, path2|null, prior, prior2, ...] (see rg_prior_value)
// plus, last, the number dropped since the last drain.
NAPI_METHOD(fuse_native_drain_events) {
  NAPI_ARGV(1)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  uv_mutex_lock(&ft->ev_mut);
  rg_event_t *e = ft->ev_head;
  uint32_t dropped = ft->ev_dropped;
  ft->ev_head = ft->ev_tail = NULL;
  ft->ev_count = 0;
  ft->ev_dropped = 0;
  uv_mutex_unlock(&ft->ev_mut);
  napi_value out;
  napi_create_array(env, &out);
  uint32_t i = 0;
  while (e) {
    napi_value v;
    napi_create_string_utf8(env, e->op, NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, out, i++, v);
    napi_create_string_utf8(env, e->path, NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, out, i++, v);
    napi_create_int32(env, e->outcome, &v);
    napi_set_element(env, out, i++, v);
    if (e->path2) napi_create_string_utf8(env, e->path2, NAPI_AUTO_LENGTH, &v);
    else napi_get_null(env, &v);
    napi_set_element(env, out, i++, v);
    napi_set_element(env, out, i++, rg_prior_value(env, &e->prior[0]));
    napi_set_element(env, out, i++, rg_prior_value(env, &e->prior[1]));
    rg_event_t *next = e->next;
    free(e);
    e = next;
  }
  napi_value d;
  napi_create_uint32(env, dropped, &d);
  napi_set_element(env, out, i, d);
  return out;
}

static int pt_fsync (const char *path, int datasync, struct fuse_file_info *fi) {
  int r = datasync ? fdatasync(fi->fh) : fsync(fi->fh);
  return r < 0 ? -errno : 0;
}


// Which layer serves each operation: with the native layer on, every line below replaces the JS
// dispatcher fuse-native installed; each handler falls through to JS (fuse_native_*) where its
// comment says. With `policy` (rofiles-guard's nativePolicy) the changing operations too.
static void rg_install_ops (struct fuse_operations *ops, int policy) {
  // Reads: always native.
  ops->getattr = pt_getattr;         // JS: libfuse's .fuse_hidden names (an unlinked open file)
  ops->fgetattr = pt_fgetattr;
  ops->readlink = pt_readlink;
  ops->readdir = pt_readdir;
  ops->read = pt_read;
  ops->write = pt_write;             // only on handles the guard granted at open
  ops->statfs = pt_statfs;
  ops->getxattr = pt_getxattr;
  ops->listxattr = pt_listxattr;
  ops->fsync = pt_fsync;
  ops->release = pt_release;
  ops->open = pt_open;               // JS: hidden names; any open while JS tracks stale page
                                     // caches (js_opens > 0); write-opens without a policy
  // No flush: on a local backing filesystem it has nothing to do, and once it answers ENOSYS
  // the kernel stops sending one request per close (rofiles-fuse does the same).
  ops->flush = NULL;
  if (!policy) return;
  // Changes: the policy decided here (rg_decide), copy-ups done here.
  ops->chmod = pt_chmod;             // JS: hidden names (and so for the five below)
  ops->chown = pt_chown;
  ops->utimens = pt_utimens;
  ops->truncate = pt_truncate;
  ops->setxattr = pt_setxattr;
  ops->removexattr = pt_removexattr;
  ops->mknod = pt_mknod;             // never JS: refused in every mode
  ops->create = pt_create;           // JS: hidden names; while js_opens > 0
  ops->mkdir = pt_mkdir;
  ops->symlink = pt_symlink;
  ops->link = pt_link;               // JS: a hidden source
  ops->unlink = pt_unlink;           // JS: hidden names (libfuse's final unlink of one)
  ops->rmdir = pt_rmdir;
  ops->rename = pt_rename;           // JS: to or from a hidden name (libfuse hiding a file)
}
