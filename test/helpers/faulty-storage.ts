import type { Readable } from 'node:stream'
import { StorageUnavailable, type BlobWriter, type FileInfo, type ReadOptions, type StorageDriver, type WriterOptions } from '../../src/storage/driver.js'

/** Every call a storage driver takes, with the calls on a writer it returned. */
export type StorageCall =
  | 'stat'
  | 'reader'
  | 'writer'
  | 'writer.write'
  | 'writer.commit'
  | 'getContent'
  | 'putContent'
  | 'sync'
  | 'move'
  | 'delete'
  | 'list'
  | 'check'
  | 'redirectUrl'
  | 'abortIncomplete'

export interface CallRecord {
  call: StorageCall
  path: string
}

interface Fault {
  matches(record: CallRecord, index: number): boolean
  error: () => Error
  remaining: number
}

/** A fault of a kind the services must classify. */
export const faults = {
  transient: () => new StorageUnavailable('injected: the object store answered 503 SlowDown'),
  full: () => Object.assign(new Error('injected: ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 }),
  io: () => Object.assign(new Error('injected: EIO: i/o error'), { code: 'EIO', errno: -5 }),
}

/**
 * Wraps any storage driver and fails any of its calls on demand: by kind and path, or the n-th
 * call from now. Records every call, so a test can first learn which calls an operation makes
 * and then fail each of them in turn.
 */
export class FaultyStorage implements StorageDriver {
  readonly name: string
  /** every call since the last reset() */
  log: CallRecord[] = []
  private pending: Fault[] = []
  /** calls counted since the last arm, for faults at an index */
  private counted = 0
  readonly sync?: (path: string) => Promise<void>
  readonly redirectUrl?: (path: string, opts: { method: 'GET' | 'HEAD' }) => Promise<string | undefined>
  readonly abortIncomplete?: (prefix: string, olderThan: Date) => Promise<number>
  readonly freeBytes?: () => Promise<number>

  constructor(readonly inner: StorageDriver) {
    this.name = inner.name
    // Optional calls exist only when the wrapped driver has them (the services ask `?.`).
    if (inner.sync) this.sync = async (path) => this.enter('sync', path, () => inner.sync!(path))
    if (inner.redirectUrl) this.redirectUrl = async (path, opts) => this.enter('redirectUrl', path, () => inner.redirectUrl!(path, opts))
    if (inner.freeBytes) this.freeBytes = () => inner.freeBytes!()
    if (inner.abortIncomplete) this.abortIncomplete = async (prefix, olderThan) => this.enter('abortIncomplete', prefix, () => inner.abortIncomplete!(prefix, olderThan))
  }

  /** Forgets recorded calls and pending faults. */
  reset(): void {
    this.log = []
    this.pending = []
    this.counted = 0
  }

  /** Fails the next `times` calls that match `call` (and `path`, when given). */
  fail(call: StorageCall, opts: { path?: RegExp; error?: () => Error; times?: number } = {}): void {
    this.pending.push({
      matches: (r) => r.call === call && (opts.path === undefined || opts.path.test(r.path)),
      error: opts.error ?? faults.transient,
      remaining: opts.times ?? 1,
    })
  }

  /** Fails the `index`-th call (0-based) from now, whatever it is. */
  failAt(index: number, error: () => Error = faults.transient): void {
    this.counted = 0
    this.pending.push({ matches: (_r, i) => i === index, error, remaining: 1 })
  }

  /** Fails every call from now until reset() (an outage). */
  failAll(error: () => Error = faults.transient): void {
    this.pending.push({ matches: () => true, error, remaining: Infinity })
  }

  private trip(call: StorageCall, path: string): void {
    const record = { call, path }
    this.log.push(record)
    const index = this.counted++
    const fault = this.pending.find((f) => f.remaining > 0 && f.matches(record, index))
    if (!fault) return
    fault.remaining--
    throw fault.error()
  }

  private async enter<T>(call: StorageCall, path: string, work: () => Promise<T>): Promise<T> {
    this.trip(call, path)
    return work()
  }

  stat(path: string): Promise<FileInfo> {
    return this.enter('stat', path, () => this.inner.stat(path))
  }
  reader(path: string, opts?: ReadOptions): Promise<Readable> {
    return this.enter('reader', path, () => this.inner.reader(path, opts))
  }
  async writer(path: string, opts?: WriterOptions): Promise<BlobWriter> {
    const writer = await this.enter('writer', path, () => this.inner.writer(path, opts))
    // The first chunk written and the commit are calls of their own.
    const write = writer.write.bind(writer) as (chunk: unknown, ...rest: unknown[]) => boolean
    let first = true
    writer.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (first) {
        first = false
        try {
          this.trip('writer.write', path)
        } catch (err) {
          writer.destroy(err as Error)
          return false
        }
      }
      return write(chunk, ...rest)
    }) as typeof writer.write
    const commit = writer.commit.bind(writer)
    writer.commit = () => this.enter('writer.commit', path, commit)
    return writer
  }
  getContent(path: string): Promise<Buffer> {
    return this.enter('getContent', path, () => this.inner.getContent(path))
  }
  putContent(path: string, data: Buffer): Promise<void> {
    return this.enter('putContent', path, () => this.inner.putContent(path, data))
  }
  move(from: string, to: string): Promise<void> {
    return this.enter('move', `${from} -> ${to}`, () => this.inner.move(from, to))
  }
  delete(path: string): Promise<void> {
    return this.enter('delete', path, () => this.inner.delete(path))
  }
  async *list(prefix: string): AsyncIterable<string> {
    this.trip('list', prefix)
    yield* this.inner.list(prefix)
  }
  check(): Promise<void> {
    return this.enter('check', '', () => this.inner.check())
  }
  async close(): Promise<void> {
    await this.inner.close?.()
  }
}
