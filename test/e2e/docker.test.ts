// End-to-end: the Docker engine (Debian's docker.io: dockerd on a containerd the test starts, both
// under a temp dir) pulls from, runs from, builds on and pushes to Berth. 127.0.0.0/8 is an
// insecure registry by default, so no daemon configuration is needed for plain HTTP.

import assert from 'node:assert/strict'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { DOCKER_CANDIDATES, dockerPrintedDigest, dockerSkip, startContainerd, startDockerd, type Containerd, type Dockerd } from '../helpers/e2e-daemons.js'
import { addBusyboxImage, MT, OciLayout, sha256Digest, type Image } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, removeTempDir } from '../helpers/e2e-process.js'
import { getBlob, getManifest, pushFromLayout } from '../helpers/e2e-registry.js'

const BUSYBOX = '/bin/busybox'
const skip = dockerSkip('docker e2e', BUSYBOX)

describe('docker against Berth', { skip }, () => {
  let server: TestServer
  let containerd: Containerd
  let dockerd: Dockerd
  let work: string
  let busybox: Image
  let builtDigest: string
  const docker = (...args: string[]): Promise<{ stdout: string; stderr: string }> => dockerd.docker(...args)

  before(async () => {
    work = await makeTempDir('berth-e2e-docker-')
    const layout = await new OciLayout(join(work, 'src')).init()
    busybox = await addBusyboxImage(layout, await readFile(BUSYBOX))
    server = await startServer()
    containerd = await startContainerd(join(work, 'containerd'), { containerd: findBinary('containerd'), ctr: findBinary('ctr') })
    dockerd = await startDockerd(join(work, 'docker'), containerd.address, { dockerd: findBinary('dockerd'), docker: findBinary('docker', DOCKER_CANDIDATES) })
    await pushFromLayout(server.url, 'docker/busybox', join(work, 'src'), busybox.descriptor, '1')
  })

  after(async () => {
    await dockerd?.stop()
    await containerd?.stop()
    await server?.close()
    await removeTempDir(work)
  })

  it('docker pull of an OCI image', async () => {
    const { stdout } = await docker('pull', `${server.host}/docker/busybox:1`)
    assert.equal(dockerPrintedDigest(stdout), busybox.descriptor.digest)
    const { stdout: repoDigests } = await docker('image', 'inspect', '--format', '{{json .RepoDigests}}', `${server.host}/docker/busybox:1`)
    assert.deepEqual(JSON.parse(repoDigests), [`${server.host}/docker/busybox@${busybox.descriptor.digest}`])
  })

  it('docker run --rm --network none runs it', async () => {
    const { stdout } = await docker('run', '--rm', '--network', 'none', `${server.host}/docker/busybox:1`, 'echo', 'hello')
    assert.equal(stdout, 'hello\n')
    const { stdout: byDefault } = await docker('run', '--rm', '--network', 'none', `${server.host}/docker/busybox:1`)
    assert.equal(byDefault, 'hello from berth\n')
  })

  it('docker push of a tag in another repository mounts the blobs from the first', async () => {
    const target = `${server.host}/docker/copy:1`
    await docker('tag', `${server.host}/docker/busybox:1`, target)
    const { stdout } = await docker('push', target)
    const digest = dockerPrintedDigest(stdout)
    assert.match(stdout, /Mounted from docker\/busybox/, stdout)
    const got = await getManifest(server.url, 'docker/copy', '1')
    assert.equal(got.status, 200)
    assert.equal(got.digest, digest)
    // docker pushes its own Docker v2 schema 2 manifest for what it pulled as OCI.
    assert.equal(got.mediaType, MT.dockerManifest)
  })

  it('docker build on the image, push, remove, pull and run the result', async () => {
    const context = join(work, 'build')
    await mkdir(context, { recursive: true })
    await writeFile(
      join(context, 'Dockerfile'),
      [`FROM ${server.host}/docker/busybox:1`, 'RUN echo built in docker > /etc/built.txt', 'COPY note.txt /etc/note.txt', 'CMD ["cat", "/etc/built.txt", "/etc/note.txt"]', ''].join('\n'),
    )
    await writeFile(join(context, 'note.txt'), 'a note\n')
    const built = `${server.host}/docker/built:1`
    await dockerd.docker('build', '--network', 'none', '-t', built, context)
    const { stdout } = await docker('push', built)
    builtDigest = dockerPrintedDigest(stdout)

    const got = await getManifest(server.url, 'docker/built', '1')
    assert.equal(got.digest, builtDigest)
    const manifest = JSON.parse(got.body.toString()) as { layers: { digest: string }[]; config: { digest: string } }
    assert.equal(manifest.layers.length, 3, 'busybox layer + RUN layer + COPY layer')
    for (const blob of [manifest.config, ...manifest.layers]) {
      assert.equal(sha256Digest(await getBlob(server.url, 'docker/built', blob.digest)), blob.digest)
    }

    await docker('rmi', built, `${server.host}/docker/busybox:1`, `${server.host}/docker/copy:1`)
    const { stdout: images } = await docker('images', '-q')
    assert.equal(images.trim(), '', 'no images left locally')
    const pulled = await docker('pull', built)
    assert.equal(dockerPrintedDigest(pulled.stdout), builtDigest)
    const { stdout: out } = await docker('run', '--rm', '--network', 'none', built)
    assert.equal(out, 'built in docker\na note\n')
  })
})
