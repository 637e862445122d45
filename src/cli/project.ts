import type { Command } from 'commander'
import { ProjectService } from '../auth/projects.js'
import { commonOptions, withMetadata, type Common } from './user.js'

function withProjects<T>(opts: Common, work: (projects: ProjectService) => Promise<T>): Promise<T> {
  return withMetadata(opts, (meta) => work(new ProjectService(meta, Date.now)))
}

/**
 * `berth project create|list`: projects (the first component of repository names), straight in
 * the metadata database, so that the first push needs neither curl nor the management API.
 */
export function registerProjectCommands(program: Command): void {
  const project = program.command('project').description('manage projects (works on the database directly; the server may be running)')

  commonOptions(project.command('create').description('create a project: repositories NAME/… can then be pushed').argument('<name>'))
    .option('--public', 'anyone may pull, without logging in')
    .action(async (name: string, opts: Common & { public?: boolean }) => {
      const created = await withProjects(opts, (projects) => projects.create({ name, public: opts.public === true }))
      console.log(opts.json ? JSON.stringify(created) : `created project ${created.name} (${created.public ? 'public' : 'private'})`)
    })

  commonOptions(project.command('list').description('list projects')).action(async (opts: Common) => {
    const list = await withProjects(opts, (projects) => projects.list(() => Promise.resolve(true)))
    if (opts.json) console.log(JSON.stringify(list))
    else for (const p of list) console.log(`${p.name}\t${p.public ? 'public' : 'private'}\t${p.repositoryCount} repositories\t${p.usedBytes} bytes`)
  })
}
