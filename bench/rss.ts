// Resident memory of a child process, from /proc/<pid>/status (Linux).

import { readFileSync, writeFileSync } from 'node:fs'

export interface MemStatus {
  /** current resident set, KiB */
  rssKiB: number
  /** peak resident set since start (or since resetPeak), KiB */
  hwmKiB: number
}

export function readMem(pid: number): MemStatus | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return undefined
  }
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN)
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') }
}

/** Resets VmHWM to the current RSS (writing 5 to clear_refs); false when not permitted. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/** Samples VmRSS every `intervalMs`; stop() gives the largest sample and the kernel's peak. */
export class RssSampler {
  private maxKiB = 0
  private samples = 0
  private readonly timer: NodeJS.Timeout
  private readonly peakReset: boolean
  readonly startKiB: number

  constructor(
    private readonly pid: number,
    intervalMs: number,
  ) {
    this.peakReset = resetPeak(pid)
    this.startKiB = readMem(pid)?.rssKiB ?? NaN
    this.sample()
    this.timer = setInterval(() => this.sample(), intervalMs)
  }

  private sample(): void {
    const m = readMem(this.pid)
    if (!m) return
    this.samples++
    this.maxKiB = Math.max(this.maxKiB, m.rssKiB)
  }

  /** Peak in KiB: max of the samples and, when it could be reset first, VmHWM. */
  stop(): { peakKiB: number; sampledKiB: number; hwmKiB: number | undefined; samples: number } {
    clearInterval(this.timer)
    this.sample()
    const hwm = this.peakReset ? readMem(this.pid)?.hwmKiB : undefined
    return { peakKiB: Math.max(this.maxKiB, hwm ?? 0), sampledKiB: this.maxKiB, hwmKiB: hwm, samples: this.samples }
  }
}
