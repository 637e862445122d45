// The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json and rendered as a
// browsable page at /api/v1/docs (no external assets: Berth runs air-gapped).

const json = (schema: object) => ({ content: { 'application/json': { schema } } })
const problem = { $ref: '#/components/schemas/Problem' }
const errors = {
  '400': { description: 'validation error naming the field', ...json(problem) },
  '401': { description: 'not signed in', ...json(problem) },
  '403': { description: 'not allowed', ...json(problem) },
  '404': { description: 'not found', ...json(problem) },
}
const op = (summary: string, extra: object = {}) => ({ summary, responses: { '200': { description: 'OK' }, ...errors }, ...extra })
const body = (ref: string) => ({ requestBody: { required: true, ...json({ $ref: `#/components/schemas/${ref}` }) } })
const createdOp = (summary: string, ref: string) => ({ summary, ...body(ref), responses: { '201': { description: 'created' }, '409': { description: 'conflict', ...json(problem) }, ...errors } })

export const OPENAPI = {
  openapi: '3.1.0',
  info: { title: 'Berth management API', version: '1', description: 'Users, projects, members, robots, the audit log, tag retention and immutability, garbage collection, and registry endpoints. Accepts Basic credentials and the UI session cookie (with X-CSRF-Token on writes). Registry tokens from /token are for /v2 and are refused here (401) whatever their scope.' },
  servers: [{ url: '/api/v1' }],
  components: {
    securitySchemes: { basic: { type: 'http', scheme: 'basic' }, session: { type: 'apiKey', in: 'cookie', name: 'berth_session' } },
    schemas: {
      Problem: { type: 'object', properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' }, code: { type: 'string' }, field: { type: 'string' } } },
      User: { type: 'object', required: ['username', 'password'], properties: { username: { type: 'string' }, password: { type: 'string', minLength: 8, writeOnly: true }, email: { type: 'string' }, admin: { type: 'boolean' }, disabled: { type: 'boolean' } } },
      UserPatch: {
        type: 'object',
        properties: {
          password: { type: 'string', minLength: 8, writeOnly: true, description: 'ends every session and refresh token of the user' },
          currentPassword: { type: 'string', writeOnly: true, description: 'required when changing your own password (400 without it, 403 when wrong)' },
          email: { type: 'string' },
          admin: { type: 'boolean' },
          disabled: { type: 'boolean' },
        },
      },
      Project: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, public: { type: 'boolean' }, quotaBytes: { type: ['integer', 'null'] }, usedBytes: { type: 'integer', readOnly: true } } },
      Member: { type: 'object', required: ['role'], properties: { username: { type: 'string' }, group: { type: 'string' }, role: { enum: ['projectAdmin', 'maintainer', 'developer', 'guest', 'limitedGuest'] } } },
      Robot: {
        type: 'object',
        required: ['name', 'permissions'],
        properties: { name: { type: 'string' }, project: { type: 'string' }, permissions: { type: 'array', items: { enum: ['pull', 'push', 'delete'] } }, expiresInDays: { type: 'integer' }, description: { type: 'string' } },
      },
      ImmutabilityRule: {
        type: 'object',
        required: ['repositories', 'tags'],
        properties: {
          id: { type: 'integer', readOnly: true },
          repositories: { type: 'string', description: 'doublestar glob over the repository path inside the project' },
          tags: { type: 'string', description: 'doublestar glob over tag names' },
          repositoriesExclude: { type: 'string' },
          tagsExclude: { type: 'string' },
          createdAt: { type: 'string', format: 'date-time', readOnly: true },
        },
      },
      RetentionPolicy: {
        type: 'object',
        required: ['rules'],
        properties: {
          rules: {
            type: 'array',
            maxItems: 50,
            items: {
              type: 'object',
              required: ['kind'],
              properties: {
                kind: { enum: ['latestPushed', 'latestPulled', 'pushedWithinDays', 'pulledWithinDays', 'always'] },
                count: { type: 'integer', minimum: 1, description: 'latestPushed, latestPulled' },
                days: { type: 'integer', minimum: 1, description: 'pushedWithinDays, pulledWithinDays' },
                repositories: { type: 'string', default: '**' },
                repositoriesExclude: { type: 'string' },
                tags: { type: 'string', default: '**' },
                tagsExclude: { type: 'string' },
              },
            },
          },
          untagged: { enum: ['keep', 'delete'], default: 'keep' },
          schedule: { type: ['string', 'null'], description: 'cron expression (5 or 6 fields)' },
        },
      },
      RetentionRun: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          status: { enum: ['running', 'succeeded', 'failed'] },
          dryRun: { type: 'boolean' },
          trigger: { type: 'string' },
          startedAt: { type: 'string', format: 'date-time' },
          endedAt: { type: ['string', 'null'], format: 'date-time' },
          removedCount: { type: 'integer' },
          removed: { type: 'array', items: { type: 'object', properties: { repository: { type: 'string' }, tag: { type: ['string', 'null'] }, digest: { type: 'string' } } } },
          gcRunId: { type: ['string', 'null'] },
          error: { type: ['string', 'null'] },
        },
      },
      GcSchedule: { type: 'object', properties: { schedule: { type: ['string', 'null'] }, source: { enum: ['api', 'config', 'none'], readOnly: true }, next: { type: ['string', 'null'], readOnly: true } } },
      RegistryEndpoint: {
        type: 'object',
        required: ['name', 'url'],
        properties: {
          name: { type: 'string', pattern: '^[a-z0-9]+(?:[._-][a-z0-9]+)*$', maxLength: 64, description: 'cannot change after creation' },
          url: { type: 'string', description: 'http(s)://host[:port], no path (not /v2)' },
          username: { type: ['string', 'null'] },
          password: { type: ['string', 'null'], writeOnly: true, description: 'stored encrypted, never answered; omitted in a PATCH: kept; null or "": removed' },
          insecure: { type: 'boolean', default: false, description: 'skip TLS verification' },
          caCertificate: { type: ['string', 'null'], description: 'PEM certificate(s) trusted besides the system CAs' },
          hasPassword: { type: 'boolean', readOnly: true },
          createdAt: { type: 'string', format: 'date-time', readOnly: true },
          updatedAt: { type: 'string', format: 'date-time', readOnly: true },
        },
      },
      PingResult: {
        type: 'object',
        properties: {
          reachable: { type: 'boolean', description: 'false: no connection, TLS failure or timeout' },
          authenticated: { type: 'boolean', description: 'false when reachable: the registry refused the credentials (or wants some)' },
          status: { type: ['integer', 'null'], description: 'the HTTP status of GET /v2/' },
          message: { type: 'string' },
        },
      },
      Login: { type: 'object', required: ['username', 'password'], properties: { username: { type: 'string' }, password: { type: 'string' } } },
    },
  },
  security: [{ basic: [] }, { session: [] }],
  paths: {
    '/login': { post: { summary: 'Sign in (sets the session cookie, returns the CSRF token)', ...body('Login'), responses: { '200': { description: 'signed in' }, ...errors } } },
    '/logout': { post: { summary: 'Sign out: the session ends on the server (its cookie no longer works anywhere)', responses: { '204': { description: 'signed out' }, ...errors } } },
    '/me': { get: op('Who am I') },
    '/users': { post: createdOp('Create a user (admin)', 'User'), get: op('List users (admin)', { parameters: [{ name: 'limit', in: 'query' }, { name: 'offset', in: 'query' }] }) },
    '/users/{username}': { get: op('A user (admin or self)'), patch: op('Change a user (admin, or self for password/email); a new password ends all the user\'s sessions and refresh tokens', body('UserPatch')), delete: op('Delete a user (admin)') },
    '/users/{username}/cli-secret': { post: op('New CLI secret for docker login (OIDC users)') },
    '/projects': { post: createdOp('Create a project', 'Project'), get: op('Projects the caller can see') },
    '/projects/{project}': { get: op('A project with its usage'), patch: op('Change visibility or quota', body('Project')), delete: op('Delete an empty project') },
    '/projects/{project}/members': { get: op('Members'), post: createdOp('Add a member', 'Member') },
    '/projects/{project}/members/{member}': { patch: op('Change a role (member: a username or group:NAME)', body('Member')), delete: op('Remove a member') },
    '/projects/{project}/immutability-rules': { get: op('Tag immutability rules (project admins, maintainers)'), post: createdOp('Add a tag immutability rule', 'ImmutabilityRule') },
    '/projects/{project}/immutability-rules/{id}': { delete: op('Delete a tag immutability rule') },
    '/projects/{project}/retention': { get: op('The tag retention policy'), put: op('Set the tag retention policy (validated: patterns, cron)', body('RetentionPolicy')) },
    '/projects/{project}/retention/runs': {
      post: { summary: 'Start a retention run {"dryRun":bool}', responses: { '202': { description: 'started: {"id"}' }, '409': { description: 'a run of the project is in progress', ...json(problem) }, ...errors } },
      get: op('Retention runs, newest first', { parameters: [{ name: 'limit', in: 'query' }, { name: 'offset', in: 'query' }] }),
    },
    '/projects/{project}/retention/runs/{id}': { get: op('A retention run with what it removed', { responses: { '200': { description: 'the run', ...json({ $ref: '#/components/schemas/RetentionRun' }) }, ...errors } }) },
    '/gc': { post: { summary: 'Start a GC run {"dryRun":bool} (admin)', responses: { '202': { description: 'started: {"id"}' }, '409': { description: 'a run is in progress', ...json(problem) }, ...errors } } },
    '/gc/{id}': { get: op('A GC run with what it deleted (admin)') },
    '/gc/history': { get: op('GC runs (admin)', { parameters: [{ name: 'limit', in: 'query' }, { name: 'offset', in: 'query' }] }) },
    '/gc/schedule': { get: op('The GC cron schedule in effect (admin)'), put: op('Set the GC cron schedule; "" or null clears it (admin)', body('GcSchedule')) },
    '/jobs': { get: op('Background jobs, newest first (admin)', { parameters: ['status', 'kind', 'limit', 'offset'].map((name) => ({ name, in: 'query' })) }) },
    '/jobs/{id}': { get: op('A background job: kind, payload, status, attempts, lease, last error (admin)') },
    '/robots': { post: createdOp('Create a robot account; the secret is answered once', 'Robot'), get: op('List robots', { parameters: [{ name: 'project', in: 'query' }] }) },
    '/robots/{name}': { get: op('A robot'), patch: op('Disable or enable'), delete: op('Delete a robot (and its refresh tokens)') },
    '/robots/{name}/secret': {
      post: {
        summary: 'Rotate the secret: answers the robot with its new secret, shown once; the old secret and its refresh tokens stop working at once',
        responses: { '201': { description: 'the robot and its new `secret`' }, ...errors },
      },
    },
    '/registries': { post: createdOp('Create a registry endpoint (admin)', 'RegistryEndpoint'), get: op('Registry endpoints, without their passwords (admin)') },
    '/registries/{name}': {
      get: op('A registry endpoint (admin)'),
      patch: op('Change a registry endpoint; an omitted password is kept (admin)', body('RegistryEndpoint')),
      delete: { summary: 'Delete a registry endpoint (admin); 409 while a proxy project or replication policy uses it', responses: { '204': { description: 'deleted' }, '409': { description: 'in use', ...json(problem) }, ...errors } },
    },
    '/registries/{name}/ping': {
      post: op('Check reachability and credentials: GET /v2/ with the auth dance (admin)', { responses: { '200': { description: 'what failed, if anything', ...json({ $ref: '#/components/schemas/PingResult' }) }, ...errors } }),
    },
    '/audit': {
      get: op('Audit log', { parameters: ['user', 'project', 'repository', 'action', 'from', 'to', 'limit', 'offset'].map((name) => ({ name, in: 'query' })) }),
    },
    '/search': { get: op('Repositories whose name contains q, among those the caller may pull', { parameters: [{ name: 'q', in: 'query' }] }) },
  },
}

/** A self-contained HTML page listing every operation of the document. */
export function renderDocs(): string {
  const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`)
  const rows: string[] = []
  for (const [path, ops] of Object.entries(OPENAPI.paths)) {
    for (const [method, o] of Object.entries(ops as Record<string, { summary: string }>)) {
      rows.push(`<tr><td><code>${method.toUpperCase()}</code></td><td><code>/api/v1${esc(path)}</code></td><td>${esc(o.summary)}</td></tr>`)
    }
  }
  const schemas = Object.entries(OPENAPI.components.schemas)
    .map(([name, s]) => `<h3>${esc(name)}</h3><pre>${esc(JSON.stringify(s, null, 2))}</pre>`)
    .join('')
  return `<!doctype html><html><head><meta charset="utf-8"><title>Berth API</title><style>body{font-family:sans-serif;margin:2em;max-width:70em}td{padding:.3em .8em;border-bottom:1px solid #ddd}pre{background:#f6f6f6;padding:1em}</style></head><body><h1>${esc(OPENAPI.info.title)}</h1><p>${esc(OPENAPI.info.description)}</p><p><a href="openapi.json">openapi.json</a></p><table>${rows.join('')}</table><h2>Schemas</h2>${schemas}</body></html>`
}
