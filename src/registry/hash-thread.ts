import { Worker } from 'node:worker_threads'
import type { Algorithm } from '../oci/digest.js'
import { ThreadLife } from '../runtime/thread-life.js'
import { LOWER_THREAD_PRIORITY_SOURCE } from '../runtime/thread-priority.js'

// Hashing on a worker thread, for background work that re-reads whole blobs (scrub): SHA-256
// of a large blob is seconds of CPU, which on the event loop that answers requests would hold
// every request behind it. The event loop only reads the storage and hands each chunk over (one
// copy into a transferred buffer); the thread hashes. At most MAX_IN_FLIGHT bytes wait for the
// thread at a time, so a blob is never held whole in memory. The thread starts on first use and
// ends after IDLE_MS without work: an idle server keeps no extra thread.

/** Bytes handed to the thread and not hashed yet, per digest, before reading waits. */
const MAX_IN_FLIGHT = 4 * 1024 * 1024
const IDLE_MS = 30_000

// CommonJS run by the thread itself (no TypeScript loader there: `execArgv: []`).
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads')
const { createHash } = require('node:crypto')
const fs = require('node:fs')
const hashes = new Map()
// A whole local file, read and hashed here (blocking this thread only).
function hashFile(m) {
  let fd
  try {
    fd = fs.openSync(m.path, 'r')
    const hash = createHash(m.algorithm)
    const buf = Buffer.allocUnsafe(1024 * 1024)
    let bytes = 0
    let n
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) {
      hash.update(buf.subarray(0, n))
      bytes += n
    }
    parentPort.postMessage({ id: m.id, hex: hash.digest('hex'), bytes })
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: err.message, code: err.code })
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}
parentPort.on('message', (m) => {
  if (m.op === 'start') hashes.set(m.id, createHash(m.algorithm))
  else if (m.op === 'update') {
    hashes.get(m.id)?.update(new Uint8Array(m.chunk))
    parentPort.postMessage({ id: m.id, hashed: m.chunk.byteLength })
  } else if (m.op === 'end') {
    const hash = hashes.get(m.id)
    hashes.delete(m.id)
    parentPort.postMessage({ id: m.id, hex: hash ? hash.digest('hex') : undefined })
  } else if (m.op === 'abort') hashes.delete(m.id)
  else if (m.op === 'file') hashFile(m)
})
`

type Reply = { id: number; hashed: number } | { id: number; hex: string | undefined; bytes?: number } | { id: number; error: string; code?: string }

interface Job {
  inFlight: number
  /** resolves when the thread has caught up (in-flight bytes fell below the bound) */
  caughtUp?: () => void
  done?: (hex: string, bytes?: number) => void
  fail: (err: Error) => void
}

export interface ThreadDigest {
  hex: string
  bytes: number
}

/**
 * One worker thread hashing any number of streams at once. A process needs one (see
 * hashThread()); tests may make their own.
 */
export class HashThread {
  private worker: Worker | undefined
  private readonly jobs = new Map<number, Job>()
  private nextId = 0
  private readonly life = new ThreadLife(IDLE_MS, () => this.jobs.size, () => {
    const worker = this.worker
    this.worker = undefined
    void worker?.terminate()
  })
  /** bytes hashed by the thread since this object was made */
  hashedBytes = 0

  /** The digest (hex) of everything `source` yields, hashed on the thread. */
  async digest(algorithm: Algorithm, source: AsyncIterable<Uint8Array>): Promise<ThreadDigest> {
    const worker = this.thread()
    const id = this.nextId++
    let fail: (err: Error) => void = () => undefined
    const failed = new Promise<never>((_, reject) => (fail = reject))
    failed.catch(() => undefined)
    const job: Job = { inFlight: 0, fail }
    this.jobs.set(id, job)
    this.life.busy(this.worker)
    let bytes = 0
    try {
      worker.postMessage({ op: 'start', id, algorithm })
      for await (const chunk of source) {
        if (this.worker !== worker) await failed
        // A transferred buffer of its own: the reader's buffer may be pooled or reused.
        const copy = new ArrayBuffer(chunk.byteLength)
        new Uint8Array(copy).set(chunk)
        worker.postMessage({ op: 'update', id, chunk: copy }, [copy])
        bytes += chunk.byteLength
        job.inFlight += chunk.byteLength
        if (job.inFlight > MAX_IN_FLIGHT) await Promise.race([new Promise<void>((resolve) => (job.caughtUp = resolve)), failed])
      }
      const hex = new Promise<string>((resolve) => (job.done = resolve))
      worker.postMessage({ op: 'end', id })
      return { hex: await Promise.race([hex, failed]), bytes }
    } catch (err) {
      if (this.worker === worker) worker.postMessage({ op: 'abort', id })
      throw err
    } finally {
      this.jobs.delete(id)
      this.life.idleSoon(this.worker)
    }
  }

  /**
   * The digest of a file on local disk, opened, read and hashed by the thread itself, so the
   * event loop does no work for it at all. An absent file fails with an error whose `code` is
   * ENOENT.
   */
  async digestFile(algorithm: Algorithm, file: string): Promise<ThreadDigest> {
    const worker = this.thread()
    const id = this.nextId++
    const result = new Promise<ThreadDigest>((resolve, reject) => {
      this.jobs.set(id, { inFlight: 0, fail: reject, done: (hex, bytes = 0) => {
          this.hashedBytes += bytes
          resolve({ hex, bytes })
        },
      })
    })
    this.life.busy(this.worker)
    try {
      worker.postMessage({ op: 'file', id, algorithm, path: file })
      return await result
    } finally {
      this.jobs.delete(id)
      this.life.idleSoon(this.worker)
    }
  }

  /** Ends the thread now (jobs still running fail). */
  async close(): Promise<void> {
    this.life.stop()
    const worker = this.worker
    this.worker = undefined
    this.failAll(new Error('the hashing thread was closed'))
    await worker?.terminate()
  }

  private thread(): Worker {
    if (this.worker) return this.worker
    const worker = new Worker(LOWER_THREAD_PRIORITY_SOURCE + THREAD_SOURCE, { eval: true, execArgv: [], name: 'berth-hash' })
    worker.on('message', (reply: Reply) => {
      const job = this.jobs.get(reply.id)
      if (!job) return
      if ('hashed' in reply) {
        job.inFlight -= reply.hashed
        this.hashedBytes += reply.hashed
        if (job.inFlight <= MAX_IN_FLIGHT / 2 && job.caughtUp) {
          job.caughtUp()
          job.caughtUp = undefined
        }
      } else if ('error' in reply) job.fail(Object.assign(new Error(reply.error), { code: reply.code }))
      else if (reply.hex === undefined) job.fail(new Error('the hashing thread lost a digest'))
      else job.done?.(reply.hex, reply.bytes)
    })
    const lost = (err: Error) => {
      if (this.worker !== worker) return
      this.worker = undefined
      this.failAll(err)
    }
    worker.on('error', lost)
    worker.on('exit', (code) => lost(new Error(`the hashing thread exited (code ${code})`)))
    this.worker = worker
    return worker
  }

  private failAll(err: Error): void {
    for (const job of this.jobs.values()) job.fail(err)
  }
}

let shared: HashThread | undefined

/** This process's hashing thread (started on first use). */
export function hashThread(): HashThread {
  return (shared ??= new HashThread())
}
