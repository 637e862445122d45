// The registry browser of /api/v1 on a layout-backed project: a project served read-only from an
// OCI image layout directory (written here by `berth export`) is listed, its tags, artifacts and
// layer files read, its images downloaded as tars, searched, all from the layout directory with
// the project's RBAC; writes are refused as /v2 refuses them.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { listTar, readTarEntry } from '../../src/transfer/layout-store.js'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import type { TestServer } from '../helpers/server.js'
import { exportedLayout, MOTD, RUN_SH, type ExportedLayout } from './layout-fixture.js'
import type { Page, RepositorySummary as Repo, TagSummary as Tag } from '../../src/browse/catalog-types.js'

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`

describe('/api/v1 browsing a layout-backed project', () => {
  let s: TestServer
  let fx: ExportedLayout
  let guest: string
  let stranger: string
  const base = '/projects/offline/repositories/app'

  before(async () => {
    fx = await exportedLayout('berth-layout-browse-')
    s = await startAuthServer({ layouts: { allowedRoots: [fx.roots] } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'offline', public: false, layout: { path: fx.dir } }, 201)
    guest = await addUser(s, 'gus')
    await apiOk(s, 'POST', '/projects/offline/members', ADMIN, { username: 'gus', role: 'guest' }, 201)
    stranger = await addUser(s, 'stranger')
  })

  after(async () => {
    await s?.close()
    if (fx) await rm(fx.work, { recursive: true, force: true })
  })

  it('lists the repositories of the layout with their figures; pull counts and push times are absent (null), not made up', async () => {
    const page = await apiOk<Page<Repo>>(s, 'GET', '/projects/offline/repositories', guest)
    assert.equal(page.total, 1)
    const [repo] = page.items
    assert.ok(repo)
    assert.equal(repo.name, 'offline/app')
    assert.equal(repo.repository, 'app')
    assert.equal(repo.tagCount, 2)
    // v1, the index and its two images
    assert.equal(repo.artifactCount, 4)
    assert.equal(repo.pullCount, null)
    assert.equal(repo.lastPushedAt, null)
    assert.equal(repo.readOnly, true)
    const v1Bytes = fx.v1.manifest.length + fx.v1.config.size + fx.v1.layers.reduce((n, l) => n + l.descriptor.size, 0)
    assert.ok(repo.sizeBytes > v1Bytes, `${repo.sizeBytes} > ${v1Bytes}`)
    assert.deepEqual(await apiOk(s, 'GET', `${base}`, guest), repo)

    const filtered = await apiOk<Page<Repo>>(s, 'GET', '/projects/offline/repositories?q=nothing-like-it', guest)
    assert.equal(filtered.total, 0)
    assert.equal((await api(s, 'GET', '/projects/offline/repositories/other', guest)).status, 404)
    // The project's RBAC: someone who is no member of the private project sees nothing (404, as for any private project).
    const refused = await api(s, 'GET', '/projects/offline/repositories', stranger)
    assert.equal(refused.status, 404)
    assert.equal((await api(s, 'GET', `${base}/tags`, stranger)).status, 404)
    assert.equal((await api(s, 'GET', `${base}/artifacts/v1/files?path=/etc`, stranger)).status, 404)
    assert.equal((await api(s, 'GET', `${base}/artifacts/v1/files/content?path=/etc/motd`, stranger)).status, 404)
  })

  it('pages the tags with their digests, sizes and platforms from the layout', async () => {
    const page = await apiOk<Page<Tag>>(s, 'GET', `${base}/tags?sort=name`, guest)
    assert.equal(page.total, 2)
    assert.deepEqual(
      page.items.map((t) => [t.name, t.digest]),
      [
        ['multi', fx.multi.index.descriptor.digest],
        ['v1', fx.v1.descriptor.digest],
      ],
    )
    const [multi, v1] = page.items as [Tag, Tag]
    assert.deepEqual(multi.platforms.map((p) => `${p.os}/${p.architecture}`).sort(), ['linux/amd64', 'linux/arm64'])
    assert.deepEqual(v1.platforms.map((p) => `${p.os}/${p.architecture}`), ['linux/amd64'])
    assert.equal(v1.sizeBytes, fx.v1.manifest.length + fx.v1.config.size + fx.v1.layers.reduce((n, l) => n + l.descriptor.size, 0))
    assert.equal(v1.pushedAt, null)
    assert.equal(v1.pullCount, null)
    // Push and pull orders do not exist: the default sort answers by name; a filter and paging apply.
    assert.deepEqual((await apiOk<Page<Tag>>(s, 'GET', `${base}/tags`, guest)).items.map((t) => t.name), ['multi', 'v1'])
    const second = await apiOk<Page<Tag>>(s, 'GET', `${base}/tags?sort=name&order=desc&limit=1&offset=1`, guest)
    assert.deepEqual([second.total, second.items.map((t) => t.name)], [2, ['multi']])
    assert.deepEqual((await apiOk<Page<Tag>>(s, 'GET', `${base}/tags?q=mul`, guest)).items.map((t) => t.name), ['multi'])
  })

  it('describes an artifact: manifest, config, platforms, layers, history, referrers and sizes', async () => {
    const v1 = await apiOk<Record<string, unknown>>(s, 'GET', `${base}/artifacts/${fx.v1.descriptor.digest}`, guest)
    assert.equal(v1.digest, fx.v1.descriptor.digest)
    assert.equal(v1.kind, 'image')
    assert.equal(v1.readOnly, true)
    assert.deepEqual(v1.tags, ['v1'])
    assert.equal(v1.pullCount, null)
    assert.deepEqual(v1.manifest, JSON.parse(fx.v1.manifest.toString()))
    assert.equal((v1.config as { os: string }).os, 'linux')
    assert.deepEqual((v1.layers as { digest: string }[]).map((l) => l.digest), fx.v1.layers.map((l) => l.descriptor.digest))
    assert.deepEqual((v1.history as { createdBy: string }[]).map((h) => h.createdBy), ['berth e2e layer 0', 'berth e2e layer 1'])
    assert.deepEqual(v1.platforms, [{ digest: fx.v1.descriptor.digest, mediaType: fx.v1.descriptor.mediaType, size: fx.v1.manifest.length, platform: { os: 'linux', architecture: 'amd64' }, present: true }])

    const byTag = await apiOk<Record<string, unknown>>(s, 'GET', `${base}/artifacts/multi`, guest)
    assert.equal(byTag.digest, fx.multi.index.descriptor.digest)
    assert.equal(byTag.kind, 'index')
    assert.deepEqual(
      (byTag.platforms as { digest: string; present: boolean }[]).map((p) => [p.digest, p.present]),
      [
        [fx.multi.amd64.descriptor.digest, true],
        [fx.multi.arm64.descriptor.digest, true],
      ],
    )
    assert.deepEqual((byTag.referrers as { digest: string; artifactType: string }[]).map((r) => [r.digest, r.artifactType]), [[fx.multi.referrer, 'application/vnd.example.signature']])
    // the index, both images and all their blobs, each once
    const blobs = new Map<string, number>([[fx.multi.index.descriptor.digest, fx.multi.index.index.length]])
    for (const image of [fx.multi.amd64, fx.multi.arm64]) {
      blobs.set(image.descriptor.digest, image.manifest.length)
      blobs.set(image.config.digest, image.config.size)
      for (const l of image.layers) blobs.set(l.descriptor.digest, l.descriptor.size)
    }
    assert.equal(byTag.sizeBytes, [...blobs.values()].reduce((a, b) => a + b, 0))
    const referrer = await apiOk<Record<string, unknown>>(s, 'GET', `${base}/artifacts/${fx.multi.referrer}`, guest)
    assert.equal((referrer.subject as { digest: string }).digest, fx.multi.index.descriptor.digest)

    assert.equal((await api(s, 'GET', `${base}/artifacts/${sha256('absent')}`, guest)).status, 404)
    assert.equal((await api(s, 'GET', `${base}/artifacts/nope`, guest)).status, 404)
    const relations = await apiOk<{ digest: string; layerCount: number }>(s, 'GET', `${base}/artifacts/${fx.v1.descriptor.digest}/relations`, guest)
    assert.deepEqual([relations.digest, relations.layerCount], [fx.v1.descriptor.digest, 2])
  })

  it('lists the files of the merged image and of one layer, and returns a file inside a layer', async () => {
    const listing = await apiOk<{ digest: string; entries: { name: string; type: string; size: number; layer?: number }[] }>(s, 'GET', `${base}/artifacts/v1/files?path=/etc`, guest)
    assert.equal(listing.digest, fx.v1.descriptor.digest)
    assert.deepEqual(
      listing.entries.map((e) => [e.name, e.type, e.size, e.layer]),
      [
        ['hostname', 'file', 8, 0],
        ['motd', 'file', Buffer.byteLength(MOTD), 0],
      ],
    )
    const root = await apiOk<{ entries: { name: string }[] }>(s, 'GET', `${base}/artifacts/${fx.v1.descriptor.digest}/files?path=/`, guest)
    assert.deepEqual(root.entries.map((e) => e.name), ['app', 'etc'])
    const layer1 = await apiOk<{ entries: { name: string }[] }>(s, 'GET', `${base}/artifacts/${fx.v1.descriptor.digest}/files?path=/&layer=1`, guest)
    assert.deepEqual(layer1.entries.map((e) => e.name), ['app'])

    const motd = await api(s, 'GET', `${base}/artifacts/${fx.v1.descriptor.digest}/files/content?path=/etc/motd`, guest)
    assert.equal(motd.status, 200)
    assert.equal(await motd.text(), MOTD)
    assert.equal(motd.headers.get('x-berth-layer'), '0')
    const run = await api(s, 'GET', `${base}/artifacts/v1/files/content?path=/app/run.sh&layer=1`, guest)
    assert.equal(await run.text(), RUN_SH)

    assert.equal((await api(s, 'GET', `${base}/artifacts/v1/files/content?path=/etc/absent`, guest)).status, 404)
    const index = await api(s, 'GET', `${base}/artifacts/multi/files?path=/`, guest)
    assert.equal(index.status, 400)
    assert.match(await index.text(), /is an index: browse the files of one of its manifests/)
    // The diff of two images of the layout.
    const diff = await apiOk<{ added: { path: string }[] }>(s, 'GET', `${base}/diff?from=${fx.multi.amd64.descriptor.digest}&to=v1`, guest)
    assert.ok(diff.added.some((f) => f.path === '/etc/motd'), JSON.stringify(diff.added))
  })

  it('downloads an image as an OCI tar whose blobs hash to their digests, and as a docker-archive', async () => {
    const res = await api(s, 'GET', `${base}/artifacts/${fx.v1.descriptor.digest}/export?format=oci`, guest)
    assert.equal(res.status, 200, await res.clone().text())
    assert.equal(res.headers.get('docker-content-digest'), fx.v1.descriptor.digest)
    const file = join(fx.work, 'v1.oci.tar')
    await writeFile(file, Buffer.from(await res.arrayBuffer()))
    const entries = await listTar(file)
    const read = async (name: string) => {
      const e = entries.find((x) => x.name === name)
      assert.ok(e, `${name} in ${entries.map((x) => x.name).join(' ')}`)
      return readTarEntry(file, e)
    }
    const index = JSON.parse((await read('index.json')).toString()) as { manifests: { digest: string; annotations?: Record<string, string> }[] }
    assert.deepEqual(index.manifests.map((m) => [m.digest, m.annotations?.['org.opencontainers.image.ref.name']]), [[fx.v1.descriptor.digest, 'v1']])
    const expected = [fx.v1.descriptor.digest, fx.v1.config.digest, ...fx.v1.layers.map((l) => l.descriptor.digest)]
    for (const digest of expected) assert.equal(sha256(await read(`blobs/sha256/${digest.slice(7)}`)), digest)
    assert.deepEqual(entries.filter((e) => e.type === 'file' && e.name.startsWith('blobs/')).map((e) => `sha256:${e.name.slice(13)}`).sort(), [...expected].sort())

    const docker = await api(s, 'GET', `${base}/artifacts/v1/export?format=docker`, guest)
    assert.equal(docker.status, 200)
    const archive = join(fx.work, 'v1.docker.tar')
    await writeFile(archive, Buffer.from(await docker.arrayBuffer()))
    const manifestJson = (await listTar(archive)).find((e) => e.name === 'manifest.json')
    assert.ok(manifestJson)
    const [image] = JSON.parse((await readTarEntry(archive, manifestJson)).toString()) as { Config: string; Layers: string[]; RepoTags: string[] }[]
    assert.equal(image?.Config, `blobs/sha256/${fx.v1.config.digest.slice(7)}`)
    assert.equal(image?.Layers.length, 2)
    assert.ok(image?.RepoTags.every((t) => t.endsWith('offline/app:v1')), JSON.stringify(image?.RepoTags))

    // One platform of the index, with the referrers.
    const arm = await api(s, 'GET', `${base}/artifacts/multi/export?format=oci&platform=linux/arm64`, guest)
    assert.equal(arm.status, 200)
    await arm.arrayBuffer()
    assert.equal((await api(s, 'GET', `${base}/artifacts/v1/export?format=oci`, stranger)).status, 404)
  })

  it('finds the layout repositories, tags and digests in search, for those who may pull them', async () => {
    const found = await apiOk<{ repositories: { name: string }[]; tags: { name: string; tag: string }[]; digests: { digest: string }[] }>(s, 'GET', '/search?q=app', guest)
    assert.ok(found.repositories.some((r) => r.name === 'offline/app'), JSON.stringify(found))
    const tags = await apiOk<{ tags: { name: string; tag: string; digest: string }[] }>(s, 'GET', '/search?q=multi', guest)
    assert.deepEqual(tags.tags.map((t) => [t.name, t.tag, t.digest]), [['offline/app', 'multi', fx.multi.index.descriptor.digest]])
    const digests = await apiOk<{ digests: { name: string; digest: string }[] }>(s, 'GET', `/search?q=${fx.v1.descriptor.digest.slice(7, 19)}`, guest)
    assert.deepEqual(digests.digests.map((d) => [d.name, d.digest]), [['offline/app', fx.v1.descriptor.digest]])
    const hidden = await apiOk<{ repositories: unknown[]; tags: unknown[] }>(s, 'GET', '/search?q=app', stranger)
    assert.deepEqual([hidden.repositories, hidden.tags], [[], []])
  })

  it('refuses deletes with 405 UNSUPPORTED and tags and imports with 403 DENIED, saying why, and the layout stays whole', async () => {
    const deletes = [`${base}/tags/v1`, `${base}/artifacts/${fx.v1.descriptor.digest}`, base]
    for (const path of deletes) {
      const res = await api(s, 'DELETE', path, ADMIN)
      assert.equal(res.status, 405, path)
      const text = await res.text()
      assert.match(text, /UNSUPPORTED/)
      assert.match(text, /project offline is served read-only from an OCI image layout: deletes are refused/)
      // Without the delete permission, RBAC answers first.
      assert.equal((await api(s, 'DELETE', path, guest)).status, 403)
    }
    const tag = await api(s, 'POST', `${base}/artifacts/v1/tags`, ADMIN, { name: 'v2' })
    assert.equal(tag.status, 403)
    assert.match(await tag.text(), /DENIED[\s\S]*served read-only from an OCI image layout/)
    const imported = await fetch(`${s.url}/api/v1${base}/import`, { method: 'POST', headers: { authorization: ADMIN, 'content-type': 'application/x-tar' }, body: Buffer.alloc(1024) })
    assert.equal(imported.status, 403)
    assert.match(await imported.text(), /served read-only from an OCI image layout: pushes, new tags and imports are refused/)
    const storage = await api(s, 'GET', '/storage?project=offline&repository=app', ADMIN)
    assert.equal(storage.status, 405)
    assert.match(await storage.text(), /takes no registry storage/)

    const page = await apiOk<Page<Tag>>(s, 'GET', `${base}/tags?sort=name`, guest)
    assert.deepEqual(page.items.map((t) => t.name), ['multi', 'v1'])
    const v2 = await fetch(`${s.url}/v2/offline/app/manifests/v1`, { method: 'HEAD', headers: { authorization: ADMIN, accept: 'application/vnd.oci.image.manifest.v1+json' } })
    assert.equal(v2.headers.get('docker-content-digest'), fx.v1.descriptor.digest)
  })

  it("offers even its administrators no push or delete, and its chart repository refuses uploads (403) and deletes (405)", async () => {
    const project = await apiOk<{ actions: string[]; layout?: unknown }>(s, 'GET', '/projects/offline', ADMIN)
    assert.ok(project.layout)
    assert.ok(project.actions.includes('pull') && project.actions.includes('manageMembers'), project.actions.join())
    assert.equal(project.actions.includes('push') || project.actions.includes('delete'), false, project.actions.join())
    for (const path of ['charts', 'api/charts']) {
      const upload = await fetch(`${s.url}/chartrepo/offline/${path}`, { method: 'POST', headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, body: Buffer.alloc(512) })
      assert.equal(upload.status, 403, path)
      assert.match(await upload.text(), /project offline is served read-only from an OCI image layout: chart uploads are refused/)
    }
    const removed = await fetch(`${s.url}/chartrepo/offline/api/charts/app/1.0.0`, { method: 'DELETE', headers: { authorization: ADMIN } })
    assert.equal(removed.status, 405)
    assert.match(await removed.text(), /chart deletes are refused/)
    // Rights come first: a guest may not upload to the project at all.
    assert.equal((await fetch(`${s.url}/chartrepo/offline/charts`, { method: 'POST', headers: { authorization: guest, 'content-type': 'application/octet-stream' }, body: Buffer.alloc(512) })).status, 403)
  })
})
