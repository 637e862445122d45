import { RegistryError } from '../errors/registry-error.js'
import { StorageUnavailable } from '../storage/driver.js'

/**
 * Wraps a storage-touching operation: a store that keeps failing after the driver's retries
 * becomes UNAVAILABLE (503 with Retry-After), which clients retry, instead of an opaque 500.
 */
export function storageFailure<A extends unknown[], T>(fn: (...args: A) => Promise<T>): (...args: A) => Promise<T> {
  return async (...args: A) => {
    try {
      return await fn(...args)
    } catch (err) {
      if (err instanceof StorageUnavailable) {
        throw new RegistryError('UNAVAILABLE', 'the blob store is unavailable; retry later', { cause: err, headers: { 'retry-after': '5' } })
      }
      throw err
    }
  }
}
