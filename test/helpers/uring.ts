import * as fs from 'node:fs'

/** The kernel's machine-wide switch for FUSE over io_uring (CONFIG_FUSE_IO_URING, 6.14+). */
export const URING_PARAM = '/sys/module/fuse/parameters/enable_uring'

/** Why FUSE over io_uring cannot be tried here, or null. */
export function uringUnavailable (): string | null {
  if (!fs.existsSync(URING_PARAM)) return 'the kernel has no FUSE over io_uring'
  if (process.getuid?.() !== 0) return `only root can turn on ${URING_PARAM}`
  return null
}

/** A kernel setting as it is written back: a module parameter's Y/N as 1/0. */
export function readSetting (path: string): string {
  const v = fs.readFileSync(path, 'utf8').trim()
  return v === 'Y' ? '1' : v === 'N' ? '0' : v
}

/** fn() with a kernel setting at `value`, put back as it was afterwards, whatever happens. */
export async function withSetting<T> (path: string, value: string, fn: () => Promise<T>): Promise<T> {
  const before = readSetting(path)
  fs.writeFileSync(path, value)
  try { return await fn() } finally { fs.writeFileSync(path, before) }
}
