import type { GcRepository } from '../metadata/repositories/gc.js'
import type { Digest } from '../oci/digest.js'
import { PathNotFound, type StorageDriver } from '../storage/driver.js'
import { blobPath } from '../storage/paths.js'

/**
 * Takes a blob out of service, for scrub and for the first read of an adopted blob whose bytes
 * do not match its digest: a corrupt file moves to quarantine/<algorithm>/<hex> (kept for
 * inspection, out of the blob layout), the blob's row and links go, so HEAD and GET answer
 * BLOB_UNKNOWN and clients push it again, which heals it, and a quarantine row
 * (GET /api/v1/gc/quarantine) remembers the repositories it was linked into, which are returned.
 */
export async function quarantineBlob(deps: { storage: StorageDriver; gc: GcRepository; now: () => number }, digest: Digest, size: number, kind: 'corrupt' | 'missing'): Promise<string[]> {
  if (kind === 'corrupt') {
    await deps.storage.move(blobPath(digest.algorithm, digest.hex), `quarantine/${digest.algorithm}/${digest.hex}`).catch((err: unknown) => {
      // already moved (by a concurrent read or scrub)
      if (!(err instanceof PathNotFound)) throw err
    })
  }
  return deps.gc.quarantine(digest.value, size, kind, deps.now())
}
