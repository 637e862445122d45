import { open, readdir, readFile, stat } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { ZipReader } from '../zip.js'

// Where OSV documents come from: osv.dev's per-ecosystem `all.zip` exports (one JSON document
// per advisory), directories of such documents (searched recursively for *.json), or single
// .json files.

/** One OSV document of a source: its name in error messages, and its bytes on demand. */
export interface SourceDocument {
  name: string
  read(): Promise<Buffer>
}

export interface Source {
  /** how the source is named to the user (a path, or repository:tag/file) */
  label: string
  count: number
  documents(): AsyncIterable<SourceDocument>
  close(): Promise<void>
}

/** Largest OSV document accepted (the biggest osv.dev advisories are a few MiB). */
export const MAX_DOCUMENT = 64 * 1024 * 1024

async function isZip(path: string): Promise<boolean> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.alloc(4)
    const { bytesRead } = await fh.read(buf, 0, 4, 0)
    return bytesRead === 4 && buf.readUInt32LE(0) === 0x04034b50
  } finally {
    await fh.close()
  }
}

async function listJson(dir: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (d: string) => {
    const entries = await readdir(d, { withFileTypes: true })
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const e of entries) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else if (e.isFile() && e.name.endsWith('.json')) out.push(p)
    }
  }
  await walk(dir)
  return out
}

/** Opens a path (ZIP, directory or .json file) as a source; `label` names it in messages. */
export async function openSource(path: string, label = path): Promise<Source> {
  const s = await stat(path).catch(() => undefined)
  if (!s) throw new Error(`${label}: no such file or directory`)
  if (s.isDirectory()) {
    const files = await listJson(path)
    return {
      label,
      count: files.length,
      async *documents() {
        for (const f of files) yield { name: `${label}/${relative(path, f)}`, read: () => readDocument(f) }
      },
      close: async () => undefined,
    }
  }
  if (await isZip(path)) {
    const zip = await ZipReader.open(path, { maxEntrySize: MAX_DOCUMENT }).catch((err: Error) => {
      throw new Error(`${label}: ${err.message}`)
    })
    const entries = zip.entries.filter((e) => e.name.endsWith('.json') && !e.name.endsWith('/'))
    return {
      label,
      count: entries.length,
      async *documents() {
        for (const e of entries) yield { name: `${label}:${e.name}`, read: () => zip.read(e) }
      },
      close: () => zip.close(),
    }
  }
  if (path.endsWith('.json')) return { label, count: 1, async *documents() { yield { name: label, read: () => readDocument(path) } }, close: async () => undefined }
  throw new Error(`${label}: not an OSV source (expected a ZIP file, a directory or a .json file)`)
}

async function readDocument(path: string): Promise<Buffer> {
  const { size } = await stat(path)
  if (size > MAX_DOCUMENT) throw new Error(`${size} bytes, more than the ${MAX_DOCUMENT} allowed for one document`)
  return readFile(path)
}
