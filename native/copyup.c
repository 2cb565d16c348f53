// Copy-up (SPEC "Copy-up"), shared by native/sysops.c and the patched fuse-native, so that
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

// copyUp(path) -> Promise<0 | -errno>, on libuv's thread pool: SPEC "Copy-up" in one job.
// Beside `path`, under a temporary name nobody else uses (O_EXCL, retried), a private copy is
// made with the data (FICLONE / copy_file_range / read-write, source read with O_NOATIME),
// then the owner, every xattr, the mode (after the owner: chown clears set-id bits) and both
// times; then it is renamed over `path`. A symlink is copied as a new symlink with the same
// target, owner, xattrs and times. The object is only ever read. On failure the temporary is
// removed and `path` is untouched.
static int copy_xattrs(int in, int out, const char *src, const char *dst, int is_link) {
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

int rg_copy_up(const char *path) {
  struct { const char *path; } jj = { path }, *j = &jj;
  struct stat st;
  if (lstat(j->path, &st) < 0) return -errno;
  int is_link = S_ISLNK(st.st_mode);
  if (!is_link && !S_ISREG(st.st_mode)) return -EINVAL;

  const char *slash = strrchr(j->path, '/');
  size_t dirlen = slash ? (size_t) (slash - j->path) : 0;
  const char *base = slash ? slash + 1 : j->path;
  char tmp[PATH_BUF];
  int in = -1, out = -1, r = 0;

  if (!is_link) {
    in = open(j->path, O_RDONLY | O_NOATIME | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0 && errno == EPERM) in = open(j->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0) return -errno;
  }
  char target[PATH_BUF];
  if (is_link) {
    ssize_t n = readlink(j->path, target, sizeof(target) - 1);
    if (n < 0) return -errno;
    target[n] = 0;
  }
  for (int attempt = 0; ; attempt++) {
    unsigned rnd;
    int rf = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (rf < 0 || read(rf, &rnd, sizeof(rnd)) != sizeof(rnd)) rnd = (unsigned) getpid() ^ (unsigned) attempt * 2654435761u;
    if (rf >= 0) close(rf);
    int n = snprintf(tmp, sizeof(tmp), "%.*s/.rofiles-guard-copyup.%.64s.%d.%08x", (int) dirlen, j->path, base, (int) getpid(), rnd);
    if (n < 0 || n >= (int) sizeof(tmp)) { r = -ENAMETOOLONG; break; }
    if (is_link) {
      if (symlink(target, tmp) == 0) break;
    } else {
      out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (out >= 0) break;
    }
    if (errno != EEXIST || attempt >= 5) { r = -errno; break; }
  }
  if (r) { if (in >= 0) close(in); return r; }

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
  if (!r) r = (is_link ? lchown(tmp, st.st_uid, st.st_gid) : fchown(out, st.st_uid, st.st_gid)) < 0 ? -errno : 0;
  if (!r) r = copy_xattrs(in, out, j->path, tmp, is_link);
  if (!r && !is_link) r = fchmod(out, st.st_mode & 07777) < 0 ? -errno : 0;
  if (!r) {
    struct timespec ts[2] = { st.st_atim, st.st_mtim };
    r = (is_link ? utimensat(AT_FDCWD, tmp, ts, AT_SYMLINK_NOFOLLOW) : futimens(out, ts)) < 0 ? -errno : 0;
  }
  if (out >= 0 && close(out) != 0 && !r) r = -errno;
  if (in >= 0) close(in);
  if (!r && rename(tmp, j->path) < 0) r = -errno;
  if (r) unlink(tmp);
  return r;
}

