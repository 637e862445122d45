import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { getHeapSpaceStatistics } from 'node:v8'
import { runtimeGc, TransferGc } from '../../src/observability/transfer-gc.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('garbage collection after large transfers', () => {
  it('collects once, after enough bytes moved and the transfers went quiet', async () => {
    let runs = 0
    const t = new TransferGc(() => runs++, 1000, 40)
    t.record(600)
    await sleep(80)
    assert.equal(runs, 0, 'below the threshold nothing happens')
    t.record(600)
    await sleep(20)
    t.record(10) // still moving: the quiet period starts again
    await sleep(25)
    assert.equal(runs, 0, 'not while transfers continue')
    await sleep(60)
    assert.equal(runs, 1)
    t.record(500)
    await sleep(80)
    assert.equal(runs, 1, 'the count starts again after a collection')
    t.record(600)
    t.close()
    await sleep(80)
    assert.equal(runs, 1, 'close cancels a pending collection')
  })

  it('reaches the real collector without --expose-gc', async () => {
    const gc = runtimeGc()
    assert.ok(gc, 'this runtime lets the flag be set')
    let ref: WeakRef<object> | undefined
    ;(() => {
      ref = new WeakRef({ big: Buffer.alloc(1024) })
    })()
    // WeakRef targets live at least until the current job ends.
    await sleep(0)
    gc()
    assert.equal(ref?.deref(), undefined, 'the unreachable object was collected')
  })

  const v8Major = Number(process.versions.v8.split('.')[0])
  it('also shrinks the young generation', { skip: v8Major < 12 && 'V8 before 12 has no memory-reducing flavor (Node 20)' }, () => {
    const gc = runtimeGc()
    assert.ok(gc)
    const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0
    // Objects that survive their first scavenges make V8 grow the young generation.
    const kept: object[] = []
    for (let i = 0; i < 400_000; i++) kept.push({ i, s: `x${i}` })
    assert.ok(young() > 4 * 1024 * 1024, `grown: ${young()} bytes`)
    kept.length = 0
    gc()
    assert.ok(young() <= 2 * 1024 * 1024, `shrunk: ${young()} bytes`)
  })
})
