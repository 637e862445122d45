// The test reporter of `npm test` and .ci/run: Node's own default output (spec on a terminal, and
// always from Node.js 23; TAP otherwise), followed by one line per skipped suite or test with its
// reason, so that a run without some real client does not look like a full run.
// With BERTH_TEST_SKIPS_FILE set, the same lines are appended to that file (.ci/run fails on any
// it does not expect). Plain JavaScript: Node loads reporters before `--import tsx` applies.

import { appendFileSync } from 'node:fs'
import process from 'node:process'
import { relative } from 'node:path'
import { Readable } from 'node:stream'
import { spec, tap } from 'node:test/reporters'

/**
 * The line for a skipped suite or test, or undefined when `event` is no skip.
 * @param {{ type: string, data?: { name?: string, file?: string, skip?: string | boolean, details?: { type?: string } } }} event
 * @returns {string | undefined}
 */
export function skipLine(event) {
  if (event.type !== 'test:pass' && event.type !== 'test:fail') return undefined
  const { name = '?', file, skip, details } = event.data ?? {}
  if (skip === undefined || skip === false) return undefined
  const where = file ? `${relative(process.cwd(), file)} › ` : ''
  const reason = typeof skip === 'string' && skip.length > 0 ? skip : 'no reason given'
  return `skipped ${details?.type === 'suite' ? 'suite' : 'test'}: ${where}${name}: ${reason}`
}

/** @param {AsyncIterable<any>} source */
export default async function* report(source) {
  /** @type {string[]} */
  const skipped = []
  async function* watched() {
    for await (const event of source) {
      const line = skipLine(event)
      if (line) skipped.push(line)
      yield event
    }
  }
  const major = Number(process.versions.node.split('.')[0])
  const output = major >= 23 || process.stdout.isTTY ? Readable.from(watched()).pipe(new spec()) : tap(watched())
  for await (const chunk of output) yield chunk
  if (skipped.length === 0) return
  yield `\n${skipped.length} skipped (each with its reason):\n${skipped.map((l) => `  ${l}\n`).join('')}`
  if (process.env.BERTH_TEST_SKIPS_FILE) appendFileSync(process.env.BERTH_TEST_SKIPS_FILE, skipped.map((l) => `${l}\n`).join(''))
}
