// The core's request handlers: what the kernel asks, served against the root descriptor, with the
// policy (rg_decide, docs/spec.md "Modes") checked at every entry point that can change an
// existing path (change_begin, as rofiles-fuse has one check per writing entry point) and every
// change queued for the journal. Which handler serves what is rg_ops at the end.
#include "core.h"
#include "../copyup.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define CORE(req) ((rg_core_t *) fuse_req_userdata(req))
#define HANDLE(fi) ((rg_handle_t *) (uintptr_t) (fi)->fh)

// What an entry reply says of node n: its id, and its attributes (st), kept as long as names are.
static void entry_of (struct fuse_entry_param *e, rg_node_t *n, const struct stat *st) {
  memset(e, 0, sizeof(*e));
  e->ino = rg_node_id(n);
  e->generation = n->generation;
  e->attr = *st;
  e->attr_timeout = e->entry_timeout = RG_TIMEOUT;
}

// Replies with the entry of name in parent (one more kernel reference to its node).
static void reply_entry (fuse_req_t req, rg_node_t *parent, const char *name, const struct stat *st) {
  rg_node_t *n = rg_node_ref(parent, name, st);
  if (n == NULL) { fuse_reply_err(req, ENOMEM); return; }
  struct fuse_entry_param e;
  entry_of(&e, n, st);
  if (fuse_reply_entry(req, &e) != 0) rg_node_forget(n, 1);
}

// --- /etc of an ostree OS tree ------------------------------------------------------------------

// An ostree OS tree keeps its configuration in usr/etc and has no top-level etc (ostree makes
// /etc at deploy time, and refuses a tree with both). While the root is such a tree, the mount
// shows `etc` as a symlink to usr/etc, made up by the guard and never in the root: a hook's
// /etc/... (a sandbox with the root as /) and relative etc/... (sandbox none) land in usr/etc,
// as rpm-ostree's script runner shows usr/etc at /etc. The link can be read, not changed.
#define RG_ALIAS_TARGET "usr/etc"
#define RG_ALIAS_INO ((ino_t) -2)
#define RG_ALIAS_OFF ((off_t) INT64_MAX - 1)

static int is_alias_name (rg_core_t *c, rg_node_t *parent, const char *name) {
  if (parent->parent != NULL || strcmp(name, "etc") != 0) return 0;
  struct stat st;
  if (fstatat(c->root_fd, "etc", &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) return 0;
  int fd = rg_open_beneath(c->root_fd, RG_ALIAS_TARGET, O_PATH | O_DIRECTORY);
  if (fd < 0) return 0;
  close(fd);
  return 1;
}

// The link's attributes: the root's owner and times, a symlink's mode, an inode of its own.
static void alias_stat (rg_core_t *c, struct stat *st) {
  fstat(c->root_fd, st);
  st->st_mode = S_IFLNK | 0777;
  st->st_nlink = 1;
  st->st_size = (off_t) strlen(RG_ALIAS_TARGET);
  st->st_ino = RG_ALIAS_INO;
  st->st_blocks = 0;
}

// Lock held.
static int alias_node_locked (rg_node_t *n) {
  return n->hashed && n->parent != NULL && n->parent->parent == NULL && n->ino == RG_ALIAS_INO && strcmp(n->name, "etc") == 0;
}

static int is_alias_node (rg_node_t *n) {
  rg_lock();
  int r = alias_node_locked(n);
  rg_unlock();
  return r;
}

// --- reaching a node ---------------------------------------------------------------------------

// A request's node, pinned: an O_PATH descriptor on the inode served, opened once with no symlink
// followed, and every decision and every system call of the request made on that descriptor
// ("/proc/self/fd/N" for calls without an fd form), never on the name again. A named node is
// reached by its name in its directory and must still be on the inode the kernel was told about
// (else ESTALE: the kernel looks the name up again); a node whose name was removed while the
// kernel holds it (an unlinked open file) by the descriptor kept on its inode. The journal names
// the latter "<last path> (deleted)", as /proc does.
typedef struct {
  rg_node_t *node;
  char *path;      // the journal's name (for changes only; NULL for reads)
  int nameless;    // reached through the node's descriptor, not a name
  int fd;          // the pin (owned, except the root's descriptor)
  char fdproc[32]; // "/proc/self/fd/<fd>"
  struct stat st;  // fstat of the pin: what the request is decided on
  rg_loc_t loc;    // named: the name's directory and name
} rg_target_t;

static void target_set_fd (rg_target_t *t, int fd) {
  t->fd = fd;
  snprintf(t->fdproc, sizeof(t->fdproc), "/proc/self/fd/%d", fd);
}

// The inode of `name` in directory dirfd, as an O_PATH descriptor: the name itself, never a
// symlink's target, never across a mount. -errno.
static int pin_name (int dirfd, const char *name) {
  return rg_open_beneath(dirfd, name, O_PATH | O_NOFOLLOW);
}

static void target_close (rg_core_t *c, rg_target_t *t) {
  rg_loc_done(&t->loc);
  if (t->fd >= 0 && t->fd != c->root_fd) close(t->fd);
  t->fd = -1;
  free(t->path);
  t->path = NULL;
}

// `named`: also its path for the journal (changes need it; reads do not).
static int target_open (rg_core_t *c, rg_target_t *t, fuse_ino_t ino, int named) {
  rg_node_t *n = t->node = rg_node(ino);
  t->path = NULL;
  t->fd = -1;
  t->loc.own = 0;
  rg_lock();
  int hashed = n->hashed, replaced = n->replaced, alias = alias_node_locked(n);
  int fd = hashed || n->nameless_fd < 0 ? -1 : fcntl(n->nameless_fd, F_DUPFD_CLOEXEC, 0);
  rg_unlock();
  t->nameless = !hashed;
  if (!hashed && fd < 0) return replaced ? -ESTALE : -ENOENT;
  if (alias) return -EPERM; // the made-up /etc link: read only (see above)
  if (n->parent == NULL) fd = c->root_fd;
  else if (hashed) {
    int r = rg_loc_node(c, n, &t->loc);
    if (r < 0) return r;
    fd = pin_name(t->loc.dirfd, t->loc.name);
    if (fd < 0) { rg_loc_done(&t->loc); return fd; }
  }
  target_set_fd(t, fd);
  if (fstat(fd, &t->st) < 0) { int e = errno; target_close(c, t); return -e; }
  // Changed outside the mount since the kernel was told: never served as the old inode.
  if (hashed && n->parent != NULL && !rg_node_is(n, &t->st)) { target_close(c, t); return -ESTALE; }
  if (!named) return 0;
  t->path = rg_node_path(n);
  if (t->path == NULL) { target_close(c, t); return -ENOMEM; }
  if (!hashed) {
    char *gone = malloc(strlen(t->path) + 12);
    if (gone == NULL) { target_close(c, t); return -ENOMEM; }
    sprintf(gone, "%s (deleted)", t->path);
    free(t->path);
    t->path = gone;
  }
  return 0;
}

// --- the policy at each change -----------------------------------------------------------------

static pthread_mutex_t copyup_lock = PTHREAD_MUTEX_INITIALIZER;
// A copy-up of at most this much data is made by the reading thread itself (rg_step_down).
#define RG_COPYUP_INLINE_BYTES (1u << 20)

// copyup_lock, the reader handing over first where it would wait: a copy-up is under way, and
// may take long. (A copy-up holds the lock only while it works on the backing filesystem, never
// while it tells the kernel, so waiting for it cannot wait for a request of ours.)
static void copyup_lock_take (void) {
  if (pthread_mutex_trylock(&copyup_lock) == 0) return;
  rg_step_down();
  pthread_mutex_lock(&copyup_lock);
}

// The object test: a regular file or symlink whose inode someone else shares too. A nameless
// inode is one while it has any link left: that link is someone else's.
static int is_object (const rg_target_t *t, const struct stat *st) {
  return t->nameless ? (S_ISREG(st->st_mode) || S_ISLNK(st->st_mode)) && st->st_nlink >= 1
                     : rg_is_object_mode(st->st_mode, st->st_nlink);
}

static int same_inode (const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

// The stat of `name` in `parent` (directory dirfd) for a lookup or a listing. Where it is not the
// inode of the node the kernel may hold for the name, a copy-up of that name may have been under
// way: once none runs, the name is stat'd again, so that a listing never gives a copied-up name
// its object back (rg_node_ref takes a remaining difference for a change behind the mount).
static int stat_child (rg_node_t *parent, int dirfd, const char *name, struct stat *st) {
  if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT) < 0) return -errno;
  rg_lock();
  rg_node_t *n = rg_node_find(parent, name);
  int differs = n != NULL && (n->dev != st->st_dev || n->ino != st->st_ino);
  rg_unlock();
  if (!differs) return 0;
  copyup_lock_take();
  int r = fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT) < 0 ? -errno : 0;
  pthread_mutex_unlock(&copyup_lock);
  return r;
}

// Breaks the link of the pinned object at the target's name (one copy-up at a time), moves the
// pin to the copy, then tells the kernel: the name now has another inode, and the object one link
// less wherever else the kernel knows it. 1 when the name got a new node (see below), 0 when
// copied in place or nothing was to be done, -errno.
static int copy_up (rg_core_t *c, rg_target_t *t, pid_t pid) {
  rg_rights_t who;
  rg_rights_of(pid, &who);
  // An object a hook made by linking its own file: its user.ostreemeta is the hook's.
  who.unpack = !rg_linked_has(&t->st);
  // The reader hands over before a long copy, or before it would wait for another copy-up.
  if (t->st.st_size > RG_COPYUP_INLINE_BYTES) rg_step_down();
  copyup_lock_take();
  rg_node_t *n = t->node;
  struct stat before = t->st;
  int copy = -1, objfd = -1, r = 0;
  if (t->nameless) {
    copy = rg_copy_up_unlinked(t->fd, c->root_fd, &who);
    if (copy >= 0) {
      int keep = fcntl(copy, F_DUPFD_CLOEXEC, 0);
      if (keep < 0) { r = -errno; close(copy); copy = -1; }
      else rg_node_detach(n, keep);
    }
  } else {
    // Under the lock, the name once more: a request that pinned the same object meanwhile finds
    // the name on the copy another request made (the node says so), and has nothing to do.
    int cur = pin_name(t->loc.dirfd, t->loc.name);
    struct stat cs;
    if (cur < 0) r = cur;
    else if (fstat(cur, &cs) < 0) r = -errno;
    else if (!same_inode(&cs, &t->st)) {
      if (rg_node_is(n, &cs) && !is_object(t, &cs)) {
        close(t->fd);
        target_set_fd(t, cur);
        t->st = cs;
        cur = -1;
      } else {
        r = -ESTALE;
      }
    } else if (is_object(t, &cs)) {
      // A name whose kernel inode has passthrough handles on the object keeps that backing file
      // for every open until they close: the name must get a new node instead. The old one stays
      // with the object for those handles (nameless, through objfd).
      if (__atomic_load_n(&n->pt_handles, __ATOMIC_ACQUIRE) > 0) objfd = fcntl(t->fd, F_DUPFD_CLOEXEC, 0);
      copy = rg_copy_up_at(t->loc.dirfd, t->loc.name, t->fd, &who);
      if (copy < 0) r = copy;
    }
    if (cur >= 0) close(cur);
  }
  struct stat after;
  if (r == 0 && copy >= 0 && fstat(copy, &after) < 0) r = -errno;
  if (r < 0 || copy < 0) {
    pthread_mutex_unlock(&copyup_lock);
    if (copy >= 0) close(copy);
    if (objfd >= 0) close(objfd);
    return r;
  }
  close(t->fd);
  target_set_fd(t, copy);
  t->st = after;
  rg_lock();
  rg_node_t *parent = n->parent;
  char *name = objfd >= 0 && n->name ? strdup(n->name) : NULL;
  if (objfd < 0 && !t->nameless) {
    rg_node_set_inode(n, &after);
    n->copy_gen++;
    n->stale_handles = n->open;
  }
  rg_unlock();
  if (objfd >= 0) rg_node_detach(n, objfd);
  pthread_mutex_unlock(&copyup_lock);
  // What the kernel holds of the name goes stale: its entry, where the name got a new node (an
  // entry is dropped under its directory's lock, which a caller may hold while its own request
  // waits: the reader hands over first); else the node's attributes (inode number, link count).
  // Its pages stay: the copy's data is the object's.
  if (name) {
    rg_step_down();
    fuse_lowlevel_notify_inval_entry(c->se, rg_node_id(parent), name, strlen(name));
    free(name);
  } else if (!t->nameless) {
    rg_inval_node(c, n);
  }
  rg_inval_ino(c, before.st_dev, before.st_ino, n);
  if (parent && !t->nameless) rg_inval_node(c, parent);
  return objfd >= 0;
}

typedef struct {
  rg_target_t t;
  rg_prior_t pr;
  int copied;
  int replaced;    // the copy-up gave the name a new node: the caller's request is on the old one
  const char *op;
} rg_change_t;

// The start of every change to an existing node's data or attributes: pin it, decide on the
// inode pinned (refuse and record, or copy up first, or pass), and take the prior state for the
// journal. 0: make the change on ch->t (then change_end); else -errno, recorded and released.
static int change_begin (fuse_req_t req, rg_core_t *c, rg_change_t *ch, fuse_ino_t ino, const char *op, enum rg_op_class cls) {
  ch->op = op;
  ch->copied = ch->replaced = 0;
  ch->pr.target = ch->pr.xattrs = NULL;
  ch->pr.exists = 0;
  int r = target_open(c, &ch->t, ino, 1);
  if (r < 0) return r;
  int object = is_object(&ch->t, &ch->t.st);
  switch (rg_decide(cls, (enum rg_mode) c->mode, object)) {
    case RG_DENY:
      rg_event(c, op, ch->t.path, RG_REFUSED);
      target_close(c, &ch->t);
      return -EROFS;
    case RG_PASS:
      // A nameless inode has no path state.
      if (!ch->t.nameless) rg_prior_fd(ch->t.fd, &ch->t.st, &ch->pr);
      return 0;
    case RG_COPYUP:
      break;
  }
  if (!ch->t.nameless) rg_prior_fd(ch->t.fd, &ch->t.st, &ch->pr); // before the copy-up: what the hook saw
  r = copy_up(c, &ch->t, fuse_req_ctx(req)->pid);
  if (r < 0) {
    rg_event(c, op, ch->t.path, r);
    rg_prior_free(&ch->pr);
    target_close(c, &ch->t);
    return r;
  }
  ch->copied = 1;
  ch->replaced = r == 1;
  return 0;
}

// Records the outcome r (0 or -errno) of the change and releases it; returns r.
static int change_end (rg_core_t *c, rg_change_t *ch, int r) {
  rg_event_p(c, ch->op, ch->t.path, NULL, r < 0 ? r : (ch->copied ? RG_COPIED_UP : RG_DONE), &ch->pr, NULL);
  rg_prior_free(&ch->pr);
  target_close(c, &ch->t);
  return r;
}

// Namespace changes need no copy-up: readonly refuses them (recorded), other modes pass.
static int namespace_ok (rg_core_t *c, const char *op, const char *path, const char *path2) {
  if (rg_decide(RG_NAMESPACE, (enum rg_mode) c->mode, 0) != RG_DENY) return 1;
  rg_event_p(c, op, path, path2, RG_REFUSED, NULL, NULL);
  return 0;
}

// New entries belong to the process that made them, not to the server; in a set-group-ID
// directory the kernel already gave the entry the directory's group.
static int give_to_caller (fuse_req_t req, const rg_loc_t *l) {
  const struct fuse_ctx *x = fuse_req_ctx(req);
  if (x->uid == 0 && x->gid == 0) return 0;
  gid_t gid = x->gid;
  struct stat st;
  if (fstat(l->dirfd, &st) == 0 && (st.st_mode & S_ISGID)) gid = (gid_t) -1;
  return fchownat(l->dirfd, l->name, x->uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

// --- reads -------------------------------------------------------------------------------------

// READDIRPLUS always (not _AUTO): a listing brings every entry's attributes, which the kernel
// then keeps; a walk needs no LOOKUP or GETATTR at all.
static void op_init (void *userdata, struct fuse_conn_info *conn) {
  unsigned want = FUSE_CAP_READDIRPLUS | FUSE_CAP_ATOMIC_O_TRUNC |
                  FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_NO_OPENDIR_SUPPORT;
  conn->want |= want & conn->capable;
  // Writes reach the root at once (no writeback cache): the journal reads the root, and passthrough
  // excludes it. Not _AUTO, which libfuse asks for by default: with it the kernel lists all but the
  // first chunk of a directory without attributes, then asks for them one by one.
  conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_READDIRPLUS_AUTO);
  conn->time_gran = 1;
}

static void op_lookup (fuse_req_t req, fuse_ino_t parent, const char *name) {
  rg_core_t *c = CORE(req);
  rg_node_t *p = rg_node(parent);
  rg_loc_t l;
  // The guard's own temporaries do not exist for the mount (and are not remembered as absent).
  if (rg_reserved_name(name)) { fuse_reply_err(req, ENOENT); return; }
  int r = rg_loc_child(c, p, name, &l);
  if (r < 0) { fuse_reply_err(req, -r); return; }
  struct stat st;
  r = stat_child(p, l.dirfd, l.name, &st);
  rg_loc_done(&l);
  if (r == -ENOENT && is_alias_name(c, p, name)) { alias_stat(c, &st); r = 0; }
  if (r == 0) { reply_entry(req, p, name, &st); return; }
  if (r != -ENOENT) { fuse_reply_err(req, -r); return; }
  // A negative entry, kept as long as names are: a name this mount creates replaces it.
  struct fuse_entry_param neg;
  memset(&neg, 0, sizeof(neg));
  neg.entry_timeout = RG_TIMEOUT;
  fuse_reply_entry(req, &neg);
}

static void op_forget (fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  rg_node_forget(rg_node(ino), nlookup);
  fuse_reply_none(req);
}

static void op_forget_multi (fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  for (size_t i = 0; i < count; i++) rg_node_forget(rg_node(forgets[i].ino), forgets[i].nlookup);
  fuse_reply_none(req);
}

// A named node's attributes by one fstatat of its name in its directory's descriptor (a single
// component, no symlink followed): nothing is decided on them, so no pin is needed. 0 when the name
// still has the node's inode; anything else (gone, changed, a mount on it) takes the pinned way.
static int stat_named (rg_core_t *c, fuse_ino_t ino, struct stat *st) {
  rg_node_t *n = rg_node(ino);
  rg_lock();
  int plain = n->hashed && n->parent != NULL && !alias_node_locked(n);
  rg_unlock();
  if (!plain) return -EAGAIN;
  rg_loc_t loc;
  if (rg_loc_node(c, n, &loc) < 0) return -EAGAIN;
  int r = fstatat(loc.dirfd, loc.name, st, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT) < 0 ? -EAGAIN : 0;
  rg_loc_done(&loc);
  return r == 0 && rg_node_is(n, st) ? 0 : -EAGAIN;
}

// Always by name, never by the handle a fstat came with: after a copy-up an older handle is on
// the object, and the name's attributes are the copy's.
static void op_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  rg_core_t *c = CORE(req);
  struct stat named;
  if (stat_named(c, ino, &named) == 0) { fuse_reply_attr(req, &named, RG_TIMEOUT); return; }
  rg_target_t t;
  int r = target_open(c, &t, ino, 0);
  if (r == -EPERM && is_alias_node(rg_node(ino))) { struct stat st; alias_stat(c, &st); fuse_reply_attr(req, &st, RG_TIMEOUT); return; }
  if (r < 0) { fuse_reply_err(req, -r); return; }
  struct stat st = t.st;
  target_close(c, &t);
  fuse_reply_attr(req, &st, RG_TIMEOUT);
}

static void op_readlink (fuse_req_t req, fuse_ino_t ino) {
  rg_core_t *c = CORE(req);
  rg_target_t t;
  int r = target_open(c, &t, ino, 0);
  if (r == -EPERM && is_alias_node(rg_node(ino))) { fuse_reply_readlink(req, RG_ALIAS_TARGET); return; }
  if (r < 0) { fuse_reply_err(req, -r); return; }
  char buf[4097];
  ssize_t n = readlinkat(t.fd, "", buf, sizeof(buf) - 1);
  int e = errno;
  target_close(c, &t);
  if (n < 0) { fuse_reply_err(req, e); return; }
  buf[n] = 0;
  fuse_reply_readlink(req, buf);
}

static void op_statfs (fuse_req_t req, fuse_ino_t ino) {
  struct statvfs sv;
  if (fstatvfs(CORE(req)->root_fd, &sv) < 0) fuse_reply_err(req, errno);
  else fuse_reply_statfs(req, &sv);
}

// An xattr value or list of `ino`, in a buffer of the caller's size (0: only the size needed):
// `call` is the system call on `at` (the pin's /proc link) into buf, setting n.
#define XATTR_READ(req, ino, size, call) do { \
  rg_core_t *c = CORE(req); \
  rg_target_t t; \
  int r = target_open(c, &t, (ino), 0); \
  if (r < 0) { fuse_reply_err((req), -r); return; } \
  char *buf = (size) ? malloc(size) : NULL; \
  ssize_t n = -1; \
  const char *at = t.fdproc; \
  r = (n = (call)) < 0 ? -errno : 0; \
  target_close(c, &t); \
  if (r < 0) fuse_reply_err((req), -r); \
  else if ((size) == 0) fuse_reply_xattr((req), (size_t) n); \
  else fuse_reply_buf((req), buf, (size_t) n); \
  free(buf); \
} while (0)

static void op_getxattr (fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  if (is_alias_node(rg_node(ino))) { fuse_reply_err(req, ENODATA); return; }
  XATTR_READ(req, ino, size, getxattr(at, name, buf, size));
}

static void op_listxattr (fuse_req_t req, fuse_ino_t ino, size_t size) {
  if (is_alias_node(rg_node(ino))) { if (size == 0) fuse_reply_xattr(req, 0); else fuse_reply_buf(req, NULL, 0); return; }
  XATTR_READ(req, ino, size, listxattr(at, buf, size));
}

// --- directories -------------------------------------------------------------------------------

// No OPENDIR and RELEASEDIR: the core answers the first OPENDIR with ENOSYS (and asks for
// FUSE_CAP_NO_OPENDIR_SUPPORT), so from then on the kernel opens directories itself, two
// round trips less per directory, and keeps their listings (FOPEN_CACHE_DIR, its default then)
// until a change through the mount or of the directory's mtime. Each READDIR opens the directory
// and seeks to the offset asked for: the offsets are the backing filesystem's own d_off cookies,
// which stay valid across opens.
static DIR *open_dir (rg_core_t *c, fuse_ino_t ino, int *err) {
  rg_target_t t;
  int r = target_open(c, &t, ino, 0);
  if (r < 0) { *err = -r; return NULL; }
  int fd = t.nameless ? -1 : openat(t.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  *err = t.nameless ? ENOENT : errno;
  target_close(c, &t);
  if (fd < 0) return NULL;
  DIR *d = fdopendir(fd);
  if (d == NULL) { *err = errno; close(fd); }
  return d;
}

static void op_opendir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  fuse_reply_err(req, ENOSYS);
}

static int is_dot (const char *name) {
  return name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0));
}

static void readdir_common (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi, int plus) {
  rg_node_t *dir = rg_node(ino);
  int err = 0;
  DIR *d = open_dir(CORE(req), ino, &err);
  if (d == NULL) { fuse_reply_err(req, err); return; }
  char *buf = malloc(size);
  if (buf == NULL) { closedir(d); fuse_reply_err(req, ENOMEM); return; }
  // The made-up /etc link of an OS tree comes last, at an offset of its own: after it, nothing.
  int alias = dir->parent == NULL && off != RG_ALIAS_OFF && is_alias_name(CORE(req), dir, "etc");
  if (off == RG_ALIAS_OFF) { closedir(d); fuse_reply_buf(req, buf, 0); free(buf); return; }
  if (off != 0) seekdir(d, off);
  size_t used = 0;
  struct dirent *de;
  for (;;) {
    errno = 0;
    if ((de = readdir(d)) == NULL) {
      err = errno;
      if (err == 0 && alias) {
        struct stat st;
        alias_stat(CORE(req), &st);
        size_t n;
        if (plus) {
          rg_node_t *node = rg_node_ref(dir, "etc", &st);
          if (node == NULL) break;
          struct fuse_entry_param e;
          entry_of(&e, node, &st);
          n = fuse_add_direntry_plus(req, buf + used, size - used, "etc", &e, RG_ALIAS_OFF);
          if (n > size - used) { rg_node_forget(node, 1); break; }
        } else {
          n = fuse_add_direntry(req, buf + used, size - used, "etc", &st, RG_ALIAS_OFF);
          if (n > size - used) break;
        }
        used += n;
      }
      break;
    }
    if (rg_reserved_name(de->d_name)) continue;
    size_t n;
    if (plus && !is_dot(de->d_name)) {
      struct stat st;
      if (stat_child(dir, dirfd(d), de->d_name, &st) < 0) continue; // gone meanwhile
      rg_node_t *node = rg_node_ref(dir, de->d_name, &st);
      if (node == NULL) { err = ENOMEM; break; }
      struct fuse_entry_param e;
      entry_of(&e, node, &st);
      n = fuse_add_direntry_plus(req, buf + used, size - used, de->d_name, &e, de->d_off);
      if (n > size - used) { rg_node_forget(node, 1); break; }
    } else {
      struct stat st;
      memset(&st, 0, sizeof(st));
      st.st_ino = de->d_ino;
      st.st_mode = (mode_t) de->d_type << 12;
      if (plus) {
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.attr = st;
        n = fuse_add_direntry_plus(req, buf + used, size - used, de->d_name, &e, de->d_off);
      } else {
        n = fuse_add_direntry(req, buf + used, size - used, de->d_name, &st, de->d_off);
      }
      if (n > size - used) break;
    }
    used += n;
  }
  closedir(d);
  if (err && used == 0) fuse_reply_err(req, err);
  else fuse_reply_buf(req, buf, used);
  free(buf);
}

static void op_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  readdir_common(req, ino, size, off, fi, 0);
}

static void op_readdirplus (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  readdir_common(req, ino, size, off, fi, 1);
}

static void op_fsyncdir (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  int err = 0;
  DIR *d = open_dir(CORE(req), ino, &err);
  if (d == NULL) { fuse_reply_err(req, err); return; }
  int fd = dirfd(d);
  err = (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0;
  closedir(d);
  fuse_reply_err(req, err);
}

static void rg_release_handle (rg_core_t *c, rg_handle_t *h);

static int writes (int flags) {
  return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND));
}

// The flags the backing file is opened with: no O_DIRECT (libfuse's buffers need not be aligned
// as O_DIRECT wants), never creating, never making a controlling terminal. (An existing file is
// opened through its pin, which is on the inode itself: no O_NOFOLLOW, which would refuse the
// /proc link.)
static int backing_flags (int flags) {
  return (flags & ~(O_DIRECT | O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW)) | O_CLOEXEC;
}


// The set-id bits that go where a caller without CAP_FSETID writes or truncates, and on every
// chown, on Linux (should_remove_suid): set-user-ID always, set-group-ID where the group may
// execute. The server clears them itself where FUSE_HANDLE_KILLPRIV_V2 was negotiated (its own
// writes, as root, keep them), and tells the kernel, whose cached mode is now old. fd: a descriptor
// on the inode; proc: its /proc link where fd is O_PATH (NULL: fchmod on fd); skip: a node whose
// reply carries the new attributes. 0 or -errno.
static int kill_suidgid (rg_core_t *c, int fd, const char *proc, rg_node_t *skip) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (!S_ISREG(st.st_mode)) return 0;
  mode_t mode = st.st_mode & 07777, kept = mode & ~(mode_t) S_ISUID;
  if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) kept &= ~(mode_t) S_ISGID;
  if (kept == mode) return 0;
  if ((proc ? fchmodat(AT_FDCWD, proc, kept, 0) : fchmod(fd, kept)) < 0) return -errno;
  rg_inval_ino(c, st.st_dev, st.st_ino, skip);
  return 0;
}

// --- open files --------------------------------------------------------------------------------

// Serves an open descriptor on node n: the handle, the page-cache rule, passthrough where
// negotiated. Replies to the open, or with `parent`, to the create with n's entry (attributes st).
static void serve_open (fuse_req_t req, rg_core_t *c, rg_node_t *n, int fd, struct fuse_file_info *fi, rg_node_t *parent, const struct stat *st) {
  rg_handle_t *h = calloc(1, sizeof(*h));
  if (h == NULL) { close(fd); fuse_reply_err(req, ENOMEM); return; }
  h->fd = fd;
  int direct = (fi->flags & O_DIRECT) != 0;
  rg_lock();
  h->copy_gen = n->copy_gen;
  int stale = n->stale_handles;
  rg_unlock();
  // O_DIRECT through the mount: the caller's I/O goes straight to the server (no page cache).
  fi->direct_io = direct;
  // Pages cached for this name are the file's, unless a handle from before a copy-up may still
  // fill them with the object's.
  fi->keep_cache = !direct && stale == 0;
  // Passthrough where negotiated: the kernel reads and writes the backing file itself (and
  // refuses a page cache of its own for the file: no keep_cache).
  if (c->passthrough && !direct) h->backing_id = rg_backing_get(c, n, fd);
  if (h->backing_id < 0) {
    // A file unlinked while open, its object read through passthrough, now copied up: the kernel
    // cannot have the copy and the object as backing files of one inode at once, nor one open
    // served without passthrough while another uses it. (A named file gets a new node instead.)
    int e = -h->backing_id;
    close(fd);
    free(h);
    fuse_reply_err(req, e);
    if (parent) rg_node_forget(n, 1);
    return;
  }
  if (h->backing_id) fi->keep_cache = 0;
  rg_lock();
  n->refs++;
  n->open++;
  rg_unlock();
  h->node = n;
  fi->fh = (uintptr_t) h;
  rg_reply_backing(h->backing_id);
  int r;
  if (parent) {
    struct fuse_entry_param e;
    entry_of(&e, n, st);
    r = fuse_reply_create(req, &e, fi);
  } else {
    r = fuse_reply_open(req, fi);
  }
  rg_reply_backing(0);
  if (r != 0) {
    // The caller is gone (interrupted): nothing will release this handle.
    rg_release_handle(c, h);
    if (parent) rg_node_forget(n, 1);
  }
}

static void rg_release_handle (rg_core_t *c, rg_handle_t *h) {
  rg_node_t *n = h->node;
  rg_lock();
  n->open--;
  if (h->copy_gen != n->copy_gen && n->stale_handles > 0) n->stale_handles--;
  rg_unlock();
  if (h->backing_id) rg_backing_put(c, n, h->backing_id);
  close(h->fd);
  rg_node_release(n);
  free(h);
}

// Opens the existing node `ino` for `flags`: a write-open is a change like any other (the policy
// first), then the backing open. The descriptor, or -errno.
static int open_existing (fuse_req_t req, rg_core_t *c, fuse_ino_t ino, int flags) {
  rg_change_t ch;
  int w = writes(flags);
  int r = w ? change_begin(req, c, &ch, ino, "open", RG_WRITE_OPEN) : target_open(c, &ch.t, ino, 0);
  if (r < 0) return r;
  // The name has a new node now: ESTALE makes the kernel look the name up again and open that.
  if (w && ch.replaced) return change_end(c, &ch, 0), -ESTALE;
  // The inode pinned and decided on, opened again through its descriptor: a FIFO or device
  // (never what the kernel asks to open here) is not opened at all.
  int fd = !S_ISREG(ch.t.st.st_mode) ? (errno = S_ISDIR(ch.t.st.st_mode) ? EISDIR : S_ISLNK(ch.t.st.st_mode) ? ELOOP : ENXIO, -1)
         : open(ch.t.fdproc, backing_flags(flags));
  r = fd < 0 ? -errno : 0;
  // An O_TRUNC open by a caller without CAP_FSETID (the kernel says so): set-id bits go.
  if (r == 0 && w && rg_request_kills_suidgid()) r = kill_suidgid(c, fd, NULL, NULL);
  if (r < 0 && fd >= 0) { close(fd); fd = -1; }
  if (w) change_end(c, &ch, r);
  else target_close(c, &ch.t);
  return r < 0 ? r : fd;
}

static void op_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  rg_core_t *c = CORE(req);
  int fd = open_existing(req, c, ino, fi->flags);
  if (fd < 0) fuse_reply_err(req, -fd);
  else serve_open(req, c, rg_node(ino), fd, fi, NULL, NULL);
}

static void op_release (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  rg_release_handle(CORE(req), HANDLE(fi));
  fuse_reply_err(req, 0);
}

static void op_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
  buf.buf[0].fd = HANDLE(fi)->fd;
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

// Only on handles the guard granted for writing at open.
static void op_write (fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off, struct fuse_file_info *fi) {
  int fd = HANDLE(fi)->fd;
  ssize_t n = pwrite(fd, data, size, off);
  if (n < 0) { fuse_reply_err(req, errno); return; }
  // Written by a caller without CAP_FSETID (the kernel says so): set-id bits go, as on Linux.
  if (rg_request_kills_suidgid()) kill_suidgid(CORE(req), fd, NULL, NULL);
  fuse_reply_write(req, (size_t) n);
}

static void op_fsync (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  int fd = HANDLE(fi)->fd;
  fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0);
}

static void op_fallocate (fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi) {
  fuse_reply_err(req, fallocate(HANDLE(fi)->fd, mode, off, len) < 0 ? errno : 0);
}

static void op_lseek (fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi) {
  off_t r = lseek(HANDLE(fi)->fd, off, whence);
  if (r < 0) fuse_reply_err(req, errno);
  else fuse_reply_lseek(req, r);
}

static void op_copy_file_range (fuse_req_t req, fuse_ino_t in, off_t off_in, struct fuse_file_info *fi_in,
                                fuse_ino_t out, off_t off_out, struct fuse_file_info *fi_out, size_t len, int flags) {
  ssize_t n = copy_file_range(HANDLE(fi_in)->fd, &off_in, HANDLE(fi_out)->fd, &off_out, len, (unsigned) flags);
  if (n < 0) fuse_reply_err(req, errno);
  else fuse_reply_write(req, (size_t) n);
}

// --- changes to existing nodes -------------------------------------------------------------------

#define RG_SET_ATTRS (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE | \
  FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)
// FATTR_KILL_SUIDGID (libfuse 3.14 passes it as FUSE_SET_ATTR_KILL_SUID, the same bit).
#define RG_SET_KILL_SUIDGID FUSE_SET_ATTR_KILL_SUID

static void op_setattr (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  rg_core_t *c = CORE(req);
  // Where the server kills set-id bits (FUSE_HANDLE_KILLPRIV_V2), the kernel asks with
  // FATTR_KILL_SUIDGID on a chown, or on a truncate by a caller without CAP_FSETID; and with a
  // SETATTR that sets nothing where its own clearing was stripped: a chown(-1, -1), and a write
  // through passthrough, or a fallocate or copy_file_range, by a caller without CAP_FSETID.
  int kill = c->killpriv && ((to_set & RG_SET_KILL_SUIDGID) || (to_set & RG_SET_ATTRS) == 0);
  const char *op = (to_set & FUSE_SET_ATTR_SIZE) ? "truncate" : (to_set & FUSE_SET_ATTR_MODE) ? "chmod"
                 : (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) ? "chown"
                 : (to_set & RG_SET_ATTRS) == 0 && kill ? "chmod" : "utimens";
  rg_change_t ch;
  int r = change_begin(req, c, &ch, ino, op, RG_ATTR);
  if (r < 0) { fuse_reply_err(req, -r); return; }
  // Every change through the pin (its /proc link stands for the inode itself, a symlink's too).
  rg_target_t *t = &ch.t;
  if (r == 0 && (to_set & FUSE_SET_ATTR_MODE)) {
    r = fchmodat(AT_FDCWD, t->fdproc, attr->st_mode, 0) < 0 ? -errno : 0;
  }
  if (r == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
    uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t) -1;
    gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t) -1;
    r = fchownat(t->fd, "", uid, gid, AT_EMPTY_PATH) < 0 ? -errno : 0;
  }
  if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
    r = !S_ISREG(t->st.st_mode) ? -EINVAL : truncate(t->fdproc, attr->st_size) < 0 ? -errno : 0;
  }
  if (r == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW))) {
    struct timespec tv[2];
    tv[0] = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? (struct timespec) { 0, UTIME_NOW }
          : (to_set & FUSE_SET_ATTR_ATIME) ? attr->st_atim : (struct timespec) { 0, UTIME_OMIT };
    tv[1] = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? (struct timespec) { 0, UTIME_NOW }
          : (to_set & FUSE_SET_ATTR_MTIME) ? attr->st_mtim : (struct timespec) { 0, UTIME_OMIT };
    r = utimensat(t->fd, "", tv, AT_EMPTY_PATH) < 0 ? -errno : 0;
  }
  if (r == 0 && kill) r = kill_suidgid(c, t->fd, t->fdproc, ch.t.node);
  struct stat st;
  int sr = r == 0 ? (fstat(t->fd, &st) < 0 ? -errno : 0) : r;
  change_end(c, &ch, r);
  if (sr < 0) fuse_reply_err(req, -sr);
  else fuse_reply_attr(req, &st, RG_TIMEOUT);
}

static void op_setxattr (fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  rg_core_t *c = CORE(req);
  rg_change_t ch;
  int r = change_begin(req, c, &ch, ino, "setxattr", RG_ATTR);
  if (r == 0) r = change_end(c, &ch, setxattr(ch.t.fdproc, name, value, size, flags) < 0 ? -errno : 0);
  fuse_reply_err(req, -r);
}

static void op_removexattr (fuse_req_t req, fuse_ino_t ino, const char *name) {
  rg_core_t *c = CORE(req);
  rg_change_t ch;
  int r = change_begin(req, c, &ch, ino, "removexattr", RG_ATTR);
  if (r == 0) r = change_end(c, &ch, removexattr(ch.t.fdproc, name) < 0 ? -errno : 0);
  fuse_reply_err(req, -r);
}

// --- changes to names --------------------------------------------------------------------------

// The name `name` in `parent` for a change to names: where it is (l) and its path for the journal
// (*path, malloc'd). 0 or -errno.
static int child (rg_core_t *c, rg_node_t *parent, const char *name, rg_loc_t *l, char **path) {
  l->own = 0;
  // The guard's own temporaries are no name a hook may make, remove, or rename to or from; nor
  // is the made-up /etc link of an OS tree.
  if (rg_reserved_name(name) || is_alias_name(c, parent, name)) return -EPERM;
  int r = rg_loc_child(c, parent, name, l);
  if (r < 0) return r;
  *path = rg_child_path(parent, name);
  if (*path == NULL) { rg_loc_done(l); return -ENOMEM; }
  return 0;
}

// The start of a change to one name: where it is, its path for the journal (*path, malloc'd),
// the policy (refused in readonly mode, and recorded), its prior state. 0, or -errno with
// nothing left to release.
static int name_change_begin (rg_core_t *c, rg_node_t *parent, const char *name, const char *op, rg_loc_t *l, char **path, rg_prior_t *pr) {
  *path = NULL;
  int r = child(c, parent, name, l, path);
  if (r == 0 && !namespace_ok(c, op, *path, NULL)) { rg_loc_done(l); r = -EROFS; }
  if (r < 0) { free(*path); return r; }
  rg_prior(l, pr);
  return 0;
}

// A new entry made by `make` (0 or -errno; `l` is where) at parent/name: policy, prior state,
// ownership, the journal, the entry reply.
#define NEW_ENTRY(req, op, parent, name, make, undo_flags) do { \
  rg_core_t *c = CORE(req); \
  rg_node_t *p_ = rg_node(parent); \
  rg_loc_t l; \
  char *path; \
  rg_prior_t pr; \
  int r = name_change_begin(c, p_, (name), (op), &l, &path, &pr); \
  if (r < 0) { fuse_reply_err((req), -r); return; } \
  r = (make); \
  if (r == 0) { r = give_to_caller((req), &l); if (r < 0) unlinkat(l.dirfd, l.name, (undo_flags)); } \
  struct stat st; \
  if (r == 0 && fstatat(l.dirfd, l.name, &st, AT_SYMLINK_NOFOLLOW) < 0) r = -errno; \
  rg_loc_done(&l); \
  rg_event_p(c, (op), path, NULL, r < 0 ? r : RG_DONE, &pr, NULL); \
  rg_prior_free(&pr); \
  free(path); \
  if (r < 0) fuse_reply_err((req), -r); else reply_entry((req), p_, (name), &st); \
} while (0)

static void op_mkdir (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  NEW_ENTRY(req, "mkdir", parent, name, mkdirat(l.dirfd, l.name, mode) < 0 ? -errno : 0, AT_REMOVEDIR);
}

static void op_symlink (fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  NEW_ENTRY(req, "symlink", parent, name, symlinkat(link, l.dirfd, l.name) < 0 ? -errno : 0, 0);
}

// Refused in every mode (rg_decide): a device node or FIFO in the new root is not a hook's to make.
static void op_mknod (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  rg_core_t *c = CORE(req);
  char *path = rg_child_path(rg_node(parent), name);
  if (path) rg_event(c, "mknod", path, RG_REFUSED);
  free(path);
  fuse_reply_err(req, EROFS);
}

static void op_create (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  rg_core_t *c = CORE(req);
  rg_node_t *p = rg_node(parent);
  rg_loc_t l;
  char *path;
  rg_prior_t pr;
  int r = name_change_begin(c, p, name, "create", &l, &path, &pr);
  if (r < 0) { fuse_reply_err(req, -r); return; }
  // Always exclusive here: where the name exists after all (the kernel's view was older), this
  // is an open of an existing file, and the policy decides it as one.
  int fd = openat(l.dirfd, l.name, backing_flags(fi->flags) | O_CREAT | O_EXCL, mode);
  r = fd < 0 ? -errno : 0;
  if (r == -EEXIST && !(fi->flags & O_EXCL)) {
    rg_prior_free(&pr);
    free(path);
    struct stat st;
    r = fstatat(l.dirfd, l.name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
    rg_loc_done(&l);
    rg_node_t *n = r == 0 ? rg_node_ref(p, name, &st) : NULL;
    if (n == NULL) { fuse_reply_err(req, r < 0 ? -r : ENOMEM); return; }
    fd = open_existing(req, c, rg_node_id(n), fi->flags);
    if (fd < 0) { rg_node_forget(n, 1); fuse_reply_err(req, -fd); return; }
    serve_open(req, c, n, fd, fi, p, &st);
    return;
  }
  if (r == 0) {
    r = give_to_caller(req, &l);
    if (r < 0) { close(fd); unlinkat(l.dirfd, l.name, 0); }
  }
  rg_loc_done(&l);
  struct stat st;
  if (r == 0 && fstat(fd, &st) < 0) { r = -errno; close(fd); }
  rg_event_p(c, "create", path, NULL, r < 0 ? r : RG_DONE, &pr, NULL);
  rg_prior_free(&pr);
  free(path);
  if (r < 0) { fuse_reply_err(req, -r); return; }
  rg_node_t *n = rg_node_ref(p, name, &st);
  if (n == NULL) { close(fd); fuse_reply_err(req, ENOMEM); return; }
  serve_open(req, c, n, fd, fi, p, &st);
}

// Before a name is removed: its node, if the kernel holds one, with a descriptor on its inode (the
// kernel may still reach it: an open file, a /proc/self/fd link).
static rg_node_t *hold_named (rg_node_t *parent, const rg_loc_t *l, int *fd) {
  rg_lock();
  rg_node_t *n = rg_node_find(parent, l->name);
  if (n) n->refs++;
  rg_unlock();
  *fd = n ? openat(l->dirfd, l->name, O_PATH | O_NOFOLLOW | O_CLOEXEC) : -1;
  return n;
}

// After a name's removal (ok) or its failure: the node becomes nameless (reached through fd).
static void removed (rg_core_t *c, rg_node_t *n, int fd, int ok, const rg_prior_t *pr) {
  if (n == NULL) return;
  if (ok) {
    rg_node_detach(n, fd);
    // One link less: the other names of the inode the kernel knows show it now.
    if (pr->exists && !S_ISDIR(pr->st.st_mode) && pr->st.st_nlink > 1) rg_inval_ino(c, pr->st.st_dev, pr->st.st_ino, n);
  } else if (fd >= 0) {
    close(fd);
  }
  rg_node_release(n);
}

static void remove_name (fuse_req_t req, fuse_ino_t parent, const char *name, const char *op, int flags) {
  rg_core_t *c = CORE(req);
  rg_node_t *p = rg_node(parent);
  rg_loc_t l;
  char *path;
  rg_prior_t pr;
  int r = name_change_begin(c, p, name, op, &l, &path, &pr);
  if (r < 0) { fuse_reply_err(req, -r); return; }
  int fd;
  rg_node_t *n = hold_named(p, &l, &fd);
  r = unlinkat(l.dirfd, l.name, flags) < 0 ? -errno : 0;
  rg_loc_done(&l);
  removed(c, n, fd, r == 0, &pr);
  rg_event_p(c, op, path, NULL, r < 0 ? r : RG_DONE, &pr, NULL);
  rg_prior_free(&pr);
  free(path);
  fuse_reply_err(req, -r);
}

static void op_unlink (fuse_req_t req, fuse_ino_t parent, const char *name) {
  remove_name(req, parent, name, "unlink", 0);
}

static void op_rmdir (fuse_req_t req, fuse_ino_t parent, const char *name) {
  remove_name(req, parent, name, "rmdir", AT_REMOVEDIR);
}

static void op_link (fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  rg_core_t *c = CORE(req);
  rg_target_t t;
  int r = target_open(c, &t, ino, 1);
  if (r < 0) { fuse_reply_err(req, -r); return; }
  rg_node_t *np = rg_node(newparent);
  rg_loc_t l;
  char *to = NULL;
  r = child(c, np, newname, &l, &to);
  if (r < 0) { free(to); target_close(c, &t); fuse_reply_err(req, -r); return; }
  if (!namespace_ok(c, "link", t.path, to)) { rg_loc_done(&l); free(to); target_close(c, &t); fuse_reply_err(req, EROFS); return; }
  rg_prior_t pr;
  rg_prior(&l, &pr);
  // The pinned inode itself gets the new name; from now on it is an object a hook made.
  r = linkat(AT_FDCWD, t.fdproc, l.dirfd, l.name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
  if (r == 0) rg_linked_add(&t.st);
  struct stat st;
  if (r == 0 && fstatat(l.dirfd, l.name, &st, AT_SYMLINK_NOFOLLOW) < 0) r = -errno;
  rg_loc_done(&l);
  rg_event_p(c, "link", t.path, to, r < 0 ? r : RG_DONE, NULL, &pr);
  rg_prior_free(&pr);
  free(to);
  target_close(c, &t);
  if (r < 0) { fuse_reply_err(req, -r); return; }
  // One link more: every other name of the inode the kernel knows shows it, before the caller
  // can look (the reply lets it go on).
  rg_inval_ino(c, st.st_dev, st.st_ino, NULL);
  reply_entry(req, np, newname, &st);
}

static void op_rename (fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags) {
  rg_core_t *c = CORE(req);
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) { fuse_reply_err(req, EINVAL); return; }
  rg_node_t *p = rg_node(parent), *np = rg_node(newparent);
  rg_loc_t l1, l2;
  char *from = NULL, *to = NULL;
  int r = child(c, p, name, &l1, &from);
  if (r == 0) { r = child(c, np, newname, &l2, &to); if (r < 0) rg_loc_done(&l1); }
  if (r < 0) { free(from); free(to); fuse_reply_err(req, -r); return; }
  if (!namespace_ok(c, "rename", from, to)) { rg_loc_done(&l1); rg_loc_done(&l2); free(from); free(to); fuse_reply_err(req, EROFS); return; }
  rg_prior_t pr[2];
  rg_prior(&l1, &pr[0]);
  rg_prior(&l2, &pr[1]);
  rg_lock();
  rg_node_t *src = rg_node_find(p, name);
  if (src) src->refs++;
  rg_node_t *other = (flags & RENAME_EXCHANGE) ? rg_node_find(np, newname) : NULL;
  if (other) other->refs++;
  rg_unlock();
  int fd = -1;
  rg_node_t *dst = (flags & RENAME_EXCHANGE) ? NULL : hold_named(np, &l2, &fd);
  r = renameat2(l1.dirfd, l1.name, l2.dirfd, l2.name, flags) < 0 ? -errno : 0;
  rg_loc_done(&l1);
  rg_loc_done(&l2);
  removed(c, dst, fd, r == 0 && dst != src, &pr[1]);
  if (r == 0 && other) rg_node_detach(other, -1);
  if (r == 0 && src) rg_node_move(src, np, newname);
  if (r == 0 && other) rg_node_move(other, p, name);
  if (other) rg_node_release(other);
  if (src) rg_node_release(src);
  rg_event_p(c, "rename", from, to, r < 0 ? r : RG_DONE, &pr[0], &pr[1]);
  rg_prior_free(&pr[0]);
  rg_prior_free(&pr[1]);
  free(from);
  free(to);
  fuse_reply_err(req, -r);
}

// Every handler, in one place. Not served, on purpose: releasedir (see open_dir), flush (nothing to do on a local backing
// filesystem; once it answers ENOSYS the kernel stops sending one per close), access (the kernel
// checks permissions: default_permissions), locks (the kernel keeps them locally).
const struct fuse_lowlevel_ops rg_ops = {
  .init = op_init,
  .lookup = op_lookup,
  .forget = op_forget,
  .forget_multi = op_forget_multi,
  .getattr = op_getattr,
  .readlink = op_readlink,
  .statfs = op_statfs,
  .getxattr = op_getxattr,
  .listxattr = op_listxattr,
  .opendir = op_opendir,           // ENOSYS: see open_dir
  .readdir = op_readdir,
  .readdirplus = op_readdirplus,
  .fsyncdir = op_fsyncdir,
  .open = op_open,              // a write-open: the policy (change_begin)
  .release = op_release,
  .read = op_read,              // not asked for passthrough opens
  .write = op_write,            // only on handles granted for writing
  .fsync = op_fsync,
  .fallocate = op_fallocate,
  .lseek = op_lseek,
  .copy_file_range = op_copy_file_range,
  .setattr = op_setattr,        // the policy: truncate, chmod, chown, utimens
  .setxattr = op_setxattr,      // the policy
  .removexattr = op_removexattr,// the policy
  .mknod = op_mknod,            // refused in every mode
  .mkdir = op_mkdir,            // namespace: refused in readonly mode (and so for the rest)
  .symlink = op_symlink,
  .create = op_create,
  .link = op_link,
  .unlink = op_unlink,
  .rmdir = op_rmdir,
  .rename = op_rename,          // RENAME_NOREPLACE and RENAME_EXCHANGE
};
