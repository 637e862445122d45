import { baseName, type FileReader } from './model.js'

// RPM databases that are not read: BerkeleyDB (`Packages`, RHEL/CentOS ≤ 8, Amazon Linux 2)
// and NDB (`Packages.db`, SUSE), said in the inventory's notes so a user knows the OS packages
// of such an image are missing.

const DIRS = ['var/lib/rpm/', 'usr/lib/sysimage/rpm/']

export const rpmLegacyReader: FileReader = {
  name: 'rpm-legacy',
  wants: (path) => DIRS.some((d) => path.startsWith(d)) && (baseName(path) === 'Packages' || baseName(path) === 'Packages.db'),
  sink: (path) => ({
    write() {},
    end: () => ({ packages: [], notes: [`rpm ${baseName(path) === 'Packages' ? 'BerkeleyDB' : 'NDB'} database /${path} (not read: only the SQLite rpmdb.sqlite is)`] }),
  }),
}
