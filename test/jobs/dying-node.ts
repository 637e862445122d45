// A node for test/jobs/queue.test.ts and test/metadata/jobs-postgres.test.ts, run as its own
// process: it claims jobs of the kind argv[3] from the database at argv[2], prints "started <id>"
// when one runs and then hangs in the handler until the test kills it (SIGKILL: no cleanup).
import pino from 'pino'
import { JobQueue } from '../../src/jobs/queue.js'
import { openMetadata } from '../../src/metadata/db.js'
import { createJobRepository } from '../../src/metadata/repositories/jobs.js'

const url = process.argv[2]
const kind = process.argv[3]
const leaseMs = Number(process.argv[4] ?? 500)
if (!url || !kind) throw new Error('usage: dying-node.ts DATABASE_URL KIND [LEASE_MS]')
const meta = await openMetadata(url)
const queue = new JobQueue(createJobRepository(meta.db), pino({ level: 'silent' }), { concurrency: 1, leaseMs, pollMs: 20, owner: `dying-${process.pid}` })
queue.register(kind, async (_payload, ctx) => {
  process.stdout.write(`started ${ctx.id}\n`)
  await new Promise(() => undefined)
})
queue.start()
// Keep the process alive (the queue's timers are unref'd).
setInterval(() => undefined, 60_000)
