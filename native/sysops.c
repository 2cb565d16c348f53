// Syscalls the server needs and Node does not offer: no-follow xattrs, utimensat with
// nanoseconds and UTIME_OMIT, stat straight into fuse-native's int64 layout, statvfs,
// syncfs and umount2. Every call returns 0/size or -errno instead of throwing, so the
// FUSE handlers can hand the result to the kernel as is, and a miss costs no exception.
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include "copyup.h"
#include "guard-abi.h"
#include <unistd.h>

#define PATH_BUF 4096
#define NAME_BUF 256

static napi_value ret_int(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

static int get_str(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok) return -EINVAL;
  if (len >= cap - 1) return -ENAMETOOLONG;
  return 0;
}

// A Buffer, a TypedArray, or null/undefined (a size query).
static int get_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_null || t == napi_undefined) { *data = NULL; *len = 0; return 0; }
  bool is;
  napi_is_buffer(env, v, &is);
  if (is) return napi_get_buffer_info(env, v, data, len) == napi_ok ? 0 : -EINVAL;
  napi_is_typedarray(env, v, &is);
  if (is) {
    napi_typedarray_type tt; size_t n; napi_value ab; size_t off;
    if (napi_get_typedarray_info(env, v, &tt, &n, data, &ab, &off) != napi_ok) return -EINVAL;
    size_t el = (tt == napi_bigint64_array || tt == napi_biguint64_array || tt == napi_float64_array) ? 8 : (tt == napi_int32_array || tt == napi_uint32_array || tt == napi_float32_array) ? 4 : (tt == napi_int16_array || tt == napi_uint16_array) ? 2 : 1;
    *len = n * el;
    return 0;
  }
  return -EINVAL;
}

#define ARGS(n) \
  size_t argc = n; napi_value argv[n]; \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);

#define PATH_ARG(var, i) \
  char var[PATH_BUF]; \
  { int e_ = get_str(env, argv[i], var, sizeof(var)); if (e_) return ret_int(env, e_); }


static napi_value stat_into(napi_env env, napi_value arr, const struct stat *st) {
  void *data; size_t len;
  if (get_bytes(env, arr, &data, &len) || len < 16 * 8 || data == NULL) return ret_int(env, -EINVAL);
  rg_stat_to_slots((int64_t *) data, st);
  return ret_int(env, 0);
}

// lstat(path, BigInt64Array(16)) -> 0 | -errno
static napi_value m_lstat(napi_env env, napi_callback_info info) {
  ARGS(2) PATH_ARG(path, 0)
  struct stat st;
  if (lstat(path, &st) < 0) return ret_int(env, -errno);
  return stat_into(env, argv[1], &st);
}

// fstat(fd, BigInt64Array(16)) -> 0 | -errno
static napi_value m_fstat(napi_env env, napi_callback_info info) {
  ARGS(2)
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) return ret_int(env, -EINVAL);
  struct stat st;
  if (fstat(fd, &st) < 0) return ret_int(env, -errno);
  return stat_into(env, argv[1], &st);
}

// statvfs(path, BigUint64Array(11)) -> 0 | -errno
static napi_value m_statvfs(napi_env env, napi_callback_info info) {
  ARGS(2) PATH_ARG(path, 0)
  void *data; size_t len;
  if (get_bytes(env, argv[1], &data, &len) || len < 11 * 8 || data == NULL) return ret_int(env, -EINVAL);
  struct statvfs s;
  if (statvfs(path, &s) < 0) return ret_int(env, -errno);
  uint64_t *v = data;
  v[0] = s.f_bsize; v[1] = s.f_frsize; v[2] = s.f_blocks; v[3] = s.f_bfree; v[4] = s.f_bavail;
  v[5] = s.f_files; v[6] = s.f_ffree; v[7] = s.f_favail; v[8] = s.f_fsid; v[9] = s.f_flag;
  v[10] = s.f_namemax;
  return ret_int(env, 0);
}

// The optional last argument `follow` of the xattr calls: true for a descriptor's /proc link,
// which then stands for the inode itself (a symlink's too); else the name itself, not followed.
static bool follow_arg(napi_env env, napi_value v) {
  bool follow = false;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) == napi_ok && t == napi_boolean) napi_get_value_bool(env, v, &follow);
  return follow;
}

// lgetxattr(path, name, buf|null, follow?) -> size | -errno
static napi_value m_lgetxattr(napi_env env, napi_callback_info info) {
  ARGS(4) PATH_ARG(path, 0)
  char name[NAME_BUF];
  { int e = get_str(env, argv[1], name, sizeof(name)); if (e) return ret_int(env, e == -ENAMETOOLONG ? -ERANGE : e); }
  void *data; size_t len;
  if (get_bytes(env, argv[2], &data, &len)) return ret_int(env, -EINVAL);
  ssize_t r = follow_arg(env, argv[3]) ? getxattr(path, name, data, len) : lgetxattr(path, name, data, len);
  return ret_int(env, r < 0 ? -errno : r);
}

// llistxattr(path, buf|null, follow?) -> size | -errno
static napi_value m_llistxattr(napi_env env, napi_callback_info info) {
  ARGS(3) PATH_ARG(path, 0)
  void *data; size_t len;
  if (get_bytes(env, argv[1], &data, &len)) return ret_int(env, -EINVAL);
  ssize_t r = follow_arg(env, argv[2]) ? listxattr(path, data, len) : llistxattr(path, data, len);
  return ret_int(env, r < 0 ? -errno : r);
}

// lsetxattr(path, name, buf, flags, follow?) -> 0 | -errno
static napi_value m_lsetxattr(napi_env env, napi_callback_info info) {
  ARGS(5) PATH_ARG(path, 0)
  char name[NAME_BUF];
  { int e = get_str(env, argv[1], name, sizeof(name)); if (e) return ret_int(env, e == -ENAMETOOLONG ? -ERANGE : e); }
  void *data; size_t len;
  if (get_bytes(env, argv[2], &data, &len)) return ret_int(env, -EINVAL);
  int32_t flags = 0;
  napi_get_value_int32(env, argv[3], &flags);
  int r = follow_arg(env, argv[4]) ? setxattr(path, name, data ? data : "", len, flags) : lsetxattr(path, name, data ? data : "", len, flags);
  return ret_int(env, r < 0 ? -errno : 0);
}

// lremovexattr(path, name, follow?) -> 0 | -errno
static napi_value m_lremovexattr(napi_env env, napi_callback_info info) {
  ARGS(3) PATH_ARG(path, 0)
  char name[NAME_BUF];
  { int e = get_str(env, argv[1], name, sizeof(name)); if (e) return ret_int(env, e == -ENAMETOOLONG ? -ERANGE : e); }
  int r = follow_arg(env, argv[2]) ? removexattr(path, name) : lremovexattr(path, name);
  return ret_int(env, r < 0 ? -errno : 0);
}

// lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec, follow?) -> 0 | -errno.
// Nanoseconds may be UTIME_NOW or UTIME_OMIT; follows a final symlink only when asked
// (for /proc/self/fd links standing for files that have no name any more).
static napi_value m_lutimens(napi_env env, napi_callback_info info) {
  ARGS(6) PATH_ARG(path, 0)
  bool follow = false;
  napi_get_value_bool(env, argv[5], &follow);
  int64_t v[4];
  for (int i = 0; i < 4; i++) {
    if (napi_get_value_int64(env, argv[i + 1], &v[i]) != napi_ok) return ret_int(env, -EINVAL);
  }
  struct timespec ts[2] = { { v[0], v[1] }, { v[2], v[3] } };
  int r = utimensat(AT_FDCWD, path, ts, follow ? 0 : AT_SYMLINK_NOFOLLOW);
  return ret_int(env, r < 0 ? -errno : 0);
}

// openBeneath(dirfd, path, flags) -> fd | -errno: rg_open_beneath (copyup.h), no symlink, magic
// link or mount crossed, close-on-exec.
static napi_value m_open_beneath(napi_env env, napi_callback_info info) {
  ARGS(3)
  int32_t dirfd = -1, flags = 0;
  napi_get_value_int32(env, argv[0], &dirfd);
  PATH_ARG(path, 1)
  napi_get_value_int32(env, argv[2], &flags);
  return ret_int(env, rg_open_beneath(dirfd, path[0] == '/' ? path + 1 : path, flags));
}

// readlinkFd(fd) -> string | -errno: the target of the symlink open as fd (O_PATH | O_NOFOLLOW).
static napi_value m_readlink_fd(napi_env env, napi_callback_info info) {
  ARGS(1)
  int32_t fd = -1;
  napi_get_value_int32(env, argv[0], &fd);
  char buf[PATH_BUF];
  ssize_t n = readlinkat(fd, "", buf, sizeof(buf) - 1);
  if (n < 0) return ret_int(env, -errno);
  napi_value out;
  napi_create_string_utf8(env, buf, (size_t) n, &out);
  return out;
}

// syncfs(path) -> 0 | -errno: flush the filesystem that holds path.
static napi_value m_syncfs(napi_env env, napi_callback_info info) {
  ARGS(1) PATH_ARG(path, 0)
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ret_int(env, -errno);
  int r = syncfs(fd);
  int e = errno;
  close(fd);
  return ret_int(env, r < 0 ? -e : 0);
}

// umount2(target, flags) -> 0 | -errno
static napi_value m_umount2(napi_env env, napi_callback_info info) {
  ARGS(2) PATH_ARG(path, 0)
  int32_t flags = 0;
  napi_get_value_int32(env, argv[1], &flags);
  int r = umount2(path, flags);
  return ret_int(env, r < 0 ? -errno : 0);
}

// readdir(path) -> [names[], BigInt64Array(16 * n)] | -errno. Each entry's slots carry the
// d_type as st_mode type bits and d_ino as st_ino (what readdir(3) knows without a stat),
// with "." and ".." included, as a passthrough must show them.
static napi_value m_readdir(napi_env env, napi_callback_info info) {
  ARGS(1) PATH_ARG(path, 0)
  DIR *d = opendir(path);
  if (d == NULL) return ret_int(env, -errno);
  size_t cap = 64, n = 0;
  int64_t *slots = calloc(cap * 16, sizeof(int64_t));
  napi_value names;
  napi_create_array(env, &names);
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d)) != NULL) {
    if (n == cap) {
      cap *= 2;
      int64_t *grown = realloc(slots, cap * 16 * sizeof(int64_t));
      if (grown == NULL) { free(slots); closedir(d); return ret_int(env, -ENOMEM); }
      slots = grown;
    }
    int64_t *v = slots + n * 16;
    memset(v, 0, 16 * sizeof(int64_t));
    v[0] = de->d_type == DT_UNKNOWN ? 0 : DTTOIF(de->d_type);
    v[6] = (int64_t) de->d_ino;
    napi_value name;
    napi_create_string_utf8(env, de->d_name, NAPI_AUTO_LENGTH, &name);
    napi_set_element(env, names, n, name);
    n++;
    errno = 0;
  }
  int e = errno;
  closedir(d);
  if (e) { free(slots); return ret_int(env, -e); }
  napi_value ab, arr, out;
  void *data;
  napi_create_arraybuffer(env, n * 16 * sizeof(int64_t), &data, &ab);
  if (n) memcpy(data, slots, n * 16 * sizeof(int64_t));
  free(slots);
  napi_create_typedarray(env, napi_bigint64_array, n * 16, ab, 0, &arr);
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, names);
  napi_set_element(env, out, 1, arr);
  return out;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char root[PATH_BUF];
  char path[PATH_BUF];
  int fd;   // >= 0: copy up the nameless file open as fd (in the root)
  int pid;  // the process that caused it (rg_rights_of)
  int unpack; // 0: an object a hook made by linking: its user.ostreemeta is not unpacked
  int result;
} copyup_job_t;

// Copy-up of `path` (from the root, "/a/b") below `root`: the directory and the name resolved
// beneath the root with no symlink followed (rg_open_beneath), the object test made again on the
// inode pinned, then rg_copy_up_at. 0 (also when it is no object any more) or -errno.
static int copy_up_beneath(const char *root, const char *path, rg_rights_t *who) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash[1] == 0) return -EINVAL;
  char dir[PATH_BUF];
  snprintf(dir, sizeof(dir), "%.*s", (int) (slash - path), path);
  int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return -errno;
  int dfd = rg_open_beneath(rootfd, dir[0] == '/' ? dir + 1 : dir, O_PATH | O_DIRECTORY);
  close(rootfd);
  if (dfd < 0) return dfd;
  int src = openat(dfd, slash + 1, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  int r = src < 0 ? -errno : 0;
  struct stat st;
  if (r == 0 && fstat(src, &st) < 0) r = -errno;
  if (r == 0 && rg_is_object_mode(st.st_mode, st.st_nlink)) {
    int copy = rg_copy_up_at(dfd, slash + 1, src, who);
    if (copy < 0) r = copy;
    else close(copy);
  }
  if (src >= 0) close(src);
  close(dfd);
  return r;
}

static void copyup_execute(napi_env env, void *data) {
  copyup_job_t *j = data;
  rg_rights_t who;
  rg_rights_of(j->pid, &who);
  who.unpack = j->unpack;
  if (j->fd < 0) { j->result = copy_up_beneath(j->root, j->path, &who); return; }
  int dfd = open(j->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  j->result = dfd < 0 ? -errno : rg_copy_up_unlinked(j->fd, dfd, &who);
  if (dfd >= 0) close(dfd);
  if (j->result >= 0) {
    // The caller wants a descriptor that does not hold the file open for writing.
    char p[32];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", j->result);
    int o = open(p, O_PATH | O_CLOEXEC);
    int e = errno;
    close(j->result);
    j->result = o < 0 ? -e : o;
  }
}

static void copyup_complete(napi_env env, napi_status status, void *data) {
  copyup_job_t *j = data;
  napi_value v;
  napi_create_int32(env, status == napi_ok ? j->result : -EIO, &v);
  napi_resolve_deferred(env, j->deferred, v);
  napi_delete_async_work(env, j->work);
  free(j);
}

// copyUp(root, path, pid, unpack?) and copyUpUnlinked(fd, root, pid): one job on libuv's thread
// pool each.
static napi_value queue_copy_up(napi_env env, napi_value root, napi_value path, int fd, int pid, int unpack) {
  napi_value promise;
  copyup_job_t *j = calloc(1, sizeof(copyup_job_t));
  j->fd = fd;
  j->pid = pid;
  j->unpack = unpack;
  napi_create_promise(env, &j->deferred, &promise);
  int e = get_str(env, root, j->root, sizeof(j->root));
  if (!e && path) e = get_str(env, path, j->path, sizeof(j->path));
  if (e) {
    napi_value v;
    napi_create_int32(env, e, &v);
    napi_resolve_deferred(env, j->deferred, v);
    free(j);
    return promise;
  }
  napi_value name;
  napi_create_string_utf8(env, "rofiles-guard:copyUp", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, copyup_execute, copyup_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

static napi_value m_copy_up(napi_env env, napi_callback_info info) {
  ARGS(4)
  int32_t pid = 0;
  napi_get_value_int32(env, argv[2], &pid);
  bool unpack = true;
  napi_valuetype t;
  if (napi_typeof(env, argv[3], &t) == napi_ok && t == napi_boolean) napi_get_value_bool(env, argv[3], &unpack);
  return queue_copy_up(env, argv[0], argv[1], -1, pid, unpack);
}

static napi_value m_copy_up_unlinked(napi_env env, napi_callback_info info) {
  ARGS(3)
  int32_t fd = -1, pid = 0;
  napi_get_value_int32(env, argv[0], &fd);
  napi_get_value_int32(env, argv[2], &pid);
  return queue_copy_up(env, argv[1], NULL, fd < 0 ? INT32_MAX : fd, pid, 1);
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

static void export_int(napi_env env, napi_value exports, const char *name, int64_t v) {
  napi_set_named_property(env, exports, name, ret_int(env, v));
}

// decide(cls, mode, isObject): rg_decide, for the test that proves it agrees with lib/policy.ts.
static napi_value m_decide(napi_env env, napi_callback_info info) {
  ARGS(3)
  int32_t cls = 0, mode = 0;
  bool obj = false;
  napi_get_value_int32(env, argv[0], &cls);
  napi_get_value_int32(env, argv[1], &mode);
  napi_get_value_bool(env, argv[2], &obj);
  return ret_int(env, rg_decide((enum rg_op_class) cls, (enum rg_mode) mode, obj));
}

// abi: every table of guard-abi.h as { name: number } objects, so TypeScript states none itself.
static napi_value abi_object(napi_env env) {
  napi_value abi, t;
  napi_create_object(env, &abi);
#define RG_TABLE(table) napi_create_object(env, &t); napi_set_named_property(env, abi, table, t);
#define RG_ENTRY(name, value) napi_set_named_property(env, t, #name, ret_int(env, value));
#define RG_SLOT(name) RG_ENTRY(name, RG_ST_##name)
  RG_TABLE("stat") RG_STAT_SLOTS(RG_SLOT)
  RG_TABLE("modes") RG_MODES(RG_ENTRY)
  RG_TABLE("outcomes") RG_OUTCOMES(RG_ENTRY)
  RG_TABLE("openFlags") RG_OPEN_FLAGS(RG_ENTRY)
  RG_TABLE("decisions") RG_DECISIONS(RG_ENTRY)
  RG_TABLE("opClasses") RG_OP_CLASSES(RG_ENTRY)
#undef RG_SLOT
#undef RG_ENTRY
#undef RG_TABLE
  napi_set_named_property(env, abi, "statSlots", ret_int(env, RG_ST_SLOTS));
  return abi;
}

static napi_value init(napi_env env, napi_value exports) {
  export_fn(env, exports, "lstat", m_lstat);
  export_fn(env, exports, "fstat", m_fstat);
  export_fn(env, exports, "statvfs", m_statvfs);
  export_fn(env, exports, "lgetxattr", m_lgetxattr);
  export_fn(env, exports, "llistxattr", m_llistxattr);
  export_fn(env, exports, "lsetxattr", m_lsetxattr);
  export_fn(env, exports, "lremovexattr", m_lremovexattr);
  export_fn(env, exports, "lutimens", m_lutimens);
  export_fn(env, exports, "syncfs", m_syncfs);
  export_fn(env, exports, "openBeneath", m_open_beneath);
  export_fn(env, exports, "readlinkFd", m_readlink_fd);
  export_fn(env, exports, "readdir", m_readdir);
  export_fn(env, exports, "copyUp", m_copy_up);
  export_fn(env, exports, "copyUpUnlinked", m_copy_up_unlinked);
  export_fn(env, exports, "umount2", m_umount2);
  export_int(env, exports, "UTIME_NOW", UTIME_NOW);
  export_int(env, exports, "UTIME_OMIT", UTIME_OMIT);
  export_int(env, exports, "MNT_DETACH", MNT_DETACH);
  export_int(env, exports, "MNT_FORCE", MNT_FORCE);
  export_int(env, exports, "XATTR_CREATE", XATTR_CREATE);
  export_int(env, exports, "XATTR_REPLACE", XATTR_REPLACE);
  export_int(env, exports, "O_PATH", O_PATH);
  export_fn(env, exports, "decide", m_decide);
  napi_set_named_property(env, exports, "abi", abi_object(env));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
