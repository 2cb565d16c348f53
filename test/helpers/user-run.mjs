// Run by test/unprivileged.test.ts as an ordinary user (setpriv): one job, given as JSON in
// argv[2], done with the package as a hook author would use it; the result as JSON on stdout.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import { join } from 'node:path'
import { HookFailedError, mountGuard, runHooks } from '../../dist/index.js'

const job = JSON.parse(process.argv[2])

function state (p) {
  const st = fs.lstatSync(p, { throwIfNoEntry: false })
  if (!st) return null
  return { ino: st.ino, nlink: st.nlink, mode: st.mode & 0o7777, uid: st.uid, size: st.size, mtimeMs: st.mtimeMs }
}

function xattrs (p) {
  try { return execFileSync('getfattr', ['-h', '-d', '-m', '-', '--absolute-names', p], { encoding: 'utf8' }) } catch { return '' }
}

function outcome (fn) {
  try { fn(); return 'ok' } catch (err) {
    if (typeof err.stderr === 'string' || Buffer.isBuffer(err.stderr)) {
      const msg = String(err.stderr)
      if (msg.includes('Read-only file system')) return 'EROFS'
      if (msg.includes('Operation not permitted')) return 'EPERM'
      return `exit ${err.status}: ${msg.trim()}`
    }
    return err.code ?? String(err)
  }
}

function write (p, flags, data) {
  const fd = fs.openSync(p, flags)
  try { if (data !== undefined) fs.writeSync(fd, data) } finally { fs.closeSync(fd) }
}

const sh = (cmd, args) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })

/** What a hook author's hook does to a file, by name: `op path`. */
const OPS = {
  'open O_WRONLY': p => write(p, C.O_WRONLY, 'W'),
  'open O_RDONLY|O_TRUNC': p => write(p, C.O_RDONLY | C.O_TRUNC),
  'open O_WRONLY|O_APPEND': p => write(p, C.O_WRONLY | C.O_APPEND, 'APPENDED'),
  truncate: p => fs.truncateSync(p, 3),
  chmod: p => fs.chmodSync(p, 0o600),
  utimens: p => fs.utimesSync(p, 1000, 2000),
  setxattr: p => sh('setfattr', ['-n', 'user.added', '-v', '1', p]),
  removexattr: p => sh('setfattr', ['-x', 'user.origin', p]),
  read: p => fs.readFileSync(p),
  create: p => fs.writeFileSync(p + '.new', 'n'),
  mkdir: p => fs.mkdirSync(p + '.dir'),
  unlink: p => fs.unlinkSync(p),
  rename: p => fs.renameSync(p, p + '.moved'),
  link: p => fs.linkSync(p, p + '.hl'),
  symlink: p => fs.symlinkSync('x', p + '.sym'),
  mkfifo: p => sh('mkfifo', [p + '.fifo'])
}

async function row () {
  const co = job.co
  sh('ostree', ['checkout', `--repo=${job.repo}`, '-U', '-H', job.ref, co])
  fs.writeFileSync(join(co, 'var/plain'), 'plain file\n')
  sh('setfattr', ['-n', 'user.origin', '-v', 'local', join(co, 'var/plain')])
  const before = state(join(co, job.path))
  const guard = await mountGuard(co, { mode: job.mode })
  const got = outcome(() => OPS[job.op](join(guard.mountpoint, job.path)))
  const { core, passthrough, uring } = await guard.stats()
  await guard.unmount()
  return { outcome: got, before, after: state(join(co, job.path)), xattrs: xattrs(join(co, job.path)), served: { core, passthrough }, uring }
}

async function hooks () {
  try {
    return { report: await runHooks({ root: job.root, hooksDir: job.hooksDir, mode: job.mode, sandbox: job.sandbox, ...(job.engine ? { engine: job.engine } : {}) }) }
  } catch (err) {
    if (err instanceof HookFailedError) return { error: err.message, report: err.report }
    return { error: err.message, code: err.code }
  }
}

const result = job.kind === 'row' ? await row() : await hooks()
process.stdout.write(JSON.stringify(result))
