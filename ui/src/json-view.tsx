import { allExpanded, darkStyles, defaultStyles, JsonView as View } from 'react-json-view-lite'
import 'react-json-view-lite/dist/index.css'
import { CopyButton } from './components'

/** JSON, highlighted and foldable, with a copy button for the raw text. */
export default function JsonView({ data, label }: { data: unknown; label: string }) {
  const dark = document.documentElement.dataset.theme === 'dark'
  // Numbers and booleans in colours of our own: the library's fall short of WCAG AA contrast.
  const style = { ...(dark ? darkStyles : defaultStyles), numberValue: 'json-number', booleanValue: 'json-boolean' }
  const object = (data ?? {}) as object
  return (
    <div className="json" aria-label={label}>
      <CopyButton text={JSON.stringify(data, null, 2)} label={`Copy ${label}`} />
      <View data={object} shouldExpandNode={allExpanded} style={style} />
    </div>
  )
}
