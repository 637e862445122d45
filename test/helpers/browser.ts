import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'

/** Debian's chromium (.ci/install-clients.sh installs it); playwright-core downloads no browser. */
export const CHROMIUM = '/usr/bin/chromium'

/** Why the browser tests cannot run here, or false; in CI a missing chromium is a failure. */
export function browserSkip(): string | false {
  if (existsSync(CHROMIUM)) return false
  if (process.env.CI === 'true') throw new Error(`CI=true but ${CHROMIUM} is missing: the web UI tests must run in CI (.ci/install-clients.sh installs chromium)`)
  return `skipped: ${CHROMIUM} is missing (apt-get install chromium)`
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] })
}

/** Where the tests write their screenshots (a few are copied by hand into docs/ui/: docs/ui.md). */
export const SCREENSHOTS = join(import.meta.dirname, '..', '..', '.cache', 'ui-screenshots')

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true })
}

export interface AxeViolation {
  id: string
  impact: string | null
  help: string
  nodes: { target: string[] }[]
}

let axeSource: string | undefined

/** axe-core's serious and critical violations (WCAG 2 A and AA rules) on the page as it is now. */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  axeSource ??= await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')
  // Evaluated through the DevTools protocol: the page's CSP (script-src 'self') stays as served.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(axeSource)
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: Document, opts: object): Promise<{ violations: AxeViolation[] }> } }).axe
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target })) }))
  })
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
}

/** Asserts that axe-core finds no serious or critical violation on the page as it is now. */
export async function noSeriousViolations(page: Page, where: string): Promise<void> {
  const found = await axeViolations(page)
  assert.deepEqual(found, [], `axe-core on ${where}: ${JSON.stringify(found, null, 1)}`)
}

/** Fills the sign-in page and submits it. */
export async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('Username').fill(username)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
}

/** A new browser context and page (desktop size, 20 s for each step), signed in as `username` at `url`. */
export async function signedInPage(browser: Browser, url: string, username: string, password: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  context.setDefaultTimeout(20_000)
  const page = await context.newPage()
  page.on('dialog', (d) => void d.accept())
  await page.goto(url)
  await signIn(page, username, password)
  return { context, page }
}
