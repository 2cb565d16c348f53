// Copy-up (docs/spec.md, "Copy-up"): see copyup.h. Shared by the core (native/core/ops.c) and
// the TypeScript reference server (native/sysops.c), so that there is one implementation.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <unistd.h>
#include "copyup.h"

#define PATH_BUF 4096
#define XATTR_BUF 65536

int rg_reserved_name (const char *name) {
  return strncmp(name, RG_RESERVED_PREFIX, sizeof(RG_RESERVED_PREFIX) - 1) == 0;
}

// "/proc/self/fd/N": with calls that follow it, the inode of descriptor N itself (a symlink's
// too), reached without any name.
static const char *fd_path (int fd, char buf[32]) {
  snprintf(buf, 32, "/proc/self/fd/%d", fd);
  return buf;
}

// --- resolving beneath a root ------------------------------------------------------------------

// Before openat2 (Linux 5.6): one component at a time, none followed, no "..".
static int open_beneath_walk (int rootfd, const char *path, int flags) {
  char buf[PATH_BUF];
  if (snprintf(buf, sizeof(buf), "%s", path) >= (int) sizeof(buf)) return -ENAMETOOLONG;
  int dfd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
  if (dfd < 0) return -errno;
  char *save = NULL, *comp = strtok_r(buf, "/", &save);
  if (comp == NULL) { int fd = openat(dfd, ".", flags | O_CLOEXEC); int e = errno; close(dfd); return fd < 0 ? -e : fd; }
  while (comp) {
    char *next = strtok_r(NULL, "/", &save);
    if (strcmp(comp, "..") == 0) { close(dfd); return -EXDEV; }
    int fd = next ? openat(dfd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : openat(dfd, comp, flags | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(dfd);
    if (fd < 0) return -e;
    dfd = fd;
    comp = next;
  }
  return dfd;
}

int rg_open_beneath (int rootfd, const char *path, int flags) {
  struct open_how how = {
    .flags = (unsigned) (flags | O_CLOEXEC),
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
  };
  int fd = (int) syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
  if (fd >= 0) return fd;
  if (errno == ENOSYS) return open_beneath_walk(rootfd, path, flags);
  return -errno;
}

// --- the caller's rights -----------------------------------------------------------------------

void rg_rights_of (pid_t pid, rg_rights_t *r) {
  memset(r, 0, sizeof(*r));
  r->unpack = 1;
  r->pid = pid;
}

static void read_rights (rg_rights_t *r) {
  if (r->known) return;
  r->known = 1;
  pid_t pid = r->pid;
  if (pid <= 0) return;
  char p[64];
  struct stat mine, theirs;
  snprintf(p, sizeof(p), "/proc/%d/ns/user", (int) pid);
  // Capabilities count only in the server's own user namespace: a sandbox's user namespace
  // gives its processes every capability there, and none here.
  if (stat("/proc/self/ns/user", &mine) < 0 || stat(p, &theirs) < 0 || mine.st_ino != theirs.st_ino || mine.st_dev != theirs.st_dev) return;
  snprintf(p, sizeof(p), "/proc/%d/status", (int) pid);
  FILE *f = fopen(p, "re");
  if (f == NULL) return;
  char line[256];
  unsigned long long eff = 0;
  while (fgets(line, sizeof(line), f)) {
    if (sscanf(line, "CapEff: %llx", &eff) == 1) break;
  }
  fclose(f);
  r->trusted = r->security = (eff >> 21) & 1;  // CAP_SYS_ADMIN
  r->setfcap = (eff >> 31) & 1;                // CAP_SETFCAP
}

static int may_set (const char *name, rg_rights_t *who) {
  if (strncmp(name, "user.", 5) == 0) return 1;
  read_rights(who);
  if (strcmp(name, "security.capability") == 0) return who->setfcap;
  if (strncmp(name, "security.", 9) == 0) return who->security;
  return who->trusted; // trusted.*, system.* (ACLs) and anything else
}

// --- data and xattrs ---------------------------------------------------------------------------

// Copies the rest of `in` to `out` where neither reflink nor copy_file_range can.
static int copy_rw (int in, int out) {
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(in, buf, sizeof(buf));
    if (n == 0) return 0;
    if (n < 0) { if (errno == EINTR) continue; return -errno; }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, (size_t) (n - off));
      if (w < 0) { if (errno == EINTR) continue; return -errno; }
      off += w;
    }
  }
}

// The filesystem (st_dev + 1) last found to have no reflink: its copies skip the attempt.
static uint64_t no_reflink_dev;

// `st`: the source when pinned. The copy stops at its size (an object never grows; a file growing
// meanwhile is copied as it was pinned) without a last call that finds the end.
static int copy_data (int in, int out, const struct stat *st) {
  uint64_t dev = (uint64_t) st->st_dev + 1;
  if (__atomic_load_n(&no_reflink_dev, __ATOMIC_RELAXED) != dev) {
    if (ioctl(out, FICLONE, in) == 0) return 0;
    if (errno == EOPNOTSUPP || errno == EINVAL || errno == EXDEV || errno == ENOTTY) __atomic_store_n(&no_reflink_dev, dev, __ATOMIC_RELAXED);
  }
  off_t done = 0;
  while (done < st->st_size) {
    ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t) (st->st_size - done), 0);
    if (n > 0) { done += n; continue; }
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    return (done == 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) ? copy_rw(in, out) : -errno;
  }
  return 0;
}

static int copy_disk_xattrs (const char *src, const char *dst) {
  char names[XATTR_BUF];
  ssize_t len = listxattr(src, names, sizeof(names));
  if (len < 0) return (errno == ENOTSUP) ? 0 : -errno;
  char *value = malloc(XATTR_BUF);
  if (value == NULL) return -ENOMEM;
  int r = 0;
  for (char *n = names; n < names + len; n += strlen(n) + 1) {
    ssize_t vlen = getxattr(src, n, value, XATTR_BUF);
    if (vlen < 0) { if (errno == ENODATA) continue; r = -errno; break; }
    if (setxattr(dst, n, value, (size_t) vlen, 0) < 0) { r = -errno; break; }
  }
  free(value);
  return r;
}

// GVariant framing offsets: little-endian, 1, 2 or 4 bytes wide by the container's size.
static size_t gv_offset_size (size_t container) {
  return container <= 0xff ? 1 : container <= 0xffff ? 2 : 4;
}

static size_t gv_read_offset (const unsigned char *p, size_t width) {
  size_t v = 0;
  for (size_t i = 0; i < width; i++) v |= (size_t) p[i] << (8 * i);
  return v;
}

#define OSTREEMETA "user.ostreemeta"

// A bare-user repository keeps each file's real owner, mode and xattrs in user.ostreemeta, a
// GVariant (uuua(ayay)). Calls fn for each xattr recorded there, in order, until it returns
// non-zero (which is returned). 0, or -EINVAL for a malformed value.
int rg_ostreemeta_each (const unsigned char *meta, size_t len, int (*fn)(void *arg, const char *name, const void *value, size_t vlen), void *arg) {
  if (len < 12) return -EINVAL;
  const unsigned char *arr = meta + 12;
  size_t alen = len - 12;
  if (alen == 0) return 0;
  size_t w = gv_offset_size(alen);
  if (alen < w) return -EINVAL;
  size_t table = gv_read_offset(arr + alen - w, w);
  if (table > alen - w || (alen - table) % w) return -EINVAL;
  size_t n = (alen - table) / w, start = 0;
  for (size_t i = 0; i < n; i++) {
    size_t end = gv_read_offset(arr + table + i * w, w);
    if (end < start || end > table) return -EINVAL;
    const unsigned char *e = arr + start;
    size_t elen = end - start, ew = gv_offset_size(elen);
    if (elen < ew) return -EINVAL;
    size_t key_end = gv_read_offset(e + elen - ew, ew);
    if (key_end == 0 || key_end > elen - ew || e[key_end - 1] != 0) return -EINVAL;
    const char *name = (const char *) e;
    if (strlen(name) + 1 != key_end) return -EINVAL;
    int r = fn(arg, name, e + key_end, elen - ew - key_end);
    if (r) return r;
    start = end;
  }
  return 0;
}

typedef struct { const char *dst; rg_rights_t *who; int apply; } unpack_t;

static int unpack_one (void *arg, const char *name, const void *value, size_t vlen) {
  unpack_t *u = arg;
  if (!may_set(name, u->who)) return -EPERM;
  if (u->apply && setxattr(u->dst, name, value, vlen, 0) < 0) return -errno;
  return 0;
}

// The private copy is an ordinary file: it gets the xattrs recorded in user.ostreemeta as real
// xattrs (not user.ostreemeta itself); owner and mode stay those on disk, as the hooks saw them.
// `apply` 0 only checks. 0, -EINVAL for a malformed value, -EPERM for a name the caller may not
// set (the copy-up then fails rather than lend or lose it), or -errno.
static int ostreemeta_xattrs (const unsigned char *meta, size_t len, const char *dst, rg_rights_t *who, int apply) {
  unpack_t u = { dst, who, apply };
  return rg_ostreemeta_each(meta, len, unpack_one, &u);
}

// The recorded mode (big-endian, the third u32) is a regular file's, as the file on disk is: a
// bare-user content object. (A symlink of a bare-user repository is checked out as a symlink,
// never hardlinked.)
int rg_ostreemeta_genuine (const unsigned char *meta, size_t len) {
  if (len < 12) return 0;
  uint32_t mode = (uint32_t) meta[8] << 24 | (uint32_t) meta[9] << 16 | (uint32_t) meta[10] << 8 | meta[11];
  return S_ISREG(mode);
}

static int copy_xattrs (const char *src, const char *dst, rg_rights_t *who) {
  static __thread unsigned char meta[XATTR_BUF];
  ssize_t mlen = who->unpack ? getxattr(src, OSTREEMETA, meta, sizeof(meta)) : -1;
  if (mlen < 0 && who->unpack && errno != ENODATA && errno != ENOTSUP) return -errno;
  if (mlen >= 0 && rg_ostreemeta_genuine(meta, (size_t) mlen)) {
    int r = ostreemeta_xattrs(meta, (size_t) mlen, dst, who, 0);
    return r < 0 ? r : ostreemeta_xattrs(meta, (size_t) mlen, dst, who, 1);
  }
  return copy_disk_xattrs(src, dst);
}

// --- the copy ----------------------------------------------------------------------------------

static unsigned random_u32 (void) {
  unsigned rnd = 0;
  if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t) sizeof(rnd)) rnd = (unsigned) getpid() * 2654435761u ^ (unsigned) rand();
  return rnd;
}

// A reserved temporary name for `base`.
static void temp_name (char out[NAME_MAX + 1], const char *base) {
  snprintf(out, NAME_MAX + 1, RG_RESERVED_PREFIX "%.64s.%d.%08x", base, (int) getpid(), random_u32());
}

// Owner, xattrs, mode, times of `st` onto the copy open as `out`; `src` reaches the object.
static int copy_attrs (int out, const char *src, const struct stat *st, rg_rights_t *who, int is_link) {
  char dst[32];
  fd_path(out, dst);
  if (fchownat(out, "", st->st_uid, st->st_gid, AT_EMPTY_PATH) < 0) return -errno;
  int r = copy_xattrs(src, dst, who);
  if (r < 0) return r;
  if (!is_link && fchmod(out, st->st_mode & 07777) < 0) return -errno;
  struct timespec ts[2] = { st->st_atim, st->st_mtim };
  return utimensat(out, "", ts, AT_EMPTY_PATH) < 0 ? -errno : 0;
}

// A regular file's copy, filled and with its attributes, not linked anywhere (an O_TMPFILE in
// dirfd; where the filesystem has none, a reserved name, returned in `named`). -errno on failure.
static int file_copy (int dirfd, int src, const struct stat *st, rg_rights_t *who, const char *base, char named[NAME_MAX + 1]) {
  char sp[32];
  fd_path(src, sp);
  named[0] = 0;
  int in = open(sp, O_RDONLY | O_NOATIME | O_CLOEXEC);
  if (in < 0 && errno == EPERM) in = open(sp, O_RDONLY | O_CLOEXEC);
  if (in < 0) return -errno;
  int out = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  for (int attempt = 0; out < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL || (named[0] && errno == EEXIST)) && attempt < 8; attempt++) {
    temp_name(named, base);
    out = openat(dirfd, named, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  }
  if (out < 0) { int e = errno; close(in); named[0] = 0; return -e; }
  int r = copy_data(in, out, st);
  close(in);
  if (r == 0) r = copy_attrs(out, sp, st, who, 0);
  if (r < 0) {
    if (named[0]) unlinkat(dirfd, named, 0);
    close(out);
    return r;
  }
  return out;
}

int rg_copy_up_unlinked (int src, int dirfd, rg_rights_t *who) {
  struct stat st;
  if (fstat(src, &st) < 0) return -errno;
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  char named[NAME_MAX + 1];
  int out = file_copy(dirfd, src, &st, who, "unlinked", named);
  if (out >= 0 && named[0]) unlinkat(dirfd, named, 0);
  return out;
}

int rg_copy_up_at (int dirfd, const char *name, int src, rg_rights_t *who) {
  struct stat st;
  if (fstat(src, &st) < 0) return -errno;
  // The directory's times as they are just before the copy gets a name: its link and rename are
  // the guard's, not the hook's, and a native run would not move them (mkinitramfs sets a
  // directory's times, then a hardlinked file's in it, and expects the directory's to stay).
  struct stat dst;
  int dir_times = 0;
  char tmp[NAME_MAX + 1], sp[32];
  int out = -1, r = 0;
  if (S_ISREG(st.st_mode)) {
    out = file_copy(dirfd, src, &st, who, name, tmp);
    if (out < 0) return out;
    dir_times = fstat(dirfd, &dst) == 0;
    // Named at the last moment, under a reserved name, and renamed over the target at once.
    for (int attempt = 0; !tmp[0]; attempt++) {
      char cand[NAME_MAX + 1];
      temp_name(cand, name);
      if (linkat(AT_FDCWD, fd_path(out, sp), dirfd, cand, AT_SYMLINK_FOLLOW) == 0) { strcpy(tmp, cand); break; }
      if (errno != EEXIST || attempt >= 8) { r = -errno; close(out); return r; }
    }
  } else if (S_ISLNK(st.st_mode)) {
    char target[PATH_BUF];
    ssize_t n = readlinkat(src, "", target, sizeof(target) - 1);
    if (n < 0) return -errno;
    target[n] = 0;
    dir_times = fstat(dirfd, &dst) == 0;
    for (int attempt = 0; ; attempt++) {
      temp_name(tmp, name);
      if (symlinkat(target, dirfd, tmp) == 0) break;
      if (errno != EEXIST || attempt >= 8) return -errno;
    }
    out = openat(dirfd, tmp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat ost;
    if (out < 0) r = -errno;
    else if (fstat(out, &ost) < 0 || !S_ISLNK(ost.st_mode)) r = -EIO;
    if (r == 0) r = copy_attrs(out, fd_path(src, sp), &st, who, 1);
  } else {
    return -EINVAL;
  }
  if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0) r = -errno;
  if (r < 0) {
    unlinkat(dirfd, tmp, 0);
    if (out >= 0) close(out);
    return r;
  }
  if (dir_times) {
    struct timespec ts[2] = { { 0, UTIME_OMIT }, dst.st_mtim };
    utimensat(dirfd, "", ts, AT_EMPTY_PATH);
  }
  return out;
}
