/** What the server put into index.html (src/http/ui.ts): read once. */
export interface Runtime {
  authEnabled: boolean
  oidc: boolean
  projectCreation: 'admin' | 'everyone'
  basePath: string
}

function read(): Runtime {
  const content = document.querySelector('meta[name="berth-runtime"]')?.getAttribute('content')
  const fallback: Runtime = { authEnabled: true, oidc: false, projectCreation: 'admin', basePath: '/' }
  if (!content) return fallback
  try {
    return { ...fallback, ...(JSON.parse(content) as Partial<Runtime>) }
  } catch {
    return fallback
  }
}

export const runtime = read()

/** The address registry clients use for this server, as the browser reaches it. */
export const registryHost = window.location.host
