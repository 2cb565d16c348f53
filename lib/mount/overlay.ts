/**
 * The kernel engine: each hook runs in a mount namespace of its own (a user namespace too, as an
 * ordinary user), where the root is seen through overlayfs (copyup: the root as the lower
 * layer, an upper and work dir private to the hook on the root's filesystem) or a read-only
 * bind (readonly: EROFS at the syscall). A PID namespace of its own ends every process of the
 * hook with it, and with them the mount. Then the upper dir is applied to the root
 * (lib/mount/upper.ts), so the next hook sees the result. No FUSE at all.
 */
import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { GuardError } from '../errors.js'
import { logger } from '../log.js'
import type { Mode } from '../policy.js'
import { isRoot } from '../proc.js'
import type { HookActivity } from '../server/journal.js'
import type { HookView, Launch } from './view.js'
import { isOsTree, mountpointFor } from './preflight.js'
import { applyUpper, copyDirAttrs } from './upper.js'

const log = logger('overlay')
const run = promisify(execFile)

/** Made in the new namespaces before the hook: mounts the view at $3, then runs the hook in it. */
const MOUNT_AND_RUN = [
  'set -e',
  'kind=$1 src=$2 m=$3; shift 3',
  'if [ "$kind" = overlay ]; then mount -t overlay rofiles-guard -o "$src" "$m"',
  'else mount --bind "$src" "$m"; mount -o remount,bind,ro "$m"; fi',
  'cd "$m"',
  'exec "$@"'
].join('\n')

/** The namespaces of a hook's view: mount and PID (and user, as an ordinary user). */
function unshareArgs (): string[] {
  return ['unshare', ...(isRoot() ? [] : ['--user', '--map-root-user']), '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--']
}

/** overlayfs escapes `\`, `:` and `,` in layer paths with a backslash. */
const esc = (p: string): string => p.replace(/[\\:,]/g, c => `\\${c}`)

export function overlayOptions (lowers: string[], upper: string | null, work: string | null): string {
  const o = [`lowerdir=${lowers.map(esc).join(':')}`]
  if (upper !== null && work !== null) o.push(`upperdir=${esc(upper)}`, `workdir=${esc(work)}`)
  o.push(isRoot() ? 'redirect_dir=off,index=off,metacopy=off,xino=off' : 'userxattr')
  return o.join(',')
}

/** A scratch directory beside `root`, on its filesystem (the upper dir must be). */
function scratchBeside (root: string): string {
  const dir = fs.mkdtempSync(join(dirname(root), `.rofiles-guard-overlay-${process.pid}-`))
  if (fs.statSync(dir).dev !== fs.statSync(root).dev) {
    fs.rmSync(dir, { recursive: true, force: true })
    throw new GuardError('ENGINE_UNAVAILABLE', `${dirname(root)} is not on the filesystem of ${root}`)
  }
  return dir
}

/** Removes a scratch dir, work dirs (mode 0 as overlayfs leaves them) included. */
function removeScratch (dir: string): void {
  const open = (p: string): void => {
    let st: fs.Stats
    try { st = fs.lstatSync(p) } catch { return }
    if (!st.isDirectory()) return
    try { fs.chmodSync(p, 0o700) } catch { /* not ours: rm says so */ }
    for (const n of fs.readdirSync(p)) open(join(p, n))
  }
  open(dir)
  fs.rmSync(dir, { recursive: true, force: true })
}

const probed = new Map<string, string | null>()

/**
 * Why the kernel engine cannot serve `root` here (no unshare, user namespaces refused, no
 * overlayfs, no room beside the root), or null: an overlay is mounted in namespaces of its own,
 * as a hook's would be. Asked once per filesystem.
 */
export async function kernelUnavailable (root: string): Promise<string | null> {
  let key: string
  try { key = `${fs.statSync(root).dev}` } catch { return `${root} cannot be read` }
  if (probed.has(key)) return probed.get(key)!
  let why: string | null = null
  let dir: string | null = null
  try {
    dir = scratchBeside(root)
    for (const d of ['lower', 'upper', 'work', 'm']) fs.mkdirSync(join(dir, d))
    await run(unshareArgs()[0]!, [...unshareArgs().slice(1), '/bin/sh', '-c', MOUNT_AND_RUN, 'probe', 'overlay',
      overlayOptions([join(dir, 'lower')], join(dir, 'upper'), join(dir, 'work')), join(dir, 'm'), 'true'], { timeout: 10_000 })
  } catch (err) {
    const e = err as { code?: string, stderr?: string, message: string }
    why = e.code === 'ENOENT'
      ? 'unshare is not installed (Debian package util-linux)'
      : err instanceof GuardError ? err.message
        : e.code === 'EACCES' || e.code === 'EROFS' ? `no upper dir can be made beside the root in ${dirname(root)} (${e.code})`
          : `an overlay cannot be mounted in a namespace of its own here (${(e.stderr ?? e.message).trim().split('\n').at(-1) ?? ''})`
  } finally {
    if (dir !== null) removeScratch(dir)
  }
  probed.set(key, why)
  log('kernel engine on %s: %s', root, why ?? 'available')
  return why
}

class KernelView implements HookView {
  readonly engine = 'kernel'
  readonly pid = null
  readonly error = null
  private hook = 0
  private upper: string | null = null
  private work: string | null = null

  constructor (
    readonly root: string,
    readonly mountpoint: string,
    private readonly mode: Mode,
    private readonly scratch: string,
    /** On an ostree OS tree: a layer above the root holding only `etc -> usr/etc`. */
    private readonly alias: string | null,
    private readonly ownsMountpoint: boolean,
    /** Instead of applying each hook's upper dir to the root: hand it over, with the net effect. */
    private readonly keepUpper: KeepUpper | null = null
  ) {}

  async begin (): Promise<void> {
    if (this.mode !== 'copyup') return
    this.hook++
    this.upper = join(this.scratch, `upper-${this.hook}`)
    this.work = join(this.scratch, `work-${this.hook}`)
    fs.mkdirSync(this.upper)
    fs.mkdirSync(this.work)
    // The upper dir is the view's root directory: it must look as the root does.
    copyDirAttrs(this.root, this.upper)
  }

  wrap (l: Launch, sandbox: 'bwrap' | 'none'): Launch {
    const lowers = [...(this.alias !== null ? [this.alias] : []), this.root]
    const [kind, src] = this.mode === 'copyup'
      ? ['overlay', overlayOptions(lowers, this.upper, this.work)]
      : this.alias !== null ? ['overlay', overlayOptions(lowers, null, null)] : ['bind', this.root]
    let inner = l.args
    // As a user, the hook is root of the user namespace that mounted the view; bwrap gives it
    // back the caller's own ids.
    if (!isRoot() && sandbox === 'bwrap' && inner[0] === 'bwrap') {
      inner = ['bwrap', '--unshare-user', '--uid', String(process.getuid!()), '--gid', String(process.getgid!()), ...inner.slice(1)]
    }
    return { ...l, args: [...unshareArgs(), '/bin/sh', '-c', MOUNT_AND_RUN, 'rofiles-guard-view', kind, src, this.mountpoint, ...inner] }
  }

  async end (): Promise<HookActivity | null> {
    if (this.mode !== 'copyup' || this.upper === null) return null
    try {
      if (this.keepUpper === null) return applyUpper(this.upper, this.root)
      // The root stays as it is: the hook's upper dir is handed over (layer-hooks).
      const activity = applyUpper(this.upper, this.root, false)
      await this.keepUpper(this.upper, activity)
      return activity
    } finally {
      removeScratch(this.upper)
      removeScratch(this.work!)
      this.upper = this.work = null
    }
  }

  async operations (): Promise<number> { return 0 }

  async close (): Promise<{ lazy: boolean }> {
    removeScratch(this.scratch)
    if (this.ownsMountpoint) { try { fs.rmdirSync(this.mountpoint) } catch { /* not empty: leave it */ } }
    return { lazy: false }
  }
}

/** Takes a hook's upper dir (and its net effect) before the view removes it. */
export type KeepUpper = (upper: string, activity: HookActivity) => Promise<void>

/** The kernel engine's view of `root` (checked and real) for one run. With `keepUpper`, the root
 *  is never changed: each hook's upper dir is handed to it instead of applied. */
export async function openKernelView (root: string, opts: { mode: Mode, mountpoint?: string, keepUpper?: KeepUpper }): Promise<HookView> {
  const { mountpoint, owned: owns } = mountpointFor(root, opts.mountpoint)
  const scratch = scratchBeside(root)
  let alias: string | null = null
  if (isOsTree(root)) {
    alias = join(scratch, 'alias')
    fs.mkdirSync(alias)
    fs.symlinkSync('usr/etc', join(alias, 'etc'))
    copyDirAttrs(root, alias)
  }
  log('kernel view of %s at %s (%s), scratch %s', root, mountpoint, opts.mode, scratch)
  return new KernelView(root, mountpoint, opts.mode, scratch, alias, owns, opts.keepUpper ?? null)
}
