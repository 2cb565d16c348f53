// Workloads: each a real program run against the directory under test. `run(dir, i)` returns
// the seconds the measured part took; `cold` ones drop the page cache first.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { dropCaches } from './targets.mjs'

function timed (cmd, args, opts = {}) {
  const t = process.hrtime.bigint()
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26, ...opts })
  const s = Number(process.hrtime.bigint() - t) / 1e9
  if (r.status !== 0 && !opts.anyStatus) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${String(r.stderr).slice(0, 300)}`)
  return s
}

const sh = (script, opts) => timed('sh', ['-c', script], opts)

const HEADERS = ['stdio.h', 'stdlib.h', 'string.h', 'unistd.h', 'fcntl.h', 'errno.h', 'signal.h', 'time.h',
  'pthread.h', 'sys/socket.h', 'sys/stat.h', 'sys/types.h', 'sys/mman.h', 'sys/wait.h', 'sys/ioctl.h',
  'netinet/in.h', 'arpa/inet.h', 'netdb.h', 'poll.h', 'sys/epoll.h', 'dirent.h', 'locale.h', 'wchar.h',
  'math.h', 'regex.h', 'glob.h', 'termios.h', 'sys/xattr.h', 'linux/fs.h', 'linux/fuse.h', 'linux/input.h',
  'linux/netlink.h', 'linux/if.h', 'linux/videodev2.h', 'linux/perf_event.h', 'linux/bpf.h']

function gccInclude () {
  return spawnSync('gcc', ['-print-file-name=include'], { encoding: 'utf8' }).stdout.trim()
}

export const WORKLOADS = [
  { id: 'walk', label: 'stat walk', run: d => timed('find', [d, '-printf', '%s\n']) },
  { id: 'find-size', label: 'find -type f -printf %s', run: d => timed('find', [d, '-type', 'f', '-printf', '%s\n']) },
  { id: 'read', label: 'read all', run: d => sh(`find '${d}' -type f -print0 | xargs -0 cat > /dev/null`) },
  { id: 'grep', label: 'grep -r', run: d => timed('grep', ['-r', '-c', 'define', d], { anyStatus: true }) },
  {
    id: 'compile',
    label: 'gcc -fsyntax-only',
    run: (d, i) => {
      const src = join(d, `.bench-compile-${i}.c`)
      fs.writeFileSync(src, HEADERS.map(h => `#include <${h}>`).join('\n') + '\nint main(void) { return 0; }\n')
      try {
        const arch = fs.existsSync(join(d, 'x86_64-linux-gnu')) ? ['-isystem', join(d, 'x86_64-linux-gnu')] : []
        return timed('gcc', ['-fsyntax-only', '-nostdinc', '-isystem', gccInclude(), ...arch, '-isystem', d, src])
      } finally { fs.rmSync(src, { force: true }) }
    },
    needs: d => fs.existsSync(join(d, 'stdio.h'))
  },
  { id: 'walk-cold', label: 'stat walk (cold)', cold: true, run: d => timed('find', [d, '-printf', '%s\n']) },
  { id: 'read-cold', label: 'read all (cold)', cold: true, run: d => sh(`find '${d}' -type f -print0 | xargs -0 cat > /dev/null`) },
  {
    id: 'small',
    label: 'create+delete 2000 files',
    run: (d, i) => sh(`mkdir '${d}/.small${i}' && cd '${d}/.small${i}' && i=0; while [ $i -lt 2000 ]; do echo x > f$i; i=$((i+1)); done; cd / && rm -rf '${d}/.small${i}'`)
  },
  {
    id: 'write',
    label: 'write 256 MiB',
    run: (d, i) => sh(`dd if=/dev/zero of='${d}/.big${i}' bs=1M count=256 conv=fsync status=none`),
    after: (d, i) => fs.rmSync(join(d, `.big${i}`), { force: true })
  },
  {
    id: 'read-big',
    label: 'read 256 MiB (cold)',
    // One file for the whole run, made once in the fixture directory (the checkouts' filesystem),
    // written back and read once, then hardlinked into each checkout: no measurement competes
    // with the host still writing the file, every target starts with it in the host's cache (a
    // VM's disk is cached by its host) and, caches dropped before the run, out of this machine's.
    before: (d, i, ctx) => {
      const file = join(ctx.cache, 'read-256MiB.bin')
      if (!fs.existsSync(file)) spawnSync('sh', ['-c', `head -c 268435456 /dev/zero > '${file}.tmp' && sync && cat '${file}.tmp' > /dev/null && mv '${file}.tmp' '${file}'`])
      fs.linkSync(file, join(ctx.co, '.bigr'))
    },
    cold: true,
    run: d => sh(`cat '${d}/.bigr' > /dev/null`),
    after: (d, i, ctx) => fs.rmSync(join(ctx.co, '.bigr'), { force: true })
  },
  {
    id: 'copyup',
    label: 'chmod 1000 objects',
    // Breaks 1000 hardlinks in copyup modes; refused (EROFS) in deny mode: the cost of each.
    run: d => timed('find', [join(d, 'cu'), '-type', 'f', '-exec', 'chmod', '600', '{}', '+'], { anyStatus: true }),
    once: true
  },
  {
    id: 'tar',
    label: 'tar x linux/ headers',
    // The fixture's linux/ headers (or its first directory) as a tarball, made once, extracted into the target.
    before: (d, i, ctx) => {
      const tarball = join(ctx.cache, 'extract.tar')
      if (!fs.existsSync(tarball)) spawnSync('tar', ['-cf', tarball, '-C', ctx.co, ctx.subpath.slice(1)])
    },
    run: (d, i, ctx) => {
      fs.mkdirSync(join(d, `.tar${i}`))
      return timed('tar', ['-xf', join(ctx.cache, 'extract.tar'), '-C', join(d, `.tar${i}`)])
    },
    after: (d, i) => fs.rmSync(join(d, `.tar${i}`), { recursive: true, force: true })
  },
  {
    id: 'hooks',
    label: 'upgrade-hook style',
    // What upgrade hooks do to a root, on the tree's first directory: sed -i of 20 files (temp
    // file, rename over the object), a cache built from a walk (ldconfig, update-mime), a
    // useradd-style lock + write + rename, update-alternatives-style symlinks, mkdir + chmod.
    run: (d, i, ctx) => {
      const sub = join(d, ctx.subpath.slice(1))
      return sh(`set -e; cd '${sub}'
        find . -maxdepth 1 -type f -name '*.h' | sort | head -20 | xargs sed -i 's/define/define/'
        find . -type f -printf '%p %s\n' | sort > '${d}/.cache${i}'
        : > '${d}/.lock${i}'; cat '${d}/.cache${i}' > '${d}/.db${i}+'; mv '${d}/.db${i}+' '${d}/.db${i}'; rm '${d}/.lock${i}'
        mkdir -p '${d}/.alt${i}'; for n in 1 2 3 4 5 6 7 8 9 10; do ln -sf "../$n" '${d}/.alt${i}/'$n; done
        chmod -R go-w '${d}/.alt${i}'`)
    },
    after: (d, i) => { for (const f of [`.cache${i}`, `.db${i}`, `.alt${i}`]) fs.rmSync(join(d, f), { recursive: true, force: true }) }
  },
  {
    id: 'checkout',
    label: 'ostree checkout -U (linux/)',
    // A subtree (763 files of /usr/include): file creation dominates, and it is slow on any disk.
    run: (d, i, ctx) => timed('ostree', ['checkout', `--repo=${ctx.repo}`, '-U', `--subpath=${ctx.subpath}`, 'main', join(d, `.co${i}`)]),
    after: (d, i) => fs.rmSync(join(d, `.co${i}`), { recursive: true, force: true })
  }
]

export { dropCaches }
