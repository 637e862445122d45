// CPU-heavy background threads (scrub's hashing, zstd decoding for the file browser) run at the
// lowest CPU priority, so that on a machine whose cores are busy the event loop answering
// registry requests is scheduled first: Linux keeps a nice value per thread, set here through the
// thread's own id. These threads hold no lock anyone waits on, so slowing them down delays only
// their own work. GC's thread is left at normal priority: it holds SQLite's write lock during its
// sweep transactions, and starving it there would hold pushes back (priority inversion).

interface Fs {
  readlinkSync(path: string): string
}
interface Os {
  setPriority(pid: number, priority: number): void
}

/** Lowers the calling thread's priority to nice 19; a no-op where that is not possible. */
export function lowerThreadPriority(fs: Fs, os: Os): void {
  try {
    // "/proc/thread-self" links to "<pid>/task/<tid>"
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop())
    if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, 19)
  } catch {
    // not Linux, or not permitted: the thread keeps the process's priority
  }
}

/** The same, as CommonJS source for a thread started from an eval'd script. */
export const LOWER_THREAD_PRIORITY_SOURCE = `(${lowerThreadPriority.toString()})(require('node:fs'), require('node:os'));\n`
