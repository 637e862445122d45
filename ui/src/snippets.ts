import { registryHost } from './runtime'

const secure = window.location.protocol === 'https:'
const local = /^(localhost|127\.|\[::1\])/.test(registryHost)

/** The first push of an image, for this server's address. */
export function pushCommands(project: string, image = 'myimage', tag = 'latest'): string {
  return [`docker login ${registryHost}`, `docker tag ${image}:${tag} ${registryHost}/${project}/${image}:${tag}`, `docker push ${registryHost}/${project}/${image}:${tag}`].join('\n')
}

export const pullCommand = (repository: string, tag: string) => `docker pull ${registryHost}/${repository}:${tag}`
export const podmanPullCommand = (repository: string, tag: string) => `podman pull ${registryHost}/${repository}:${tag}`
export const byDigest = (repository: string, digest: string) => `${registryHost}/${repository}@${digest}`

export function clientSnippets(user = 'USERNAME'): { title: string; text: string; note?: string }[] {
  const scheme = secure ? 'https' : 'http'
  return [
    {
      title: 'docker login',
      text: `docker login ${registryHost} -u ${user}`,
      note: secure || local ? undefined : `Berth is served over plain HTTP here: add "${registryHost}" to "insecure-registries" in /etc/docker/daemon.json first.`,
    },
    {
      title: `containerd: /etc/containerd/certs.d/${registryHost.replace(':', '_')}/hosts.toml`,
      text: [`server = "${scheme}://${registryHost}"`, '', `[host."${scheme}://${registryHost}"]`, '  capabilities = ["pull", "resolve", "push"]', ...(secure ? [] : ['  skip_verify = true'])].join('\n'),
    },
    {
      title: 'podman / CRI-O: /etc/containers/registries.conf.d/berth.conf',
      text: ['[[registry]]', `location = "${registryHost}"`, `insecure = ${secure ? 'false' : 'true'}`].join('\n'),
    },
    {
      title: 'Kubernetes imagePullSecret',
      text: [
        `kubectl create secret docker-registry berth-pull \\`,
        `  --docker-server=${registryHost} \\`,
        `  --docker-username='${user}' --docker-password='SECRET'`,
        '',
        '# in the pod spec:',
        'spec:',
        '  imagePullSecrets:',
        '    - name: berth-pull',
      ].join('\n'),
    },
  ]
}
