import { baseName, buffered, type FileReader, type ParseResult, type RawPackage } from './model.js'
import { ZipBuffer } from '../zip.js'

// Java archives (.jar, .war, .ear, Jenkins' .hpi/.jpi): the Maven coordinates of every
// META-INF/maven/<group>/<artifact>/pom.properties inside, and of the archives nested in it
// (a Spring Boot jar's BOOT-INF/lib/*.jar, a war's WEB-INF/lib/*.jar), to a bounded depth.
// Licences come from the <licenses> of the pom.xml next to the pom.properties.

const ARCHIVE = /\.(jar|war|ear|hpi|jpi)$/i
const MAX_ARCHIVE = 64 * 1024 * 1024
const MAX_NESTED = 32 * 1024 * 1024
const MAX_DEPTH = 3
const MAX_ENTRIES = 100_000

function properties(text: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([^#!=:\s][^=:]*?)\s*[=:]\s*(.*?)\s*$/.exec(line)
    if (m) out.set(m[1] as string, m[2] as string)
  }
  return out
}

function pomLicenses(pom: string): string[] {
  const block = /<licenses>([\s\S]*?)<\/licenses>/.exec(pom)?.[1] ?? ''
  return [...block.matchAll(/<name>\s*([^<]+?)\s*<\/name>/g)].map((m) => m[1] as string)
}

export function readArchive(buf: Buffer, label: string, depth: number, result: ParseResult): void {
  let zip: ZipBuffer
  try {
    zip = new ZipBuffer(buf, { maxEntries: MAX_ENTRIES })
  } catch (err) {
    result.notes.push(`Java archive ${label} cannot be read: ${(err as Error).message}`)
    return
  }
  const byName = new Map(zip.entries.map((e) => [e.name, e]))
  for (const e of zip.entries) {
    try {
      if (/^META-INF\/maven\/[^/]+\/[^/]+\/pom\.properties$/.test(e.name)) {
        const props = properties(zip.read(e, 1024 * 1024).toString('utf8'))
        const group = props.get('groupId')
        const artifact = props.get('artifactId')
        const version = props.get('version')
        if (!group || !artifact || !version) continue
        const pom = byName.get(e.name.replace(/pom\.properties$/, 'pom.xml'))
        const licenses = pom ? pomLicenses(zip.read(pom, 4 * 1024 * 1024).toString('utf8')) : []
        result.packages.push({ type: 'maven', name: `${group}:${artifact}`, namespace: group, version, licenses } satisfies RawPackage)
      } else if (ARCHIVE.test(e.name)) {
        if (depth >= MAX_DEPTH) {
          result.notes.push(`Java archive ${label}!/${e.name} is nested more than ${MAX_DEPTH} deep (not read)`)
          continue
        }
        readArchive(zip.read(e, MAX_NESTED), `${label}!/${e.name}`, depth + 1, result)
      }
    } catch (err) {
      result.notes.push(`Java archive ${label}!/${e.name}: ${(err as Error).message} (not read)`)
    }
  }
}

export const javaReader: FileReader = {
  name: 'java',
  wants: (path) => ARCHIVE.test(baseName(path)),
  sink: (path, size) =>
    buffered(path, size, MAX_ARCHIVE, 'Java archive', (data) => {
      const result: ParseResult = { packages: [], notes: [] }
      readArchive(data, `/${path}`, 0, result)
      // in name order, whatever the order of the archive's entries
      result.packages.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      return result
    }),
}
