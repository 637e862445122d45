import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { AccountSASPermissions, AccountSASResourceTypes, AccountSASServices, generateAccountSASQueryParameters, StorageSharedKeyCredential } from '@azure/storage-blob'
import { buildApp } from '../../src/app.js'
import { loadConfig, maskSecrets } from '../../src/config/load.js'
import { AzureDriver, defaultAzureCredential } from '../../src/storage/azure/driver.js'
import { StorageUnavailable } from '../../src/storage/driver.js'
import { AZURITE_ACCOUNT, AZURITE_KEY, azureStorageConfig, startAzurite, type TestAzurite } from '../helpers/azurite.js'
import { asBody, expectOciError, sha256 } from '../helpers/oci.js'
import { startServer, testConfig } from '../helpers/server.js'

// The Azure driver through Berth's HTTP API, against Azurite on loopback: chunked uploads,
// SAS-token credentials, SAS redirects, metrics, configuration and start-up errors, and an
// Azurite killed and restarted in the middle of pushes.

const MiB = 1024 * 1024

let azurite: TestAzurite
before(async () => {
  azurite = await startAzurite()
})
after(() => azurite.close())

async function startUpload(url: string, name: string): Promise<string> {
  const res = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST' })
  assert.equal(res.status, 202)
  return res.headers.get('location') ?? ''
}

function patch(url: string, loc: string, data: Buffer, start: number): Promise<Response> {
  return fetch(`${url}${loc}`, { method: 'PATCH', body: asBody(data), headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${start + data.length - 1}` } })
}

/** The bytes Berth serves for a digest, or 404. */
async function pull(url: string, name: string, digest: string): Promise<Buffer | 404> {
  const res = await fetch(`${url}/v2/${name}/blobs/${digest}`)
  if (res.status === 404) {
    await expectOciError(res, 'BLOB_UNKNOWN', 404)
    return 404
  }
  assert.equal(res.status, 200)
  return Buffer.from(await res.arrayBuffer())
}

function accountSas(permissions: string): string {
  return generateAccountSASQueryParameters(
    {
      expiresOn: new Date(Date.now() + 3_600_000),
      permissions: AccountSASPermissions.parse(permissions),
      resourceTypes: AccountSASResourceTypes.parse('sco').toString(),
      services: AccountSASServices.parse('b').toString(),
    },
    new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
  ).toString()
}

describe('Azure storage: pushes and pulls', () => {
  it('assembles chunks of any size into the right blob and times its requests in /metrics', async () => {
    const container = await azurite.createContainer()
    const s = await startServer({ storage: azureStorageConfig(azurite.endpoint, container) })
    try {
      const sizes = [1, 1000, 9 * MiB, 3, 2 * MiB]
      const data = randomBytes(sizes.reduce((a, b) => a + b))
      const digest = sha256(data)
      const loc = await startUpload(s.url, 'az/chunks')
      let at = 0
      for (const n of sizes) {
        assert.equal((await patch(s.url, loc, data.subarray(at, at + n), at)).status, 202)
        at += n
      }
      assert.equal((await fetch(`${s.url}${loc}?digest=${digest}`, { method: 'PUT' })).status, 201)
      assert.deepEqual(await pull(s.url, 'az/chunks', digest), data)
      const text = await (await fetch(`${s.url}/metrics`)).text()
      const count = (operation: string) => Number(/^\S+ (\S+)$/.exec(text.split('\n').find((l) => l.startsWith(`berth_storage_request_duration_seconds_count{operation="${operation}",result="ok"}`)) ?? '')?.[1] ?? 0)
      for (const op of ['PutBlock', 'PutBlockList', 'GetBlockList', 'CopyBlob', 'GetBlob']) assert.ok(count(op) > 0, `${op} timed`)
    } finally {
      await s.close()
    }
  })

  it('works with a SAS token instead of the account key', async () => {
    const container = await azurite.createContainer()
    const s = await startServer({ storage: { driver: 'azure', azure: { container, endpoint: azurite.endpoint, sasToken: `?${accountSas('rwdlac')}` } } })
    try {
      const data = randomBytes(3 * MiB)
      const digest = sha256(data)
      const post = await fetch(`${s.url}/v2/sas/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(data), headers: { 'content-type': 'application/octet-stream' } })
      assert.equal(post.status, 201)
      assert.deepEqual(await pull(s.url, 'sas/app', digest), data)
    } finally {
      await s.close()
    }
  })

  it('answers blob GETs with 307 to a read-only SAS URL that serves the bytes', async () => {
    const container = await azurite.createContainer()
    const s = await startServer({ storage: azureStorageConfig(azurite.endpoint, container, { redirect: true, redirectExpiry: '5m' }) })
    try {
      const data = randomBytes(100_000)
      const digest = sha256(data)
      const post = await fetch(`${s.url}/v2/r/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(data), headers: { 'content-type': 'application/octet-stream' } })
      assert.equal(post.status, 201)
      const res = await fetch(`${s.url}/v2/r/app/blobs/${digest}`, { redirect: 'manual' })
      assert.equal(res.status, 307)
      const location = new URL(res.headers.get('location') ?? '')
      assert.ok(location.href.startsWith(azurite.endpoint))
      assert.equal(location.searchParams.get('sp'), 'r', 'read permission only')
      assert.ok(location.searchParams.get('sig'))
      const expiry = Date.parse(location.searchParams.get('se') ?? '')
      assert.ok(expiry > Date.now() && expiry <= Date.now() + 5 * 60_000 + 5000, 'valid for storage.azure.redirectExpiry')
      const direct = await fetch(location)
      assert.equal(direct.status, 200)
      assert.deepEqual(Buffer.from(await direct.arrayBuffer()), data)
      const ranged = await fetch(location, { headers: { range: 'bytes=10-19' } })
      assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), data.subarray(10, 20))
      // The signature grants reads only.
      const put = await fetch(location, { method: 'PUT', body: 'x', headers: { 'x-ms-blob-type': 'BlockBlob' } })
      assert.equal(put.status, 403)
      await expectOciError(await fetch(`${s.url}/v2/r/app/blobs/${sha256('other')}`, { redirect: 'manual' }), 'BLOB_UNKNOWN', 404)
    } finally {
      await s.close()
    }
  })

  it('refuses an append when another writer changed the blob since it was opened', async () => {
    const container = await azurite.createContainer()
    const d = new AzureDriver({ container, endpoint: azurite.endpoint, accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY, maxAttempts: 1 })
    const first = await d.writer('uploads/u', { append: true })
    const second = await d.writer('uploads/u', { append: true })
    first.end(Buffer.from('one'))
    await first.commit()
    second.end(Buffer.from('two'))
    await assert.rejects(second.commit(), (err: unknown) => err instanceof StorageUnavailable && /another writer/.test((err as Error).message))
    assert.equal((await d.getContent('uploads/u')).toString(), 'one')
    await d.delete('uploads')
  })
})

describe('Azure storage: configuration', () => {
  it('reads storage.azure.* from BERTH_STORAGE_AZURE_* and masks the key, SAS token and connection string', async () => {
    const { config } = await loadConfig({
      env: {
        BERTH_STORAGE_DRIVER: 'azure',
        BERTH_STORAGE_AZURE_CONTAINER: 'blobs',
        BERTH_STORAGE_AZURE_ACCOUNT_NAME: 'acct',
        BERTH_STORAGE_AZURE_ACCOUNT_KEY: 'very-secret-key',
        BERTH_STORAGE_AZURE_SAS_TOKEN: 'sv=2024&sig=very-secret-sig',
        BERTH_STORAGE_AZURE_CONNECTION_STRING: 'AccountName=acct;AccountKey=very-secret-cs',
        BERTH_STORAGE_AZURE_ROOT_DIRECTORY: 'berth/a',
        BERTH_STORAGE_AZURE_REALM: 'core.chinacloudapi.cn',
        BERTH_STORAGE_AZURE_CREATE_CONTAINER: 'true',
        BERTH_STORAGE_AZURE_REDIRECT: 'yes',
        BERTH_STORAGE_AZURE_CACHE_DIRECTORY: '/var/cache/berth',
      },
    })
    const a = config.storage.azure
    assert.deepEqual([a.container, a.accountName, a.rootDirectory, a.realm, a.createContainer, a.redirect, a.cache.directory], ['blobs', 'acct', 'berth/a', 'core.chinacloudapi.cn', true, true, '/var/cache/berth'])
    const masked = JSON.stringify(maskSecrets(config))
    for (const secret of ['very-secret-key', 'very-secret-sig', 'very-secret-cs']) assert.ok(!masked.includes(secret), secret)
    await assert.rejects(loadConfig({ env: { BERTH_STORAGE_DRIVER: 'azure', BERTH_STORAGE_AZURE_ACCOUNT_NAME: 'a', BERTH_STORAGE_AZURE_ACCOUNT_KEY: 'k' } }), /storage\.azure\.container: required when storage\.driver is azure/)
    await assert.rejects(loadConfig({ env: { BERTH_STORAGE_DRIVER: 'azure', BERTH_STORAGE_AZURE_CONTAINER: 'c', BERTH_STORAGE_AZURE_ACCOUNT_NAME: 'a' } }), /storage\.azure: .*needs credentials/)
    await assert.rejects(
      loadConfig({ env: { BERTH_STORAGE_DRIVER: 'azure', BERTH_STORAGE_AZURE_CONTAINER: 'c', BERTH_STORAGE_AZURE_ACCOUNT_NAME: 'a', BERTH_STORAGE_AZURE_SAS_TOKEN: 'sig=x', BERTH_STORAGE_AZURE_REDIRECT: 'true' } }),
      /storage\.azure\.redirect: redirect needs the account key/,
    )
  })

  it('credential: default is accepted with an account name or endpoint, and the driver then signs with a token credential (DefaultAzureCredential)', async () => {
    const env = { BERTH_STORAGE_DRIVER: 'azure', BERTH_STORAGE_AZURE_CONTAINER: 'c', BERTH_STORAGE_AZURE_CREDENTIAL: 'default' }
    assert.equal((await loadConfig({ env: { ...env, BERTH_STORAGE_AZURE_ACCOUNT_NAME: 'acct' } })).config.storage.azure.credential, 'default')
    assert.equal((await loadConfig({ env: { ...env, BERTH_STORAGE_AZURE_ENDPOINT: 'https://acct.blob.core.windows.net' } })).config.storage.azure.credential, 'default')
    await assert.rejects(loadConfig({ env }), /storage\.azure: .*needs credentials/)
    await assert.rejects(loadConfig({ env: { ...env, BERTH_STORAGE_AZURE_ACCOUNT_NAME: 'acct', BERTH_STORAGE_AZURE_CREDENTIAL: 'managed' } }), /storage\.azure\.credential/)
    await assert.rejects(
      loadConfig({ env: { ...env, BERTH_STORAGE_AZURE_ACCOUNT_NAME: 'acct', BERTH_STORAGE_AZURE_ACCOUNT_KEY: 'k', BERTH_STORAGE_AZURE_REDIRECT: 'true' } }),
      /storage\.azure\.redirect: redirect needs the account key.*not available with credential: default/,
    )
    const credential = await defaultAzureCredential()
    assert.equal(credential.constructor.name, 'DefaultAzureCredential')
    assert.equal(typeof credential.getToken, 'function')
    // The service client signs with it (not a shared key, not anonymous), on the account's URL.
    const driver = new AzureDriver({ container: 'c', accountName: 'acct', accountKey: AZURITE_KEY, tokenCredential: credential })
    assert.strictEqual(driver.container.credential, credential)
    assert.equal(driver.container.url, 'https://acct.blob.core.windows.net/c')
    assert.throws(() => new AzureDriver({ container: 'c', accountName: 'acct', tokenCredential: credential, redirectExpiresIn: 60 }), /redirect needs the account key/)
  })

  it('names storage.azure.container when the container does not exist, and creates it with createContainer', async () => {
    const config = await testConfig({ storage: azureStorageConfig(azurite.endpoint, 'no-such-container') })
    try {
      await assert.rejects(buildApp(config), (err: Error) => {
        assert.match(err.message, /^storage\.azure\.container: container "no-such-container" does not exist/)
        assert.ok(!err.message.includes('\n'))
        return true
      })
    } finally {
      await rm(config.dataDir, { recursive: true, force: true })
    }
    const s = await startServer({ storage: azureStorageConfig(azurite.endpoint, 'made-by-berth', { createContainer: true }) })
    await s.close()
  })

  it('names the credentials when the store refuses them', async () => {
    const container = await azurite.createContainer()
    const config = await testConfig({ storage: azureStorageConfig(azurite.endpoint, container, { accountKey: Buffer.from('wrong').toString('base64') }) })
    try {
      await assert.rejects(buildApp(config), /^StorageConfigError: storage\.azure credentials: refused|storage\.azure credentials: refused/)
    } finally {
      await rm(config.dataDir, { recursive: true, force: true })
    }
  })
})

describe('Azure storage: Azurite killed and restarted mid-push', () => {
  // Azurite on disk (so a restart keeps what it had), the same port after the restart.
  let store: TestAzurite
  before(async () => {
    store = await startAzurite({ persistent: true })
  })
  after(() => store.close())

  /** A status that is a clean outcome: success, or an OCI error code (never a bare 500). */
  async function clean(res: Response, success: number): Promise<boolean> {
    if (res.status === success) return true
    assert.notEqual(res.status, 500, `a bare 500: ${await res.clone().text()}`)
    const body = (await res.json()) as { errors?: { code?: string }[] }
    assert.ok(body.errors?.[0]?.code, `an error code with ${res.status}`)
    return false
  }

  it('a streamed push fails cleanly or completes; the digest is then absent or whole, and a retry succeeds', async () => {
    const container = await store.createContainer()
    const s = await startServer({ log: { level: process.env.AZ_DEBUG ? 'warn' : 'silent' }, storage: azureStorageConfig(store.endpoint, container, { maxAttempts: 2, requestTimeout: '5s' }) }, { logStream: process.stderr })
    try {
      // Azurite writes its index to disk every 5 s: a kill before that would lose the container.
      await new Promise((ok) => setTimeout(ok, 6000))
      const data = randomBytes(24 * MiB)
      const digest = sha256(data)
      let sent = 0
      // Kill Azurite once 10 MiB went out; the rest of the body keeps coming.
      const body = Readable.from(
        (async function* () {
          for (let at = 0; at < data.length; at += MiB) {
            if (sent === 10 * MiB) await store.kill()
            sent += MiB
            yield data.subarray(at, at + MiB)
          }
        })(),
      )
      let outcome: Response | Error
      try {
        outcome = await fetch(`${s.url}/v2/kill/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: Readable.toWeb(body) as unknown as BodyInit, duplex: 'half', headers: { 'content-type': 'application/octet-stream' } } as RequestInit)
      } catch (err) {
        // The server may answer (503) and close before it read the whole body.
        outcome = err as Error
      }
      if (outcome instanceof Response) await clean(outcome, 201)
      await store.restart()
      const got = await pull(s.url, 'kill/app', digest)
      assert.ok(got === 404 || got.equals(data), 'absent, or exactly the pushed bytes')
      // The client's retry completes the push.
      const retry = await fetch(`${s.url}/v2/kill/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(data), headers: { 'content-type': 'application/octet-stream' } })
      assert.equal(retry.status, 201)
      assert.deepEqual(await pull(s.url, 'kill/app', digest), data)
    } finally {
      await s.close()
    }
  })

  it('a chunked push with Azurite down at the close fails with 503, then completes or fails cleanly, never half-written', async () => {
    const container = await store.createContainer()
    const s = await startServer({ log: { level: process.env.AZ_DEBUG ? 'warn' : 'silent' }, storage: azureStorageConfig(store.endpoint, container, { maxAttempts: 2, requestTimeout: '5s' }) }, { logStream: process.stderr })
    try {
      await new Promise((ok) => setTimeout(ok, 6000))
      const data = randomBytes(12 * MiB)
      const digest = sha256(data)
      const loc = await startUpload(s.url, 'kill/chunked')
      assert.equal((await patch(s.url, loc, data.subarray(0, 9 * MiB), 0)).status, 202)
      await store.kill()
      const failed = await patch(s.url, loc, data.subarray(9 * MiB), 9 * MiB)
      await expectOciError(failed, 'UNAVAILABLE', 503)
      assert.ok(failed.headers.get('retry-after'))
      await expectOciError(await fetch(`${s.url}${loc}?digest=${digest}`, { method: 'PUT' }), 'UNAVAILABLE', 503)
      await store.restart()
      assert.equal(await pull(s.url, 'kill/chunked', digest), 404)
      // The client resumes from where the session says it is.
      const status = await fetch(`${s.url}${loc}`)
      const range = status.headers.get('range') ?? ''
      const next = status.status === 204 ? Number(range.split('-')[1]) + 1 : 0
      let completed = false
      if (status.status === 204) {
        const rest = await patch(s.url, loc, data.subarray(next), next)
        if (await clean(rest, 202)) completed = await clean(await fetch(`${s.url}${loc}?digest=${digest}`, { method: 'PUT' }), 201)
      }
      const got = await pull(s.url, 'kill/chunked', digest)
      if (completed) assert.deepEqual(got, data)
      else assert.equal(got, 404)
      const hash = got === 404 ? undefined : createHash('sha256').update(got).digest('hex')
      assert.ok(hash === undefined || `sha256:${hash}` === digest)
    } finally {
      await s.close()
    }
  })
})
