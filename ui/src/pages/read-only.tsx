// The mark of a project served read-only from an OCI image layout directory on the server:
// its images are browsed and pulled, never pushed, tagged, imported or deleted.

export const READ_ONLY_TEXT = 'read-only: served from an OCI layout directory'

export function ReadOnlyBadge() {
  return (
    <span className="badge read-only" title="Images come from an OCI image layout directory on the server: they can be browsed, downloaded and pulled, not pushed, tagged or deleted.">
      {READ_ONLY_TEXT}
    </span>
  )
}

/** A count the registry keeps, or "—" where it keeps none (a layout project's pulls). */
export const countOrAbsent = (n: number | null | undefined) => (n === null || n === undefined ? '—' : String(n))

/** A time, relative, or "—" where none exists (a layout tag was never pushed here). */
export const absentWhenNull = (iso: string | null | undefined, show: (iso: string) => string) => (iso ? show(iso) : '—')
