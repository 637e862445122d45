import type { ReplicationExecutionsTable, ReplicationTasksTable } from '../schema.js'
import type { Db } from './repositories.js'

export type ExecutionRow = ReplicationExecutionsTable
export type TaskRow = ReplicationTasksTable
export type ExecutionStatus = ExecutionRow['status']
export type TaskStatus = TaskRow['status']

export interface TaskCounts {
  total: number
  pending: number
  running: number
  succeeded: number
  skipped: number
  failed: number
  stopped: number
  bytes: number
}

/** Replication policies, executions, their tasks and the blobs known on remote registries. */
export function createReplicationRepository(db: Db) {
  return {
    // --- policies ----------------------------------------------------------------------------

    async policies(): Promise<{ name: string; definition: string; created_at: number; updated_at: number }[]> {
      return db.selectFrom('replication_policies').selectAll().orderBy('name').execute()
    },

    async policy(name: string): Promise<{ name: string; definition: string; created_at: number; updated_at: number } | undefined> {
      return db.selectFrom('replication_policies').selectAll().where('name', '=', name).executeTakeFirst()
    },

    /** false when a policy of that name exists already */
    async insertPolicy(name: string, definition: string, now: number): Promise<boolean> {
      const r = await db
        .insertInto('replication_policies')
        .values({ name, definition, created_at: now, updated_at: now })
        .onConflict((oc) => oc.column('name').doNothing())
        .executeTakeFirst()
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1
    },

    async updatePolicy(name: string, definition: string, now: number): Promise<boolean> {
      const r = await db.updateTable('replication_policies').set({ definition, updated_at: now }).where('name', '=', name).executeTakeFirst()
      return Number(r.numUpdatedRows) === 1
    },

    async deletePolicy(name: string): Promise<boolean> {
      const r = await db.deleteFrom('replication_policies').where('name', '=', name).executeTakeFirst()
      return Number(r.numDeletedRows) === 1
    },

    // --- executions --------------------------------------------------------------------------

    async insertExecution(e: { id: string; policy: string; trigger: string; scope: string | null; now: number }): Promise<void> {
      await db
        .insertInto('replication_executions')
        .values({ id: e.id, policy: e.policy, trigger: e.trigger, status: 'pending', scope: e.scope, job_id: null, attempts: 0, error: null, created_at: e.now, started_at: null, finished_at: null })
        .execute()
    },

    async setExecutionJob(id: string, jobId: string): Promise<void> {
      await db.updateTable('replication_executions').set({ job_id: jobId }).where('id', '=', id).execute()
    },

    async execution(id: string): Promise<ExecutionRow | undefined> {
      return db.selectFrom('replication_executions').selectAll().where('id', '=', id).executeTakeFirst()
    },

    async executions(policy: string, limit: number, offset: number): Promise<ExecutionRow[]> {
      return db.selectFrom('replication_executions').selectAll().where('policy', '=', policy).orderBy('created_at', 'desc').orderBy('id').limit(limit).offset(offset).execute()
    },

    /** Marks an attempt as started; false when the execution is finished or stopped already. */
    async startAttempt(id: string, now: number): Promise<boolean> {
      const r = await db
        .updateTable('replication_executions')
        .set((eb) => ({ status: 'running', attempts: eb('attempts', '+', 1), started_at: eb.fn.coalesce('started_at', eb.val(now)) }))
        .where('id', '=', id)
        .where('status', 'in', ['pending', 'running'])
        .executeTakeFirst()
      return Number(r.numUpdatedRows) === 1
    },

    /** Records an outcome unless the execution was stopped meanwhile (a stop wins). */
    async finishExecution(id: string, status: ExecutionStatus, error: string | null, now: number): Promise<boolean> {
      const r = await db
        .updateTable('replication_executions')
        .set({ status, error, finished_at: status === 'running' ? null : now })
        .where('id', '=', id)
        .where('status', 'in', ['pending', 'running'])
        .executeTakeFirst()
      return Number(r.numUpdatedRows) === 1
    },

    /** Stops a pending or running execution and its open tasks; false when it was finished. */
    async stopExecution(id: string, now: number): Promise<boolean> {
      return db.transaction().execute(async (trx) => {
        const r = await trx
          .updateTable('replication_executions')
          .set({ status: 'stopped', finished_at: now })
          .where('id', '=', id)
          .where('status', 'in', ['pending', 'running'])
          .executeTakeFirst()
        if (Number(r.numUpdatedRows) !== 1) return false
        await trx.updateTable('replication_tasks').set({ status: 'stopped', updated_at: now }).where('execution_id', '=', id).where('status', 'in', ['pending', 'running']).execute()
        return true
      })
    },

    async deleteExecutionsOf(policy: string): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const ids = trx.selectFrom('replication_executions').select('id').where('policy', '=', policy)
        await trx.deleteFrom('replication_tasks').where('execution_id', 'in', ids).execute()
        await trx.deleteFrom('replication_executions').where('policy', '=', policy).execute()
      })
    },

    // --- tasks -------------------------------------------------------------------------------

    /** Adds the tasks not there yet (a rerun finds those of its earlier attempts). */
    async addTasks(executionId: string, tasks: { kind: 'copy' | 'delete'; source: string; destination: string }[], now: number): Promise<void> {
      for (let i = 0; i < tasks.length; i += 200) {
        const values = tasks.slice(i, i + 200).map((t) => ({ execution_id: executionId, kind: t.kind, source: t.source, destination: t.destination, status: 'pending' as const, digest: null, bytes: 0, error: null, attempts: 0, updated_at: now }))
        await db.insertInto('replication_tasks').values(values).onConflict((oc) => oc.columns(['execution_id', 'kind', 'source']).doNothing()).execute()
      }
    },

    async tasks(executionId: string, limit = 10_000, offset = 0): Promise<TaskRow[]> {
      return db.selectFrom('replication_tasks').selectAll().where('execution_id', '=', executionId).orderBy('kind').orderBy('source').limit(limit).offset(offset).execute()
    },

    async updateTask(executionId: string, kind: string, source: string, set: { status: TaskStatus; digest?: string | null; bytes?: number; error?: string | null }, now: number): Promise<void> {
      await db
        .updateTable('replication_tasks')
        .set((eb) => ({ ...set, updated_at: now, ...(set.status === 'running' ? { attempts: eb('attempts', '+', 1) } : {}) }))
        .where('execution_id', '=', executionId)
        .where('kind', '=', kind as 'copy' | 'delete')
        .where('source', '=', source)
        .where('status', '!=', 'stopped')
        .execute()
    },

    async counts(executionId: string): Promise<TaskCounts> {
      const rows = await db
        .selectFrom('replication_tasks')
        .select((eb) => ['status', eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('bytes').as('bytes')])
        .where('execution_id', '=', executionId)
        .groupBy('status')
        .execute()
      const c: TaskCounts = { total: 0, pending: 0, running: 0, succeeded: 0, skipped: 0, failed: 0, stopped: 0, bytes: 0 }
      for (const r of rows) {
        c[r.status] = Number(r.n)
        c.total += Number(r.n)
        c.bytes += Number(r.bytes ?? 0)
      }
      return c
    },

    // --- blobs known on remote registries -----------------------------------------------------

    async remoteBlobRepository(registry: string, digest: string): Promise<string | undefined> {
      return (await db.selectFrom('replication_remote_blobs').select('repository').where('registry', '=', registry).where('digest', '=', digest).executeTakeFirst())?.repository
    },

    async rememberRemoteBlob(registry: string, digest: string, repository: string, now: number): Promise<void> {
      await db
        .insertInto('replication_remote_blobs')
        .values({ registry, digest, repository, updated_at: now })
        .onConflict((oc) => oc.columns(['registry', 'digest']).doUpdateSet({ repository, updated_at: now }))
        .execute()
    },

    async forgetRemoteBlobs(registry: string): Promise<void> {
      await db.deleteFrom('replication_remote_blobs').where('registry', '=', registry).execute()
    },
  }
}

export type ReplicationRepository = ReturnType<typeof createReplicationRepository>
