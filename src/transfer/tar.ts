import { open, stat } from 'node:fs/promises'

// The POSIX tar format, the parts an OCI layout archive needs: regular files and directories,
// pax extended headers for long names, GNU long names when reading. Written by hand rather than
// with a library so that a reader can record where each entry's bytes start in the file (an
// uncompressed tar is then random access, like a directory) and so that a damaged archive is
// reported by entry name and byte offset.

const BLOCK = 512

export class TarProblem extends Error {}

/** One 512-byte ustar header (with a pax header before it when the name does not fit). */
export function tarHeader(name: string, size: number, type: 'file' | 'directory' = 'file'): Buffer {
  const fits = Buffer.byteLength(name) <= 100
  const main = ustar(fits ? name : name.slice(0, 100), size, type === 'file' ? '0' : '5')
  if (fits) return main
  const record = paxRecord('path', name)
  return Buffer.concat([ustar('PaxHeader', record.length, 'x'), record, padding(record.length), main])
}

/** The zero bytes that round an entry of `size` bytes up to a whole block. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK)
}

/** The end-of-archive marker: two zero blocks. */
export const TAR_END = Buffer.alloc(2 * BLOCK)

function ustar(name: string, size: number, typeflag: string): Buffer {
  const h = Buffer.alloc(BLOCK)
  h.write(name, 0, 100, 'utf8')
  h.write(octal(typeflag === '5' ? 0o755 : 0o644, 8), 100)
  h.write(octal(0, 8), 108)
  h.write(octal(0, 8), 116)
  h.write(octal(size, 12), 124)
  h.write(octal(0, 12), 136)
  h.write('        ', 148)
  h.write(typeflag, 156)
  h.write('ustar\u000000', 257)
  let sum = 0
  for (const b of h) sum += b
  h.write(octal(sum, 7), 148)
  return h
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\u0000`
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`
  let len = Buffer.byteLength(body)
  // The length counts its own digits.
  while (`${len}`.length + Buffer.byteLength(body) !== len) len = `${len}`.length + Buffer.byteLength(body)
  return Buffer.from(`${len}${body}`)
}

export interface TarEntryInfo {
  name: string
  /** where the entry's bytes start in the file */
  offset: number
  size: number
  type: 'file' | 'directory' | 'other'
}

/**
 * Every entry of an uncompressed tar file, read header by header (the data is skipped, not read).
 * A damaged archive (bad header checksum, an entry running past the end of the file, no
 * end-of-archive marker) fails with a TarProblem naming the entry.
 */
export async function tarEntries(file: string): Promise<TarEntryInfo[]> {
  const total = (await stat(file)).size
  const fh = await open(file, 'r')
  try {
    const entries: TarEntryInfo[] = []
    const header = Buffer.alloc(BLOCK)
    let pos = 0
    let longName: string | undefined
    let last = '(start of archive)'
    for (;;) {
      const { bytesRead } = await fh.read(header, 0, BLOCK, pos)
      if (bytesRead < BLOCK) throw new TarProblem(`truncated tar: it ends at byte ${total} after ${last}, without the end-of-archive marker`)
      if (header.every((b) => b === 0)) return entries
      const name0 = cString(header, 0, 100)
      if (!checksumOk(header)) throw new TarProblem(`damaged tar: bad header checksum at byte ${pos} (after ${last})`)
      const size = parseSize(header.subarray(124, 136))
      const typeflag = String.fromCharCode(header[156] ?? 0)
      const prefix = header.toString('latin1', 257, 262) === 'ustar' ? cString(header, 345, 155) : ''
      const name = longName ?? (prefix ? `${prefix}/${name0}` : name0)
      const offset = pos + BLOCK
      if (offset + size > total) throw new TarProblem(`truncated tar: ${name} needs ${size} bytes from byte ${offset} but the file has ${total} bytes`)
      pos = offset + size + padding(size).length
      if (typeflag === 'x' || typeflag === 'L') {
        const data = Buffer.alloc(size)
        await fh.read(data, 0, size, offset)
        longName = typeflag === 'L' ? cString(data, 0, size) : (paxPath(data) ?? longName)
        continue
      }
      longName = undefined
      if (typeflag === 'g') continue
      const type = typeflag === '0' || typeflag === '\u0000' || typeflag === '7' ? 'file' : typeflag === '5' ? 'directory' : 'other'
      entries.push({ name: normalise(name), offset, size, type })
      last = name
    }
  } finally {
    await fh.close()
  }
}

/** "./blobs/sha256/x" and "blobs/sha256/x" name the same file. */
function normalise(name: string): string {
  return name.replace(/^(\.\/)+/, '').replace(/\/+$/, '')
}

function cString(buf: Buffer, start: number, length: number): string {
  const slice = buf.subarray(start, start + length)
  const end = slice.indexOf(0)
  return slice.toString('utf8', 0, end === -1 ? slice.length : end)
}

function checksumOk(h: Buffer): boolean {
  const stored = parseInt(cString(h, 148, 8).trim() || '-1', 8)
  let sum = 0
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] as number)
  return stored === sum
}

/** Octal, or GNU base-256 for sizes of 8 GiB and more. */
function parseSize(field: Buffer): number {
  if (((field[0] as number) & 0x80) !== 0) {
    let n = (field[0] as number) & 0x7f
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] as number)
    return n
  }
  const text = cString(field, 0, field.length).trim()
  return text === '' ? 0 : parseInt(text, 8)
}

function paxPath(data: Buffer): string | undefined {
  let path: string | undefined
  let i = 0
  while (i < data.length) {
    const space = data.indexOf(0x20, i)
    if (space === -1) break
    const len = parseInt(data.toString('utf8', i, space), 10)
    if (!(len > 0)) break
    const record = data.toString('utf8', space + 1, i + len - 1)
    const eq = record.indexOf('=')
    if (record.slice(0, eq) === 'path') path = record.slice(eq + 1)
    i += len
  }
  return path
}
