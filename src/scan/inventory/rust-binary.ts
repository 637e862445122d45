import { constants, inflateSync } from 'node:zlib'
import { isExecutableFormat } from './go-binary.js'
import { empty, type FileSink, type ParseResult, type RawPackage } from './model.js'

// Rust binaries built with `cargo auditable` carry their dependency list in a `.dep-v0` linker
// section (ELF and PE; `__DATA,.dep-v0` in Mach-O): zlib-compressed JSON,
// `{"packages":[{"name","version","source","kind"?,"root"?,"dependencies"?}…]}` (the format's
// JSON schema: rust-secure-code/cargo-auditable, cargo-auditable.schema.json; newer versions
// may put a `format` number first). An ELF file's section table comes after the sections it
// describes, so a stream cannot look the section up before its bytes have gone by. Instead the
// executable's bytes are watched for the start of a zlib stream (0x78 and a check byte with no
// preset dictionary) whose first inflated bytes open that JSON document; that stream alone is
// kept (bounded) and read at the end. Any other zlib stream inflates to something else and is
// passed over, so the reader works the same on every executable format.
//
// Reported: the crates compiled into the binary. The root package (the binary's own crate),
// path dependencies (`local`: members of its workspace, as Cargo.lock's packages without a
// source) and build-time dependencies (`kind: build`: build scripts and proc macros, which run
// at build time and are not in the binary) are left out.

/** how many bytes after a candidate zlib header are inflated to see what it holds */
const TRIAL = 1024
/** the compressed audit data kept at most (a binary with thousands of crates has ~100 KiB) */
const MAX_CAPTURE = 4 * 1024 * 1024
/** the inflated JSON read at most (the format's own advice for a parser: 8 MiB) */
const MAX_JSON = 8 * 1024 * 1024
/** executables are read this far at most looking for the audit data */
const MAX_SCAN = 512 * 1024 * 1024
/** FLG bytes of a zlib header after CMF 0x78 (deflate, 32 KiB window): the four levels, no preset dictionary */
const ZLIB_FLG = new Set([0x01, 0x5e, 0x9c, 0xda])
const OPENING = /^\{\s*"(packages|format)"\s*:/

/**
 * Whether the deflate data at `d[at]` can start a stream whose first byte is `{`: a test of a few
 * bits, so that the zlib headers that are only chance bytes of machine code (thousands in a
 * large binary) are passed over without inflating them. RFC 1951: a block's 3 header bits
 * (BFINAL, BTYPE, least significant bit first); a stored block's LEN and NLEN are one's
 * complements and its first byte is the data's; a fixed-Huffman block's first literal `{` is
 * the 8-bit code 0x30 + 0x7b, most significant bit first; a dynamic block's code-length code
 * (HCLEN + 4 lengths of 3 bits) is complete, as inflate requires (HLIT and HDIST ≤ 29).
 */
export function mayOpenWithBrace(d: Buffer, at: number): boolean {
  if (at + 24 > d.length) return true
  let pos = at
  let bit = 0
  const bits = (n: number) => {
    let v = 0
    for (let i = 0; i < n; i++) {
      v |= (((d[pos] as number) >> bit) & 1) << i
      if (++bit === 8) {
        bit = 0
        pos++
      }
    }
    return v
  }
  bits(1)
  const type = bits(2)
  if (type === 3) return false
  if (type === 0) {
    const start = bit === 0 ? pos : pos + 1
    const len = d.readUInt16LE(start)
    return len > 0 && len === (~d.readUInt16LE(start + 2) & 0xffff) && d[start + 4] === 0x7b
  }
  if (type === 1) {
    let code = 0
    for (let i = 0; i < 8; i++) code = (code << 1) | bits(1)
    return code === 0x30 + 0x7b
  }
  const hlit = bits(5)
  const hdist = bits(5)
  const hclen = bits(4) + 4
  if (hlit > 29 || hdist > 29) return false
  let kraft = 0
  for (let i = 0; i < hclen; i++) {
    const len = bits(3)
    if (len > 0) kraft += 1 << (7 - len)
  }
  return kraft === 128
}

/**
 * Whether the zlib stream starting at `window[0]` opens a cargo-auditable document. A stream
 * that inflates to more than 64 KiB from its first bytes (a bomb, or highly repetitive data)
 * is tried again on fewer of them, so a bomb of audit data is still found (and refused later).
 */
function opensAuditData(window: Buffer): boolean {
  for (let n = window.length; n >= 16; n = Math.floor(n / 4)) {
    try {
      const head = inflateSync(window.subarray(0, n), { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: 64 * 1024 })
      return OPENING.test(head.toString('latin1', 0, 32))
    } catch (err) {
      // not a deflate stream: no audit data here
      if ((err as { code?: string }).code !== 'ERR_BUFFER_TOO_LARGE') return false
    }
  }
  return false
}

interface AuditPackage {
  name?: unknown
  version?: unknown
  source?: unknown
  kind?: unknown
  root?: unknown
}

/** The crates of an inflated cargo-auditable document. */
export function parseAuditData(json: string): RawPackage[] {
  const doc = JSON.parse(json) as { packages?: unknown }
  if (!Array.isArray(doc.packages)) throw new Error('no packages array')
  const packages: RawPackage[] = []
  for (const raw of doc.packages as AuditPackage[]) {
    if (typeof raw !== 'object' || raw === null) throw new Error('a package is not an object')
    const { name, version, source, kind, root } = raw
    if (typeof name !== 'string' || name === '' || typeof version !== 'string' || version === '') throw new Error('a package without name or version')
    if (root === true || kind === 'build') continue
    if (typeof source === 'string' && source.toLowerCase() === 'local') continue
    packages.push({ type: 'cargo', name, version, licenses: [] })
  }
  return packages
}

/** The audit data stream that starts at the beginning of `data` (trailing bytes are ignored). */
function readAuditData(path: string, data: Buffer): ParseResult {
  const note = (text: string): ParseResult => ({ packages: [], notes: [`Rust audit data (cargo auditable) in /${path} ${text}`] })
  let json: Buffer
  try {
    json = inflateSync(data, { maxOutputLength: MAX_JSON })
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return note(`inflates to more than ${MAX_JSON} bytes (not read)`)
    return note(`is malformed: ${(err as Error).message}`)
  }
  try {
    return { packages: parseAuditData(json.toString('utf8')), notes: [] }
  } catch (err) {
    return note(`is malformed: ${(err as Error).message}`)
  }
}

export function rustBinarySink(path: string): FileSink {
  let state: 'head' | 'scan' | 'capture' | 'skip' = 'head'
  let head: Buffer = Buffer.alloc(0)
  /** bytes not yet looked at as the start of a stream (each needs TRIAL bytes after it, but at the end) */
  let pending: Buffer = Buffer.alloc(0)
  let scanned = 0
  let captured: Buffer[] = []
  let capturedBytes = 0

  const look = (final: boolean) => {
    const limit = final ? pending.length - 1 : pending.length - TRIAL
    let at = pending.indexOf(0x78)
    while (at !== -1 && at < limit) {
      if (ZLIB_FLG.has(pending[at + 1] as number) && mayOpenWithBrace(pending, at + 2) && opensAuditData(pending.subarray(at, at + TRIAL))) {
        state = 'capture'
        captured = [Buffer.from(pending.subarray(at, at + MAX_CAPTURE))]
        capturedBytes = captured[0]?.length ?? 0
        pending = Buffer.alloc(0)
        return
      }
      at = pending.indexOf(0x78, at + 1)
    }
    if (limit > 0) pending = Buffer.from(pending.subarray(limit))
  }
  const scan = (chunk: Buffer) => {
    pending = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk
    scanned += chunk.length
    look(false)
    if (state === 'scan' && scanned > MAX_SCAN) state = 'skip'
  }

  return {
    write(chunk) {
      if (state === 'head') {
        head = Buffer.concat([head, chunk])
        if (head.length < 4) return
        state = isExecutableFormat(head) ? 'scan' : 'skip'
        const first = head
        head = Buffer.alloc(0)
        if (state === 'scan') scan(first)
      } else if (state === 'scan') scan(chunk)
      else if (state === 'capture' && capturedBytes < MAX_CAPTURE) {
        captured.push(chunk)
        capturedBytes += chunk.length
      }
    },
    end(): ParseResult {
      if (state === 'scan') look(true)
      if (state !== 'capture') return empty()
      return readAuditData(path, Buffer.concat(captured).subarray(0, MAX_CAPTURE))
    },
  }
}
