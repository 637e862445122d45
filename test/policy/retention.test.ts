import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { api, apiOk } from '../helpers/auth.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { blobDigest, manifestDigest, manifestSize, MANIFEST, pushImage, pushIndex, type Pushed } from '../gc/helpers.js'

const DAY = 86_400_000
const T0 = Date.parse('2030-01-01T00:00:00Z')

interface Removed {
  repository: string
  tag: string | null
  digest: string
}
interface Run {
  id: string
  status: 'running' | 'succeeded' | 'failed'
  dryRun: boolean
  trigger: string
  startedAt: string
  endedAt: string | null
  removed: Removed[]
  removedCount: number
  gcRunId: string | null
  error: string | null
}

/** A server whose clock the test sets (push times, pull times, "now" of retention). */
async function clockServer(overrides: Parameters<typeof startServer>[0] = {}) {
  const clock = { now: T0 }
  const srv = await startServer({ gc: { gracePeriod: '0s' }, ...overrides }, { now: () => clock.now })
  return { srv, clock }
}

async function setPolicy(srv: TestServer, policy: unknown): Promise<unknown> {
  return apiOk(srv, 'PUT', '/projects/library/retention', undefined, policy)
}

/** POST …/retention/runs, then polls the record until the run ends. */
async function runRetention(srv: TestServer, dryRun: boolean, project = 'library'): Promise<Run> {
  const { id } = await apiOk<{ id: string }>(srv, 'POST', `/projects/${project}/retention/runs`, undefined, { dryRun }, 202)
  for (let i = 0; i < 200; i++) {
    const run = await apiOk<Run>(srv, 'GET', `/projects/${project}/retention/runs/${id}`, undefined)
    if (run.status !== 'running') return run
    await sleep(25)
  }
  throw new Error(`retention run ${id} did not finish`)
}

async function waitForGc(srv: TestServer, id: string) {
  for (let i = 0; i < 400; i++) {
    const run = await srv.app.gc.get(id, { items: true })
    if (run && run.status !== 'running') return run
    await sleep(25)
  }
  throw new Error(`gc run ${id} did not finish`)
}

const tagsOf = (run: Run) => run.removed.map((r) => r.tag).sort()
const key = (r: Removed) => `${r.repository} ${r.tag ?? '-'} ${r.digest}`

async function pull(srv: TestServer, repo: string, ref: string, method = 'GET') {
  const res = await fetch(`${srv.url}/v2/${repo}/manifests/${ref}`, { method, headers: { accept: MANIFEST } })
  assert.equal(res.status, 200)
  await res.arrayBuffer().catch(() => undefined)
}

test('every rule kind, tag and repository patterns, OR of rules (dry runs change nothing)', async (t) => {
  const { srv, clock } = await clockServer()
  t.after(() => srv.close())
  const repo = 'library/ret/kinds'
  const pushed: Record<string, Pushed> = {}
  for (const [i, tag] of ['v1', 'v2', 'v3', 'v4'].entries()) {
    clock.now = T0 + i * 10 * DAY // v1 day 0, v2 day 10, v3 day 20, v4 day 30
    pushed[tag] = await pushImage(srv.url, repo, tag, `kinds-${tag}`)
  }
  clock.now = T0 + 28 * DAY
  await pull(srv, repo, 'v3')
  clock.now = T0 + 30.5 * DAY
  await pull(srv, repo, 'v1')
  await pull(srv, repo, pushed.v1!.digest)
  await pull(srv, repo, 'v2', 'HEAD') // HEAD is not a pull
  await srv.app.pulls.flush()
  clock.now = T0 + 31 * DAY

  const cases: [string, unknown[], string[]][] = [
    ['latestPushed 2', [{ kind: 'latestPushed', count: 2, repositories: '**', tags: '**' }], ['v1', 'v2']],
    ['latestPulled 1', [{ kind: 'latestPulled', count: 1, repositories: '**', tags: '**' }], ['v2', 'v3', 'v4']],
    ['latestPulled 2', [{ kind: 'latestPulled', count: 2, repositories: '**', tags: '**' }], ['v2', 'v4']],
    ['pushedWithinDays 15', [{ kind: 'pushedWithinDays', days: 15, repositories: '**', tags: '**' }], ['v1', 'v2']],
    ['pulledWithinDays 1', [{ kind: 'pulledWithinDays', days: 1, repositories: '**', tags: '**' }], ['v2', 'v3', 'v4']],
    ['pulledWithinDays 5', [{ kind: 'pulledWithinDays', days: 5, repositories: '**', tags: '**' }], ['v2', 'v4']],
    ['always v1', [{ kind: 'always', repositories: '**', tags: 'v1' }], ['v2', 'v3', 'v4']],
    ['always everything', [{ kind: 'always', repositories: 'ret/*', tags: '**' }], []],
    ['tagsExclude', [{ kind: 'latestPushed', count: 10, repositories: '**', tags: 'v*', tagsExclude: 'v4' }], ['v4']],
    ['tags brace pattern', [{ kind: 'always', repositories: '**', tags: 'v{1,3}' }], ['v2', 'v4']],
    ['repository out of scope', [{ kind: 'latestPushed', count: 1, repositories: 'other/**', tags: '**' }], []],
    ['repositoriesExclude', [{ kind: 'latestPushed', count: 1, repositories: 'ret/**', repositoriesExclude: 'ret/kinds' }], []],
    ['the full name is not the path', [{ kind: 'latestPushed', count: 1, repositories: 'library/**', tags: '**' }], []],
    ['OR of rules', [{ kind: 'latestPushed', count: 1, repositories: '**', tags: '**' }, { kind: 'always', repositories: '**', tags: 'v1' }], ['v2', 'v3']],
  ]
  for (const [name, rules, removed] of cases) {
    await setPolicy(srv, { rules, untagged: 'keep' })
    const run = await runRetention(srv, true)
    assert.equal(run.status, 'succeeded', `${name}: ${run.error}`)
    assert.equal(run.dryRun, true)
    assert.deepEqual(tagsOf(run), removed, name)
    for (const r of run.removed) {
      assert.equal(r.repository, repo)
      assert.equal(r.digest, pushed[r.tag!]!.digest, name)
    }
    assert.equal(run.removedCount, removed.length)
    assert.equal(run.gcRunId, null, 'a dry run starts no GC')
  }
  for (const [tag, p] of Object.entries(pushed)) assert.equal(await manifestDigest(srv.url, repo, tag), p.digest, `dry runs left ${tag}`)
  const history = await apiOk<Run[]>(srv, 'GET', '/projects/library/retention/runs?limit=100', undefined)
  assert.equal(history.length, cases.length)
  assert.ok(history.every((r) => r.status === 'succeeded' && r.dryRun))
})

test('a real run removes unretained tags and their manifests, untagged: delete, then GC frees the blobs', async (t) => {
  const { srv, clock } = await clockServer()
  t.after(() => srv.close())
  const repo = 'library/tools/ret'
  clock.now = T0
  const old = await pushImage(srv.url, repo, 'old', 'real-old')
  clock.now = T0 + 0.5 * DAY
  const loose = await pushImage(srv.url, repo, 'tmp', 'real-untagged')
  assert.equal((await fetch(`${srv.url}/v2/${repo}/manifests/tmp`, { method: 'DELETE' })).status, 202)
  clock.now = T0 + 1 * DAY
  const mid = await pushImage(srv.url, repo, 'mid', 'real-mid')
  await pushImage(srv.url, repo, 'mid-alias', 'real-mid')
  clock.now = T0 + 2 * DAY
  const fresh = await pushImage(srv.url, repo, 'new', 'real-new')
  // An index whose children are untagged, and a referrer of `new` (untagged): neither is "untagged garbage".
  const c1 = await pushImage(srv.url, repo, 'c1', 'real-c1')
  const c2 = await pushImage(srv.url, repo, 'c2', 'real-c2')
  for (const tag of ['c1', 'c2']) assert.equal((await fetch(`${srv.url}/v2/${repo}/manifests/${tag}`, { method: 'DELETE' })).status, 202)
  clock.now = T0 + 3 * DAY
  const index = await pushIndex(srv.url, repo, 'multi', [
    { digest: c1.digest, size: await manifestSize(srv.url, repo, c1.digest) },
    { digest: c2.digest, size: await manifestSize(srv.url, repo, c2.digest) },
  ])
  const subject = { mediaType: MANIFEST, digest: fresh.digest, size: await manifestSize(srv.url, repo, fresh.digest) }
  const sig = await pushImage(srv.url, repo, 'sig-tmp', 'real-sig', { subject, artifactType: 'application/example.sig' })
  assert.equal((await fetch(`${srv.url}/v2/${repo}/manifests/sig-tmp`, { method: 'DELETE' })).status, 202)
  // Out of scope: another repository path (and `*` does not cross a slash).
  const elsewhere = await pushImage(srv.url, 'library/keep/me', 'old', 'real-elsewhere')
  const deeper = await pushImage(srv.url, 'library/tools/deep/x', 'old', 'real-deeper')
  const untaggedElsewhere = await pushImage(srv.url, 'library/keep/me', 'tmp', 'real-untagged-elsewhere')
  assert.equal((await fetch(`${srv.url}/v2/library/keep/me/manifests/tmp`, { method: 'DELETE' })).status, 202)
  clock.now = T0 + 4 * DAY

  const policy = { rules: [{ kind: 'latestPushed', count: 2, repositories: 'tools/*', tags: '**' }], untagged: 'delete' }
  const saved = await setPolicy(srv, policy)
  assert.deepEqual(saved, { ...policy, rules: [{ ...policy.rules[0] }], schedule: null })
  assert.deepEqual(await apiOk(srv, 'GET', '/projects/library/retention', undefined), saved)

  const dry = await runRetention(srv, true)
  const run = await runRetention(srv, false)
  assert.equal(run.status, 'succeeded', run.error ?? '')
  assert.equal(run.dryRun, false)
  const expected = [
    { repository: repo, tag: 'old', digest: old.digest },
    { repository: repo, tag: 'mid', digest: mid.digest },
    { repository: repo, tag: 'mid-alias', digest: mid.digest },
    { repository: repo, tag: null, digest: loose.digest },
  ]
  assert.deepEqual(new Set(run.removed.map(key)), new Set(expected.map(key)))
  assert.deepEqual(new Set(dry.removed.map(key)), new Set(expected.map(key)), 'the dry run named exactly what the real run removed')
  assert.ok(run.endedAt && run.startedAt <= run.endedAt)

  for (const gone of [old.digest, mid.digest, loose.digest]) assert.equal(await manifestDigest(srv.url, repo, gone), 404)
  for (const tag of ['old', 'mid', 'mid-alias']) assert.equal(await manifestDigest(srv.url, repo, tag), 404)
  assert.equal(await manifestDigest(srv.url, repo, 'new'), fresh.digest)
  assert.equal(await manifestDigest(srv.url, repo, 'multi'), index.digest)
  for (const kept of [c1.digest, c2.digest, sig.digest]) assert.equal(await manifestDigest(srv.url, repo, kept), kept)
  assert.equal(await manifestDigest(srv.url, 'library/keep/me', 'old'), elsewhere.digest)
  assert.equal(await manifestDigest(srv.url, 'library/keep/me', untaggedElsewhere.digest), untaggedElsewhere.digest)
  assert.equal(await manifestDigest(srv.url, 'library/tools/deep/x', 'old'), deeper.digest)

  // The removal is followed by GC, which frees the blobs only the removed manifests used.
  assert.ok(run.gcRunId, 'a GC run was started')
  const gc = await waitForGc(srv, run.gcRunId)
  assert.equal(gc.trigger, 'retention')
  assert.equal(gc.status, 'succeeded')
  for (const b of [...old.blobs, ...mid.blobs, ...loose.blobs]) assert.equal(await blobDigest(srv.url, repo, b), 404, b)
  for (const b of fresh.blobs) assert.equal(await blobDigest(srv.url, repo, b), b)

  // Nothing more to do: a rerun removes nothing and starts no GC.
  const again = await runRetention(srv, false)
  assert.deepEqual(again.removed, [])
  assert.equal(again.gcRunId, null)
})

test('untagged: keep leaves untagged manifests; retention never removes an immutable tag', async (t) => {
  const { srv, clock } = await clockServer()
  t.after(() => srv.close())
  const repo = 'library/imm/app'
  const p: Pushed[] = []
  for (const [i, tag] of ['v1', 'v2', 'v3'].entries()) {
    clock.now = T0 + i * DAY
    p.push(await pushImage(srv.url, repo, tag, `imm-${tag}`))
  }
  const loose = await pushImage(srv.url, repo, 'tmp', 'imm-untagged')
  assert.equal((await fetch(`${srv.url}/v2/${repo}/manifests/tmp`, { method: 'DELETE' })).status, 202)
  clock.now = T0 + 5 * DAY
  await apiOk(srv, 'POST', '/projects/library/immutability-rules', undefined, { repositories: 'imm/**', tags: 'v1' }, 201)
  await setPolicy(srv, { rules: [{ kind: 'latestPushed', count: 1, repositories: '**', tags: '**' }], untagged: 'keep' })
  const run = await runRetention(srv, false)
  assert.equal(run.status, 'succeeded', run.error ?? '')
  assert.deepEqual(run.removed, [{ repository: repo, tag: 'v2', digest: p[1]!.digest }])
  assert.equal(await manifestDigest(srv.url, repo, 'v1'), p[0]!.digest, 'immutable tag kept')
  assert.equal(await manifestDigest(srv.url, repo, 'v3'), p[2]!.digest)
  assert.equal(await manifestDigest(srv.url, repo, 'v2'), 404)
  assert.equal(await manifestDigest(srv.url, repo, loose.digest), loose.digest, 'untagged kept')

  // An "always" rule that matches nothing of an immutable artifact still cannot remove it.
  await setPolicy(srv, { rules: [{ kind: 'always', repositories: '**', tags: 'nothing-*' }], untagged: 'delete' })
  const second = await runRetention(srv, false)
  assert.deepEqual(tagsOf(second).map(String), ['null', 'v3'])
  assert.equal(await manifestDigest(srv.url, repo, 'v1'), p[0]!.digest)
})

test('policies are validated when saved: patterns, cron, kinds, counts (400 naming the field)', async (t) => {
  const srv = await startServer()
  t.after(() => srv.close())
  const rule = { kind: 'latestPushed', count: 3, repositories: '**', tags: '**' }
  const bad: [unknown, string][] = [
    [{ rules: [{ ...rule, repositories: 'a[b' }] }, 'rules[0].repositories'],
    [{ rules: [{ ...rule, tags: '{v1,v2' }] }, 'rules[0].tags'],
    [{ rules: [rule, { ...rule, tagsExclude: 'x)' }] }, 'rules[1].tagsExclude'],
    [{ rules: [{ ...rule, repositoriesExclude: '' }] }, 'rules[0].repositoriesExclude'],
    [{ rules: [rule], schedule: 'every day at noon' }, 'schedule'],
    [{ rules: [rule], schedule: '61 * * * *' }, 'schedule'],
    [{ rules: [{ ...rule, kind: 'newest' }] }, 'rules[0].kind'],
    [{ rules: [{ ...rule, count: 0 }] }, 'rules[0].count'],
    [{ rules: [{ ...rule, count: 1.5 }] }, 'rules[0].count'],
    [{ rules: [{ kind: 'pushedWithinDays', repositories: '**', tags: '**' }] }, 'rules[0].days'],
    [{ rules: [{ kind: 'always', count: 3 }] }, 'rules[0].count'],
    [{ rules: [rule], untagged: 'maybe' }, 'untagged'],
    [{ rules: 'all' }, 'rules'],
    [{ rules: [rule], extra: true }, 'extra'],
  ]
  for (const [body, field] of bad) {
    const res = await api(srv, 'PUT', '/projects/library/retention', undefined, body)
    assert.equal(res.status, 400, JSON.stringify(body))
    assert.match(res.headers.get('content-type') ?? '', /problem\+json/)
    const problem = (await res.json()) as { code: string; field?: string; detail: string }
    assert.equal(problem.code, 'INVALID_FIELD')
    assert.equal(problem.field, field, `${JSON.stringify(body)} → ${problem.detail}`)
    assert.ok(problem.detail.length > field.length, 'the reason is given')
  }
  // Nothing was stored: the default policy.
  assert.deepEqual(await apiOk(srv, 'GET', '/projects/library/retention', undefined), { rules: [], untagged: 'keep', schedule: null })
  // Defaults for the patterns; a valid cron is kept.
  const saved = await setPolicy(srv, { rules: [{ kind: 'always' }], untagged: 'delete', schedule: '0 3 * * *' })
  assert.deepEqual(saved, { rules: [{ kind: 'always', repositories: '**', tags: '**' }], untagged: 'delete', schedule: '0 3 * * *' })
  assert.equal((await api(srv, 'PUT', '/projects/nope/retention', undefined, { rules: [] })).status, 404)
  assert.equal((await api(srv, 'POST', '/projects/library/retention/runs', undefined, { dryRun: 'yes' })).status, 400)
  assert.equal((await api(srv, 'GET', '/projects/library/retention/runs/not-a-run')).status, 404)
})

test('a run that fails part-way records the error, leaves tags and manifests consistent, and a rerun finishes', async (t) => {
  const { srv, clock } = await clockServer()
  t.after(() => srv.close())
  const repo = 'library/fail/app'
  const p: Pushed[] = []
  for (const [i, tag] of ['a', 'b', 'c', 'd'].entries()) {
    clock.now = T0 + i * DAY
    p.push(await pushImage(srv.url, repo, tag, `fail-${tag}`))
  }
  clock.now = T0 + 10 * DAY
  await setPolicy(srv, { rules: [{ kind: 'latestPushed', count: 1, repositories: '**', tags: '**' }], untagged: 'keep' })
  // The database refuses the second manifest deletion (as a lost connection would).
  const manifests = (srv.app.retention as unknown as { deps: { meta: { manifests: { delete: (...a: unknown[]) => Promise<boolean> } } } }).deps.meta.manifests
  const original = manifests.delete
  let deletes = 0
  manifests.delete = async (...args: unknown[]) => {
    if (++deletes === 2) throw new Error('connection reset while deleting')
    return original.apply(manifests, args)
  }
  const failed = await runRetention(srv, false)
  manifests.delete = original
  assert.equal(failed.status, 'failed')
  assert.match(failed.error ?? '', /connection reset/)
  assert.ok(failed.endedAt)
  // Every tag is either there with its manifest, or gone; nothing points at a missing manifest.
  for (const [i, tag] of ['a', 'b', 'c', 'd'].entries()) {
    const byTag = await manifestDigest(srv.url, repo, tag)
    assert.ok(byTag === 404 || byTag === p[i]!.digest, `${tag}: ${byTag}`)
  }
  clock.now += 60_000 // the history lists the newest run first
  const rerun = await runRetention(srv, false)
  assert.equal(rerun.status, 'succeeded', rerun.error ?? '')
  assert.equal(rerun.gcRunId !== null, true)
  for (const tag of ['a', 'b', 'c']) assert.equal(await manifestDigest(srv.url, repo, tag), 404)
  for (const i of [0, 1, 2]) assert.equal(await manifestDigest(srv.url, repo, p[i]!.digest), 404, `manifest ${i} removed by the rerun`)
  assert.equal(await manifestDigest(srv.url, repo, 'd'), p[3]!.digest)
  const history = await apiOk<Run[]>(srv, 'GET', '/projects/library/retention/runs', undefined)
  assert.deepEqual(history.map((r) => r.status), ['succeeded', 'failed'])
})

test('scheduled retention runs on its cron, and stops when the schedule is removed', async (t) => {
  const srv = await startServer()
  t.after(() => srv.close())
  await pushImage(srv.url, 'library/cron/app', 'v1', 'cron-v1')
  await setPolicy(srv, { rules: [{ kind: 'always' }], untagged: 'keep', schedule: '* * * * * *' })
  let runs: Run[] = []
  for (let i = 0; i < 100 && runs.length === 0; i++) {
    await sleep(50)
    runs = await apiOk<Run[]>(srv, 'GET', '/projects/library/retention/runs', undefined)
  }
  assert.ok(runs.length > 0, 'a scheduled run happened')
  assert.equal(runs[0]!.trigger, 'schedule')
  assert.equal(runs[0]!.dryRun, false)
  await setPolicy(srv, { rules: [{ kind: 'always' }], untagged: 'keep' })
  await sleep(1_200) // a tick in flight may still finish
  const settled = (await apiOk<Run[]>(srv, 'GET', '/projects/library/retention/runs?limit=1000', undefined)).length
  await sleep(1_500)
  assert.equal((await apiOk<Run[]>(srv, 'GET', '/projects/library/retention/runs?limit=1000', undefined)).length, settled)
})

test("cosign's sha256-<hex>.sig/.att/.sbom tags are not ranked as artifacts: retained while their subject is, removed with it", async () => {
  const { planRepository } = await import('../../src/policy/retention-service.js')
  const { compileRules, parsePolicy } = await import('../../src/policy/retention-policy.js')
  const digest = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`
  const row = (n: number, at: number, tags: string[]) => ({ digest: digest(n), createdAt: at, subjectDigest: null, child: false, tags: tags.map((name) => ({ name, updatedAt: at })), pullCount: 0, lastPulledAt: null })
  const sigOf = (n: number, suffix = 'sig') => `${digest(n).replace(':', '-')}.${suffix}`
  // old (1) and new (2) images, each signed after its push; the newest push is new's signature.
  const artifacts = [row(1, T0, ['old']), row(3, T0 + 1, [sigOf(1)]), row(2, T0 + 2, ['new']), row(4, T0 + 3, [sigOf(2)]), row(5, T0 + 4, [sigOf(2, 'att')]), row(6, T0 - 1, [sigOf(9)])]
  const rules = compileRules(parsePolicy({ rules: [{ kind: 'latestPushed', count: 1 }] }))
  const plan = planRepository('library/app', artifacts, rules, 'keep', () => false, T0 + DAY)
  // new and its .sig/.att stay; old goes with its .sig; a .sig of a manifest not in the
  // repository (cosign's COSIGN_REPOSITORY) is an artifact like any other, ranked below new.
  assert.deepEqual(plan?.untag.map((u) => u.tags[0]).sort(), ['old', sigOf(1), sigOf(9)].sort())
  // An immutable signature tag stays even when its subject goes.
  const immutable = planRepository('library/app', artifacts, rules, 'keep', (t) => t === sigOf(1), T0 + DAY)
  assert.deepEqual(immutable?.untag.map((u) => u.tags[0]).sort(), ['old', sigOf(9)].sort())
})
