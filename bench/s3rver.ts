// The S3 server of the scale-out benchmark, run as a child process by bench/servers.ts:
//   node --import tsx bench/s3rver.ts DIRECTORY PORT BUCKET...
// s3rver (an S3 API over a local directory, a devDependency) on 127.0.0.1:PORT with the given
// buckets; prints "ready" once it listens and stops on SIGTERM. Only loopback traffic.

import { createRequire } from 'node:module'

interface S3rverInstance {
  run(): Promise<{ port: number }>
  close(): Promise<void>
  httpServer?: { closeAllConnections?(): void }
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverInstance
const require = createRequire(import.meta.url)
const S3rver = require('s3rver') as S3rverCtor

// As in test/helpers/s3.ts: s3rver removes emptied parent directories after a delete without
// expecting another request to do the same at once; real object stores have no directories, so
// those races are ignored.
const store = (require('s3rver/lib/stores/filesystem.js') as { prototype: Record<string, unknown> }).prototype
const deleteObject = store.deleteObject as (this: unknown, ...args: unknown[]) => Promise<void>
store.deleteObject = async function (this: unknown, ...args: unknown[]) {
  try {
    await deleteObject.apply(this, args)
  } catch (err) {
    if (!['ENOENT', 'ENOTEMPTY'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err
  }
}

const [directory, port, ...buckets] = process.argv.slice(2)
if (!directory || !port) {
  console.error('usage: bench/s3rver.ts DIRECTORY PORT BUCKET...')
  process.exit(2)
}
const server = new S3rver({ address: '127.0.0.1', port: Number(port), directory, silent: true, configureBuckets: buckets.map((name) => ({ name })) })
await server.run()
console.log('ready')
const stop = () => {
  server.httpServer?.closeAllConnections?.()
  void server.close().finally(() => process.exit(0))
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
