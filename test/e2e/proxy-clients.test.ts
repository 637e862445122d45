// End-to-end: skopeo and crane pull through a proxy-cache project (`hub/…`) of a Docker
// Distribution upstream with htpasswd Basic auth: digests and bytes are the upstream's, the second
// pull is served from the cache and pushes into the proxy project are refused. Faults: a tag moved
// upstream is picked up after the TTL; a blob the upstream serves corrupted is never stored; when
// the upstream stops, a cached tag still pulls while an uncached one fails with a clear error.

import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN, ADMIN_PASSWORD, startAuthServer } from '../helpers/auth.js'
import { ensureCrane } from '../helpers/e2e-crane.js'
import type { AccessLogEntry } from '../helpers/e2e-daemons.js'
import { layoutBlob, layoutRef, MT, sha256Digest, type Image, type Index } from '../helpers/e2e-layout.js'
import { findBinary, isStaticElf, makeTempDir, needBinary, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { containersEnv } from '../helpers/e2e-registry.js'
import type { TestServer } from '../helpers/server.js'
import { blobPath } from '../../src/storage/paths.js'
import { addEndpoint, addProxyProject, BUSYBOX, distributionUpstream, seedBusybox, seedMultiPlatform } from '../helpers/upstream.js'

const craneBinary = await ensureCrane().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
const skip = requireClients('proxy clients e2e', [
  needBinary('skopeo'),
  needBinary('docker-registry'),
  craneBinary instanceof Error ? `crane is not available: ${craneBinary.message.split('\n')[0]}` : undefined,
  isStaticElf(BUSYBOX) ? undefined : `${BUSYBOX} is not a static binary (Debian package busybox-static)`,
])

/** Revalidation interval of the proxy project: short, so the fault test sees a stale tag. */
const TTL_MS = 2000

/** Requests for blobs and manifests of `repo` (the /v2/ probes and token calls left out). */
function contentRequests(entries: AccessLogEntry[], repo: string): AccessLogEntry[] {
  return entries.filter((e) => e.target.startsWith(`/v2/${repo}/blobs/`) || e.target.startsWith(`/v2/${repo}/manifests/`))
}

describe('skopeo and crane through a proxy project', { skip }, () => {
  let berth: TestServer
  let upstream: Awaited<ReturnType<typeof distributionUpstream>>
  let work: string
  let env: NodeJS.ProcessEnv
  let busybox: Image
  let multi: { index: Index; amd64: Image; arm64: Image }
  const skopeo = (...args: string[]): Promise<{ stdout: string; stderr: string }> => run(findBinary('skopeo') ?? 'skopeo', args, { env, cwd: work })
  const crane = (...args: string[]): Promise<{ stdout: string; stderr: string }> =>
    run(typeof craneBinary === 'string' ? craneBinary : 'crane', args, { env: { ...env, DOCKER_CONFIG: join(work, 'docker-cfg') }, cwd: work, timeoutMs: 60_000 })

  before(async () => {
    work = await makeTempDir('berth-e2e-proxy-')
    env = await containersEnv(join(work, 'containers'))
    // The upstream wants Basic credentials: the endpoint carries them.
    upstream = await distributionUpstream(join(work, 'upstream'), { htpasswd: { username: 'puller', password: 'puller-password-1' } })
    busybox = await seedBusybox(upstream, join(work, 'busybox'), 'library/busybox', '1')
    multi = await seedMultiPlatform(upstream, join(work, 'multi'), 'tools/multi', '2')
    await seedBusybox(upstream, join(work, 'busybox'), 'library/busybox', 'uncached')
    berth = await startAuthServer()
    await addEndpoint(berth, 'distribution', upstream)
    await addProxyProject(berth, 'hub', { registry: 'distribution', ttl: `${TTL_MS / 1000}s` })
  })

  after(async () => {
    await upstream?.stop()
    await berth?.close()
    await removeTempDir(work)
  })

  it('skopeo inspect and copy of hub/library/busybox give the upstream digest and bytes', async () => {
    const { stdout: raw } = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${berth.host}/hub/library/busybox:1`)
    assert.equal(sha256Digest(raw), busybox.descriptor.digest)
    const out = join(work, 'skopeo-out')
    await skopeo('copy', '--src-tls-verify=false', `docker://${berth.host}/hub/library/busybox:1`, `oci:${out}:1`)
    assert.equal((await layoutRef(out, '1')).digest, busybox.descriptor.digest)
    for (const blob of [busybox.config, ...busybox.layers.map((l) => l.descriptor)]) {
      assert.deepEqual(await layoutBlob(out, blob.digest), await layoutBlob(join(work, 'busybox'), blob.digest), `blob ${blob.digest}`)
    }
  })

  it('skopeo copy --all of a multi-platform index keeps every digest', async () => {
    const out = join(work, 'skopeo-multi')
    await skopeo('copy', '--all', '--src-tls-verify=false', `docker://${berth.host}/hub/tools/multi:2`, `oci:${out}:2`)
    assert.equal((await layoutRef(out, '2')).digest, multi.index.descriptor.digest)
    for (const image of [multi.amd64, multi.arm64]) {
      assert.equal(sha256Digest(await layoutBlob(out, image.descriptor.digest)), image.descriptor.digest)
      for (const layer of image.layers) assert.equal(sha256Digest(await layoutBlob(out, layer.descriptor.digest)), layer.descriptor.digest)
    }
  })

  it('crane digest, manifest and pull through the proxy match the upstream', async () => {
    const ref = `${berth.host}/hub/tools/multi:2`
    assert.equal((await crane('digest', ref)).stdout.trim(), multi.index.descriptor.digest)
    assert.equal(sha256Digest((await crane('manifest', ref)).stdout), multi.index.descriptor.digest)
    assert.equal((await crane('digest', '--platform', 'linux/arm64', ref)).stdout.trim(), multi.arm64.descriptor.digest)
    const out = join(work, 'crane-out')
    await crane('pull', '--format', 'oci', '--platform', 'linux/arm64', ref, out)
    const pulled = JSON.parse((await layoutBlob(out, multi.arm64.descriptor.digest)).toString()) as { layers: { digest: string }[] }
    for (const layer of pulled.layers) assert.equal(sha256Digest(await layoutBlob(out, layer.digest)), layer.digest)
    assert.equal((await crane('digest', `${berth.host}/hub/library/busybox:1`)).stdout.trim(), busybox.descriptor.digest)
  })

  it('pulling again is served from the cache: the upstream sees no more blob GETs', async () => {
    const before = contentRequests(await upstream.requests(), 'library/busybox')
    const blobGets = before.filter((e) => e.method === 'GET' && e.target.includes('/blobs/'))
    assert.ok(blobGets.length > 0, 'the first pulls did reach the upstream')
    for (const blob of [busybox.config, ...busybox.layers.map((l) => l.descriptor)]) {
      assert.equal(blobGets.filter((e) => e.target.endsWith(blob.digest) && e.status === 200).length, 1, `one upstream GET of ${blob.digest}`)
    }
    await skopeo('copy', '--src-tls-verify=false', `docker://${berth.host}/hub/library/busybox@${busybox.descriptor.digest}`, `oci:${join(work, 'again')}:1`)
    await crane('pull', `${berth.host}/hub/library/busybox@${busybox.descriptor.digest}`, join(work, 'again.tar'))
    const afterwards = contentRequests(await upstream.requests(), 'library/busybox')
    assert.deepEqual(afterwards.slice(before.length), [], 'pulls by digest of a cached image never reach the upstream')
  })

  it('pushes into the proxy project are refused, even by an administrator', async () => {
    const flags = ['--src-tls-verify=false', '--dest-tls-verify=false', '--dest-creds', `admin:${ADMIN_PASSWORD}`]
    const failed = await skopeo('copy', ...flags, `docker://${berth.host}/hub/library/busybox:1`, `docker://${berth.host}/hub/library/pushed:1`).then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    assert.ok(failed, 'skopeo copy into hub/ failed')
    assert.match(failed.message, /denied/i, failed.message)
    const res = await fetch(`${berth.url}/v2/hub/library/pushed/blobs/uploads/`, { method: 'POST', headers: { authorization: ADMIN } })
    assert.equal(res.status, 403, await res.text())
  })

  it('a tag moved upstream is picked up once the TTL has passed', async () => {
    await upstream.push('library/busybox', join(work, 'busybox'), busybox, 'moving')
    const ref = `docker://${berth.host}/hub/library/busybox:moving`
    assert.equal(sha256Digest((await skopeo('inspect', '--raw', '--tls-verify=false', ref)).stdout), busybox.descriptor.digest)
    await upstream.push('library/busybox', join(work, 'multi'), multi.amd64, 'moving')
    await new Promise((r) => setTimeout(r, TTL_MS + 500))
    assert.equal(sha256Digest((await skopeo('inspect', '--raw', '--tls-verify=false', ref)).stdout), multi.amd64.descriptor.digest)
    const out = join(work, 'moved')
    await skopeo('copy', '--src-tls-verify=false', ref, `oci:${out}:moved`)
    assert.equal((await layoutRef(out, 'moved')).digest, multi.amd64.descriptor.digest)
  })

  it('a blob the upstream serves corrupted is not stored, and the client gets an error', async () => {
    const image = await seedMultiPlatform(upstream, join(work, 'corrupt'), 'library/corrupt', '1', 'corrupt').then((m) => m.amd64)
    const layer = image.layers[1]?.descriptor
    assert.ok(layer)
    // Same length, other bytes: only the digest can tell.
    const file = upstream.blobFile(layer.digest)
    const bytes = await readFile(file)
    await writeFile(file, Buffer.alloc(bytes.length, 0x5a))
    for (let attempt = 0; attempt < 2; attempt++) {
      const failed = await skopeo('copy', '--src-tls-verify=false', `docker://${berth.host}/hub/library/corrupt@${image.descriptor.digest}`, `oci:${join(work, `corrupt-${attempt}`)}:1`).then(
        () => undefined,
        (e: unknown) => e as Error,
      )
      assert.ok(failed, `attempt ${attempt}: skopeo copy of an image with a corrupted layer failed`)
      const [, hex = ''] = layer.digest.split(':')
      await assert.rejects(berth.app.storage.stat(blobPath('sha256', hex)), `attempt ${attempt}: the corrupted layer was not stored`)
    }
  })

  it('upstream stopped: a cached tag still pulls after its TTL, an uncached one fails clearly', async () => {
    await upstream.stop()
    await new Promise((r) => setTimeout(r, TTL_MS + 500))
    const { stdout: raw } = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${berth.host}/hub/library/busybox:1`)
    assert.equal(sha256Digest(raw), busybox.descriptor.digest)
    await skopeo('copy', '--src-tls-verify=false', `docker://${berth.host}/hub/library/busybox:1`, `oci:${join(work, 'offline')}:1`)
    assert.equal((await layoutRef(join(work, 'offline'), '1')).digest, busybox.descriptor.digest)
    // The answer says it is the cached tag, not checked upstream.
    const head = await fetch(`${berth.url}/v2/hub/library/busybox/manifests/1`, { method: 'HEAD', headers: { authorization: ADMIN, accept: MT.manifest } })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('berth-proxy-stale'), 'true')

    const uncached = `${berth.host}/hub/library/busybox:uncached`
    const failed = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${uncached}`).then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    assert.ok(failed, 'an uncached tag cannot be pulled while the upstream is down')
    // containers/image shows only the status of a 503; crane shows the registry's message.
    assert.match(failed.message, /503 Service Unavailable/, failed.message)
    const craneFailed = await crane('digest', uncached).then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    assert.ok(craneFailed, 'crane cannot resolve an uncached tag while the upstream is down')
    assert.match(craneFailed.message, /UNAVAILABLE: the upstream registry distribution is not available \(unreachable\) and hub\/library\/busybox:uncached is not cached/, craneFailed.message)
  })
})
