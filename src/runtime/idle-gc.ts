import { getHeapSpaceStatistics, getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

const MiB = 1024 * 1024

/**
 * One full garbage collection when the server goes quiet after a burst of work, so that an idle
 * registry hands memory back instead of keeping the high-water mark of its last busy minute; and
 * young-generation collections while uploads arrive (the last point below).
 *
 * - After requests: V8 grows its young generation to 32 MiB under load and leaves old-space
 *   garbage behind; its own memory reducer gives them back only some time later, if at all
 *   (measured: 157 MiB RSS after 10 s of manifest GETs, unchanged 15 s later; one collection
 *   once quiet: 105 MiB).
 * - After large transfers: the dead pieces of request bodies that the scavenges below did not
 *   catch yet (external memory: counted in bytes moved, since the heap itself barely grows).
 * - After start-up: loading the modules grew the young generation the same way.
 * - During uploads: each chunk of a request body is its own malloc'd buffer, freed only when V8
 *   collects it, and V8 collects for such external memory only every ≈ 26 MiB. glibc's heap
 *   grows to hold them, and its freed middle is never handed back (only its top can shrink): after
 *   one 1 GiB upload 23–40 MiB of it stayed resident for good. `received()` runs a young-generation
 *   collection (a scavenge) every `scavengeBytes` received per body in flight, which frees the
 *   chunks while few are dead: 8 MiB of heap after the same upload. Per body in flight, because
 *   a chunk still being written when two scavenges pass is moved to the old generation, which
 *   only a full collection frees: with one interval for 32 concurrent uploads the server used
 *   twice the CPU and peaked higher.
 *
 * "Quiet" is `quietMs` without a request or a transferred byte; it is longer than V8's 5 s
 * allocation-rate window, because Node 20's V8 shrinks the young generation and frees old-space
 * pages in a collection only when that window shows a low allocation rate (a collection 1–3 s
 * after a burst left RSS at 133 MiB, one after 5 s took it to 105 MiB). A collection runs only if
 * there is something to give back: the heap grew by `heapGrowth` since the last one, or
 * `transferBytes` moved; so health checks and metric scrapes on an idle server cost nothing.
 */
export class IdleGc {
  private activity = 0
  private seen = 0
  private quietSince: number
  private moved = 0
  private retry = false
  private retries = 0
  /** heap size after the last collection; undefined until the first (start-up counts as a burst) */
  private baseline: number | undefined
  private readonly timer: NodeJS.Timeout | undefined
  private readonly quietMs: number
  private readonly heapGrowth: number
  private readonly transferBytes: number
  private readonly heapSize: () => number
  private readonly youngSize: () => number
  private readonly youngFloor: number
  private readonly now: () => number
  private readonly scavenge: (() => void) | undefined
  private readonly scavengeBytes: number
  private unscavenged = 0

  constructor(
    private readonly collect: (() => void) | undefined,
    opts: {
      quietMs?: number
      tickMs?: number
      heapGrowth?: number
      transferBytes?: number
      /** a young-generation collection, run every `scavengeBytes` received */
      scavenge?: () => void
      scavengeBytes?: number
      heapSize?: () => number
      youngSize?: () => number
      now?: () => number
    } = {},
  ) {
    this.scavenge = opts.scavenge
    this.scavengeBytes = opts.scavengeBytes ?? 2 * MiB
    this.quietMs = opts.quietMs ?? 6_000
    this.heapGrowth = opts.heapGrowth ?? 8 * MiB
    this.transferBytes = opts.transferBytes ?? 128 * MiB
    this.heapSize = opts.heapSize ?? (() => getHeapStatistics().total_heap_size)
    this.youngSize = opts.youngSize ?? (() => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0)
    // V8's smallest young generation is 1 MiB; above twice that it did not shrink.
    this.youngFloor = 2 * MiB
    this.now = opts.now ?? Date.now
    this.quietSince = this.now()
    if (!collect || opts.tickMs === 0) return
    this.timer = setInterval(() => this.tick(), opts.tickMs ?? 1_000)
    this.timer.unref()
  }

  /** A request ended. Called on every request: one increment, the timer does the rest. */
  touch(): void {
    this.activity++
  }

  /** Bytes a request moved (in or out). */
  record(bytes: number): void {
    this.activity++
    this.moved += bytes
  }

  /** Bytes of a request body as they arrive, with the number of bodies being received. */
  received(bytes: number, receiving = 1): void {
    this.record(bytes)
    this.unscavenged += bytes
    if (this.unscavenged < this.scavengeBytes * Math.max(1, receiving) || !this.scavenge) return
    this.unscavenged = 0
    this.scavenge()
  }

  close(): void {
    clearInterval(this.timer)
  }

  /** Run by the timer every `tickMs` (0: never; the caller ticks). */
  tick(): void {
    const now = this.now()
    if (this.activity !== this.seen) {
      this.seen = this.activity
      this.quietSince = now
      return
    }
    if (now - this.quietSince < this.quietMs) return
    const grown = this.baseline === undefined || this.moved >= this.transferBytes || this.heapSize() - this.baseline >= this.heapGrowth
    if (!grown && !this.retry) return
    if (grown) this.retries = 0
    this.collect?.()
    this.moved = 0
    this.baseline = this.heapSize()
    // Whether V8 shrinks the young generation in a collection is its own call, taken from recent
    // allocation rates; a request just before the quiet period began can make it keep 32 MiB.
    // Then try again after another quiet period: at most three collections per growth, whatever
    // requests come in between (Node 22+ always shrinks).
    this.retry = this.youngSize() > this.youngFloor && ++this.retries < 3
    this.quietSince = now
  }
}

/** The V8 full collector as a function (see exposedGc). Undefined where the runtime refuses. */
export function runtimeGc(): (() => void) | undefined {
  const collect = exposedGc()
  if (!collect) return undefined
  // "last-resort" is V8's memory-reducing collection: it also shrinks the young generation and
  // hands its pages back (a plain full collection leaves its 16–32 MiB resident). Node 20's V8
  // has no such flavor, and with options its collection leaves weak references alive. There the
  // collection compacts every page instead of V8's pick: without it, old space was left at
  // 19–24.5 MiB for 15.6 MiB of live objects 20 s after start-up (idle RSS 82–90 MiB against
  // 76–80 with it, on a busy host). The flag is read per collection, so it is set for this one only.
  if (Number(process.versions.v8.split('.')[0]) < 12) {
    return () => {
      setFlagsFromString('--compact-on-every-full-gc')
      try {
        collect()
      } finally {
        setFlagsFromString('--no-compact-on-every-full-gc')
      }
    }
  }
  return () => collect({ type: 'major', execution: 'sync', flavor: 'last-resort' })
}

/** A young-generation collection (scavenge) as a function; undefined where the runtime refuses. */
export function runtimeScavenge(): (() => void) | undefined {
  const collect = exposedGc()
  return collect && (() => collect({ type: 'minor' }))
}

type V8Gc = (options?: object) => void
/** the `gc` function once reached (null: the runtime refused) */
let exposed: V8Gc | null | undefined

/**
 * V8's `gc` without starting Node with --expose-gc: the flag set at run time installs it in
 * contexts created after it. One context, made on first use, serves every caller.
 */
function exposedGc(): V8Gc | undefined {
  if (exposed === undefined) {
    try {
      setFlagsFromString('--expose-gc')
      const gc = runInNewContext('gc') as unknown
      exposed = typeof gc === 'function' ? (gc as V8Gc) : null
    } catch {
      exposed = null
    }
  }
  return exposed ?? undefined
}
