import { readFile } from 'node:fs/promises'
import { parse } from 'yaml'
import { applySettings, parseSettingsDocument } from '../settings/settings.js'
import { withSettingsServices, type SettingsFlags } from './config-export.js'

const SIGN = { create: '+', update: '~', recreate: '±', delete: '-' } as const

/**
 * `berth apply FILE [--dry-run] [--prune]`: makes the registry's settings match a document
 * written by `berth config export` (or by hand). The document is checked whole before anything
 * is written; `--dry-run` prints the changes and writes nothing.
 */
export async function applyCommand(file: string, flags: SettingsFlags & { dryRun?: boolean; prune?: boolean }): Promise<void> {
  let input: unknown
  try {
    input = parse(await readFile(file, 'utf8'))
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`)
  }
  const doc = parseSettingsDocument(input)
  const result = await withSettingsServices(flags, (s) => applySettings(s, doc, { prune: flags.prune === true, dryRun: flags.dryRun === true }))
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ dryRun: flags.dryRun === true, ...result })}\n`)
    return
  }
  for (const c of result.changes) console.log(`${SIGN[c.op]} ${c.target}${c.details.length ? `: ${c.details.join('; ')}` : ''}`)
  if (result.changes.length === 0) console.log('no changes: the registry matches the document')
  else console.log(`${result.changes.length} change(s) ${flags.dryRun ? 'would be made (dry run: nothing written)' : 'made'}`)
  // created secrets are shown this once, on stderr, so that stdout can be kept as a log
  for (const s of result.secrets) console.error(`new ${s}`)
}
