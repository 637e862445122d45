import { buffered, type FileReader, type ParseResult, type RawPackage } from './model.js'

// Alpine: /lib/apk/db/installed, one record per package, `X:value` lines (P name, V version,
// A architecture, L licence, o origin = the source package), records separated by a blank line.

const MAX_BYTES = 64 * 1024 * 1024

export function parseApkInstalled(text: string): ParseResult {
  const packages: RawPackage[] = []
  let fields = new Map<string, string>()
  const flush = () => {
    const name = fields.get('P')
    const version = fields.get('V')
    if (name && version) {
      const license = fields.get('L')
      const origin = fields.get('o')
      packages.push({
        type: 'apk',
        name,
        version,
        licenses: license ? [license] : [],
        ...(fields.get('A') ? { arch: fields.get('A') } : {}),
        ...(origin ? { source: { name: origin, version } } : {}),
      })
    }
    fields = new Map()
  }
  let lines = 0
  for (const line of text.split('\n')) {
    if (line === '') {
      flush()
      continue
    }
    if (line[1] !== ':') continue
    lines++
    fields.set(line[0] as string, line.slice(2))
  }
  flush()
  const notes = lines === 0 && text.trim() !== '' ? ['apk database /lib/apk/db/installed holds no records (malformed)'] : []
  return { packages, notes }
}

export const apkReader: FileReader = {
  name: 'apk',
  wants: (path) => path === 'lib/apk/db/installed',
  sink: (path, size) => buffered(path, size, MAX_BYTES, 'apk database', (data) => parseApkInstalled(data.toString('utf8'))),
}
