// End-to-end: the classic Helm chart repository (/chartrepo/{project}) with authentication on,
// driven by the real helm binary: charts uploaded with ChartMuseum's POST and pushed with
// `helm push oci://` are listed in index.yaml, found by `helm search repo`, pulled byte for byte
// and rendered by `helm template`.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { after, before, describe, it } from 'node:test'
import { parse as parseYaml } from 'yaml'
import { ADMIN, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { tgzOf } from '../helpers/charts.js'
import type { TestServer } from '../helpers/server.js'
import { helmForSuite, helmWorkspace, type HelmWorkspace } from '../helpers/e2e-helm.js'

const { helmBinary, skip } = await helmForSuite('helm chart repository e2e')

const MAX_UPLOAD = 256 * 1024

interface IndexEntry {
  name: string
  version: string
  appVersion?: string
  apiVersion?: string
  description?: string
  digest: string
  created: string
  urls: string[]
}

/** A multipart/form-data body with the given file fields. */
function multipart(fields: Record<string, { file: string; bytes: Buffer }>): { body: Buffer; type: string } {
  const boundary = `berth-test-${Math.random().toString(16).slice(2)}`
  const parts: Buffer[] = []
  for (const [name, { file, bytes }] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${file}"\r\nContent-Type: application/octet-stream\r\n\r\n`), bytes, Buffer.from('\r\n'))
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` }
}

describe('the classic Helm chart repository with helm', { skip }, () => {
  let server: TestServer
  let ws: HelmWorkspace
  let work: string
  let dev: string
  let guest: string
  let outsider: string
  const devPassword = 'dev-password-1'
  const helm = (...args: string[]) => ws.helm(...args)
  const repoUrl = (project: string) => `${server.url}/chartrepo/${project}`
  const upload = (project: string, body: Buffer, type: string, authorization?: string, query = '') =>
    fetch(`${repoUrl(project)}/charts${query}`, { method: 'POST', body: new Uint8Array(body), headers: { 'content-type': type, ...(authorization ? { authorization } : {}) } })
  const index = async (project: string, authorization = dev) => {
    const res = await fetch(`${repoUrl(project)}/index.yaml`, { headers: { authorization } })
    const text = await res.text()
    assert.equal(res.status, 200, text)
    return parseYaml(text) as { apiVersion: string; entries: Record<string, IndexEntry[]> }
  }

  before(async () => {
    ws = await helmWorkspace(helmBinary, 'berth-e2e-helm-repo-', ['oci-pulled', 'repo-pulled', 'open-pulled'])
    work = ws.dir
    server = await startAuthServer({ charts: { maxUploadSize: MAX_UPLOAD } })
    dev = await addUser(server, 'dev')
    guest = await addUser(server, 'guest')
    outsider = await addUser(server, 'outsider')
    await apiOk(server, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    await apiOk(server, 'POST', '/projects', ADMIN, { name: 'open', public: true }, 201)
    await apiOk(server, 'POST', '/projects/team/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    await apiOk(server, 'POST', '/projects/team/members', ADMIN, { username: 'guest', role: 'guest' }, 201)
    await apiOk(server, 'POST', '/projects/open/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    await helm('create', 'demo')
    await helm('create', 'other')
    await helm('package', 'demo', '--destination', 'pkg')
    await helm('package', 'other', '--version', '1.2.3', '--app-version', '9.9', '--destination', 'pkg')
  })

  after(async () => {
    await server?.close()
    await ws?.close()
  })

  it('POST of a packaged chart (multipart, field chart) stores it as the OCI artifact helm push writes', async () => {
    const chart = await readFile(join(work, 'pkg', 'demo-0.1.0.tgz'))
    const form = multipart({ chart: { file: 'demo-0.1.0.tgz', bytes: chart } })
    const res = await upload('team', form.body, form.type, dev)
    assert.equal(res.status, 201, await res.clone().text())
    const saved = (await res.json()) as { name: string; version: string }
    assert.deepEqual([saved.name, saved.version], ['demo', '0.1.0'])

    const got = await fetch(`${server.url}/v2/team/demo/manifests/0.1.0`, { headers: { authorization: dev, accept: 'application/vnd.oci.image.manifest.v1+json' } })
    assert.equal(got.status, 200)
    const manifest = JSON.parse(await got.text()) as { config: { mediaType: string }; layers: { mediaType: string; size: number }[]; annotations: Record<string, string> }
    assert.equal(manifest.config.mediaType, 'application/vnd.cncf.helm.config.v1+json')
    assert.deepEqual(manifest.layers.map((l) => [l.mediaType, l.size]), [['application/vnd.cncf.helm.chart.content.v1.tar+gzip', chart.length]])
    assert.equal(manifest.annotations['org.opencontainers.image.title'], 'demo')
    assert.equal(manifest.annotations['org.opencontainers.image.version'], '0.1.0')
    // ... so helm pulls it over OCI too, byte for byte.
    await helm('registry', 'login', server.host, '--username', 'dev', '--password', devPassword, '--plain-http')
    await helm('pull', `oci://${server.host}/team/demo`, '--version', '0.1.0', '--plain-http', '--destination', join(work, 'oci-pulled'))
    assert.deepEqual(await readFile(join(work, 'oci-pulled', 'demo-0.1.0.tgz')), chart)
  })

  it('index.yaml lists POSTed charts and charts pushed with helm push oci://', async () => {
    await helm('push', join(work, 'pkg', 'other-1.2.3.tgz'), `oci://${server.host}/team`, '--plain-http')
    const doc = await index('team')
    assert.equal(doc.apiVersion, 'v1')
    assert.deepEqual(Object.keys(doc.entries).sort(), ['demo', 'other'])
    const other = doc.entries.other?.[0]
    const bytes = await readFile(join(work, 'pkg', 'other-1.2.3.tgz'))
    assert.equal(other?.version, '1.2.3')
    assert.equal(other?.appVersion, '9.9')
    assert.equal(other?.apiVersion, 'v2')
    assert.deepEqual(other?.urls, ['charts/other-1.2.3.tgz'])
    assert.equal(other?.digest, createHash('sha256').update(bytes).digest('hex'))
    assert.ok(!Number.isNaN(Date.parse(other?.created ?? '')), `created: ${other?.created}`)
  })

  it('helm repo add with credentials, search repo, pull and template from the index', async () => {
    await ws.repoAdd('team', repoUrl('team'), { username: 'dev', password: devPassword })
    const { stdout: found } = await helm('search', 'repo', 'team/', '--versions')
    assert.match(found, /team\/demo\s+0\.1\.0\s+1\.16\.0/)
    assert.match(found, /team\/other\s+1\.2\.3\s+9\.9/)

    await helm('pull', 'team/other', '--version', '1.2.3', '--destination', join(work, 'repo-pulled'))
    assert.deepEqual(await readFile(join(work, 'repo-pulled', 'other-1.2.3.tgz')), await readFile(join(work, 'pkg', 'other-1.2.3.tgz')))
    await helm('pull', 'team/demo', '--destination', join(work, 'repo-pulled'))
    assert.deepEqual(await readFile(join(work, 'repo-pulled', 'demo-0.1.0.tgz')), await readFile(join(work, 'pkg', 'demo-0.1.0.tgz')))

    const { stdout: rendered } = await helm('template', 'web', 'team/demo', '--set', 'replicaCount=3')
    assert.match(rendered, /kind: Deployment/)
    assert.match(rendered, /replicas: 3/)
    assert.match(rendered, /name: web-demo/)
  })

  it('a new version appears in the index at once, a deleted one disappears', async () => {
    await helm('package', 'demo', '--version', '0.2.0', '--destination', 'pkg')
    const bytes = await readFile(join(work, 'pkg', 'demo-0.2.0.tgz'))
    // A raw .tgz body, as ChartMuseum also takes it.
    const res = await upload('team', bytes, 'application/gzip', dev)
    assert.equal(res.status, 201, await res.text())
    assert.deepEqual((await index('team')).entries.demo?.map((e) => e.version), ['0.2.0', '0.1.0'])

    await helm('repo', 'update')
    const { stdout } = await helm('search', 'repo', 'team/demo')
    assert.match(stdout, /team\/demo\s+0\.2\.0/)

    // Deleting takes the delete right (a developer has none; an administrator has).
    const refused = await fetch(`${repoUrl('team')}/charts/demo/0.2.0`, { method: 'DELETE', headers: { authorization: dev } })
    assert.equal(refused.status, 403, await refused.text())
    const del = await fetch(`${repoUrl('team')}/charts/demo/0.2.0`, { method: 'DELETE', headers: { authorization: ADMIN } })
    assert.equal(del.status, 200, await del.text())
    assert.deepEqual((await index('team')).entries.demo?.map((e) => e.version), ['0.1.0'])
    const gone = await fetch(`${repoUrl('team')}/charts/demo-0.2.0.tgz`, { headers: { authorization: dev } })
    assert.equal(gone.status, 404)
  })

  it('ChartMuseum list API: every chart, one chart, one version', async () => {
    const all = (await (await fetch(`${repoUrl('team')}/api/charts`, { headers: { authorization: guest } })).json()) as Record<string, IndexEntry[]>
    assert.deepEqual(Object.keys(all).sort(), ['demo', 'other'])
    const one = await fetch(`${repoUrl('team')}/api/charts/other/1.2.3`, { headers: { authorization: guest } })
    assert.equal(one.status, 200)
    assert.equal(((await one.json()) as IndexEntry).appVersion, '9.9')
    assert.equal((await fetch(`${repoUrl('team')}/api/charts/nope`, { headers: { authorization: guest } })).status, 404)
  })

  it('a private project refuses anonymous callers and outsiders; a public one is readable anonymously', async () => {
    const anonymous = await fetch(`${repoUrl('team')}/index.yaml`)
    assert.equal(anonymous.status, 401)
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic /)
    assert.match(((await anonymous.json()) as { error: string }).error, /not public/)
    assert.equal((await fetch(`${repoUrl('team')}/charts/demo-0.1.0.tgz`)).status, 401)
    assert.equal((await fetch(`${repoUrl('team')}/index.yaml`, { headers: { authorization: outsider } })).status, 404)
    const wrong = await fetch(`${repoUrl('team')}/index.yaml`, { headers: { authorization: `Basic ${Buffer.from('dev:wrong').toString('base64')}` } })
    assert.equal(wrong.status, 401)
    await assert.rejects(ws.repoAdd('anon', repoUrl('team')), /401|Unauthorized/i)

    const chart = await readFile(join(work, 'pkg', 'other-1.2.3.tgz'))
    assert.equal((await upload('open', chart, 'application/gzip', dev)).status, 201)
    await ws.repoAdd('open', repoUrl('open'))
    const { stdout } = await helm('search', 'repo', 'open/')
    assert.match(stdout, /open\/other\s+1\.2\.3/)
    await helm('pull', 'open/other', '--destination', join(work, 'open-pulled'))
    assert.deepEqual(await readFile(join(work, 'open-pulled', 'other-1.2.3.tgz')), chart)
  })

  it('uploads need push rights', async () => {
    const chart = await readFile(join(work, 'pkg', 'demo-0.1.0.tgz'))
    const anon = await upload('team', chart, 'application/gzip')
    assert.equal(anon.status, 401)
    const byGuest = await upload('team', chart, 'application/gzip', guest)
    assert.equal(byGuest.status, 403, await byGuest.clone().text())
    assert.match(((await byGuest.json()) as { error: string }).error, /push/)
    assert.equal((await upload('open', chart, 'application/gzip', outsider)).status, 403)
    // Refused before the body is read: a caller without push rights cannot make the server take in
    // an upload (the answer comes while the body is still being sent, and the connection closes).
    const { request } = await import('node:http')
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${repoUrl('team')}/charts`, { method: 'POST', headers: { authorization: guest, 'content-type': 'application/gzip', 'content-length': String(MAX_UPLOAD) } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.on('error', reject)
      req.setTimeout(15_000, () => {
        req.destroy()
        reject(new Error('no answer while the body was pending: the server waited for the upload'))
      })
      req.write(chart.subarray(0, 100)) // and never the rest
    })
    assert.equal(status, 403)
  })

  it('bad uploads: not gzip, no Chart.yaml, bad version, too large, an existing version', async () => {
    const expectError = async (res: Response, status: number, pattern: RegExp) => {
      const text = await res.text()
      assert.equal(res.status, status, text)
      assert.match((JSON.parse(text) as { error: string }).error, pattern)
    }
    await expectError(await upload('team', Buffer.from('this is not a chart'), 'application/gzip', dev), 400, /not a gzip archive/)
    await expectError(await upload('team', gzipSync(Buffer.from('gzip, but no tar inside'.repeat(40))), 'application/gzip', dev), 400, /not a valid tar archive|no Chart\.yaml/)
    await expectError(await upload('team', await tgzOf({ 'demo/values.yaml': 'a: 1\n' }), 'application/gzip', dev), 400, /no Chart\.yaml/)
    await expectError(await upload('team', await tgzOf({ 'demo/Chart.yaml': 'apiVersion: v2\nname: demo\nversion: one\n' }), 'application/gzip', dev), 400, /not a SemVer/)
    await expectError(await upload('team', await tgzOf({ 'demo/Chart.yaml': 'apiVersion: v2\nversion: 1.0.0\n' }), 'application/gzip', dev), 400, /no name/)
    await expectError(await upload('team', await tgzOf({ 'Bad_Name/Chart.yaml': 'apiVersion: v2\nname: Bad_Name\nversion: 1.0.0\n' }), 'application/gzip', dev), 400, /cannot name a repository/)
    const form = multipart({ prov: { file: 'x.prov', bytes: Buffer.from('x') } })
    await expectError(await upload('team', form.body, form.type, dev), 400, /no "chart" field/)
    await expectError(await upload('team', Buffer.alloc(MAX_UPLOAD + 128 * 1024, 1), 'application/gzip', dev), 413, /maxUploadSize/)
    const chart = await readFile(join(work, 'pkg', 'demo-0.1.0.tgz'))
    await expectError(await upload('team', chart, 'application/gzip', dev), 409, /already exists/)
    // ?force replaces it; helm cm-push's path ({repository URL}/api/charts, multipart) takes uploads too.
    const form2 = multipart({ chart: { file: 'demo-0.1.0.tgz', bytes: chart } })
    const forced = await fetch(`${repoUrl('team')}/api/charts?force=true`, { method: 'POST', body: new Uint8Array(form2.body), headers: { 'content-type': form2.type, authorization: dev } })
    assert.equal(forced.status, 201, await forced.text())
    // Nothing bad was stored: the index still holds exactly the good charts.
    assert.deepEqual(Object.keys((await index('team')).entries).sort(), ['demo', 'other'])
  })

  it('the index of a project without charts is empty, and a missing chart file is 404', async () => {
    await apiOk(server, 'POST', '/projects', ADMIN, { name: 'empty', public: true }, 201)
    const doc = await index('empty', ADMIN)
    assert.deepEqual(doc.entries, {})
    const missing = await fetch(`${repoUrl('team')}/charts/demo-9.9.9.tgz`, { headers: { authorization: dev } })
    assert.equal(missing.status, 404)
    assert.match(((await missing.json()) as { error: string }).error, /demo-9\.9\.9\.tgz/)
  })
})
