import { open, type FileHandle } from 'node:fs/promises'
import { crc32, inflateRaw } from 'node:zlib'
import { promisify } from 'node:util'

// A ZIP reader for osv.dev's `all.zip` exports, from the format's specification (PKWARE
// APPNOTE.TXT §4.3): the end-of-central-directory record (and its ZIP64 form, for archives
// of more than 65,535 entries or 4 GiB) locates the central directory, whose headers give each
// entry's name, method, sizes, CRC-32 and local header offset. Entries are read one at a time
// with positioned reads, stored (method 0) or deflated (method 8, inflated with
// node:zlib inflateRaw off the main thread), their CRC checked; memory holds one entry.

const inflate = promisify(inflateRaw)

const EOCD = 0x06054b50
const ZIP64_LOCATOR = 0x07064b50
const ZIP64_EOCD = 0x06064b50
const CENTRAL = 0x02014b50
const LOCAL = 0x04034b50
const MAX_COMMENT = 0xffff

export class ZipError extends Error {}

export interface ZipEntry {
  name: string
  method: number
  flags: number
  crc: number
  compressedSize: number
  size: number
  localOffset: number
}

export interface ZipLimits {
  /** largest uncompressed entry accepted (bytes) */
  maxEntrySize: number
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length)
  let done = 0
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done)
    if (bytesRead === 0) throw new ZipError('truncated ZIP file')
    done += bytesRead
  }
  return buf
}

/** Where the central directory is and how many entries it holds. */
async function findCentralDirectory(fh: FileHandle, fileSize: number): Promise<{ offset: number; size: number; entries: number }> {
  const tailLength = Math.min(fileSize, 22 + MAX_COMMENT)
  const tail = await readAt(fh, fileSize - tailLength, tailLength)
  let at = -1
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tail.length) {
      at = i
      break
    }
  }
  if (at < 0) throw new ZipError('not a ZIP file (no end of central directory record)')
  let entries = tail.readUInt16LE(at + 10)
  let size = tail.readUInt32LE(at + 12)
  let offset = tail.readUInt32LE(at + 16)
  const eocdPosition = fileSize - tailLength + at
  if ((entries === 0xffff || size === 0xffffffff || offset === 0xffffffff) && eocdPosition >= 20) {
    const locator = await readAt(fh, eocdPosition - 20, 20)
    if (locator.readUInt32LE(0) === ZIP64_LOCATOR) {
      const record = await readAt(fh, Number(locator.readBigUInt64LE(8)), 56)
      if (record.readUInt32LE(0) !== ZIP64_EOCD) throw new ZipError('ZIP64 end of central directory record missing')
      entries = Number(record.readBigUInt64LE(32))
      size = Number(record.readBigUInt64LE(40))
      offset = Number(record.readBigUInt64LE(48))
    }
  }
  if (offset + size > fileSize) throw new ZipError('truncated ZIP file (central directory beyond the end)')
  return { offset, size, entries }
}

function parseCentralDirectory(cd: Buffer, expected: number): ZipEntry[] {
  const entries: ZipEntry[] = []
  let p = 0
  while (p + 46 <= cd.length && cd.readUInt32LE(p) === CENTRAL) {
    const nameLength = cd.readUInt16LE(p + 28)
    const extraLength = cd.readUInt16LE(p + 30)
    const commentLength = cd.readUInt16LE(p + 32)
    const entry: ZipEntry = {
      flags: cd.readUInt16LE(p + 8),
      method: cd.readUInt16LE(p + 10),
      crc: cd.readUInt32LE(p + 16),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      localOffset: cd.readUInt32LE(p + 42),
      name: cd.toString('utf8', p + 46, p + 46 + nameLength),
    }
    readZip64Extra(entry, cd.subarray(p + 46 + nameLength, p + 46 + nameLength + extraLength))
    entries.push(entry)
    p += 46 + nameLength + extraLength + commentLength
  }
  if (entries.length !== expected) throw new ZipError(`corrupt ZIP central directory (${entries.length} of ${expected} entries readable)`)
  return entries
}

/** The ZIP64 extended information extra field (0x0001) holds the sizes that did not fit. */
function readZip64Extra(entry: ZipEntry, extra: Buffer): void {
  let p = 0
  while (p + 4 <= extra.length) {
    const id = extra.readUInt16LE(p)
    const length = extra.readUInt16LE(p + 2)
    if (id === 0x0001) {
      let q = p + 4
      const next = () => {
        const v = q + 8 <= p + 4 + length ? Number(extra.readBigUInt64LE(q)) : undefined
        q += 8
        return v
      }
      if (entry.size === 0xffffffff) entry.size = next() ?? entry.size
      if (entry.compressedSize === 0xffffffff) entry.compressedSize = next() ?? entry.compressedSize
      if (entry.localOffset === 0xffffffff) entry.localOffset = next() ?? entry.localOffset
    }
    p += 4 + length
  }
}

export class ZipReader {
  private constructor(
    private readonly fh: FileHandle,
    private readonly fileSize: number,
    readonly entries: ZipEntry[],
    private readonly limits: ZipLimits,
  ) {}

  static async open(path: string, limits: ZipLimits): Promise<ZipReader> {
    const fh = await open(path, 'r')
    try {
      const { size: fileSize } = await fh.stat()
      const cd = await findCentralDirectory(fh, fileSize)
      const entries = parseCentralDirectory(await readAt(fh, cd.offset, cd.size), cd.entries)
      return new ZipReader(fh, fileSize, entries, limits)
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  /** The entry's bytes, inflated and checked against its CRC-32. */
  async read(entry: ZipEntry): Promise<Buffer> {
    if (entry.flags & 1) throw new ZipError(`encrypted entries are not supported`)
    if (entry.size > this.limits.maxEntrySize) throw new ZipError(`${entry.size} bytes, more than the ${this.limits.maxEntrySize} allowed for one entry`)
    const header = await readAt(this.fh, entry.localOffset, 30)
    if (header.readUInt32LE(0) !== LOCAL) throw new ZipError(`local header missing`)
    const start = entry.localOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28)
    if (start + entry.compressedSize > this.fileSize) throw new ZipError(`truncated`)
    const raw = await readAt(this.fh, start, entry.compressedSize)
    let data: Buffer
    if (entry.method === 0) data = raw
    else if (entry.method === 8) {
      try {
        data = await inflate(raw, { maxOutputLength: this.limits.maxEntrySize })
      } catch (err) {
        throw new ZipError(`corrupt deflate data (${(err as Error).message})`)
      }
    } else throw new ZipError(`compression method ${entry.method} is not supported (stored and deflate are)`)
    if (data.length !== entry.size || crc32(data) !== entry.crc) throw new ZipError(`CRC or size mismatch (corrupt ZIP entry)`)
    return data
  }

  close(): Promise<void> {
    return this.fh.close()
  }
}
