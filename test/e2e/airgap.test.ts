// End-to-end: Berth's OCI layout export/import against skopeo's (containers/image) oci: transport.

import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { layoutRef } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, needBinary, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { containersEnv } from '../helpers/e2e-registry.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth, digestOf, pushMultiArch, type Pushed } from '../transfer/helpers.js'

const skip = requireClients('airgap e2e', [needBinary('skopeo')])

describe('berth export/import and skopeo oci: layouts give the same digests', { skip }, () => {
  let a: TestServer
  let b: TestServer
  let work: string
  let env: NodeJS.ProcessEnv
  let pushed: Pushed
  const skopeo = (...args: string[]) => run(findBinary('skopeo') ?? 'skopeo', args, { env, cwd: work })
  const blobs = async (dir: string) => (await readdir(join(dir, 'blobs', 'sha256'))).sort()

  before(async () => {
    work = await makeTempDir('berth-e2e-airgap-')
    env = await containersEnv(join(work, 'containers'))
    a = await startServer()
    b = await startServer()
    pushed = await pushMultiArch(a.url, 'team/app', 'multi', join(work, 'src'))
  })

  after(async () => {
    await a?.close()
    await b?.close()
    await removeTempDir(work)
  })

  it('out of Berth: berth export and skopeo copy docker://… oci:DIR write the same manifests and blobs', async () => {
    const mine = join(work, 'berth-out')
    const theirs = join(work, 'skopeo-out')
    const r = await berth(['export', '--url', a.url, 'team/app:multi', '--to', mine])
    assert.equal(r.code, 0, r.stderr)
    await skopeo('copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${a.host}/team/app:multi`, `oci:${theirs}:multi`)
    assert.equal((await layoutRef(mine, 'multi')).digest, pushed.index.descriptor.digest)
    assert.equal((await layoutRef(theirs, 'multi')).digest, pushed.index.descriptor.digest)
    assert.deepEqual(await blobs(mine), await blobs(theirs))
  })

  it('into Berth: berth import of skopeo’s layout and skopeo copy oci:DIR docker://… of Berth’s layout store the same digests', async () => {
    const mine = join(work, 'berth-out')
    const theirs = join(work, 'skopeo-out')
    // skopeo's layout names no repository: --into PROJECT/REPO says where.
    const r = await berth(['import', theirs, '--into', 'via/berth', '--url', b.url])
    assert.equal(r.code, 0, r.stderr)
    await skopeo('copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${mine}:multi`, `docker://${b.host}/via/skopeo:multi`)
    for (const repo of ['via/berth', 'via/skopeo']) {
      assert.equal(await digestOf(b.url, repo, 'multi'), pushed.index.descriptor.digest, repo)
      for (const image of [pushed.amd64, pushed.arm64]) assert.equal(await digestOf(b.url, repo, image.descriptor.digest), image.descriptor.digest)
    }
  })
})
