import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** Where `npm install` (scripts/prepare.js) builds ui/: the same path from src/http and dist/http. */
export const UI_DIR = fileURLToPath(new URL('../../dist/ui/', import.meta.url))

/** What the page learns at run time (in a <meta> tag of index.html: no inline script, strict CSP). */
export interface UiRuntime {
  /** false: an open registry, no sign-in */
  authEnabled: boolean
  /** an OIDC provider is configured: the sign-in page shows its button */
  oidc: boolean
  /** auth.projectCreation: who sees the "New project" button */
  projectCreation: 'admin' | 'everyone'
}

export interface UiOptions {
  /** ui.basePath: starts and ends with / */
  basePath: string
  runtime: UiRuntime
  /** the built UI (tests may point elsewhere) */
  dir?: string
}

/**
 * The client-side routes of ui/src/main.tsx (keep in sync): the server answers index.html for
 * these only, so every other path keeps the 404 it had (JSON), and Berth's own routes (/v2,
 * /api/v1, /token, /healthz, /metrics …) cannot be shadowed whatever the base path.
 */
export const CLIENT_ROUTES = ['', 'sign-in', 'projects', 'projects/*', 'repositories/*', 'search', 'admin', 'admin/*', 'connect', 'account']

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
}

/** The page's own code only; inline styles because React and the virtualised lists set them. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

/**
 * The web UI at ui.basePath: hashed files under assets/ cached for a year, the client-side
 * routes answered with index.html (the router in the page takes it from there), never cached.
 */
export function serveUi(app: FastifyInstance, opts: UiOptions): void {
  const dir = opts.dir ?? UI_DIR
  const base = opts.basePath
  const index = readIndex(dir, base, opts.runtime)
  const page = async (_req: FastifyRequest, reply: FastifyReply) => {
    security(reply).header('cache-control', 'no-cache').type('text/html; charset=utf-8')
    return reply.send(index ?? NOT_BUILT)
  }
  for (const route of CLIENT_ROUTES) app.get(`${base}${route}`, page)
  if (base !== '/') {
    app.get('/', async (_req, reply) => reply.redirect(base))
    app.get(base.slice(0, -1), async (_req, reply) => reply.redirect(base))
  }

  app.get(`${base}assets/*`, async (req, reply) => {
    const name = (req.params as { '*': string })['*']
    if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) return notFound(req, reply)
    return sendFile(req, reply, join(dir, 'assets', name), 'public, max-age=31536000, immutable')
  })
  // Top-level files of the build (favicon.svg …), as they were when the server started.
  const topFiles = index ? readdirSync(dir).filter((f) => f !== 'index.html' && /^[A-Za-z0-9._-]+$/.test(f) && statSync(join(dir, f)).isFile()) : []
  for (const f of topFiles) app.get(`${base}${f}`, async (req, reply) => sendFile(req, reply, join(dir, f), 'public, max-age=3600'))
}

/** index.html with the base path and the runtime options in it, or undefined when not built. */
function readIndex(dir: string, base: string, runtime: UiRuntime): string | undefined {
  const file = join(dir, 'index.html')
  if (!existsSync(file)) return undefined
  const meta = `<base href="${base}"><meta name="berth-runtime" content="${escapeAttr(JSON.stringify({ ...runtime, basePath: base }))}">`
  return readFileSync(file, 'utf8').replace('<head>', `<head>${meta}`)
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;')
}

function security(reply: FastifyReply): FastifyReply {
  return reply.header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'same-origin')
}

/** Streams a file, its .gz sibling (written by the build) when the client takes gzip. */
function sendFile(req: FastifyRequest, reply: FastifyReply, file: string, cacheControl: string) {
  const gz = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? '')) && existsSync(`${file}.gz`)
  const path = gz ? `${file}.gz` : file
  let size: number
  try {
    const st = statSync(path)
    if (!st.isFile()) return notFound(req, reply)
    size = st.size
  } catch {
    return notFound(req, reply)
  }
  security(reply)
    .header('cache-control', cacheControl)
    .header('content-type', TYPES[extname(file)] ?? 'application/octet-stream')
    .header('content-length', size)
    .header('vary', 'accept-encoding')
  if (gz) reply.header('content-encoding', 'gzip')
  if (req.method === 'HEAD') return reply.send()
  return reply.send(createReadStream(path))
}

function notFound(req: FastifyRequest, reply: FastifyReply) {
  return reply.code(404).send({ message: `no such file: ${req.url}`, error: 'Not Found', statusCode: 404 })
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Berth</title><meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5">
<h1>Berth is running</h1>
<p>The registry answers at <code>/v2/</code> and the management API at <code>/api/v1</code>, but the web UI is not built.</p>
<p>Build it from the checkout with a full <code>npm install</code> (it runs <code>npm run build:ui</code>; an install with <code>--omit=dev</code> has no Vite), then restart Berth. The package made by <code>npm pack</code> ships the built UI.</p>
</body></html>
`
