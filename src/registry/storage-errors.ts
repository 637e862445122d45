import { RegistryError } from '../errors/registry-error.js'
import { PathNotFound, StorageUnavailable } from '../storage/driver.js'

// Storage faults are classified here, once, at the boundary of the registry services; the
// services themselves never swallow a storage error nor guess what one means.
//  - missing (PathNotFound): what the caller says a missing path means (an OCI "unknown" error);
//  - transient (StorageUnavailable, a busy or exhausted local resource): 503 UNAVAILABLE with
//    Retry-After, which clients retry; nothing is discarded;
//  - out of space (ENOSPC, EDQUOT): 507 with Retry-After and the connection closed (the rest
//    of the body is not read);
//  - anything else: passed on as it is (500), the session kept.

/** errno codes of local faults that go away by themselves. */
const TRANSIENT = new Set(['EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'ETIMEDOUT', 'EINTR'])
const NO_SPACE = new Set(['ENOSPC', 'EDQUOT'])

export type StorageFault = 'missing' | 'transient' | 'full' | 'other'

/** What kind of storage fault `err` is. */
export function storageFault(err: unknown): StorageFault {
  if (err instanceof PathNotFound) return 'missing'
  if (err instanceof StorageUnavailable) return 'transient'
  const code = (err as { code?: unknown } | undefined)?.code
  if (typeof code === 'string' && NO_SPACE.has(code)) return 'full'
  if (typeof code === 'string' && TRANSIENT.has(code)) return 'transient'
  return 'other'
}

/** The error a client gets for a storage fault; `missing` says what a missing path means. */
export function classifyStorageError(err: unknown, missing?: () => RegistryError): unknown {
  if (err instanceof RegistryError) return err
  switch (storageFault(err)) {
    case 'missing':
      return missing ? missing() : err
    case 'transient':
      return new RegistryError('UNAVAILABLE', 'the blob store is unavailable; retry later', { cause: err, headers: { 'retry-after': '5' } })
    case 'full':
      return new RegistryError('UNAVAILABLE', 'the blob store is out of space; retry later or ask the administrator to free space', {
        cause: err,
        status: 507,
        headers: { 'retry-after': '60', connection: 'close' },
      })
    default:
      return err
  }
}

/** Wraps a storage-touching operation so that its faults reach the client classified. */
export function storageFailure<A extends unknown[], T>(fn: (...args: A) => Promise<T>, missing?: () => RegistryError): (...args: A) => Promise<T> {
  return async (...args: A) => {
    try {
      return await fn(...args)
    } catch (err) {
      throw classifyStorageError(err, missing)
    }
  }
}

/** A storage result, or undefined when the path does not exist; every other fault is thrown. */
export async function unlessMissing<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p
  } catch (err) {
    if (err instanceof PathNotFound) return undefined
    throw err
  }
}
