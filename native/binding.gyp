{
  "targets": [{
    "target_name": "sysops",
    "sources": ["sysops.c", "copyup.c", "policy.c", "abi.c"],
    "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
  }, {
    "target_name": "core",
    "sources": ["core/addon.c", "core/ops.c", "core/nodes.c", "core/journal.c", "core/reach.c",
                "core/passthrough.c", "core/uring.c", "copyup.c", "policy.c"],
    "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3)"],
    "libraries": ["<!@(pkg-config --libs fuse3)"]
  }, {
    "target_name": "hook-exec",
    "type": "executable",
    "sources": ["hook-exec.c"],
    "cflags": ["-O2", "-Wall", "-Wextra"]
  }]
}
