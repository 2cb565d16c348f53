// FUSE over io_uring (kernel 6.14+, protocol 7.42), spoken by the core itself: libfuse 3.14 has no
// ring support, but it processes any request buffer handed to fuse_session_process_buf and sends
// every reply through the session's custom writev (passthrough.c), which hands replies to ring
// requests here instead of writing /dev/fuse.
//
// The kernel offers the ring in FUSE_INIT only where root enabled it machine-wide
// (/sys/module/fuse/parameters/enable_uring). The rings are made while the INIT request is
// handled, before the reply accepts the offer: a reply that accepts it makes the kernel hold every
// request until each CPU's queue has an entry, so a ring that cannot be made must be known before.
// A REGISTER the kernel refuses turns the connection back to /dev/fuse (the kernel does that).
//
// Per possible CPU (the kernel's queue for requests from that CPU) RG_URING_THREADS threads, each
// with an io_uring of its own and RG_URING_DEPTH entries: a header (struct fuse_uring_req_header)
// and a payload buffer. A request arrives as a completion; the thread rebuilds it as /dev/fuse
// would have delivered it (in header, the op's own header, the payload) in front of the payload
// buffer, without copying the payload, and the reply goes back with the next fetch in one
// io_uring_enter. Forgets, interrupts and notifications stay on /dev/fuse (libfuse's own loop).
#include "core.h"
#include <errno.h>
#include <linux/fuse.h>
#include <linux/io_uring.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

// The protocol's ring structures (7.42), which Debian 12's linux/fuse.h predates.
#define RG_URING_IN_OUT_SZ 128
#define RG_URING_OP_IN_SZ 128
struct rg_uring_ent_in_out { uint64_t flags; uint64_t commit_id; uint32_t payload_sz; uint32_t padding; uint64_t reserved; };
struct rg_uring_req_header {
  char in_out[RG_URING_IN_OUT_SZ];
  char op_in[RG_URING_OP_IN_SZ];
  struct rg_uring_ent_in_out ent;
};
struct rg_uring_cmd_req { uint64_t flags; uint64_t commit_id; uint16_t qid; uint8_t padding[6]; };
enum { RG_URING_CMD_REGISTER = 1, RG_URING_CMD_COMMIT_AND_FETCH = 2 };

#define RG_URING_DEPTH 2    // entries per thread
#define RG_URING_THREADS 2  // threads per queue: a slow request (a copy-up) does not stall its CPU
#define RG_URING_PREFIX 256 // room before a payload for the in header and the op's header

typedef struct rg_ring rg_ring_t;

typedef struct {
  rg_ring_t *ring;
  struct rg_uring_req_header hdr;
  char *buf;              // RG_URING_PREFIX bytes, then the payload
  struct iovec iov[2];
  uint64_t unique;        // the request being served
  int replied;
  int live;               // registered, not refused or torn down
} rg_ent_t;

struct rg_ring {
  rg_core_t *c;
  int qid, fd;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
  char *sqes;
  struct io_uring_cqe *cqes;
  void *sq_map, *cq_map;
  size_t sq_len, cq_len, sqes_len;
  unsigned pending;       // SQEs queued, not yet submitted
  rg_ent_t ents[RG_URING_DEPTH];
  pthread_t thread;
  int started;
};

struct rg_uring {
  int nrings;
  size_t payload;
  rg_ring_t rings[];
};

static __thread rg_ent_t *serving; // the ring request this thread is serving, if any

static int ring_setup (rg_ring_t *r) {
  struct io_uring_params p;
  memset(&p, 0, sizeof(p));
  // The ring's completions (a request delivered) are posted as task work of its thread: deferred
  // to the thread's own io_uring_enter, where it waits anyway, rather than interrupting it. That
  // needs one submitting thread, set when the ring is enabled (ring_enable), in that thread.
  p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
  r->fd = (int) syscall(__NR_io_uring_setup, RG_URING_DEPTH * 2, &p);
  if (r->fd < 0) return -errno;
  r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  int single = p.features & IORING_FEAT_SINGLE_MMAP;
  if (single && r->cq_len > r->sq_len) r->sq_len = r->cq_len;
  r->sq_map = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
  if (r->sq_map == MAP_FAILED) { r->sq_map = NULL; return -errno; }
  if (single) r->cq_map = r->sq_map, r->cq_len = 0;
  else {
    r->cq_map = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
    if (r->cq_map == MAP_FAILED) { r->cq_map = NULL; return -errno; }
  }
  r->sqes_len = p.sq_entries * 128;
  r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
  if (r->sqes == MAP_FAILED) { r->sqes = NULL; return -errno; }
  char *sq = r->sq_map, *cq = r->cq_map;
  r->sq_head = (unsigned *) (sq + p.sq_off.head);
  r->sq_tail = (unsigned *) (sq + p.sq_off.tail);
  r->sq_mask = (unsigned *) (sq + p.sq_off.ring_mask);
  r->sq_array = (unsigned *) (sq + p.sq_off.array);
  r->cq_head = (unsigned *) (cq + p.cq_off.head);
  r->cq_tail = (unsigned *) (cq + p.cq_off.tail);
  r->cq_mask = (unsigned *) (cq + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *) (cq + p.cq_off.cqes);
  return 0;
}

static void ring_free (rg_ring_t *r) {
  if (r->sqes) munmap(r->sqes, r->sqes_len);
  if (r->cq_map && r->cq_map != r->sq_map) munmap(r->cq_map, r->cq_len);
  if (r->sq_map) munmap(r->sq_map, r->sq_len);
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  r->sqes = r->sq_map = r->cq_map = NULL;
  for (int i = 0; i < RG_URING_DEPTH; i++) { free(r->ents[i].buf); r->ents[i].buf = NULL; }
}

// Makes the calling thread the ring's one submitter (IORING_SETUP_SINGLE_ISSUER).
static void ring_enable (rg_ring_t *r) {
  syscall(__NR_io_uring_register, r->fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
}

// Queues one command for entry i (submitted with the next wait).
static void ring_cmd (rg_ring_t *r, int i, unsigned op) {
  rg_ent_t *e = &r->ents[i];
  unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask;
  struct io_uring_sqe *sqe = (struct io_uring_sqe *) (r->sqes + idx * 128);
  memset(sqe, 0, 128);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fuse_session_fd(r->c->se);
  sqe->cmd_op = op;
  sqe->user_data = (uint64_t) i;
  if (op == RG_URING_CMD_REGISTER) {
    sqe->addr = (uint64_t) (uintptr_t) e->iov;
    sqe->len = 2;
  }
  struct rg_uring_cmd_req *cmd = (struct rg_uring_cmd_req *) ((char *) sqe + 48);
  cmd->qid = (uint16_t) r->qid;
  cmd->commit_id = op == RG_URING_CMD_COMMIT_AND_FETCH ? e->unique : 0;
  r->sq_array[idx] = idx;
  __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
  r->pending++;
}

// The entry's answer where libfuse gave none, or the request could not be handed to it: EIO.
static void reply_eio (rg_ent_t *e) {
  struct fuse_out_header *o = (struct fuse_out_header *) e->hdr.in_out;
  o->unique = e->unique; o->error = -EIO; o->len = sizeof(*o);
  e->hdr.ent.payload_sz = 0;
}

// One request, as /dev/fuse would have delivered it, through libfuse; the reply lands in the
// entry (rg_uring_reply) and goes back with the entry's next fetch.
static void serve (rg_ring_t *r, rg_ent_t *e) {
  rg_core_t *c = r->c;
  struct fuse_in_header *h = (struct fuse_in_header *) e->hdr.in_out;
  uint32_t payload = e->hdr.ent.payload_sz;
  size_t op_len = h->len >= sizeof(*h) + payload ? h->len - sizeof(*h) - payload : (size_t) -1;
  e->unique = e->hdr.ent.commit_id;
  e->replied = 0;
  if (op_len > RG_URING_OP_IN_SZ || payload > r->c->uring->payload) { reply_eio(e); return; }
  rg_request_begin(c, h, e->hdr.op_in, op_len);
  char *payload_at = e->buf + RG_URING_PREFIX;
  char *start = payload_at - op_len - sizeof(*h);
  memcpy(start, h, sizeof(*h));
  memcpy(start + sizeof(*h), e->hdr.op_in, op_len);
  struct fuse_buf fb = { .mem = start, .size = h->len };
  serving = e;
  fuse_session_process_buf(c->se, &fb);
  serving = NULL;
  if (!e->replied) reply_eio(e); // every ring request needs its commit (libfuse answers all but FORGET)
}

int rg_uring_reply (struct iovec *iov, int count, ssize_t *written) {
  rg_ent_t *e = serving;
  if (e == NULL || e->replied || count < 1 || iov[0].iov_len != sizeof(struct fuse_out_header)) return 0;
  const struct fuse_out_header *h = iov[0].iov_base;
  if (h->unique != e->unique) return 0;
  size_t room = e->ring->c->uring->payload, at = 0;
  char *payload = e->buf + RG_URING_PREFIX;
  for (int i = 1; i < count; i++) {
    if (at + iov[i].iov_len > room) { *written = -1; errno = EINVAL; return 1; }
    memmove(payload + at, iov[i].iov_base, iov[i].iov_len);
    at += iov[i].iov_len;
  }
  memcpy(e->hdr.in_out, h, sizeof(*h));
  e->hdr.ent.payload_sz = (uint32_t) at;
  e->replied = 1;
  *written = (ssize_t) (sizeof(*h) + at);
  return 1;
}

static void *ring_thread (void *arg) {
  rg_ring_t *r = arg;
  // Not pinned to its queue's CPU: measured on 2 CPUs, pinning made a lone process's creates
  // faster (0.73x) and a pipeline's reads slower (1.41x), the server waiting for the CPU its
  // requester's partner held (README, Speed).
  ring_enable(r);
  int live = 0;
  for (int i = 0; i < RG_URING_DEPTH; i++) {
    ring_cmd(r, i, RG_URING_CMD_REGISTER);
    r->ents[i].live = 1;
    live++;
  }
  while (live > 0) {
    int n = (int) syscall(__NR_io_uring_enter, r->fd, r->pending, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) break;
    if (n >= 0) r->pending -= (unsigned) n < r->pending ? (unsigned) n : r->pending;
    unsigned head = *r->cq_head, tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
    for (; head != tail; head++) {
      struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
      int i = (int) cqe->user_data;
      if (i < 0 || i >= RG_URING_DEPTH) continue;
      rg_ent_t *e = &r->ents[i];
      if (cqe->res < 0) { // refused (the connection is back on /dev/fuse), or torn down at unmount
        if (e->live) { e->live = 0; live--; }
        continue;
      }
      __atomic_store_n(&r->c->uring_served, 1, __ATOMIC_RELAXED);
      serve(r, e);
      ring_cmd(r, i, RG_URING_CMD_COMMIT_AND_FETCH);
    }
    __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
  }
  return NULL;
}

static int possible_cpus (void) {
  FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
  if (f == NULL) return -1;
  char line[256];
  int last = -1;
  if (fgets(line, sizeof(line), f)) {
    // "0-3" or "0,2-5": the highest number names the queue count (the kernel's nr_cpu_ids)
    for (char *s = line; *s;) {
      if (*s >= '0' && *s <= '9') { long v = strtol(s, &s, 10); if (v > last) last = (int) v; }
      else s++;
    }
  }
  fclose(f);
  return last + 1;
}

rg_uring_t *rg_uring_prepare (rg_core_t *c) {
  int cpus = possible_cpus();
  if (cpus <= 0 || cpus > 1024) return NULL;
  int n = cpus * RG_URING_THREADS;
  rg_uring_t *u = calloc(1, sizeof(*u) + (size_t) n * sizeof(rg_ring_t));
  if (u == NULL) return NULL;
  u->nrings = n;
  for (int i = 0; i < n; i++) u->rings[i].fd = -1;
  for (int i = 0; i < n; i++) {
    rg_ring_t *r = &u->rings[i];
    r->c = c;
    r->qid = i / RG_URING_THREADS;
    if (ring_setup(r) < 0) { rg_uring_free(u); return NULL; }
  }
  return u;
}

// The kernel holds every request until each queue has an entry; where this process cannot give
// them, one REGISTER it refuses (no buffers) turns the connection back to /dev/fuse.
static void refuse (rg_ring_t *r) {
  ring_enable(r); // a ring whose thread did not start: this thread submits
  ring_cmd(r, 0, RG_URING_CMD_REGISTER);
  struct io_uring_sqe *sqe = (struct io_uring_sqe *) (r->sqes + ((*r->sq_tail - 1) & *r->sq_mask) * 128);
  sqe->len = 0;
  syscall(__NR_io_uring_enter, r->fd, r->pending, 1, IORING_ENTER_GETEVENTS, NULL, 0);
  r->pending = 0;
}

int rg_uring_start (rg_core_t *c, size_t payload) {
  rg_uring_t *u = c->uring;
  u->payload = payload;
  for (int i = 0; i < u->nrings; i++) {
    rg_ring_t *r = &u->rings[i];
    for (int j = 0; j < RG_URING_DEPTH; j++) {
      rg_ent_t *e = &r->ents[j];
      e->ring = r;
      e->buf = malloc(RG_URING_PREFIX + payload);
      if (e->buf == NULL) { refuse(&u->rings[0]); return -ENOMEM; }
      e->iov[0] = (struct iovec) { &e->hdr, sizeof(e->hdr) };
      e->iov[1] = (struct iovec) { e->buf + RG_URING_PREFIX, payload };
    }
  }
  for (int i = 0; i < u->nrings; i++) {
    if (pthread_create(&u->rings[i].thread, NULL, ring_thread, &u->rings[i]) != 0) {
      refuse(&u->rings[u->nrings - 1]);
      return -EAGAIN;
    }
    u->rings[i].started = 1;
  }
  return 0;
}

void rg_uring_free (rg_uring_t *u) {
  if (u == NULL) return;
  for (int i = 0; i < u->nrings; i++) {
    if (u->rings[i].started) pthread_join(u->rings[i].thread, NULL);
    ring_free(&u->rings[i]);
  }
  free(u);
}
