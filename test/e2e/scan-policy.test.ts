// End-to-end: a project's scan policy refuses pulls of a vulnerable image through skopeo and
// docker, naming the worst finding; an allowlisted image is pulled.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { gunzipSync, gzipSync } from 'node:zlib'
import { ADMIN, ADMIN_PASSWORD, apiOk, startAuthServer } from '../helpers/auth.js'
import { dockerSkip, startLoggedInDocker, type Dockerd } from '../helpers/e2e-daemons.js'
import { findBinary, makeTempDir, needBinary, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { containersEnv } from '../helpers/e2e-registry.js'
import { pushBlobAs, tarOf } from '../helpers/layers.js'
import { asBody, sha256 } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'
import { artifactPath, DEBIAN_OS, dpkgStatus, importOsv, OSV_V1, packageLock, scanned } from '../scan/scan-helpers.js'

const skopeoSkip = requireClients('scan policy e2e (skopeo)', [needBinary('skopeo')])
const dockerSkipped = dockerSkip('scan policy e2e (docker)', '/bin/busybox')

/** A pullable image (its config lists the layers' diff_ids, as docker checks): Debian 12 with vulnerable openssl and lodash. */
async function pushVulnerableImage(s: TestServer, repo: string, tag: string) {
  const tars = [await tarOf([{ name: 'etc/os-release', body: DEBIAN_OS }, { name: 'var/lib/dpkg/status', body: dpkgStatus('3.0.11-1~deb12u2') }]), await tarOf([{ name: 'app/package-lock.json', body: packageLock('4.17.20') }])]
  const layers = tars.map((t) => gzipSync(t))
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/true'] }, rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${createHash('sha256').update(gunzipSync(l)).digest('hex')}`) }, history: [] }))
  const configDigest = await pushBlobAs(s, repo, config, ADMIN)
  const digests: string[] = []
  for (const l of layers) digests.push(await pushBlobAs(s, repo, l, ADMIN))
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layers.map((l, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digests[i], size: l.length })),
    }),
  )
  const res = await fetch(`${s.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: asBody(manifest), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', authorization: ADMIN } })
  assert.equal(res.status, 201, await res.text())
  return sha256(manifest)
}

const fails = async (p: Promise<unknown>, pattern: RegExp) => {
  await assert.rejects(p, (err: Error) => {
    assert.match(err.message, pattern)
    return true
  })
}

const BLOCKED = /DSA-5621-1 \(critical\) in libssl3 3\.0\.11-1~deb12u2/

describe('the scan policy against real clients', { skip: skopeoSkip }, () => {
  let s: TestServer
  let work: string
  let env: NodeJS.ProcessEnv
  let digest: string
  const skopeo = (...args: string[]) => run(findBinary('skopeo') ?? 'skopeo', args, { env, cwd: work })

  before(async () => {
    work = await makeTempDir('berth-e2e-scan-')
    env = await containersEnv(join(work, 'containers'))
    s = await startAuthServer({ scan: { rematchInterval: '0s' } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'prod', public: false }, 201)
    await importOsv(s, OSV_V1)
    digest = await pushVulnerableImage(s, 'prod/api', '1.0')
    await apiOk(s, 'POST', `${artifactPath('prod', 'api', digest)}/scan`, ADMIN, undefined, 202)
    await scanned(s, 'prod', 'api', digest)
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'high' })
  })
  after(async () => {
    await s?.close()
    await removeTempDir(work)
  })

  it('skopeo: a blocked pull is refused naming the worst finding; allowlisted, it is pulled', async () => {
    const copy = (dest: string) => skopeo('copy', '--src-tls-verify=false', '--src-creds', `admin:${ADMIN_PASSWORD}`, `docker://${s.host}/prod/api:1.0`, `oci:${join(work, dest)}:img`)
    await fails(copy('blocked'), BLOCKED)
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'high', allowlist: [{ id: 'CVE-2024-0727' }, { id: 'GHSA-35jh-r3h4-6jhm', expiresAt: '2099-01-01T00:00:00Z' }] })
    await copy('allowed')
    const { stdout } = await skopeo('inspect', '--tls-verify=false', '--creds', `admin:${ADMIN_PASSWORD}`, '--format', '{{.Digest}}', `docker://${s.host}/prod/api:1.0`)
    assert.equal(stdout.trim(), digest)
    await apiOk(s, 'PUT', '/projects/prod/scan-policy', ADMIN, { blockSeverity: 'high' })
  })

  describe('docker', { skip: dockerSkipped }, () => {
    let docker: Awaited<ReturnType<typeof startLoggedInDocker>> | undefined
    let dockerd: Dockerd

    before(async () => {
      docker = await startLoggedInDocker(work, s.host, 'admin', ADMIN_PASSWORD)
      dockerd = docker.dockerd
    })
    after(() => docker?.stop())

    it('docker pull: refused naming the worst finding; allowlisted by the system allowlist, pulled', async () => {
      await fails(dockerd.docker('pull', `${s.host}/prod/api:1.0`), BLOCKED)
      await apiOk(s, 'PUT', '/scan-policy', ADMIN, { allowlist: [{ id: 'DSA-5621-1' }, { id: 'CVE-2021-23337' }] })
      const { stdout } = await dockerd.docker('pull', `${s.host}/prod/api:1.0`)
      assert.match(stdout, new RegExp(digest))
    })
  })
})
