import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import { GuardError } from '../errors.js'
import { REBUILD } from '../native/fuse.js'
import { isRoot } from '../proc.js'

/** How a hook runs: a plain process, in bubblewrap with the host read-only, or with the mount as `/`. */
export type Sandbox = 'none' | 'bwrap' | 'chroot'
/** Every sandbox kind. */
export const SANDBOXES: readonly Sandbox[] = ['none', 'bwrap', 'chroot']

export function isSandbox (v: unknown): v is Sandbox {
  return typeof v === 'string' && (SANDBOXES as readonly string[]).includes(v)
}

/**
 * The capabilities a root hook keeps in the bwrap and chroot sandboxes, and only these
 * (`--cap-drop ALL`, then each added): what hooks need for files of the new root: chown,
 * override file permissions, set-id bits and file capabilities (setcap, as iputils' postinst
 * runs it), switch users, signal their own processes, chroot. Everything else is gone, also
 * what future kernels add: no remount of the read-only host (SYS_ADMIN), no device nodes
 * (MKNOD), no open-by-handle outside the sandbox's view (DAC_READ_SEARCH), no modules, raw I/O,
 * ptrace, network administration. bwrap also sets no_new_privs, so no exec adds any back.
 * Writes still go through the guard.
 */
export const HOOK_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_SETUID', 'CAP_SETGID',
  'CAP_KILL', 'CAP_SYS_CHROOT', 'CAP_SETFCAP'] as const

/** Starts every hook with only fds 0-2 open (native/hook-exec.c). */
const HOOK_EXEC = fileURLToPath(new URL('../../native/build/Release/hook-exec', import.meta.url))

/** The namespaces of their own bwrap and chroot give a hook: processes, System V IPC and POSIX
 *  message queues, host and domain name, and the cgroup view where the kernel has it. */
const UNSHARE = ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try']

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
 * The command that runs `hookPath` against the mount at `mountpoint`, always through hook-exec
 * (no inherited descriptor beyond 0-2 reaches the hook):
 * - none: the hook itself, in the mount.
 * - bwrap: host `/` read-only, the mount read-write at its own path, private /tmp /dev /proc,
 *   new PID, IPC, UTS and (where the kernel has them) cgroup namespaces, a new session, dies
 *   with us; as root, only HOOK_CAPS: the hook can write only through the guard. The network
 *   and the user namespace (as root) are the host's, as in rpm-ostree's script runner.
 * - chroot: the mount as `/`, the hook bound read-only under a private /tmp.
 * Binds are made after `--tmpfs /tmp`, so paths under /tmp (hooks, mountpoint) stay reachable.
 */
export function launch (sandbox: Sandbox, hookPath: string, hooksDir: string, name: string, mountpoint: string): Launch {
  if (!existsSync(HOOK_EXEC)) throw new GuardError('MISSING_DEPENDENCY', `${HOOK_EXEC} is not built: ${REBUILD}`)
  const caps = isRoot() ? ['--cap-drop', 'ALL', ...HOOK_CAPS.flatMap(c => ['--cap-add', c])] : []
  const common = ['--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', ...UNSHARE, '--die-with-parent', '--new-session', ...caps]
  const via = (file: string, args: string[], root: string): Launch => ({ file: HOOK_EXEC, args: [file, ...args], cwd: mountpoint, root })
  switch (sandbox) {
    case 'none':
      return via(hookPath, [], mountpoint)
    case 'bwrap':
      return via('bwrap', ['--ro-bind', '/', '/', ...common, '--ro-bind', hooksDir, hooksDir, '--bind', mountpoint, mountpoint, '--chdir', mountpoint, '--', hookPath], mountpoint)
    case 'chroot': {
      const inside = `${CHROOT_HOOK_DIR}/${name}`
      return via('bwrap', ['--bind', mountpoint, '/', ...common, '--ro-bind', hookPath, inside, '--chdir', '/', '--', inside], '/')
    }
  }
}

/** Directories bwrap mounts on in a chroot sandbox; the root must have them (never made for it). */
export const CHROOT_MOUNT_POINTS = ['dev', 'proc', 'tmp'] as const

/** bwrap must be installed and able to make namespaces here; say plainly if it cannot. */
export async function checkSandbox (sandbox: Sandbox): Promise<void> {
  if (sandbox === 'none') return
  // In a process group of its own (detached): bwrap's namespace init, orphaned when it ends, is
  // left for the machine's init to reap, never as a defunct process in the caller's group.
  const r = await execa('bwrap', ['--ro-bind', '/', '/', ...UNSHARE, '--dev', '/dev', '--proc', '/proc', '--', 'true'], { reject: false, stdin: 'ignore', detached: true })
  if (r.failed) {
    const why = (r as { code?: string }).code === 'ENOENT'
      ? 'bwrap is not installed: install the Debian package bubblewrap'
      : `bwrap cannot create namespaces on this machine (${String(r.stderr).trim().split('\n')[0] || `exit status ${r.exitCode}`}): use --sandbox none, or allow unprivileged user namespaces`
    throw new GuardError('SANDBOX_UNAVAILABLE', `sandbox ${sandbox} unavailable: ${why}`)
  }
}
