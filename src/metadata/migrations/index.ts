import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'
import * as m0001 from './0001-init.js'
import * as m0002 from './0002-auth.js'
import * as m0003 from './0003-gc.js'
import * as m0004 from './0004-change-notify.js'
import * as m0005 from './0005-policies.js'
import * as m0006 from './0006-jobs.js'
import * as m0007 from './0007-auth-notify.js'
import * as m0008 from './0008-credentials.js'
import * as m0009 from './0009-change-kinds.js'
import * as m0010 from './0010-registries.js'
import * as m0012 from './0012-replication.js'
import * as m0013 from './0013-ui-browse.js'
import * as m0011 from './0011-proxy.js'
import * as m0014 from './0014-events.js'
import * as m0017 from './0017-trust.js'
import * as m0018 from './0018-limits.js'
import * as m0015 from './0015-vulndb.js'
import * as m0016 from './0016-scan.js'
import * as m0021 from './0021-upload-slots.js'
import * as m0019 from './0019-scanners.js'
import * as m0022 from './0022-adoption-marks.js'
import * as m0028 from './0028-reference-children.js'
import * as m0023 from './0023-layouts.js'
import * as m0027 from './0027-change-counters.js'
import * as m0029 from './0029-delivery-history.js'

export interface MigrationStep {
  up(db: Kysely<unknown>, caps: Capabilities): Promise<void>
}

/** Ordered and append-only: never edit a released step, add a new one. */
export const MIGRATIONS: Record<string, MigrationStep> = {
  '0001-init': m0001,
  '0002-auth': m0002,
  '0003-gc': m0003,
  '0004-change-notify': m0004,
  '0005-policies': m0005,
  '0006-jobs': m0006,
  '0007-auth-notify': m0007,
  '0008-credentials': m0008,
  '0009-change-kinds': m0009,
  '0010-registries': m0010,
  '0012-replication': m0012,
  '0013-ui-browse': m0013,
  '0011-proxy': m0011,
  '0014-events': m0014,
  '0015-vulndb': m0015,
  '0016-scan': m0016,
  '0017-trust': m0017,
  '0018-limits': m0018,
  '0021-upload-slots': m0021,
  '0019-scanners': m0019,
  '0022-adoption-marks': m0022,
  '0028-reference-children': m0028,
  '0023-layouts': m0023,
  '0027-change-counters': m0027,
  '0029-delivery-history': m0029,
}
