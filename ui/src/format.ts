const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB']

/** 1536 → "1.5 KB" (powers of 1000, as registries and Docker print sizes). */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—'
  let v = n
  let u = 0
  while (v >= 1000 && u < UNITS.length - 1) {
    v /= 1000
    u++
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${UNITS[u]}`
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })

/** "3 minutes ago", "yesterday"… ; "never" for null. */
export function ago(iso: string | null | undefined): string {
  if (!iso) return 'never'
  const s = (new Date(iso).getTime() - Date.now()) / 1000
  const steps: [number, Intl.RelativeTimeFormatUnit][] = [
    [60, 'second'],
    [60, 'minute'],
    [24, 'hour'],
    [30, 'day'],
    [12, 'month'],
    [Infinity, 'year'],
  ]
  let v = s
  for (const [size, unit] of steps) {
    if (Math.abs(v) < size) return rtf.format(Math.round(v), unit)
    v /= size
  }
  return iso
}

export const shortDigest = (d: string) => d.replace(/^sha256:/, '').slice(0, 12)

export function platformName(p: { os: string; architecture: string; variant?: string } | null | undefined): string {
  if (!p) return 'unknown'
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`
}
