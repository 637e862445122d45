import assert from 'node:assert/strict'

/** Polls `check` every few ms until it holds; fails naming `what` after `ms` (no fixed sleeps). */
export async function eventually(check: () => Promise<boolean> | boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
