// Durations in config are strings such as "90s", "15m", "24h", "7d" (or plain milliseconds).
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim())
  if (!match) return undefined
  return Math.round(Number(match[1]) * (UNITS[match[2] ?? 'ms'] ?? 1))
}

/** A duration in the config's own notation: the largest unit that divides it ("90m", "1h", "250ms"). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNITS[unit] as number
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms}ms`
}
