import { progressBar, withGc } from './gc.js'

export async function scrubCommand(flags: { config?: string; dataDir?: string; json?: boolean }): Promise<void> {
  const record = await withGc(flags, async ({ scrub }) => {
    const bar = progressBar(process.stdout.isTTY === true && !flags.json)
    try {
      return await scrub.run({ trigger: 'cli', onProgress: (p) => bar.update(p) })
    } finally {
      bar.stop()
    }
  })
  if (flags.json) process.stdout.write(`${JSON.stringify(record)}\n`)
  else {
    console.log(`scrub ${record.id}: ${record.blobsExamined} blob(s) (${record.bytesRead} bytes) and ${record.manifestsExamined} manifest(s) checked, ${record.problems.length} problem(s), ${record.healed} quarantined blob(s) healed by a re-push`)
    for (const p of record.problems) {
      const where = p.kind === 'broken-manifest' ? `${p.repository}: ${p.reason}` : `quarantined; linked in ${p.repositories?.join(', ') || 'no repository'}`
      console.log(`  ${p.kind} ${p.digest} ${where}`)
      for (const b of p.breaks ?? []) console.log(`    breaks ${b.repository}@${b.manifest}${b.tags.length ? ` (tags ${b.tags.join(', ')})` : ''}`)
    }
  }
  // Corruption found is a failure for scripts and cron.
  if (record.problems.length > 0) process.exitCode = 2
}
