// Rates in config are strings: requests as "N/s", "N/m" or "N/h"; bytes as "100MiB/s" (units
// B, KB, MB, GB = powers of 1000, KiB, MiB, GiB = powers of 1024; per s, m or h).

/** A fixed window: `points` allowed every `seconds`. */
export interface Rate {
  points: number
  seconds: number
}

const WINDOWS: Record<string, number> = { s: 1, m: 60, h: 3600 }
const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }

/** "100/m" → {points: 100, seconds: 60}; undefined when malformed or zero. */
export function parseRequestRate(text: string): Rate | undefined {
  const match = /^\s*(\d+)\s*\/\s*(s|m|h)\s*$/i.exec(text)
  if (!match) return undefined
  const points = Number(match[1])
  if (!Number.isSafeInteger(points) || points <= 0) return undefined
  return { points, seconds: WINDOWS[(match[2] as string).toLowerCase()] as number }
}

/** "100MiB/s" → {points: 104857600 (bytes), seconds: 1}; undefined when malformed or zero. */
export function parseByteRate(text: string): Rate | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*\/\s*(s|m|h)\s*$/i.exec(text)
  if (!match) return undefined
  const points = Math.floor(Number(match[1]) * (BYTE_UNITS[(match[2] ?? 'b').toLowerCase()] as number))
  if (!Number.isSafeInteger(points) || points <= 0) return undefined
  return { points, seconds: WINDOWS[(match[3] as string).toLowerCase()] as number }
}
