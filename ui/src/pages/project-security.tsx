import type { Project } from '../types'
import { can } from '../session'
import { ProjectScannerSettings, ScanPolicySettings } from './scan'
import { TrustKeys, TrustPolicyForm } from './trust'

/** A project's scan policy (maintainers and up) and what it trusts (project administrators). */
export default function Security({ project }: { project: Project }) {
  return (
    <section aria-label="Scanning and signatures">
      {can(project, 'managePolicies') && (
        <>
          <ScanPolicySettings project={project} />
          <ProjectScannerSettings project={project} />
        </>
      )}
      {can(project, 'manageMembers') && (
        <>
          <TrustPolicyForm project={project.name} />
          <TrustKeys project={project.name} />
        </>
      )}
    </section>
  )
}
