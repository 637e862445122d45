import { importLayout } from '../transfer/import.js'
import { LayoutProblem, openLayout } from '../transfer/layout-store.js'
import { formatBytes } from './data.js'
import { progressReporter, withSide, type SideFlags } from './transfer-sides.js'

export interface ImportFlags extends SideFlags {
  into: string
}

/** `berth import DIR|FILE.tar --into PROJECT[/REPO]`: loads an OCI image layout, every digest verified. */
export async function importCommand(path: string, flags: ImportFlags): Promise<void> {
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(flags.into)) throw new Error(`--into ${flags.into}: expected PROJECT or PROJECT/REPO`)
  const layout = await openLayout(path).catch(stopped)
  const progress = await progressReporter(!flags.json)
  try {
    const result = await withSide(flags, async ({ side, hasBlob, requireProject }) => {
      await requireProject(flags.into.split('/')[0] as string)
      return importLayout(layout, side, { into: flags.into, hasBlob, onProgress: progress.listener }).catch(stopped)
    })
    if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`)
    else {
      console.log(`imported ${result.images.length} image(s) from ${path}: ${result.blobs} blob(s) sent (${formatBytes(result.bytes)})`)
      for (const i of result.images) console.log(`  ${i.repository}${i.ref.includes(':') ? '@' : ':'}${i.ref} ${i.digest}`)
    }
  } finally {
    progress.stop()
    await layout.close()
  }
}

/** A bad layout is reported by the object it stopped at, and what that means for the destination. */
function stopped(err: unknown): never {
  if (err instanceof LayoutProblem) throw new Error(`import stopped: ${err.message}. No tag was created or moved; blobs sent before the stop are unreferenced and removed by gc`)
  throw err
}
