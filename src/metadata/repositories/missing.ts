/**
 * Which of `digests` are absent, asking `present` in batches (bounded IN lists keep every
 * statement within SQLite's and PostgreSQL's parameter limits).
 */
export async function missingDigests(digests: string[], present: (batch: string[]) => Promise<string[]>): Promise<string[]> {
  const unique = [...new Set(digests)]
  const found = new Set<string>()
  for (let i = 0; i < unique.length; i += 500) {
    for (const d of await present(unique.slice(i, i + 500))) found.add(d)
  }
  return unique.filter((d) => !found.has(d))
}
