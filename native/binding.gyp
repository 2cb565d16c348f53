{
  "targets": [{
    "target_name": "sysops",
    "sources": ["sysops.c"],
    "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
  }]
}
