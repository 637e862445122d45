import assert from 'node:assert/strict'
import { mkdir, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { OciLayout, type Image } from '../helpers/e2e-layout.js'
import { pushFromLayout } from '../helpers/e2e-registry.js'
import { startServer } from '../helpers/server.js'
import { berth, pushMultiArch, type Pushed } from '../transfer/helpers.js'

// An OCI image layout written by `berth export` from a real Berth: team/app:v1 (an image of two
// gzip layers with known files) and team/app:multi (a two-platform index with a signature-like
// referrer). A project backed by it serves them as <project>/app.

export const MOTD = 'hello from the layout\n'
export const RUN_SH = '#!/bin/sh\necho served read-only\n'

export interface ExportedLayout {
  work: string
  /** the directory to list in layouts.allowedRoots */
  roots: string
  /** the layout directory (below roots) */
  dir: string
  v1: Image
  multi: Pushed
}

export async function exportedLayout(prefix: string): Promise<ExportedLayout> {
  const work = await mkdtemp(join(tmpdir(), prefix))
  const roots = join(work, 'roots')
  const dir = join(roots, 'usb')
  await mkdir(roots)
  const source = await startServer()
  try {
    const layout = await new OciLayout(join(work, 'src')).init()
    const v1 = await layout.addImage({
      platform: { architecture: 'amd64', os: 'linux' },
      layers: [
        [
          { path: 'etc', type: 'dir' },
          { path: 'etc/motd', data: MOTD },
          { path: 'etc/hostname', data: 'offline\n' },
        ],
        [
          { path: 'app', type: 'dir' },
          { path: 'app/run.sh', data: RUN_SH, mode: 0o755 },
        ],
      ],
    })
    await pushFromLayout(source.url, 'team/app', layout.dir, v1.descriptor, 'v1')
    const multi = await pushMultiArch(source.url, 'team/app', 'multi', join(work, 'multi'))
    const exported = await berth(['export', '--url', source.url, 'team/app:v1', 'team/app:multi', '--referrers', '--to', dir])
    assert.equal(exported.code, 0, exported.stderr)
    return { work, roots, dir, v1, multi }
  } finally {
    await source.close()
  }
}
