// The session's own reads and writes of /dev/fuse (fuse_session_custom_io): every request is
// counted by kind, and, where the kernel offers FUSE_PASSTHROUGH and the server may use it
// (CAP_SYS_ADMIN), the INIT reply asks for it and open replies name a backing file. libfuse 3.14
// knows neither (passthrough came with 3.17); both are fields of replies libfuse already sends,
// completed here just before they are written. Without passthrough nothing is changed.
#include "core.h"
#include <errno.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>

// Linux 6.9's additions to the protocol (7.40), which Debian 12's linux/fuse.h predates.
#define RG_FUSE_PASSTHROUGH_FLAGS2 (1u << (37 - 32)) // FUSE_PASSTHROUGH, in init flags2
// FUSE_DIRECT_IO_ALLOW_MMAP (kernel 6.6+, protocol 7.39), in init flags2: a file opened with
// O_DIRECT (served direct_io) may still be mapped shared, as on ext4. libfuse 3.14 cannot ask.
#define RG_FUSE_DIO_MMAP_FLAGS2 (1u << (36 - 32))
// FUSE_OVER_IO_URING (kernel 6.14+, protocol 7.42), in init flags2: uring.c.
#define RG_FUSE_OVER_IO_URING_FLAGS2 (1u << (41 - 32))
static int init_dio_mmap;
// FUSE_HANDLE_KILLPRIV_V2 (kernel 5.11+, protocol 7.33), which libfuse 3.14 cannot ask: the server
// clears set-id bits where a write, truncate or chown would (ops.c, kill_suidgid), so the kernel
// neither fetches a file's attributes before each chown nor asks for security.capability before
// every write (the superblock gets SB_NOSEC: once per inode until its mode or security xattrs change).
static int init_killpriv;
#define RG_FOPEN_PASSTHROUGH (1u << 7)
struct rg_backing_map { int32_t fd; uint32_t flags; uint64_t padding; };
#define RG_DEV_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct rg_backing_map)
#define RG_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)
// fuse_init_out's unused[0] is max_stack_depth since 7.40; fuse_open_out's padding, backing_id.
#define RG_MAX_STACK_DEPTH(o) ((o)->unused[0])
#define RG_BACKING_ID(o) ((o)->padding)

static __thread int pending_backing;

// The request this thread is serving: its kind, id and arrival (CLOCK_MONOTONIC, ns), and whether
// the kernel asks the server to kill its file's set-id bits (FUSE_HANDLE_KILLPRIV_V2; libfuse 3.14
// drops the open and write flags that say so, so they are read here from the request itself).
static __thread struct { uint64_t unique, t0; uint32_t opcode; int kill_suidgid, counted; } current;

static uint64_t now_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int asks_kill (uint32_t opcode, const void *in, size_t len) {
  if (opcode == FUSE_OPEN && len >= sizeof(struct fuse_open_in))
    return (((const struct fuse_open_in *) in)->open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
  if (opcode == FUSE_CREATE && len >= sizeof(struct fuse_create_in))
    return (((const struct fuse_create_in *) in)->open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
  if (opcode == FUSE_WRITE && len >= offsetof(struct fuse_write_in, write_flags) + sizeof(uint32_t))
    return (((const struct fuse_write_in *) in)->write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
  return 0;
}

void rg_request_begin (rg_core_t *c, const struct fuse_in_header *h, const void *in, size_t len) {
  if (h->opcode >= 64) return;
  __atomic_add_fetch(&c->requests[h->opcode], 1, __ATOMIC_RELAXED);
  // Requests in service (read_request's measure of overlap): all but those never answered. One
  // whose answer bypassed the session's writev is forgotten at this thread's next request.
  if (current.counted) __atomic_sub_fetch(&c->busy, 1, __ATOMIC_RELAXED);
  current.counted = h->opcode != FUSE_FORGET && h->opcode != FUSE_BATCH_FORGET && h->opcode != FUSE_INTERRUPT;
  if (current.counted) __atomic_add_fetch(&c->busy, 1, __ATOMIC_RELAXED);
  current.unique = h->unique;
  current.opcode = h->opcode;
  current.kill_suidgid = c->killpriv && asks_kill(h->opcode, in, len);
  current.t0 = now_ns();
}

int rg_request_kills_suidgid (void) {
  return current.kill_suidgid;
}

void rg_request_end (rg_core_t *c, uint64_t unique) {
  if (unique == 0 || unique != current.unique) return; // a notification, or not this thread's
  __atomic_add_fetch(&c->server_ns[current.opcode], now_ns() - current.t0, __ATOMIC_RELAXED);
  if (current.counted) __atomic_sub_fetch(&c->busy, 1, __ATOMIC_RELAXED);
  current.counted = 0;
  current.unique = 0;
}

void rg_reply_backing (int id) {
  pending_backing = id;
}

// --- the reading thread serves -----------------------------------------------------------------
// One thread at a time reads /dev/fuse (it holds the session's `reader`), and serves what it read itself while
// that can only be quick: the next request finds it awake (polling the device for a moment before
// it sleeps), so a client's request after request costs no wake-up of a server thread. libfuse's
// other threads wait for `reader` here. The reader hands over before anything that may wait long
// or on the kernel: requests that move data or wait for the disk (by kind, at once), and, through
// rg_step_down, a copy-up that must wait for another or copies more than 1 MiB, and a notification
// that drops an entry (it needs a directory's lock, which a process may hold while its own request
// must be read meanwhile). Attribute invalidations it sends itself: the kernel takes no such lock
// for them. ROFILES_GUARD_FUSE_INLINE=off: every request
// is handed over as it is read, as in libfuse's own loop. (libfuse's threads never exit while the
// session runs: max_idle_threads is left at its default, -1.)
static __thread pthread_mutex_t *held; // the session's `reader`, while this thread is it
#define RG_SPIN_NS 50000u

void rg_step_down (void) {
  if (held == NULL) return;
  pthread_mutex_t *m = held;
  held = NULL;
  pthread_mutex_unlock(m);
}

static void step_down_cleanup (void *unused) {
  (void) unused;
  rg_step_down();
}

// Kinds the reader never serves itself: data moved by the server, waits for the disk, the ring's
// setup, and the end.
static int handed_over (uint32_t opcode) {
  switch (opcode) {
    case FUSE_READ: case FUSE_WRITE: case FUSE_FSYNC: case FUSE_FSYNCDIR: case FUSE_FALLOCATE:
    case FUSE_COPY_FILE_RANGE: case FUSE_INIT: case FUSE_DESTROY: case FUSE_SETUPMAPPING:
    case FUSE_REMOVEMAPPING: case FUSE_SYNCFS: case FUSE_IOCTL: case FUSE_POLL: case FUSE_SETLKW:
      return 1;
    default:
      return 0;
  }
}

// Whether requests overlap: a decaying score (0-1024) of how often a request was read while
// another was queued or in service. Above RG_OVERLAP_HIGH every thread reads for itself (libfuse's
// own model: with clients in parallel, handing the reading over costs more than it saves); below
// RG_OVERLAP_LOW one thread reads and serves again.
#define RG_OVERLAP_HIGH 512
#define RG_OVERLAP_LOW 128

static void note_overlap (rg_core_t *c, int fd) {
  struct pollfd p = { .fd = fd, .events = POLLIN };
  int overlap = __atomic_load_n(&c->busy, __ATOMIC_RELAXED) > 0 || poll(&p, 1, 0) > 0;
  int score = __atomic_load_n(&c->overlap, __ATOMIC_RELAXED);
  score += overlap ? (1024 - score) / 8 : -(score / 8) - (score > 0 && score < 8);
  __atomic_store_n(&c->overlap, score, __ATOMIC_RELAXED);
  if (score > RG_OVERLAP_HIGH) __atomic_store_n(&c->serial, 0, __ATOMIC_RELAXED);
  else if (score < RG_OVERLAP_LOW) __atomic_store_n(&c->serial, 1, __ATOMIC_RELAXED);
}

static ssize_t read_request (rg_core_t *c, int fd, void *buf, size_t len) {
  if (!c->inline_serving) return read(fd, buf, len);
  ssize_t n;
  if (!__atomic_load_n(&c->serial, __ATOMIC_RELAXED)) {
    rg_step_down();
    n = read(fd, buf, len);
    if (n >= (ssize_t) sizeof(struct fuse_in_header)) note_overlap(c, fd);
    return n;
  }
  if (held == NULL) { pthread_mutex_lock(&c->reader); held = &c->reader; }
  // Cancellation points (libfuse cancels its threads at the end): the reader hands over first.
  pthread_cleanup_push(step_down_cleanup, NULL);
  struct pollfd p = { .fd = fd, .events = POLLIN };
  uint64_t until = now_ns() + RG_SPIN_NS;
  while (poll(&p, 1, 0) == 0 && now_ns() < until) {}
  n = read(fd, buf, len);
  pthread_cleanup_pop(0);
  if (n < (ssize_t) sizeof(struct fuse_in_header)) { rg_step_down(); return n; }
  note_overlap(c, fd);
  if (handed_over(((const struct fuse_in_header *) buf)->opcode) || !__atomic_load_n(&c->serial, __ATOMIC_RELAXED)) rg_step_down();
  return n;
}

static ssize_t io_read (int fd, void *buf, size_t len, void *userdata) {
  rg_core_t *c = userdata;
  ssize_t n = read_request(c, fd, buf, len);
  if (n < (ssize_t) sizeof(struct fuse_in_header)) return n;
  const struct fuse_in_header *h = buf;
  rg_request_begin(c, h, h + 1, (size_t) n - sizeof(*h));
  if (h->opcode == FUSE_INIT && (size_t) n >= sizeof(*h) + sizeof(struct fuse_init_in)) {
    const struct fuse_init_in *in = (const void *) (h + 1);
    c->init_unique = h->unique;
    c->init_pt = c->allow_passthrough && (in->flags & FUSE_INIT_EXT) && (in->flags2 & RG_FUSE_PASSTHROUGH_FLAGS2);
    init_dio_mmap = (in->flags & FUSE_INIT_EXT) && (in->flags2 & RG_FUSE_DIO_MMAP_FLAGS2);
    init_killpriv = (in->flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
    if (c->allow_uring && (in->flags & FUSE_INIT_EXT) && (in->flags2 & RG_FUSE_OVER_IO_URING_FLAGS2) && !c->uring)
      c->uring = rg_uring_prepare(c);
  }
  return n;
}

static ssize_t io_writev (int fd, struct iovec *iov, int count, void *userdata) {
  rg_core_t *c = userdata;
  if (count >= 2 && iov[0].iov_len == sizeof(struct fuse_out_header)) {
    const struct fuse_out_header *h = iov[0].iov_base;
    if (c->init_unique != 0 && h->unique == c->init_unique) {
      if (h->error == 0 && init_dio_mmap && iov[1].iov_len >= offsetof(struct fuse_init_out, flags2) + sizeof(uint32_t)) {
        struct fuse_init_out *o = iov[1].iov_base;
        o->flags |= FUSE_INIT_EXT;
        o->flags2 |= RG_FUSE_DIO_MMAP_FLAGS2;
      }
      if (h->error == 0 && c->init_pt && iov[1].iov_len >= offsetof(struct fuse_init_out, unused) + sizeof(uint32_t)) {
        struct fuse_init_out *o = iov[1].iov_base;
        o->flags |= FUSE_INIT_EXT;
        o->flags2 |= RG_FUSE_PASSTHROUGH_FLAGS2;
        RG_MAX_STACK_DEPTH(o) = 1; // backing files are on an ordinary filesystem
        c->passthrough = 1;
      }
      if (h->error == 0 && init_killpriv) {
        struct fuse_init_out *o = iov[1].iov_base;
        o->flags |= FUSE_HANDLE_KILLPRIV_V2;
        c->killpriv = 1;
      }
      size_t payload = 0;
      if (h->error == 0 && c->uring && iov[1].iov_len >= offsetof(struct fuse_init_out, max_pages) + sizeof(uint16_t)) {
        struct fuse_init_out *o = iov[1].iov_base;
        o->flags |= FUSE_INIT_EXT;
        o->flags2 |= RG_FUSE_OVER_IO_URING_FLAGS2;
        c->init_uring = 1;
        // The kernel's own bound on a request's payload (fuse_uring_create).
        payload = o->max_write > 8192 ? o->max_write : 8192;
        if ((size_t) o->max_pages * 4096 > payload) payload = (size_t) o->max_pages * 4096;
        if (payload < 1u << 20) payload = 1u << 20; // max_pages may be raised later; never below it
      }
      c->init_unique = 0;
      ssize_t n = writev(fd, iov, count);
      if (n > 0 && c->init_uring) rg_uring_start(c, payload);
      uv_async_send(&c->ready_async);
      return n;
    } else if (h->error == 0 && pending_backing > 0 && iov[count - 1].iov_len >= sizeof(struct fuse_open_out)) {
      // An open reply ends with fuse_open_out; a create reply has the entry before it.
      struct fuse_open_out *o = (void *) ((char *) iov[count - 1].iov_base + iov[count - 1].iov_len - sizeof(*o));
      o->open_flags |= RG_FOPEN_PASSTHROUGH;
      RG_BACKING_ID(o) = (uint32_t) pending_backing;
    }
  }
  if (count >= 1 && iov[0].iov_len == sizeof(struct fuse_out_header)) rg_request_end(c, ((const struct fuse_out_header *) iov[0].iov_base)->unique);
  ssize_t written;
  if (c->init_uring && rg_uring_reply(iov, count, &written)) return written;
  return writev(fd, iov, count);
}

const struct fuse_custom_io rg_io = { .writev = io_writev, .read = io_read };

int rg_may_passthrough (void) {
  struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) < 0) return 0;
  return (d[CAP_SYS_ADMIN / 32].effective >> (CAP_SYS_ADMIN % 32)) & 1;
}

// All passthrough handles of a node share one backing file: the kernel refuses a second one for
// the same inode while the first is in use.
int rg_backing_get (rg_core_t *c, rg_node_t *n, int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return 0;
  rg_lock();
  if (n->backing_id && (n->backing_dev != st.st_dev || n->backing_ino != st.st_ino)) {
    // Only a nameless node gets here: a copy-up of a named one gives the name a new node.
    rg_unlock();
    return -EBUSY;
  }
  if (n->backing_id) {
    n->pt_handles++;
    int id = n->backing_id;
    rg_unlock();
    return id;
  }
  rg_unlock();
  struct rg_backing_map map = { .fd = fd };
  int id = ioctl(fuse_session_fd(c->se), RG_DEV_IOC_BACKING_OPEN, &map);
  if (id <= 0) {
    // Served the ordinary way; without the privilege (a user namespace's root) for good.
    if (errno == EPERM) c->passthrough = 0;
    return 0;
  }
  rg_lock();
  if (n->backing_id) { // another open got there first
    int other = n->backing_id;
    n->pt_handles++;
    rg_unlock();
    uint32_t mine = (uint32_t) id;
    ioctl(fuse_session_fd(c->se), RG_DEV_IOC_BACKING_CLOSE, &mine);
    return other;
  }
  n->backing_id = id;
  n->backing_dev = st.st_dev;
  n->backing_ino = st.st_ino;
  n->pt_handles = 1;
  rg_unlock();
  return id;
}

void rg_backing_put (rg_core_t *c, rg_node_t *n, int id) {
  rg_lock();
  int last = n->backing_id == id && --n->pt_handles == 0;
  if (last) n->backing_id = 0;
  rg_unlock();
  if (!last) return;
  uint32_t bid = (uint32_t) id;
  ioctl(fuse_session_fd(c->se), RG_DEV_IOC_BACKING_CLOSE, &bid);
}
