import { Transform, type Readable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1e3, KB: 1e3, M: 1e6, MB: 1e6, G: 1e9, GB: 1e9, KIB: 1024, MIB: 1024 ** 2, GIB: 1024 ** 3 }

/** Bytes per second of "50MiB/s", "500KB/s", "1GiB/s", "1048576" (B/s); undefined when malformed or 0. */
export function parseBandwidth(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)(?:\/s)?\s*$/.exec(text)
  if (!m) return undefined
  const unit = UNITS[(m[2] ?? '').toUpperCase()]
  if (unit === undefined) return undefined
  const rate = Math.floor(Number(m[1]) * unit)
  return rate >= 1 ? rate : undefined
}

/**
 * A token bucket shared by every blob stream of one execution: each chunk waits for as many
 * tokens as it has bytes; tokens refill at `rate` per second up to one second's worth (the
 * burst). Chunks larger than the burst are let through in pieces of the burst.
 */
export class TokenBucket {
  private tokens: number
  private last = Date.now()
  private queue: Promise<void> = Promise.resolve()

  constructor(readonly rate: number) {
    this.tokens = rate
  }

  /** Resolves once `bytes` may be sent (callers are served in order). */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(() => this.wait(bytes, signal))
    this.queue = turn.catch(() => undefined)
    return turn
  }

  private async wait(bytes: number, signal?: AbortSignal): Promise<void> {
    let left = bytes
    while (left > 0) {
      this.refill()
      const piece = Math.min(left, this.rate)
      if (this.tokens >= piece) {
        this.tokens -= piece
        left -= piece
        continue
      }
      await delay(Math.max(1, Math.ceil(((piece - this.tokens) / this.rate) * 1000)), undefined, { signal })
    }
  }

  private refill(): void {
    const now = Date.now()
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate)
    this.last = now
  }

  /** The stream, slowed to the bucket's rate. */
  throttle(stream: Readable, signal?: AbortSignal): Readable {
    const limited = new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        this.take(chunk.length, signal).then(() => done(null, chunk), done)
      },
    })
    stream.on('error', (err) => limited.destroy(err))
    return stream.pipe(limited)
  }
}
