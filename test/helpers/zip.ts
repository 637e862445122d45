import { open } from 'node:fs/promises'
import { crc32, deflateRawSync } from 'node:zlib'

// A small ZIP writer (PKWARE APPNOTE.TXT) for test fixtures and benchmarks: deflated entries,
// a central directory, and the ZIP64 end records when there are more than 65,535 entries (as
// osv.dev's larger exports have), so the reader in src/scan/zip.ts is checked against
// archives it did not write itself only where `zip` is installed (see test/scan/vulndb.test.ts).

export interface ZipInput {
  name: string
  data: Buffer | string
}

export async function writeZip(path: string, entries: Iterable<ZipInput>, opts: { store?: boolean } = {}): Promise<void> {
  const fh = await open(path, 'w')
  const central: Buffer[] = []
  let offset = 0
  let count = 0
  let pending: Buffer[] = []
  let pendingBytes = 0
  const write = async (b: Buffer) => {
    pending.push(b)
    pendingBytes += b.length
    offset += b.length
    if (pendingBytes > 1 << 20) await flush()
  }
  const flush = async () => {
    if (pending.length > 0) await fh.write(Buffer.concat(pending))
    pending = []
    pendingBytes = 0
  }
  try {
    for (const e of entries) {
      const data = Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data)
      const body = opts.store ? data : deflateRawSync(data)
      const method = opts.store ? 0 : 8
      const name = Buffer.from(e.name)
      const crc = crc32(data)
      const local = Buffer.alloc(30)
      local.writeUInt32LE(0x04034b50, 0)
      local.writeUInt16LE(20, 4)
      local.writeUInt16LE(0x0800, 6)
      local.writeUInt16LE(method, 8)
      local.writeUInt32LE(crc, 14)
      local.writeUInt32LE(body.length, 18)
      local.writeUInt32LE(data.length, 22)
      local.writeUInt16LE(name.length, 26)
      const header = Buffer.alloc(46)
      header.writeUInt32LE(0x02014b50, 0)
      header.writeUInt16LE(45, 4)
      header.writeUInt16LE(20, 6)
      header.writeUInt16LE(0x0800, 8)
      header.writeUInt16LE(method, 10)
      header.writeUInt32LE(crc, 16)
      header.writeUInt32LE(body.length, 20)
      header.writeUInt32LE(data.length, 24)
      header.writeUInt16LE(name.length, 28)
      header.writeUInt32LE(offset, 42)
      central.push(header, name)
      await write(local)
      await write(name)
      await write(body)
      count++
    }
    const cd = Buffer.concat(central)
    const cdOffset = offset
    await write(cd)
    if (count > 0xffff) {
      const z = Buffer.alloc(56)
      z.writeUInt32LE(0x06064b50, 0)
      z.writeBigUInt64LE(44n, 4)
      z.writeUInt16LE(45, 12)
      z.writeUInt16LE(45, 14)
      z.writeBigUInt64LE(BigInt(count), 24)
      z.writeBigUInt64LE(BigInt(count), 32)
      z.writeBigUInt64LE(BigInt(cd.length), 40)
      z.writeBigUInt64LE(BigInt(cdOffset), 48)
      const zOffset = offset
      await write(z)
      const locator = Buffer.alloc(20)
      locator.writeUInt32LE(0x07064b50, 0)
      locator.writeBigUInt64LE(BigInt(zOffset), 8)
      locator.writeUInt32LE(1, 16)
      await write(locator)
    }
    const end = Buffer.alloc(22)
    end.writeUInt32LE(0x06054b50, 0)
    end.writeUInt16LE(Math.min(count, 0xffff), 8)
    end.writeUInt16LE(Math.min(count, 0xffff), 10)
    end.writeUInt32LE(cd.length, 12)
    end.writeUInt32LE(cdOffset, 16)
    await write(end)
    await flush()
  } finally {
    await fh.close()
  }
}
