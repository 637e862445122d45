import { empty, type FileReader, type FileSink, type ParseResult, type RawPackage } from './model.js'

// Go binaries: the toolchain embeds its build info (the Go version, the main module and every
// dependency module with its version) in a `.go.buildinfo` blob that starts with the magic
// `\xff Go buildinf:`. Executables stream past a scanner that looks for that magic and keeps
// only what follows it, so a 100 MB binary costs a few kilobytes of memory. Since Go 1.18 the
// two strings are stored inline (flag bit 2); older binaries hold pointers into the data
// segment, which a stream cannot follow: they get a note.

const MAGIC = Buffer.from('\xff Go buildinf:', 'latin1')
const HEADER = 32
const MAX_CAPTURE = 1024 * 1024
/** executables are read this far at most looking for the magic */
const MAX_SCAN = 512 * 1024 * 1024
const MIN_SIZE = 1024

/** ELF, PE or Mach-O, by the first four bytes. */
export function isExecutableFormat(head: Buffer): boolean {
  if (head.length < 4) return false
  if (head[0] === 0x7f && head.toString('latin1', 1, 4) === 'ELF') return true
  if (head[0] === 0x4d && head[1] === 0x5a) return true // PE ("MZ")
  const m = head.readUInt32BE(0)
  return m === 0xfeedface || m === 0xfeedfacf || m === 0xcefaedfe || m === 0xcffaedfe // Mach-O
}

function readVarint(buf: Buffer, offset: number): [number, number] | undefined {
  let value = 0
  let shift = 0
  for (let i = offset; i < buf.length && i < offset + 10; i++) {
    const b = buf[i] as number
    value += (b & 0x7f) * 2 ** shift
    if ((b & 0x80) === 0) return [value, i + 1]
    shift += 7
  }
  return undefined
}

type Inline = { goVersion: string; modinfo: string } | 'incomplete' | 'old-format'

/** The Go version and module info from the bytes starting at the magic. */
export function readBuildInfo(buf: Buffer): Inline {
  if (buf.length < HEADER) return 'incomplete'
  const flags = buf[15] as number
  if ((flags & 2) === 0) return 'old-format'
  const strings: string[] = []
  let at = HEADER
  for (let i = 0; i < 2; i++) {
    const v = readVarint(buf, at)
    if (!v || v[1] + v[0] > buf.length) return 'incomplete'
    strings.push(buf.toString('utf8', v[1], v[1] + v[0]))
    at = v[1] + v[0]
  }
  let modinfo = strings[1] as string
  // runtime/debug wraps modinfo in two 16-byte sentinels
  if (modinfo.length >= 33 && modinfo[modinfo.length - 17] === '\n') modinfo = modinfo.slice(16, -16)
  return { goVersion: strings[0] as string, modinfo }
}

/** The modules of a binary's build info: its dependencies (replacements applied), its main module, and the standard library. */
export function modulesOf(goVersion: string, modinfo: string): RawPackage[] {
  const packages: RawPackage[] = []
  const std = /^go(\d+(?:\.\d+)*)/.exec(goVersion)
  for (const line of modinfo.split('\n')) {
    const [kind, path, version] = line.split('\t')
    if (!path || !version) continue
    if (kind === 'mod' && version !== '(devel)') packages.push({ type: 'golang', name: path, version, licenses: [] })
    else if (kind === 'dep') packages.push({ type: 'golang', name: path, version, licenses: [] })
    else if (kind === '=>' && packages.length > 0 && !path.startsWith('.') && !path.startsWith('/')) {
      // a replace directive: the code built is the replacement's
      const last = packages[packages.length - 1] as RawPackage
      last.name = path
      last.version = version
    }
  }
  // OSV names the Go standard library "stdlib", versioned without the "go" prefix
  if (std) packages.push({ type: 'golang', name: 'stdlib', version: std[1] as string, licenses: [] })
  return packages
}

function goSink(path: string): FileSink {
  let state: 'head' | 'scan' | 'capture' | 'skip' = 'head'
  let head = Buffer.alloc(0)
  let tail = Buffer.alloc(0)
  let captured: Buffer[] = []
  let capturedBytes = 0
  let scanned = 0
  const scan = (chunk: Buffer) => {
    const window = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk
    const at = window.indexOf(MAGIC)
    if (at !== -1) {
      state = 'capture'
      captured = [window.subarray(at)]
      capturedBytes = window.length - at
      return
    }
    scanned += chunk.length
    if (scanned > MAX_SCAN) state = 'skip'
    tail = Buffer.from(window.subarray(Math.max(0, window.length - MAGIC.length + 1)))
  }
  return {
    write(chunk) {
      if (state === 'head') {
        head = Buffer.concat([head, chunk])
        if (head.length < 4) return
        if (!isExecutableFormat(head)) {
          state = 'skip'
          return
        }
        state = 'scan'
        const first = head
        head = Buffer.alloc(0)
        scan(first)
      } else if (state === 'scan') scan(chunk)
      else if (state === 'capture' && capturedBytes < MAX_CAPTURE) {
        captured.push(chunk)
        capturedBytes += chunk.length
      }
    },
    end(): ParseResult {
      if (state !== 'capture') return empty()
      const info = readBuildInfo(Buffer.concat(captured).subarray(0, MAX_CAPTURE))
      if (info === 'old-format') return { packages: [], notes: [`Go binary /${path} was built before Go 1.18: its build info is not read`] }
      if (info === 'incomplete') return { packages: [], notes: [`Go binary /${path} has truncated build info (not read)`] }
      return { packages: modulesOf(info.goVersion, info.modinfo), notes: [] }
    },
  }
}

export const goBinaryReader: FileReader = {
  name: 'go-binary',
  wants: (_path, size, mode) => size >= MIN_SIZE && (mode & 0o111) !== 0,
  sink: (path) => goSink(path),
}
