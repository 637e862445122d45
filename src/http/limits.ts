import type { Server } from 'node:net'
import { Transform, type Readable } from 'node:stream'
import { RegistryError } from '../errors/registry-error.js'

/** http.* bounds on what a client may hold before it has proved who it is. */
export interface ConnectionLimits {
  /** http.headersTimeout, ms */
  headersTimeoutMs: number
  /** http.idleTimeout, ms (0: none) */
  idleTimeoutMs: number
  /** http.anonymousBodyLimit, bytes */
  anonymousBodyLimit: number
  /** http.anonymousBodyTimeout, ms */
  anonymousBodyTimeoutMs: number
  /** http.maxConnectionsPerAddress (0: no cap) */
  maxConnectionsPerAddress: number
}

/**
 * Closes, as soon as it is accepted, a connection from an address that already holds `max`:
 * one client cannot take every file descriptor of the process with idle or slow connections.
 * It counts the peer of the TCP connection (behind a reverse proxy, the proxy).
 */
export function capConnectionsPerAddress(server: Server, max: number): void {
  if (max <= 0) return
  const open = new Map<string, number>()
  server.on('connection', (socket) => {
    const address = socket.remoteAddress ?? ''
    const count = (open.get(address) ?? 0) + 1
    if (count > max) {
      socket.destroy()
      return
    }
    open.set(address, count)
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1
      if (left === 0) open.delete(address)
      else open.set(address, left)
    })
  })
}

/** An anonymous body that may declare this length: refused before a byte is read. */
export function declaredTooLarge(contentLength: string | undefined, limit: number): RegistryError | undefined {
  if (contentLength === undefined || !(Number(contentLength) > limit)) return undefined
  return tooLarge(limit)
}

/**
 * The body of a request not yet authenticated, cut at `limit` bytes (413) and when it has not
 * arrived whole within `timeoutMs` of the start (408): a client sending a byte now and then
 * cannot hold a connection, a buffer and a file descriptor for as long as it likes.
 */
export function boundedBody(payload: Readable, limit: number, timeoutMs: number): Readable {
  let received = 0
  const bounded = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length
      if (received > limit) return callback(tooLarge(limit))
      callback(null, chunk)
    },
  })
  const timer = setTimeout(() => {
    payload.unpipe(bounded)
    bounded.destroy(new RegistryError('INVALID_FIELD', `request body not received within ${timeoutMs / 1000} s; sign in to send larger or slower bodies`, { status: 408, detail: { field: 'body' } }))
  }, timeoutMs)
  bounded.once('close', () => clearTimeout(timer))
  bounded.once('end', () => clearTimeout(timer))
  payload.once('error', (err) => bounded.destroy(err))
  payload.pipe(bounded)
  return bounded
}

function tooLarge(limit: number): RegistryError {
  return new RegistryError('SIZE_INVALID', `request body larger than ${limit} bytes before authentication`, { status: 413, detail: { field: 'body' } })
}
