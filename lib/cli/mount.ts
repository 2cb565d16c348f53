import { GuardError } from '../errors.js'
import { startServer, waitReady } from '../mount/guard.js'
import { checkMountpoint, checkSource, checkSystem } from '../mount/preflight.js'
import { unmountPath } from '../mount/unmount.js'
import { guardMounts } from '../mount/mountinfo.js'
import type { Mode } from '../policy.js'
import { MODE_OPTION, modeOf, parse } from './args.js'

export const MOUNT_HELP = `Usage: rofiles-guard mount [--mode MODE | --copyup | --read-only] [--foreground] SOURCE MOUNTPOINT

Mounts SOURCE (a hardlinked ostree checkout) at MOUNTPOINT through the guard and returns once
the mount is live; the server keeps running in the background until the mount is removed with
\`rofiles-guard unmount MOUNTPOINT\`, \`umount MOUNTPOINT\` or \`fusermount -u MOUNTPOINT\`.

  --mode MODE   deny (default): refuse changes to repository objects (EROFS); copyup: break
                the hardlink of an object that is written to; readonly (or read-only): refuse
                every change
  --copyup      the same as --mode copyup, as in rofiles-fuse
  --read-only   the same as --mode readonly
  --foreground  serve in this process until interrupted (Ctrl-C unmounts)
  -h, --help    show this help
`

export const MOUNT_OPTIONS = {
  ...MODE_OPTION,
  copyup: { type: 'boolean' },
  'read-only': { type: 'boolean' },
  foreground: { type: 'boolean', short: 'f' }
} as const

export async function mountCommand (argv: string[]): Promise<number> {
  const { values, positionals } = parse('mount', argv, MOUNT_OPTIONS, ['SOURCE', 'MOUNTPOINT'])
  if (values.help) { process.stdout.write(MOUNT_HELP); return 0 }
  const mode: Mode = modeOf('mount', values)
  checkSystem()
  const root = checkSource(positionals[0]!)
  const mountpoint = checkMountpoint(positionals[1]!, root)
  const foreground = Boolean(values.foreground)
  const { child, stderrTail } = startServer({ root, mountpoint, mode, detached: !foreground })
  // Foreground: Ctrl-C must find our handler in place from the start (Node's default would
  // kill this process and leave the server to clean up alone). Before the mount is live it
  // stops the server; after, it unmounts, and the server exits with the mount.
  let live = false
  const stop = (): void => {
    if (live) unmountPath(mountpoint).catch(() => undefined)
    else child.kill('SIGTERM')
  }
  if (foreground) {
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  }
  await waitReady(child, stderrTail, 20_000)
  live = true
  if (!foreground) {
    child.unref()
    if (child.connected) child.disconnect()
    return 0
  }
  process.stderr.write(`rofiles-guard: ${root} mounted at ${mountpoint} (${mode}); Ctrl-C unmounts\n`)
  const code = await new Promise<number>(resolve => child.once('exit', c => resolve(c ?? 1)))
  return code === 0 ? 0 : 1
}

export const UNMOUNT_HELP = `Usage: rofiles-guard unmount MOUNTPOINT

Unmounts a rofiles-guard mount (retrying while it is busy, then detaching it lazily as a last
resort); its server exits by itself.
`

export async function unmountCommand (argv: string[]): Promise<number> {
  const { values, positionals } = parse('unmount', argv, {}, ['MOUNTPOINT'])
  if (values.help) { process.stdout.write(UNMOUNT_HELP); return 0 }
  const { resolve } = await import('node:path')
  const target = resolve(positionals[0]!)
  if (!guardMounts().some(m => m.mountpoint === target)) {
    throw new GuardError('NOT_A_GUARD_MOUNT', `${target} is not a rofiles-guard mount: see \`grep rofiles-guard /proc/mounts\``)
  }
  const r = await unmountPath(target)
  if (r.lazy) process.stderr.write(`rofiles-guard: ${target} was busy and has been detached lazily\n`)
  return 0
}
