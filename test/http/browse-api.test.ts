import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { asBody, sha256 } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'

// The registry browser of /api/v1 (repositories, tags, artifacts, search, storage) over HTTP,
// for every role.

const ROLES = ['projectAdmin', 'maintainer', 'developer', 'guest', 'limitedGuest'] as const
type Who = (typeof ROLES)[number] | 'admin' | 'nonMember' | 'anonymous'
const READERS: Who[] = ['admin', ...ROLES]
const DELETERS: Who[] = ['admin', 'projectAdmin', 'maintainer']

// Response bodies read field by field (their shape is asserted, not assumed).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = Record<string, any>

interface Page<T> {
  total: number
  limit: number
  offset: number
  items: T[]
}
interface Repo {
  name: string
  project: string
  repository: string
  tagCount: number
  artifactCount: number
  sizeBytes: number
  pullCount: number
  lastPushedAt: string | null
  lastPulledAt: string | null
}
interface Tag {
  name: string
  digest: string
  mediaType: string
  sizeBytes: number
  platforms: { os: string; architecture: string; variant?: string }[]
  pushedAt: string
  pullCount: number
  lastPulledAt: string | null
}

async function pushBlob(s: TestServer, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data)
  const res = await fetch(`${s.url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(data), headers: { authorization: ADMIN } })
  assert.equal(res.status, 201, await res.text())
  return digest
}

async function putManifest(s: TestServer, repo: string, ref: string, body: Buffer, type = 'application/vnd.oci.image.manifest.v1+json'): Promise<string> {
  const res = await fetch(`${s.url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: asBody(body), headers: { 'content-type': type, authorization: ADMIN } })
  assert.equal(res.status, 201, await res.text())
  return sha256(body)
}

/** Pushes an image (config with history, the given layers) and tags it; returns digests and bytes. */
async function pushImage(s: TestServer, repo: string, tag: string, opts: { arch?: string; layers?: Buffer[]; annotations?: Record<string, string>; subject?: { digest: string; size: number } } = {}) {
  const layers = opts.layers ?? [Buffer.from(`layer of ${repo}:${tag}`)]
  const config = Buffer.from(
    JSON.stringify({
      architecture: opts.arch ?? 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/bin'] },
      history: [{ created_by: '/bin/sh -c #(nop) ADD file:x in /' }, { created_by: 'ENV A=1', empty_layer: true }, ...layers.slice(1).map((_, i) => ({ created_by: `RUN step ${i}` }))],
      rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) },
    }),
  )
  const configDigest = await pushBlob(s, repo, config)
  const layerDigests: string[] = []
  for (const l of layers) layerDigests.push(await pushBlob(s, repo, l))
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layers.map((l, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigests[i], size: l.length })),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
      ...(opts.subject ? { subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...opts.subject } } : {}),
    }),
  )
  const digest = await putManifest(s, repo, tag, manifest)
  return { digest, manifest, config, configDigest, layers, layerDigests, bytes: manifest.length + config.length + layers.reduce((n, l) => n + l.length, 0) }
}

describe('/api/v1 registry browser', () => {
  let s: TestServer
  const auth: Partial<Record<Who, string>> = { admin: ADMIN }
  let api1: Awaited<ReturnType<typeof pushImage>>
  let api2: Awaited<ReturnType<typeof pushImage>>

  const as = (who: Who) => auth[who]

  before(async () => {
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'pub', public: true }, 201)
    for (const role of ROLES) {
      auth[role] = await addUser(s, role.toLowerCase())
      await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: role.toLowerCase(), role }, 201)
    }
    auth.nonMember = await addUser(s, 'stranger')
    const shared = Buffer.from('a base layer shared by two images')
    api1 = await pushImage(s, 'team/tools/api', '1.2.0', { layers: [shared, Buffer.from('api v1.2.0 layer')], annotations: { 'org.opencontainers.image.title': 'Frobnicator API' } })
    api2 = await pushImage(s, 'team/tools/api', '1.10.0', { layers: [shared, Buffer.from('api v1.10.0 layer')] })
    await putManifest(s, 'team/tools/api', 'latest', api2.manifest)
    await pushImage(s, 'team/web', 'v2', { layers: [Buffer.from('web layer, a bit longer than the others to be the largest repository')] })
    await pushImage(s, 'pub/hello', 'latest')
    // Pulls: counted in memory, written by the tracker's flush.
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${s.url}/v2/team/tools/api/manifests/1.2.0`, { headers: { authorization: ADMIN, accept: 'application/vnd.oci.image.manifest.v1+json' } })
      assert.equal(res.status, 200)
      await res.arrayBuffer()
    }
    await s.app.pulls.flush()
  })
  after(() => s.close())

  describe('GET /projects/{p}/repositories', () => {
    it('lists a project\'s repositories with their figures, paged, with the total', async () => {
      const page = await apiOk<Page<Repo>>(s, 'GET', '/projects/team/repositories', ADMIN)
      assert.equal(page.total, 2)
      assert.deepEqual(page.items.map((r) => r.repository), ['tools/api', 'web'])
      const apiRepo = page.items[0] as Repo
      assert.equal(apiRepo.name, 'team/tools/api')
      assert.equal(apiRepo.project, 'team')
      assert.equal(apiRepo.tagCount, 3)
      assert.equal(apiRepo.artifactCount, 2)
      assert.equal(apiRepo.pullCount, 3)
      assert.ok(apiRepo.lastPulledAt && apiRepo.lastPushedAt)
      // blobs linked (shared layer once, two configs, two layers) + two manifests
      const expected = api1.bytes + api2.bytes - api2.layers[0]!.length
      assert.equal(apiRepo.sizeBytes, expected)
      const second = await apiOk<Page<Repo>>(s, 'GET', '/projects/team/repositories?limit=1&offset=1', ADMIN)
      assert.equal(second.total, 2)
      assert.deepEqual(second.items.map((r) => r.repository), ['web'])
    })

    it('filters by q and sorts by size, pulls, push time', async () => {
      const q = await apiOk<Page<Repo>>(s, 'GET', '/projects/team/repositories?q=TOOLS', ADMIN)
      assert.deepEqual(q.items.map((r) => r.repository), ['tools/api'])
      assert.equal(q.total, 1)
      const pulled = await apiOk<Page<Repo>>(s, 'GET', '/projects/team/repositories?sort=pulled', ADMIN)
      assert.deepEqual(pulled.items.map((r) => r.repository), ['tools/api', 'web'])
      const pushed = await apiOk<Page<Repo>>(s, 'GET', '/projects/team/repositories?sort=pushed', ADMIN)
      assert.deepEqual(pushed.items.map((r) => r.repository), ['web', 'tools/api'])
      const bySize = await apiOk<Page<Repo>>(s, 'GET', '/projects/team/repositories?sort=size&order=asc', ADMIN)
      assert.ok((bySize.items[0] as Repo).sizeBytes <= (bySize.items[1] as Repo).sizeBytes)
    })

    it('refuses bad paging and sorting with the field named', async () => {
      for (const query of ['sort=bogus', 'order=up', 'limit=0', 'limit=1001', 'offset=-1', `q=${'x'.repeat(256)}`]) {
        const res = await api(s, 'GET', `/projects/team/repositories?${query}`, ADMIN)
        assert.equal(res.status, 400, query)
        const body = (await res.json()) as { code: string; field: string }
        assert.equal(body.code, 'INVALID_FIELD')
        assert.equal(body.field, query.split('=')[0])
      }
    })

    for (const who of [...READERS, 'nonMember', 'anonymous'] as Who[]) {
      it(`private project, ${who}: ${READERS.includes(who) ? 'listed' : 'refused'}`, async () => {
        const res = await api(s, 'GET', '/projects/team/repositories', as(who))
        const expected = READERS.includes(who) ? 200 : who === 'anonymous' ? 401 : 404
        assert.equal(res.status, expected)
        const tags = await api(s, 'GET', `/projects/team/repositories/${encodeURIComponent('tools/api')}/tags`, as(who))
        assert.equal(tags.status, expected)
        const art = await api(s, 'GET', `/projects/team/repositories/tools%2Fapi/artifacts/${api1.digest}`, as(who))
        assert.equal(art.status, expected)
      })
    }

    it('a public project is listed to anonymous callers and non-members', async () => {
      for (const who of ['anonymous', 'nonMember'] as Who[]) {
        const page = await apiOk<Page<Repo>>(s, 'GET', '/projects/pub/repositories', as(who))
        assert.deepEqual(page.items.map((r) => r.name), ['pub/hello'])
        const tags = await apiOk<Page<Tag>>(s, 'GET', '/projects/pub/repositories/hello/tags', as(who))
        assert.deepEqual(tags.items.map((t) => t.name), ['latest'])
        // but may not delete
        const res = await api(s, 'DELETE', '/projects/pub/repositories/hello/tags/latest', as(who))
        assert.equal(res.status, who === 'anonymous' ? 401 : 403)
      }
    })

    it('an unknown project or repository is 404', async () => {
      assert.equal((await api(s, 'GET', '/projects/nope/repositories', ADMIN)).status, 404)
      assert.equal((await api(s, 'GET', '/projects/team/repositories/nope/tags', ADMIN)).status, 404)
      assert.equal((await api(s, 'GET', '/projects/team/repositories/tools%2Fapi/artifacts/sha256:' + '0'.repeat(64), ADMIN)).status, 404)
      assert.equal((await api(s, 'GET', '/projects/team/repositories/tools%2Fapi/artifacts/sha256:zz', ADMIN)).status, 400)
    })
  })

  describe('GET …/tags', () => {
    it('answers digest, media type, size, platforms, times and pull counts', async () => {
      const page = await apiOk<Page<Tag>>(s, 'GET', '/projects/team/repositories/tools%2Fapi/tags?sort=name', ADMIN)
      assert.equal(page.total, 3)
      assert.deepEqual(page.items.map((t) => t.name), ['1.10.0', '1.2.0', 'latest'])
      const t = page.items.find((x) => x.name === '1.2.0') as Tag
      assert.equal(t.digest, api1.digest)
      assert.equal(t.mediaType, 'application/vnd.oci.image.manifest.v1+json')
      assert.equal(t.sizeBytes, api1.bytes)
      assert.deepEqual(t.platforms, [{ os: 'linux', architecture: 'amd64' }])
      assert.equal(t.pullCount, 3)
      assert.ok(t.lastPulledAt)
      assert.ok(!Number.isNaN(Date.parse(t.pushedAt)))
    })

    it('sorts by semantic version (1.10.0 after 1.2.0), other tags last; by pulls; filters with q', async () => {
      const semver = await apiOk<Page<Tag>>(s, 'GET', '/projects/team/repositories/tools%2Fapi/tags?sort=semver', ADMIN)
      assert.deepEqual(semver.items.map((t) => t.name), ['1.10.0', '1.2.0', 'latest'])
      const asc = await apiOk<Page<Tag>>(s, 'GET', '/projects/team/repositories/tools%2Fapi/tags?sort=semver&order=asc', ADMIN)
      assert.deepEqual(asc.items.map((t) => t.name), ['1.2.0', '1.10.0', 'latest'])
      const pulled = await apiOk<Page<Tag>>(s, 'GET', '/projects/team/repositories/tools%2Fapi/tags?sort=pulled&limit=1', ADMIN)
      assert.deepEqual(pulled.items.map((t) => t.name), ['1.2.0'])
      assert.equal(pulled.total, 3)
      const q = await apiOk<Page<Tag>>(s, 'GET', '/projects/team/repositories/tools%2Fapi/tags?q=1.&sort=name', ADMIN)
      assert.deepEqual(q.items.map((t) => t.name), ['1.10.0', '1.2.0'])
      assert.equal(q.total, 2)
    })
  })

  describe('GET …/artifacts/{digest}', () => {
    it('answers manifest, config, layers, history, platforms, referrers and total size', async () => {
      const sig = await pushImage(s, 'team/tools/api', sha256('sig').replace(':', '-').slice(0, 60), { layers: [Buffer.from('signature')], subject: { digest: api1.digest, size: api1.manifest.length } })
      const a = await apiOk<Loose>(s, 'GET', `/projects/team/repositories/tools%2Fapi/artifacts/${api1.digest}`, as('guest'))
      assert.equal(a.digest, api1.digest)
      assert.equal(a.name, 'team/tools/api')
      assert.equal(a.kind, 'image')
      assert.equal(a.sizeBytes, api1.bytes)
      assert.deepEqual(a.manifest, JSON.parse(api1.manifest.toString()))
      assert.deepEqual(a.config, JSON.parse(api1.config.toString()))
      assert.deepEqual(a.layers.map((l: { digest: string }) => l.digest), api1.layerDigests)
      assert.deepEqual(a.history.map((h: { createdBy: string; layerIndex: number | null }) => [h.createdBy, h.layerIndex]), [
        ['/bin/sh -c #(nop) ADD file:x in /', 0],
        ['ENV A=1', null],
        ['RUN step 0', 1],
      ])
      assert.deepEqual(a.platforms.map((p: { platform: unknown }) => p.platform), [{ os: 'linux', architecture: 'amd64' }])
      assert.deepEqual(a.referrers.map((r: { digest: string }) => r.digest), [sig.digest])
      assert.deepEqual(a.tags, ['1.2.0'])
      assert.equal(a.pullCount, 3)
      assert.deepEqual(a.annotations, { 'org.opencontainers.image.title': 'Frobnicator API' })
      // by tag too
      const byTag = await apiOk<{ digest: string }>(s, 'GET', '/projects/team/repositories/tools%2Fapi/artifacts/latest', ADMIN)
      assert.equal(byTag.digest, api2.digest)
    })

    it('an index answers its platforms and the size of everything under it', async () => {
      const amd = await pushImage(s, 'team/multi', 'amd64', { arch: 'amd64' })
      const arm = await pushImage(s, 'team/multi', 'arm64', { arch: 'arm64' })
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: [
            { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd.digest, size: amd.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
            { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: arm.digest, size: arm.manifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
          ],
        }),
      )
      const digest = await putManifest(s, 'team/multi', 'both', index, 'application/vnd.oci.image.index.v1+json')
      const a = await apiOk<Loose>(s, 'GET', `/projects/team/repositories/multi/artifacts/${digest}`, ADMIN)
      assert.equal(a.kind, 'index')
      assert.equal(a.config, null)
      assert.deepEqual(a.platforms.map((p: { digest: string; platform: unknown }) => [p.digest, p.platform]), [
        [amd.digest, { os: 'linux', architecture: 'amd64' }],
        [arm.digest, { os: 'linux', architecture: 'arm64', variant: 'v8' }],
      ])
      assert.equal(a.sizeBytes, index.length + amd.bytes + arm.bytes)
      const tags = await apiOk<Page<Tag>>(s, 'GET', '/projects/team/repositories/multi/tags?q=both', ADMIN)
      assert.deepEqual(tags.items[0]?.platforms, [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }])
      assert.equal(tags.items[0]?.sizeBytes, a.sizeBytes)
    })
  })

  it('GET …/relations: base images and dependents by layer prefix, among what the caller may see', async () => {
    const l1 = Buffer.from('relations base layer')
    const l2 = Buffer.from('relations middle layer')
    const l3 = Buffer.from('relations top layer')
    const base = await pushImage(s, 'pub/base', 'v1', { layers: [l1] })
    const mid = await pushImage(s, 'team/mid', 'v1', { layers: [l1, l2] })
    const top = await pushImage(s, 'team/top', 'v1', { layers: [l1, l2, l3] })
    await pushImage(s, 'team/other', 'v1', { layers: [l1, l3] })
    type Rel = { baseImages: { name: string; digest: string; tags: string[] }[]; dependents: { name: string; digest: string }[] }
    const r = await apiOk<Rel>(s, 'GET', '/projects/team/repositories/mid/artifacts/v1/relations', as('guest'))
    assert.deepEqual(r.baseImages.map((b) => [b.name, b.digest, b.tags]), [['pub/base', base.digest, ['v1']]])
    assert.deepEqual(r.dependents.map((d) => [d.name, d.digest]), [['team/top', top.digest]])
    const fromTop = await apiOk<Rel>(s, 'GET', `/projects/team/repositories/top/artifacts/${top.digest}/relations`, ADMIN)
    assert.deepEqual(fromTop.baseImages.map((b) => b.digest), [mid.digest, base.digest])
    // A public base image's page shows a stranger no private dependents.
    const seen = await apiOk<Rel>(s, 'GET', '/projects/pub/repositories/base/artifacts/v1/relations', as('nonMember'))
    assert.deepEqual(seen.dependents, [])
    const all = await apiOk<Rel>(s, 'GET', '/projects/pub/repositories/base/artifacts/v1/relations', ADMIN)
    assert.deepEqual(all.dependents.map((d) => d.name), ['team/mid', 'team/other', 'team/top'])
  })

  describe('GET /search', () => {
    it('finds repositories, tags, digests and annotations the caller may see', async () => {
      const byName = await apiOk<Record<string, { name: string }[]>>(s, 'GET', '/search?q=tools', as('guest'))
      assert.deepEqual(byName.repositories?.map((r) => r.name), ['team/tools/api'])
      const byTag = await apiOk<{ tags: { name: string; tag: string; digest: string }[] }>(s, 'GET', '/search?q=1.10', as('limitedGuest'))
      assert.deepEqual(byTag.tags.map((t) => [t.name, t.tag, t.digest]), [['team/tools/api', '1.10.0', api2.digest]])
      const byDigest = await apiOk<{ digests: { digest: string }[] }>(s, 'GET', `/search?q=${api1.digest.slice(0, 19)}`, ADMIN)
      assert.deepEqual(byDigest.digests.map((d) => d.digest), [api1.digest])
      const byAnnotation = await apiOk<{ annotations: { digest: string; key: string; value: string }[] }>(s, 'GET', '/search?q=frobnicator', ADMIN)
      assert.deepEqual(byAnnotation.annotations.map((a) => [a.digest, a.key, a.value]), [[api1.digest, 'org.opencontainers.image.title', 'Frobnicator API']])
    })

    it('shows a non-member and an anonymous caller only public projects', async () => {
      for (const who of ['nonMember', 'anonymous'] as Who[]) {
        for (const q of ['tools', '1.10', 'latest', api1.digest.slice(7, 20), 'frobnicator', 'e']) {
          const found = await apiOk<Record<string, { name: string }[]>>(s, 'GET', `/search?q=${q}`, as(who))
          for (const list of Object.values(found)) for (const hit of list) assert.ok(hit.name.startsWith('pub/'), `${who} sees ${hit.name} for ${q}`)
        }
        const latest = await apiOk<{ tags: { name: string }[] }>(s, 'GET', '/search?q=latest', as(who))
        assert.deepEqual(latest.tags.map((t) => t.name), ['pub/hello'])
      }
    })
  })

  describe('GET /storage', () => {
    it('answers bytes per project, the dedupe ratio and the largest repositories (admins)', async () => {
      const st = await apiOk<Loose>(s, 'GET', '/storage', ADMIN)
      assert.ok(st.physicalBytes > 0)
      assert.ok(st.logicalBytes >= st.physicalBytes)
      assert.equal(st.dedupeRatio, Math.round((st.logicalBytes / st.physicalBytes) * 1000) / 1000)
      assert.deepEqual(st.projects.map((p: { name: string }) => p.name).sort(), ['library', 'pub', 'team'])
      assert.ok(st.largestRepositories.length >= 3)
      for (let i = 1; i < st.largestRepositories.length; i++) assert.ok(st.largestRepositories[i - 1].sizeBytes >= st.largestRepositories[i].sizeBytes)
      for (const who of ['projectAdmin', 'nonMember', 'anonymous'] as Who[]) {
        assert.equal((await api(s, 'GET', '/storage', as(who))).status, who === 'anonymous' ? 401 : 403)
      }
    })

    it('answers what deleting a tag or a repository would free: bytes nothing else shares', async () => {
      await apiOk(s, 'GET', '/storage?project=team', as('limitedGuest'))
      assert.equal((await api(s, 'GET', '/storage?project=team', as('nonMember'))).status, 404)
      // 1.2.0 shares its base layer with 1.10.0: its own manifest, config and second layer are freed.
      const tag = await apiOk<{ freedBytes: number; sizeBytes: number; digest: string }>(s, 'GET', '/storage?project=team&repository=tools%2Fapi&tag=1.2.0', as('guest'))
      assert.equal(tag.digest, api1.digest)
      assert.equal(tag.sizeBytes, api1.bytes)
      assert.equal(tag.freedBytes, api1.bytes - api1.layers[0]!.length)
      // latest and 1.10.0 name the same manifest: deleting one tag frees nothing.
      const latest = await apiOk<{ freedBytes: number }>(s, 'GET', '/storage?project=team&repository=tools%2Fapi&tag=latest', ADMIN)
      assert.equal(latest.freedBytes, 0)
      // The same layer pushed to another repository is not freed with this one.
      const copy = await pushImage(s, 'team/copy', 'x', { layers: [api1.layers[1]!] })
      const again = await apiOk<{ freedBytes: number }>(s, 'GET', '/storage?project=team&repository=tools%2Fapi&tag=1.2.0', ADMIN)
      assert.equal(again.freedBytes, api1.bytes - api1.layers[0]!.length - api1.layers[1]!.length)
      const repo = await apiOk<{ freedBytes: number; sizeBytes: number }>(s, 'GET', '/storage?project=team&repository=copy', ADMIN)
      assert.equal(repo.sizeBytes, copy.bytes)
      assert.equal(repo.freedBytes, copy.bytes - api1.layers[1]!.length)
      assert.equal((await api(s, 'GET', '/storage?repository=copy', ADMIN)).status, 400)
    })
  })

  describe('DELETE', () => {
    it('a tag: project admins, maintainers and admins only; the tag is gone, its manifest stays', async () => {
      await pushImage(s, 'team/del', 'keep')
      for (const who of ['developer', 'guest', 'limitedGuest', 'nonMember', 'anonymous'] as Who[]) {
        const res = await api(s, 'DELETE', '/projects/team/repositories/del/tags/keep', as(who))
        assert.equal(res.status, who === 'anonymous' ? 401 : who === 'nonMember' ? 404 : 403, who)
      }
      for (const who of DELETERS) {
        const img = await pushImage(s, 'team/del', `t-${who}`)
        const res = await api(s, 'DELETE', `/projects/team/repositories/del/tags/t-${who}`, as(who))
        assert.equal(res.status, 204, who)
        const tags = await apiOk<Page<Tag>>(s, 'GET', '/projects/team/repositories/del/tags', ADMIN)
        assert.ok(!tags.items.some((t) => t.name === `t-${who}`))
        assert.equal((await api(s, 'GET', `/projects/team/repositories/del/artifacts/${img.digest}`, ADMIN)).status, 200)
      }
      assert.equal((await api(s, 'DELETE', '/projects/team/repositories/del/tags/never', ADMIN)).status, 404)
    })

    it('a repository: its manifests, tags and blob links go; others are refused', async () => {
      await pushImage(s, 'team/gone/deep', 'a')
      for (const who of ['developer', 'guest', 'limitedGuest'] as Who[]) {
        assert.equal((await api(s, 'DELETE', '/projects/team/repositories/gone%2Fdeep', as(who))).status, 403, who)
      }
      assert.equal((await api(s, 'DELETE', '/projects/team/repositories/gone%2Fdeep', as('maintainer'))).status, 204)
      assert.equal((await api(s, 'GET', '/projects/team/repositories/gone%2Fdeep/tags', ADMIN)).status, 404)
      const page = await apiOk<Page<Repo>>(s, 'GET', '/projects/team/repositories?q=gone', ADMIN)
      assert.equal(page.total, 0)
      const v2 = await fetch(`${s.url}/v2/team/gone/deep/tags/list`, { headers: { authorization: ADMIN } })
      assert.equal(v2.status, 404)
      assert.equal((await api(s, 'DELETE', '/projects/team/repositories/gone%2Fdeep', ADMIN)).status, 404)
    })

    it('an artifact by digest: its tags go with it; delete right only', async () => {
      const img = await pushImage(s, 'team/arts', 'one')
      await putManifest(s, 'team/arts', 'two', img.manifest)
      const other = await pushImage(s, 'team/arts', 'other')
      const path = `/projects/team/repositories/arts/artifacts/${img.digest}`
      for (const who of ['developer', 'guest', 'limitedGuest', 'nonMember', 'anonymous'] as Who[]) {
        assert.equal((await api(s, 'DELETE', path, as(who))).status, who === 'anonymous' ? 401 : who === 'nonMember' ? 404 : 403, who)
      }
      assert.equal((await api(s, 'DELETE', '/projects/team/repositories/arts/artifacts/one', ADMIN)).status, 400, 'a tag is deleted through …/tags/{tag}')
      assert.equal((await api(s, 'DELETE', '/projects/team/repositories/arts/artifacts/sha256:nothex', ADMIN)).status, 400)
      assert.equal((await api(s, 'DELETE', path, as('maintainer'))).status, 204)
      assert.equal((await api(s, 'GET', path, ADMIN)).status, 404)
      const tags = await apiOk<Page<Tag>>(s, 'GET', '/projects/team/repositories/arts/tags', ADMIN)
      assert.deepEqual(tags.items.map((t) => [t.name, t.digest]), [['other', other.digest]])
      assert.equal((await api(s, 'DELETE', path, ADMIN)).status, 404)
    })

    it('an immutable tag keeps its repository and itself', async () => {
      await pushImage(s, 'team/locked', 'v1')
      await apiOk(s, 'POST', '/projects/team/immutability-rules', ADMIN, { repositories: 'locked', tags: 'v*' }, 201)
      assert.equal((await api(s, 'DELETE', '/projects/team/repositories/locked/tags/v1', ADMIN)).status, 403)
      assert.equal((await api(s, 'DELETE', '/projects/team/repositories/locked', ADMIN)).status, 403)
      assert.equal((await apiOk<Page<Tag>>(s, 'GET', '/projects/team/repositories/locked/tags', ADMIN)).total, 1)
    })
  })

  describe('POST …/artifacts/{reference}/tags', () => {
    it('adds a tag to an artifact for those who may push; the digest is the same, the tag moves', async () => {
      const img = await pushImage(s, 'team/tagme', 'v1')
      const other = await pushImage(s, 'team/tagme', 'v2')
      const path = `/projects/team/repositories/tagme/artifacts/${img.digest}/tags`
      for (const who of ['guest', 'limitedGuest', 'nonMember', 'anonymous'] as Who[]) {
        assert.equal((await api(s, 'POST', path, as(who), { name: `by-${who}` })).status, who === 'anonymous' ? 401 : who === 'nonMember' ? 404 : 403, who)
      }
      for (const who of ['admin', 'projectAdmin', 'maintainer', 'developer'] as Who[]) {
        const added = await apiOk<{ name: string; digest: string }>(s, 'POST', path, as(who), { name: `by-${who}` }, 201)
        assert.deepEqual(added, { name: `by-${who}`, digest: img.digest }, who)
      }
      // by tag, and onto a tag that named another artifact: it moves
      await apiOk(s, 'POST', '/projects/team/repositories/tagme/artifacts/v2/tags', as('developer'), { name: 'latest' }, 201)
      await apiOk(s, 'POST', path, as('developer'), { name: 'latest' }, 201)
      const tags = await apiOk<Page<Tag>>(s, 'GET', '/projects/team/repositories/tagme/tags?sort=name&limit=100', ADMIN)
      assert.deepEqual(
        tags.items.map((t) => [t.name, t.digest]),
        [
          ['by-admin', img.digest],
          ['by-developer', img.digest],
          ['by-maintainer', img.digest],
          ['by-projectAdmin', img.digest],
          ['latest', img.digest],
          ['v1', img.digest],
          ['v2', other.digest],
        ],
      )
      const v2 = await fetch(`${s.url}/v2/team/tagme/manifests/by-developer`, { headers: { authorization: ADMIN, accept: 'application/vnd.oci.image.manifest.v1+json' } })
      assert.equal(v2.headers.get('docker-content-digest'), img.digest)
      // bad input, unknown artifacts and immutable tags
      for (const name of ['', '-dash', 'a'.repeat(129), 'has space', 42]) assert.equal((await api(s, 'POST', path, ADMIN, { name })).status, 400, String(name))
      assert.equal((await api(s, 'POST', path, ADMIN, {})).status, 400)
      assert.equal((await api(s, 'POST', `/projects/team/repositories/tagme/artifacts/sha256:${'0'.repeat(64)}/tags`, ADMIN, { name: 'x' })).status, 404)
      assert.equal((await api(s, 'POST', '/projects/team/repositories/nothere/artifacts/v1/tags', ADMIN, { name: 'x' })).status, 404)
      await apiOk(s, 'POST', '/projects/team/immutability-rules', ADMIN, { repositories: 'tagme', tags: 'frozen*' }, 201)
      await apiOk(s, 'POST', '/projects/team/repositories/tagme/artifacts/v2/tags', ADMIN, { name: 'frozen-1' }, 201)
      assert.equal((await api(s, 'POST', path, ADMIN, { name: 'frozen-1' })).status, 403, 'an immutable tag does not move')
    })
  })

  it('documents every route in the OpenAPI document and the docs page', async () => {
    const doc = await apiOk<{ paths: Record<string, Record<string, unknown>> }>(s, 'GET', '/openapi.json', undefined)
    const routes: [string, string][] = [
      ['/projects/{project}/repositories', 'get'],
      ['/projects/{project}/repositories/{repository}', 'get'],
      ['/projects/{project}/repositories/{repository}', 'delete'],
      ['/projects/{project}/repositories/{repository}/tags', 'get'],
      ['/projects/{project}/repositories/{repository}/tags/{tag}', 'delete'],
      ['/projects/{project}/repositories/{repository}/artifacts/{reference}', 'get'],
      ['/projects/{project}/repositories/{repository}/artifacts/{reference}', 'delete'],
      ['/projects/{project}/repositories/{repository}/artifacts/{reference}/tags', 'post'],
      ['/projects/{project}/repositories/{repository}/artifacts/{reference}/files', 'get'],
      ['/projects/{project}/repositories/{repository}/artifacts/{reference}/files/content', 'get'],
      ['/projects/{project}/repositories/{repository}/diff', 'get'],
      ['/projects/{project}/repositories/{repository}/artifacts/{reference}/relations', 'get'],
      ['/search', 'get'],
      ['/storage', 'get'],
    ]
    for (const [path, method] of routes) assert.ok(doc.paths[path]?.[method], `${method} ${path}`)
    const html = await (await api(s, 'GET', '/docs')).text()
    assert.match(html, /\/api\/v1\/projects\/\{project\}\/repositories\/\{repository\}\/tags/)
  })

  describe('a repository of 100,000 tags', () => {
    it('answers each page, in every order, in well under a second', async () => {
      const img = await pushImage(s, 'team/huge', 'seed')
      // Tagging through the API 100,000 times would take minutes: rows straight into the
      // database (as the registry's own tag upsert writes them); every read below is HTTP.
      const db = s.app.metadata.db
      const repo = await db.selectFrom('repositories').select('id').where('name', '=', 'team/huge').executeTakeFirstOrThrow()
      const base = Date.now()
      const rows = Array.from({ length: 100_000 }, (_, i) => ({
        repository_id: repo.id,
        name: i % 10 === 0 ? `build-${i}` : `${Math.floor(i / 1000)}.${Math.floor(i / 10) % 100}.${i % 10}`,
        manifest_digest: img.digest,
        updated_at: base + i,
      }))
      await db.transaction().execute(async (trx) => {
        for (let i = 0; i < rows.length; i += 1000) await trx.insertInto('tags').values(rows.slice(i, i + 1000)).execute()
      })
      s.app.metadata.changes.changed('tag')
      const timings: Record<string, number> = {}
      for (const query of ['sort=name', 'sort=pushed', 'sort=pulled', 'sort=semver', 'sort=semver', 'sort=name&offset=99900', 'sort=pushed&q=build', 'sort=semver&order=asc&offset=50000']) {
        const started = performance.now()
        const page = await apiOk<Page<Tag>>(s, 'GET', `/projects/team/repositories/huge/tags?${query}&limit=100`, as('guest'))
        timings[query in timings ? `${query} (again)` : query] = Math.round(performance.now() - started)
        assert.equal(page.items.length, 100, query)
        assert.equal(page.total, query.includes('q=build') ? 10_000 : 100_001, query)
        if (query === 'sort=pushed') assert.equal(page.items[0]?.name, rows[rows.length - 1]?.name)
        if (query === 'sort=semver') assert.deepEqual(page.items.slice(0, 2).map((t) => t.name), ['99.99.9', '99.99.8'])
        if (query === 'sort=semver&order=asc&offset=50000') assert.ok(page.items.every((t) => /^\d+\.\d+\.\d+$/.test(t.name)))
      }
      console.log('100,000-tag pages (ms):', JSON.stringify(timings))
      for (const [query, ms] of Object.entries(timings)) assert.ok(ms < 1500, `${query} took ${ms} ms`)
      const repos = await apiOk<Page<Repo>>(s, 'GET', '/projects/team/repositories?q=huge', ADMIN)
      assert.equal(repos.items[0]?.tagCount, 100_001)
    })
  })
})

describe('/api/v1 registry browser of an open registry (auth.enabled false)', () => {
  let s: TestServer
  before(async () => {
    s = await startServer()
  })
  after(() => s.close())

  it('lets anyone browse, delete a tag and a repository, and see storage', async () => {
    await pushImage(s, 'library/alpine', '3.20')
    await pushImage(s, 'library/alpine', '3.21')
    await pushImage(s, 'solo', 'latest')
    const repos = await apiOk<Page<Repo>>(s, 'GET', '/projects/library/repositories', undefined)
    assert.deepEqual(repos.items.map((r) => [r.name, r.repository]), [['library/alpine', 'alpine'], ['solo', 'solo']])
    assert.deepEqual((await apiOk<Page<Tag>>(s, 'GET', '/projects/library/repositories/solo/tags', undefined)).items.map((t) => t.name), ['latest'])
    assert.equal((await api(s, 'DELETE', '/projects/library/repositories/alpine/tags/3.20', undefined)).status, 204)
    assert.deepEqual((await apiOk<Page<Tag>>(s, 'GET', '/projects/library/repositories/alpine/tags?sort=semver', undefined)).items.map((t) => t.name), ['3.21'])
    assert.equal((await api(s, 'DELETE', '/projects/library/repositories/solo', undefined)).status, 204)
    assert.equal((await apiOk<Page<Repo>>(s, 'GET', '/projects/library/repositories', undefined)).total, 1)
    const st = await apiOk<{ physicalBytes: number }>(s, 'GET', '/storage', undefined)
    assert.ok(st.physicalBytes > 0)
    const found = await apiOk<{ repositories: { name: string }[] }>(s, 'GET', '/search?q=alp', undefined)
    assert.deepEqual(found.repositories.map((r) => r.name), ['library/alpine'])
  })
})
