import { gzipSync } from 'node:zlib'
import { pack } from 'tar-stream'

/** A gzipped tar of the given files. */
export async function tgzOf(files: Record<string, string>): Promise<Buffer> {
  const tar = pack()
  for (const [name, text] of Object.entries(files)) tar.entry({ name }, text)
  tar.finalize()
  const chunks: Buffer[] = []
  for await (const c of tar as AsyncIterable<Buffer>) chunks.push(c)
  return gzipSync(Buffer.concat(chunks))
}

/** A minimal chart archive as `helm package` lays it out: {name}/Chart.yaml and a template. */
export async function chartArchive(name: string, version: string, more: { appVersion?: string; description?: string } = {}): Promise<Buffer> {
  const lines = ['apiVersion: v2', `name: ${name}`, `version: ${version}`, ...(more.appVersion ? [`appVersion: "${more.appVersion}"`] : []), ...(more.description ? [`description: ${more.description}`] : [])]
  return tgzOf({ [`${name}/Chart.yaml`]: `${lines.join('\n')}\n`, [`${name}/templates/cm.yaml`]: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n' })
}
