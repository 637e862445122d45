// A minimal CBOR (RFC 8949) codec for what COSE_Sign1 envelopes (RFC 9052) carry: integers, byte
// and text strings, arrays, maps, tags and the simple values, all of definite length (COSE and
// notation write nothing else). Input comes from registry clients, so decoding is bounded: every
// length is checked against the bytes left, nesting is limited, and anything else (indefinite
// lengths, reserved values, trailing bytes) is refused with a CborError naming it.

export type CborValue = number | bigint | string | Uint8Array | boolean | null | undefined | CborValue[] | CborMap | CborTag

/** A map keeps its keys' types (COSE labels are integers or text). */
export type CborMap = Map<number | bigint | string, CborValue>

export class CborTag {
  constructor(
    readonly tag: number,
    readonly value: CborValue,
  ) {}
}

export class CborError extends Error {}

const MAX_DEPTH = 16

/** Decodes exactly one CBOR data item filling `bytes`. */
export function decodeCbor(bytes: Uint8Array): CborValue {
  const reader = new Reader(bytes)
  const value = reader.item(0)
  if (reader.offset !== bytes.length) throw new CborError(`${bytes.length - reader.offset} bytes after the CBOR data item`)
  return value
}

class Reader {
  offset = 0
  private readonly view: DataView

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  item(depth: number): CborValue {
    if (depth > MAX_DEPTH) throw new CborError(`CBOR nested deeper than ${MAX_DEPTH}`)
    const initial = this.byte()
    const major = initial >> 5
    const info = initial & 0x1f
    if (major === 7) return this.simple(info)
    if (info === 31) throw new CborError('indefinite-length CBOR items are not supported')
    const arg = this.argument(info)
    switch (major) {
      case 0:
        return arg
      case 1:
        return typeof arg === 'bigint' ? -1n - arg : -1 - arg
      case 2:
        return new Uint8Array(this.take(arg))
      case 3:
        return text(this.take(arg))
      case 4: {
        const items: CborValue[] = []
        for (let i = 0, n = this.count(arg); i < n; i++) items.push(this.item(depth + 1))
        return items
      }
      case 5: {
        const map: CborMap = new Map()
        for (let i = 0, n = this.count(arg); i < n; i++) {
          const key = this.item(depth + 1)
          if (typeof key !== 'number' && typeof key !== 'bigint' && typeof key !== 'string') throw new CborError('a CBOR map key is neither an integer nor a text string')
          if (map.has(key)) throw new CborError(`duplicate CBOR map key ${String(key)}`)
          map.set(key, this.item(depth + 1))
        }
        return map
      }
      default: {
        // major 6: a tag and the item it tags
        if (typeof arg === 'bigint') throw new CborError('CBOR tag number out of range')
        return new CborTag(arg, this.item(depth + 1))
      }
    }
  }

  private simple(info: number): CborValue {
    switch (info) {
      case 20:
        return false
      case 21:
        return true
      case 22:
        return null
      case 23:
        return undefined
      case 25:
        return halfFloat(this.view.getUint16(this.advance(2)))
      case 26:
        return this.view.getFloat32(this.advance(4))
      case 27:
        return this.view.getFloat64(this.advance(8))
      default:
        throw new CborError(`unsupported CBOR simple value ${info}`)
    }
  }

  /** The argument of an initial byte: a number, or a bigint past 2^53. */
  private argument(info: number): number | bigint {
    if (info < 24) return info
    if (info === 24) return this.byte()
    if (info === 25) return this.view.getUint16(this.advance(2))
    if (info === 26) return this.view.getUint32(this.advance(4))
    if (info === 27) {
      const big = this.view.getBigUint64(this.advance(8))
      return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big
    }
    throw new CborError(`reserved CBOR additional information ${info}`)
  }

  /** An element count: each element takes at least a byte, so more than the bytes left is malformed. */
  private count(arg: number | bigint): number {
    if (typeof arg === 'bigint' || arg > this.bytes.length - this.offset) throw new CborError('a CBOR array or map is longer than its input')
    return arg
  }

  private take(length: number | bigint): Uint8Array {
    if (typeof length === 'bigint' || length > this.bytes.length - this.offset) throw new CborError('a CBOR string is longer than its input')
    const start = this.advance(length)
    return this.bytes.subarray(start, start + length)
  }

  private byte(): number {
    return this.view.getUint8(this.advance(1))
  }

  private advance(n: number): number {
    if (this.offset + n > this.bytes.length) throw new CborError('CBOR input ends inside a data item')
    const at = this.offset
    this.offset += n
    return at
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true })

function text(bytes: Uint8Array): string {
  try {
    return UTF8.decode(bytes)
  } catch {
    throw new CborError('a CBOR text string is not UTF-8')
  }
}

function halfFloat(half: number): number {
  const exponent = (half >> 10) & 0x1f
  const mantissa = half & 0x3ff
  const value = exponent === 0 ? mantissa * 2 ** -24 : exponent === 31 ? (mantissa === 0 ? Infinity : NaN) : (mantissa + 1024) * 2 ** (exponent - 25)
  return half & 0x8000 ? -value : value
}

/**
 * Encodes a value deterministically (shortest arguments, definite lengths): what COSE's
 * Sig_structure needs, and what tests build envelopes with. Numbers must be integers.
 */
export function encodeCbor(value: CborValue): Buffer {
  const out: Buffer[] = []
  write(value, out)
  return Buffer.concat(out)
}

function write(value: CborValue, out: Buffer[]): void {
  if (value === false) out.push(Buffer.from([0xf4]))
  else if (value === true) out.push(Buffer.from([0xf5]))
  else if (value === null) out.push(Buffer.from([0xf6]))
  else if (value === undefined) out.push(Buffer.from([0xf7]))
  else if (typeof value === 'number' || typeof value === 'bigint') {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new CborError(`only integers are encoded, not ${value}`)
    const big = BigInt(value)
    out.push(big >= 0n ? head(0, big) : head(1, -1n - big))
  } else if (typeof value === 'string') {
    const text = Buffer.from(value, 'utf8')
    out.push(head(3, BigInt(text.length)), text)
  } else if (value instanceof Uint8Array) out.push(head(2, BigInt(value.length)), Buffer.from(value))
  else if (Array.isArray(value)) {
    out.push(head(4, BigInt(value.length)))
    for (const item of value) write(item, out)
  } else if (value instanceof Map) {
    out.push(head(5, BigInt(value.size)))
    for (const [k, v] of value) {
      write(k, out)
      write(v, out)
    }
  } else {
    out.push(head(6, BigInt(value.tag)))
    write(value.value, out)
  }
}

function head(major: number, arg: bigint): Buffer {
  const m = major << 5
  if (arg < 24n) return Buffer.from([m | Number(arg)])
  if (arg < 0x100n) return Buffer.from([m | 24, Number(arg)])
  if (arg < 0x10000n) {
    const b = Buffer.alloc(3)
    b[0] = m | 25
    b.writeUInt16BE(Number(arg), 1)
    return b
  }
  if (arg < 0x100000000n) {
    const b = Buffer.alloc(5)
    b[0] = m | 26
    b.writeUInt32BE(Number(arg), 1)
    return b
  }
  const b = Buffer.alloc(9)
  b[0] = m | 27
  b.writeBigUInt64BE(arg, 1)
  return b
}
