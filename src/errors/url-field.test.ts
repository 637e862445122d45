import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { RegistryError } from './registry-error.js'
import { parseHttpUrl } from './url-field.js'

const registry = { path: 'none', credentials: 'username and password' } as const
const base = { path: 'base', credentials: 'auth' } as const

function refused(value: unknown, rules: typeof registry | typeof base): string {
  try {
    parseHttpUrl(value, 'url', rules)
  } catch (err) {
    assert.ok(err instanceof RegistryError)
    assert.equal(err.statusCode, 400)
    assert.equal(err.code, 'INVALID_FIELD')
    assert.deepEqual(err.detail, { field: 'url' })
    return err.message
  }
  assert.fail(`${String(value)} was accepted`)
}

describe('parseHttpUrl', () => {
  it('keeps the origin of a registry URL and a base path without its trailing slash', () => {
    assert.equal(parseHttpUrl('https://Registry.Example:5000/', 'url', registry), 'https://registry.example:5000')
    assert.equal(parseHttpUrl('http://scanner:8080/harbor/adapter//', 'url', base), 'http://scanner:8080/harbor/adapter')
    assert.equal(parseHttpUrl('http://scanner:8080', 'url', base), 'http://scanner:8080')
  })

  it('refuses what Berth would not call, naming the field and what to do instead', () => {
    assert.match(refused(undefined, registry), /url.*required/)
    assert.match(refused('x'.repeat(2049), registry), /required/)
    assert.match(refused('not a url', registry), /not a URL/)
    assert.match(refused('ftp://host', registry), /must be http:\/\/ or https:\/\/ \(not ftp:\)/)
    assert.match(refused('https://me:secret@host', registry), /use username and password/)
    assert.match(refused('https://me@host/x', base), /use auth/)
    assert.match(refused('https://host/v2', registry), /no path/)
    assert.match(refused('https://host/?q=1', base), /no query or fragment/)
    assert.match(refused('https://host/#f', registry), /no query or fragment/)
  })
})
