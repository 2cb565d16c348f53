#ifndef ROFILES_GUARD_ABI_H
#define ROFILES_GUARD_ABI_H
// What the C and TypeScript sides of rofiles-guard share, written once: the int64 stat layout
// (sysops.lstat and the binding's getattr), the modes, the outcomes of native events, the
// per-open flags, and the policy (docs/spec.md, "Modes"). native/sysops.c exports all of it
// to TypeScript (lib/native/sysops.ts reads it from there), and test/policy.test.ts proves
// that rg_decide and lib/policy.ts decide() agree on every case.
#include <sys/types.h>

// Slots of the int64 stat layout, RG_ST_SLOTS of them.
#define RG_STAT_SLOTS(X) X(mode) X(uid) X(gid) X(size) X(dev) X(nlink) X(ino) X(rdev) X(blksize) X(blocks) \
  X(atimeSec) X(atimeNsec) X(mtimeSec) X(mtimeNsec) X(ctimeSec) X(ctimeNsec)
#define RG_SLOT_ENUM(name) RG_ST_##name,
enum rg_stat_slot { RG_STAT_SLOTS(RG_SLOT_ENUM) RG_ST_SLOTS };
#undef RG_SLOT_ENUM

// The modes, as lib/policy.ts names them.
#define RG_MODES(X) X(deny, 0) X(copyup, 1) X(readonly, 2)
enum rg_mode { RG_MODE_DENY = 0, RG_MODE_COPYUP = 1, RG_MODE_READONLY = 2 };

// The outcome of a native event: else -errno.
#define RG_OUTCOMES(X) X(done, 0) X(refused, 1) X(copiedUp, 2)
enum rg_outcome { RG_DONE = 0, RG_REFUSED = 1, RG_COPIED_UP = 2 };

// Per-open flags a JS open/create handler answers with.
#define RG_OPEN_FLAGS(X) X(keepCache, 1) X(directIo, 2)
enum rg_open_flag { RG_KEEP_CACHE = 1, RG_DIRECT_IO = 2 };

// The classes of changing operations the policy knows (lib/policy.ts OpClass).
#define RG_OP_CLASSES(X) X(write-open, 0) X(attr, 1) X(namespace, 2) X(mknod, 3)
enum rg_op_class { RG_WRITE_OPEN = 0, RG_ATTR = 1, RG_NAMESPACE = 2, RG_MKNOD = 3 };

#define RG_DECISIONS(X) X(pass, 0) X(deny, 1) X(copyup, 2)
enum rg_decision { RG_PASS = 0, RG_DENY = 1, RG_COPYUP = 2 };

// The table of docs/spec.md, "Modes": what the guard does with an operation of class `cls` in
// `mode` on a path that is (or is not) a repository object.
enum rg_decision rg_decide(enum rg_op_class cls, enum rg_mode mode, int is_object);

// The stat layout both ways (native/abi.c).
#include <stdint.h>
struct stat;
void rg_stat_to_slots(int64_t *v, const struct stat *st);
void rg_slots_to_stat(const int64_t *v, struct stat *st);

// An object: a regular file or symlink whose inode someone else shares too (link count > 1).
int rg_is_object_mode(mode_t mode, nlink_t nlink);
#endif
