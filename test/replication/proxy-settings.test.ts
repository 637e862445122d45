import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RegistryError } from '../../src/errors/registry-error.js'
import { isDockerHub, parseSettings, readSettings, settingsView, upstreamName } from '../../src/replication/proxy-settings.js'

const field = (fn: () => unknown) => {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof RegistryError)
    assert.equal(err.statusCode, 400)
    return (err.detail as { field: string }).field
  }
  assert.fail('accepted')
}

test('proxy settings: defaults, merge, validation naming the field', () => {
  const s = parseSettings({ registry: 'dockerhub' }, undefined)
  assert.deepEqual(settingsView(s), { registry: 'dockerhub', ttl: '5m', namespaces: [], default: false, prefetchPlatforms: false })
  const merged = parseSettings({ ttl: '1h', namespaces: ['docker.io', 'registry.example:5000', 'docker.io'] }, s)
  assert.deepEqual(settingsView(merged), { registry: 'dockerhub', ttl: '1h', namespaces: ['docker.io', 'registry.example:5000'], default: false, prefetchPlatforms: false })
  assert.deepEqual(readSettings(JSON.stringify(merged)), merged)
  assert.equal(field(() => parseSettings({}, undefined)), 'proxy.registry')
  assert.equal(field(() => parseSettings({ registry: 'x', ttl: '5 minutes' }, undefined)), 'proxy.ttl')
  assert.equal(field(() => parseSettings({ registry: 'x', ttl: '400d' }, undefined)), 'proxy.ttl')
  assert.equal(field(() => parseSettings({ registry: 'x', namespaces: 'docker.io' }, undefined)), 'proxy.namespaces')
  assert.equal(field(() => parseSettings({ registry: 'x', namespaces: ['https://docker.io'] }, undefined)), 'proxy.namespaces')
  assert.equal(field(() => parseSettings({ registry: 'x', namespaces: ['Docker.io'] }, undefined)), 'proxy.namespaces')
  assert.equal(field(() => parseSettings({ registry: 'x', default: 'yes' }, undefined)), 'proxy.default')
  assert.equal(field(() => parseSettings({ registry: 'x', prefetchPlatforms: 1 }, undefined)), 'proxy.prefetchPlatforms')
  assert.equal(field(() => parseSettings({ registry: 'x', ttl: '5m', extra: 1 }, undefined)), 'proxy.extra')
  assert.equal(field(() => parseSettings([], undefined)), 'proxy')
})

test("upstream names: Docker Hub's implicit library/ for one-component names", () => {
  assert.equal(isDockerHub('https://registry-1.docker.io'), true)
  assert.equal(isDockerHub('https://index.docker.io/'), true)
  assert.equal(isDockerHub('https://docker.io'), true)
  assert.equal(isDockerHub('https://ghcr.io'), false)
  assert.equal(upstreamName('hub/alpine', 'hub', true), 'library/alpine')
  assert.equal(upstreamName('hub/library/alpine', 'hub', true), 'library/alpine')
  assert.equal(upstreamName('hub/bitnami/redis', 'hub', true), 'bitnami/redis')
  assert.equal(upstreamName('ghcr/alpine', 'ghcr', false), 'alpine')
})
