import { readSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { promisify } from 'node:util'
import { crc32, inflateRaw, inflateRawSync } from 'node:zlib'

// Berth's one reader of the ZIP format, from its specification (PKWARE APPNOTE.TXT §4.3): the
// end-of-central-directory record (and its ZIP64 form, for more than 65,535 entries or 4 GiB)
// locates the central directory, whose headers give each entry's name, method, sizes, CRC-32
// and local header offset; an entry is stored (method 0) or deflated (method 8), its size and
// CRC checked once inflated. Two ways in, one format:
//
// - ZipReader: a file (osv.dev's all.zip exports), read with positioned reads, one entry in
//   memory at a time, inflated off the main thread;
// - ZipBuffer: an archive held in memory (a Java archive streamed out of a layer, nested jars),
//   read synchronously, each entry bounded.

const EOCD = 0x06054b50
const ZIP64_LOCATOR = 0x07064b50
const ZIP64_EOCD = 0x06064b50
const CENTRAL = 0x02014b50
const LOCAL = 0x04034b50
const MAX_COMMENT = 0xffff
const EOCD_SIZE = 22

const inflate = promisify(inflateRaw)

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

/** Where the central directory is and how many entries it holds. */
interface Directory {
  offset: number
  size: number
  entries: number
}

/**
 * Locates the central directory: the end record in the archive's last 64 KiB + 22 bytes, then,
 * when a field overflowed, the ZIP64 locator and record. `read` is synchronous: a buffer's
 * bytes, or a few small positioned reads of a file when it is opened.
 */
function locate(fileSize: number, read: (position: number, length: number) => Buffer): Directory {
  const tailLength = Math.min(fileSize, EOCD_SIZE + MAX_COMMENT)
  const tail = read(fileSize - tailLength, tailLength)
  let at = -1
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD && i + EOCD_SIZE + tail.readUInt16LE(i + 20) <= tail.length) {
      at = i
      break
    }
  }
  if (at < 0) throw new ZipError('not a ZIP file (no end of central directory record)')
  let dir: Directory = { entries: tail.readUInt16LE(at + 10), size: tail.readUInt32LE(at + 12), offset: tail.readUInt32LE(at + 16) }
  const eocdPosition = fileSize - tailLength + at
  if ((dir.entries === 0xffff || dir.size === 0xffffffff || dir.offset === 0xffffffff) && eocdPosition >= 20) {
    const locator = read(eocdPosition - 20, 20)
    if (locator.readUInt32LE(0) === ZIP64_LOCATOR) {
      const recordAt = Number(locator.readBigUInt64LE(8))
      const record = recordAt + 56 <= fileSize ? read(recordAt, 56) : undefined
      if (record?.readUInt32LE(0) !== ZIP64_EOCD) throw new ZipError('ZIP64 end of central directory record missing')
      dir = { entries: Number(record.readBigUInt64LE(32)), size: Number(record.readBigUInt64LE(40)), offset: Number(record.readBigUInt64LE(48)) }
    }
  }
  if (dir.offset + dir.size > fileSize) throw new ZipError('truncated ZIP file (central directory beyond the end)')
  return dir
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

/** What must hold before an entry is read: not encrypted, a known method, small enough once inflated. */
function readable(entry: ZipEntry, maxBytes: number): void {
  if (entry.flags & 1) throw new ZipError('encrypted entries are not supported')
  if (entry.method !== 0 && entry.method !== 8) throw new ZipError(`compression method ${entry.method} is not supported (stored and deflate are)`)
  if (entry.size > maxBytes) throw new ZipError(`${entry.size} bytes once inflated, more than the ${maxBytes} allowed for one entry`)
}

/** Where an entry's data starts, from its local header (whose name and extra lengths may differ from the central one's). */
function dataStart(entry: ZipEntry, local: Buffer, fileSize: number): number {
  if (local.length < 30 || local.readUInt32LE(0) !== LOCAL) throw new ZipError('local header missing')
  const start = entry.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28)
  if (start + entry.compressedSize > fileSize) throw new ZipError('truncated')
  return start
}

function verified(entry: ZipEntry, data: Buffer): Buffer {
  if (data.length !== entry.size || crc32(data) !== entry.crc) throw new ZipError('CRC or size mismatch (corrupt ZIP entry)')
  return data
}

/** A ZIP file, read with positioned reads; one entry in memory at a time. */
export class ZipReader {
  private constructor(
    private readonly fh: FileHandle,
    private readonly fileSize: number,
    readonly entries: ZipEntry[],
    private readonly limits: { maxEntrySize: number },
  ) {}

  static async open(path: string, limits: { maxEntrySize: number }): Promise<ZipReader> {
    const fh = await open(path, 'r')
    try {
      const { size: fileSize } = await fh.stat()
      const dir = locate(fileSize, (position, length) => readAtSync(fh.fd, position, length))
      const entries = parseCentralDirectory(await readAt(fh, dir.offset, dir.size), dir.entries)
      return new ZipReader(fh, fileSize, entries, limits)
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  /** The entry's bytes, inflated and checked against its size and CRC-32. */
  async read(entry: ZipEntry): Promise<Buffer> {
    readable(entry, this.limits.maxEntrySize)
    const start = dataStart(entry, await readAt(this.fh, entry.localOffset, 30), this.fileSize)
    const raw = await readAt(this.fh, start, entry.compressedSize)
    if (entry.method === 0) return verified(entry, raw)
    try {
      return verified(entry, await inflate(raw, { maxOutputLength: Math.max(1, this.limits.maxEntrySize) }))
    } catch (err) {
      if (err instanceof ZipError) throw err
      throw new ZipError(`corrupt deflate data (${(err as Error).message})`)
    }
  }

  close(): Promise<void> {
    return this.fh.close()
  }
}

/** A ZIP archive held in memory, read synchronously. */
export class ZipBuffer {
  readonly entries: ZipEntry[]

  constructor(
    private readonly buf: Buffer,
    limits: { maxEntries: number },
  ) {
    const read = (position: number, length: number) => {
      if (position < 0 || position + length > buf.length) throw new ZipError('truncated ZIP archive')
      return buf.subarray(position, position + length)
    }
    const dir = locate(buf.length, read)
    if (dir.entries > limits.maxEntries) throw new ZipError(`more than ${limits.maxEntries} entries`)
    this.entries = parseCentralDirectory(read(dir.offset, dir.size), dir.entries)
  }

  /** The entry's bytes (at most `maxBytes` once inflated), checked against its size and CRC-32. */
  read(entry: ZipEntry, maxBytes: number): Buffer {
    readable(entry, maxBytes)
    const start = dataStart(entry, this.buf.subarray(entry.localOffset, entry.localOffset + 30), this.buf.length)
    const raw = this.buf.subarray(start, start + entry.compressedSize)
    if (entry.method === 0) return verified(entry, raw)
    try {
      return verified(entry, inflateRawSync(raw, { maxOutputLength: Math.max(1, maxBytes) }))
    } catch (err) {
      if (err instanceof ZipError) throw err
      throw new ZipError(`corrupt deflate data (${(err as Error).message})`)
    }
  }
}

function readAtSync(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length)
  let done = 0
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done)
    if (n === 0) throw new ZipError('truncated ZIP file')
    done += n
  }
  return buf
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
