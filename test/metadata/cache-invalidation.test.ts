import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import pino from 'pino'
import { AuthService } from '../../src/auth/service.js'
import { ACCESS_KINDS, BLOB_LINK_KINDS, MANIFEST_KINDS, SCAN_KINDS, uncachedFeed, type ChangeFeed } from '../../src/metadata/changes.js'
import { ScanPolicies } from '../../src/scan/policy.js'
import { openMetadata, type MetadataDb } from '../../src/metadata/db.js'
import { createGcRepository } from '../../src/metadata/repositories/gc.js'
import { createMetadataRepositories, type MetadataRepositories } from '../../src/metadata/repositories/index.js'
import { createTestDatabase, dropTestDatabase, startServer, TEST_DATABASE_URL } from '../helpers/server.js'
import { MANIFEST, pushImage } from '../gc/helpers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('an idle server keeps its read caches', () => {
  it('job polls, audit rows and pull counts move no cache generation', async () => {
    const s = await startServer({ jobs: { pollInterval: '50ms' } })
    try {
      const img = await pushImage(s.url, 'idle/app', 'v1', 'idle')
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${s.url}/v2/idle/app/manifests/v1`, { headers: { accept: MANIFEST } })
        assert.equal(res.status, 200)
        await res.arrayBuffer()
      }
      // Let the pull counts flush and the push's own changes settle.
      await sleep(300)
      const changes = s.app.metadata.changes
      const generations = () => [s.app.metadata.generation(), changes.generation(MANIFEST_KINDS)(), changes.generation(BLOB_LINK_KINDS)(), changes.generation(ACCESS_KINDS)()]
      const before = generations()
      assert.ok(before.every((g) => g !== undefined), 'reads are cached')
      const polls = s.app.jobs
      assert.ok(polls, 'the job queue runs')
      // Ten poll intervals of an idle server.
      await sleep(500)
      assert.deepEqual(generations(), before, 'nothing the caches hold changed, so no generation moved')
      const res = await fetch(`${s.url}/v2/idle/app/manifests/v1`, { method: 'HEAD', headers: { accept: MANIFEST } })
      assert.equal(res.headers.get('docker-content-digest'), img.digest)
    } finally {
      await s.close()
    }
  })
})

/**
 * Every writing method of every repository, each after the caches hold the rows it changes; the
 * caches must then answer what the database holds. A repository method missing from both lists
 * below fails the test: a new writer must say what it changed.
 */
const READS = new Set([
  'repositories.findId', 'repositories.list',
  'blobs.linked', 'blobs.findLinked', 'blobs.find', 'blobs.linkedSizes', 'blobs.stats',
  'manifests.findByDigest', 'manifests.peek', 'manifests.findByTag', 'manifests.missing', 'manifests.referrers', 'manifests.any', 'manifests.describe',
  'tags.list', 'tags.referencingBlob', 'tags.current', 'tags.ofManifest',
  'users.find', 'users.list', 'users.count',
  'projects.find', 'projects.list', 'projects.members', 'projects.membershipsOf', 'projects.findMember', 'projects.usage', 'projects.holdsBlob', 'projects.repositoryCount',
  'robots.find', 'robots.list',
  'immutability.immutabilityRules', 'immutability.immutabilityRulesOf', 'immutability.tagsOf',
  'retention.retentionPolicy', 'retention.retentionPolicies', 'retention.findRun', 'retention.listRuns', 'retention.runItems', 'retention.repositoriesOf', 'retention.artifactsPage', 'retention.artifactsNamed',
  'pulls.pulls', 'settings.gcSchedule',
  'uploads.find', 'uploads.idleSince', 'uploads.withData', 'uploads.exists', 'uploads.count',
  'credentials.findToken', 'credentials.failures',
  'audit.query', 'jobs.find', 'jobs.list', 'jobs.countByStatus', 'settings.get',
  ...['repositories', 'repository', 'countTags', 'tags', 'tagNames', 'tagsNamed', 'tagsOf', 'manifests', 'taggedArtifacts', 'manifestDigests', 'search', 'storageTotals', 'exclusiveBytes', 'sharedDigests', 'manifestsWithBlob', 'blobSizes'].map((m) => `catalog.${m}`),
  'registryEndpoints.find', 'registryEndpoints.list',
  ...['policies', 'policy', 'execution', 'executions', 'tasks', 'counts', 'remoteBlobRepository'].map((m) => `replication.${m}`),
  'proxy.tagChecked', 'proxy.heldByOther',
  ...['pendingSinks', 'withPending', 'pending', 'deliveries', 'delivery', 'backlog', 'webhookPolicies'].map((m) => `events.${m}`),
  ...['material', 'policies', 'status', 'statusKeys', 'parentsOf'].map((m) => `trust.${m}`),
  'vulndb.active', 'vulndb.imports', 'vulndb.lookup',
  'adoption.adoptedTags',
  ...['inventory', 'result', 'stale', 'findingsOf', 'packagesOf', 'holders', 'policies'].map((m) => `scans.${m}`),
  ...['find', 'list', 'findDefault', 'projectScanner', 'projectsUsing', 'vexOf'].map((m) => `scanners.${m}`),
])
/** Writes of rows no cache holds (bookkeeping): nothing to announce. */
const UNCACHED_WRITES = new Set([
  'registryEndpoints.insert', 'registryEndpoints.update', 'registryEndpoints.delete',
  ...['insertPolicy', 'updatePolicy', 'deletePolicy', 'insertExecution', 'setExecutionJob', 'startAttempt', 'finishExecution', 'stopExecution', 'deleteExecutionsOf', 'addTasks', 'updateTask', 'rememberRemoteBlob', 'forgetRemoteBlobs'].map((m) => `replication.${m}`),
  'proxy.markTagChecked', 'proxy.acquire', 'proxy.release', 'proxy.pruneLeases', 'proxy.forgetProject',
  ...['append', 'fanOut', 'finish', 'prune', 'replay', 'lease', 'release', 'insertWebhook', 'updateWebhook', 'deleteWebhook'].map((m) => `events.${m}`),
  // The vulnerability database: VulnDb reads the active generation each time, no cache holds it.
  'vulndb.begin', 'vulndb.addEntries', 'vulndb.activate', 'vulndb.fail', 'vulndb.purge',
  'uploads.create', 'uploads.setSize', 'uploads.delete', 'uploads.lease', 'uploads.release', 'uploads.pruneLeases',
  'credentials.insertToken', 'credentials.markUsed', 'credentials.revoke', 'credentials.revokeFamily', 'credentials.revokePrincipal', 'credentials.pruneTokens', 'credentials.addFailure', 'credentials.block', 'credentials.clearFailures', 'credentials.pruneFailures',
  'audit.insertMany', 'audit.deleteBefore',
  'jobs.insert', 'jobs.claim', 'jobs.renew', 'jobs.finish', 'jobs.failExhausted', 'jobs.prune',
  'settings.putIfAbsent', 'settings.setGcSchedule',
  'immutability.addImmutabilityRule', 'immutability.deleteImmutabilityRule',
  'retention.putRetentionPolicy', 'retention.createRun', 'retention.updateRun', 'retention.failAbandonedRuns', 'retention.addRunItems', 'retention.prunePulls',
  'pulls.addPulls',
  // What an adoption set each tag to: read by the next adoption only.
  'adoption.recordTags',
  // No read cache here holds trust rows; they announce the `trust` kind, which the pull gate's
  // decisions follow (test/trust/gate.test.ts).
  ...['insertMaterial', 'deleteMaterial', 'setPolicy', 'putStatus', 'deleteStatusesOf'].map((m) => `trust.${m}`),
  // Inventories are read by no cache; results announce 'scan', which drops the pull gate's
  // decisions (test/scan/scan-policy.test.ts shows a changed result or policy is seen).
  'scans.saveInventory', 'scans.markPending', 'scans.markRunning', 'scans.markFailed', 'scans.saveResult',
  // Scanner registrations are read by each scan, no cache holds them; project VEX documents
  // announce 'scan' (test/scan/vex.test.ts shows the pull gate follows them).
  'scanners.insert', 'scanners.update', 'scanners.delete', 'scanners.setProjectScanner', 'scanners.addVex', 'scanners.deleteVex',
  // Last login and last use: book-keeping no access decision reads (the 0007 triggers ignore them too).
  'robots.touch', 'users.recordLogin',
])

interface Caches {
  meta: MetadataRepositories
  auth: AuthService
  scanPolicies: ScanPolicies
}

async function openCaches(db: MetadataDb['db'], changes: ChangeFeed): Promise<Caches> {
  const meta = createMetadataRepositories(db, changes)
  const options = { enabled: true, service: 'berth', issuer: 'berth', tokenExpiry: 300_000, refreshTokenExpiry: 86_400_000, sessionExpiry: 3_600_000, autoCreateProjects: false, projectCreation: 'admin' as const, throttle: { maxFailures: 5, window: 900_000 } }
  const auth = await AuthService.create(meta, changes.generation(ACCESS_KINDS), options, pino({ level: 'silent' }), Date.now)
  return { meta, auth, scanPolicies: new ScanPolicies({ scans: meta.scans, generation: changes.generation(SCAN_KINDS), now: Date.now }) }
}

const robotView = (r: { disabled: number; secret_hash: string } | undefined) => (r ? `${r.disabled}:${r.secret_hash}` : null)

/** What every cache answers, next to what the database holds. */
async function cachedView(c: Caches) {
  const { meta, auth } = c
  const member = { kind: 'user' as const, name: 'ann', admin: false, groups: [], via: 'password' as const }
  return {
    byTag: (await meta.manifests.findByTag('team/app', 'v1'))?.digest ?? null,
    byTag2: (await meta.manifests.findByTag('team/app', 'v2'))?.digest ?? null,
    byDigest: (await meta.manifests.findByDigest('team/app', DIGEST_A))?.digest ?? null,
    byDigestC: (await meta.manifests.findByDigest('team/app', DIGEST_C))?.digest ?? null,
    link: (await meta.blobs.findLinked('team/app', DIGEST_B)) ?? null,
    unverified: (await meta.blobs.linked('team/app', DIGEST_B))?.unverified ?? null,
    user: (await auth.authenticator.user('ann'))?.disabled ?? null,
    robot: robotView(await auth.authenticator.robot('robot$team+ci')),
    project: await auth.policy.project('team').then((p) => (p ? { public: p.public, proxy: p.proxy, layout: p.layout } : null)),
    actions: [...(await auth.policy.repositoryActions(member, 'team/app'))].sort().join(','),
    scanPolicy: (await c.scanPolicies.project('team')).blockSeverity,
  }
}

async function storedView(metadata: MetadataDb) {
  return cachedView(await openCaches(metadata.db, uncachedFeed()))
}

const CONTENT = { a: Buffer.from('{"a":1}'), c: Buffer.from('{"c":1}') }
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`
const DIGEST_A = sha256(CONTENT.a)
const DIGEST_B = 'sha256:' + 'b'.repeat(64)
const DIGEST_C = sha256(CONTENT.c)

function manifest(content: Buffer, refs: { digest: string; kind: 'blob' | 'manifest' }[] = []) {
  return { digest: sha256(content), mediaType: MANIFEST, artifactType: null, size: content.length, content, subjectDigest: null, annotations: null, references: refs }
}

/** The writes, in an order where each changes something the caches hold. */
function writes(c: Caches, metadata: MetadataDb): [string, () => Promise<unknown>][] {
  const { meta } = c
  const gc = createGcRepository(metadata.db, metadata.changes)
  const repo = async () => (await meta.repositories.findId('team/app'))!
  const project = async () => (await meta.projects.find('team'))!.id
  const now = Date.now()
  // GC cutoffs past every stamp (PostgreSQL stamps rows with its own clock, later than `now`).
  const later = now + 3_600_000
  return [
    ['gc.createRun', () => gc.createRun({ id: 'run', kind: 'gc', trigger: 'test', dryRun: false, now })],
    ['projects.insert', () => meta.projects.insert('team', false, null, now)],
    ['users.insert', () => meta.users.insert({ username: 'ann', passwordHash: null, email: null, admin: false, source: 'local' }, now)],
    ['robots.insert', async () => meta.robots.insert({ name: 'robot$team+ci', projectId: await project(), secretHash: 'x', permissions: '[]', description: null, expiresAt: null }, now)],
    ['repositories.ensure', () => meta.repositories.ensure('team/app', now)],
    ['blobs.addAndLink', async () => meta.blobs.addAndLink(await repo(), DIGEST_B, 7, now)],
    ['blobs.markUnverified', () => meta.blobs.markUnverified([DIGEST_B])],
    ['blobs.markVerified', () => meta.blobs.markVerified([DIGEST_B])],
    ['blobs.markUnverified', () => meta.blobs.markUnverified([DIGEST_B])],
    ['manifests.insert', async () => meta.manifests.insert(await repo(), manifest(CONTENT.a, [{ digest: DIGEST_B, kind: 'blob' }]), now)],
    ['tags.upsert', async () => meta.tags.upsert(await repo(), 'v1', DIGEST_A, now)],
    ['immutability.insertTagIfAbsent', async () => meta.immutability.insertTagIfAbsent(await repo(), 'v2', DIGEST_A, now)],
    ['projects.upsertMember', async () => meta.projects.upsertMember(await project(), 'user', 'ann', 'developer', now)],
    ['projects.update', () => meta.projects.update('team', { public: true })],
    ['users.update', () => meta.users.update('ann', { disabled: true }, now)],
    ['robots.setDisabled', () => meta.robots.setDisabled('robot$team+ci', true)],
    ['robots.setSecret', () => meta.robots.setSecret('robot$team+ci', 'y')],
    ['projects.deleteMember', async () => meta.projects.deleteMember(await project(), 'user', 'ann')],
    ['tags.delete', async () => meta.tags.delete(await repo(), 'v2')],
    ['tags.deleteForManifest', async () => meta.tags.deleteForManifest(await repo(), DIGEST_A)],
    ['tags.upsert', async () => meta.tags.upsert(await repo(), 'v1', DIGEST_A, now)],
    ['retention.removeArtifact', async () => meta.retention.removeArtifact(await repo(), DIGEST_A, ['v1'], async () => false)],
    ['tags.upsert', async () => meta.tags.upsert(await repo(), 'v1', DIGEST_A, now)],
    ['adoption.deleteAdoptedTag', async () => meta.adoption.deleteAdoptedTag(await repo(), 'team/app', 'v1', DIGEST_A)],
    ['tags.upsert', async () => meta.tags.upsert(await repo(), 'v1', DIGEST_A, now)],
    ['manifests.delete', async () => meta.manifests.delete(await repo(), DIGEST_A, now)],
    ['blobs.unlink', async () => meta.blobs.unlink(await repo(), DIGEST_B)],
    ['blobs.addAndLink', async () => meta.blobs.addAndLink(await repo(), DIGEST_B, 7, now)],
    ['gc.quarantine', () => gc.quarantine(DIGEST_B, 7, 'corrupt', now)],
    ['manifests.insert', async () => meta.manifests.insert(await repo(), manifest(CONTENT.c), now)],
    ['gc.deleteManifests', async () => gc.deleteManifests('run', { cutoff: later, untaggedCutoff: later }, [{ id: (await metadata.db.selectFrom('manifests').select('id').where('digest', '=', DIGEST_C).executeTakeFirstOrThrow()).id, repositoryId: await repo(), digest: DIGEST_C, size: CONTENT.c.length }], now)],
    ['blobs.addAndLink', async () => meta.blobs.addAndLink(await repo(), DIGEST_B, 9, now - 10_000)],
    ['gc.deleteBlobs', () => gc.deleteBlobs('run', later, [{ digest: DIGEST_B, size: 9 }], now)],
    ['blobs.addAndLink', async () => meta.blobs.addAndLink(await repo(), DIGEST_B, 7, now)],
    ['catalog.deleteRepository', async () => meta.catalog.deleteRepository(await repo())],
    ['robots.delete', () => meta.robots.delete('robot$team+ci')],
    ['users.delete', () => meta.users.delete('ann')],
    ['projects.setProxy', () => meta.projects.setProxy('team', '{"registry":"up"}')],
    ['projects.setLayout', () => meta.projects.setLayout('team', '{"path":"/srv/layout","repository":"images"}')],
    ['scans.setPolicy', () => meta.scans.setPolicy('team', JSON.stringify({ blockSeverity: 'high' }), now)],
    ['projects.delete', () => meta.projects.delete('team')],
  ]
}

/** Writes through `writer` (another connection to the same database, or the reader itself); `reader`'s caches must follow. */
async function writeThroughEveryMethod(metadata: MetadataDb, writer: MetadataDb = metadata): Promise<void> {
  const caches = await openCaches(metadata.db, metadata.changes)
  const steps = writes(writer === metadata ? caches : await openCaches(writer.db, writer.changes), writer)
  const covered = new Set([...steps.map(([name]) => name)])
  for (const [group, repo] of Object.entries(caches.meta)) {
    if (group === 'db' || group === 'changes') continue
    for (const method of Object.keys(repo as object)) {
      const name = `${group}.${method}`
      assert.ok(READS.has(name) || UNCACHED_WRITES.has(name) || covered.has(name), `${name} is neither a read, a write of uncached rows, nor a write tested here`)
    }
  }
  for (const [name, write] of steps) {
    const before = await cachedView(caches)
    await write()
    const after = await cachedView(caches)
    const stored = await storedView(metadata)
    assert.deepEqual(after, stored, `after ${name}, every cache answers what the database holds`)
    // Each write (but the set-up ones) changed what a cache held before it: the test is not vacuous.
    if (name !== 'gc.createRun' && name !== 'repositories.ensure') assert.notDeepEqual(after, before, `${name} changed something the caches held`)
  }
}

describe('every write reaches every cache', () => {
  const dirs: string[] = []
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })

  it('on SQLite', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cache-'))
    dirs.push(dir)
    const metadata = await openMetadata(`sqlite:${join(dir, 'berth.db')}`)
    try {
      await writeThroughEveryMethod(metadata)
    } finally {
      await metadata.close()
    }
  })

  it('on PostgreSQL', { skip: TEST_DATABASE_URL ? false : 'set BERTH_TEST_DATABASE_URL' }, async () => {
    const url = await createTestDatabase()
    const metadata = await openMetadata(url)
    try {
      await writeThroughEveryMethod(metadata)
    } finally {
      await metadata.close()
      await dropTestDatabase(url)
    }
  })

  it('on SQLite, written by another process (the change counters say which kinds moved)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cache-'))
    dirs.push(dir)
    const reader = await openMetadata(`sqlite:${join(dir, 'berth.db')}`, { sharedByProcesses: true })
    const writer = await openMetadata(`sqlite:${join(dir, 'berth.db')}`, { sharedByProcesses: true })
    try {
      await writeThroughEveryMethod(reader, writer)
    } finally {
      await writer.close()
      await reader.close()
    }
  })
})

describe('processes sharing a SQLite file', () => {
  it("keep their caches when another one writes statistics and bookkeeping (pull counts, jobs), and drop only the changed kinds' otherwise", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cache-'))
    const reader = await openMetadata(`sqlite:${join(dir, 'berth.db')}`, { sharedByProcesses: true })
    const writer = await openMetadata(`sqlite:${join(dir, 'berth.db')}`, { sharedByProcesses: true })
    try {
      const meta = createMetadataRepositories(writer.db, writer.changes)
      const repo = await meta.repositories.ensure('team/app', Date.now())
      await meta.manifests.insert(repo, manifest(CONTENT.a), Date.now())
      const manifests = reader.changes.generation(MANIFEST_KINDS)
      const access = reader.changes.generation(ACCESS_KINDS)
      const before = { manifests: manifests(), access: access() }
      await meta.pulls.addPulls([{ repository: 'team/app', digest: DIGEST_A, count: 3, last: Date.now() }])
      await meta.jobs.insert({ id: 'job-1', kind: 'test', payload: '{}', runAt: Date.now(), maxAttempts: 1, dedupeKey: null, now: Date.now() })
      assert.equal(Number((await reader.db.selectFrom('manifest_pulls').select('pull_count').executeTakeFirstOrThrow()).pull_count), 3, 'the other process committed')
      assert.deepEqual({ manifests: manifests(), access: access() }, before, 'no cache generation moved')
      await meta.tags.upsert(repo, 'v1', DIGEST_A, Date.now())
      assert.notEqual(manifests(), before.manifests, 'a tag written elsewhere moves the manifest caches')
      assert.equal(access(), before.access, 'and leaves the access caches alone')
    } finally {
      await writer.close()
      await reader.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
