import { baseName, buffered, type FileReader, type ParseResult } from './model.js'

// Python: installed distributions' core metadata, `<name>.dist-info/METADATA` (wheels) and
// `<name>.egg-info/PKG-INFO` or a bare `<name>.egg-info` file (setuptools). Only the header
// part is read (the body after the first blank line is the description).

const MAX_BYTES = 4 * 1024 * 1024

/** PEP 503 normalised project name (what PyPI and OSV use). */
export function normalizePythonName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-')
}

export function parseCoreMetadata(text: string): ParseResult {
  const headerEnd = text.search(/\r?\n\r?\n/)
  const header = headerEnd === -1 ? text : text.slice(0, headerEnd)
  const fields: [string, string][] = []
  for (const line of header.split(/\r?\n/)) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) {
      const last = fields[fields.length - 1] as [string, string]
      last[1] += `\n${line.trim()}`
      continue
    }
    const colon = line.indexOf(':')
    if (colon > 0) fields.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()])
  }
  const get = (k: string) => fields.find(([key]) => key === k)?.[1]
  const name = get('name')
  const version = get('version')
  if (!name || !version) throw new Error('no Name or Version field')
  return { packages: [{ type: 'pypi', name: normalizePythonName(name), version, licenses: pythonLicenses(fields) }], notes: [] }
}

/** License-Expression (PEP 639), else a one-line License field, else the licence classifiers. */
function pythonLicenses(fields: [string, string][]): string[] {
  const expr = fields.find(([k]) => k === 'license-expression')?.[1]
  if (expr) return [expr]
  const license = fields.find(([k]) => k === 'license')?.[1]
  if (license && !license.includes('\n') && license.length <= 100 && !/^unknown$/i.test(license)) return [license]
  return fields.filter(([k, v]) => k === 'classifier' && v.startsWith('License :: ')).map(([, v]) => v.split(' :: ').pop() as string).filter((v) => v !== 'OSI Approved')
}

export const pythonReader: FileReader = {
  name: 'python',
  wants: (path) => {
    const base = baseName(path)
    if (base === 'METADATA') return path.endsWith('.dist-info/METADATA')
    if (base === 'PKG-INFO') return path.endsWith('.egg-info/PKG-INFO')
    return base.endsWith('.egg-info')
  },
  sink: (path, size) => buffered(path, size, MAX_BYTES, 'Python package metadata', (data) => parseCoreMetadata(data.toString('utf8'))),
}
