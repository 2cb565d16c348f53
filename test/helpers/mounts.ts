import { readFileSync } from 'node:fs'

/** FUSE mounts on this machine (any kind), as /proc/self/mountinfo lists them. */
export function fuseMounts (): Array<{ mountpoint: string, fstype: string }> {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map(line => {
    const [left, right] = line.split(' - ')
    return { mountpoint: left!.split(' ')[4]!, fstype: right!.split(' ')[0]! }
  }).filter(m => m.fstype.startsWith('fuse'))
}
