import { createHmac, randomBytes } from 'node:crypto'

// Standard Webhooks (standardwebhooks.com) signatures: webhook-id, webhook-timestamp (seconds)
// and webhook-signature `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the bytes
// of a `whsec_<base64>` secret.

const PREFIX = 'whsec_'

/** A new random secret in the Standard Webhooks form. */
export function newWebhookSecret(): string {
  return PREFIX + randomBytes(24).toString('base64')
}

/** Whether a secret is `whsec_` followed by base64 of at least 16 bytes. */
export function isWebhookSecret(secret: string): boolean {
  if (!secret.startsWith(PREFIX)) return false
  const raw = secret.slice(PREFIX.length)
  return /^[A-Za-z0-9+/]+={0,2}$/.test(raw) && Buffer.from(raw, 'base64').length >= 16
}

export function signatureHeaders(secret: string, id: string, timestampSeconds: number, body: string): Record<string, string> {
  const key = Buffer.from(secret.slice(PREFIX.length), 'base64')
  const mac = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64')
  return { 'webhook-id': id, 'webhook-timestamp': String(timestampSeconds), 'webhook-signature': `v1,${mac}` }
}
