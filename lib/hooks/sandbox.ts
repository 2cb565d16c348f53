import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import { GuardError } from '../errors.js'
import { REBUILD } from '../native/fuse.js'
import { isRoot } from '../proc.js'
import type { Launch } from '../mount/view.js'

/**
 * How a hook runs: `bwrap` (the default), in bubblewrap with the new root as `/`; `none`, a plain
 * process on the host, only when asked for by name.
 */
export type Sandbox = 'bwrap' | 'none'
/** Every sandbox kind, the default first. */
export const SANDBOXES: readonly Sandbox[] = ['bwrap', 'none']
/** The sandbox of every command and library call that runs hooks, unless told otherwise. */
export const DEFAULT_SANDBOX: Sandbox = 'bwrap'

export function isSandbox (v: unknown): v is Sandbox {
  return typeof v === 'string' && (SANDBOXES as readonly string[]).includes(v)
}

/** `v` as a sandbox (undefined: the default), or a BAD_ARGUMENT naming the kinds there are. */
export function sandboxOf (v: unknown): Sandbox {
  if (v === undefined) return DEFAULT_SANDBOX
  if (isSandbox(v)) return v
  if (v === 'chroot') throw new GuardError('BAD_ARGUMENT', 'sandbox chroot is now bwrap, the default: hooks run with the new root as /')
  throw new GuardError('BAD_ARGUMENT', `unknown sandbox '${String(v)}': use bwrap (the default) or none`)
}

/**
 * The capabilities a root hook keeps in the bwrap sandbox, and only these
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

/** The namespaces of its own the bwrap sandbox gives a hook: processes, System V IPC and POSIX
 *  message queues, host and domain name, and the cgroup view where the kernel has it. */
const UNSHARE = ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try']

/** Where a hook from outside the new root is bound inside the bwrap sandbox (on its private /tmp). */
const HOOK_DIR_INSIDE = '/tmp/.roothooks'

export type { Launch } from '../mount/view.js'

/**
 * The command that runs `hookPath` against the mount at `mountpoint`, always through hook-exec
 * (no inherited descriptor beyond 0-2 reaches the hook):
 * - bwrap: the mount as `/` and the working directory, private /dev, /proc and /tmp, the hook
 *   bound read-only under that /tmp; new PID, IPC, UTS and (where the kernel has them) cgroup
 *   namespaces, a new session, dies with us; as root, only HOOK_CAPS. Nothing of the host's
 *   files is in view: every absolute path a hook writes lands in the new root, through the
 *   guard. The network and (as root) the user namespace are the host's, as in rpm-ostree's
 *   script runner.
 * - none: the hook itself, on the host, in the mount.
 * The hook's bind is made after `--tmpfs /tmp`, so it stays reachable.
 */
export function launch (sandbox: Sandbox, hookPath: string, name: string, mountpoint: string): Launch {
  if (!existsSync(HOOK_EXEC)) throw new GuardError('MISSING_DEPENDENCY', `${HOOK_EXEC} is not built: ${REBUILD}`)
  const via = (file: string, args: string[], root: string): Launch => ({ file: HOOK_EXEC, args: [file, ...args], cwd: mountpoint, root })
  if (sandbox === 'none') return via(hookPath, [], mountpoint)
  const caps = isRoot() ? ['--cap-drop', 'ALL', ...HOOK_CAPS.flatMap(c => ['--cap-add', c])] : []
  const inside = `${HOOK_DIR_INSIDE}/${name}`
  return via('bwrap', ['--bind', mountpoint, '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', ...UNSHARE,
    '--die-with-parent', '--new-session', ...caps, '--ro-bind', hookPath, inside, '--chdir', '/', '--', inside], '/')
}

/** Directories bwrap mounts on; the root must have them (bwrap would make them in the user's tree). */
export const SANDBOX_MOUNT_POINTS = ['dev', 'proc', 'tmp'] as const

/**
 * bwrap must be installed and able to make its namespaces here; if it cannot, one line says why
 * and that sandbox none runs the hooks unsandboxed (never chosen for the caller).
 */
export async function checkSandbox (sandbox: Sandbox): Promise<void> {
  if (sandbox === 'none') return
  // In a process group of its own (detached): bwrap's namespace init, orphaned when it ends, is
  // left for the machine's init to reap, never as a defunct process in the caller's group.
  const r = await execa('bwrap', ['--ro-bind', '/', '/', ...UNSHARE, '--dev', '/dev', '--proc', '/proc', '--', 'true'], { reject: false, stdin: 'ignore', detached: true })
  if (r.failed) {
    const why = (r as { code?: string }).code === 'ENOENT'
      ? 'bwrap is not installed (Debian package bubblewrap)'
      : `bwrap cannot create namespaces on this machine (${String(r.stderr).trim().split('\n')[0] || `exit status ${r.exitCode}`}; allow unprivileged user namespaces, or run as root)`
    throw new GuardError('SANDBOX_UNAVAILABLE', `sandbox ${sandbox} unavailable: ${why}; to run the hooks unsandboxed, with the host's files in reach, ask for sandbox none (--sandbox none)`)
  }
}
