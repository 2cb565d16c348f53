{
  "targets": [{
    "target_name": "sysops",
    "sources": ["sysops.c", "copyup.c", "policy.c", "abi.c"],
    "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
  }, {
    "target_name": "hook-exec",
    "type": "executable",
    "sources": ["hook-exec.c"],
    "cflags": ["-O2", "-Wall", "-Wextra"]
  }]
}
