// A proxy project mirroring a classic Helm chart repository by URL (proxy.chartRepository),
// driven by the real helm binary: the upstream is a static HTTP server in the test serving what
// `helm package` and `helm repo index` wrote. Its index.yaml is served under
// /chartrepo/{project} and refreshed after the project's ttl; a chart is fetched on first use,
// stored as an OCI artifact and served from Berth afterwards, also once the upstream is gone.

import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parse as parseYaml } from 'yaml'
import { ADMIN, ADMIN_PASSWORD, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import type { TestServer } from '../helpers/server.js'
import { helmForSuite, helmWorkspace, type HelmWorkspace } from '../helpers/e2e-helm.js'

const { helmBinary, skip } = await helmForSuite('helm chart mirror')

/** A static file server of `dir` on 127.0.0.1, counting the GETs of each path. */
async function staticServer(dir: string): Promise<{ url: string; gets: Map<string, number>; close(): Promise<void> }> {
  const gets = new Map<string, number>()
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    gets.set(path, (gets.get(path) ?? 0) + 1)
    readFile(join(dir, path.replace(/^\/charts\//, ''))).then(
      (bytes) => res.writeHead(200, { 'content-type': path.endsWith('.yaml') ? 'text/yaml' : 'application/gzip' }).end(bytes),
      () => res.writeHead(404).end('not found'),
    )
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/charts`,
    gets,
    close: () => new Promise((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

describe('a proxy project mirroring a classic chart repository, with helm', { skip }, () => {
  let server: TestServer
  let upstream: Awaited<ReturnType<typeof staticServer>>
  let ws: HelmWorkspace
  let work: string
  const helm = (...args: string[]) => ws.helm(...args)
  const repoUrl = () => `${server.url}/chartrepo/mirror`

  before(async () => {
    ws = await helmWorkspace(helmBinary, 'berth-helm-mirror-', ['up', 'pulled', 'again'])
    work = ws.dir
    await helm('create', 'demo')
    await helm('package', 'demo', '--destination', 'up')
    // relative URLs, as `helm repo index` writes them without --url
    await helm('repo', 'index', 'up')
    upstream = await staticServer(join(work, 'up'))
    server = await startAuthServer()
    await apiOk(server, 'POST', '/registries', ADMIN, { name: 'up', url: upstream.url.replace(/\/charts$/, '') }, 201)
  })

  after(async () => {
    await server?.close()
    await upstream?.close()
    await ws?.close()
  })

  it('proxy.chartRepository is checked, shown and kept with the project', async () => {
    for (const bad of ['ftp://charts.example/', 'not a url', 'https://user:pw@charts.example/', 42]) {
      const res = await api(server, 'POST', '/projects', ADMIN, { name: 'bad', proxy: { registry: 'up', chartRepository: bad } })
      assert.equal(res.status, 400, String(bad))
      assert.equal(((await res.json()) as { field: string }).field, 'proxy.chartRepository')
    }
    await apiOk(server, 'POST', '/projects', ADMIN, { name: 'mirror', public: false, proxy: { registry: 'up', ttl: '3s', chartRepository: `${upstream.url}/` } }, 201)
    const project = await apiOk<{ proxy: { chartRepository: string; ttl: string } }>(server, 'GET', '/projects/mirror', ADMIN)
    assert.equal(project.proxy.chartRepository, upstream.url)
    assert.equal(project.proxy.ttl, '3s')
  })

  it('helm repo add, search repo and pull through the mirror; the chart is fetched once and stored', async () => {
    const anonymous = await fetch(`${repoUrl()}/index.yaml`)
    assert.equal(anonymous.status, 401, 'a private mirror asks for credentials')
    await anonymous.arrayBuffer()
    await ws.repoAdd('mirror', repoUrl(), { username: 'admin', password: ADMIN_PASSWORD })
    const { stdout: found } = await helm('search', 'repo', 'mirror/', '--versions')
    assert.match(found, /mirror\/demo\s+0\.1\.0\s+1\.16\.0/)

    const served = parseYaml(await (await fetch(`${repoUrl()}/index.yaml`, { headers: { authorization: ADMIN } })).text()) as { entries: Record<string, { urls: string[]; digest: string }[]> }
    assert.deepEqual(served.entries.demo?.[0]?.urls, ['charts/demo-0.1.0.tgz'], 'chart URLs point at Berth')
    assert.equal(upstream.gets.get('/charts/demo-0.1.0.tgz'), undefined, 'nothing fetched before the first pull')

    const original = await readFile(join(work, 'up', 'demo-0.1.0.tgz'))
    await helm('pull', 'mirror/demo', '--version', '0.1.0', '--destination', join(work, 'pulled'))
    assert.deepEqual(await readFile(join(work, 'pulled', 'demo-0.1.0.tgz')), original, 'byte for byte')
    await helm('pull', 'mirror/demo', '--version', '0.1.0', '--destination', join(work, 'again'))
    assert.equal(upstream.gets.get('/charts/demo-0.1.0.tgz'), 1, 'fetched from the upstream once')
    // stored as the OCI artifact helm push writes: ChartMuseum's list shows it
    const listed = (await (await fetch(`${repoUrl()}/api/charts`, { headers: { authorization: ADMIN } })).json()) as Record<string, { version: string }[]>
    assert.deepEqual(listed.demo?.map((v) => v.version), ['0.1.0'])
    const { stdout: rendered } = await helm('template', 'demo', join(work, 'pulled', 'demo-0.1.0.tgz'))
    assert.match(rendered, /kind: Deployment/)
  })

  it('index.yaml is refreshed after the ttl; with the upstream gone the index held and the stored charts are served', async () => {
    const indexGets = () => upstream.gets.get('/charts/index.yaml') ?? 0
    await helm('package', 'demo', '--version', '0.2.0', '--destination', 'up')
    await helm('repo', 'index', 'up')
    const before = indexGets()
    await eventually(async () => {
      await helm('repo', 'update', 'mirror')
      return /mirror\/demo\s+0\.2\.0/.test((await helm('search', 'repo', 'mirror/demo')).stdout)
    }, 'the new version in the mirrored index after the ttl', 20_000)
    assert.ok(indexGets() > before, 'the upstream index was fetched again')

    await upstream.close()
    // past the ttl: the refresh fails, the index held is served
    await new Promise((r) => setTimeout(r, 3_100))
    const res = await fetch(`${repoUrl()}/index.yaml`, { headers: { authorization: ADMIN } })
    assert.equal(res.status, 200)
    assert.match(await res.text(), /version: 0\.2\.0/)
    await helm('pull', 'mirror/demo', '--version', '0.1.0', '--destination', join(work, 'home'))
    // a version never fetched cannot be had without the upstream: 502, not a 500
    const missing = await fetch(`${repoUrl()}/charts/demo-0.2.0.tgz`, { headers: { authorization: ADMIN } })
    assert.equal(missing.status, 502, await missing.text())
  })
})
