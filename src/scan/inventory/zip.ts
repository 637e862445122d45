import { inflateRawSync } from 'node:zlib'

// Just enough of ZIP to read a Java archive held in memory: the central directory, and one
// entry's bytes (stored or deflated), each bounded. ZIP64 archives are refused.

export interface ZipEntry {
  name: string
  method: number
  compressedSize: number
  size: number
  offset: number
}

export function zipEntries(buf: Buffer, maxEntries: number): ZipEntry[] {
  const from = Math.max(0, buf.length - 22 - 0xffff)
  let eocd = -1
  for (let i = buf.length - 22; i >= from; i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i
      break
    }
  }
  if (eocd === -1) throw new Error('not a zip archive (no end of central directory)')
  const count = buf.readUInt16LE(eocd + 10)
  let at = buf.readUInt32LE(eocd + 16)
  if (count === 0xffff || at === 0xffffffff) throw new Error('ZIP64 archives are not read')
  if (count > maxEntries) throw new Error(`more than ${maxEntries} entries`)
  const entries: ZipEntry[] = []
  for (let i = 0; i < count; i++) {
    if (at + 46 > buf.length || buf.readUInt32LE(at) !== 0x02014b50) throw new Error('corrupt central directory')
    const nameLength = buf.readUInt16LE(at + 28)
    const extraLength = buf.readUInt16LE(at + 30)
    const commentLength = buf.readUInt16LE(at + 32)
    entries.push({
      name: buf.toString('utf8', at + 46, at + 46 + nameLength),
      method: buf.readUInt16LE(at + 10),
      compressedSize: buf.readUInt32LE(at + 20),
      size: buf.readUInt32LE(at + 24),
      offset: buf.readUInt32LE(at + 42),
    })
    at += 46 + nameLength + extraLength + commentLength
  }
  return entries
}

export function zipRead(buf: Buffer, e: ZipEntry, maxBytes: number): Buffer {
  if (e.size > maxBytes) throw new Error(`${e.name} is ${e.size} bytes once inflated, more than ${maxBytes}`)
  if (e.offset + 30 > buf.length || buf.readUInt32LE(e.offset) !== 0x04034b50) throw new Error(`corrupt local header of ${e.name}`)
  const start = e.offset + 30 + buf.readUInt16LE(e.offset + 26) + buf.readUInt16LE(e.offset + 28)
  const data = buf.subarray(start, start + e.compressedSize)
  if (data.length < e.compressedSize) throw new Error(`${e.name} is truncated`)
  if (e.method === 0) return data
  if (e.method === 8) return inflateRawSync(data, { maxOutputLength: Math.max(1, maxBytes) })
  throw new Error(`${e.name} uses compression method ${e.method}`)
}
