import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

const MiB = 1024 * 1024

/**
 * Collects the garbage that large transfers leave behind. Every socket read of an upload is a
 * fresh 64 KiB buffer; V8 frees them only when its heap asks for a collection, and with a small
 * heap that can be 30–60 MiB of dead buffers kept resident after a push, and more after the
 * next one. Once `threshold` bytes moved and the transfers have been quiet for `quietMs`, one
 * full collection hands them back (measured: RSS 148 → 121 MiB after a 1 GiB upload, a 35 ms
 * pause while nothing large is moving).
 */
export class TransferGc {
  private moved = 0
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly collect: (() => void) | undefined,
    private readonly threshold = 128 * MiB,
    private readonly quietMs = 2_000,
  ) {}

  /** Bytes a request moved (in or out); each call restarts the quiet period. */
  record(bytes: number): void {
    if (!this.collect) return
    this.moved += bytes
    if (this.moved < this.threshold) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => this.run(), this.quietMs)
    this.timer.unref()
  }

  close(): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private run(): void {
    this.timer = undefined
    this.moved = 0
    this.collect?.()
  }
}

/**
 * The V8 collector as a function, without starting Node with --expose-gc: the flag set at run
 * time installs `gc` in contexts created after it. Undefined where the runtime refuses.
 */
export function runtimeGc(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as unknown
    if (typeof gc !== 'function') return undefined
    const collect = gc as (options?: object) => void
    // "last-resort" is V8's memory-reducing collection: it also shrinks the young generation and
    // hands its pages back (a plain full collection leaves its 16–32 MiB resident). Node 20's V8
    // has no such flavor, and with options its collection leaves weak references alive.
    if (Number(process.versions.v8.split('.')[0]) < 12) return () => collect()
    return () => collect({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  } catch {
    return undefined
  }
}
