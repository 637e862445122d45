import { Link } from 'react-router'

export default function NotFound() {
  return (
    <>
      <h1>Page not found</h1>
      <p>
        There is no page at this address. Go to the <Link to="/projects">projects</Link> or <Link to="/search">search</Link>.
      </p>
    </>
  )
}
