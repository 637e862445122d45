// End-to-end: Berth as dockerd's `registry-mirrors` for Docker Hub. dockerd sends Docker Hub pulls
// to the mirror without a project prefix and without `?ns=` (`/v2/library/busybox/…`); Berth's
// default proxy project answers what no local project holds from its upstream (a second Berth with
// token auth, challenging every request as Docker Hub does), while `library/myapp`, pushed into
// Berth, stays local even though the upstream has an image of that name too.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN, startAuthServer } from '../helpers/auth.js'
import { DOCKER_CANDIDATES, dockerPrintedDigest, dockerSkip, startContainerd, startDockerd, type Containerd, type Dockerd } from '../helpers/e2e-daemons.js'
import { OciLayout, type Image, type Index } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, removeTempDir } from '../helpers/e2e-process.js'
import { pushFromLayout } from '../helpers/e2e-registry.js'
import type { TestServer } from '../helpers/server.js'
import { addEndpoint, addProxyProject, berthUpstream, BUSYBOX, seedBusybox, seedMultiPlatform, type Upstream } from '../helpers/upstream.js'

const skip = dockerSkip('proxy docker e2e', BUSYBOX)

describe('dockerd with Berth as its registry mirror', { skip }, () => {
  let berth: TestServer
  let upstream: Upstream
  let containerd: Containerd
  let dockerd: Dockerd
  let work: string
  let busybox: Image
  let multi: { index: Index; amd64: Image }
  let localApp: Image
  let upstreamApp: Index
  const docker = (...args: string[]): Promise<{ stdout: string; stderr: string }> => dockerd.docker(...args)

  before(async () => {
    work = await makeTempDir('berth-e2e-mirror-')
    upstream = await berthUpstream()
    busybox = await seedBusybox(upstream, join(work, 'busybox'), 'library/busybox', '1')
    multi = await seedMultiPlatform(upstream, join(work, 'multi'), 'library/multi', '2')
    upstreamApp = await seedMultiPlatform(upstream, join(work, 'upstream-app'), 'library/myapp', '1', 'upstream-app').then((m) => m.index)

    berth = await startAuthServer()
    // The upstream challenges every request: Berth logs in at its token service.
    await addEndpoint(berth, 'dockerhub', upstream)
    await addProxyProject(berth, 'hub', { registry: 'dockerhub', ttl: '5m', namespaces: ['docker.io'], default: true })
    // A different library/myapp, pushed into Berth's own `library` project.
    const local = await new OciLayout(join(work, 'local')).init()
    localApp = await local.addImage({ layers: [[{ path: 'local.txt', data: 'local\n' }]], runConfig: { Cmd: ['/bin/true'] } })
    await pushFromLayout(berth.url, 'library/myapp', join(work, 'local'), localApp.descriptor, '1', { authorization: ADMIN })

    containerd = await startContainerd(join(work, 'containerd'), { containerd: findBinary('containerd'), ctr: findBinary('ctr') })
    dockerd = await startDockerd(
      join(work, 'docker'),
      containerd.address,
      { dockerd: findBinary('dockerd'), docker: findBinary('docker', DOCKER_CANDIDATES) },
      { 'registry-mirrors': [berth.url] },
    )
  })

  after(async () => {
    await dockerd?.stop()
    await containerd?.stop()
    await berth?.close()
    await upstream?.stop()
    await removeTempDir(work)
  })

  it('docker pull busybox:1 comes from the upstream through the mirror, and runs', async () => {
    const { stdout } = await docker('pull', 'busybox:1')
    assert.equal(dockerPrintedDigest(stdout), busybox.descriptor.digest)
    const { stdout: out } = await docker('run', '--rm', '--network', 'none', 'busybox:1')
    assert.equal(out, 'hello from berth\n')
    // Berth has cached it in the proxy project, under Docker Hub's name.
    const cached = await fetch(`${berth.url}/v2/hub/library/busybox/manifests/${busybox.descriptor.digest}`, { method: 'HEAD', headers: { authorization: ADMIN } })
    assert.equal(cached.status, 200)
  })

  it('docker pull of a multi-platform image takes the index and the amd64 image', async () => {
    const { stdout } = await docker('pull', 'multi:2')
    assert.equal(dockerPrintedDigest(stdout), multi.index.descriptor.digest)
    const { stdout: id } = await docker('image', 'inspect', '--format', '{{.Id}}', 'multi:2')
    assert.equal(id.trim(), multi.amd64.config.digest)
  })

  it('library/myapp pushed into Berth stays local: the upstream’s image of that name is not pulled', async () => {
    const { stdout } = await docker('pull', 'myapp:1')
    assert.equal(dockerPrintedDigest(stdout), localApp.descriptor.digest)
    assert.notEqual(localApp.descriptor.digest, upstreamApp.descriptor.digest)
    // Asking the proxy project would make it fetch: look at what Berth stores instead.
    const catalog = (await (await fetch(`${berth.url}/v2/_catalog`, { headers: { authorization: ADMIN } })).json()) as { repositories: string[] }
    assert.ok(catalog.repositories.includes('hub/library/busybox'), JSON.stringify(catalog))
    assert.ok(!catalog.repositories.includes('hub/library/myapp'), `the proxy project fetched nothing for library/myapp: ${JSON.stringify(catalog)}`)
  })
})
