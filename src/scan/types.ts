/** An OSV ecosystem name as OSV spells it; OS ones carry the release: 'Debian:12', 'Alpine:v3.20', 'Ubuntu:22.04', 'Red Hat', 'Rocky Linux:9' … */
export type OsvEcosystem = string
export interface ScannedPackage {
  name: string            // binary package name (dpkg Package:, apk P:, npm name, PyPI normalised name, Go module path, maven group:artifact, …)
  version: string         // installed version exactly as the package database says
  ecosystem: OsvEcosystem // e.g. 'Debian:12', 'npm', 'PyPI', 'Go', 'Maven', 'crates.io', 'RubyGems', 'Packagist', 'Alpine:v3.20'
  purl: string            // from packageurl-js, e.g. pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12
  licenses: string[]      // SPDX ids or expressions where declared
  layer: string           // digest of the layer the package came from (the last layer that wrote its record)
  path: string            // file it was read from, e.g. /var/lib/dpkg/status
  source?: { name: string; version?: string } // dpkg Source:, apk o: (OSV Debian/Alpine advisories name SOURCE packages)
}
export interface Inventory {
  os?: { id: string; versionId: string; prettyName?: string }   // from /etc/os-release (or /usr/lib/os-release)
  packages: ScannedPackage[]
  /** what was found but not read, said plainly, e.g. 'rpm BerkeleyDB database /var/lib/rpm/Packages (not read)' */
  notes: string[]
}
export type Severity = 'critical' | 'high' | 'medium' | 'low' | 'unknown'
export interface Finding {
  id: string              // OSV id (e.g. 'CVE-2021-44228', 'GHSA-…', 'DSA-…')
  aliases: string[]
  package: string
  version: string
  fixedVersion: string | null
  severity: Severity
  layer: string
  ecosystem: OsvEcosystem
  purl: string
  summary?: string
}
