import type { Writable } from 'node:stream'

/**
 * Ends a writer (if nobody did) and resolves once everything written has been flushed; rejects
 * with the writer's error, also one it met before this call.
 */
export async function finished(writer: Writable): Promise<void> {
  if (writer.writableFinished) return
  if (writer.errored) throw writer.errored
  if (writer.destroyed) throw new Error('the storage writer closed before it finished')
  if (!writer.writableEnded) writer.end()
  await new Promise<void>((ok, fail) => {
    writer.once('finish', () => ok())
    writer.once('error', fail)
    writer.once('close', () => fail(writer.errored ?? new Error('the storage writer closed before it finished')))
  })
}
