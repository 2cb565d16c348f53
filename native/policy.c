// The policy of docs/spec.md, "Modes", in C: used by the binding's native layer
// (native/guard.c); lib/policy.ts has it in TypeScript, and test/policy.test.ts proves they agree.
#include <sys/stat.h>
#include "guard-abi.h"

enum rg_decision rg_decide (enum rg_op_class cls, enum rg_mode mode, int is_object) {
  if (cls == RG_MKNOD || mode == RG_MODE_READONLY) return RG_DENY;
  if (cls == RG_NAMESPACE || !is_object) return RG_PASS;
  return mode == RG_MODE_COPYUP ? RG_COPYUP : RG_DENY;
}

int rg_is_object_mode (mode_t mode, nlink_t nlink) {
  return (S_ISREG(mode) || S_ISLNK(mode)) && nlink > 1;
}
