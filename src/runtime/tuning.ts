import { BusyPoll } from './busy-poll.js'
import { IdleGc, runtimeGc, runtimeScavenge } from './idle-gc.js'

/**
 * The V8 and event-loop tuning of a server process, behind one switch (runtime.tuning, on by
 * default): idle collections and scavenges during uploads (IdleGc), and busy polling after each
 * response (BusyPoll, for http.busyPollMicros). The V8 start-up flags (the helper thread pool
 * and the young generation's size) are read by V8 only when the process starts, so `npm start`
 * (bin/serve.sh) passes them, and leaves them out when BERTH_RUNTIME_TUNING is false.
 * Switched off, a server runs as plain Node.js does.
 */
export interface RuntimeTuning {
  /** Bytes of request bodies as they arrive, with the number of bodies being received. */
  received(bytes: number, receiving: number): void
  /** Bytes of response bodies sent. */
  sent(bytes: number): void
  /** A response finished. */
  responded(): void
  /** The server is closing: no more collections or polling. */
  close(): void
}

export function createRuntimeTuning(opts: { enabled: boolean; busyPollMicros: number }): RuntimeTuning {
  if (!opts.enabled) return { received: () => undefined, sent: () => undefined, responded: () => undefined, close: () => undefined }
  const idleGc = new IdleGc(runtimeGc(), { scavenge: runtimeScavenge() })
  const busyPoll = new BusyPoll(opts.busyPollMicros)
  return {
    received: (bytes, receiving) => idleGc.received(bytes, receiving),
    sent: (bytes) => idleGc.record(bytes),
    responded: () => {
      idleGc.touch()
      busyPoll.touch()
    },
    close: () => {
      busyPoll.stop()
      idleGc.close()
    },
  }
}
