import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import type * as CycloneDX from '@cyclonedx/cyclonedx-library'
import type { Inventory, ScannedPackage } from '../types.js'

type CDXLib = typeof CycloneDX

// SBOMs of an image's inventory: SPDX 2.3 JSON (written here: no maintained JavaScript library
// writes SPDX 2.3) and CycloneDX 1.6 JSON (through @cyclonedx/cyclonedx-library's models and
// serializer). Both name the image (by repository and manifest digest) as what they describe and
// every package with its purl, declared licences, and where it was found (layer and path).
// The libraries are loaded on first use: the server does not need them until an SBOM is asked for.

export interface SbomSubject {
  /** the repository, e.g. team/app */
  name: string
  /** the image manifest's digest */
  digest: string
}

export interface SbomOptions {
  /** when the document is made (now by default) */
  created?: Date
  /** the tool named as creator, e.g. berth-0.1.0 */
  tool?: string
}

export const SPDX_MEDIA_TYPE = 'application/spdx+json'
export const CYCLONEDX_MEDIA_TYPE = 'application/vnd.cyclonedx+json'

const require = createRequire(import.meta.url)
type LicenseNode = { license?: string; conjunction?: string; left?: LicenseNode; right?: LicenseNode; exception?: string }
let parseLicense: ((s: string) => LicenseNode) | undefined

/** The SPDX expression a declared licence is, or undefined when it is none (free text). */
export function spdxExpression(license: string): { expression: string; simple: boolean } | undefined {
  parseLicense ??= require('spdx-expression-parse') as (s: string) => LicenseNode
  try {
    const node = parseLicense(license.trim())
    return { expression: license.trim(), simple: node.license !== undefined && node.exception === undefined && !node.license.startsWith('LicenseRef-') }
  } catch {
    return undefined
  }
}

const TOOL = 'berth'
const iso = (d: Date) => `${d.toISOString().slice(0, 19)}Z`

function imagePurl(subject: SbomSubject): string {
  const name = subject.name.slice(subject.name.lastIndexOf('/') + 1)
  return `pkg:oci/${encodeURIComponent(name)}@${encodeURIComponent(subject.digest)}?repository_url=${encodeURIComponent(subject.name)}`
}

/** An SPDX 2.3 JSON document of the inventory. */
export function toSpdx(inv: Inventory, subject: SbomSubject, opts: SbomOptions = {}): object {
  const extracted = new Map<string, string>()
  const declared = (licenses: string[]): string => {
    if (licenses.length === 0) return 'NOASSERTION'
    const parts = licenses.map((l) => {
      const e = spdxExpression(l)
      if (e) return licenses.length > 1 && !e.simple ? `(${e.expression})` : e.expression
      // free text: a LicenseRef with the text kept in hasExtractedLicensingInfos
      let ref = [...extracted].find(([, text]) => text === l)?.[0]
      if (!ref) {
        ref = `LicenseRef-${extracted.size + 1}-${l.replace(/[^A-Za-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'text'}`
        extracted.set(ref, l)
      }
      return ref
    })
    return parts.join(' AND ')
  }
  const image = {
    SPDXID: 'SPDXRef-image',
    name: subject.name,
    versionInfo: subject.digest,
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    primaryPackagePurpose: 'CONTAINER',
    checksums: [{ algorithm: 'SHA256', checksumValue: subject.digest.replace(/^sha256:/, '') }].filter(() => subject.digest.startsWith('sha256:')),
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: imagePurl(subject) }],
    ...(inv.os ? { comment: `operating system: ${inv.os.prettyName ?? `${inv.os.id} ${inv.os.versionId}`}` } : {}),
  }
  const packages = inv.packages.map((p, i) => ({
    SPDXID: `SPDXRef-Package-${i + 1}`,
    name: p.name,
    versionInfo: p.version,
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    licenseConcluded: 'NOASSERTION',
    licenseDeclared: declared(p.licenses),
    copyrightText: 'NOASSERTION',
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: p.purl }],
    sourceInfo: `${p.ecosystem} package found in layer ${p.layer} at ${p.path}`,
    ...(p.source ? { comment: `source package ${p.source.name}${p.source.version ? ` ${p.source.version}` : ''}` } : {}),
  }))
  const created = opts.created ?? new Date()
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${subject.name}@${subject.digest}`,
    documentNamespace: `https://spdx.org/spdxdocs/${TOOL}/${encodeURIComponent(subject.name)}/${subject.digest}/${randomUUID()}`,
    creationInfo: { created: iso(created), creators: [`Tool: ${opts.tool ?? TOOL}`] },
    packages: [image, ...packages],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: 'SPDXRef-image' },
      ...packages.map((p) => ({ spdxElementId: 'SPDXRef-image', relationshipType: 'CONTAINS', relatedSpdxElement: p.SPDXID })),
    ],
    ...(extracted.size > 0 ? { hasExtractedLicensingInfos: [...extracted].map(([licenseId, extractedText]) => ({ licenseId, extractedText, name: extractedText.slice(0, 200) })) } : {}),
    ...(inv.notes.length > 0 ? { comment: inv.notes.join('\n') } : {}),
  }
}

/** A CycloneDX 1.6 JSON BOM of the inventory. */
export function toCycloneDx(inv: Inventory, subject: SbomSubject, opts: SbomOptions = {}): object {
  const CDX = require('@cyclonedx/cyclonedx-library') as CDXLib
  const bom = new CDX.Models.Bom()
  bom.serialNumber = `urn:uuid:${randomUUID()}`
  bom.metadata.timestamp = opts.created ?? new Date()
  bom.metadata.tools.components.add(new CDX.Models.Component(CDX.Enums.ComponentType.Application, opts.tool ?? TOOL))
  const image = new CDX.Models.Component(CDX.Enums.ComponentType.Container, subject.name, { version: subject.digest, bomRef: subject.digest, purl: imagePurl(subject) })
  if (inv.os) image.properties.add(new CDX.Models.Property('berth:os', `${inv.os.id} ${inv.os.versionId}`.trim()))
  for (const note of inv.notes) image.properties.add(new CDX.Models.Property('berth:note', note))
  bom.metadata.component = image
  const refs = new Map<string, number>()
  for (const p of inv.packages) {
    const seen = refs.get(p.purl) ?? 0
    refs.set(p.purl, seen + 1)
    const c = new CDX.Models.Component(CDX.Enums.ComponentType.Library, p.name, { version: p.version, bomRef: seen === 0 ? p.purl : `${p.purl}#${seen}`, purl: p.purl })
    for (const l of cycloneLicenses(CDX, p)) c.licenses.add(l)
    c.properties.add(new CDX.Models.Property('berth:ecosystem', p.ecosystem))
    c.properties.add(new CDX.Models.Property('berth:layer', p.layer))
    c.properties.add(new CDX.Models.Property('berth:path', p.path))
    if (p.source) c.properties.add(new CDX.Models.Property('berth:source', `${p.source.name}${p.source.version ? `@${p.source.version}` : ''}`))
    bom.components.add(c)
  }
  const serializer = new CDX.Serialize.JsonSerializer(new CDX.Serialize.JSON.Normalize.Factory(CDX.Spec.Spec1dot6))
  return JSON.parse(serializer.serialize(bom, { sortLists: false })) as object
}

/** CycloneDX allows either licences (ids or names) or one expression. */
function cycloneLicenses(CDX: CDXLib, p: ScannedPackage) {
  const parsed = p.licenses.map((l) => ({ text: l, spdx: spdxExpression(l) }))
  if (parsed.length === 1 && parsed[0]?.spdx && !parsed[0].spdx.simple) return [new CDX.Models.LicenseExpression(parsed[0].spdx.expression)]
  return parsed.map(({ text, spdx }) => (spdx?.simple && CDX.SPDX.isSupportedSpdxId(text.trim()) ? new CDX.Models.SpdxLicense(text.trim()) : new CDX.Models.NamedLicense(text)))
}
