// Per-repository layout trees (Zot's storage root): a layout project whose directory holds one
// OCI image layout per repository, `<root>/team/app/index.json`, served as PROJECT/team/app.
// The layouts are written by `berth export` and pulled by skopeo and crane.

import assert from 'node:assert/strict'
import { cp, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { ADMIN, ADMIN_PASSWORD, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { ensureCrane } from '../helpers/e2e-crane.js'
import { layoutRef } from '../helpers/e2e-layout.js'
import { findBinary, run, waitFor } from '../helpers/e2e-process.js'
import { containersEnv } from '../helpers/e2e-registry.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth, digestOf, pushMultiArch, type Pushed } from '../transfer/helpers.js'
import { LayoutTree } from '../../src/layout/layout-tree.js'

const ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json'

describe('layout projects over a tree of per-repository layouts', () => {
  let a: TestServer
  let b: TestServer
  let work: string
  let roots: string
  let tree: string
  let app: Pushed
  let tools: Pushed
  let logs = ''
  const v2 = (path: string, init: { method?: string } = {}) => fetch(`${b.url}/v2/${path}`, { ...init, headers: { authorization: ADMIN, accept: ACCEPT } })
  const tagsOf = async (repo: string) => ((await (await v2(`${repo}/tags/list`)).json()) as { tags: string[] }).tags
  const catalog = async () => ((await (await v2('_catalog')).json()) as { repositories: string[] }).repositories.filter((r) => r.startsWith('zot/'))

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-layout-tree-'))
    roots = join(work, 'roots')
    tree = join(roots, 'zot')
    a = await startServer()
    app = await pushMultiArch(a.url, 'team/app', 'multi', join(work, 'src-app'), 'app')
    tools = await pushMultiArch(a.url, 'ops/tools', 'v1', join(work, 'src-tools'), 'tools')
    for (const [ref, dir] of [
      ['team/app:multi', join(tree, 'team', 'app')],
      ['ops/tools:v1', join(tree, 'tools')],
    ] as const) {
      const exported = await berth(['export', '--url', a.url, ref, '--referrers', '--to', dir])
      assert.equal(exported.code, 0, exported.stderr)
    }
    b = await startAuthServer({ layouts: { allowedRoots: [roots] }, log: { level: 'warn' } }, { logStream: new Writable({ write: (chunk: Buffer, _enc, done) => done(void (logs += chunk.toString())) }) })
  })

  after(async () => {
    await a?.close()
    await b?.close()
    await rm(work, { recursive: true, force: true })
  })

  it('is created from a directory holding layouts below it; `repository` is refused there, and a directory without any layout is refused', async () => {
    const withRepository = await api(b, 'POST', '/projects', ADMIN, { name: 'zot', layout: { path: tree, repository: 'images' } })
    assert.equal(withRepository.status, 400)
    assert.match(await withRepository.text(), /layout\.repository: .* holds one OCI image layout per repository, named by its directory/)
    await mkdir(join(roots, 'nothing', 'here'), { recursive: true })
    const empty = await api(b, 'POST', '/projects', ADMIN, { name: 'zot', layout: { path: join(roots, 'nothing') } })
    assert.equal(empty.status, 400)
    assert.match(await empty.text(), /layout\.path: .*nothing is not an OCI image layout: it has no index\.json, and no directory below it \(up to 8 levels\) holds one/)
    const created = await apiOk<{ layout: { path: string } }>(b, 'POST', '/projects', ADMIN, { name: 'zot', layout: { path: tree } }, 201)
    assert.equal(created.layout.path, tree)
  })

  it('serves each layout as the repository its path names (nested too), tags from ref.name, whatever name index.json gives', async () => {
    assert.deepEqual(await catalog(), ['zot/team/app', 'zot/tools'])
    assert.deepEqual(await tagsOf('zot/team/app'), ['multi'])
    // exported from ops/tools: the directory, not io.containerd.image.name, names the repository
    assert.deepEqual(await tagsOf('zot/tools'), ['v1'])
    assert.equal(await digestOf(b.url, 'zot/team/app', 'multi', ADMIN), app.index.descriptor.digest)
    assert.equal(await digestOf(b.url, 'zot/tools', 'v1', ADMIN), tools.index.descriptor.digest)
    assert.equal(await digestOf(b.url, 'zot/team/app', tools.index.descriptor.digest, ADMIN), null, "one repository's layout does not serve another's manifests")
    const referrers = (await (await v2(`zot/team/app/referrers/${app.index.descriptor.digest}`)).json()) as { manifests: { digest: string }[] }
    assert.deepEqual(
      referrers.manifests.map((m) => m.digest),
      [app.referrer],
    )
    for (const missing of ['zot/team/tags/list', 'zot/team/app/blobs/x/tags/list', 'zot/app/tags/list']) {
      const res = await v2(missing)
      assert.equal(res.status, 404, missing)
    }
    const put = await fetch(`${b.url}/v2/zot/tools/blobs/uploads/`, { method: 'POST', headers: { authorization: ADMIN } })
    assert.equal(put.status, 403, 'read-only as any layout project')
  })

  it('skopeo copies both repositories out with the digests of the export', { skip: findBinary('skopeo') ? false : 'skopeo is not installed' }, async () => {
    const env = await containersEnv(join(work, 'containers'))
    const skopeo = (...args: string[]) => run(findBinary('skopeo') ?? 'skopeo', args, { env, cwd: work })
    await mkdir(join(work, 'skopeo-out'))
    for (const [repo, tag, pushed] of [
      ['zot/team/app', 'multi', app],
      ['zot/tools', 'v1', tools],
    ] as const) {
      const out = join(work, 'skopeo-out', repo.replace(/\//g, '-'))
      await skopeo('copy', '--all', '--preserve-digests', '--src-tls-verify=false', '--src-creds', `admin:${ADMIN_PASSWORD}`, `docker://${b.host}/${repo}:${tag}`, `oci:${out}:${tag}`)
      assert.equal((await layoutRef(out, tag)).digest, pushed.index.descriptor.digest)
      const { stdout } = await skopeo('list-tags', '--tls-verify=false', '--creds', `admin:${ADMIN_PASSWORD}`, `docker://${b.host}/${repo}`)
      assert.deepEqual((JSON.parse(stdout) as { Tags: string[] }).Tags, [tag])
    }
  })

  it('crane lists the catalog and the tags and pulls both', async (t) => {
    const crane = await ensureCrane().catch(() => undefined)
    if (!crane) return t.skip('crane is not available')
    const home = join(work, 'crane-home')
    await mkdir(home, { recursive: true })
    const env = { ...process.env, HOME: home, DOCKER_CONFIG: join(home, '.docker') }
    const c = (...args: string[]) => run(crane, args, { env, cwd: work, timeoutMs: 60_000 })
    await c('auth', 'login', b.host, '-u', 'admin', '-p', ADMIN_PASSWORD)
    const listed = (await c('catalog', b.host)).stdout.trim().split('\n')
    for (const repo of ['zot/team/app', 'zot/tools']) assert.ok(listed.includes(repo), listed.join(' '))
    assert.deepEqual((await c('ls', `${b.host}/zot/team/app`)).stdout.trim().split('\n'), ['multi'])
    assert.equal((await c('digest', `${b.host}/zot/tools:v1`)).stdout.trim(), tools.index.descriptor.digest)
    const out = join(work, 'crane-out')
    await c('pull', '--format', 'oci', '--platform', 'linux/arm64', `${b.host}/zot/team/app:multi`, out)
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }
    assert.deepEqual(
      index.manifests.map((m) => m.digest),
      [app.arm64.descriptor.digest],
    )
  })

  it('serves a layout directory added to the tree without a restart, by a nested path', async () => {
    const third = join(tree, 'extra', 'nested', 'three')
    const exported = await berth(['export', '--url', a.url, 'team/app:multi', '--to', third])
    assert.equal(exported.code, 0, exported.stderr)
    // A repository the last scan did not know makes the tree scanned again (at most once a second).
    const digest = await waitFor('the new layout served', async () => (await digestOf(b.url, 'zot/extra/nested/three', 'multi', ADMIN)) ?? undefined, { timeoutMs: 10_000, intervalMs: 250 })
    assert.equal(digest, app.index.descriptor.digest)
    assert.deepEqual(await catalog(), ['zot/extra/nested/three', 'zot/team/app', 'zot/tools'])
  })

  it('goes 8 levels deep and no further, follows links inside the tree only, and says what it left out', async () => {
    const eight = join(tree, 'd1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'd8')
    await cp(join(tree, 'tools'), eight, { recursive: true })
    await cp(join(tree, 'tools'), join(eight, 'd9'), { recursive: true })
    await symlink(join(tree, 'tools'), join(tree, 'alias'))
    await cp(join(tree, 'tools'), join(work, 'outside'), { recursive: true })
    await symlink(join(work, 'outside'), join(tree, 'escape'))
    await symlink(tree, join(tree, 'team', 'loop'))
    await cp(join(tree, 'tools'), join(tree, 'Upper'), { recursive: true })
    const deep = 'zot/d1/d2/d3/d4/d5/d6/d7/d8'
    await waitFor('the deep layout served', async () => (await digestOf(b.url, deep, 'v1', ADMIN)) ?? undefined, { timeoutMs: 10_000, intervalMs: 250 })
    assert.equal(await digestOf(b.url, 'zot/alias', 'v1', ADMIN), tools.index.descriptor.digest, 'a link to a directory of the tree')
    for (const repo of [`${deep}/d9`, 'zot/escape', 'zot/team/loop/tools']) {
      const res = await v2(`${repo}/tags/list`)
      assert.equal(res.status, 404, repo)
    }
    assert.deepEqual(await catalog(), ['zot/alias', deep, 'zot/extra/nested/three', 'zot/team/app', 'zot/tools'])
    assert.match(logs, /a per-repository layout tree goes deeper than 8 levels/)
    assert.match(logs, /escape \(a symbolic link to outside the tree: not followed\)/)
    assert.match(logs, /Upper \(not a repository path component\)/)
  })

  it('answers UNAVAILABLE while the tree cannot be read, and serves it again once it is back', async () => {
    await cp(tree, `${tree}.copy`, { recursive: true, verbatimSymlinks: true })
    await rm(tree, { recursive: true })
    try {
      // The scan before the move is still served for up to a few seconds: wait for the next one.
      await waitFor('UNAVAILABLE', async () => (await v2('zot/tools/tags/list')).status === 503 || undefined, { timeoutMs: 10_000, intervalMs: 250 })
      assert.deepEqual(await catalog(), [])
    } finally {
      await cp(`${tree}.copy`, tree, { recursive: true, verbatimSymlinks: true })
    }
    await waitFor('served again', async () => (await digestOf(b.url, 'zot/tools', 'v1', ADMIN)) ?? undefined, { timeoutMs: 10_000, intervalMs: 250 })
  })
})

describe('LayoutTree limits', () => {
  it('stops at maxRepositories and maxDepth with a warning, and finds nothing outside its directory', async () => {
    const work = await mkdtemp(join(tmpdir(), 'berth-layout-tree-limits-'))
    try {
      const a = await startServer()
      try {
        await pushMultiArch(a.url, 'team/app', 'one', join(work, 'src'))
        const exported = await berth(['export', '--url', a.url, 'team/app:one', '--to', join(work, 'layout')])
        assert.equal(exported.code, 0, exported.stderr)
      } finally {
        await a.close()
      }
      const root = join(work, 'root')
      for (const rel of ['a', 'b', 'c', 'd', 'e/f', 'g/h/i']) await cp(join(work, 'layout'), join(root, rel), { recursive: true })
      const warnings: string[] = []
      const log = { warn: (_obj: unknown, msg?: string) => void warnings.push(msg ?? '') }
      const open = (limits: { maxDepth: number; maxRepositories: number; maxDirectories: number }) =>
        new LayoutTree('p', root, { allowedRoots: [work], maxManifestSize: 4 << 20, log: log as never, now: Date.now, limits })

      assert.deepEqual((await open({ maxDepth: 8, maxRepositories: 100, maxDirectories: 100 }).repositories()).sort(), ['p/a', 'p/b', 'p/c', 'p/d', 'p/e/f', 'p/g/h/i'])
      assert.deepEqual(warnings, [])

      assert.deepEqual((await open({ maxDepth: 8, maxRepositories: 3, maxDirectories: 100 }).repositories()).sort(), ['p/a', 'p/b', 'p/c'])
      assert.match(warnings.join('\n'), /holds more than 3 layouts: the scan stopped there/)

      warnings.length = 0
      assert.deepEqual((await open({ maxDepth: 2, maxRepositories: 100, maxDirectories: 100 }).repositories()).sort(), ['p/a', 'p/b', 'p/c', 'p/d', 'p/e/f'])
      assert.match(warnings.join('\n'), /goes deeper than 2 levels/)

      warnings.length = 0
      assert.equal((await open({ maxDepth: 8, maxRepositories: 100, maxDirectories: 4 }).repositories()).length, 4)
      assert.match(warnings.join('\n'), /has more than 4 directories: the scan stopped there/)

      const outside = new LayoutTree('p', root, { allowedRoots: [join(work, 'elsewhere')], maxManifestSize: 4 << 20, log: log as never, now: Date.now })
      assert.deepEqual(await outside.repositories(), [], 'a tree not below an allowed root serves nothing')
      await assert.rejects(outside.dir('p/a'), /cannot be read now/)
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  })
})
