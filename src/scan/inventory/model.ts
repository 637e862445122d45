// What the package parsers produce before the image's OS is known: a package's own fields. The
// ecosystem and purl of an OS package depend on /etc/os-release, which may come from another
// layer, so they are made once every layer is read (see finish.ts).

export type PackageType = 'deb' | 'apk' | 'rpm' | 'npm' | 'pypi' | 'golang' | 'maven' | 'cargo' | 'gem' | 'composer'

export interface RawPackage {
  type: PackageType
  name: string
  version: string
  licenses: string[]
  /** purl namespace where the name has one part outside it (maven group, composer vendor) */
  namespace?: string
  arch?: string
  source?: { name: string; version?: string }
  /** a lock file's entry that the installed package's own file, at this path, replaces when present */
  installedAt?: string
}

export interface OsRelease {
  id: string
  versionId: string
  prettyName?: string
  idLike?: string[]
  versionCodename?: string
}

export interface ParseResult {
  packages: RawPackage[]
  notes: string[]
  os?: OsRelease
}

/** Receives one file's bytes as they stream out of the layer; `end` answers what it found. */
export interface FileSink {
  write(chunk: Buffer): void
  end(): ParseResult
  /** the layer failed before `end`: let go of what the sink holds (a temporary file) */
  abort?(): void
}

/** A reader of one kind of file. `wants` sees every regular file of every layer: keep it cheap. */
export interface FileReader {
  name: string
  wants(path: string, size: number, mode: number): boolean
  sink(path: string, size: number): FileSink
}

export const empty = (): ParseResult => ({ packages: [], notes: [] })

/** One file read by several sinks at once (an executable: Go build info, Rust audit data): what they all found. */
export function allOf(sinks: FileSink[]): FileSink {
  return {
    write(chunk) {
      for (const s of sinks) s.write(chunk)
    },
    end() {
      const results = sinks.map((s) => s.end())
      return { packages: results.flatMap((r) => r.packages), notes: results.flatMap((r) => r.notes) }
    },
    abort() {
      for (const s of sinks) s.abort?.()
    },
  }
}

/**
 * A sink that keeps the file in memory up to `maxBytes` and parses it at the end; a larger
 * file is not read and says so in a note.
 */
export function buffered(path: string, size: number, maxBytes: number, what: string, parse: (data: Buffer) => ParseResult): FileSink {
  if (size > maxBytes) {
    return { write() {}, end: () => ({ packages: [], notes: [`${what} /${path} is ${size} bytes, more than the ${maxBytes} read (not read)`] }) }
  }
  const chunks: Buffer[] = []
  let total = 0
  return {
    write(chunk) {
      total += chunk.length
      if (total <= maxBytes) chunks.push(chunk)
    },
    end() {
      if (total > maxBytes) return { packages: [], notes: [`${what} /${path} is more than ${maxBytes} bytes (not read)`] }
      try {
        return parse(Buffer.concat(chunks))
      } catch (err) {
        return { packages: [], notes: [`${what} /${path} is malformed: ${(err as Error).message}`] }
      }
    },
  }
}

/** The last component of a path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1)
}

/** RFC 822-style paragraphs (dpkg status, PKG-INFO headers): fields with continuation lines. */
export function paragraphs(text: string): Map<string, string>[] {
  const out: Map<string, string>[] = []
  let current = new Map<string, string>()
  let last: string | undefined
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') {
      if (current.size > 0) out.push(current)
      current = new Map()
      last = undefined
      continue
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && last !== undefined) {
      current.set(last, `${current.get(last) ?? ''}\n${line.trim()}`)
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    last = line.slice(0, colon).trim()
    current.set(last, line.slice(colon + 1).trim())
  }
  if (current.size > 0) out.push(current)
  return out
}
