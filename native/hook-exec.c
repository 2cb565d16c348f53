// hook-exec PROGRAM [ARG...]: runs a hook with nothing open but stdin, stdout and stderr.
// Node marks only its own descriptors close-on-exec; one that the runner inherited without it
// (say fd 200 on a repository directory, from the shell that started the runner) would reach
// every hook, in every sandbox, and let it write around the guard. So every descriptor from 3 up
// is closed here, then PROGRAM is executed (looked up in PATH like execvp).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void close_from_3(void) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return; // Linux >= 5.9
#endif
  // Older kernels: collect first, then close (closing while listing would skip entries).
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) {
    for (int fd = 3; fd < 65536; fd++) close(fd);
    return;
  }
  int own = dirfd(d), n = 0, cap = 64;
  int *fds = malloc(cap * sizeof(int));
  for (struct dirent *e; fds != NULL && (e = readdir(d)) != NULL;) {
    int fd = atoi(e->d_name);
    if (fd < 3 || fd == own) continue;
    if (n == cap) {
      int *more = realloc(fds, (cap *= 2) * sizeof(int));
      if (more == NULL) break;
      fds = more;
    }
    fds[n++] = fd;
  }
  closedir(d);
  for (int i = 0; fds != NULL && i < n; i++) close(fds[i]);
  free(fds);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: hook-exec PROGRAM [ARG...]\n");
    return 127;
  }
  close_from_3();
  execvp(argv[1], argv + 1);
  int err = errno;
  fprintf(stderr, "rofiles-guard: cannot execute %s: %s\n", argv[1], strerror(err));
  return err == ENOENT ? 127 : 126;
}
