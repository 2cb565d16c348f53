// The core as a Node addon (lib/native/core.ts): mount() starts the session on threads of its
// own; the JS thread hears of queued journal events and of the session's end through uv async
// handles, and drains the events itself (drainEvents).
#include "core.h"
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  napi_env env;
  napi_ref on_events;
  napi_ref on_exit;
  napi_ref on_ready;
} rg_js_t;

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, #call " failed"); return NULL; } } while (0)

static void call_js (rg_core_t *c, napi_ref ref) {
  rg_js_t *js = c->js;
  napi_env env = js->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value fn, global, result;
  napi_get_reference_value(env, ref, &fn);
  napi_get_global(env, &global);
  napi_call_function(env, global, fn, 0, NULL, &result);
  napi_close_handle_scope(env, scope);
}

static void on_events (uv_async_t *a) {
  call_js(a->data, ((rg_js_t *) ((rg_core_t *) a->data)->js)->on_events);
}

static void on_ready (uv_async_t *a) {
  rg_core_t *c = a->data;
  uv_close((uv_handle_t *) &c->ready_async, NULL);
  call_js(c, ((rg_js_t *) c->js)->on_ready);
}

static void on_session_end (uv_async_t *a) {
  rg_core_t *c = a->data;
  pthread_join(c->thread, NULL);
  uv_close((uv_handle_t *) &c->exit_async, NULL);
  call_js(c, ((rg_js_t *) c->js)->on_exit);
}

static void *loop (void *arg) {
  rg_core_t *c = arg;
  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  // Threads serving /dev/fuse, started as requests wait (libfuse's multi-threaded loop). 16 by
  // default; ROFILES_GUARD_FUSE_THREADS for the bench's comparison of thread models.
  const char *threads = getenv("ROFILES_GUARD_FUSE_THREADS");
  int max_threads = threads ? atoi(threads) : 0;
  fuse_loop_cfg_set_max_threads(cfg, max_threads > 0 && max_threads <= 64 ? (unsigned) max_threads : 16);
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  fuse_session_loop_mt(c->se, cfg); // returns once unmounted
  fuse_loop_cfg_destroy(cfg);
  fuse_session_unmount(c->se);
  rg_uring_free(c->uring); // the unmount ended the ring's entries, and with them its threads
  c->uring = NULL;
  uv_async_send(&c->exit_async);
  return NULL;
}

static char *string_arg (napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s) napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

static int bool_arg (napi_env env, napi_value v) {
  bool b = false;
  napi_get_value_bool(env, v, &b);
  return b;
}

// mount(mountpoint, root, mode, allowOther, debug, passthrough, fsname, onEvents, onExit, onReady)
static napi_value mount (napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 10) { napi_throw_type_error(env, NULL, "mount: 10 arguments expected"); return NULL; }
  char *mountpoint = string_arg(env, argv[0]);
  char *fsname = string_arg(env, argv[6]);
  rg_core_t *c = calloc(1, sizeof(*c));
  rg_js_t *js = calloc(1, sizeof(*js));
  int32_t mode = 0;
  napi_get_value_int32(env, argv[2], &mode);
  if (!mountpoint || !fsname || !c || !js || (c->root = string_arg(env, argv[1])) == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  c->mode = mode;
  c->root_fd = open(c->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (c->root_fd < 0) {
    char msg[512];
    snprintf(msg, sizeof(msg), "cannot open %s: %s", c->root, strerror(errno));
    napi_throw_error(env, "MOUNT_FAILED", msg);
    return NULL;
  }
  c->allow_passthrough = bool_arg(env, argv[5]) && rg_may_passthrough();
  const char *uring = getenv("ROFILES_GUARD_FUSE_URING");
  c->allow_uring = !(uring && strcmp(uring, "off") == 0);
  const char *inl = getenv("ROFILES_GUARD_FUSE_INLINE");
  c->inline_serving = !(inl && strcmp(inl, "off") == 0);
  pthread_mutex_init(&c->reader, NULL);
  c->serial = 1;
  pthread_mutex_init(&c->ev_mut, NULL);
  rg_nodes_init(c);

  char opts[1024];
  snprintf(opts, sizeof(opts), "fsname=%s,subtype=%s,default_permissions,auto_unmount%s", fsname, fsname,
           bool_arg(env, argv[3]) ? ",allow_other" : "");
  char *args_v[] = { "rofiles-guard", "-o", opts, "-d", NULL };
  struct fuse_args args = FUSE_ARGS_INIT(bool_arg(env, argv[4]) ? 4 : 3, args_v);
  c->se = fuse_session_new(&args, &rg_ops, sizeof(rg_ops), c);
  if (c->se == NULL || fuse_session_mount(c->se, mountpoint) != 0) {
    if (c->se) fuse_session_destroy(c->se);
    char msg[512];
    snprintf(msg, sizeof(msg), "libfuse could not mount %s (its message is above)", mountpoint);
    napi_throw_error(env, "MOUNT_FAILED", msg);
    return NULL;
  }
  fuse_session_custom_io(c->se, &rg_io, fuse_session_fd(c->se));

  js->env = env;
  napi_create_reference(env, argv[7], 1, &js->on_events);
  napi_create_reference(env, argv[8], 1, &js->on_exit);
  napi_create_reference(env, argv[9], 1, &js->on_ready);
  c->js = js;
  uv_loop_t *uv;
  napi_get_uv_event_loop(env, &uv);
  uv_async_init(uv, &c->ev_async, on_events);
  c->ev_async.data = c;
  uv_unref((uv_handle_t *) &c->ev_async);
  // Kept referenced: a detached mount's process has nothing else keeping it alive.
  uv_async_init(uv, &c->exit_async, on_session_end);
  uv_async_init(uv, &c->ready_async, on_ready);
  c->ready_async.data = c;
  c->exit_async.data = c;
  pthread_create(&c->thread, NULL, loop, c);
  free(mountpoint);
  free(fsname);
  napi_value handle;
  CHECK(napi_create_external(env, c, NULL, NULL, &handle));
  return handle;
}

static rg_core_t *core_arg (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *c = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], &c) != napi_ok) {
    napi_throw_type_error(env, NULL, "a mount handle expected");
    return NULL;
  }
  return c;
}

static void set (napi_env env, napi_value arr, uint32_t i, napi_value v) {
  napi_set_element(env, arr, i, v);
}

// A prior state for JS: null (did not exist, or not taken) or
// [mode, uid, gid, size, mtimeSec, mtimeNsec, ino, symlinkTarget|null, xattrLines|null].
static napi_value prior_value (napi_env env, const rg_prior_t *p) {
  napi_value out, v;
  if (!p->exists) { napi_get_null(env, &out); return out; }
  double f[7] = { p->st.st_mode, p->st.st_uid, p->st.st_gid, (double) p->st.st_size,
                  (double) p->st.st_mtim.tv_sec, (double) p->st.st_mtim.tv_nsec, (double) p->st.st_ino };
  napi_create_array_with_length(env, 9, &out);
  for (uint32_t i = 0; i < 7; i++) { napi_create_double(env, f[i], &v); set(env, out, i, v); }
  const char *strs[2] = { p->target, p->xattrs };
  for (uint32_t i = 0; i < 2; i++) {
    if (strs[i]) napi_create_string_utf8(env, strs[i], NAPI_AUTO_LENGTH, &v);
    else napi_get_null(env, &v);
    set(env, out, 7 + i, v);
  }
  return out;
}

// drainEvents(handle) -> [op, path, outcome, path2|null, prior, prior2, ...] (see prior_value)
// plus, last, the number dropped since the last drain.
static napi_value drain_events (napi_env env, napi_callback_info info) {
  rg_core_t *c = core_arg(env, info);
  if (c == NULL) return NULL;
  pthread_mutex_lock(&c->ev_mut);
  rg_event_t *e = c->ev_head;
  uint32_t dropped = c->ev_dropped;
  c->ev_head = c->ev_tail = NULL;
  c->ev_count = c->ev_dropped = 0;
  pthread_mutex_unlock(&c->ev_mut);
  napi_value out, v;
  napi_create_array(env, &out);
  uint32_t i = 0;
  while (e) {
    napi_create_string_utf8(env, e->op, NAPI_AUTO_LENGTH, &v); set(env, out, i++, v);
    napi_create_string_utf8(env, e->path, NAPI_AUTO_LENGTH, &v); set(env, out, i++, v);
    napi_create_int32(env, e->outcome, &v); set(env, out, i++, v);
    if (e->path2) napi_create_string_utf8(env, e->path2, NAPI_AUTO_LENGTH, &v); else napi_get_null(env, &v);
    set(env, out, i++, v);
    set(env, out, i++, prior_value(env, &e->prior[0]));
    set(env, out, i++, prior_value(env, &e->prior[1]));
    rg_event_t *next = e->next;
    free(e);
    e = next;
  }
  napi_create_uint32(env, dropped, &v);
  set(env, out, i, v);
  return out;
}

// One number per counted request kind, from counts indexed by opcode: { lookup: n, ... }.
static napi_value by_kind (napi_env env, const uint64_t *counts) {
  napi_value out, v;
  napi_create_object(env, &out);
#define RG_STAT_PROP(name, opcode) \
  napi_create_double(env, (double) __atomic_load_n(&counts[opcode], __ATOMIC_RELAXED), &v); \
  napi_set_named_property(env, out, #name, v);
  RG_COUNTED(RG_STAT_PROP)
#undef RG_STAT_PROP
  return out;
}

// stats(handle) -> { passthrough, uring, requests: { lookup: n, ... }, serverNs: { lookup: ns, ... } }
static napi_value stats (napi_env env, napi_callback_info info) {
  rg_core_t *c = core_arg(env, info);
  if (c == NULL) return NULL;
  napi_value out, v;
  napi_create_object(env, &out);
  napi_get_boolean(env, c->passthrough, &v);
  napi_set_named_property(env, out, "passthrough", v);
  napi_get_boolean(env, __atomic_load_n(&c->uring_served, __ATOMIC_RELAXED), &v);
  napi_set_named_property(env, out, "uring", v);
  napi_set_named_property(env, out, "requests", by_kind(env, c->requests));
  napi_set_named_property(env, out, "serverNs", by_kind(env, c->server_ns));
  return out;
}

static napi_value init (napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "mount", NULL, mount, NULL, NULL, NULL, napi_default, NULL },
    { "drainEvents", NULL, drain_events, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, stats, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
