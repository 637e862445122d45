import { randomUUID, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import {
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  importJWK,
  importX509,
  jwtVerify,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose'
import type { SettingsRepository } from '../metadata/repositories/settings.js'
import type { TokenAccess } from './principal.js'

export interface TokenClaims extends JWTPayload {
  sub: string
  access: TokenAccess[]
  /** 'user' | 'robot' for Berth's own tokens */
  kind?: string
  /** 'access' | 'refresh' | 'session' */
  use?: string
  csrf?: string
  /** the id of the user's or robot's row: a later account of the same name is someone else */
  uid?: number
}

export interface ExternalIssuer {
  issuer: string
  service: string
  /** a JWKS JSON file, or */
  jwks?: string
  /** a PEM bundle of certificates whose keys sign tokens */
  rootCertBundle?: string
}

const KEY_SETTING = 'auth.token.signingKey'

/** Issues and verifies Berth's ES256 JWTs; the key is made on first start and kept in metadata. */
export class TokenService {
  private constructor(
    private readonly privateKey: CryptoKey,
    private readonly publicKey: CryptoKey,
    private readonly kid: string,
    readonly issuer: string,
    readonly service: string,
    private readonly external: { issuer: string; service: string; key: JWTVerifyGetKey | CryptoKey[] } | undefined,
    /** the injected clock: issue and expiry times, and the time tokens are checked against */
    private readonly now: () => number,
  ) {}

  static async create(settings: SettingsRepository, issuer: string, service: string, external: ExternalIssuer | undefined, now: () => number): Promise<TokenService> {
    let stored = await settings.get(KEY_SETTING)
    if (!stored) {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true })
      const jwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'ES256' }
      // Several nodes starting together: whichever key was stored first wins for all.
      stored = await settings.putIfAbsent(KEY_SETTING, JSON.stringify(jwk))
    }
    const jwk = JSON.parse(stored) as JWK
    const privateKey = (await importJWK(jwk, 'ES256')) as CryptoKey
    const { d: _d, ...pub } = jwk
    const publicKey = (await importJWK(pub, 'ES256')) as CryptoKey
    return new TokenService(privateKey, publicKey, jwk.kid ?? 'berth', issuer, service, external && { issuer: external.issuer, service: external.service, key: await loadExternalKey(external) }, now)
  }

  async sign(claims: TokenClaims, expiresInSeconds: number): Promise<string> {
    const issuedAt = Math.floor(this.now() / 1000)
    return new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: this.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(this.service)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setJti(claims.jti ?? randomUUID())
      .setExpirationTime(issuedAt + expiresInSeconds)
      .sign(this.privateKey)
  }

  /** Verifies signature, algorithm, issuer, audience and times; undefined when anything is off. */
  async verify(token: string): Promise<{ claims: TokenClaims; external: boolean } | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.publicKey, { algorithms: ['ES256'], issuer: this.issuer, audience: this.service, currentDate: new Date(this.now()) })
      if (!isClaims(payload)) return undefined
      return { claims: payload, external: false }
    } catch {
      if (!this.external) return undefined
    }
    try {
      const key = this.external.key
      const opts = { issuer: this.external.issuer, audience: this.external.service, currentDate: new Date(this.now()), algorithms: ['ES256', 'ES384', 'RS256', 'RS384', 'RS512', 'PS256', 'EdDSA'] }
      const { payload } = Array.isArray(key) ? await verifyWithAny(token, key, opts) : await jwtVerify(token, key, opts)
      const claims = { ...payload, access: Array.isArray(payload.access) ? payload.access : [] } as TokenClaims
      return typeof claims.sub === 'string' ? { claims, external: true } : undefined
    } catch {
      return undefined
    }
  }
}

async function verifyWithAny(token: string, keys: CryptoKey[], opts: Parameters<typeof jwtVerify>[2]) {
  let last: unknown
  for (const key of keys) {
    try {
      return await jwtVerify(token, key, opts)
    } catch (err) {
      last = err
    }
  }
  throw last
}

async function loadExternalKey(ext: ExternalIssuer): Promise<JWTVerifyGetKey | CryptoKey[]> {
  if (ext.jwks) return createLocalJWKSet(JSON.parse(readFileSync(ext.jwks, 'utf8')) as { keys: JWK[] })
  if (ext.rootCertBundle) {
    const pem = readFileSync(ext.rootCertBundle, 'utf8')
    const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    if (certs.length === 0) throw new Error(`auth.token.rootCertBundle: no certificate in ${ext.rootCertBundle}`)
    return Promise.all(
      certs.map(async (c) => {
        const alg = new X509Certificate(c).publicKey.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256'
        return (await importX509(c, alg)) as CryptoKey
      }),
    )
  }
  throw new Error('auth.token: set jwks or rootCertBundle for the external issuer')
}

function isClaims(p: JWTPayload): p is TokenClaims {
  return typeof p.sub === 'string' && Array.isArray((p as { access?: unknown }).access)
}
