import { Snippet } from '../components'
import { registryHost } from '../runtime'
import { useMe } from '../session'
import { clientSnippets, pushCommands } from '../snippets'

export default function Connect() {
  const me = useMe().data
  const user = me?.username ?? 'USERNAME'
  return (
    <>
      <h1>Use this registry</h1>
      <p>
        Registry address: <code>{registryHost}</code>. Machines (CI, clusters) should sign in with a robot account of a project rather than a person's password.
      </p>
      {clientSnippets(user).map((s) => (
        <section key={s.title}>
          <Snippet title={s.title} text={s.text} />
          {s.note && <p className="muted">{s.note}</p>}
        </section>
      ))}
      <h2>Push an image</h2>
      <Snippet title="docker push" text={pushCommands('library')} />
    </>
  )
}
