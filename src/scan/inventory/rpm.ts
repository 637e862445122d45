import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { baseName, type FileReader, type RawPackage } from './model.js'
import { packagesOf, spooledSink } from './rpmdb.js'

// RPM's databases before SQLite. Both hold the same header blobs as rpmdb.sqlite (see
// rpmdb.ts), stream into a temporary file of their own as it does, and are read with
// positioned reads, a page or a blob at a time.
//
// BerkeleyDB (`/var/lib/rpm/Packages`: RHEL/CentOS ≤ 8, Amazon Linux 2, older Fedora and SUSE):
// a Berkeley DB hash database (libdb's dbinc/db_page.h). Page 0 is the hash metadata page
// (magic 0x061561 at byte 12, in the byte order of the machine that wrote it, which tells the
// order of every other field; page size at 20; encryption at 24; last page number at 32). Every
// page starts with a 26-byte header (page number at 8, next page at 16, item count at 20, free
// area offset at 22, page type at 25). Hash pages (type 13, or 2 for unsorted ones) hold an
// array of 2-byte item offsets after the header, key then value; rpm's keys are package
// numbers and its values header blobs, which lie on overflow pages (a value item of type
// H_OFFPAGE 3: page number at 4, total length at 8) chained by their next-page numbers, each
// holding its free-area-offset's worth of bytes after its header (type 7). A value small
// enough to lie on the hash page itself (H_KEYDATA 1) runs up to the previous item.
//
// NDB (`/var/lib/rpm/Packages.db`, `/usr/lib/sysimage/rpm/Packages.db`: SUSE, openSUSE): rpm's
// own format (lib/backend/ndb/rpmpkg.c), little-endian. A 32-byte header ('RpmP', version 0,
// generation, number of 4 KiB slot pages) then 16-byte slots ('Slot', package number, block
// offset, block count; offset 0: free) fill the slot pages; each package's blob starts at its
// block offset × 16: a head ('BlbS', package number, time, length), the header blob, a tail
// (Adler-32, length, 'BlbE').

const DIRS = ['var/lib/rpm/', 'usr/lib/sysimage/rpm/']
const PAGE_HEADER = 26
const HASH_MAGIC = 0x061561
const PAGE_TYPE = { hashUnsorted: 2, overflow: 7, hash: 13 } as const
const ITEM = { keyData: 1, offPage: 3 } as const
const PAGE_SIZES = new Set([512, 1024, 2048, 4096, 8192, 16384, 32768, 65536])
/** a header blob larger than this is no header (rpm's own bound on a header's data is 256 MiB; the database is bounded anyway) */
const MAX_BLOB = 64 * 1024 * 1024

const NDB_MAGIC = 0x506d7052 // 'RpmP'
const SLOT_MAGIC = 0x746f6c53 // 'Slot'
const BLOB_HEAD_MAGIC = 0x53626c42 // 'BlbS'
const BLOB_TAIL_MAGIC = 0x45626c42 // 'BlbE'
const NDB_PAGE = 4096
const NDB_HEADER = 32
const SLOT = 16
const BLOCK = 16

export const rpmLegacyReader: FileReader = {
  name: 'rpm-legacy',
  wants: (path) => DIRS.some((d) => path.startsWith(d)) && (baseName(path) === 'Packages' || baseName(path) === 'Packages.db'),
  sink: (path, size) => spooledSink(path, size, baseName(path) === 'Packages' ? readBerkeleyDb : readNdb),
}

/** `length` bytes at `position`; a file that ends first is truncated. */
function readAt(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length)
  let got = 0
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got)
    if (n === 0) throw new Error(`truncated: ${length} bytes at ${position} run past its end`)
    got += n
  }
  return buf
}

function withFile<T>(file: string, read: (fd: number, size: number) => T): T {
  const fd = openSync(file, 'r')
  try {
    return read(fd, fstatSync(fd).size)
  } finally {
    closeSync(fd)
  }
}

/** The packages of a BerkeleyDB `Packages` hash database. */
export function readBerkeleyDb(file: string): RawPackage[] {
  return withFile(file, (fd, size) => {
    const meta = readAt(fd, Math.min(512, size), 0)
    if (meta.length < 36) throw new Error('not a Berkeley DB database (too short)')
    const little = meta.readUInt32LE(12) === HASH_MAGIC
    if (!little && meta.readUInt32BE(12) !== HASH_MAGIC) throw new Error('not a Berkeley DB hash database (no hash magic)')
    const u32 = (b: Buffer, at: number) => (little ? b.readUInt32LE(at) : b.readUInt32BE(at))
    const u16 = (b: Buffer, at: number) => (little ? b.readUInt16LE(at) : b.readUInt16BE(at))
    const pageSize = u32(meta, 20)
    if (!PAGE_SIZES.has(pageSize)) throw new Error(`Berkeley DB page size ${pageSize}`)
    if (meta[24] !== 0) throw new Error('the Berkeley DB database is encrypted')
    const lastPage = u32(meta, 32)
    if ((lastPage + 1) * pageSize > size) throw new Error(`truncated: ${lastPage + 1} pages of ${pageSize} bytes, ${size} bytes`)

    /** A value on overflow pages: `length` bytes from page `first` on. */
    const overflow = (first: number, length: number): Buffer => {
      if (length > MAX_BLOB) throw new Error(`an overflow item of ${length} bytes`)
      const out = Buffer.alloc(length)
      let got = 0
      let pgno = first
      for (let pages = 0; got < length; pages++) {
        if (pgno === 0 || pgno > lastPage || pages > lastPage) throw new Error(`overflow chain from page ${first} breaks off after ${got} of ${length} bytes`)
        const page = readAt(fd, pageSize, pgno * pageSize)
        if (page[25] !== PAGE_TYPE.overflow) throw new Error(`page ${pgno} of an overflow chain is of type ${page[25]}`)
        const bytes = Math.min(u16(page, 22), pageSize - PAGE_HEADER, length - got)
        page.copy(out, got, PAGE_HEADER, PAGE_HEADER + bytes)
        got += bytes
        pgno = u32(page, 16)
      }
      return out
    }

    const blobs: Buffer[] = []
    for (let pgno = 1; pgno <= lastPage; pgno++) {
      const page = readAt(fd, pageSize, pgno * pageSize)
      if (page[25] !== PAGE_TYPE.hash && page[25] !== PAGE_TYPE.hashUnsorted) continue
      const items = u16(page, 20)
      if (items % 2 !== 0 || PAGE_HEADER + 2 * items > pageSize) throw new Error(`hash page ${pgno} has ${items} items`)
      const offset = (i: number) => u16(page, PAGE_HEADER + 2 * i)
      for (let i = 1; i < items; i += 2) {
        const at = offset(i)
        if (at < PAGE_HEADER + 2 * items || at >= pageSize) throw new Error(`hash page ${pgno}: item ${i} at ${at}`)
        if (page[at] === ITEM.offPage) {
          if (at + 12 > pageSize) throw new Error(`hash page ${pgno}: item ${i} runs past the page`)
          blobs.push(overflow(u32(page, at + 4), u32(page, at + 8)))
        } else if (page[at] === ITEM.keyData) {
          // items are laid out from the page's end down: this one ends where the previous one starts
          const end = offset(i - 1)
          if (end <= at || end > pageSize) throw new Error(`hash page ${pgno}: item ${i} has no length`)
          blobs.push(page.subarray(at + 1, end))
        }
      }
    }
    return packagesOf(blobs)
  })
}

/** The packages of an NDB `Packages.db`. */
export function readNdb(file: string): RawPackage[] {
  return withFile(file, (fd, size) => {
    const head = readAt(fd, Math.min(NDB_HEADER, size), 0)
    if (head.length < NDB_HEADER || head.readUInt32LE(0) !== NDB_MAGIC) throw new Error('not an rpm NDB database (no RpmP magic)')
    if (head.readUInt32LE(4) !== 0) throw new Error(`rpm NDB database version ${head.readUInt32LE(4)}`)
    const slotPages = head.readUInt32LE(12)
    if (slotPages === 0 || slotPages * NDB_PAGE > size) throw new Error(`truncated: ${slotPages} slot pages, ${size} bytes`)
    const slots = readAt(fd, slotPages * NDB_PAGE, 0)
    const firstBlock = (slotPages * NDB_PAGE) / BLOCK
    const blobs: Buffer[] = []
    for (let at = NDB_HEADER; at < slots.length; at += SLOT) {
      if (slots.readUInt32LE(at) !== SLOT_MAGIC) throw new Error(`slot ${at / SLOT} has no Slot magic`)
      const pkgIdx = slots.readUInt32LE(at + 4)
      const blkOff = slots.readUInt32LE(at + 8)
      const blkCnt = slots.readUInt32LE(at + 12)
      if (blkOff === 0) continue
      if (blkOff < firstBlock || blkCnt === 0 || (blkOff + blkCnt) * BLOCK > size || blkCnt * BLOCK > MAX_BLOB) throw new Error(`slot ${at / SLOT} points outside the blob area`)
      const blob = readAt(fd, blkCnt * BLOCK, blkOff * BLOCK)
      if (blob.readUInt32LE(0) !== BLOB_HEAD_MAGIC || blob.readUInt32LE(4) !== pkgIdx) throw new Error(`package ${pkgIdx}: no blob head at block ${blkOff}`)
      const length = blob.readUInt32LE(12)
      if (Math.ceil((16 + length + 12) / BLOCK) !== blkCnt) throw new Error(`package ${pkgIdx}: a blob of ${length} bytes in ${blkCnt} blocks`)
      const tail = blob.length - 12
      if (blob.readUInt32LE(tail + 4) !== length || blob.readUInt32LE(tail + 8) !== BLOB_TAIL_MAGIC) throw new Error(`package ${pkgIdx}: no blob tail`)
      blobs.push(blob.subarray(16, 16 + length))
    }
    return packagesOf(blobs)
  })
}
