import type { FastifyInstance } from 'fastify'
import { RegistryError } from '../../errors/registry-error.js'
import type { VulnDb } from '../../scan/vulndb/index.js'
import { callerOf } from './context.js'

// GET /api/v1/vulndb: the vulnerability database in use (sources, counts, age), for any
// signed-in caller; an open registry (auth.enabled false) shows it to anyone. Imports run from
// the CLI (`berth vulndb import`, also `--from-registry` for a database pushed as an artifact).

export interface VulnDbRoutesOptions {
  vulndb: VulnDb
  authEnabled: boolean
}

export async function vulnDbRoutes(app: FastifyInstance, opts: VulnDbRoutesOptions): Promise<void> {
  app.get('/vulndb', async (req) => {
    if (opts.authEnabled && callerOf(req).kind === 'anonymous') throw new RegistryError('UNAUTHORIZED', 'sign in first')
    return opts.vulndb.status()
  })
}
