// Types for native packages that ship none. `fuse-native` is typed as rofiles-guard patches it
// (native/fuse-native-2.2.6.patch): 64-bit stat with nanoseconds, create() gets the open flags,
// utimens() gets seconds and nanoseconds for both times, fgetattr() gets the file handle,
// handlers may call back with null, and paths are null for open files whose name is gone.
declare module 'fuse-native' {
  type Cb = (err: number | null) => void
  type Path = string
  /** null when libfuse has no path for an open file (only with hard_remove, which we do not use). */
  type MaybePath = string | null

  export interface FuseOps {
    init?(cb: Cb): void
    getattr?(path: Path, cb: (err: number | null, stat?: BigInt64Array) => void): void
    fgetattr?(path: MaybePath, fd: number, cb: (err: number | null, stat?: BigInt64Array) => void): void
    statfs?(path: Path, cb: (err: number | null, statfs?: BigUint64Array) => void): void
    access?(path: Path, mode: number, cb: Cb): void
    readdir?(path: Path, cb: (err: number | null, names?: string[], stats?: BigInt64Array[]) => void): void
    readlink?(path: Path, cb: (err: number | null, target?: string) => void): void
    /** openFlags: 1 keeps the kernel page cache for this handle (keep_cache), 2 bypasses it (direct_io). */
    open?(path: Path, flags: number, cb: (err: number | null, fd?: number, openFlags?: number) => void): void
    create?(path: Path, mode: number, flags: number, cb: (err: number | null, fd?: number, openFlags?: number) => void): void
    read?(path: MaybePath, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void
    write?(path: MaybePath, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void
    flush?(path: MaybePath, fd: number, cb: Cb): void
    fsync?(path: MaybePath, datasync: number, fd: number, cb: Cb): void
    fsyncdir?(path: MaybePath, datasync: number, fd: number, cb: Cb): void
    release?(path: MaybePath, fd: number, cb: Cb): void
    truncate?(path: Path, size: number, cb: Cb): void
    ftruncate?(path: MaybePath, fd: number, size: number, cb: Cb): void
    utimens?(path: Path, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number, cb: Cb): void
    chown?(path: Path, uid: number, gid: number, cb: Cb): void
    chmod?(path: Path, mode: number, cb: Cb): void
    mknod?(path: Path, mode: number, dev: number, cb: Cb): void
    setxattr?(path: Path, name: string, value: Buffer, position: number, flags: number, cb: Cb): void
    /** Answers with a Buffer (its length is the value size), or an error. */
    getxattr?(path: Path, name: string, position: number, cb: (err: number | null, value?: Buffer | null) => void): void
    listxattr?(path: Path, cb: (err: number | null, names?: string[]) => void): void
    removexattr?(path: Path, name: string, cb: Cb): void
    unlink?(path: Path, cb: Cb): void
    rename?(src: Path, dest: Path, cb: Cb): void
    link?(src: Path, dest: Path, cb: Cb): void
    symlink?(target: string, path: Path, cb: Cb): void
    mkdir?(path: Path, mode: number, cb: Cb): void
    rmdir?(path: Path, cb: Cb): void
  }

  export interface FuseOptions {
    timeout?: number | false
    allowOther?: boolean
    defaultPermissions?: boolean
    autoUnmount?: boolean
    kernelCache?: boolean
    autoCache?: boolean
    attrTimeout?: number
    entryTimeout?: number
    fsname?: string
    subtype?: string
    maxRead?: number
    debug?: boolean
    /** Raw libfuse options, one per entry (big_writes, max_write=N, use_ino, hard_remove, ...). */
    extraOptions?: string[]
    /** Called on the JS thread once the FUSE loop has ended (unmounted from outside or aborted). */
    onLoopExit?: () => void
  }

  export default class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: FuseOptions)
    mount(cb: (err: Error | null) => void): void
    unmount(cb: (err: Error | null) => void): void
    /** Caller of the request whose handler is running; valid until the handler first yields. */
    context(): { uid: number; gid: number; pid: number }
  }
}
