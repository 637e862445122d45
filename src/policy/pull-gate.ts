import type { RegistryError } from '../errors/registry-error.js'

/**
 * A policy that may refuse a pull: a project that requires signatures, or that blocks images
 * with vulnerabilities. It decides manifest GETs only (a HEAD reveals no content, and clients
 * HEAD before they GET); blobs are not gated, as in Harbor, because their digests come from a
 * manifest the gate already let through.
 */
export interface PullGate {
  /** for logs: which policy refused */
  name: string
  /**
   * Decides a GET of manifest `digest` in `repository`: undefined allows it, a RegistryError
   * (DENIED, naming what is missing and how to allow it) refuses it. An answer known from
   * memory should come back synchronously: a Promise sends the pull off the fast path.
   */
  check(repository: string, digest: string, mediaType: string): RegistryError | undefined | Promise<RegistryError | undefined>
}

export type GateAnswer = RegistryError | undefined | Promise<RegistryError | undefined>

/** A pull a gate refused (told to the listeners of PullGates.onRefused). */
export interface Refusal {
  /** the gate's name */
  gate: string
  repository: string
  digest: string
  mediaType: string
  error: RegistryError
}

/** Every pull gate of the server; a pull goes through when each of them allows it. */
export class PullGates {
  private readonly gates: PullGate[] = []
  private readonly listeners: ((r: Refusal) => void)[] = []

  add(gate: PullGate): void {
    this.gates.push(gate)
  }

  /** `listener` is told of every refusal (the pull.blocked events); it must not throw. */
  onRefused(listener: (r: Refusal) => void): void {
    this.listeners.push(listener)
  }

  get empty(): boolean {
    return this.gates.length === 0
  }

  /** The first refusal, synchronously when every gate answered so; else a promise of it. */
  check(repository: string, digest: string, mediaType: string): GateAnswer {
    let pending: Promise<RegistryError | undefined>[] | undefined
    for (const gate of this.gates) {
      const answer = gate.check(repository, digest, mediaType)
      if (answer instanceof Promise) (pending ??= []).push(answer.then((a) => a && this.refused({ gate: gate.name, repository, digest, mediaType, error: a })))
      else if (answer) return this.refused({ gate: gate.name, repository, digest, mediaType, error: answer })
    }
    if (!pending) return undefined
    return Promise.all(pending).then((answers) => answers.find((a) => a !== undefined))
  }

  private refused(r: Refusal): RegistryError {
    for (const listener of this.listeners) listener(r)
    return r.error
  }
}
