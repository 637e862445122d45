// buildApp's modules open in order and close in reverse; a start-up that fails closes what opened.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import pino from 'pino'
import { buildApp, type App } from '../../src/app.js'
import type { StorageDriver } from '../../src/storage/driver.js'
import { freePort } from '../helpers/e2e-process.js'
import { testConfig } from '../helpers/server.js'

/** The configured driver, with its close() reported (the driver may have none of its own). */
function watchClose(onClose: () => Promise<void> | void) {
  return (driver: StorageDriver): StorageDriver =>
    new Proxy(driver, {
      get(target, prop, receiver) {
        if (prop === 'close') {
          return async () => {
            await onClose()
            await target.close?.()
          }
        }
        const value: unknown = Reflect.get(target, prop, receiver)
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      },
    })
}

describe('app lifecycle', () => {
  it('closes the storage last: after the HTTP server and the database', async () => {
    const seen: { listening?: boolean; database?: string } = {}
    // The storage closes after buildApp returned: `app` is set by then.
    const app: App = await buildApp(await testConfig(), {
      logger: pino({ level: 'silent' }),
      wrapStorage: watchClose(async () => {
        seen.listening = app.http.server.listening
        seen.database = await app.metadata.ping().then(
          () => 'open',
          () => 'closed',
        )
      }),
    })
    await app.http.listen({ host: '127.0.0.1', port: 0 })
    await app.close()
    assert.deepEqual(seen, { listening: false, database: 'closed' })
  })

  it('closes what opened before a module failed to start (storage, database, auth)', async () => {
    const port = await freePort()
    const config = await testConfig({
      auth: { enabled: true, oidc: { enabled: true, issuer: `http://127.0.0.1:${port}`, clientId: 'berth', redirectUrl: 'http://127.0.0.1/auth/oidc/callback' } },
    })
    let storageClosed = 0
    await assert.rejects(
      buildApp(config, { logger: pino({ level: 'silent' }), wrapStorage: watchClose(() => void storageClosed++) }),
      /auth\.oidc\.issuer .*OpenID Connect discovery failed/,
    )
    assert.equal(storageClosed, 1)
  })
})
