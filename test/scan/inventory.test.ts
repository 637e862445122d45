import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { gzipSync } from 'node:zlib'
import { execFileSync } from 'node:child_process'
import { buildInventory } from '../../src/scan/inventory/index.js'
import type { Inventory, ScannedPackage } from '../../src/scan/types.js'
import { pushLayers, tarOf } from '../helpers/layers.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { buildGoBinary } from './go-fixture.js'

// The package inventory of images pushed to a real Berth, built from generated package
// databases: the OS from os-release, dpkg (status and status.d), apk, npm, Python, a Go
// binary compiled here; whiteouts and opaque directories removing packages; later layers
// replacing a database.

const DEBIAN_OS = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n'
const ALPINE_OS = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n'

const para = (fields: Record<string, string>) => Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n'
const DPKG_STATUS = [
  para({ Package: 'base-files', Status: 'install ok installed', Architecture: 'amd64', Version: '12.4+deb12u5', Description: 'Debian base system miscellaneous files\n This package contains the basic filesystem hierarchy.' }),
  para({ Package: 'libssl3', Status: 'install ok installed', Architecture: 'amd64', Source: 'openssl', Version: '3.0.11-1~deb12u2' }),
  para({ Package: 'zlib1g', Status: 'install ok installed', Architecture: 'amd64', Source: 'zlib (1:1.2.13.dfsg-1)', Version: '1:1.2.13.dfsg-1+b1' }),
  para({ Package: 'oldpkg', Status: 'deinstall ok config-files', Architecture: 'all', Version: '1.0' }),
].join('\n')
/** what `apt-get remove zlib1g` leaves: a rewritten status */
const DPKG_STATUS_AFTER = [DPKG_STATUS.split('\n\n')[0], DPKG_STATUS.split('\n\n')[1]].join('\n\n')

const APK_DB = [
  'C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\nS:407000\nT:the musl c library\nL:MIT\no:musl\nm:Natanael Copa\n',
  'C:Q1def=\nP:libcrypto3\nV:3.3.2-r0\nA:x86_64\nL:Apache-2.0\no:openssl\n',
  'P:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\no:busybox\n',
].join('\n')

const LOCK = JSON.stringify({
  name: 'app',
  lockfileVersion: 3,
  packages: {
    '': { name: 'app', version: '1.0.0', dependencies: { express: '^4.18.2', lodash: '^4.17.20' } },
    'node_modules/express': { version: '4.18.2', license: 'MIT' },
    'node_modules/lodash': { version: '4.17.20', license: 'MIT' },
    'node_modules/@types/node': { version: '20.1.0', dev: true, license: 'MIT' },
    'node_modules/express/node_modules/debug': { version: '2.6.9', license: 'MIT' },
  },
})

const pkg = (p: Omit<ScannedPackage, 'licenses'> & { licenses?: string[] }): ScannedPackage => ({ licenses: [], ...p })

describe('package inventory of an image', () => {
  let s: TestServer
  let go: { binary: Buffer; goVersion: string }
  before(async () => {
    s = await startServer()
    go = await buildGoBinary()
  })
  after(() => s.close())

  it('reads a Debian image: os-release (through its symlink), dpkg, status.d, npm, Python and a Go binary; whiteouts and a rewritten status applied', async () => {
    const layer0 = await tarOf([
      { name: 'usr/lib/os-release', body: DEBIAN_OS },
      { name: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' },
      { name: 'var/lib/dpkg/status', body: DPKG_STATUS },
      { name: 'var/lib/dpkg/status.d/tzdata', body: para({ Package: 'tzdata', Version: '2024a-0+deb12u1', Architecture: 'all' }) },
      { name: 'var/lib/dpkg/status.d/tzdata.md5sums', body: 'abc  usr/share/zoneinfo/UTC\n' },
      { name: 'usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA', body: 'Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n\nPython 2 and 3 compatibility utilities\n' },
      { name: 'usr/lib/python3/dist-packages/Requests-2.31.0.dist-info/METADATA', body: 'Metadata-Version: 2.4\nName: Requests\nVersion: 2.31.0\nLicense-Expression: Apache-2.0\nClassifier: License :: OSI Approved :: Apache Software License\n\nLicense: not a header\n' },
      { name: 'opt/py/legacy.egg-info/PKG-INFO', body: 'Metadata-Version: 1.0\nName: zope.interface\nVersion: 5.4.0\nLicense: UNKNOWN\nClassifier: License :: OSI Approved :: Zope Public License\n' },
    ])
    const layer1 = await tarOf([
      { name: 'app/package-lock.json', body: LOCK },
      { name: 'app/package.json', body: JSON.stringify({ name: 'app', version: '1.0.0' }) },
      { name: 'app/node_modules/express/package.json', body: JSON.stringify({ name: 'express', version: '4.18.2', license: 'MIT' }) },
      { name: 'app/node_modules/express/lib/package.json', body: JSON.stringify({ name: 'not-a-package', version: '0.0.0' }) },
      { name: 'app/node_modules/express/node_modules/debug/package.json', body: JSON.stringify({ name: 'debug', version: '2.6.9', licenses: [{ type: 'MIT' }] }) },
      { name: 'usr/local/bin/hello', body: go.binary, mode: 0o755 },
      { name: 'usr/local/bin/script.sh', body: '#!/bin/sh\necho "\xff Go buildinf: not a binary"\n' + 'x'.repeat(2000), mode: 0o755 },
    ])
    const layer2 = await tarOf([
      { name: 'usr/lib/python3/dist-packages/.wh.six-1.16.0.dist-info' },
      { name: 'opt/py/.wh..wh..opq' },
      { name: 'var/lib/dpkg/status', body: DPKG_STATUS_AFTER },
    ])
    const img = await pushLayers(s, 'team/debian', 'v1', [{ data: gzipSync(layer0) }, { data: layer1, mediaType: 'application/vnd.oci.image.layer.v1.tar' }, { data: execFileSync('zstd', ['-q', '-c'], { input: layer2 }), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }])
    const [l0, l1, l2] = img.layers as [string, string, string]
    const inv = await buildInventory(s.app.registry, 'team/debian', img.digest)
    const goStd = go.goVersion.replace(/^go/, '')
    const expected: Inventory = {
      os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
      packages: [
        pkg({ name: 'debug', version: '2.6.9', ecosystem: 'npm', purl: 'pkg:npm/debug@2.6.9', licenses: ['MIT'], layer: l1, path: '/app/node_modules/express/node_modules/debug/package.json' }),
        pkg({ name: 'express', version: '4.18.2', ecosystem: 'npm', purl: 'pkg:npm/express@4.18.2', licenses: ['MIT'], layer: l1, path: '/app/node_modules/express/package.json' }),
        pkg({ name: 'lodash', version: '4.17.20', ecosystem: 'npm', purl: 'pkg:npm/lodash@4.17.20', licenses: ['MIT'], layer: l1, path: '/app/package-lock.json' }),
        pkg({ name: 'requests', version: '2.31.0', ecosystem: 'PyPI', purl: 'pkg:pypi/requests@2.31.0', licenses: ['Apache-2.0'], layer: l0, path: '/usr/lib/python3/dist-packages/Requests-2.31.0.dist-info/METADATA' }),
        pkg({ name: 'example.com/dep', version: 'v1.2.3', ecosystem: 'Go', purl: 'pkg:golang/example.com/dep@v1.2.3', layer: l1, path: '/usr/local/bin/hello' }),
        pkg({ name: 'stdlib', version: goStd, ecosystem: 'Go', purl: `pkg:golang/stdlib@${goStd}`, layer: l1, path: '/usr/local/bin/hello' }),
        pkg({ name: 'base-files', version: '12.4+deb12u5', ecosystem: 'Debian:12', purl: 'pkg:deb/debian/base-files@12.4+deb12u5?arch=amd64&distro=debian-12', layer: l2, path: '/var/lib/dpkg/status' }),
        pkg({ name: 'libssl3', version: '3.0.11-1~deb12u2', ecosystem: 'Debian:12', purl: 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12', layer: l2, path: '/var/lib/dpkg/status', source: { name: 'openssl', version: '3.0.11-1~deb12u2' } }),
        pkg({ name: 'tzdata', version: '2024a-0+deb12u1', ecosystem: 'Debian:12', purl: 'pkg:deb/debian/tzdata@2024a-0+deb12u1?arch=all&distro=debian-12', layer: l0, path: '/var/lib/dpkg/status.d/tzdata' }),
      ],
      notes: [],
    }
    assert.deepEqual(inv, expected)
  })

  it('reads the previous status before the layer that rewrote it: zlib1g and six are there', async () => {
    const layer0 = await tarOf([
      { name: 'etc/os-release', body: DEBIAN_OS },
      { name: 'var/lib/dpkg/status', body: DPKG_STATUS },
    ])
    const img = await pushLayers(s, 'team/debian', 'base', [{ data: gzipSync(layer0) }])
    const inv = await buildInventory(s.app.registry, 'team/debian', img.digest)
    assert.deepEqual(inv.packages.map((p) => [p.name, p.version, p.source?.name, p.source?.version]), [
      ['base-files', '12.4+deb12u5', undefined, undefined],
      ['libssl3', '3.0.11-1~deb12u2', 'openssl', '3.0.11-1~deb12u2'],
      ['zlib1g', '1:1.2.13.dfsg-1+b1', 'zlib', '1:1.2.13.dfsg-1'],
    ])
  })

  it('reads an Alpine image: apk installed database with licences and origins', async () => {
    const layer = await tarOf([
      { name: 'etc/os-release', body: ALPINE_OS },
      { name: 'lib/apk/db/installed', body: APK_DB },
    ])
    const img = await pushLayers(s, 'team/alpine', 'v1', [{ data: gzipSync(layer) }])
    const inv = await buildInventory(s.app.registry, 'team/alpine', img.digest)
    const l = img.layers[0] as string
    assert.deepEqual(inv, {
      os: { id: 'alpine', versionId: '3.20.3', prettyName: 'Alpine Linux v3.20' },
      packages: [
        pkg({ name: 'musl', version: '1.2.5-r0', ecosystem: 'Alpine:v3.20', purl: 'pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3', licenses: ['MIT'], layer: l, path: '/lib/apk/db/installed', source: { name: 'musl', version: '1.2.5-r0' } }),
        pkg({ name: 'libcrypto3', version: '3.3.2-r0', ecosystem: 'Alpine:v3.20', purl: 'pkg:apk/alpine/libcrypto3@3.3.2-r0?arch=x86_64&distro=alpine-3.20.3', licenses: ['Apache-2.0'], layer: l, path: '/lib/apk/db/installed', source: { name: 'openssl', version: '3.3.2-r0' } }),
        pkg({ name: 'busybox', version: '1.36.1-r29', ecosystem: 'Alpine:v3.20', purl: 'pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64&distro=alpine-3.20.3', licenses: ['GPL-2.0-only'], layer: l, path: '/lib/apk/db/installed', source: { name: 'busybox', version: '1.36.1-r29' } }),
      ],
      notes: [],
    } satisfies Inventory)
  })
})
