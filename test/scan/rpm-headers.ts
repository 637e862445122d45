// rpm header blobs built here as rpm writes them (lib/header.c, doc/manual/format.md), for the
// tests of the rpm database readers.

type Tag = { tag: number; type: 4 | 6 | 9; value: number | string }

/** One header blob: the index entries (sorted by tag, as rpm writes them) and the data store, strings NUL-terminated, INT32 aligned to 4. */
function header(tags: Tag[]): Buffer {
  const entries: Buffer[] = []
  const data: Buffer[] = []
  let size = 0
  for (const t of [...tags].sort((a, b) => a.tag - b.tag)) {
    if (t.type === 4) {
      const pad = (4 - (size % 4)) % 4
      data.push(Buffer.alloc(pad))
      size += pad
    }
    const bytes = t.type === 4 ? Buffer.alloc(4) : Buffer.from(`${t.value}\0`, 'utf8')
    if (t.type === 4) bytes.writeUInt32BE(t.value as number)
    const entry = Buffer.alloc(16)
    entry.writeUInt32BE(t.tag, 0)
    entry.writeUInt32BE(t.type, 4)
    entry.writeUInt32BE(size, 8)
    entry.writeUInt32BE(1, 12)
    entries.push(entry)
    data.push(bytes)
    size += bytes.length
  }
  const pre = Buffer.alloc(8)
  pre.writeUInt32BE(entries.length, 0)
  pre.writeUInt32BE(size, 4)
  return Buffer.concat([pre, ...entries, ...data])
}

export const pkg = (name: string, version: string, release: string, o: { epoch?: number; arch?: string; license?: string; source?: string; description?: string } = {}) =>
  header([
    { tag: 1000, type: 6, value: name },
    { tag: 1001, type: 6, value: version },
    { tag: 1002, type: 6, value: release },
    ...(o.epoch !== undefined ? [{ tag: 1003, type: 4 as const, value: o.epoch }] : []),
    { tag: 1004, type: 9, value: `${name} summary` },
    ...(o.description ? [{ tag: 1005, type: 9 as const, value: o.description }] : []),
    ...(o.license ? [{ tag: 1014, type: 6 as const, value: o.license }] : []),
    { tag: 1022, type: 6, value: o.arch ?? 'x86_64' },
    ...(o.source ? [{ tag: 1044, type: 6 as const, value: o.source }] : []),
  ])

export const ROCKY = 'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n'
