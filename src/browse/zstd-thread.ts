import { createRequire } from 'node:module'
import { Transform, type TransformCallback } from 'node:stream'
import { Worker } from 'node:worker_threads'
import { ThreadLife } from '../runtime/thread-life.js'
import { LOWER_THREAD_PRIORITY_SOURCE } from '../runtime/thread-priority.js'

// zstd decompression on a worker thread. Node 20's zlib has no zstd, and fzstd is JavaScript:
// decompressing a layer of hundreds of MiB on the event loop would hold every request behind it
// for seconds (gzip runs in zlib's thread pool already). Each stream hands the thread one
// compressed chunk at a time and gets back what it decompressed to, so a stream has at most one
// chunk in flight and reading waits for the thread. The thread starts on first use and ends
// after IDLE_MS without streams: an idle server keeps no extra thread (as src/registry/hash-thread.ts).

const IDLE_MS = 30_000

// CommonJS run by the thread itself (no TypeScript loader there: `execArgv: []`); fzstd is
// required by its resolved path, as an eval'd script has no module of its own to resolve from.
const threadSource = (fzstd: string) => `
const { parentPort } = require('node:worker_threads')
const { Decompress } = require(${JSON.stringify(fzstd)})
const streams = new Map()
parentPort.on('message', (m) => {
  if (m.op === 'abort') return void streams.delete(m.id)
  let s = streams.get(m.id)
  if (!s) {
    const out = []
    // copied: the decoder reuses its window for the next block
    s = { out, decoder: new Decompress((data) => out.push(new Uint8Array(data).buffer)) }
    streams.set(m.id, s)
  }
  try {
    if (m.op === 'push') s.decoder.push(new Uint8Array(m.chunk))
    else s.decoder.push(new Uint8Array(0), true)
  } catch (err) {
    streams.delete(m.id)
    return void parentPort.postMessage({ id: m.id, error: String((err && err.message) || err) })
  }
  if (m.op === 'end') streams.delete(m.id)
  const out = s.out.splice(0)
  parentPort.postMessage({ id: m.id, out }, out)
})
`

type Reply = { id: number; out: ArrayBuffer[] } | { id: number; error: string }

/** A zstd decompression the thread refused (corrupt or truncated data). */
export class ZstdDataError extends Error {}

/**
 * One worker thread decompressing any number of zstd streams at once. A process needs one (see
 * zstdThread()); tests may make their own.
 */
export class ZstdThread {
  private worker: Worker | undefined
  /** the reply each stream waits for, by stream id */
  private readonly waiting = new Map<number, (reply: Reply | Error) => void>()
  private nextId = 0
  private open = 0
  private readonly life = new ThreadLife(IDLE_MS, () => this.open, () => {
    const worker = this.worker
    this.worker = undefined
    void worker?.terminate()
  })
  /** compressed bytes the thread has decompressed since this object was made */
  decompressedInput = 0

  /** A Transform from zstd data to the data it holds, decompressed on the thread. */
  stream(): Transform {
    const id = this.nextId++
    let closed = false
    const close = () => {
      if (closed) return
      closed = true
      this.waiting.delete(id)
      this.open--
      this.life.idleSoon(this.worker)
    }
    this.open++
    this.life.busy(this.worker)
    const request = (message: object, transfer: ArrayBuffer[] = []) => this.request(id, message, transfer)
    const count = (n: number) => (this.decompressedInput += n)
    return new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        // A transferred buffer of its own: the reader's buffer may be pooled or reused.
        const copy = new ArrayBuffer(chunk.byteLength)
        new Uint8Array(copy).set(chunk)
        request({ op: 'push', id, chunk: copy }, [copy]).then(
          (out) => {
            count(chunk.byteLength)
            for (const b of out) this.push(Buffer.from(b))
            cb()
          },
          (err: Error) => {
            close()
            cb(err)
          },
        )
      },
      flush(cb: TransformCallback) {
        request({ op: 'end', id }).then(
          (out) => {
            for (const b of out) this.push(Buffer.from(b))
            close()
            cb()
          },
          (err: Error) => {
            close()
            cb(err)
          },
        )
      },
      destroy: (err, cb) => {
        // Stopped early (a bound, a timeout, a client gone): the thread forgets the stream.
        if (!closed) this.worker?.postMessage({ op: 'abort', id })
        close()
        cb(err)
      },
    })
  }

  /** Ends the thread now (streams still running fail). */
  async close(): Promise<void> {
    this.life.stop()
    const worker = this.worker
    this.worker = undefined
    this.failAll(new Error('the zstd thread was closed'))
    await worker?.terminate()
  }

  private request(id: number, message: object, transfer: ArrayBuffer[]): Promise<ArrayBuffer[]> {
    const worker = this.thread()
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (reply) => {
        this.waiting.delete(id)
        if (reply instanceof Error) reject(reply)
        else if ('error' in reply) reject(new ZstdDataError(reply.error))
        else resolve(reply.out)
      })
      worker.postMessage(message, transfer)
    })
  }

  private thread(): Worker {
    if (this.worker) return this.worker
    const fzstd = createRequire(import.meta.url).resolve('fzstd')
    const worker = new Worker(LOWER_THREAD_PRIORITY_SOURCE + threadSource(fzstd), { eval: true, execArgv: [], name: 'berth-zstd' })
    worker.on('message', (reply: Reply) => this.waiting.get(reply.id)?.(reply))
    const lost = (err: Error) => {
      if (this.worker !== worker) return
      this.worker = undefined
      this.failAll(err)
    }
    worker.on('error', lost)
    worker.on('exit', (code) => lost(new Error(`the zstd thread exited (code ${code})`)))
    this.worker = worker
    if (this.open === 0) worker.unref()
    return worker
  }

  private failAll(err: Error): void {
    for (const settle of [...this.waiting.values()]) settle(err)
  }
}

let shared: ZstdThread | undefined

/** This process's zstd thread (started on first use). */
export function zstdThread(): ZstdThread {
  return (shared ??= new ZstdThread())
}
