// End-to-end: podman (containers/image + containers/storage) pushes to and pulls from Berth, and
// runs what it pulled. Storage and configuration live in a temp dir (CONTAINERS_STORAGE_CONF,
// CONTAINERS_CONF, CONTAINERS_REGISTRIES_CONF).

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { addBusyboxImage, multiArchLayout, MT, sha256Digest, type Image, type Index } from '../helpers/e2e-layout.js'
import { findBinary, isStaticElf, makeTempDir, needBinary, needRoot, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { containersEnv, getBlob, getManifest } from '../helpers/e2e-registry.js'

const BUSYBOX = '/bin/busybox'
const skip = requireClients('podman e2e', [
  needBinary('podman'),
  needBinary('runc'),
  needRoot('podman with overlay storage and runc'),
  isStaticElf(BUSYBOX) ? undefined : `${BUSYBOX} is not a static binary (Debian package busybox-static)`,
])

describe('podman against Berth', { skip }, () => {
  let server: TestServer
  let work: string
  let env: NodeJS.ProcessEnv
  let busybox: Image
  let multi: { amd64: Image; arm64: Image; index: Index }
  let pushedDigest: string
  const podman = (...args: string[]): Promise<{ stdout: string; stderr: string }> => run(findBinary('podman') ?? 'podman', args, { env, cwd: work })

  before(async () => {
    work = await makeTempDir('berth-e2e-podman-')
    env = await containersEnv(join(work, 'containers'))
    const src = await multiArchLayout(join(work, 'src'))
    multi = src
    busybox = await addBusyboxImage(src.layout, await readFile(BUSYBOX))
    await src.layout.tag('busybox', busybox.descriptor)
    server = await startServer()
  })

  after(async () => {
    // Containers are run with --rm; remove images so that storage unmounts what it mounted.
    if (env) await podman('rmi', '--all', '--force').catch(() => undefined)
    await server?.close()
    await removeTempDir(work)
  })

  it('podman push sends a local image to Berth', async () => {
    // `podman pull oci:DIR:REF` names the image after DIR; tag it by the ID it prints.
    const { stdout: id } = await podman('pull', '--quiet', `oci:${join(work, 'src')}:busybox`)
    const name = `${server.host}/podman/busybox:1`
    await podman('tag', id.trim(), name)
    const digestFile = join(work, 'pushed.digest')
    await podman('push', '--tls-verify=false', '--digestfile', digestFile, name)
    pushedDigest = (await readFile(digestFile, 'utf8')).trim()
    assert.match(pushedDigest, /^sha256:[0-9a-f]{64}$/)

    const got = await getManifest(server.url, 'podman/busybox', '1')
    assert.equal(got.status, 200)
    assert.equal(got.digest, pushedDigest, 'Berth serves the manifest podman pushed, byte for byte')
    const manifest = JSON.parse(got.body.toString()) as { config: { digest: string }; layers: { digest: string; size: number }[] }
    for (const blob of [manifest.config, ...manifest.layers]) {
      assert.equal(sha256Digest(await getBlob(server.url, 'podman/busybox', blob.digest)), blob.digest)
    }
  })

  it('podman pull gets the same digest back after the local image is removed', async () => {
    const name = `${server.host}/podman/busybox:1`
    await podman('rmi', '--all', '--force')
    assert.equal((await podman('images', '-q')).stdout.trim(), '')
    await podman('pull', '--tls-verify=false', name)
    const { stdout } = await podman('image', 'inspect', '--format', '{{.Digest}}', name)
    assert.equal(stdout.trim(), pushedDigest)
  })

  it('podman run runs the pulled image', async () => {
    const name = `${server.host}/podman/busybox:1`
    const { stdout } = await podman('run', '--rm', '--network', 'none', '--pull', 'never', name, 'echo', 'hello')
    assert.equal(stdout.trim(), 'hello')
    const { stdout: cmd } = await podman('run', '--rm', '--network', 'none', '--pull', 'never', name)
    assert.equal(cmd.trim(), 'hello from berth')
  })

  it('podman manifest push --all sends a multi-arch index', async () => {
    // A list made of the two platform images of an OCI layout, pushed with all its images.
    const list = `${server.host}/podman/multi:1`
    await podman('manifest', 'create', 'berth-e2e-list')
    for (const image of [multi.amd64, multi.arm64]) {
      const arch = image.descriptor.platform?.architecture ?? ''
      await podman('manifest', 'add', 'berth-e2e-list', `oci:${join(work, 'src')}:multi-${arch}`)
    }
    const digestFile = join(work, 'list.digest')
    await podman('manifest', 'push', '--all', '--tls-verify=false', '--digestfile', digestFile, 'berth-e2e-list', `docker://${list}`)
    const listDigest = (await readFile(digestFile, 'utf8')).trim()

    const got = await getManifest(server.url, 'podman/multi', '1')
    assert.equal(got.status, 200)
    assert.equal(got.digest, listDigest)
    const body = JSON.parse(got.body.toString()) as { mediaType?: string; manifests: { digest: string; platform?: { architecture: string } }[] }
    assert.ok(got.mediaType === MT.index || got.mediaType === MT.dockerList, `list media type ${got.mediaType}`)
    assert.deepEqual(body.manifests.map((m) => m.platform?.architecture).sort(), ['amd64', 'arm64'])
    for (const child of body.manifests) {
      const m = await getManifest(server.url, 'podman/multi', child.digest)
      assert.equal(m.status, 200, `child ${child.digest}`)
      assert.equal(m.digest, child.digest)
    }
  })

  it('podman search --list-tags lists the tags of a repository', async () => {
    const { stdout } = await podman('search', '--list-tags', '--tls-verify=false', '--format', 'json', `${server.host}/podman/busybox`)
    const results = JSON.parse(stdout) as { Name: string; Tags: string[] }[]
    assert.equal(results.length, 1, stdout)
    assert.equal(results[0]?.Name, `${server.host}/podman/busybox`)
    assert.deepEqual(results[0]?.Tags, ['1'])
  })
})
