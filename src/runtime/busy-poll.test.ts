import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { BusyPoll } from './busy-poll.js'

/** A clock in microseconds and a queue standing in for setImmediate. */
function fakeLoop() {
  let micros = 0
  const queue: (() => void)[] = []
  return {
    now: () => micros / 1000,
    later: (fn: () => void) => void queue.push(fn),
    queue,
    /** one turn of the loop `step` µs later: runs what was scheduled before it */
    turn(step: number) {
      micros += step
      for (const fn of queue.splice(0)) fn()
    },
  }
}

describe('busy polling after responses', () => {
  it('keeps one poll pending until the window after the last response has passed', () => {
    const loop = fakeLoop()
    const poll = new BusyPoll(50, loop.now, loop.later)
    poll.touch()
    assert.equal(loop.queue.length, 1)
    poll.touch() // a second response while polling: the same chain, a later end
    assert.equal(loop.queue.length, 1)
    for (let i = 0; i < 4; i++) loop.turn(10)
    assert.equal(loop.queue.length, 1, '40 µs after the response: still polling')
    poll.touch() // another response at 40 µs: polls until 90 µs
    for (let i = 0; i < 4; i++) loop.turn(10)
    assert.equal(loop.queue.length, 1, 'at 80 µs: still polling')
    loop.turn(10)
    loop.turn(1) // past 90 µs whichever way the float sums round at exactly 90
    assert.equal(loop.queue.length, 0, 'past 90 µs: the thread may sleep')
    poll.touch()
    assert.equal(loop.queue.length, 1, 'a new response starts polling again')
  })

  it('does nothing when off, and stops for good when the server closes', () => {
    const loop = fakeLoop()
    const off = new BusyPoll(0, loop.now, loop.later)
    off.touch()
    assert.equal(loop.queue.length, 0)
    const poll = new BusyPoll(1_000, loop.now, loop.later)
    poll.touch()
    poll.stop()
    loop.turn(1)
    assert.equal(loop.queue.length, 0, 'the pending poll ends at its turn')
    poll.touch()
    assert.equal(loop.queue.length, 0)
  })

  it('lets the event loop sleep again on the real clock', async () => {
    const immediates = () => process.getActiveResourcesInfo().filter((r) => r === 'Immediate').length
    const before = immediates()
    const poll = new BusyPoll(200)
    poll.touch()
    assert.equal(immediates(), before + 1)
    await sleep(20)
    assert.equal(immediates(), before, 'no poll left 20 ms after a 200 µs window')
  })
})
