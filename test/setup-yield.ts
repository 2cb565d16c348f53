// Between tests, one turn of the event loop: many tests here are synchronous (spawnSync of real
// tools), and vitest's worker answers its runner only when its loop turns. Its RPC gives up after
// 60 s, so a file of synchronous tests run back to back would otherwise fail the run with
// "Timeout calling onTaskUpdate" although every test passed.
import { beforeEach } from 'vitest'

beforeEach(async () => {
  await new Promise(resolve => setImmediate(resolve))
})
