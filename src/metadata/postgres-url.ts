// URL helpers of the PostgreSQL dialect, apart from postgres.ts so that recognising a URL does
// not load the pg driver (a SQLite registry never does).

/** postgres://user@host:port/db: the URL without its password or query, for messages. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.host}${u.pathname}`
  } catch {
    return 'postgres://(unparseable URL)'
  }
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url)
}
