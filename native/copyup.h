#ifndef ROFILES_GUARD_COPYUP_H
#define ROFILES_GUARD_COPYUP_H
// Copy-up (docs/spec.md, "Copy-up"), one implementation for the core (native/core) and the
// TypeScript reference server (native/sysops.c). It works on descriptors only: the object is the
// inode of a descriptor the caller pinned and decided on, never a name resolved again; the copy
// is an O_TMPFILE with no name while its data and attributes are written through its descriptor;
// it gets a name only to be renamed over the target at once, under the reserved prefix below,
// which the servers hide from every lookup and listing and refuse in every name a hook gives.
#include <sys/types.h>

#define RG_RESERVED_PREFIX ".rofiles-guard-copyup."
// Whether a name is one of the guard's own temporaries (never visible or usable through a mount).
int rg_reserved_name(const char *name);

// What the process that caused a copy-up may itself do with xattrs. A copy-up never sets for it
// what it could not set itself: xattrs unpacked from a bare-user file's user.ostreemeta (whose
// content a hook can write) go only into these namespaces.
typedef struct {
  pid_t pid;     // the process; its rights below are read only when first needed
  int known;     // trusted, security and setfcap are read
  int trusted;   // trusted.*: CAP_SYS_ADMIN in the server's user namespace
  int security;  // security.* other than security.capability: CAP_SYS_ADMIN
  int setfcap;   // security.capability: CAP_SETFCAP
  int unpack;    // user.ostreemeta is unpacked at all: 0 for an object a hook made by linking
} rg_rights_t;

// The rights of process `pid`, read from its /proc/PID/status (in the server's user namespace;
// none elsewhere) only when a copy-up has something to unpack. unpack is set to 1.
void rg_rights_of(pid_t pid, rg_rights_t *r);

// Breaks the hardlink of the object open as `src` (an O_PATH descriptor will do; a regular file
// or a symlink) at `name` in the directory open as `dirfd`: a private copy with the data, then
// the owner, the xattrs (a bare-user file's user.ostreemeta unpacked, see rg_rights_t), the mode
// (after the owner: chown clears set-id bits) and both times, all set through the copy's own
// descriptor, renamed over `name`. The object is only ever read. Returns a descriptor on the copy
// (O_RDWR for a file, O_PATH for a symlink; close-on-exec), or -errno with `name` untouched and
// no temporary left.
int rg_copy_up_at(int dirfd, const char *name, int src, rg_rights_t *who);

// The same for a file with no name left, open as `src`: the copy is an O_TMPFILE in the
// directory `dirfd` and never gets a name. Returns an O_RDWR descriptor on it, or -errno.
int rg_copy_up_unlinked(int src, int dirfd, rg_rights_t *who);

// A bare-user file's user.ostreemeta (uuua(ayay)): whether it records a regular file (the only
// kind a bare-user checkout hardlinks), and each xattr it records, in order (fn returning non-zero
// stops and is returned). 0 or -EINVAL for a malformed value.
#include <stddef.h>
int rg_ostreemeta_genuine(const unsigned char *meta, size_t len);
int rg_ostreemeta_each(const unsigned char *meta, size_t len, int (*fn)(void *arg, const char *name, const void *value, size_t vlen), void *arg);

// `path` below the directory `rootfd`, resolved beneath it with no symlink, magic link or mount
// crossed, opened with `flags` (O_PATH | O_NOFOLLOW: the last component itself). A descriptor
// or -errno (ELOOP for a symlink on the way, EXDEV for an escape or a mount).
int rg_open_beneath(int rootfd, const char *path, int flags);
#endif
