/** HOST:PORT of a listen address (`[::1]:5000` for IPv6) as node:net wants it. */
export function splitAddr(addr: string): { host: string; port: number } {
  const idx = addr.lastIndexOf(':')
  const host = addr.slice(0, idx).replace(/^\[(.*)\]$/, '$1')
  return { host, port: Number(addr.slice(idx + 1)) }
}
