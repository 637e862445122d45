// The Helm chart in deploy/helm/berth: `helm lint` and `helm template` in both modes, what each
// mode renders (StatefulSet + PVC, or Deployment + HPA), secrets only through secretKeyRef, and
// every probe, Service, Ingress and ServiceMonitor port resolved to a container port and asked on
// a running Berth (its path must answer 200 there). The chart is rendered with the ports that
// Berth got, so what is checked is exactly what a kubelet would call.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'
import { loadConfig } from '../../src/config/load.js'
import { ensureHelm } from '../helpers/e2e-helm.js'
import { requireClients, run } from '../helpers/e2e-process.js'
import { startServer, type TestServer } from '../helpers/server.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CHART = join(ROOT, 'deploy', 'helm', 'berth')

const helmBinary = await ensureHelm().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
const skip = requireClients('helm chart', [helmBinary instanceof Error ? `helm is not available: ${helmBinary.message.split('\n')[0]}` : undefined])

// helm keeps its config and cache under HOME: a folder of its own, never the user's.
const helmEnv = { ...process.env, HOME: join(ROOT, '.cache', 'helm'), HELM_CACHE_HOME: join(ROOT, '.cache', 'helm', 'cache'), HELM_CONFIG_HOME: join(ROOT, '.cache', 'helm', 'config') }

function helm(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(helmBinary as string, args, { env: helmEnv })
}

const STATELESS = ['--set', 'mode=stateless', '--set', 's3.bucket=berth', '--set', 's3.endpoint=http://minio:9000', '--set', 's3.forcePathStyle=true', '--set', 'existingSecret=berth-secrets']

type Doc = { kind: string; metadata: { name: string }; spec: Record<string, unknown> } & Record<string, unknown>
interface Container {
  ports: { name: string; containerPort: number }[]
  env: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } }[]
  startupProbe: Probe
  livenessProbe: Probe
  readinessProbe: Probe
  securityContext: Record<string, unknown>
  volumeMounts: { name: string; mountPath: string }[]
}
interface Probe {
  httpGet: { path: string; port: string | number }
}

async function render(args: string[]): Promise<Doc[]> {
  const { stdout } = await helm(['template', 'reg', CHART, ...args])
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as Doc | null)
    .filter((d): d is Doc => d !== null)
}

function one(docs: Doc[], kind: string): Doc {
  const found = docs.filter((d) => d.kind === kind)
  assert.equal(found.length, 1, `one ${kind} rendered (kinds: ${docs.map((d) => d.kind).join(', ')})`)
  return found[0]!
}

function containerOf(workload: Doc): Container {
  const template = workload.spec.template as { spec: { containers: Container[] } }
  assert.equal(template.spec.containers.length, 1)
  return template.spec.containers[0]!
}

/** A port of a probe or a Service's targetPort (a name or a number) as a container port number. */
function containerPort(c: Container, port: string | number): number {
  if (typeof port === 'number') return port
  const found = c.ports.find((p) => p.name === port)
  assert.ok(found, `port ${port} is a container port (${c.ports.map((p) => p.name).join(', ')})`)
  return found.containerPort
}

describe('the Helm chart', { skip }, () => {
  let server: TestServer
  let httpPort: number
  let metricsPort: number

  before(async () => {
    // The chart's metrics.port turns on Berth's separate metrics listener (metrics.addr).
    server = await startServer({ metrics: { enabled: true, addr: '127.0.0.1:0' } })
    httpPort = Number(new URL(server.url).port)
    const listener = server.app.http.metricsListener?.address()
    assert.ok(listener && typeof listener === 'object', 'the metrics listener is up')
    metricsPort = listener.port
  })
  after(() => server?.close())

  it('passes helm lint in both modes, and refuses a stateless mode without its bucket or database', async () => {
    await helm(['lint', '--strict', CHART])
    await helm(['lint', '--strict', CHART, ...STATELESS, '--set', 'autoscaling.enabled=true', '--set', 'ingress.enabled=true', '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.port=9090'])
    await assert.rejects(helm(['template', 'reg', CHART, '--set', 'mode=stateless', '--set', 'existingSecret=s']), /mode stateless stores blobs in S3: set s3.bucket/)
    await assert.rejects(helm(['template', 'reg', CHART, '--set', 'mode=stateless', '--set', 's3.bucket=b']), /keeps metadata in PostgreSQL: set existingSecret/)
    await assert.rejects(helm(['template', 'reg', CHART, '--set', 'mode=cluster']), /mode must be embedded or stateless/)
  })

  it('embedded mode: one StatefulSet pod with a PersistentVolumeClaim on /data, no Deployment or HPA', async () => {
    const docs = await render([])
    const sts = one(docs, 'StatefulSet')
    assert.equal(sts.spec.replicas, 1)
    const claims = sts.spec.volumeClaimTemplates as { metadata: { name: string }; spec: { resources: { requests: { storage: string } } } }[]
    assert.deepEqual(claims.map((c) => [c.metadata.name, c.spec.resources.requests.storage]), [['data', '20Gi']])
    const c = containerOf(sts)
    assert.deepEqual(c.volumeMounts.find((m) => m.name === 'data')?.mountPath, '/data')
    assert.deepEqual(docs.filter((d) => d.kind === 'Deployment' || d.kind === 'HorizontalPodAutoscaler'), [])
    assert.equal(c.securityContext.readOnlyRootFilesystem, true)
    assert.equal(c.securityContext.allowPrivilegeEscalation, false)
  })

  it('stateless mode: a Deployment scaled by an HPA, PostgreSQL + S3 settings, secrets only from the Secret', async () => {
    const docs = await render([...STATELESS, '--set', 'autoscaling.enabled=true', '--set', 'autoscaling.maxReplicas=6'])
    const deployment = one(docs, 'Deployment')
    assert.equal(deployment.spec.replicas, undefined, 'the HPA owns the replica count')
    const hpa = one(docs, 'HorizontalPodAutoscaler')
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name })
    assert.equal(hpa.spec.maxReplicas, 6)
    assert.deepEqual(docs.filter((d) => d.kind === 'StatefulSet' || d.kind === 'Secret'), [], 'no StatefulSet; the existing Secret is used, none made')
    const c = containerOf(deployment)
    const fromSecret = Object.fromEntries(c.env.filter((e) => e.valueFrom).map((e) => [e.name, e.valueFrom!.secretKeyRef]))
    assert.deepEqual(fromSecret.BERTH_DATABASE_URL, { name: 'berth-secrets', key: 'database-url', optional: false })
    assert.deepEqual(fromSecret.BERTH_SECRETS_KEY, { name: 'berth-secrets', key: 'secrets-key', optional: false })
    assert.equal(fromSecret.BERTH_STORAGE_S3_SECRET_ACCESS_KEY?.name, 'berth-secrets')
    assert.equal(fromSecret.BERTH_ADMIN_PASSWORD?.key, 'admin-password')
    for (const e of c.env) assert.ok(!/PASSWORD|SECRET|DATABASE_URL/.test(e.name) || e.value === undefined, `${e.name} comes from the Secret`)

    // Every BERTH_* variable the chart sets is a Berth setting, and together they make a valid config.
    const env: Record<string, string> = {}
    for (const e of c.env) env[e.name] = e.value ?? (e.name === 'BERTH_DATABASE_URL' ? 'postgres://berth:x@db:5432/berth' : 'a-secret-value-of-32-characters!!')
    const loaded = await loadConfig({ env })
    assert.deepEqual(loaded.unknownEnv, [])
    assert.equal(loaded.config.storage.driver, 's3')
    assert.equal(loaded.config.storage.s3.bucket, 'berth')
    assert.equal(loaded.config.storage.s3.forcePathStyle, true)
    assert.equal(loaded.config.dataDir, '/data')
  })

  it('makes a Secret from values only when no existingSecret is named, and rolls the pods when it changes', async () => {
    const docs = await render(['--set', 'secret.adminPassword=hunter2hunter2'])
    const secret = one(docs, 'Secret') as Doc & { data: Record<string, string> }
    assert.deepEqual(Object.keys(secret.data), ['admin-password'])
    assert.equal(Buffer.from(secret.data['admin-password']!, 'base64').toString(), 'hunter2hunter2')
    const annotations = (one(docs, 'StatefulSet').spec.template as { metadata: { annotations: Record<string, string> } }).metadata.annotations
    const other = await render(['--set', 'secret.adminPassword=another-password'])
    const otherAnnotations = (one(other, 'StatefulSet').spec.template as { metadata: { annotations: Record<string, string> } }).metadata.annotations
    assert.notEqual(annotations['checksum/secret'], otherAnnotations['checksum/secret'])
  })

  for (const mode of ['embedded', 'stateless'] as const) {
    it(`${mode} mode: every probe, Service, Ingress and ServiceMonitor port answers on a running Berth`, async () => {
      const extra = ['--set', `containerPort=${httpPort}`, '--set', `metrics.port=${metricsPort}`, '--set', 'ingress.enabled=true', '--set', 'metrics.serviceMonitor.enabled=true']
      const docs = await render([...(mode === 'stateless' ? STATELESS : []), ...extra])
      const c = containerOf(one(docs, mode === 'embedded' ? 'StatefulSet' : 'Deployment'))

      // Berth is told to listen where the probes look.
      const env = Object.fromEntries(c.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]))
      assert.equal(env.BERTH_HTTP_ADDR, `0.0.0.0:${httpPort}`)
      assert.equal(env.BERTH_METRICS_ADDR, `0.0.0.0:${metricsPort}`)

      const asked: string[] = []
      const answers = async (port: number, path: string): Promise<void> => {
        const res = await fetch(`http://127.0.0.1:${port}${path}`)
        assert.equal(res.status, 200, `GET :${port}${path}`)
        asked.push(`${port === httpPort ? 'http' : 'metrics'}${path}`)
        await res.arrayBuffer()
      }
      const probes = [c.startupProbe, c.livenessProbe, c.readinessProbe]
      for (const p of probes) await answers(containerPort(c, p.httpGet.port), p.httpGet.path)
      assert.deepEqual(probes.map((p) => p.httpGet.path), ['/healthz', '/healthz', '/readyz'])

      const service = one(docs, 'Service') as Doc & { spec: { ports: { name: string; port: number; targetPort: string | number }[] } }
      for (const p of service.spec.ports) await answers(containerPort(c, p.targetPort), p.name === 'metrics' ? '/metrics' : '/healthz')

      const ingress = one(docs, 'Ingress') as Doc & { spec: { rules: { http: { paths: { path: string; backend: { service: { name: string; port: { name: string } } } }[] } }[] } }
      for (const rule of ingress.spec.rules) {
        for (const p of rule.http.paths) {
          assert.equal(p.backend.service.name, service.metadata.name)
          const sp = service.spec.ports.find((x) => x.name === p.backend.service.port.name)
          assert.ok(sp, `the Ingress's port ${p.backend.service.port.name} is a Service port`)
          await answers(containerPort(c, sp.targetPort), '/v2/')
        }
      }

      const monitor = one(docs, 'ServiceMonitor') as Doc & { spec: { endpoints: { port: string; path: string }[] } }
      for (const e of monitor.spec.endpoints) {
        const sp = service.spec.ports.find((x) => x.name === e.port)
        assert.ok(sp, `the ServiceMonitor's port ${e.port} is a Service port`)
        const res = await fetch(`http://127.0.0.1:${containerPort(c, sp.targetPort)}${e.path}`)
        assert.equal(res.status, 200)
        assert.match(await res.text(), /^# HELP /m, 'Prometheus text from the ServiceMonitor endpoint')
      }
      assert.deepEqual([...new Set(asked)].sort(), ['http/healthz', 'http/readyz', 'http/v2/', 'metrics/metrics'])
    })
  }
})
