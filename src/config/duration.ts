// Durations in config are strings such as "90s", "15m", "24h", "7d" (or plain milliseconds).
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim())
  if (!match) return undefined
  return Math.round(Number(match[1]) * (UNITS[match[2] ?? 'ms'] ?? 1))
}
