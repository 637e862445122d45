import type { Writable } from 'node:stream'

/** Ends a writer (if nobody did) and resolves once everything written has been flushed. */
export async function finished(writer: Writable): Promise<void> {
  if (writer.writableFinished) return
  if (!writer.writableEnded) writer.end()
  await new Promise<void>((ok, fail) => {
    writer.once('finish', () => ok())
    writer.once('error', fail)
  })
}
