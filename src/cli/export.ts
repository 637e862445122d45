import { createWriteStream } from 'node:fs'
import { rename, rm } from 'node:fs/promises'
import { exportImages, parseExportRef, sinceDigests, type ExportResult } from '../transfer/export.js'
import { DirLayout, TarLayoutWriter, type LayoutWriter } from '../transfer/layout-store.js'
import { formatBytes } from './data.js'
import { progressReporter, withSide, type SideFlags } from './transfer-sides.js'

export interface ExportFlags extends SideFlags {
  to: string
  platform?: string[]
  referrers?: boolean
  since?: string
}

/**
 * `berth export REPO[:TAG|@DIGEST]… --to DIR|FILE.tar`: an OCI image layout. A directory is
 * resumable (blobs already there and whole are kept); a tar is written beside its name and
 * renamed when complete, so FILE.tar is never a partial archive.
 */
export async function exportCommand(refs: string[], flags: ExportFlags): Promise<void> {
  const platforms = flags.platform ?? []
  for (const p of platforms) if (!/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(p)) throw new Error(`--platform ${p}: expected os/arch or os/arch/variant`)
  const wanted = refs.map(parseExportRef)
  const asTar = flags.to.endsWith('.tar')
  const partial = `${flags.to}.partial`
  const progress = await progressReporter(!flags.json)
  const result = await withSide(flags, async ({ side }) => {
    const since = flags.since ? await sinceDigests(flags.since, side, wanted.map((w) => w.repository)) : undefined
    let writer: LayoutWriter
    if (asTar) writer = new TarLayoutWriter(flags.to, createWriteStream(partial))
    else writer = await DirLayout.create(flags.to)
    try {
      const r = await exportImages(side, writer, wanted, { platforms, referrers: flags.referrers === true, since, onProgress: progress.listener, blobConcurrency: asTar ? 1 : 4 })
      if (asTar) await rename(partial, flags.to)
      return r
    } catch (err) {
      await writer.abort()
      if (asTar) await rm(partial, { force: true })
      throw err
    } finally {
      progress.stop()
    }
  })
  report(result, flags)
}

function report(r: ExportResult, flags: ExportFlags): void {
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(r)}\n`)
    return
  }
  console.log(`exported ${r.images.length} image(s) to ${flags.to}: ${r.blobsWritten} blob(s) written (${formatBytes(r.bytesWritten)}), ${r.blobsSkipped} already there${flags.since ? ' or on the other side' : ''}`)
  for (const i of r.images) console.log(`  ${i.repository}${i.ref.includes(':') ? '@' : ':'}${i.ref} ${i.digest}`)
}
