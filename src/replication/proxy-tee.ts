import { PassThrough, type Readable } from 'node:stream'

/** Buffered per side before the upstream is paused. */
const HIGH_WATER = 1024 * 1024

export interface Tee {
  /** what storage reads */
  store: PassThrough
  /** what the first client reads: every byte but the last chunk until `release()` */
  client: PassThrough
  /** the source ended (all its bytes are in `store`'s buffer or read) */
  ended: Promise<void>
  /** hands the client the held last chunk and ends it: call once the blob is committed */
  release(): void
  /** cuts both sides (the client's connection breaks off before its last bytes) */
  fail(err: Error): void
}

/**
 * Copies an upstream blob to storage and to the first client at once, at the pace of the slower
 * of the two (the upstream is paused while either side's buffer is full). A client that goes away
 * leaves storage going on. The client never gets the last chunk before `release()`: a blob whose
 * digest turns out wrong (or that storage refuses) ends in a cut connection, never in a
 * download that looks complete.
 */
export function teeBlob(source: Readable, onBytes: (n: number) => void): Tee {
  const store = new PassThrough({ highWaterMark: HIGH_WATER })
  const client = new PassThrough({ highWaterMark: HIGH_WATER })
  let held: Buffer | undefined
  let clientGone = false
  let waiting = 0
  let released = false
  const resumeOne = () => {
    if (--waiting === 0) source.resume()
  }
  const waitFor = (side: PassThrough, alsoOn?: string) => {
    waiting++
    let done = false
    const once = () => {
      if (done) return
      done = true
      side.off('drain', once)
      if (alsoOn) side.off(alsoOn, once)
      resumeOne()
    }
    side.on('drain', once)
    if (alsoOn) side.on(alsoOn, once)
  }
  client.on('close', () => {
    clientGone = true
  })
  // Errors of a side reach its reader; the tee only stops writing to it.
  client.on('error', () => {
    clientGone = true
  })
  store.on('error', () => undefined)
  const ended = new Promise<void>((resolve, reject) => {
    source.on('data', (chunk: Buffer) => {
      onBytes(chunk.length)
      const storeOk = store.write(chunk)
      let clientOk = true
      if (!clientGone) {
        if (held) clientOk = client.write(held)
        held = chunk
      }
      if (!storeOk || !clientOk) source.pause()
      if (!storeOk) waitFor(store, 'close')
      if (!clientOk) waitFor(client, 'close')
    })
    source.once('end', () => {
      store.end()
      resolve()
    })
    source.on('error', (err) => {
      store.destroy(err)
      client.destroy(err)
      reject(err)
    })
  })
  ended.catch(() => undefined)
  return {
    store,
    client,
    ended,
    release() {
      if (released) return
      released = true
      if (!clientGone) client.end(held)
      held = undefined
    },
    fail(err: Error) {
      source.destroy()
      store.destroy(err)
      client.destroy(err)
    },
  }
}
