// The one way the UI talks to Berth: JSON over /api/v1 with the session cookie, the CSRF token
// echoed on writes, and problem+json errors turned into ApiError with words a person can act on.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

let csrfToken: string | undefined

/** Remembers the session's CSRF token (from sign-in or /me). */
export function setCsrfToken(token: string | undefined): void {
  csrfToken = token
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  return request<T>(method, `/api/v1${path}`, body)
}

export const get = <T>(path: string) => api<T>('GET', path)

/** A JSON read outside /api/v1 (the chart repository's list, /chartrepo/…), with the same errors. */
export const getAt = <T>(url: string) => request<T>('GET', url)

async function request<T>(method: string, url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (WRITES.has(method) && csrfToken) headers['x-csrf-token'] = csrfToken
  let res: Response
  try {
    res = await fetch(url, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) })
  } catch {
    throw networkError()
  }
  const text = await res.text()
  if (!res.ok) throw toError(res.status, text)
  return (text ? JSON.parse(text) : undefined) as T
}

/**
 * POSTs a file as the request body, as it is (the browser streams it from disk), with the CSRF
 * token, telling `onProgress` the bytes sent so far. XMLHttpRequest rather than fetch: fetch
 * reports no upload progress, and its streamed request bodies need HTTP/2.
 */
export function upload<T>(path: string, file: Blob, contentType: string, onProgress: (sent: number, total: number) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', `/api/v1${path}`)
    xhr.setRequestHeader('accept', 'application/json')
    xhr.setRequestHeader('content-type', contentType)
    if (csrfToken) xhr.setRequestHeader('x-csrf-token', csrfToken)
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size)
    xhr.onload = () => {
      if (xhr.status < 200 || xhr.status >= 300) return reject(toError(xhr.status, xhr.responseText))
      try {
        resolve((xhr.responseText ? JSON.parse(xhr.responseText) : undefined) as T)
      } catch {
        reject(toError(502, 'the answer was not JSON'))
      }
    }
    xhr.onerror = () => reject(networkError())
    xhr.onabort = () => reject(new ApiError(0, 'ABORTED', 'The upload was cancelled.'))
    xhr.send(file)
  })
}

function networkError(): ApiError {
  return new ApiError(0, 'NETWORK', 'Berth did not answer. Check that the server is running and your network connection, then try again.')
}

function toError(status: number, text: string): ApiError {
  let code = 'UNKNOWN'
  let detail = ''
  try {
    // problem JSON, or ChartMuseum's {"error"} (the chart repository)
    const p = JSON.parse(text) as { code?: string; detail?: string; title?: string; error?: string }
    code = p.code ?? p.title ?? code
    detail = p.detail ?? p.error ?? ''
  } catch {
    detail = text.slice(0, 200)
  }
  return new ApiError(status, code, explain(status, detail))
}

/** The server's words plus what to do about them. */
function explain(status: number, detail: string): string {
  const said = detail ? `${detail.charAt(0).toUpperCase()}${detail.slice(1)}.` : ''
  if (status === 401) return `${said} Your session has ended: sign in again.`.trim()
  if (status === 403) return `${said} Your role does not allow this; ask a project administrator.`.trim()
  if (status === 404) return `${said || 'Not found.'} It may have been deleted, or you may not have access to it.`
  if (status === 409) return `${said} Reload the page to see the current state.`.trim()
  if (status === 429) return `${said} Too many attempts: wait a minute and try again.`.trim()
  if (status >= 500) return `${said || 'The server failed.'} Try again; if it persists, the server log has the details (search for the request id).`
  return said || `Request failed (HTTP ${status}).`
}

/** A path segment: repository paths inside a project keep their slashes encoded (tools%2Fapi). */
export const seg = (s: string) => encodeURIComponent(s)

export interface Page<T> {
  total: number
  limit: number
  offset: number
  items: T[]
}
