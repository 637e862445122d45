// End-to-end: crane (go-containerregistry, built from Debian's source package) against Berth:
// push from OCI layouts, copy, tag, list, validate, pull and delete, anonymously and through
// token auth.

import assert from 'node:assert/strict'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { ADMIN, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { ensureCrane } from '../helpers/e2e-crane.js'
import { startDistribution } from '../helpers/e2e-daemons.js'
import { layoutBlob, layoutRef, multiArchLayout, OciLayout, sampleFiles, sha256Digest, type Image, type Index } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { getBlob, getManifest, listTags } from '../helpers/e2e-registry.js'

const craneBinary = await ensureCrane().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
const skip = requireClients('crane e2e', [craneBinary instanceof Error ? `crane is not available: ${craneBinary.message.split('\n')[0]}` : undefined])

/** crane with its own docker config (credentials) under `home`. */
function craneIn(home: string, cwd: string) {
  const env = { ...process.env, HOME: home, DOCKER_CONFIG: join(home, '.docker') }
  return (...args: string[]) => run(typeof craneBinary === 'string' ? craneBinary : 'crane', args, { env, cwd, timeoutMs: 60_000 })
}

/** A layout whose index.json names one thing only, as `crane push DIR` wants it. */
async function singleImageLayout(dir: string): Promise<Image> {
  const layout = await new OciLayout(dir).init()
  const image = await layout.addImage({ layers: [sampleFiles('crane-1'), sampleFiles('crane-2'), sampleFiles('crane-3', 1)], runConfig: { Cmd: ['/bin/sh'] } })
  await layout.tag('img', image.descriptor)
  return image
}

describe('crane against Berth', { skip }, () => {
  let server: TestServer
  let work: string
  let image: Image
  let index: Index
  let crane: ReturnType<typeof craneIn>

  before(async () => {
    work = await makeTempDir('berth-e2e-crane-')
    await mkdir(join(work, 'home'), { recursive: true })
    crane = craneIn(join(work, 'home'), work)
    image = await singleImageLayout(join(work, 'img'))
    ;({ index } = await multiArchLayout(join(work, 'multi'), 'multi', { indexOnly: true }))
    server = await startServer()
  })

  after(async () => {
    await server?.close()
    await removeTempDir(work)
  })

  it('crane push of OCI layouts stores the image and the multi-arch index byte for byte', async () => {
    // --image-refs: crane writes the reference it published, by digest.
    await crane('push', '--image-refs', join(work, 'refs-1'), join(work, 'img'), `${server.host}/team/app:1`)
    assert.equal((await readFile(join(work, 'refs-1'), 'utf8')).trim(), `${server.host}/team/app@${image.descriptor.digest}`)
    await crane('push', '--image-refs', join(work, 'refs-multi'), join(work, 'multi'), `${server.host}/team/app:multi`)
    assert.equal((await readFile(join(work, 'refs-multi'), 'utf8')).trim(), `${server.host}/team/app@${index.descriptor.digest}`)

    const one = await getManifest(server.url, 'team/app', '1')
    assert.equal(one.status, 200)
    assert.deepEqual(one.body, image.manifest)
    const multi = await getManifest(server.url, 'team/app', 'multi')
    assert.equal(multi.digest, index.descriptor.digest)
    assert.deepEqual(multi.body, index.index)
    for (const child of index.manifests) {
      assert.deepEqual((await getManifest(server.url, 'team/app', child.descriptor.digest)).body, child.manifest)
      for (const layer of child.layers) assert.equal(sha256Digest(await getBlob(server.url, 'team/app', layer.descriptor.digest)), layer.descriptor.digest)
    }
  })

  it('crane digest, manifest, config, blob, ls and catalog read back what was pushed', async () => {
    assert.equal((await crane('digest', `${server.host}/team/app:1`)).stdout.trim(), image.descriptor.digest)
    assert.equal((await crane('digest', `${server.host}/team/app:multi`)).stdout.trim(), index.descriptor.digest)
    assert.equal((await crane('manifest', `${server.host}/team/app:1`)).stdout, image.manifest.toString())
    assert.equal((await crane('config', `${server.host}/team/app:1`)).stdout, (await layoutBlob(join(work, 'img'), image.config.digest)).toString())
    // The config blob is JSON, so it survives the text capture of stdout.
    const blob = await crane('blob', `${server.host}/team/app@${image.config.digest}`)
    assert.equal(sha256Digest(blob.stdout), image.config.digest)
    assert.deepEqual((await crane('ls', `${server.host}/team/app`)).stdout.trim().split('\n').sort(), ['1', 'multi'])
    assert.ok((await crane('catalog', server.host)).stdout.trim().split('\n').includes('team/app'))
  })

  it('crane copy to another repository keeps the digest, and crane tag adds a tag', async () => {
    await crane('copy', `${server.host}/team/app:multi`, `${server.host}/other/app:copied`)
    const copied = await getManifest(server.url, 'other/app', 'copied')
    assert.equal(copied.digest, index.descriptor.digest)
    for (const child of index.manifests) assert.equal((await getManifest(server.url, 'other/app', child.descriptor.digest)).status, 200)
    await crane('tag', `${server.host}/other/app:copied`, 'v2')
    assert.deepEqual((await listTags(server.url, 'other/app')).sort(), ['copied', 'v2'])
    assert.equal((await getManifest(server.url, 'other/app', 'v2')).digest, index.descriptor.digest)
  })

  it('crane copy from Berth to Docker Distribution and back keeps every digest', { skip: findBinary('docker-registry') ? false : 'docker-registry is not installed' }, async () => {
    const peer = await startDistribution(join(work, 'distribution'), { binary: findBinary('docker-registry') })
    try {
      await crane('copy', `${server.host}/team/app:multi`, `${peer.host}/peer/app:multi`)
      const there = await getManifest(peer.url, 'peer/app', 'multi')
      assert.equal(there.digest, index.descriptor.digest)
      await crane('copy', `${peer.host}/peer/app:multi`, `${server.host}/back/app:multi`)
      assert.deepEqual((await getManifest(server.url, 'back/app', 'multi')).body, index.index)
      for (const child of index.manifests) assert.deepEqual((await getManifest(server.url, 'back/app', child.descriptor.digest)).body, child.manifest)
    } finally {
      await peer.stop()
    }
  })

  it('crane validate --remote downloads and checks every blob of an image and of each image of an index', async () => {
    const single = await crane('validate', '--remote', `${server.host}/team/app:1`)
    assert.match(single.stdout, /PASS/)
    const multi = await crane('validate', '--remote', `${server.host}/other/app:copied`)
    assert.match(multi.stdout, /PASS/)
    assert.doesNotMatch(`${single.stdout}${multi.stdout}`, /FAIL/)
  })

  it('crane pull --format oci writes a layout with identical manifests and blobs', async () => {
    const out = join(work, 'pulled')
    await crane('pull', '--format', 'oci', `${server.host}/team/app:1`, out)
    const json = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }
    assert.deepEqual(
      json.manifests.map((m) => m.digest),
      [image.descriptor.digest],
    )
    assert.deepEqual(await layoutBlob(out, image.descriptor.digest), image.manifest)
    for (const layer of image.layers) assert.equal(sha256Digest(await layoutBlob(out, layer.descriptor.digest)), layer.descriptor.digest)
    // The source layout still resolves the same digest: nothing was rewritten on the way.
    assert.equal((await layoutRef(join(work, 'img'), 'img')).digest, image.descriptor.digest)
  })

  it('crane delete by digest removes the manifest and the tags that named it; other repositories keep theirs', async () => {
    await crane('delete', `${server.host}/other/app@${index.descriptor.digest}`)
    assert.equal((await getManifest(server.url, 'other/app', index.descriptor.digest)).status, 404)
    assert.equal((await getManifest(server.url, 'other/app', 'v2')).status, 404)
    assert.deepEqual(await listTags(server.url, 'other/app'), [])
    assert.equal((await getManifest(server.url, 'team/app', 'multi')).digest, index.descriptor.digest)
  })

  it('crane reports the registry errors of a missing tag and a missing repository', async () => {
    await assert.rejects(crane('manifest', `${server.host}/team/app:missing`), /MANIFEST_UNKNOWN/)
    await assert.rejects(crane('ls', `${server.host}/nobody/here`), /NAME_UNKNOWN/)
  })
})

describe('crane through token auth', { skip }, () => {
  let s: TestServer
  let work: string
  let image: Image

  before(async () => {
    work = await makeTempDir('berth-e2e-crane-auth-')
    image = await singleImageLayout(join(work, 'img'))
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    for (const [user, role] of [['dev', 'developer'], ['visitor', 'guest']] as const) {
      await addUser(s, user)
      await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: user, role }, 201)
    }
  })

  after(async () => {
    await s?.close()
    await removeTempDir(work)
  })

  /** crane signed in as `user` (its own docker config), or anonymous. */
  async function as(user?: string): Promise<ReturnType<typeof craneIn>> {
    const home = join(work, `home-${user ?? 'anonymous'}`)
    await mkdir(home, { recursive: true })
    const crane = craneIn(home, work)
    if (user) await crane('auth', 'login', s.host, '-u', user, '-p', `${user}-password-1`)
    return crane
  }

  it('crane auth login, then push and read as a developer', async () => {
    const dev = await as('dev')
    await dev('push', join(work, 'img'), `${s.host}/team/app:1`)
    assert.equal((await dev('digest', `${s.host}/team/app:1`)).stdout.trim(), image.descriptor.digest)
    assert.deepEqual((await dev('ls', `${s.host}/team/app`)).stdout.trim().split('\n'), ['1'])
  })

  it('a guest reads but cannot push or delete; anonymous clients and a wrong password get nothing', async () => {
    const visitor = await as('visitor')
    assert.equal((await visitor('digest', `${s.host}/team/app:1`)).stdout.trim(), image.descriptor.digest)
    await assert.rejects(visitor('push', join(work, 'img'), `${s.host}/team/app:guest`), /DENIED|UNAUTHORIZED/)
    await assert.rejects(visitor('delete', `${s.host}/team/app@${image.descriptor.digest}`), /DENIED|UNAUTHORIZED/)
    const anonymous = await as()
    await assert.rejects(anonymous('ls', `${s.host}/team/app`), /UNAUTHORIZED|DENIED/)
    const stranger = await as('nobody')
    await assert.rejects(stranger('ls', `${s.host}/team/app`), /UNAUTHORIZED/)
    // What was refused changed nothing.
    const dev = await as('dev')
    assert.deepEqual((await dev('ls', `${s.host}/team/app`)).stdout.trim().split('\n'), ['1'])
  })
})
