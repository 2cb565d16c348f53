import { execa } from 'execa'
import { GuardError } from '../errors.js'

export type Sandbox = 'none' | 'bwrap' | 'chroot'
export const SANDBOXES: readonly Sandbox[] = ['none', 'bwrap', 'chroot']

export function isSandbox (v: unknown): v is Sandbox {
  return typeof v === 'string' && (SANDBOXES as readonly string[]).includes(v)
}

/**
 * Capabilities a root hook loses in a bubblewrap sandbox (which, run as root, keeps them all):
 * those that would let it leave the sandbox or touch the host: remount the read-only host
 * (SYS_ADMIN), make a device node of the disk (MKNOD), open files by handle outside its view
 * (DAC_READ_SEARCH), load modules, raw I/O, ptrace, BPF, reboot, the clock, the network, LSMs.
 * What hooks need for files in the new root stays: CHOWN, DAC_OVERRIDE, FOWNER, FSETID,
 * SETUID/SETGID, KILL, SYS_CHROOT.
 */
export const DROPPED_CAPS = ['CAP_SYS_ADMIN', 'CAP_MKNOD', 'CAP_DAC_READ_SEARCH', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO',
  'CAP_SYS_PTRACE', 'CAP_BPF', 'CAP_PERFMON', 'CAP_SYS_BOOT', 'CAP_SYS_TIME', 'CAP_NET_ADMIN', 'CAP_NET_RAW',
  'CAP_SYSLOG', 'CAP_MAC_ADMIN', 'CAP_MAC_OVERRIDE', 'CAP_AUDIT_CONTROL', 'CAP_AUDIT_WRITE', 'CAP_LINUX_IMMUTABLE',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_SYS_RESOURCE', 'CAP_SYS_NICE', 'CAP_SYS_PACCT', 'CAP_SYS_TTY_CONFIG',
  'CAP_LEASE', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_CHECKPOINT_RESTORE']

/** Where a hook from outside the new root is bound inside a chroot sandbox (on its private /tmp). */
const CHROOT_HOOK_DIR = '/tmp/.roothooks'

export interface Launch {
  file: string
  args: string[]
  cwd: string
  /** ROOTHOOK_ROOT as the hook sees it. */
  root: string
}

/**
 * The command that runs `hookPath` against the mount at `mountpoint`:
 * - none: the hook itself, in the mount.
 * - bwrap: host `/` read-only, the mount read-write at its own path, private /tmp /dev /proc,
 *   new PID namespace and session, dies with us, no capabilities to undo that (DROPPED_CAPS):
 *   the hook can write only through the guard.
 * - chroot: the mount as `/`, the hook bound read-only under a private /tmp.
 * Binds are made after `--tmpfs /tmp`, so paths under /tmp (hooks, mountpoint) stay reachable.
 */
export function launch (sandbox: Sandbox, hookPath: string, hooksDir: string, name: string, mountpoint: string): Launch {
  const common = ['--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--unshare-pid', '--die-with-parent', '--new-session',
    ...DROPPED_CAPS.flatMap(c => ['--cap-drop', c])]
  switch (sandbox) {
    case 'none':
      return { file: hookPath, args: [], cwd: mountpoint, root: mountpoint }
    case 'bwrap':
      return {
        file: 'bwrap',
        args: ['--ro-bind', '/', '/', ...common, '--ro-bind', hooksDir, hooksDir, '--bind', mountpoint, mountpoint, '--chdir', mountpoint, '--', hookPath],
        cwd: mountpoint,
        root: mountpoint
      }
    case 'chroot': {
      const inside = `${CHROOT_HOOK_DIR}/${name}`
      return {
        file: 'bwrap',
        args: ['--bind', mountpoint, '/', ...common, '--ro-bind', hookPath, inside, '--chdir', '/', '--', inside],
        cwd: mountpoint,
        root: '/'
      }
    }
  }
}

/** bwrap must be installed and able to make namespaces here; say plainly if it cannot. */
export async function checkSandbox (sandbox: Sandbox): Promise<void> {
  if (sandbox === 'none') return
  const r = await execa('bwrap', ['--ro-bind', '/', '/', '--unshare-pid', '--dev', '/dev', '--proc', '/proc', '--', 'true'], { reject: false, stdin: 'ignore' })
  if (r.failed) {
    const why = (r as { code?: string }).code === 'ENOENT'
      ? 'bwrap is not installed: install the Debian package bubblewrap'
      : `bwrap cannot create namespaces on this machine (${String(r.stderr).trim().split('\n')[0] || `exit status ${r.exitCode}`}): use --sandbox none, or allow unprivileged user namespaces`
    throw new GuardError('SANDBOX_UNAVAILABLE', `sandbox ${sandbox} unavailable: ${why}`)
  }
}
