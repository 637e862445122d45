import { baseName, buffered, paragraphs, type FileReader, type ParseResult, type RawPackage } from './model.js'

// Debian and Ubuntu: /var/lib/dpkg/status (every package, installed or not: only those whose
// Status says "installed" count) and distroless's /var/lib/dpkg/status.d/<name> (one file per
// package, without a Status field).

const MAX_BYTES = 64 * 1024 * 1024

export function parseDpkgStatus(text: string, requireStatus: boolean): ParseResult {
  const packages: RawPackage[] = []
  const notes: string[] = []
  for (const p of paragraphs(text)) {
    const name = p.get('Package')
    const version = p.get('Version')
    if (!name || !version) continue
    const status = p.get('Status')
    if (status !== undefined ? status.split(/\s+/)[2] !== 'installed' : requireStatus) continue
    const pkg: RawPackage = { type: 'deb', name, version, licenses: [] }
    const arch = p.get('Architecture')
    if (arch) pkg.arch = arch
    const source = p.get('Source')
    if (source) {
      // "Source: openssl" or "Source: openssl (3.0.11-1)" when the source version differs
      const m = /^(\S+)(?:\s+\((.+)\))?$/.exec(source)
      if (m) pkg.source = { name: m[1] as string, version: m[2] ?? version }
    }
    packages.push(pkg)
  }
  return { packages, notes }
}

export const dpkgReader: FileReader = {
  name: 'dpkg',
  wants: (path) => path === 'var/lib/dpkg/status' || (path.startsWith('var/lib/dpkg/status.d/') && !path.slice(23).includes('/') && !path.endsWith('.md5sums')),
  sink: (path, size) =>
    buffered(path, size, MAX_BYTES, 'dpkg database', (data) => {
      const result = parseDpkgStatus(data.toString('utf8'), baseName(path) === 'status')
      if (data.length > 0 && result.packages.length === 0 && !/^Package:/m.test(data.toString('utf8'))) result.notes.push(`dpkg database /${path} holds no package records`)
      return result
    }),
}
