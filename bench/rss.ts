// Resident memory of a child process and its descendants (`berth serve --workers N` is a
// primary and N workers), from /proc/<pid>/status (Linux).

import { readdirSync, readFileSync, writeFileSync } from 'node:fs'

export interface MemStatus {
  /** current resident set, KiB */
  rssKiB: number
  /** peak resident set since start (or since resetPeak), KiB */
  hwmKiB: number
}

/** pid and its descendants, from /proc/<pid>/task/<tid>/children. */
export function processTree(pid: number): number[] {
  const out = [pid]
  for (let i = 0; i < out.length; i++) {
    let tasks: string[]
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`)
    } catch {
      continue
    }
    for (const tid of tasks) {
      try {
        const kids = readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').trim()
        if (kids) out.push(...kids.split(/\s+/).map(Number))
      } catch {
        // the task ended meanwhile
      }
    }
  }
  return out
}

/** Sum over the process tree: a peak is the sum of each process's own peak (an upper bound). */
export function readMem(pid: number): MemStatus | undefined {
  const all = processTree(pid).map(readOne).filter((m): m is MemStatus => m !== undefined)
  if (all.length === 0) return undefined
  return { rssKiB: all.reduce((a, m) => a + m.rssKiB, 0), hwmKiB: all.reduce((a, m) => a + m.hwmKiB, 0) }
}

function readOne(pid: number): MemStatus | undefined {
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
    for (const p of processTree(pid)) writeFileSync(`/proc/${p}/clear_refs`, '5')
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
