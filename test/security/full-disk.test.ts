import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { FaultyStorage, faults } from '../helpers/faulty-storage.js'
import { asBody, pushBlob, sha256 } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'

// A full store answers 507 with Retry-After and a message that says so, closes the connection
// instead of reading the rest of the body, keeps upload sessions, and recovers when space comes
// back. /readyz warns below storage.minFreeBytes and berth_storage_free_bytes tells how much is left.

async function expectFull(res: Response): Promise<void> {
  assert.equal(res.status, 507, `a full store answered ${res.status}`)
  assert.ok(res.headers.get('retry-after'))
  assert.equal(res.headers.get('connection'), 'close')
  const body = (await res.json()) as { errors: { message: string }[] }
  assert.match(body.errors[0]!.message, /out of space/)
}

const isRoot = process.getuid?.() === 0

/** A real tmpfs of `size` (root only), with a server on it that `serve` starts; unmounted after. */
function onTmpfs(size: string, serve: (mountPoint: string) => Promise<TestServer>): { server: () => TestServer; mountPoint: () => string } {
  let mountPoint = ''
  let s: TestServer | undefined
  before(async () => {
    if (!isRoot) return
    mountPoint = await mkdtemp(join(tmpdir(), 'berth-tiny-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mountPoint])
    s = await serve(mountPoint)
  })
  after(async () => {
    if (!isRoot) return
    await s?.close()
    execFileSync('umount', [mountPoint])
    await rm(mountPoint, { recursive: true, force: true })
  })
  return { server: () => s!, mountPoint: () => mountPoint }
}

describe('full disk (injected ENOSPC, any driver)', () => {
  let s: TestServer
  let storage: FaultyStorage
  before(async () => {
    s = await startServer({}, { wrapStorage: (d) => (storage = new FaultyStorage(d)) })
  })
  after(() => s.close())

  it('answers 507 to a push and a chunk, keeps the session, and works again once space is back', async () => {
    const acknowledged = await pushBlob(s.url, 'full/app', 'pushed before the disk filled')
    storage.fail('writer.write', { error: faults.full, times: 2 })
    const data = randomBytes(256 * 1024)
    await expectFull(await fetch(`${s.url}/v2/full/app/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: asBody(data) }))
    const start = await fetch(`${s.url}/v2/full/app/blobs/uploads/`, { method: 'POST' })
    const location = start.headers.get('location')!
    await expectFull(await fetch(`${s.url}${location}`, { method: 'PATCH', body: asBody(data), headers: { 'content-type': 'application/octet-stream' } }))
    assert.equal((await fetch(`${s.url}${location}`)).status, 204, 'the session is kept')
    storage.reset()
    const put = await fetch(`${s.url}${location}?digest=${sha256(data)}`, { method: 'PUT', body: asBody(data), headers: { 'content-type': 'application/octet-stream' } })
    assert.equal(put.status, 201)
    assert.equal((await fetch(`${s.url}/v2/full/app/blobs/${acknowledged}`)).status, 200)
  })
})

describe('full disk (a real 1 MiB tmpfs as the filesystem store)', () => {
  const tiny = onTmpfs('1m', (dir) => startServer({ storage: { driver: 'filesystem', filesystem: { rootDirectory: dir }, minFreeBytes: 512 * 1024 * 1024 } }))

  it('reports free space, warns on /readyz below the floor, and answers 507 when full', { skip: isRoot ? false : 'skipped: mounting a tmpfs needs root' }, async () => {
    const s = tiny.server()
    const metrics = await (await fetch(`${s.url}/metrics`)).text()
    const free = Number(/^berth_storage_free_bytes (\d+)/m.exec(metrics)?.[1])
    assert.ok(free > 0 && free <= 1024 * 1024, `berth_storage_free_bytes ${free}`)
    const ready = await fetch(`${s.url}/readyz`)
    assert.equal(ready.status, 200)
    const body = (await ready.json()) as { status: string; warnings?: string[] }
    assert.equal(body.status, 'ready')
    assert.match(body.warnings?.[0] ?? '', /storage\.minFreeBytes/)

    const small = await pushBlob(s.url, 'tiny/app', 'fits')
    const big = randomBytes(2 * 1024 * 1024)
    await expectFull(await fetch(`${s.url}/v2/tiny/app/blobs/uploads/?digest=${sha256(big)}`, { method: 'POST', body: asBody(big) }))
    // The failed write was taken back: the store has room for small blobs again.
    const after = await pushBlob(s.url, 'tiny/app', 'still fits after the refusal')
    assert.equal((await fetch(`${s.url}/v2/tiny/app/blobs/${small}`)).status, 200)
    assert.equal((await fetch(`${s.url}/v2/tiny/app/blobs/${after}`)).status, 200)
  })
})

describe('full metadata disk (SQLite on a real tmpfs)', () => {
  const tiny = onTmpfs('4m', (dir) => startServer({ database: { url: `sqlite:${join(dir, 'berth.db')}` } }))

  it('answers 507 when the database cannot grow, and keeps what it acknowledged', { skip: isRoot ? false : 'skipped: mounting a tmpfs needs root' }, async () => {
    const s = tiny.server()
    const mountPoint = tiny.mountPoint()
    const acknowledged = await pushBlob(s.url, 'dbfull/app', 'pushed before the disk filled')
    // Take every free byte of the database's file system; SQLite's next page then has no room.
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(mountPoint, 'filler')}`, 'bs=64k'], { stdio: 'ignore' })
    } catch {
      // dd ends with "No space left on device": the file system is full, as wanted.
    }
    let full: Response | undefined
    for (let i = 0; i < 500 && !full; i++) {
      const data = `blob ${i} ${randomBytes(16).toString('hex')}`
      const res = await fetch(`${s.url}/v2/dbfull/app/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: data })
      assert.ok(res.status === 201 || res.status === 507, `a full database answered ${res.status}: ${await res.clone().text()}`)
      if (res.status === 507) full = res
      else await res.arrayBuffer()
    }
    assert.ok(full, 'the database never filled')
    assert.ok(full.headers.get('retry-after'))
    const body = (await full.json()) as { errors: { code: string; message: string }[] }
    assert.match(body.errors[0]!.message, /metadata database is out of space/)
    await rm(join(mountPoint, 'filler'))
    assert.equal((await fetch(`${s.url}/v2/dbfull/app/blobs/${acknowledged}`)).status, 200)
    await pushBlob(s.url, 'dbfull/app', 'fits again once space is back')
  })
})
