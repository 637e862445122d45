// The S3 server of the scale-out benchmark, run as a child process by bench/servers.ts:
//   node --import tsx bench/s3rver.ts DIRECTORY PORT BUCKET...
// s3rver (an S3 API over a local directory, a devDependency) on 127.0.0.1:PORT with the given
// buckets; prints "ready" once it listens and stops on SIGTERM. Only loopback traffic.

import { S3rver } from '../test/helpers/s3.js'

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
