import type { Registry } from '../../registry/registry.js'
import { RegistryError } from '../../errors/registry-error.js'
import { blobHead, openBlob } from '../../browse/blob-reader.js'
import { describe, type Descriptor } from '../../browse/describe.js'
import { removedBy } from '../../browse/file-service.js'
import { DEFAULT_LIMITS, walkLayer, type IndexLimits } from '../../browse/layer-index.js'
import type { Inventory } from '../types.js'
import { apkReader } from './apk.js'
import { dpkgReader } from './dpkg.js'
import { finish, type Found } from './finish.js'
import { goBinaryReader } from './go-binary.js'
import { javaReader } from './java.js'
import { cargoReader, composerReader, gemReader } from './lockfiles.js'
import { allOf, type FileReader, type FileSink, type ParseResult } from './model.js'
import { npmReader } from './npm.js'
import { osReleaseReader } from './os-release.js'
import { pythonReader } from './python.js'
import { rpmLegacyReader } from './rpm.js'
import { rpmdbReader } from './rpmdb.js'
import { rustBinarySink } from './rust-binary.js'

// The package inventory of an image: its layers are streamed in order through the layer
// browser's tar reader (gzip, zstd or plain; bounded in entries, bytes, depth and time), and
// only the files a package reader wants are read, each into its reader as it streams by.
// Readers keep what they parsed, not the file. A layer's whiteouts and opaque directories
// remove what the layers below put there, and a later layer's copy of a file replaces the
// earlier one, so each package is reported from the last layer that wrote its record.

/** An executable is read once for both Go's build info and `cargo auditable`'s dependency list. */
const executableReader: FileReader = {
  name: 'executable',
  wants: goBinaryReader.wants,
  sink: (path, size) => allOf([goBinaryReader.sink(path, size), rustBinarySink(path)]),
}

/** In the order they are asked: the first that wants a file reads it (executables last). */
export const READERS: FileReader[] = [osReleaseReader, dpkgReader, apkReader, rpmLegacyReader, rpmdbReader, npmReader, pythonReader, javaReader, cargoReader, composerReader, gemReader, executableReader]

const LAYER_TYPE = /(^application\/vnd\.(oci\.image\.layer\.v1\.tar|docker\.image\.rootfs\.(foreign\.)?diff\.tar))(\+gzip|\+zstd|\.gzip)?$/

export async function buildInventory(registry: Registry, repository: string, manifestDigest: string, opts: { limits?: Partial<IndexLimits> } = {}): Promise<Inventory> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits }
  const row = await registry.manifests.get(repository, manifestDigest)
  const d = describe(row.content ?? Buffer.alloc(0), row.mediaType)
  if (d.kind === 'index') throw RegistryError.invalidField('digest', `${row.digest} is an index: take the inventory of each of its manifests`)
  const files = new Map<string, Found>()
  const notes: string[] = []
  for (const layer of d.layers) {
    if (!LAYER_TYPE.test(layer.mediaType)) {
      notes.push(`layer ${layer.digest} of media type ${layer.mediaType} is not a file system layer (not read)`)
      continue
    }
    await readLayer(registry, repository, layer, limits, files)
  }
  return finish(files, notes)
}

/** Reads one layer into `files`: its whiteouts applied to what is there, then its own package files added. */
async function readLayer(registry: Registry, repository: string, layer: Descriptor, limits: IndexLimits, files: Map<string, Found>): Promise<void> {
  const mine = new Map<string, ParseResult>()
  const replaced = new Set<string>()
  const gone = new Set<string>()
  const hidden = new Set<string>()
  let current: { path: string; sink: FileSink } | undefined
  const close = () => {
    if (!current) return
    mine.set(current.path, current.sink.end())
    current = undefined
  }
  const head = await blobHead(registry, repository, layer.digest)
  try {
    await walkLayer(
      layer.digest,
      () => openBlob(registry, repository, layer.digest),
      head,
      limits,
      (h, path) => {
        close()
        if (path === '') return 'skip'
        const slash = path.lastIndexOf('/')
        const dir = slash === -1 ? '' : path.slice(0, slash)
        const base = path.slice(slash + 1)
        if (base === '.wh..wh..opq') {
          hidden.add(dir)
          return 'skip'
        }
        if (base.startsWith('.wh.')) {
          gone.add(dir === '' ? base.slice(4) : `${dir}/${base.slice(4)}`)
          return 'skip'
        }
        // any entry at a path replaces what a lower layer (or an earlier entry) had there
        replaced.add(path)
        mine.delete(path)
        if (h.type === 'file' || h.type === 'contiguous-file') {
          const size = h.size ?? 0
          const reader = READERS.find((r) => r.wants(path, size, h.mode ?? 0))
          if (reader) {
            current = { path, sink: reader.sink(path, size) }
            return 'read'
          }
        }
        return 'skip'
      },
      (chunk) => current?.sink.write(chunk),
    )
  } catch (err) {
    current?.sink.abort?.()
    throw err
  }
  close()
  for (const path of files.keys()) if (replaced.has(path) || removedBy(path, gone, hidden)) files.delete(path)
  for (const [path, result] of mine) files.set(path, { layer: layer.digest, result })
}
