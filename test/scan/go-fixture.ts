import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// A real Go binary compiled here with Debian's Go: a main module that requires a dependency
// (replaced by a local copy: no network), so its build info lists a `dep` line.

export const GO = '/usr/bin/go'

export async function buildGoBinary(): Promise<{ binary: Buffer; goVersion: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-go-'))
  try {
    await mkdir(join(dir, 'dep'))
    await mkdir(join(dir, 'hello'))
    await writeFile(join(dir, 'dep', 'go.mod'), 'module example.com/dep\n\ngo 1.19\n')
    await writeFile(join(dir, 'dep', 'dep.go'), 'package dep\n\nfunc Greeting() string { return "hello" }\n')
    await writeFile(join(dir, 'hello', 'go.mod'), 'module example.com/hello\n\ngo 1.19\n\nrequire example.com/dep v1.2.3\n\nreplace example.com/dep v1.2.3 => ../dep\n')
    await writeFile(join(dir, 'hello', 'main.go'), 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/dep"\n)\n\nfunc main() { fmt.Println(dep.Greeting()) }\n')
    const env = { ...process.env, GOFLAGS: '-mod=mod', GOCACHE: join(dir, 'cache'), GOPATH: join(dir, 'gopath'), GOPROXY: 'off', GOTOOLCHAIN: 'local', CGO_ENABLED: '0', HOME: dir }
    execFileSync(GO, ['build', '-ldflags=-s -w', '-o', join(dir, 'hello.bin'), '.'], { cwd: join(dir, 'hello'), env, stdio: 'pipe', timeout: 300_000 })
    const goVersion = execFileSync(GO, ['env', 'GOVERSION'], { env, encoding: 'utf8' }).trim()
    return { binary: await readFile(join(dir, 'hello.bin')), goVersion }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
