// Layout-backed projects: a project served read-only from an OCI image layout directory on the
// server (written here by `berth export`), pulled over /v2 and by skopeo and crane.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { cp, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN, ADMIN_PASSWORD, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { ensureCrane } from '../helpers/e2e-crane.js'
import { layoutRef } from '../helpers/e2e-layout.js'
import { findBinary, run } from '../helpers/e2e-process.js'
import { containersEnv } from '../helpers/e2e-registry.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth, pushMultiArch, type Pushed } from '../transfer/helpers.js'

const ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json'
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`

describe('layout-backed projects', () => {
  let a: TestServer
  let b: TestServer
  let work: string
  let roots: string
  let usb: string
  let pushed: Pushed
  const v2 = (path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
    fetch(`${b.url}/v2/${path}`, { ...init, headers: { authorization: ADMIN, accept: ACCEPT, ...init.headers } })
  const codeOf = async (res: Response) => ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-layout-'))
    roots = join(work, 'roots')
    usb = join(roots, 'usb')
    await mkdir(roots)
    a = await startServer()
    pushed = await pushMultiArch(a.url, 'team/app', 'multi', join(work, 'src'))
    const exported = await berth(['export', '--url', a.url, 'team/app:multi', '--referrers', '--to', usb])
    assert.equal(exported.code, 0, exported.stderr)
    b = await startAuthServer({ layouts: { allowedRoots: [roots] } })
  })

  after(async () => {
    await a?.close()
    await b?.close()
    await rm(work, { recursive: true, force: true })
  })

  it('is created by a system administrator only, from a layout directory under layouts.allowedRoots (400 naming the field otherwise)', async () => {
    const dev = await addUser(b, 'dev')
    const denied = await api(b, 'POST', '/projects', dev, { name: 'offline', layout: { path: usb } })
    assert.equal(denied.status, 403)
    assert.match(await denied.text(), /system administrators/)

    const outside = join(work, 'outside')
    await cp(usb, outside, { recursive: true })
    await mkdir(join(roots, 'empty'))
    await symlink(outside, join(roots, 'escape'))
    const refused: [unknown, RegExp][] = [
      [{ path: outside }, /layout\.path: .*outside is not below a directory of layouts\.allowedRoots/],
      [{ path: join(roots, 'escape') }, /layout\.path: .*escape is not below a directory of layouts\.allowedRoots/],
      [{ path: 'roots/usb' }, /layout\.path: an absolute path/],
      [{ path: join(roots, 'empty') }, /layout\.path: .*has no index\.json/],
      [{ path: join(roots, 'missing') }, /layout\.path: .*missing is not a directory on the server/],
      [{ path: usb, mode: 'rw' }, /layout\.mode: unknown field/],
      [{ path: usb, repository: 'Bad Name' }, /layout\.repository: a repository name/],
      ['/srv', /layout: an object/],
    ]
    for (const [layout, message] of refused) {
      const res = await api(b, 'POST', '/projects', ADMIN, { name: 'offline', layout })
      assert.equal(res.status, 400, JSON.stringify(layout))
      assert.match(await res.text(), message)
    }
    assert.equal((await api(b, 'GET', '/projects/offline', ADMIN)).status, 404, 'a refused create leaves no project behind')

    const created = await apiOk<{ layout: unknown }>(b, 'POST', '/projects', ADMIN, { name: 'offline', layout: { path: usb } }, 201)
    assert.deepEqual(created.layout, { path: usb, repository: 'usb' })
    const patch = await api(b, 'PATCH', '/projects/offline', ADMIN, { layout: { path: outside } })
    assert.equal(patch.status, 400)
    assert.match(await patch.text(), /layout: set when the project is created/)
  })

  it('is refused by a server whose layouts.allowedRoots is empty', async () => {
    const c = await startAuthServer()
    try {
      const res = await api(c, 'POST', '/projects', ADMIN, { name: 'offline', layout: { path: usb } })
      assert.equal(res.status, 400)
      assert.match(await res.text(), /layout\.path: no directory may back a project on this server: list the allowed directories in layouts\.allowedRoots/)
    } finally {
      await c.close()
    }
  })

  it('serves manifests by tag and digest, blobs and ranges, tags, the catalog and referrers from the layout, byte for byte', async () => {
    const index = await v2('offline/app/manifests/multi')
    assert.equal(index.status, 200)
    const bytes = Buffer.from(await index.arrayBuffer())
    assert.equal(index.headers.get('docker-content-digest'), pushed.index.descriptor.digest)
    assert.equal(sha256(bytes), pushed.index.descriptor.digest)
    assert.equal(index.headers.get('content-type'), pushed.index.descriptor.mediaType)
    const head = await v2('offline/app/manifests/multi', { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(Number(head.headers.get('content-length')), bytes.length)

    // A child of the index is not in index.json: found by its digest.
    const child = await v2(`offline/app/manifests/${pushed.arm64.descriptor.digest}`)
    assert.equal(child.status, 200)
    assert.equal(sha256(Buffer.from(await child.arrayBuffer())), pushed.arm64.descriptor.digest)

    const layer = pushed.amd64.layers[0]?.descriptor
    assert.ok(layer)
    const blob = await v2(`offline/app/blobs/${layer.digest}`)
    assert.equal(blob.status, 200)
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), layer.digest)
    const ranged = await v2(`offline/app/blobs/${layer.digest}`, { headers: { range: 'bytes=0-9' } })
    assert.equal(ranged.status, 206)
    assert.equal(ranged.headers.get('content-range'), `bytes 0-9/${layer.size}`)
    assert.equal((await ranged.arrayBuffer()).byteLength, 10)
    const blobHead = await v2(`offline/app/blobs/${layer.digest}`, { method: 'HEAD' })
    assert.equal(blobHead.status, 200)
    assert.equal(Number(blobHead.headers.get('content-length')), layer.size)

    assert.equal((await codeOf(await v2('offline/app/manifests/nope')))?.code, 'MANIFEST_UNKNOWN')
    assert.equal((await codeOf(await v2(`offline/app/blobs/${sha256('absent')}`)))?.code, 'BLOB_UNKNOWN')
    assert.equal((await codeOf(await v2('offline/other/tags/list')))?.code, 'NAME_UNKNOWN')

    assert.deepEqual(await (await v2('offline/app/tags/list')).json(), { name: 'offline/app', tags: ['multi'] })
    const catalog = (await (await v2('_catalog')).json()) as { repositories: string[] }
    assert.ok(catalog.repositories.includes('offline/app'), JSON.stringify(catalog))

    const referrers = (await (await v2(`offline/app/referrers/${pushed.index.descriptor.digest}`)).json()) as { manifests: { digest: string; artifactType?: string }[] }
    assert.deepEqual(
      referrers.manifests.map((m) => [m.digest, m.artifactType]),
      [[pushed.referrer, 'application/vnd.example.signature']],
    )
    const filtered = await v2(`offline/app/referrers/${pushed.index.descriptor.digest}?artifactType=application/vnd.other`)
    assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType')
    assert.deepEqual(((await filtered.json()) as { manifests: unknown[] }).manifests, [])
  })

  it('refuses pushes with DENIED and deletes with UNSUPPORTED, saying the project is served from a layout', async () => {
    const upload = await v2('offline/app/blobs/uploads/', { method: 'POST' })
    assert.equal(upload.status, 403)
    const uploadError = await codeOf(upload)
    assert.equal(uploadError?.code, 'DENIED')
    assert.match(uploadError?.message ?? '', /project offline is served read-only from an OCI image layout: pushes are refused/)
    const put = await v2('offline/app/manifests/copy', { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: '{}' })
    assert.equal(put.status, 403)
    assert.equal((await codeOf(put))?.code, 'DENIED')
    for (const path of [`offline/app/manifests/${pushed.index.descriptor.digest}`, `offline/app/blobs/${pushed.amd64.config.digest}`]) {
      const res = await v2(path, { method: 'DELETE' })
      assert.equal(res.status, 405, path)
      const error = await codeOf(res)
      assert.equal(error?.code, 'UNSUPPORTED')
      assert.match(error?.message ?? '', /deletes are refused/)
    }
    assert.equal((await v2('offline/app/manifests/multi', { method: 'HEAD' })).status, 200, 'still served')
  })

  it('serves a new export dropped into the directory (index.json changed) without a restart', async () => {
    const second = await pushMultiArch(a.url, 'team/app', 'second', join(work, 'src2'), 'second')
    assert.deepEqual(((await (await v2('offline/app/tags/list')).json()) as { tags: string[] }).tags, ['multi'])
    const exported = await berth(['export', '--url', a.url, 'team/app:second', '--to', usb])
    assert.equal(exported.code, 0, exported.stderr)
    const res = await v2('offline/app/manifests/second')
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('docker-content-digest'), second.index.descriptor.digest)
    assert.deepEqual(((await (await v2('offline/app/tags/list')).json()) as { tags: string[] }).tags, ['multi', 'second'])
  })

  it('serves no blob file that links outside the layout directory', async () => {
    const secret = join(work, 'secret.txt')
    await writeFile(secret, 'not for pullers')
    const digest = sha256('not for pullers')
    await symlink(secret, join(usb, 'blobs', 'sha256', digest.slice('sha256:'.length)))
    const res = await v2(`offline/app/blobs/${digest}`)
    assert.equal(res.status, 404)
    assert.equal((await codeOf(res))?.code, 'BLOB_UNKNOWN')
  })

  it('answers UNAVAILABLE while the layout cannot be read, and serves it again once it is back', async () => {
    await rename(usb, `${usb}.away`)
    try {
      const res = await v2('offline/app/manifests/multi')
      assert.equal(res.status, 503)
      const error = await codeOf(res)
      assert.equal(error?.code, 'UNAVAILABLE')
      assert.doesNotMatch(error?.message ?? '', /usb/, 'the path on the server is not told to pullers')
      const catalog = await v2('_catalog')
      assert.equal(catalog.status, 200)
      assert.ok(!((await catalog.json()) as { repositories: string[] }).repositories.includes('offline/app'))
    } finally {
      await rename(`${usb}.away`, usb)
    }
    assert.equal((await v2('offline/app/manifests/multi')).status, 200)
  })

  it('skopeo copies an image out of a layout project with the digests of the export', { skip: findBinary('skopeo') ? false : 'skopeo is not installed' }, async () => {
    const env = await containersEnv(join(work, 'containers'))
    const skopeo = (...args: string[]) => run(findBinary('skopeo') ?? 'skopeo', args, { env, cwd: work })
    const out = join(work, 'skopeo-out')
    await skopeo('copy', '--all', '--preserve-digests', '--src-tls-verify=false', '--src-creds', `admin:${ADMIN_PASSWORD}`, `docker://${b.host}/offline/app:multi`, `oci:${out}:multi`)
    assert.equal((await layoutRef(out, 'multi')).digest, pushed.index.descriptor.digest)
    for (const image of [pushed.amd64, pushed.arm64]) {
      for (const l of image.layers) assert.equal(sha256(await readFile(join(out, 'blobs', 'sha256', l.descriptor.digest.slice(7)))), l.descriptor.digest)
    }
    const { stdout } = await skopeo('list-tags', '--tls-verify=false', '--creds', `admin:${ADMIN_PASSWORD}`, `docker://${b.host}/offline/app`)
    assert.deepEqual((JSON.parse(stdout) as { Tags: string[] }).Tags.sort(), ['multi', 'second'])
  })

  it('crane reads a layout project (digest, tags, manifest, blob) and its push is refused', async (t) => {
    const crane = await ensureCrane().catch(() => undefined)
    if (!crane) return t.skip('crane is not available')
    const home = join(work, 'crane-home')
    await mkdir(home, { recursive: true })
    const env = { ...process.env, HOME: home, DOCKER_CONFIG: join(home, '.docker') }
    const c = (...args: string[]) => run(crane, args, { env, cwd: work, timeoutMs: 60_000 })
    await c('auth', 'login', b.host, '-u', 'admin', '-p', ADMIN_PASSWORD)
    assert.equal((await c('digest', `${b.host}/offline/app:multi`)).stdout.trim(), pushed.index.descriptor.digest)
    assert.deepEqual((await c('ls', `${b.host}/offline/app`)).stdout.trim().split('\n').sort(), ['multi', 'second'])
    assert.equal(sha256((await c('manifest', `${b.host}/offline/app@${pushed.amd64.descriptor.digest}`)).stdout.trim()), pushed.amd64.descriptor.digest)
    const config = await c('blob', `${b.host}/offline/app@${pushed.amd64.config.digest}`)
    assert.equal(sha256(config.stdout), pushed.amd64.config.digest)
    await assert.rejects(c('tag', `${b.host}/offline/app:multi`, 'copy'), /DENIED|pushes are refused/)
  })
})
