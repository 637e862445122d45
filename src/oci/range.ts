// Single byte ranges of RFC 9110 (Range on blob GET) and the Content-Range of chunked uploads.

export interface ByteRange {
  start: number
  /** inclusive */
  end: number
}

/**
 * Parses `Range: bytes=a-b`, `bytes=a-` or `bytes=-n` against a known size.
 * Returns undefined when the header is absent or not a single byte range (served as a full 200),
 * 'unsatisfiable' when it is a valid range that lies outside the content (416).
 */
export function parseRangeHeader(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!match) return undefined
  const [, first = '', last = ''] = match
  if (first === '' && last === '') return undefined
  if (first === '') {
    const suffix = Number(last)
    if (suffix === 0 || size === 0) return 'unsatisfiable'
    return { start: Math.max(size - suffix, 0), end: size - 1 }
  }
  const start = Number(first)
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1)
  if (start >= size || (last !== '' && Number(last) < start)) return 'unsatisfiable'
  return { start, end }
}

/**
 * Content-Range of a chunk upload: `a-b` (the spec's form) or `bytes a-b/*` (RFC form). A stated
 * total must hold the range (RFC 9110: `4-7/2` is invalid).
 */
export function parseContentRange(header: string): ByteRange | undefined {
  const match = /^(?:bytes )?(\d+)-(\d+)(?:\/(\d+|\*))?$/.exec(header.trim())
  if (!match) return undefined
  const start = Number(match[1])
  const end = Number(match[2])
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined
  const total = match[3] === undefined || match[3] === '*' ? undefined : Number(match[3])
  if (total !== undefined && !(Number.isSafeInteger(total) && end < total)) return undefined
  return { start, end }
}
