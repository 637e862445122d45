// End-to-end: a project's trust policy against real clients, with token auth. The real cosign
// signs one image (a key pair it generates, legacy `.sig` tag) and another by OCI 1.1 referrers;
// its public key is registered through the API and the project requires cosign. skopeo, crane
// and docker then get DENIED for the unsigned image, naming what is missing and which key would
// accept it; they pull the signed images, and the unsigned image of an exempt repository.

import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { cosignSign, cosignSigner, cosignVerify, type CosignCli } from '../helpers/e2e-cosign.js'
import { ensureCrane } from '../helpers/e2e-crane.js'
import { dockerPrintedDigest, dockerSkip, startLoggedInDocker, type Dockerd } from '../helpers/e2e-daemons.js'
import { OciLayout, sampleFiles } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, needBinary, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { containersEnv, pushFromLayout } from '../helpers/e2e-registry.js'
import type { TestServer } from '../helpers/server.js'
import { signatureStatus, trustCosignKey } from '../trust/helpers.js'

const craneBinary = await ensureCrane().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
const skip = requireClients('trust policy e2e', [needBinary('cosign'), needBinary('skopeo'), craneBinary instanceof Error ? `crane is not available: ${craneBinary.message.split('\n')[0]}` : undefined])
const dockerSkipped = dockerSkip('trust policy e2e (docker)', '/bin/busybox')

const DEV_PASSWORD = 'dev-password-1'

/** What every refusal of the unsigned image says: the policy, what is missing, the key that would accept it. */
function deniedUnsigned(digest: string): RegExp {
  return new RegExp(`project prod's trust policy requires a cosign signature: prod/app@${digest} has none; a signature verified by release \\(cosign, project prod\\) is accepted`)
}

const fails = async (p: Promise<unknown>, ...patterns: RegExp[]) => {
  await assert.rejects(p, (err: Error) => {
    for (const pattern of patterns) assert.match(err.message, pattern)
    return true
  })
}

describe('the trust policy against real clients', { skip }, () => {
  let s: TestServer
  let work: string
  let cosign: CosignCli & { publicKey: string }
  let env: NodeJS.ProcessEnv
  const digests = { signed: '', referrerSigned: '', unsigned: '', exempt: '' }
  const ref = (repo: string, tag: string) => `${s.host}/${repo}:${tag}`
  const skopeo = (...args: string[]) => run(findBinary('skopeo') ?? 'skopeo', args, { env, cwd: work })
  const skopeoCopy = (repo: string, tag: string, dest: string) => skopeo('copy', '--src-tls-verify=false', '--src-creds', `dev:${DEV_PASSWORD}`, `docker://${ref(repo, tag)}`, `oci:${join(work, 'out', dest)}:img`)
  const crane = (...args: string[]) => run(typeof craneBinary === 'string' ? craneBinary : 'crane', args, { env, cwd: work, timeoutMs: 60_000 })

  before(async () => {
    work = await makeTempDir('berth-e2e-trust-')
    await mkdir(join(work, 'out'))
    const containers = await containersEnv(join(work, 'containers'))
    // crane keeps its credentials in DOCKER_CONFIG, next to skopeo's private configuration.
    env = { ...containers, DOCKER_CONFIG: join(containers.HOME ?? work, '.docker') }
    s = await startAuthServer()
    await addUser(s, 'dev')
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'prod', public: false }, 201)
    await apiOk(s, 'POST', '/projects/prod/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    // Images docker can pull (configs list their layers' diff_ids), each with its own layers.
    const layout = await new OciLayout(join(work, 'layout')).init()
    const images = [
      ['signed', 'prod/app', 'signed'],
      ['referrerSigned', 'prod/app', 'signed-oci'],
      ['unsigned', 'prod/app', 'unsigned'],
      ['exempt', 'prod/dev/tool', '1'],
    ] as const
    for (const [name, repo, tag] of images) {
      const image = await layout.addImage({ layers: [sampleFiles(`trust-${name}`)], runConfig: { Cmd: ['/bin/sh'] } })
      await pushFromLayout(s.url, repo, layout.dir, image.descriptor, tag, { authorization: ADMIN })
      digests[name] = image.descriptor.digest
    }
    cosign = await cosignSigner(join(work, 'cosign'), [s], 'dev', DEV_PASSWORD)
    await cosignSign(cosign, ref('prod/app', 'signed'), 'legacy')
    await cosignSign(cosign, ref('prod/app', 'signed-oci'), 'oci-1-1')
    await crane('auth', 'login', s.host, '-u', 'dev', '-p', DEV_PASSWORD)
    // Unsigned images pull before the policy (what follows is the policy's doing).
    await skopeoCopy('prod/app', 'unsigned', 'before')
    await trustCosignKey(s, ADMIN, 'prod', cosign.publicKey, { require: 'cosign', exemptRepositories: 'dev/**' })
  })
  after(async () => {
    await s?.close()
    await removeTempDir(work)
  })

  it('Berth verified what cosign signed, by tag and by referrer', async () => {
    for (const [name, source] of [['signed', 'tag'], ['referrerSigned', 'referrer']] as const) {
      const status = await signatureStatus(s, 'prod', 'app', digests[name], ADMIN)
      assert.deepEqual(status.verified, ['cosign'], name)
      assert.ok(status.signatures.some((sig) => sig.source === source && sig.verified && sig.key === 'release'), `${name}: ${JSON.stringify(status.signatures)}`)
      assert.equal(status.policy.pullAllowed, true)
    }
  })

  it('skopeo: the unsigned image is refused with DENIED naming the missing signature; signed and exempt images are pulled', async () => {
    await fails(skopeoCopy('prod/app', 'unsigned', 'unsigned'), /denied/i, deniedUnsigned(digests.unsigned))
    for (const [repo, tag, name] of [['prod/app', 'signed', 'signed'], ['prod/app', 'signed-oci', 'referrerSigned'], ['prod/dev/tool', '1', 'exempt']] as const) {
      await skopeoCopy(repo, tag, `${name}-out`)
      const { stdout } = await skopeo('inspect', '--tls-verify=false', '--creds', `dev:${DEV_PASSWORD}`, '--format', '{{.Digest}}', `docker://${ref(repo, tag)}`)
      assert.equal(stdout.trim(), digests[name])
    }
  })

  it('crane: the unsigned image is refused with DENIED; signed and exempt images are pulled', async () => {
    await fails(crane('pull', ref('prod/app', 'unsigned'), join(work, 'crane-unsigned.tar')), /DENIED/, deniedUnsigned(digests.unsigned))
    await fails(crane('manifest', `${s.host}/prod/app@${digests.unsigned}`), /DENIED/, deniedUnsigned(digests.unsigned))
    for (const [repo, tag, name] of [['prod/app', 'signed', 'signed'], ['prod/app', 'signed-oci', 'referrerSigned'], ['prod/dev/tool', '1', 'exempt']] as const) {
      await crane('pull', '--format', 'oci', ref(repo, tag), join(work, `crane-${name}`))
      assert.equal((await crane('digest', ref(repo, tag))).stdout.trim(), digests[name])
      const manifest = await crane('manifest', ref(repo, tag))
      assert.match(manifest.stdout, /"layers"/)
    }
  })

  it('cosign verify still reads the signatures under the policy', async () => {
    const payloads = await cosignVerify(cosign, ref('prod/app', 'signed'))
    assert.ok(payloads.some((p) => p.critical.image['docker-manifest-digest'] === digests.signed))
  })

  it('the exemption follows the policy: without it, the exempt repository is refused too', async () => {
    await apiOk(s, 'PUT', '/projects/prod/trust/policy', ADMIN, { require: 'cosign' })
    try {
      await fails(skopeoCopy('prod/dev/tool', '1', 'no-longer-exempt'), /denied/i, /requires a cosign signature: prod\/dev\/tool@sha256:[0-9a-f]{64} has none/)
      await fails(crane('manifest', ref('prod/dev/tool', '1')), /DENIED/)
    } finally {
      await apiOk(s, 'PUT', '/projects/prod/trust/policy', ADMIN, { require: 'cosign', exemptRepositories: 'dev/**' })
    }
    await skopeoCopy('prod/dev/tool', '1', 'exempt-again')
  })

  describe('docker', { skip: dockerSkipped }, () => {
    let docker: Awaited<ReturnType<typeof startLoggedInDocker>> | undefined
    let dockerd: Dockerd

    before(async () => {
      docker = await startLoggedInDocker(work, s.host, 'dev', DEV_PASSWORD)
      dockerd = docker.dockerd
    })
    after(() => docker?.stop())

    it('docker pull: the unsigned image is refused naming the missing signature; signed and exempt images are pulled', async () => {
      await fails(dockerd.docker('pull', ref('prod/app', 'unsigned')), /denied/i, deniedUnsigned(digests.unsigned))
      for (const [repo, tag, name] of [['prod/app', 'signed', 'signed'], ['prod/app', 'signed-oci', 'referrerSigned'], ['prod/dev/tool', '1', 'exempt']] as const) {
        const { stdout } = await dockerd.docker('pull', ref(repo, tag))
        assert.equal(dockerPrintedDigest(stdout), digests[name])
      }
    })
  })
})
