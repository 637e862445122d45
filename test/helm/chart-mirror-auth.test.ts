// A chart-only proxy project (no registry endpoint) mirroring a private classic chart repository
// with Basic credentials (proxy.chartRepositoryUsername/Password), driven by the real helm binary.
// The first upstream is another Berth whose private project serves /chartrepo/{project} (the
// chart uploaded through its ChartMuseum API); the second is a static server requiring Basic auth
// whose index.yaml names chart URLs on another origin, directly and through a redirection: the
// credentials reach the upstream's origin and nothing else. Wrong credentials answer 502 naming
// the upstream's answer; the password is never shown, exported, printed by apply or logged.

import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import { ADMIN, ADMIN_PASSWORD, api, apiOk, basic, startAuthServer } from '../helpers/auth.js'
import type { TestServer } from '../helpers/server.js'
import { helmForSuite, helmWorkspace, type HelmWorkspace } from '../helpers/e2e-helm.js'
import { applySettings, exportSettings, parseSettingsDocument } from '../../src/settings/settings.js'

const { helmBinary, skip } = await helmForSuite('helm chart mirror with credentials')

/** The password of the mirrored Berth's user, which must never leave the mirror's upstream requests. */
const UPSTREAM_PASSWORD = 'chart-reader-secret-9876'

interface Seen {
  path: string
  authorization: string | undefined
}

/**
 * A static file server of `dir` on 127.0.0.1 recording each request's path and Authorization;
 * `auth`: requests without exactly these Basic credentials get 401; `redirects`: path → URL.
 */
async function staticServer(dir: string, opts: { auth?: string; redirects?: Map<string, string> } = {}) {
  const seen: Seen[] = []
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    seen.push({ path, authorization: (req.headers as IncomingHttpHeaders).authorization })
    if (opts.auth && req.headers.authorization !== opts.auth) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="charts"', 'content-type': 'text/plain' }).end('bad credentials for the chart repository')
      return
    }
    const target = opts.redirects?.get(path)
    if (target) {
      res.writeHead(302, { location: target }).end()
      return
    }
    readFile(join(dir, path.replace(/^\/charts\//, ''))).then(
      (bytes) => res.writeHead(200, { 'content-type': path.endsWith('.yaml') ? 'text/yaml' : 'application/gzip' }).end(bytes),
      () => res.writeHead(404).end('not found'),
    )
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    origin: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

describe('a chart-only proxy project mirroring a private chart repository, with helm', { skip }, () => {
  let upstream: TestServer
  let server: TestServer
  let ws: HelmWorkspace
  let work: string
  const logs: string[] = []
  const helm = (...args: string[]) => ws.helm(...args)
  const repoUrl = (project: string) => `${server.url}/chartrepo/${project}`

  before(async () => {
    ws = await helmWorkspace(helmBinary, 'berth-helm-mirror-auth-', ['up', 'pulled', 'cross'])
    work = ws.dir
    await helm('create', 'demo')
    await helm('package', 'demo', '--destination', 'up')

    // The upstream Berth: a private project with the chart, readable by a user of its own.
    upstream = await startAuthServer()
    await apiOk(upstream, 'POST', '/projects', ADMIN, { name: 'private', public: false }, 201)
    await apiOk(upstream, 'POST', '/users', ADMIN, { username: 'reader', password: UPSTREAM_PASSWORD }, 201)
    await apiOk(upstream, 'POST', '/projects/private/members', ADMIN, { username: 'reader', role: 'guest' }, 201)
    const uploaded = await fetch(`${upstream.url}/chartrepo/private/charts`, { method: 'POST', headers: { authorization: ADMIN, 'content-type': 'application/gzip' }, body: await readFile(join(work, 'up', 'demo-0.1.0.tgz')) })
    assert.equal(uploaded.status, 201, await uploaded.text())
    const anonymous = await fetch(`${upstream.url}/chartrepo/private/index.yaml`)
    assert.equal(anonymous.status, 401, 'the upstream repository is private')
    await anonymous.arrayBuffer()

    const logStream = new PassThrough()
    logStream.on('data', (chunk: Buffer) => logs.push(chunk.toString('utf8')))
    server = await startAuthServer({ log: { level: 'debug' } }, { logStream })
  })

  after(async () => {
    await server?.close()
    await upstream?.close()
    await ws?.close()
  })

  it('the settings are checked; a chart-only mirror needs no registry endpoint; the password is never shown', async () => {
    const refused: [unknown, string][] = [
      [{ ttl: '1m' }, 'proxy.registry'],
      [{ chartRepository: 'https://charts.example/x', namespaces: ['docker.io'] }, 'proxy.namespaces'],
      [{ chartRepository: 'https://charts.example/x', default: true }, 'proxy.default'],
      [{ chartRepository: 'https://user:pw@charts.example/x' }, 'proxy.chartRepository'],
      [{ chartRepository: 'https://charts.example/x', chartRepositoryPassword: 42 }, 'proxy.chartRepositoryPassword'],
      [{ chartRepository: 'https://charts.example/x', chartRepositoryUsername: 'a:b', chartRepositoryPassword: 'x' }, 'proxy.chartRepositoryUsername'],
      [{ registry: 'none', chartRepositoryUsername: 'a' }, 'proxy.chartRepositoryUsername'],
    ]
    for (const [proxy, field] of refused) {
      const res = await api(server, 'POST', '/projects', ADMIN, { name: 'bad', proxy })
      assert.equal(res.status, 400, JSON.stringify(proxy))
      assert.equal(((await res.json()) as { field: string }).field, field, JSON.stringify(proxy))
    }
    await apiOk(
      server,
      'POST',
      '/projects',
      ADMIN,
      { name: 'mirror', public: false, proxy: { ttl: '1h', chartRepository: `${upstream.url}/chartrepo/private`, chartRepositoryUsername: 'reader', chartRepositoryPassword: UPSTREAM_PASSWORD } },
      201,
    )
    const res = await api(server, 'GET', '/projects/mirror', ADMIN)
    const text = await res.text()
    assert.equal(res.status, 200, text)
    assert.ok(!text.includes(UPSTREAM_PASSWORD), 'the password is not returned')
    const { proxy } = JSON.parse(text) as { proxy: Record<string, unknown> }
    assert.equal(proxy.registry, undefined)
    assert.equal(proxy.chartRepository, `${upstream.url}/chartrepo/private`)
    assert.equal(proxy.chartRepositoryUsername, 'reader')
    assert.equal(proxy.chartRepositoryHasPassword, true)
    // moving the repository to another origin does not take the password along
    const moved = await api(server, 'PATCH', '/projects/mirror', ADMIN, { proxy: { chartRepository: 'https://elsewhere.example/charts' } })
    assert.equal(moved.status, 400)
    assert.equal(((await moved.json()) as { field: string }).field, 'proxy.chartRepositoryPassword')
  })

  it('helm repo add, search, pull and template through the mirror; /v2 answers as an ordinary project', async () => {
    await ws.repoAdd('mirror', repoUrl('mirror'), { username: 'admin', password: ADMIN_PASSWORD })
    const { stdout: found } = await helm('search', 'repo', 'mirror/', '--versions')
    assert.match(found, /mirror\/demo\s+0\.1\.0\s+1\.16\.0/)
    await helm('pull', 'mirror/demo', '--version', '0.1.0', '--destination', join(work, 'pulled'))
    assert.deepEqual(await readFile(join(work, 'pulled', 'demo-0.1.0.tgz')), await readFile(join(work, 'up', 'demo-0.1.0.tgz')), 'byte for byte')
    const { stdout: rendered } = await helm('template', 'demo', join(work, 'pulled', 'demo-0.1.0.tgz'))
    assert.match(rendered, /kind: Deployment/)

    // The chart is stored as an OCI artifact of the project: /v2 serves it like any other.
    const chart = await fetch(`${server.url}/v2/mirror/demo/manifests/0.1.0`, { headers: { authorization: ADMIN, accept: 'application/vnd.oci.image.manifest.v1+json' } })
    assert.equal(chart.status, 200, await chart.text())
    // An image the project does not hold: the ordinary 404 (no upstream registry to ask).
    const image = await fetch(`${server.url}/v2/mirror/library/alpine/manifests/3.20`, { headers: { authorization: ADMIN } })
    assert.equal(image.status, 404)
    assert.match(((await image.json()) as { errors: { code: string }[] }).errors[0]?.code ?? '', /^(NAME|MANIFEST)_UNKNOWN$/)
    const blob = await fetch(`${server.url}/v2/mirror/library/alpine/blobs/sha256:${'0'.repeat(64)}`, { headers: { authorization: ADMIN } })
    assert.equal(blob.status, 404)
    await blob.arrayBuffer()
    // Still a proxy project: nothing is pushed into it.
    const push = await fetch(`${server.url}/v2/mirror/library/alpine/blobs/uploads/`, { method: 'POST', headers: { authorization: ADMIN } })
    assert.ok(push.status === 401 || push.status === 403, `push answered ${push.status}`)
    assert.match(((await push.json()) as { errors: { code: string }[] }).errors[0]?.code ?? '', /^(DENIED|UNAUTHORIZED)$/)
  })

  it('wrong credentials answer 502 naming the upstream\'s answer; none answer 502 saying credentials are needed', async () => {
    await apiOk(server, 'PATCH', '/projects/mirror', ADMIN, { proxy: { chartRepositoryPassword: 'not-the-password' } })
    const wrong = await fetch(`${repoUrl('mirror')}/index.yaml`, { headers: { authorization: ADMIN } })
    const said = ((await wrong.json()) as { error: string }).error
    assert.equal(wrong.status, 502, said)
    assert.match(said, /answered 401/)
    assert.match(said, /check proxy\.chartRepositoryUsername and proxy\.chartRepositoryPassword/)
    const update = await helm('repo', 'update', 'mirror').then(
      (r) => r.stdout + r.stderr,
      (err: unknown) => String(err),
    )
    assert.match(update, /502 Bad Gateway/, 'helm reports the upstream failure')

    await apiOk(server, 'PATCH', '/projects/mirror', ADMIN, { proxy: { chartRepositoryUsername: null, chartRepositoryPassword: null } })
    const project = await apiOk<{ proxy: Record<string, unknown> }>(server, 'GET', '/projects/mirror', ADMIN)
    assert.equal(project.proxy.chartRepositoryHasPassword, false)
    const none = await fetch(`${repoUrl('mirror')}/index.yaml`, { headers: { authorization: ADMIN } })
    const noneSaid = ((await none.json()) as { error: string }).error
    assert.equal(none.status, 502, noneSaid)
    assert.match(noneSaid, /answered 401.*a private chart repository/)

    await apiOk(server, 'PATCH', '/projects/mirror', ADMIN, { proxy: { chartRepositoryUsername: 'reader', chartRepositoryPassword: UPSTREAM_PASSWORD } })
    const fixed = await fetch(`${repoUrl('mirror')}/index.yaml`, { headers: { authorization: ADMIN } })
    assert.equal(fixed.status, 200, await fixed.text())
  })

  it('credentials go to the upstream origin only: not to chart URLs on another origin, nor through a redirection leaving it', async () => {
    // The charts' host (another origin) and the private repository, whose index names it.
    await helm('package', 'demo', '--version', '0.2.0', '--destination', 'cross')
    await helm('package', 'demo', '--version', '0.3.0', '--destination', 'cross')
    await helm('package', 'demo', '--version', '0.1.0', '--destination', 'cross')
    await helm('repo', 'index', 'cross')
    const charts = await staticServer(join(work, 'cross'))
    const credentials = basic('u', 'static-secret-5555')
    const redirects = new Map<string, string>()
    const repo = await staticServer(join(work, 'cross'), { auth: credentials, redirects })
    try {
      redirects.set('/charts/moved/demo-0.3.0.tgz', `${charts.origin}/charts/demo-0.3.0.tgz`)
      const index = parseYaml(await readFile(join(work, 'cross', 'index.yaml'), 'utf8')) as { entries: { demo: { version: string; urls: string[] }[] } }
      for (const v of index.entries.demo) {
        if (v.version === '0.2.0') v.urls = [`${charts.origin}/charts/demo-0.2.0.tgz`]
        if (v.version === '0.3.0') v.urls = ['moved/demo-0.3.0.tgz']
      }
      await writeFile(join(work, 'cross', 'index.yaml'), stringifyYaml(index))

      await apiOk(server, 'POST', '/projects', ADMIN, { name: 'cross', public: false, proxy: { chartRepository: `${repo.origin}/charts`, chartRepositoryUsername: 'u', chartRepositoryPassword: 'static-secret-5555' } }, 201)
      await ws.repoAdd('cross', repoUrl('cross'), { username: 'admin', password: ADMIN_PASSWORD })
      for (const version of ['0.1.0', '0.2.0', '0.3.0']) await helm('pull', 'cross/demo', '--version', version, '--destination', join(work, 'pulled'))
      for (const version of ['0.1.0', '0.2.0', '0.3.0']) {
        assert.deepEqual(await readFile(join(work, 'pulled', `demo-${version}.tgz`)), await readFile(join(work, 'cross', `demo-${version}.tgz`)), version)
      }
      assert.ok(repo.seen.some((r) => r.path === '/charts/index.yaml' && r.authorization === credentials), 'the index was fetched with the credentials')
      assert.ok(repo.seen.some((r) => r.path === '/charts/demo-0.1.0.tgz' && r.authorization === credentials), 'a chart on the upstream origin was fetched with them')
      assert.ok(repo.seen.some((r) => r.path === '/charts/moved/demo-0.3.0.tgz' && r.authorization === credentials), 'the redirecting URL is on the origin')
      assert.deepEqual(
        charts.seen.map((r) => r.path).sort(),
        ['/charts/demo-0.2.0.tgz', '/charts/demo-0.3.0.tgz'],
        'the other origin served the absolute and the redirected chart',
      )
      assert.deepEqual(
        charts.seen.filter((r) => r.authorization !== undefined),
        [],
        'no credentials sent to another origin',
      )
    } finally {
      await charts.close()
      await repo.close()
    }
  })

  it('config export keeps the chart repository and its username without the password; apply never prints it', async () => {
    const doc = await exportSettings(server.app)
    const text = JSON.stringify(doc)
    assert.ok(!text.includes(UPSTREAM_PASSWORD) && !text.includes('static-secret-5555'), 'no password in the export')
    const mirror = doc.projects.find((p) => p.name === 'mirror') as { proxy?: Record<string, unknown> } | undefined
    assert.equal(mirror?.proxy?.chartRepository, `${upstream.url}/chartrepo/private`)
    assert.equal(mirror?.proxy?.chartRepositoryUsername, 'reader')
    assert.equal(mirror?.proxy?.registry, undefined)
    assert.deepEqual(Object.keys(mirror?.proxy ?? {}).filter((k) => /password/i.test(k)), [])
    // applied as exported: nothing to change; with a password: one update, the password not printed
    const same = await applySettings(server.app, parseSettingsDocument(doc), { prune: false, dryRun: true })
    assert.deepEqual(same.changes.filter((c) => c.target === 'project mirror'), [])
    const withPassword = structuredClone(doc)
    const entry = withPassword.projects.find((p) => p.name === 'mirror') as unknown as { proxy: Record<string, unknown> }
    entry.proxy.chartRepositoryPassword = UPSTREAM_PASSWORD
    const planned = await applySettings(server.app, parseSettingsDocument(withPassword), { prune: false, dryRun: true })
    const change = planned.changes.find((c) => c.target === 'project mirror')
    assert.ok(change, 'the password is written')
    assert.ok(!JSON.stringify(planned).includes(UPSTREAM_PASSWORD), 'and not printed')
  })

  it('no password in the audit log nor in the server log', async () => {
    await server.app.auth.audit.flush()
    const audit = await api(server, 'GET', '/audit?limit=500', ADMIN)
    const recorded = await audit.text()
    assert.equal(audit.status, 200, recorded)
    assert.match(recorded, /chartRepositoryPassword/, 'the change is audited')
    assert.ok(!recorded.includes(UPSTREAM_PASSWORD) && !recorded.includes('static-secret-5555') && !recorded.includes('not-the-password'), 'without the password')

    const all = logs.join('')
    assert.ok(all.length > 0, 'the server logged')
    assert.ok(!all.includes(UPSTREAM_PASSWORD) && !all.includes('static-secret-5555') && !all.includes('not-the-password'), 'no password in the log')
    assert.ok(!all.includes(Buffer.from(`reader:${UPSTREAM_PASSWORD}`).toString('base64')), 'nor its Basic header')
  })
})
