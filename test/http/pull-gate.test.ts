// Pull gates: policies (signatures required, vulnerabilities blocked) refuse manifest GETs on the
// pull fast path and on Fastify's path alike; HEADs and other images go through, and a refused
// pull is not counted as a pull.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RegistryError } from '../../src/errors/registry-error.js'
import { buildImage, expectOciError, putManifest } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

describe('pull gates', () => {
  let s: TestServer
  let blocked: string
  let allowed: string
  const asked: string[] = []

  before(async () => {
    s = await startServer()
    const a = await buildImage(s.url, 'gate/app', 'blocked')
    const b = await buildImage(s.url, 'gate/app', 'allowed')
    assert.equal((await putManifest(s.url, 'gate/app', 'blocked', a.manifest)).status, 201)
    assert.equal((await putManifest(s.url, 'gate/app', 'allowed', b.manifest)).status, 201)
    blocked = a.digest
    allowed = b.digest
    // One gate decides from memory, one waits (as a lookup would): both must be honoured.
    s.app.pullGates.add({
      name: 'memory',
      check: (repository, digest, mediaType) => {
        asked.push(`${repository}@${digest} ${mediaType}`)
        return digest === blocked ? new RegistryError('DENIED', `gate/app@${digest} is not signed`) : undefined
      },
    })
    s.app.pullGates.add({
      name: 'lookup',
      check: async (_repository, digest) => {
        await new Promise((resolve) => setTimeout(resolve, 5))
        return digest === allowed ? undefined : new RegistryError('DENIED', 'refused after a lookup')
      },
    })
  })
  after(() => s?.close())

  it('refuses a GET by tag and by digest, twice (the second from the manifest cache), with DENIED', async () => {
    for (const ref of ['blocked', blocked, 'blocked', blocked]) {
      const res = await fetch(`${s.url}/v2/gate/app/manifests/${ref}`, { headers: { accept: MANIFEST } })
      assert.equal(res.status, 403)
      const body = (await res.json()) as { errors: { code: string; message: string }[] }
      assert.equal(body.errors[0]?.code, 'DENIED')
      assert.match(body.errors[0]?.message ?? '', /is not signed/)
    }
    assert.ok(asked.includes(`gate/app@${blocked} ${MANIFEST}`), 'the gate saw the repository, digest and media type')
  })

  it("refuses on Fastify's path too (a query string takes it)", async () => {
    const res = await fetch(`${s.url}/v2/gate/app/manifests/blocked?x=1`, { headers: { accept: MANIFEST } })
    await expectOciError(res, 'DENIED', 403)
  })

  it('lets the image every gate allows through, and HEADs of any', async () => {
    for (const ref of ['allowed', allowed, 'allowed']) {
      const res = await fetch(`${s.url}/v2/gate/app/manifests/${ref}`, { headers: { accept: MANIFEST } })
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('docker-content-digest'), allowed)
      await res.arrayBuffer()
    }
    const head = await fetch(`${s.url}/v2/gate/app/manifests/blocked`, { method: 'HEAD', headers: { accept: MANIFEST } })
    assert.equal(head.status, 200)
  })

  it('counts allowed pulls only', async () => {
    await s.app.pulls.flush()
    const counts = await s.app.metadata.db.selectFrom('manifest_pulls').select(['digest', 'pull_count']).execute()
    const of = (digest: string) => Number(counts.find((c) => c.digest === digest)?.pull_count ?? 0)
    assert.equal(of(blocked), 0, 'refused pulls are not pulls')
    assert.equal(of(allowed), 3)
  })
})
