#!/bin/sh
# `npm start`: berth serve in place of this shell (signals reach the server), with the V8 flags
# of the runtime tuning (src/runtime/tuning.ts): two helper threads instead of four and a young
# generation of at most 2 x 8 MiB. V8 reads them only at process start, so they are chosen here,
# before the config is read: BERTH_RUNTIME_TUNING=false (or 0, no, off) leaves them out.
bin=$(dirname "$0")
case "$BERTH_RUNTIME_TUNING" in
  [Ff][Aa][Ll][Ss][Ee] | 0 | [Nn][Oo] | [Oo][Ff][Ff]) exec node "$bin/berth.js" serve "$@" ;;
esac
exec node --v8-pool-size=2 --max-semi-space-size=8 "$bin/berth.js" serve "$@"
