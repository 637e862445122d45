// cosign's legacy tag scheme: a signature, attestation or SBOM of the manifest sha256:<hex> is
// stored in the same repository under the tag `sha256-<hex>.sig`, `.att` or `.sbom`. Such a tag
// belongs to its subject (Harbor calls these accessories): it travels and is retained with it.

export const COSIGN_TAG_SUFFIXES = ['sig', 'att', 'sbom'] as const

const ATTACHMENT_TAG = /^(sha256)-([0-9a-f]{64})\.(sig|att|sbom)$/

/** The subject digest a cosign attachment tag names (`sha256-<hex>.sig` → `sha256:<hex>`), or undefined. */
export function cosignSubjectOf(tag: string): string | undefined {
  const m = ATTACHMENT_TAG.exec(tag)
  return m ? `${m[1]}:${m[2]}` : undefined
}

/** The attachment tags cosign would use for `digest` (sha256 only, as cosign does). */
export function cosignTagsOf(digest: string): string[] {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) return []
  const stem = digest.replace(':', '-')
  return COSIGN_TAG_SUFFIXES.map((s) => `${stem}.${s}`)
}
