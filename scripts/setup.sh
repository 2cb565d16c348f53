#!/usr/bin/env bash
# Brings a fresh Debian machine to the point where `npm test` and `npm run demo` run: the Debian
# packages, `npm ci` (which builds the patched fuse-native copy and our addon), and the TypeScript
# build. Each step is skipped when already done, so running it again costs a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

say () { echo "setup: $*" >&2; }

# Runtime: fuse3 (fusermount3: mounts as a user, and auto-unmount), libfuse2 (the TypeScript
# reference server's fuse-native links libfuse.so.2), ostree (repos in the demo and tests,
# rofiles-fuse for comparison), bubblewrap (hook sandboxes). Build: libfuse3-dev and pkg-config
# (the native core), g++, make, python3 (node-gyp) and patch. `setup.sh test` (npm test,
# npm run setup) also needs attr (setfattr/getfattr), acl (setfacl: /dev/fuse for the test
# user), bindfs (a backing filesystem that refuses xattr writes, in a fault test), libcap2-bin
# (setcap/getcap: a hook's capabilities) and man-db (the man page after a global install).
pkgs=(fuse3 libfuse3-dev pkg-config libfuse2 ostree bubblewrap)
[ "${1:-test}" = demo ] || pkgs+=(attr acl bindfs libcap2-bin man-db)
need_pkgs=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
for pair in g++:g++ make:make python3:python3 patch:patch; do
  command -v "${pair%%:*}" >/dev/null || need_pkgs+=("${pair##*:}")
done
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: ${need_pkgs[*]}; as root, run: apt-get install ${need_pkgs[*]}"
    exit 1
  fi
  say "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file; its postinstall builds the
# native parts (into native/build). A build that went missing on its own is redone without a full
# npm ci. A node_modules/fuse-native that an older rofiles-guard patched in place (it carries the
# marker .rofiles-guard-patch) is replaced by a pristine one: the build now only reads it.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
   [ -e node_modules/fuse-native/.rofiles-guard-patch ]; then
  say "npm ci"
  npm ci --no-audit --no-fund >&2
else
  node scripts/build-native.mjs
fi

# TypeScript build when any source is newer than the last build.
stamp=dist/.build-stamp
if [ ! -f "$stamp" ] || [ -n "$(find lib native-bindings.d.ts tsconfig.json package.json -newer "$stamp" -print -quit)" ]; then
  say "building TypeScript"
  npm run --silent build
  touch "$stamp"
fi
