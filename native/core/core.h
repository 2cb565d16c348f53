#ifndef ROFILES_GUARD_CORE_H
#define ROFILES_GUARD_CORE_H
// rofiles-guard's native core: a libfuse 3 low-level server (native/core/*.c), loaded by the
// server process as an addon (lib/native/core.ts). One node per *name*, not per inode: the kernel
// sends OPEN and SETATTR with a node id only, and a copy-up must break the link at the name the
// hook used, not at some other name of the same repository object.
#define FUSE_USE_VERSION 314
#define _GNU_SOURCE
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uv.h>
#include "../guard-abi.h"

// The kernel keeps names and attributes this long: only this mount changes the root while it is
// mounted, and every change the guard makes behind the kernel's back (a copy-up, another name's
// link count) is invalidated explicitly (rg_inval_ino, rg_inval_node).
#define RG_TIMEOUT 86400.0

typedef struct rg_node {
  struct rg_node *parent; // NULL for the root
  char *name;             // NULL for the root
  uint64_t nlookup;       // the kernel's references (LOOKUP, READDIRPLUS, CREATE... minus FORGET)
  uint32_t refs;          // children and open handles: keeps parent and name alive
  uint64_t generation;
  dev_t dev;              // the backing inode last seen under this name
  ino_t ino;
  int hashed;             // reachable by (parent, name); 0 once its name was removed
  int replaced;           // unhashed because its name was found on another inode (changed outside
                          // the mount): requests on it get ESTALE, and the kernel looks the name up
  int nameless_fd;        // an O_PATH descriptor on the inode of a removed name still open, or -1
  int fd;                 // a directory's O_PATH descriptor once opened (rg_dir_fd), or -1
  int open;               // open file handles
  uint32_t copy_gen;      // bumped by every copy-up of this name
  int stale_handles;      // open handles from before the last copy-up (their pages are the object's)
  int backing_id;         // passthrough: the backing file its passthrough handles share, 0 none
  dev_t backing_dev;      // and its inode
  ino_t backing_ino;
  int pt_handles;         // passthrough handles open on backing_id
  struct rg_node *next_name, *next_ino;
} rg_node_t;

typedef struct {
  int fd;
  rg_node_t *node;
  uint32_t copy_gen;
  int backing_id;         // the node's backing_id this handle holds, 0 none
} rg_handle_t;

// What a path was just before a change reached it (the journal's net effect compares it with the
// path after the hook).
typedef struct {
  int exists;
  struct stat st;
  char *target;           // a symlink's target (malloc'd)
  char *xattrs;           // "name=hexvalue\n" lines by name (malloc'd)
} rg_prior_t;

typedef struct rg_event {
  struct rg_event *next;
  int32_t outcome;        // enum rg_outcome, else -errno
  char op[16];
  char *path2;
  rg_prior_t prior[2];
  char path[];
} rg_event_t;

typedef struct rg_uring rg_uring_t;

typedef struct rg_core {
  struct fuse_session *se;
  char *root;             // the backing root's path
  int root_fd;            // O_PATH on it
  int mode;               // enum rg_mode
  int allow_passthrough;  // asked for and privileged
  int passthrough;        // negotiated at INIT
  uint64_t init_unique;   // the INIT request's, until its reply is written
  int init_pt;            // the kernel offers passthrough and the server may use it
  int killpriv;           // FUSE_HANDLE_KILLPRIV_V2 negotiated: set-id bits are the server's to kill
  int inline_serving;     // the /dev/fuse reader serves quick requests itself (passthrough.c)
  pthread_mutex_t reader; // held by the one thread reading /dev/fuse
  int serial;             // requests come one at a time: the reader serves them (else all read)
  int overlap;            // how often requests overlapped lately (0-1024, passthrough.c)
  int busy;               // requests in service
  uv_async_t ready_async; // the INIT reply is written: the mount serves
  uint64_t requests[64];  // by opcode (atomic adds)
  uint64_t server_ns[64]; // by opcode: from a request's arrival in the server to its reply written
  int allow_uring;        // ROFILES_GUARD_FUSE_URING is not "off"
  rg_uring_t *uring;      // the rings, made at INIT where the kernel offers them
  int init_uring;         // the INIT reply accepts the ring
  int uring_served;       // a request came through the ring
  // event queue for JS
  pthread_mutex_t ev_mut;
  rg_event_t *ev_head, *ev_tail;
  uint32_t ev_count, ev_dropped;
  uv_async_t ev_async;
  uv_async_t exit_async;
  pthread_t thread;
  void *js;               // the addon's per-mount JS state
} rg_core_t;

extern const struct fuse_lowlevel_ops rg_ops;

// nodes.c
void rg_nodes_init(rg_core_t *c);
rg_node_t *rg_node(fuse_ino_t id);
fuse_ino_t rg_node_id(rg_node_t *n);
void rg_lock(void);
void rg_unlock(void);
// The node of `name` in `parent` with one more kernel reference, created if new, or where the
// name's node is on another inode than st's (changed outside the mount): that node is unhashed
// (replaced) and a new one made, so the kernel never sees one node change its inode.
rg_node_t *rg_node_ref(rg_node_t *parent, const char *name, const struct stat *st);
void rg_node_forget(rg_node_t *n, uint64_t count);
void rg_node_release(rg_node_t *n);
rg_node_t *rg_node_find(rg_node_t *parent, const char *name);
// The path of a node ("/a/b", "/" for the root), or of name in parent; malloc'd; NULL if ENOMEM.
char *rg_node_path(rg_node_t *n);
char *rg_child_path(rg_node_t *parent, const char *name);
void rg_node_detach(rg_node_t *n, int nameless_fd);
void rg_node_move(rg_node_t *n, rg_node_t *parent, const char *name);
// The copy-up's version: the node is on the copy (st) from now on, the same node for the kernel.
void rg_node_set_inode(rg_node_t *n, const struct stat *st);
// Whether n is hashed and on the inode of st.
int rg_node_is(rg_node_t *n, const struct stat *st);
// Inodes a hook made into objects by linking them through the mount (not a repository's).
void rg_linked_add(const struct stat *st);
int rg_linked_has(const struct stat *st);
// Invalidates the kernel's attributes of every name of inode (dev, ino) it knows, except `skip`.
void rg_inval_ino(rg_core_t *c, dev_t dev, ino_t ino, rg_node_t *skip);
void rg_inval_node(rg_core_t *c, rg_node_t *n);

// reach.c: where a name is, for the system calls on it
typedef struct {
  int dirfd;          // its directory (the node's descriptor, or the root's)
  int own;            // dirfd was opened for this location alone (no descriptor to spare)
  char name[256];     // one name ("." for the root), never a path
  char proc[320];     // "/proc/self/fd/<dirfd>/<name>": for calls without an *at form
} rg_loc_t;
int rg_dir_fd(rg_core_t *c, rg_node_t *dir);
void rg_dir_fd_closed(void);
int rg_loc_child(rg_core_t *c, rg_node_t *parent, const char *name, rg_loc_t *l);
// -ENOENT for a node whose name was removed.
int rg_loc_node(rg_core_t *c, rg_node_t *n, rg_loc_t *l);
// Releases what a location holds (after rg_loc_child/rg_loc_node succeeded).
void rg_loc_done(rg_loc_t *l);

// journal.c
void rg_prior_details(const rg_loc_t *l, rg_prior_t *p);
// The prior state of the inode open as fd (an O_PATH descriptor will do), stat'd as st.
void rg_prior_fd(int fd, const struct stat *st, rg_prior_t *p);
void rg_prior(const rg_loc_t *l, rg_prior_t *p);
void rg_prior_free(rg_prior_t *p);
void rg_event_p(rg_core_t *c, const char *op, const char *path, const char *path2, int32_t outcome,
                const rg_prior_t *p1, const rg_prior_t *p2);
void rg_event(rg_core_t *c, const char *op, const char *path, int32_t outcome);

// passthrough.c: the session's reads and writes of /dev/fuse (counted; INIT and open replies
// completed for kernel passthrough)
extern const struct fuse_custom_io rg_io;
// Whether this process has CAP_SYS_ADMIN, which registering a backing file needs.
int rg_may_passthrough(void);
// Registers fd as the backing file of n's passthrough opens (or reuses n's): the id, 0 when this
// open is to be served the ordinary way, -EBUSY when n's passthrough handles are on another
// inode (the kernel keeps one backing file per inode while any is open).
int rg_backing_get(rg_core_t *c, rg_node_t *n, int fd);
void rg_backing_put(rg_core_t *c, rg_node_t *n, int id);
// Around fuse_reply_open/fuse_reply_create: the reply this thread sends next carries `id`.
void rg_reply_backing(int id);
// The time the server spends on a request, from its arrival to its reply (passthrough.c): begun
// where the request is read (or taken from the ring), ended where its reply is sent.
struct fuse_in_header;
void rg_request_begin(rg_core_t *c, const struct fuse_in_header *h, const void *in, size_t len);
// Before anything that may wait long or on a lock a caller may hold (waiting for another copy-up,
// a long copy, dropping an entry): the thread stops being the one that reads /dev/fuse, so that
// another reads meanwhile (passthrough.c).
void rg_step_down(void);
// The request being served carries FUSE_OPEN_KILL_SUIDGID or FUSE_WRITE_KILL_SUIDGID (where
// FUSE_HANDLE_KILLPRIV_V2 was negotiated): the caller lacks CAP_FSETID, and the file's set-id bits
// go with an O_TRUNC open or a write, as they would on the backing filesystem.
int rg_request_kills_suidgid(void);
void rg_request_end(rg_core_t *c, uint64_t unique);
// uring.c: FUSE over io_uring. Made while INIT is handled (NULL where no ring can be made), started
// once the INIT reply is written; freed (threads joined) after the session ends.
rg_uring_t *rg_uring_prepare(rg_core_t *c);
int rg_uring_start(rg_core_t *c, size_t payload);
void rg_uring_free(rg_uring_t *u);
// In the session's writev: takes a reply to the ring request this thread serves (1, *written set).
int rg_uring_reply(struct iovec *iov, int count, ssize_t *written);
// The number of requests of each kind so far, as "name count" pairs for JS (addon.c).
#define RG_COUNTED(X) X(lookup, 1) X(forget, 2) X(getattr, 3) X(setattr, 4) X(readlink, 5) X(symlink, 6) \
  X(mknod, 8) X(mkdir, 9) X(unlink, 10) X(rmdir, 11) X(rename, 12) X(link, 13) X(open, 14) X(read, 15) \
  X(write, 16) X(statfs, 17) X(release, 18) X(fsync, 20) X(setxattr, 21) X(getxattr, 22) X(listxattr, 23) \
  X(removexattr, 24) X(flush, 25) X(opendir, 27) X(readdir, 28) X(create, 35) X(fallocate, 43) \
  X(readdirplus, 44) X(rename2, 45) X(lseek, 46) X(copy_file_range, 47)
#endif
