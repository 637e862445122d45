import { Suspense, useEffect, useId, useRef, useState, type ReactNode } from 'react'
import { ApiError } from './api'

/** Copies `text`; says so for a moment (and to screen readers through the live region). */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState(false)
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text)
    } catch {
      // No clipboard (plain http on another host): select the text for the person to copy.
      fallbackCopy(text)
    }
    setDone(true)
    setTimeout(() => setDone(false), 1500)
  }
  return (
    <button type="button" className="copy" onClick={copy} aria-label={`${label}: ${text}`} title={text}>
      <span aria-live="polite">{done ? 'Copied' : label}</span>
    </button>
  )
}

function fallbackCopy(text: string) {
  const area = document.createElement('textarea')
  area.value = text
  document.body.appendChild(area)
  area.select()
  document.execCommand('copy')
  area.remove()
}

/** A command or file to copy, shown in full. */
export function Snippet({ title, text }: { title?: string; text: string }) {
  return (
    <figure className="snippet">
      {title && <figcaption>{title}</figcaption>}
      <pre tabIndex={0}>
        <code>{text}</code>
      </pre>
      <CopyButton text={text} label={title ? `Copy ${title}` : 'Copy'} />
    </figure>
  )
}

export function ErrorMessage({ error, action }: { error: unknown; action?: ReactNode }) {
  if (!error) return null
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error)
  return (
    <div role="alert" className="error">
      {message} {action}
    </div>
  )
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p className="muted" role="status" aria-live="polite">
      {what}…
    </p>
  )
}

/** A modal dialog (the native <dialog>: focus trap and Escape for free). */
export function Dialog({ open, title, onClose, children }: { open: boolean; title: string; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null)
  const titleId = useId()
  useEffect(() => {
    const d = ref.current
    if (!d) return
    if (open && !d.open) d.showModal()
    if (!open && d.open) d.close()
  }, [open])
  return (
    <dialog ref={ref} aria-labelledby={titleId} onClose={onClose} onCancel={onClose}>
      <h2 id={titleId}>{title}</h2>
      {open && children}
    </dialog>
  )
}

/** A labelled input. */
export function Field({ label, hint, children }: { label: string; hint?: string; children: (id: string) => ReactNode }) {
  const id = useId()
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children(id)}
      {hint && <small className="muted">{hint}</small>}
    </div>
  )
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>
}

/**
 * A table with its column heads; `children` are its rows. A `label` makes its box a named region
 * that takes the keyboard focus: wide tables scroll sideways, and the keyboard must reach that too.
 */
export function Table({ head, label, children }: { head: ReactNode[]; label?: string; children: ReactNode }) {
  return (
    <div className="table-wrap" {...(label ? { role: 'region', 'aria-label': label, tabIndex: 0 } : {})}>
      <table>
        <thead>
          <tr>
            {head.map((h, i) => (
              <th key={i} scope="col">
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  )
}

/** A section whose code loads on first use (React.lazy), with a loading line meanwhile. */
export function Lazy({ page }: { page: ReactNode }) {
  return <Suspense fallback={<Loading />}>{page}</Suspense>
}
