import { buffered, type FileReader, type OsRelease } from './model.js'

// /etc/os-release (often a symlink to /usr/lib/os-release): shell-style KEY=value lines.

export const OS_RELEASE_PATHS = ['etc/os-release', 'usr/lib/os-release']

export function parseOsRelease(text: string): OsRelease | undefined {
  const fields = new Map<string, string>()
  for (const line of text.split(/\r?\n/)) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim())
    if (!m) continue
    fields.set(m[1] as string, unquote((m[2] as string).trim()))
  }
  const id = fields.get('ID')
  if (!id) return undefined
  const idLike = fields.get('ID_LIKE')
  const codename = fields.get('VERSION_CODENAME')
  return {
    id: id.toLowerCase(),
    versionId: fields.get('VERSION_ID') ?? '',
    ...(fields.get('PRETTY_NAME') ? { prettyName: fields.get('PRETTY_NAME') } : {}),
    ...(idLike ? { idLike: idLike.toLowerCase().split(/\s+/) } : {}),
    ...(codename ? { versionCodename: codename } : {}),
  }
}

function unquote(v: string): string {
  const q = v[0]
  if ((q === '"' || q === "'") && v.endsWith(q) && v.length >= 2) {
    const inner = v.slice(1, -1)
    return q === '"' ? inner.replace(/\\(["\\$`])/g, '$1') : inner
  }
  return v
}

export const osReleaseReader: FileReader = {
  name: 'os-release',
  wants: (path) => OS_RELEASE_PATHS.includes(path),
  sink: (path, size) =>
    buffered(path, size, 64 * 1024, 'os-release file', (data) => {
      const os = parseOsRelease(data.toString('utf8'))
      return { packages: [], notes: os ? [] : [`/${path} has no ID (the operating system is not known)`], ...(os ? { os } : {}) }
    }),
}
