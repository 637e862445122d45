import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type BetterSqlite3 from 'better-sqlite3'
import type { FileReader, FileSink, ParseResult, RawPackage } from './model.js'

// RPM's SQLite database (rpm ≥ 4.16: Fedora 33+, RHEL/Rocky/Alma 9, openSUSE, Amazon Linux
// 2023): `/usr/lib/sysimage/rpm/rpmdb.sqlite` or `/var/lib/rpm/rpmdb.sqlite`. SQLite needs a
// file, so the database streams into a temporary file of its own (bounded: larger ones are not
// read, and say so), is opened read-only with better-sqlite3, and removed. Each row of its
// `Packages` table is one package's header blob, in rpm's header format (lib/header.c,
// doc/manual/format.md), without the 8-byte magic of package files:
//
//   il: int32 BE (index entries)   dl: int32 BE (data bytes)
//   il × { tag, type, offset, count: int32 BE }   then the dl bytes of data
//
// A string (type 6) is NUL-terminated at its offset; an I18N string (type 9) is a list of
// them, the first the untranslated one; an INT32 (type 4) is 4 bytes big-endian. Read here:
// NAME 1000, VERSION 1001, RELEASE 1002, EPOCH 1003, LICENSE 1014, ARCH 1022, SOURCERPM 1044.

const PATHS = new Set(['usr/lib/sysimage/rpm/rpmdb.sqlite', 'var/lib/rpm/rpmdb.sqlite'])
/** Largest rpmdb.sqlite read (a full RHEL server's is ~100 MiB). */
export const MAX_RPMDB = 256 * 1024 * 1024
/** rpm's own bounds on a header (lib/header.c: HEADER_TAGS_MAX, HEADER_DATA_MAX). */
const MAX_TAGS = 0xffff
const MAX_DATA = 0x0fffffff

const TAG = { name: 1000, version: 1001, release: 1002, epoch: 1003, license: 1014, arch: 1022, sourceRpm: 1044 } as const
const TYPE = { int32: 4, string: 6, stringArray: 8, i18nString: 9 } as const

export const rpmdbReader: FileReader = {
  name: 'rpmdb-sqlite',
  wants: (path) => PATHS.has(path),
  sink: (path, size) => spooledSink(path, size, readRpmdb),
}

/**
 * Streams an rpm database (any of its formats: each needs a file to seek in) into a temporary
 * file; `end` reads it with `read` and removes it, `abort` removes it.
 */
export function spooledSink(path: string, size: number, read: (file: string) => RawPackage[]): FileSink {
  const note = (text: string): ParseResult => ({ packages: [], notes: [`rpm database /${path} ${text}`] })
  if (size > MAX_RPMDB) return { write() {}, end: () => note(`is ${size} bytes, more than the ${MAX_RPMDB} read (not read)`) }
  const dir = mkdtempSync(join(tmpdir(), 'berth-rpmdb-'))
  const file = join(dir, 'rpmdb')
  let fd: number | undefined = openSync(file, 'w', 0o600)
  let written = 0
  const cleanUp = () => {
    if (fd !== undefined) closeSync(fd)
    fd = undefined
    rmSync(dir, { recursive: true, force: true })
  }
  return {
    write(chunk) {
      if (fd === undefined) return
      written += chunk.length
      if (written > MAX_RPMDB) return
      writeSync(fd, chunk)
    },
    end() {
      try {
        if (written > MAX_RPMDB) return note(`is more than ${MAX_RPMDB} bytes (not read)`)
        if (fd !== undefined) closeSync(fd)
        fd = undefined
        return { packages: read(file), notes: [] }
      } catch (err) {
        return note(`is malformed: ${(err as Error).message}`)
      } finally {
        cleanUp()
      }
    },
    abort: cleanUp,
  }
}

/** The packages of an rpmdb.sqlite file (the gpg-pubkey pseudo-packages left out). */
export function readRpmdb(file: string): RawPackage[] {
  forceRollbackJournal(file)
  // better-sqlite3 is loaded when an image has an RPM database, not before.
  const Database = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    const rows = db.prepare('SELECT blob FROM Packages ORDER BY hnum').all() as { blob: Buffer }[]
    return packagesOf(rows.map((r) => r.blob))
  } finally {
    db.close()
  }
}

/** The packages of a database's header blobs (the gpg-pubkey pseudo-packages left out). */
export function packagesOf(blobs: Buffer[]): RawPackage[] {
  const packages: RawPackage[] = []
  for (const blob of blobs) {
    const p = packageOf(parseHeader(blob))
    if (p && p.name !== 'gpg-pubkey') packages.push(p)
  }
  return packages
}

/**
 * rpm keeps its database in WAL mode; a WAL database opened read-only wants a `-shm` file and a
 * writable directory. The copy is ours: marking it a rollback-journal database (header bytes
 * 18 and 19, the file format write and read versions, 2 → 1) lets SQLite read it as it is.
 */
function forceRollbackJournal(file: string): void {
  const fd = openSync(file, 'r+')
  try {
    const header = Buffer.alloc(20)
    if (readSync(fd, header, 0, 20, 0) < 20 || header.toString('latin1', 0, 16) !== 'SQLite format 3\u0000') throw new Error('not an SQLite database')
    if (header[18] === 2 || header[19] === 2) writeSync(fd, Buffer.from([1, 1]), 0, 2, 18)
  } finally {
    closeSync(fd)
  }
}

type HeaderValue = string | string[] | number[]

/** The tags of one header blob that this reader wants. */
export function parseHeader(blob: Buffer): Map<number, HeaderValue> {
  if (blob.length < 8) throw new Error('rpm header shorter than its 8-byte preamble')
  const il = blob.readUInt32BE(0)
  const dl = blob.readUInt32BE(4)
  if (il < 1 || il > MAX_TAGS) throw new Error(`rpm header with ${il} tags`)
  if (dl > MAX_DATA) throw new Error(`rpm header with ${dl} data bytes`)
  const dataStart = 8 + il * 16
  if (dataStart + dl > blob.length) throw new Error('rpm header truncated')
  const data = blob.subarray(dataStart, dataStart + dl)
  const wanted = new Set<number>(Object.values(TAG))
  const out = new Map<number, HeaderValue>()
  for (let i = 0; i < il; i++) {
    const at = 8 + i * 16
    const tag = blob.readUInt32BE(at)
    if (!wanted.has(tag)) continue
    const type = blob.readUInt32BE(at + 4)
    const offset = blob.readInt32BE(at + 8)
    const count = blob.readUInt32BE(at + 12)
    if (offset < 0 || offset >= data.length) throw new Error(`rpm header tag ${tag} points outside its data`)
    if (type === TYPE.int32) {
      if (offset + 4 * count > data.length) throw new Error(`rpm header tag ${tag} runs past its data`)
      out.set(tag, Array.from({ length: count }, (_, k) => data.readUInt32BE(offset + 4 * k)))
    } else if (type === TYPE.string) {
      out.set(tag, stringsAt(data, offset, 1)[0] ?? '')
    } else if (type === TYPE.stringArray || type === TYPE.i18nString) {
      out.set(tag, stringsAt(data, offset, count))
    }
  }
  return out
}

function stringsAt(data: Buffer, offset: number, count: number): string[] {
  const out: string[] = []
  let at = offset
  for (let k = 0; k < count; k++) {
    const end = data.indexOf(0, at)
    if (end === -1) throw new Error('rpm header string without its terminating NUL')
    out.push(data.toString('utf8', at, end))
    at = end + 1
  }
  return out
}

function packageOf(h: Map<number, HeaderValue>): RawPackage | undefined {
  const text = (tag: number): string | undefined => {
    const v = h.get(tag)
    return typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined
  }
  const name = text(TAG.name)
  const version = text(TAG.version)
  if (!name || !version) return undefined
  const release = text(TAG.release)
  const epochs = h.get(TAG.epoch)
  const epoch = Array.isArray(epochs) && typeof epochs[0] === 'number' ? epochs[0] : undefined
  const license = text(TAG.license)
  const arch = text(TAG.arch)
  const sourceRpm = text(TAG.sourceRpm)
  const full = `${epoch !== undefined ? `${epoch}:` : ''}${version}${release ? `-${release}` : ''}`
  return {
    type: 'rpm',
    name,
    version: full,
    licenses: license ? [license] : [],
    ...(arch ? { arch } : {}),
    ...(sourceRpm ? { source: sourceOf(sourceRpm, epoch) } : {}),
  }
}

/** `openssl-3.0.7-27.el9.src.rpm` → openssl, [epoch:]3.0.7-27.el9 (the source package's name and version). */
function sourceOf(sourceRpm: string, epoch: number | undefined): { name: string; version?: string } {
  const m = /^(.+)-([^-]+)-([^-]+)\.(?:no)?src\.rpm$/.exec(sourceRpm)
  if (!m) return { name: sourceRpm }
  return { name: m[1] as string, version: `${epoch !== undefined ? `${epoch}:` : ''}${m[2]}-${m[3]}` }
}
