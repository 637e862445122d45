// One image as a tar through the API: GET …/artifacts/{digest}/export and POST …/repositories/{r}/import,
// checked with skopeo's oci-archive: and docker-archive: transports.

import assert from 'node:assert/strict'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { readTarEntry, listTar } from '../../src/transfer/layout-store.js'
import { ADMIN, ADMIN_PASSWORD, addUser, apiOk } from '../helpers/auth.js'
import { startAuthServer } from '../helpers/auth.js'
import { multiArchLayout, type Image, type Index } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, needBinary, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { containersEnv, pushFromLayout } from '../helpers/e2e-registry.js'
import type { TestServer } from '../helpers/server.js'

const skip = requireClients('image tar API', [needBinary('skopeo')])
const CREDS = `admin:${ADMIN_PASSWORD}`

interface Problem {
  status: number
  code: string
  detail: string
  field?: string
}

describe('image tars through the API', { skip }, () => {
  let s: TestServer
  let work: string
  let env: NodeJS.ProcessEnv
  let amd64: Image
  let arm64: Image
  let index: Index
  let guest: string
  const skopeo = (...args: string[]) => run(findBinary('skopeo') ?? 'skopeo', args, { env, cwd: work })
  const api = (path: string, init: RequestInit & { auth?: string } = {}) => fetch(`${s.url}/api/v1${path}`, { ...init, headers: { ...(init.auth === '' ? {} : { authorization: init.auth ?? ADMIN }), ...((init.headers as Record<string, string>) ?? {}) } })
  const download = async (path: string, file: string, auth?: string) => {
    const res = await api(path, { auth })
    assert.equal(res.status, 200, await res.clone().text())
    assert.equal(res.headers.get('content-type'), 'application/x-tar')
    await writeFile(join(work, file), Buffer.from(await res.arrayBuffer()))
    return res
  }
  const upload = async (path: string, file: string, auth?: string) => api(path, { method: 'POST', body: await readFile(join(work, file)), headers: { 'content-type': 'application/x-tar' }, auth })
  /** The manifest a tag or digest names in Berth (null when absent). */
  const manifest = async (repo: string, ref: string) => {
    const res = await fetch(`${s.url}/v2/${repo}/manifests/${ref}`, {
      headers: { authorization: ADMIN, accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
    })
    if (res.status !== 200) return null
    return { digest: res.headers.get('docker-content-digest'), doc: (await res.json()) as { config: { digest: string }; layers: { digest: string; mediaType: string }[] } }
  }
  const leftovers = async () => (await readdir(join(s.dataDir, 'tmp')).catch(() => [] as string[])).filter((n) => n.startsWith('import-'))

  before(async () => {
    work = await makeTempDir('berth-image-tar-')
    env = await containersEnv(join(work, 'containers'))
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team' }, 201)
    guest = await addUser(s, 'gina')
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'gina', role: 'guest' }, 201)
    ;({ amd64, arm64, index } = await multiArchLayout(join(work, 'src')))
    await pushFromLayout(s.url, 'team/app', join(work, 'src'), index.descriptor, 'multi', { authorization: ADMIN })
  })

  after(async () => {
    await s?.close()
    await removeTempDir(work)
  })

  it('downloads an OCI layout tar that skopeo copies as oci-archive: with the same digests', async () => {
    const res = await download(`/projects/team/repositories/app/artifacts/${index.descriptor.digest}/export?format=oci`, 'multi.oci.tar')
    assert.equal(res.headers.get('docker-content-digest'), index.descriptor.digest)
    assert.match(res.headers.get('content-disposition') ?? '', /attachment; filename="app_[0-9a-f]{12}\.oci\.tar"/)
    const names = (await listTar(join(work, 'multi.oci.tar'))).map((e) => e.name)
    for (const blob of [...amd64.layers, ...arm64.layers].map((l) => l.descriptor.digest)) assert.ok(names.includes(`blobs/sha256/${blob.slice(7)}`), blob)
    // The tar names the image by its tag: skopeo finds it as oci-archive:FILE:multi.
    await skopeo('copy', '--all', '--preserve-digests', '--dest-tls-verify=false', '--dest-creds', CREDS, `oci-archive:${join(work, 'multi.oci.tar')}:multi`, `docker://${s.host}/team/copied:multi`)
    assert.equal((await manifest('team/copied', 'multi'))?.digest, index.descriptor.digest)
    for (const image of [amd64, arm64]) assert.equal((await manifest('team/copied', image.descriptor.digest))?.digest, image.descriptor.digest)
  })

  it('downloads one platform of an index as a docker-archive that skopeo reads (same config, layers by diff_id)', async () => {
    const refused = await api(`/projects/team/repositories/app/artifacts/multi/export?format=docker`)
    assert.equal(refused.status, 400)
    const problem = (await refused.json()) as Problem
    assert.equal(problem.field, 'platform')
    assert.match(problem.detail, /linux\/amd64, linux\/arm64\/v8/)

    const res = await download(`/projects/team/repositories/app/artifacts/multi/export?format=docker&platform=linux/arm64`, 'arm64.docker.tar')
    assert.equal(res.headers.get('docker-content-digest'), arm64.descriptor.digest)
    const file = join(work, 'arm64.docker.tar')
    const entries = await listTar(file)
    const manifestJson = entries.find((e) => e.name === 'manifest.json')
    assert.ok(manifestJson)
    const [entry] = JSON.parse((await readTarEntry(file, manifestJson)).toString()) as { Config: string; RepoTags: string[]; Layers: string[] }[]
    assert.deepEqual(entry?.RepoTags, [`${s.host}/team/app:multi`])
    assert.equal(entry?.Config, `blobs/sha256/${arm64.config.digest.slice(7)}`)

    const config = await skopeo('inspect', '--config', '--raw', `docker-archive:${file}`)
    assert.equal(`sha256:${(await import('node:crypto')).createHash('sha256').update(config.stdout).digest('hex')}`, arm64.config.digest)
    const inspected = JSON.parse((await skopeo('inspect', `docker-archive:${file}`)).stdout) as { Architecture: string; Layers: string[] }
    assert.equal(inspected.Architecture, 'arm64')
    assert.deepEqual(inspected.Layers, arm64.layers.map((l) => l.diffId))
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', CREDS, `docker-archive:${file}`, `docker://${s.host}/team/from-docker:arm64`)
    assert.equal((await manifest('team/from-docker', 'arm64'))?.doc.config.digest, arm64.config.digest)
  })

  it('uploads a docker-archive and an oci-archive made by skopeo, and both pull back', async () => {
    await skopeo('copy', '--src-tls-verify=false', '--src-creds', CREDS, `docker://${s.host}/team/app@${amd64.descriptor.digest}`, `docker-archive:${join(work, 'skopeo.docker.tar')}:team/app:v1`)
    const res = await upload('/projects/team/repositories/uploaded%2Fdocker/import?tag=d1', 'skopeo.docker.tar')
    const body = (await res.json()) as { repository: string; images: { ref: string; digest: string }[]; blobs: number }
    assert.equal(res.status, 201, JSON.stringify(body))
    assert.equal(body.repository, 'team/uploaded/docker')
    assert.equal(body.images.length, 1)
    assert.equal(body.images[0]?.ref, 'd1')
    const stored = await manifest('team/uploaded/docker', 'd1')
    assert.equal(stored?.digest, body.images[0]?.digest)
    assert.equal(stored?.doc.config.digest, amd64.config.digest)
    // skopeo's docker-archive holds the layers uncompressed: stored by their diff_ids.
    assert.deepEqual(stored?.doc.layers.map((l) => l.digest), amd64.layers.map((l) => l.diffId))
    await skopeo('copy', '--src-tls-verify=false', '--src-creds', CREDS, `docker://${s.host}/team/uploaded/docker:d1`, `oci:${join(work, 'pulled-docker')}:d1`)

    await skopeo('copy', '--all', '--preserve-digests', '--src-tls-verify=false', '--src-creds', CREDS, `docker://${s.host}/team/app:multi`, `oci-archive:${join(work, 'skopeo.oci.tar')}:multi`)
    // No tag given: the archive's own (its ref name).
    const oci = await upload('/projects/team/repositories/uploaded-oci/import', 'skopeo.oci.tar')
    assert.equal(oci.status, 201, await oci.clone().text())
    assert.equal((await manifest('team/uploaded-oci', 'multi'))?.digest, index.descriptor.digest)
    await skopeo('copy', '--all', '--src-tls-verify=false', '--src-creds', CREDS, `docker://${s.host}/team/uploaded-oci:multi`, `oci:${join(work, 'pulled-oci')}:multi`)
    assert.deepEqual(await leftovers(), [])
  })

  it('refuses a truncated tar and a docker-archive with a damaged layer with 400 naming the problem, and stores nothing', async () => {
    const whole = await readFile(join(work, 'multi.oci.tar'))
    await writeFile(join(work, 'truncated.tar'), whole.subarray(0, Math.floor(whole.length / 2)))
    const res = await upload('/projects/team/repositories/broken/import?tag=t', 'truncated.tar')
    assert.equal(res.status, 400)
    const problem = (await res.json()) as Problem
    assert.equal(problem.field, 'body')
    assert.match(problem.detail, /^the uploaded tar: truncated tar: .*(needs \d+ bytes from byte \d+ but the file has \d+ bytes|without the end-of-archive marker); no tag was created or moved$/)

    // One byte of the first layer changed: its content no longer hashes to the config's diff_id.
    const archive = join(work, 'skopeo.docker.tar')
    const entries = await listTar(archive)
    const layer = entries.find((e) => e.name === `${amd64.layers[0]?.diffId.slice(7)}.tar`)
    assert.ok(layer, entries.map((e) => e.name).join(' '))
    const damaged = await readFile(archive)
    damaged[layer.offset + 600] = (damaged[layer.offset + 600] as number) ^ 0xff
    await writeFile(join(work, 'damaged.docker.tar'), damaged)
    const bad = await upload('/projects/team/repositories/broken/import?tag=t', 'damaged.docker.tar')
    assert.equal(bad.status, 400)
    assert.match(((await bad.json()) as Problem).detail, new RegExp(`${layer.name}: digest mismatch \\(its content hashes to sha256:[0-9a-f]{64}, the image config's rootfs.diff_ids says ${amd64.layers[0]?.diffId}\\)`))

    // Nothing of either upload was kept: no repository, no blob, no temporary file.
    const tags = await fetch(`${s.url}/v2/team/broken/tags/list`, { headers: { authorization: ADMIN } })
    assert.equal(tags.status, 404)
    const blob = await fetch(`${s.url}/v2/team/broken/blobs/${amd64.config.digest}`, { method: 'HEAD', headers: { authorization: ADMIN } })
    assert.equal(blob.status, 404)
    assert.deepEqual(await leftovers(), [])
  })

  it('needs pull to download and push to upload: a guest downloads and gets 403 on an upload, anonymous gets 401', async () => {
    await download(`/projects/team/repositories/app/artifacts/${amd64.descriptor.digest}/export?format=docker`, 'guest.docker.tar', guest)
    const refused = await upload('/projects/team/repositories/guest/import?tag=g', 'skopeo.docker.tar', guest)
    assert.equal(refused.status, 403)
    assert.equal(((await refused.json()) as Problem).code, 'DENIED')
    assert.equal((await api(`/projects/team/repositories/app/artifacts/${amd64.descriptor.digest}/export`, { auth: '' })).status, 401)
    assert.equal((await manifest('team/guest', 'g')), null)
  })
})
