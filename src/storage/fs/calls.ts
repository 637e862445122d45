import { close, closeSync, fstat, fstatSync, open, openSync, statSync, type Stats } from 'node:fs'
import { mkdir, rename, stat, unlink } from 'node:fs/promises'
import { promisify } from 'node:util'

// Raw descriptors, not fs/promises' FileHandles (which close themselves when collected).
const openAsync = promisify(open)
const closeAsync = promisify(close)
const fstatAsync = promisify(fstat)

/**
 * The filesystem calls the driver makes on names and inodes, and where each one runs.
 *
 * Calls that only read cached inodes or let go of a descriptor (stat, fstat, close, opening a
 * directory to fsync it) take a few microseconds on a local disk, far less than a round trip
 * through libuv's thread pool (≈ 40 µs of CPU here, plus waking a pool thread): `inlineCalls`
 * makes them on the event loop. Calls that change the namespace (mkdir, rename, unlink,
 * creating a file) always go through the pool: on ext4 a create can scan past recently freed
 * inodes, and made inline during a 100-layer push it blocked the loop 1.3 ms at the median.
 * On a network filesystem even a stat can take milliseconds: `pooledCalls` sends every call
 * through the pool.
 */
export interface MetadataCalls {
  stat(path: string): Promise<Stats>
  /** mkdir -p */
  mkdirs(path: string): Promise<void>
  rename(from: string, to: string): Promise<void>
  unlink(path: string): Promise<void>
  /** open(2) to write or create: a raw descriptor */
  open(path: string, flags: string): Promise<number>
  /** open(2) read-only of something that exists (a directory to fsync) */
  openExisting(path: string): Promise<number>
  fstat(fd: number): Promise<Stats>
  close(fd: number): Promise<void>
}

/** Through libuv's thread pool. */
export const pooledCalls: MetadataCalls = {
  stat: (path) => stat(path),
  mkdirs: async (path) => {
    await mkdir(path, { recursive: true })
  },
  rename,
  unlink: (path) => unlink(path),
  open: (path, flags) => openAsync(path, flags),
  openExisting: (path) => openAsync(path, 'r'),
  fstat: (fd) => fstatAsync(fd),
  close: (fd) => closeAsync(fd),
}

/** Reads of cached inodes and closes inline (failures still reject), the rest pooled. */
export const inlineCalls: MetadataCalls = {
  ...pooledCalls,
  stat: async (path) => statSync(path),
  openExisting: async (path) => openSync(path, 'r'),
  fstat: async (fd) => fstatSync(fd),
  close: async (fd) => closeSync(fd),
}
