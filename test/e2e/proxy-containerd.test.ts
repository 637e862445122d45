// End-to-end: one Berth mirrors two upstream registries at once for containerd. `ctr images pull
// --hosts-dir` with a hosts.toml per upstream host sends every pull to Berth with `?ns=<host>`
// (containerd's mirror convention); Berth serves each from the proxy project bound to that host.
// Both upstreams hold `shared/app:1` with different content, so the right one must be chosen. The
// second mirror prefetches every platform of an index, which then pulls with its upstream stopped.

import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startAuthServer } from '../helpers/auth.js'
import { ctrContentDigests, ctrImages, startContainerd, type Containerd } from '../helpers/e2e-daemons.js'
import type { Image, Index } from '../helpers/e2e-layout.js'
import { findBinary, isStaticElf, makeTempDir, needBinary, needRoot, removeTempDir, requireClients } from '../helpers/e2e-process.js'
import type { TestServer } from '../helpers/server.js'
import { eventually } from '../helpers/eventually.js'
import { blobPath } from '../../src/storage/paths.js'
import { addEndpoint, addProxyProject, BUSYBOX, distributionUpstream, seedBusybox, seedMultiPlatform, type Upstream } from '../helpers/upstream.js'

const skip = requireClients('proxy containerd e2e', [
  needBinary('containerd'),
  needBinary('ctr'),
  needBinary('docker-registry'),
  needRoot('containerd'),
  isStaticElf(BUSYBOX) ? undefined : `${BUSYBOX} is not a static binary (Debian package busybox-static)`,
])
const NS = 'berth-e2e-mirror'

describe('containerd mirrors two upstream hosts through one Berth (?ns=)', { skip }, () => {
  let berth: TestServer
  let first: Upstream
  let second: Upstream
  let containerd: Containerd
  let work: string
  let hostsDir: string
  let firstApp: Image
  let secondApp: { index: Index; amd64: Image; arm64: Image }
  let tool: { index: Index; amd64: Image; arm64: Image }

  before(async () => {
    work = await makeTempDir('berth-e2e-ns-')
    first = await distributionUpstream(join(work, 'first'))
    second = await distributionUpstream(join(work, 'second'))
    firstApp = await seedBusybox(first, join(work, 'first-src'), 'shared/app', '1')
    secondApp = await seedMultiPlatform(second, join(work, 'second-src'), 'shared/app', '1', 'second-app')
    tool = await seedMultiPlatform(second, join(work, 'tool-src'), 'org/tool', '2', 'tool')

    berth = await startAuthServer()
    await addEndpoint(berth, 'first', first)
    await addEndpoint(berth, 'second', second)
    // The namespace is the registry host containerd is asked for: host:port here.
    await addProxyProject(berth, 'first-mirror', { registry: 'first', ttl: '5m', namespaces: [first.host] })
    // The second mirror fetches every platform of an index as soon as one is pulled.
    await addProxyProject(berth, 'second-mirror', { registry: 'second', ttl: '5m', namespaces: [second.host], prefetchPlatforms: true })

    // One hosts.toml per upstream host: Berth is its only mirror; `server` stays the upstream, so
    // a mirror failure would fall back to it, which the access logs below would show.
    hostsDir = join(work, 'hosts')
    for (const upstream of [first, second]) {
      await mkdir(join(hostsDir, upstream.host), { recursive: true })
      await writeFile(
        join(hostsDir, upstream.host, 'hosts.toml'),
        [`server = "${upstream.url}"`, '', `[host."${berth.url}"]`, '  capabilities = ["pull", "resolve"]', ''].join('\n'),
      )
    }
    containerd = await startContainerd(join(work, 'containerd'), { containerd: findBinary('containerd'), ctr: findBinary('ctr') })
  })

  after(async () => {
    await containerd?.stop()
    await berth?.close()
    await first?.stop()
    await second?.stop()
    await removeTempDir(work)
  })

  it('the same name on two hosts is pulled from each through its own proxy project', async () => {
    await containerd.ctr(NS, 'images', 'pull', '--hosts-dir', hostsDir, `${first.host}/shared/app:1`)
    await containerd.ctr(NS, 'images', 'pull', '--hosts-dir', hostsDir, '--platform', 'linux/amd64', `${second.host}/shared/app:1`)
    const images = await ctrImages(containerd, NS)
    assert.equal(images.get(`${first.host}/shared/app:1`), firstApp.descriptor.digest)
    assert.equal(images.get(`${second.host}/shared/app:1`), secondApp.index.descriptor.digest)
    const content = await ctrContentDigests(containerd, NS)
    for (const d of [firstApp.config.digest, ...firstApp.layers.map((l) => l.descriptor.digest)]) assert.ok(content.has(d), `has ${d} of the first host`)
    for (const d of [secondApp.amd64.config.digest, ...secondApp.amd64.layers.map((l) => l.descriptor.digest)]) assert.ok(content.has(d), `has ${d} of the second host`)
  })

  it('one platform of an index is fetched, the other platform’s layers are not', async () => {
    await containerd.ctr(NS, 'images', 'pull', '--hosts-dir', hostsDir, '--platform', 'linux/arm64', `${second.host}/org/tool:2`)
    assert.equal((await ctrImages(containerd, NS)).get(`${second.host}/org/tool:2`), tool.index.descriptor.digest)
    const content = await ctrContentDigests(containerd, NS)
    for (const layer of tool.arm64.layers) assert.ok(content.has(layer.descriptor.digest), `has arm64 layer ${layer.descriptor.digest}`)
    const amd64Only = tool.amd64.layers.filter((l) => !tool.arm64.layers.some((a) => a.descriptor.digest === l.descriptor.digest))
    for (const layer of amd64Only) assert.ok(!content.has(layer.descriptor.digest), `has not fetched amd64 layer ${layer.descriptor.digest}`)
  })

  it('containerd never reached the upstreams itself: only Berth did', async () => {
    for (const upstream of [first, second]) {
      const requests = (await upstream.requests()).filter((e) => e.target.startsWith('/v2/') && e.target !== '/v2/')
      assert.ok(requests.length > 0, `Berth fetched from ${upstream.host}`)
      const direct = requests.filter((e) => /containerd/i.test(e.userAgent))
      assert.deepEqual(direct, [], `requests from containerd itself to ${upstream.host}`)
    }
    // Each upstream served its own image only: the second host's blobs were never asked of the first.
    const firstBlobs = (await first.requests()).filter((e) => e.target.includes('/blobs/')).map((e) => e.target)
    for (const layer of secondApp.amd64.layers) assert.ok(!firstBlobs.some((u) => u.endsWith(layer.descriptor.digest)), `first host was asked for ${layer.descriptor.digest}`)
  })

  it('prefetchPlatforms: the platform no client pulled is served after its upstream has stopped', async () => {
    // The arm64 pull above made Berth fetch the amd64 image in the background.
    const amd64Blobs = [tool.amd64.config, ...tool.amd64.layers.map((l) => l.descriptor)]
    const stored = async (digest: string): Promise<boolean> => berth.app.storage.stat(blobPath('sha256', digest.slice('sha256:'.length))).then(
      () => true,
      () => false,
    )
    await eventually(async () => (await Promise.all(amd64Blobs.map((b) => stored(b.digest)))).every(Boolean), 'the amd64 image prefetched', 30_000)
    await second.stop()
    const ref = `${second.host}/org/tool:2`
    await containerd.ctr(NS, 'images', 'rm', ref)
    await containerd.ctr(NS, 'images', 'pull', '--hosts-dir', hostsDir, '--platform', 'linux/amd64', ref)
    assert.equal((await ctrImages(containerd, NS)).get(ref), tool.index.descriptor.digest)
    const content = await ctrContentDigests(containerd, NS)
    for (const blob of amd64Blobs) assert.ok(content.has(blob.digest), `has amd64 blob ${blob.digest}`)
  })
})
