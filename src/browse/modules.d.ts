// Types of the two untyped packages the browser uses (only what it calls).

declare module 'semver' {
  export class SemVer {
    readonly version: string
    readonly prerelease: ReadonlyArray<string | number>
  }
  export function parse(version: string, options?: { loose?: boolean }): SemVer | null
  export function compare(a: SemVer, b: SemVer): -1 | 0 | 1
}

declare module 'tar-stream' {
  import type { Readable, Writable } from 'node:stream'
  export interface Headers {
    name: string
    size?: number
    mode?: number
    mtime?: Date
    type?: 'file' | 'link' | 'symlink' | 'directory' | 'block-device' | 'character-device' | 'fifo' | 'contiguous-file' | 'pax-header' | 'pax-global-header' | 'gnu-long-link-path' | 'gnu-long-path' | null
    linkname?: string | null
    uid?: number
    gid?: number
    uname?: string
    gname?: string
    devmajor?: number
    devminor?: number
    pax?: Record<string, string>
  }
  export interface Extract extends Writable {
    on(event: 'entry', listener: (headers: Headers, stream: Readable, next: (err?: unknown) => void) => void): this
    on(event: 'finish' | 'close', listener: () => void): this
    on(event: 'error', listener: (err: Error) => void): this
    destroy(err?: Error): this
  }
  export interface Pack extends Readable {
    entry(headers: Headers, buffer?: string | Buffer, callback?: (err?: unknown) => void): Writable
    finalize(): void
  }
  export function extract(opts?: { allowUnknownFormat?: boolean; filenameEncoding?: string }): Extract
  export function pack(): Pack
}
