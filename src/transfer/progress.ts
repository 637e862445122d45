/** Where an export or import is: a phase, bytes and items (blobs) done out of a known total. */
export interface TransferProgress {
  phase: 'verify' | 'copy'
  bytesDone: number
  bytesTotal: number
  itemsDone: number
  itemsTotal: number
}

export type ProgressListener = (p: TransferProgress, finished?: { digest: string; size: number; skipped: boolean }) => void

/** Counts bytes and items of one phase and tells a listener (a progress bar, plain lines). */
export class ProgressCounter {
  private p: TransferProgress
  private readonly seen = new Set<string>()

  constructor(
    phase: TransferProgress['phase'],
    totals: { bytes: number; items: number },
    private readonly listener: ProgressListener | undefined,
  ) {
    this.p = { phase, bytesDone: 0, bytesTotal: totals.bytes, itemsDone: 0, itemsTotal: totals.items }
    listener?.({ ...this.p })
  }

  bytes = (n: number): void => {
    this.p.bytesDone += n
    // A blob not in the plan (a referrer found on the way) grows the total.
    if (this.p.bytesDone > this.p.bytesTotal) this.p.bytesTotal = this.p.bytesDone
    this.listener?.({ ...this.p })
  }

  /** A blob is done; `skipped` when it was not sent (present already, or on the other side). */
  item(digest: string, size: number, skipped: boolean): void {
    // A blob shared by two images is offered twice; it counts once.
    if (this.seen.has(digest)) return
    this.seen.add(digest)
    this.p.itemsDone++
    if (this.p.itemsDone > this.p.itemsTotal) this.p.itemsTotal = this.p.itemsDone
    if (skipped) {
      this.p.bytesDone += size
      if (this.p.bytesDone > this.p.bytesTotal) this.p.bytesTotal = this.p.bytesDone
    }
    this.listener?.({ ...this.p }, { digest, size, skipped })
  }
}
