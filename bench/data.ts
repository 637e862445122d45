// Deterministic blob contents, generated piece by piece: the same (seed, size) always gives the
// same bytes. The digest is computed piece by piece; an upload sends the whole blob from one
// buffer made before the clock starts, so that the client's allocation, copying and garbage
// collection (≈ 1.5 s of CPU per GiB when it generated pieces while sending) stay off the two
// cores the servers under test share with it.

import { createHash } from 'node:crypto'

export const PIECE = 1024 * 1024

/** One pseudo-random MiB (xorshift32); every piece is a rotation of it with a unique header. */
const BASE = (() => {
  const words = new Uint32Array(PIECE / 4)
  let x = 0x9e3779b9
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    words[i] = x >>> 0
  }
  return Buffer.from(words.buffer)
})()

/** Piece `index` of blob `seed`, in a buffer of its own. */
function piece(seed: number, index: number): Buffer {
  const out = Buffer.allocUnsafe(PIECE)
  const rotate = (seed * 7919 + index * 104_729) % PIECE
  BASE.copy(out, 0, rotate)
  BASE.copy(out, PIECE - rotate, 0, rotate)
  out.writeUInt32LE(seed >>> 0, 0)
  out.writeUInt32LE(index >>> 0, 4)
  out.writeUInt32LE(0x62657274, 8) // "bert"
  return out
}

/** The bytes [offset, offset + length) of blob (seed, size), in pieces of at most 1 MiB. */
export function* blobPieces(seed: number, size: number, offset = 0, length = size - offset): Generator<Buffer> {
  if (offset < 0 || length < 0 || offset + length > size) throw new RangeError('range outside the blob')
  let pos = offset
  const end = offset + length
  while (pos < end) {
    const index = Math.floor(pos / PIECE)
    const within = pos - index * PIECE
    const take = Math.min(PIECE - within, end - pos)
    const p = piece(seed, index)
    yield within === 0 && take === PIECE ? p : p.subarray(within, within + take)
    pos += take
  }
}

/** Blob (seed, size) in one buffer: image layers and configs, and the bodies of the uploads. */
export function blobBytes(seed: number, size: number): Buffer {
  return Buffer.concat([...blobPieces(seed, size)], size)
}

const digests = new Map<string, string>()

/** sha256 digest of blob (seed, size), streamed through the same generator; memoised. */
export function blobDigest(seed: number, size: number): string {
  const key = `${seed}:${size}`
  const known = digests.get(key)
  if (known) return known
  const hash = createHash('sha256')
  for (const p of blobPieces(seed, size)) hash.update(p)
  const digest = `sha256:${hash.digest('hex')}`
  digests.set(key, digest)
  return digest
}

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}
