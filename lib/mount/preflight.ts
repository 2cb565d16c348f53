import { accessSync, constants, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { isAbsolute, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { GuardError } from '../errors.js'
import { isMode, type Mode } from '../policy.js'
import { isMounted } from './mountinfo.js'
import { isRoot } from '../proc.js'
import { referenceServer } from '../server/protocol.js'
import { REBUILD } from '../native/fuse.js'

const LIB_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib', '/lib64', '/usr/lib64']

/** The libfuse the server will load, and the Debian package that has it: libfuse 3 for the
 *  native core, libfuse 2 for the TypeScript reference (ROFILES_GUARD_NATIVE=0). */
function libfuse (): { lib: string, pkg: string } {
  return referenceServer() ? { lib: 'libfuse.so.2', pkg: 'libfuse2' } : { lib: 'libfuse3.so.3', pkg: 'libfuse3-3' }
}

function within (parent: string, child: string): boolean {
  const rel = relative(parent, child)
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))
}

export function checkMode (mode: unknown): Mode {
  if (mode === undefined) return 'deny'
  if (!isMode(mode)) throw new GuardError('BAD_MODE', `unknown mode '${String(mode)}': use deny, copyup or readonly`)
  return mode
}

const FUSERMOUNT_PATHS = ['/usr/bin/fusermount3', '/bin/fusermount3', '/usr/bin/fusermount', '/bin/fusermount']

/** The installed fusermount3 (or its older name); the bare name where none is. */
export function fusermountPath (): string {
  return FUSERMOUNT_PATHS.find(p => existsSync(p)) ?? 'fusermount3'
}

/** The user's name for messages (`uid N` where the passwd database has none). */
function whoAmI (): string {
  try { return userInfo().username } catch { return `uid ${process.geteuid?.()}` }
}

/**
 * Whether the mount may admit other users: always as root; as a user only when /etc/fuse.conf
 * has `user_allow_other` (fusermount refuses allow_other otherwise).
 */
export function mayAllowOther (): boolean {
  if (isRoot()) return true
  try {
    return readFileSync('/etc/fuse.conf', 'utf8').split('\n').some(l => l.trim() === 'user_allow_other')
  } catch {
    return false
  }
}

/**
 * What the machine must offer before any mount; each failure names the fix. Root mounts
 * directly; a user mounts through the set-uid fusermount3 and needs read-write access to
 * /dev/fuse (mode 0666 on stock Debian, 0600 on some machines).
 */
export function checkSystem (): void {
  checkBuilt()
  if (!existsSync('/dev/fuse')) {
    throw new GuardError('NO_DEV_FUSE', '/dev/fuse does not exist: load the fuse kernel module (modprobe fuse) or give the container the device')
  }
  const { lib, pkg } = libfuse()
  if (!LIB_DIRS.some(d => existsSync(`${d}/${lib}`))) {
    throw new GuardError('MISSING_DEPENDENCY', `${lib} is not installed: install the Debian package ${pkg} (apt-get install ${pkg})`)
  }
  const fusermount = fusermountPath()
  if (!existsSync(fusermount)) {
    throw new GuardError('MISSING_DEPENDENCY', `fusermount3 is not installed (${isRoot() ? 'it removes the mount if the server dies' : 'mounts as a user go through it'}): install the Debian package fuse3`)
  }
  if (isRoot()) return
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK)
  } catch {
    const mode = (statSync('/dev/fuse').mode & 0o777).toString(8).padStart(4, '0')
    throw new GuardError('NO_FUSE_ACCESS', `/dev/fuse (mode ${mode}) is not readable and writable by ${whoAmI()}, and mounting as a user needs it: as root, chmod 0666 /dev/fuse (as stock Debian has it) or setfacl -m u:${whoAmI()}:rw /dev/fuse`)
  }
  const st = statSync(realpathSync(fusermount))
  if ((st.mode & 0o4000 /* S_ISUID */) === 0 || st.uid !== 0) {
    throw new GuardError('MISSING_DEPENDENCY', `${fusermount} is not set-uid root, and mounting as a user needs it: reinstall the Debian package fuse3`)
  }
}

/** What the package's install script builds (scripts/build-native.mjs). */
const BUILT = ['native/build/Release/core.node', 'native/build/Release/sysops.node', 'native/build/Release/hook-exec']

/**
 * The native parts are built: where npm skipped the package's install script they are not, and
 * every mount would fail in its server; say so, and what to do, from the first call.
 */
export function checkBuilt (): void {
  for (const f of BUILT) {
    const file = fileURLToPath(new URL(`../../${f}`, import.meta.url))
    if (!existsSync(file)) throw new GuardError('MISSING_DEPENDENCY', `rofiles-guard's native parts are not built (${file} is missing; was its install script skipped?): ${REBUILD}`)
  }
}

/**
 * The root to protect (`what` names it in errors: `source` for mount, `root` for the hook
 * runners): an existing directory, and not the running system's own root; returns
 * its real path. The live root is recognised by device and inode, so a bind mount of `/` or the
 * booted deployment's directory on an ostree host (which is `/`) is refused too.
 */
export function checkSource (source: string, what = 'source'): string {
  if (typeof source !== 'string' || source === '') {
    throw new GuardError('BAD_ARGUMENT', 'the root is an empty path: give the directory of the new deployment\'s checkout')
  }
  const abs = resolve(source)
  let st
  try {
    st = statSync(abs)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTCONN') throw new GuardError('MOUNTPOINT_STALE', `${abs} is a broken mount (transport endpoint not connected): run \`rofiles-guard cleanup\``)
    throw new GuardError('SOURCE_NOT_FOUND', `${what} ${abs} does not exist: give the directory of the checkout to protect`)
  }
  if (!st.isDirectory()) throw new GuardError('SOURCE_NOT_DIRECTORY', `${what} ${abs} is not a directory: give the directory of the checkout to protect`)
  const live = statSync('/')
  if (st.dev === live.dev && st.ino === live.ino) {
    throw new GuardError('LIVE_ROOT', `${abs} is the running system's root, not a new deployment: hooks must run against the checkout of the deployment being prepared`)
  }
  return realpathSync(abs)
}

/** A mountpoint inside the source, or containing it, would serve the mount to itself. */
export function checkOverlap (mountpointReal: string, sourceReal: string, hint = 'the mountpoint must lie outside the source and not contain it'): void {
  if (within(mountpointReal, sourceReal) || within(sourceReal, mountpointReal)) {
    throw new GuardError('PATHS_OVERLAP', `source ${sourceReal} and mountpoint ${mountpointReal} overlap: ${hint}`)
  }
}

/** The mountpoint: an existing, empty directory, not a mount, apart from the source. */
export function checkMountpoint (mountpoint: string, sourceReal: string): string {
  const abs = resolve(mountpoint)
  let st
  try {
    st = statSync(abs)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTCONN') {
      throw new GuardError('MOUNTPOINT_STALE', `mountpoint ${abs} is a stale mount left by a crash: run \`rofiles-guard cleanup\` first`)
    }
    throw new GuardError('MOUNTPOINT_NOT_FOUND', `mountpoint ${abs} does not exist: create an empty directory for it (mkdir -p ${abs})`)
  }
  if (!st.isDirectory()) throw new GuardError('MOUNTPOINT_NOT_DIRECTORY', `mountpoint ${abs} is not a directory: give an empty directory`)
  const real = realpathSync(abs)
  if (isMounted(real)) {
    throw new GuardError('MOUNTPOINT_IS_MOUNT', `mountpoint ${real} is already a mount: unmount it first (rofiles-guard unmount ${real})`)
  }
  checkOverlap(real, sourceReal)
  if (readdirSync(real).length > 0) {
    throw new GuardError('MOUNTPOINT_NOT_EMPTY', `mountpoint ${real} is not empty: give an empty directory`)
  }
  return real
}

/**
 * Where a view of `rootReal` is mounted: `given`, checked (an empty directory apart from the
 * root), or a temporary directory, checked like a given one before it is made and named with our
 * pid, so that `rofiles-guard cleanup` removes one whose process is gone. `owned`: made here, to
 * be removed after.
 */
export function mountpointFor (rootReal: string, given: string | undefined): { mountpoint: string, owned: boolean } {
  if (given !== undefined) return { mountpoint: checkMountpoint(given, rootReal), owned: false }
  const parent = realpathSync(tmpdir())
  checkOverlap(join(parent, 'rofiles-guard-XXXXXX'), rootReal, `the temporary mountpoint would lie inside the source: pass a mountpoint outside ${rootReal}`)
  return { mountpoint: mkdtempSync(join(parent, `rofiles-guard-${process.pid}-`)), owned: true }
}

/** An ostree OS tree: its configuration in usr/etc and no top-level etc (ostree makes /etc at
 *  deploy time, and `ostree admin deploy` refuses a tree with both). */
export function isOsTree (rootReal: string): boolean {
  return existsSync(join(rootReal, 'usr/etc')) && !existsSync(join(rootReal, 'etc'))
}
