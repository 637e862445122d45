import { randomUUID } from 'node:crypto'
import { copyFile, link, mkdir, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { CopyObjectCommand as CopyObjectCommandType } from '@aws-sdk/client-s3'
import type { Digest } from '../oci/digest.js'
import type { StorageDriver } from '../storage/driver.js'
import { blobPath, uploadDataPath } from '../storage/paths.js'
import { blobDataPath, type DistributionSource } from './source.js'

// How a blob of the Distribution tree gets into Berth's blob layout without re-pushing it:
//
//   both on a filesystem     a hard link (no byte copied; both names share one inode, which
//                            neither registry ever rewrites in place: Distribution writes new
//                            blobs under new paths, Berth moves verified files into place, and a
//                            scrub quarantine renames Berth's name only). Across filesystems
//                            (EXDEV) the file is copied, and the report says so.
//   both on S3               a server-side CopyObject into Berth's key (no byte through this
//                            process). Berth cannot read Distribution's keys in place: its layout
//                            is `<prefix>blobs/sha256/<2>/<hex>`, Distribution's ends in `/<hex>/data`,
//                            so no prefix maps one onto the other.
//   otherwise                streamed through this process into an upload file, then moved
//                            into place as an upload is.

export type Placement = 'hardlink' | 'copy' | 'server-copy' | 'present'

export interface BlobPlacer {
  /** Puts the blob (`size` bytes) into Berth's store. */
  place(digest: Digest, size: number): Promise<Placement>
}

/** What the placer needs to know about the stores (the CLI finds it out from the config). */
export interface PlacerTargets {
  source: DistributionSource
  storage: StorageDriver
  /** Berth's blob store root when it is a filesystem */
  fsRoot?: string
  /** Berth's bucket and key of a path, when it is S3 */
  s3?: { bucket: string; key(path: string): string }
}

export function createPlacer(t: PlacerTargets): BlobPlacer {
  const source = t.source as DistributionSource & { full?(path: string): string; key?(path: string): string; driver?: { send(c: object): Promise<unknown>; bucket: string } }
  const streamed = streamPlacer(t.source, t.storage)
  if (t.fsRoot !== undefined && source.full) return linkPlacer(source.full.bind(source), t.fsRoot)
  if (t.s3 && source.key && source.driver) return serverCopyPlacer(source.key.bind(source), source.driver, t.s3, streamed)
  return streamed
}

/** Hard links, falling back to a copy where the two trees are on different filesystems. */
function linkPlacer(sourcePath: (path: string) => string, root: string): BlobPlacer {
  return {
    async place(digest, size) {
      const from = sourcePath(blobDataPath(digest.hex, digest.algorithm))
      const to = join(root, blobPath(digest.algorithm, digest.hex))
      await mkdir(dirname(to), { recursive: true })
      try {
        await link(from, to)
        return 'hardlink'
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'EEXIST') {
          // Left by an interrupted run (or pushed to Berth meanwhile): content-addressed, so the
          // same bytes unless truncated; a file of another size is replaced.
          if ((await stat(to)).size === size) return 'present'
          await rm(to, { force: true })
          return this.place(digest, size)
        }
        // Another filesystem, or one without hard links: copy into a temporary name, then rename.
        if (code === 'EXDEV' || code === 'EPERM' || code === 'ENOTSUP' || code === 'EMLINK') {
          const tmp = join(root, uploadDataPath(`adopt-${randomUUID()}`))
          await mkdir(dirname(tmp), { recursive: true })
          try {
            await copyFile(from, tmp)
            await rename(tmp, to)
          } finally {
            await rm(tmp, { force: true })
          }
          return 'copy'
        }
        throw err
      }
    },
  }
}

/** Largest object CopyObject copies in one request; larger ones are streamed. */
const MAX_COPY = 5 * 1024 * 1024 * 1024

function serverCopyPlacer(sourceKey: (path: string) => string, client: { send(c: object): Promise<unknown>; bucket: string }, target: { bucket: string; key(path: string): string }, streamed: BlobPlacer): BlobPlacer {
  let command: Promise<typeof CopyObjectCommandType> | undefined
  return {
    async place(digest, size) {
      if (size > MAX_COPY) return streamed.place(digest, size)
      command ??= import('@aws-sdk/client-s3').then((m) => m.CopyObjectCommand)
      const CopyObjectCommand = await command
      const from = sourceKey(blobDataPath(digest.hex, digest.algorithm))
      await client.send(new CopyObjectCommand({ Bucket: target.bucket, Key: target.key(blobPath(digest.algorithm, digest.hex)), CopySource: `${client.bucket}/${from.split('/').map(encodeURIComponent).join('/')}` }))
      return 'server-copy'
    },
  }
}

/** Reads the blob and writes it into Berth's store as an upload, then moves it into place. */
function streamPlacer(source: DistributionSource, storage: StorageDriver): BlobPlacer {
  return {
    async place(digest, size) {
      const existing = await storage.stat(blobPath(digest.algorithm, digest.hex)).catch(() => undefined)
      if (existing?.size === size) return 'present'
      const tmp = uploadDataPath(`adopt-${randomUUID()}`)
      const writer = await storage.writer(tmp)
      try {
        await pipeline(await source.reader(blobDataPath(digest.hex, digest.algorithm)), writer)
        await writer.commit()
        await storage.move(tmp, blobPath(digest.algorithm, digest.hex))
      } catch (err) {
        await writer.cancel().catch(() => undefined)
        await storage.delete(tmp).catch(() => undefined)
        throw err
      }
      return 'copy'
    },
  }
}
