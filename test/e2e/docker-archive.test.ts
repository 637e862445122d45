// End-to-end: one image as a docker-archive through the API (GET …/artifacts/{digest}/export?format=docker,
// POST …/repositories/{r}/import) against a real Docker engine (Debian's docker.io: dockerd on a
// containerd the test starts, both under a temp dir): `docker load` of what Berth writes, and
// Berth's import of what `docker save` writes, pulled back by docker.

import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { DOCKER_CANDIDATES, dockerPrintedDigest, dockerSkip, startContainerd, startDockerd, type Containerd, type Dockerd } from '../helpers/e2e-daemons.js'
import { addBusyboxImage, OciLayout, type Image } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, removeTempDir } from '../helpers/e2e-process.js'
import { getBlob, getManifest, pushFromLayout } from '../helpers/e2e-registry.js'

const BUSYBOX = '/bin/busybox'
const skip = dockerSkip('docker-archive e2e', BUSYBOX)

interface Inspected {
  Id: string
  RepoTags: string[]
  RootFS: { Layers: string[] }
}

describe('docker load and docker save against the image-tar API', { skip }, () => {
  let server: TestServer
  let containerd: Containerd
  let dockerd: Dockerd
  let work: string
  let busybox: Image
  const docker = (...args: string[]): Promise<{ stdout: string; stderr: string }> => dockerd.docker(...args)
  const inspect = async (ref: string): Promise<Inspected> => {
    const { stdout } = await docker('image', 'inspect', '--format', '{{json .}}', ref)
    return JSON.parse(stdout) as Inspected
  }

  before(async () => {
    work = await makeTempDir('berth-e2e-docker-archive-')
    const layout = await new OciLayout(join(work, 'src')).init()
    busybox = await addBusyboxImage(layout, await readFile(BUSYBOX))
    server = await startServer()
    containerd = await startContainerd(join(work, 'containerd'), { containerd: findBinary('containerd'), ctr: findBinary('ctr') })
    dockerd = await startDockerd(join(work, 'docker'), containerd.address, { dockerd: findBinary('dockerd'), docker: findBinary('docker', DOCKER_CANDIDATES) })
    await pushFromLayout(server.url, 'load/busybox', join(work, 'src'), busybox.descriptor, '1')
    await pushFromLayout(server.url, 'load/busybox', join(work, 'src'), busybox.descriptor, 'stable')
  })

  after(async () => {
    await dockerd?.stop()
    await containerd?.stop()
    await server?.close()
    await removeTempDir(work)
  })

  it('docker load -i of a downloaded docker-archive: every tag, the config digest as Id, the diff_ids, and it runs', async () => {
    const res = await fetch(`${server.url}/api/v1/projects/load/repositories/busybox/artifacts/${busybox.descriptor.digest}/export?format=docker`)
    assert.equal(res.status, 200, await res.clone().text())
    assert.equal(res.headers.get('docker-content-digest'), busybox.descriptor.digest)
    const file = join(work, 'busybox.docker.tar')
    await writeFile(file, Buffer.from(await res.arrayBuffer()))

    const { stdout } = await docker('load', '-i', file)
    const loaded = stdout
      .split('\n')
      .filter((l) => l.startsWith('Loaded image: '))
      .map((l) => l.slice('Loaded image: '.length))
      .sort()
    assert.deepEqual(loaded, [`${server.host}/load/busybox:1`, `${server.host}/load/busybox:stable`], stdout)

    const image = await inspect(`${server.host}/load/busybox:1`)
    assert.equal(image.Id, busybox.config.digest, 'docker names the image by the config digest Berth stores')
    assert.deepEqual([...image.RepoTags].sort(), [`${server.host}/load/busybox:1`, `${server.host}/load/busybox:stable`])
    const config = JSON.parse((await getBlob(server.url, 'load/busybox', busybox.config.digest)).toString()) as { rootfs: { diff_ids: string[] } }
    assert.deepEqual(image.RootFS.Layers, config.rootfs.diff_ids)
    assert.deepEqual(image.RootFS.Layers, busybox.layers.map((l) => l.diffId))

    const run = await docker('run', '--rm', '--network', 'none', `${server.host}/load/busybox:1`)
    assert.equal(run.stdout, 'hello from berth\n')
    const cat = await docker('run', '--rm', '--network', 'none', `${server.host}/load/busybox:stable`, 'cat', '/etc/berth-e2e.txt')
    assert.equal(cat.stdout, 'built by the berth e2e tests\n')
  })

  it('docker save of a built image, imported through the API, is pulled back by docker with the same config digest and runs', async () => {
    // An image only the daemon has: built on the loaded busybox, never pushed.
    const context = join(work, 'build')
    await mkdir(context, { recursive: true })
    await writeFile(join(context, 'Dockerfile'), [`FROM ${server.host}/load/busybox:1`, 'RUN echo saved by docker > /etc/saved.txt', 'CMD ["cat", "/etc/saved.txt"]', ''].join('\n'))
    const built = `${server.host}/load/built:b1`
    await docker('build', '--network', 'none', '-t', built, context)
    const local = await inspect(built)
    assert.equal(local.RootFS.Layers.length, 2)

    const file = join(work, 'built.docker.tar')
    await docker('save', '-o', file, built)
    const body = await readFile(file)

    // With a tag: stored under it. Without: under the tag of its RepoTags (b1), in another repository.
    for (const [repository, query, tag] of [
      ['saved', '?tag=s1', 's1'],
      ['built', '', 'b1'],
    ] as const) {
      const res = await fetch(`${server.url}/api/v1/projects/load/repositories/${repository}/import${query}`, { method: 'POST', body, headers: { 'content-type': 'application/x-tar' } })
      const text = await res.text()
      assert.equal(res.status, 201, text)
      const result = JSON.parse(text) as { images: { repository: string; ref: string; digest: string }[] }
      assert.equal(result.images.length, 1, text)
      assert.equal(result.images[0]?.ref, tag, text)
      const got = await getManifest(server.url, `load/${repository}`, tag)
      assert.equal(got.status, 200)
      assert.equal(got.digest, result.images[0]?.digest)
      const manifest = JSON.parse(got.body.toString()) as { config: { digest: string }; layers: unknown[] }
      assert.equal(manifest.config.digest, local.Id, 'the stored image has the config docker saved')
      assert.equal(manifest.layers.length, 2)
    }

    // Gone from the daemon, then pulled back from Berth: the same image, and it runs.
    await docker('rmi', built)
    const saved = `${server.host}/load/saved:s1`
    const pulled = await docker('pull', saved)
    assert.equal(dockerPrintedDigest(pulled.stdout), (await getManifest(server.url, 'load/saved', 's1')).digest)
    const back = await inspect(saved)
    assert.equal(back.Id, local.Id)
    assert.deepEqual(back.RootFS.Layers, local.RootFS.Layers)
    const run = await docker('run', '--rm', '--network', 'none', saved)
    assert.equal(run.stdout, 'saved by docker\n')
  })
})
