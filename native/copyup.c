// Copy-up (docs/spec.md, "Copy-up"), shared by native/sysops.c and the patched fuse-native, so that
// there is one implementation. See rg_copy_up() in copyup.h.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <linux/fs.h>
#include <unistd.h>
#include "copyup.h"

#define PATH_BUF 4096

// Copies the rest of `in` to `out` where neither reflink nor copy_file_range can.
static int copy_rw(int in, int out) {
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(in, buf, sizeof(buf));
    if (n == 0) return 0;
    if (n < 0) { if (errno == EINTR) continue; return -errno; }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, n - off);
      if (w < 0) { if (errno == EINTR) continue; return -errno; }
      off += w;
    }
  }
}

static int copy_disk_xattrs(int in, int out, const char *src, const char *dst, int is_link) {
  char names[65536];
  ssize_t len = is_link ? llistxattr(src, names, sizeof(names)) : flistxattr(in, names, sizeof(names));
  if (len < 0) return (errno == ENOTSUP) ? 0 : -errno;
  char *value = malloc(65536);
  if (value == NULL) return -ENOMEM;
  int r = 0;
  for (char *n = names; n < names + len; n += strlen(n) + 1) {
    ssize_t vlen = is_link ? lgetxattr(src, n, value, 65536) : fgetxattr(in, n, value, 65536);
    if (vlen < 0) { if (errno == ENODATA) continue; r = -errno; break; }
    int w = is_link ? lsetxattr(dst, n, value, vlen, 0) : fsetxattr(out, n, value, vlen, 0);
    if (w < 0) { r = -errno; break; }
  }
  free(value);
  return r;
}

// GVariant framing offsets: little-endian, 1, 2 or 4 bytes wide by the container's size.
static size_t gv_offset_size(size_t container) {
  return container <= 0xff ? 1 : container <= 0xffff ? 2 : 4;
}

static size_t gv_read_offset(const unsigned char *p, size_t width) {
  size_t v = 0;
  for (size_t i = 0; i < width; i++) v |= (size_t) p[i] << (8 * i);
  return v;
}

#define OSTREEMETA "user.ostreemeta"

// bare-user repositories keep each file's real owner, mode and xattrs in the xattr
// user.ostreemeta, a GVariant (uuua(ayay)). A private copy is an ordinary file: it gets the
// xattrs recorded there as real xattrs, and not user.ostreemeta itself (a commit of the tree
// would otherwise record it as an ordinary xattr). Owner and mode stay those of the file on
// disk, as the hooks saw it. Returns 0 or -errno (say EPERM for a security.* name a user may
// not set: the copy-up then fails rather than lose it).
static int apply_ostreemeta(const unsigned char *meta, size_t len, int out, const char *dst, int is_link) {
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
    const void *value = e + key_end;
    size_t vlen = elen - ew - key_end;
    int r = is_link ? lsetxattr(dst, name, value, vlen, 0) : fsetxattr(out, name, value, vlen, 0);
    if (r < 0) return -errno;
    start = end;
  }
  return 0;
}

static int copy_xattrs(int in, int out, const char *src, const char *dst, int is_link) {
  unsigned char meta[65536];
  ssize_t mlen = is_link ? lgetxattr(src, OSTREEMETA, meta, sizeof(meta)) : fgetxattr(in, OSTREEMETA, meta, sizeof(meta));
  if (mlen >= 0) return apply_ostreemeta(meta, (size_t) mlen, out, dst, is_link);
  if (errno != ENODATA && errno != ENOTSUP) return -errno;
  return copy_disk_xattrs(in, out, src, dst, is_link);
}

// Makes the private copy of the file open as `in` (or of the symlink `src`, is_link) in a new
// temporary `<dir>/.rofiles-guard-copyup.<base>.<pid>.<random>`, named in `tmp`: data, then owner,
// xattrs, mode (after the owner: chown clears set-id bits) and both times, as `st` gives them.
// Returns 0 or -errno; on failure no temporary is left.
static int copy_to_temp(int in, const char *src, int is_link, const struct stat *st,
                        const char *dir, size_t dirlen, const char *base, char tmp[PATH_BUF]) {
  char target[PATH_BUF];
  int out = -1, r = 0;
  if (is_link) {
    ssize_t n = readlink(src, target, sizeof(target) - 1);
    if (n < 0) return -errno;
    target[n] = 0;
  }
  for (int attempt = 0; ; attempt++) {
    unsigned rnd;
    int rf = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (rf < 0 || read(rf, &rnd, sizeof(rnd)) != sizeof(rnd)) rnd = (unsigned) getpid() ^ (unsigned) attempt * 2654435761u;
    if (rf >= 0) close(rf);
    int n = snprintf(tmp, PATH_BUF, "%.*s/.rofiles-guard-copyup.%.64s.%d.%08x", (int) dirlen, dir, base, (int) getpid(), rnd);
    if (n < 0 || n >= PATH_BUF) return -ENAMETOOLONG;
    if (is_link) {
      if (symlink(target, tmp) == 0) break;
    } else {
      out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (out >= 0) break;
    }
    if (errno != EEXIST || attempt >= 5) return -errno;
  }

  if (!is_link && ioctl(out, FICLONE, in) != 0) {
    int copied = 0;
    for (;;) {
      ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
      if (n > 0) { copied = 1; continue; }
      if (n == 0) break;
      if (errno == EINTR) continue;
      r = (!copied && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) ? copy_rw(in, out) : -errno;
      break;
    }
  }
  if (!r) r = (is_link ? lchown(tmp, st->st_uid, st->st_gid) : fchown(out, st->st_uid, st->st_gid)) < 0 ? -errno : 0;
  if (!r) r = copy_xattrs(in, out, src, tmp, is_link);
  if (!r && !is_link) r = fchmod(out, st->st_mode & 07777) < 0 ? -errno : 0;
  if (!r) {
    struct timespec ts[2] = { st->st_atim, st->st_mtim };
    r = (is_link ? utimensat(AT_FDCWD, tmp, ts, AT_SYMLINK_NOFOLLOW) : futimens(out, ts)) < 0 ? -errno : 0;
  }
  if (out >= 0 && close(out) != 0 && !r) r = -errno;
  if (r) unlink(tmp);
  return r;
}

// Opens `path` to read it for a copy, without touching its atime where the owner allows that.
static int open_source(const char *path, int flags) {
  int in = open(path, O_RDONLY | O_NOATIME | O_CLOEXEC | flags);
  if (in < 0 && errno == EPERM) in = open(path, O_RDONLY | O_CLOEXEC | flags);
  return in < 0 ? -errno : in;
}

int rg_copy_up(const char *path) {
  // Everything happens through a descriptor on the parent directory, so the names used stay short
  // ("/proc/self/fd/N/name") whatever the length of `path`.
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  char dir[PATH_BUF], at[PATH_BUF], dirat[64], tmp[PATH_BUF];
  if (slash == NULL) strcpy(dir, ".");
  else if (slash == path) strcpy(dir, "/");
  else if ((size_t) (slash - path) >= sizeof(dir)) return -ENAMETOOLONG;
  else { memcpy(dir, path, slash - path); dir[slash - path] = 0; }
  int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -errno;
  snprintf(dirat, sizeof(dirat), "/proc/self/fd/%d", dfd);
  int r = 0;
  if (snprintf(at, sizeof(at), "%s/%s", dirat, base) >= (int) sizeof(at)) r = -ENAMETOOLONG;

  struct stat st;
  if (!r && lstat(at, &st) < 0) r = -errno;
  int is_link = !r && S_ISLNK(st.st_mode);
  if (!r && !is_link && !S_ISREG(st.st_mode)) r = -EINVAL;
  int in = -1;
  if (!r && !is_link && (in = open_source(at, O_NOFOLLOW)) < 0) r = in;
  if (!r) r = copy_to_temp(in, at, is_link, &st, dirat, strlen(dirat), base, tmp);
  if (in >= 0) close(in);
  if (!r && rename(tmp, at) < 0) { r = -errno; unlink(tmp); }
  close(dfd);
  return r;
}

int rg_copy_up_unlinked(int fd, const char *dir) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  char src[64], tmp[PATH_BUF];
  snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
  int in = open_source(src, 0); // the magic link leads to the inode; O_NOFOLLOW would refuse it
  if (in < 0) return in;
  int r = copy_to_temp(in, src, 0, &st, dir, strlen(dir), "unlinked", tmp);
  close(in);
  if (r) return r;
  int copy = open(tmp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (copy < 0) r = -errno;
  unlink(tmp);
  return r ? r : copy;
}
