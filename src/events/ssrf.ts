import { BlockList, isIP } from 'node:net'
import { lookup } from 'node:dns'
import type { LookupFunction } from 'node:net'

// Addresses a webhook set through the API by anyone but a system administrator may not reach:
// loopback, link-local (cloud metadata at 169.254.169.254), private, shared and unspecified
// ranges, unless events.allowedNetworks allows them. The check is made on every address a name
// resolves to, when the URL is set and again when each delivery connects (DNS can change).

const BLOCKED = new BlockList()
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv4')
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96]] as const) BLOCKED.addSubnet(net, prefix, 'ipv6')

export class NetworkGuard {
  private readonly allowed = new BlockList()

  /** `allowedNetworks`: CIDRs (or single addresses) restricted URLs may reach nonetheless. */
  constructor(allowedNetworks: string[]) {
    for (const cidr of allowedNetworks) {
      const [addr = '', bits] = cidr.split('/')
      const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4'
      if (bits === undefined) this.allowed.addAddress(addr, type)
      else this.allowed.addSubnet(addr, Number(bits), type)
    }
  }

  /** Why the address may not be reached; undefined when it may. */
  refuses(address: string): string | undefined {
    let addr = address
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr)
    if (mapped?.[1]) addr = mapped[1]
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4'
    if (this.allowed.check(addr, type)) return undefined
    return BLOCKED.check(addr, type) ? `${address} is a loopback, link-local, private or reserved address (allow it with events.allowedNetworks)` : undefined
  }

  /** Resolves the host and checks every address; the reason of the first refusal. */
  async check(host: string): Promise<string | undefined> {
    const bare = host.replace(/^\[|\]$/g, '')
    const addresses = isIP(bare) ? [bare] : await resolveAll(bare)
    if (addresses.length === 0) return `${host} does not resolve`
    for (const a of addresses) {
      const why = this.refuses(a)
      if (why) return why
    }
    return undefined
  }

  /** A dns lookup for http.request that fails when any address of the name is refused. */
  lookup(): LookupFunction {
    return (hostname, options, callback) => {
      lookup(hostname, { ...options, all: true }, (err, addresses) => {
        if (err) return callback(err, '', 0)
        const list = addresses as unknown as { address: string; family: number }[]
        const refused = list.map((a) => this.refuses(a.address)).find((w) => w !== undefined)
        if (refused) return callback(new Error(refused), '', 0)
        if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: typeof list) => void)(null, list)
        const first = list[0]
        if (!first) return callback(new Error(`${hostname} does not resolve`), '', 0)
        callback(null, first.address, first.family)
      })
    }
  }
}

async function resolveAll(host: string): Promise<string[]> {
  return new Promise((resolve) => lookup(host, { all: true }, (err, addresses) => resolve(err ? [] : addresses.map((a) => a.address))))
}
