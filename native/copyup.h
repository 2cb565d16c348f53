#ifndef ROFILES_GUARD_COPYUP_H
#define ROFILES_GUARD_COPYUP_H
// Breaks the hardlink at `path`: beside it, under a temporary name nobody else uses (O_EXCL,
// retried), a private copy is made with the data (FICLONE / copy_file_range / read-write, the
// source read with O_NOATIME), then the owner, every xattr, the mode (after the owner: chown
// clears set-id bits) and both times; then it is renamed over `path`. A symlink is copied as a
// new symlink with the same target, owner, xattrs and times. The object is only ever read.
// A file of a bare-user repository (xattr user.ostreemeta) gets the xattrs recorded there as
// real ones, not user.ostreemeta. Returns 0 or -errno; on failure the temporary is removed and
// `path` is untouched.
int rg_copy_up(const char *path);
// The same for a file that has no name left, open as `fd` (an O_PATH handle will do): the copy
// is made in directory `dir` and unlinked again at once. Returns an O_PATH descriptor on the
// private copy (close-on-exec), or -errno.
int rg_copy_up_unlinked(int fd, const char *dir);
#endif
