import { useState, type InputHTMLAttributes, type ReactNode } from 'react'
import { ErrorMessage, Field } from './components'

// The one form of the UI: labelled fields, the error of the last submit in plain words, a submit
// button (busy while it runs) and, in dialogs, a cancel button. Pages hold their values with
// useValues and bind the fields to them.

/** What a form submits: a TanStack mutation (or anything shaped like one). */
export interface Submission {
  mutate: () => void
  error: unknown
  isPending: boolean
  isSuccess?: boolean
}

export function Form({
  label,
  title,
  className,
  action,
  submit,
  error,
  disabled,
  onCancel,
  saved,
  children,
}: {
  /** the form's accessible name (defaults to the title) */
  label?: string
  /** a heading shown at the top of the form */
  title?: string
  className?: string
  action: Submission
  /** the submit button's words */
  submit: string
  /** an error to show besides the submission's (a query the form depends on) */
  error?: unknown
  disabled?: boolean
  onCancel?: () => void
  /** said once the submission succeeded (forms that stay open after saving) */
  saved?: string
  children: ReactNode
}) {
  return (
    <form
      className={className}
      aria-label={label ?? title}
      onSubmit={(e) => {
        e.preventDefault()
        action.mutate()
      }}
    >
      {title && <h2>{title}</h2>}
      {children}
      <ErrorMessage error={action.error ?? error} />
      <div className="actions">
        {onCancel && (
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        )}
        <button type="submit" className="primary" disabled={action.isPending || disabled}>
          {submit}
        </button>
        {saved && action.isSuccess && <span role="status">{saved}</span>}
      </div>
    </form>
  )
}

type InputProps = Omit<InputHTMLAttributes<HTMLInputElement>, 'id' | 'value' | 'onChange'>

/** A labelled input whose value is a string. */
export function TextField({ label, hint, value, onChange, ...input }: InputProps & { label: string; hint?: string; value: string; onChange: (value: string) => void }) {
  return <Field label={label} hint={hint}>{(id) => <input id={id} {...input} value={value} onChange={(e) => onChange(e.target.value)} />}</Field>
}

/** A labelled select; options are values, or [value, words] pairs. */
export function SelectField({
  label,
  hint,
  value,
  onChange,
  options,
}: {
  label: string
  hint?: string
  value: string
  onChange: (value: string) => void
  options: readonly (string | readonly [string, ReactNode])[]
}) {
  return (
    <Field label={label} hint={hint}>
      {(id) => (
        <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
          {options.map((o) => {
            const [v, words] = typeof o === 'string' ? [o, o] : o
            return (
              <option key={v} value={v}>
                {words}
              </option>
            )
          })}
        </select>
      )}
    </Field>
  )
}

/** A checkbox with its words beside it. */
export function CheckField({ label, checked, onChange }: { label: ReactNode; checked: boolean; onChange: (checked: boolean) => void }) {
  return (
    <label className="check">
      <input type="checkbox" checked={checked} onChange={(e) => onChange(e.target.checked)} /> {label}
    </label>
  )
}

type Values = Record<string, string | boolean>
type KeysOf<T, V> = { [K in keyof T]: T[K] extends V ? K : never }[keyof T]

/** A form's values, and the props that bind a TextField/SelectField (`text`) or CheckField (`check`) to one. */
export function useValues<T extends Values>(initial: T) {
  const [values, setValues] = useState<T>(initial)
  const set = <K extends keyof T>(k: K, v: T[K]) => setValues((cur) => ({ ...cur, [k]: v }))
  return {
    values,
    set,
    reset: () => setValues(initial),
    text: (k: KeysOf<T, string>) => ({ value: values[k] as string, onChange: (v: string) => set(k, v as T[typeof k]) }),
    check: (k: KeysOf<T, boolean>) => ({ checked: values[k] as boolean, onChange: (v: boolean) => set(k, v as T[typeof k]) }),
  }
}
