import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { openMetadata, type MetadataDb } from '../../src/metadata/db.js'
import { createScannerRepository, type ScannerRepository, type ScannerValues } from '../../src/metadata/repositories/scanners.js'
import { uncachedFeed } from '../../src/metadata/changes.js'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'

// One default scanner at a time on PostgreSQL when two nodes (separate pools on one database)
// make two scanners the default at the same moment: under READ COMMITTED each transaction would
// clear only the defaults it sees, not the other's uncommitted one, and two would be left.
describe('the default scanner on PostgreSQL, two nodes at once', { skip: postgresSkip() }, () => {
  let url: string
  const opened: MetadataDb[] = []
  before(async () => {
    url = await createTestDatabase()
  })
  after(async () => {
    await Promise.allSettled(opened.map((m) => m.close()))
    if (url) await dropTestDatabase(url)
  })

  const node = async (): Promise<{ repo: ScannerRepository; meta: MetadataDb }> => {
    const meta = await openMetadata(url)
    opened.push(meta)
    return { repo: createScannerRepository(meta.db, uncachedFeed()), meta }
  }
  const values = (isDefault: boolean): ScannerValues => ({ url: 'http://127.0.0.1:9/adapter', auth: 'None', accessCredential: null, isDefault })
  const defaults = async (meta: MetadataDb) => (await meta.db.selectFrom('scanners').select('name').where('is_default', '=', 1).orderBy('name').execute()).map((r) => r.name)

  it('PATCH-style updates of two scanners to default leave exactly one default, round after round', async () => {
    const a = await node()
    const b = await node()
    const now = Date.now()
    assert.ok(await a.repo.insert('alpha', values(false), now))
    assert.ok(await a.repo.insert('beta', values(false), now))
    for (let round = 0; round < 40; round++) {
      const [first, second] = round % 2 === 0 ? [a, b] : [b, a]
      await Promise.all([first.repo.update('alpha', values(true), now + round), second.repo.update('beta', values(true), now + round)])
      const left = await defaults(a.meta)
      assert.equal(left.length, 1, `round ${round}: defaults ${left.join(', ')}`)
    }
  })

  it('two registrations with default: true at once leave exactly one default', async () => {
    const a = await node()
    const b = await node()
    const now = Date.now()
    for (let round = 0; round < 20; round++) {
      await Promise.all([a.repo.insert(`one-${round}`, values(true), now), b.repo.insert(`two-${round}`, values(true), now)])
      const left = await defaults(a.meta)
      assert.equal(left.length, 1, `round ${round}: defaults ${left.join(', ')}`)
    }
  })
})
