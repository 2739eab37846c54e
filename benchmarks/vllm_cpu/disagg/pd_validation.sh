#!/usr/bin/env bash
# 1P+1D validation on this CPU: vLLM prefill and decode servers with the file-based KV
# connector, an open-loop replay through them, a profile of one engine with the same settings,
# then frontier-jax simulates the same requests on a 1P+1D layout and compares.
#
#   bash benchmarks/vllm_cpu/disagg/pd_validation.sh        # RATES="0.5 1 3" NREQ=80 by default
#
# Knobs: RATES, NREQ, SEED, PROFILE_REPEATS (1), SKIP_PROFILE=1 (reuse work/disagg/profile),
# SKIP_REPLAY=1 (reuse work/disagg/replay). Needs ../setup.sh and ../make_model.py first.
# Output: benchmarks/vllm_cpu/work/disagg/{replay,profile,compare.txt,compare.json}.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HARNESS=$(dirname "$HERE")
ROOT=$(cd "$HARNESS/../.." && pwd)
D=$HARNESS/work/disagg
VPY=$HARNESS/.venv/bin/python
RATES=${RATES:-"0.5 1 3"}
NREQ=${NREQ:-80}
SEED=${SEED:-0}
PROFILE_REPEATS=${PROFILE_REPEATS:-1}
mkdir -p "$D"
[ -x "$VPY" ] || { echo "pd_validation: run bash benchmarks/vllm_cpu/setup.sh first" >&2; exit 1; }
[ -f "$HARNESS/work/model/config.json" ] || "$VPY" "$HARNESS/make_model.py"

stop() { for r in prefill decode; do [ -f "$D/on_$r.pid" ] && kill "$(cat "$D/on_$r.pid")" 2>/dev/null || true; done; }
trap stop EXIT
t0=$(date +%s)
if [ "${SKIP_REPLAY:-0}" != 1 ]; then
  rm -rf "$D/replay" "$D/kv_online"
  bash "$HERE/online_start.sh"
  # shellcheck disable=SC2086
  "$VPY" "$HERE/pd_replay.py" --rates $RATES --num-requests "$NREQ" --seed "$SEED" --out "$D/replay"
  stop
  sleep 5
fi
echo "pd_validation: replay done at $(( $(date +%s) - t0 )) s"
if [ "${SKIP_PROFILE:-0}" != 1 ]; then
  # one engine with the servers' settings (online_start.sh), alone on the machine
  "$VPY" "$HARNESS/profile_engine.py" --max-num-seqs 16 --max-num-batched-tokens 2048 \
    --max-model-len 2048 --kv-cache-gib 0.25 --enforce-eager --grid small \
    --repeats "$PROFILE_REPEATS" --out "$D/profile/profile.csv"
fi
echo "pd_validation: profile done at $(( $(date +%s) - t0 )) s"
"$ROOT/.venv/bin/python" "$HERE/pd_compare.py" "$D/replay" --profile "$D/profile/profile.csv" \
  --json "$D/compare.json" | tee "$D/compare.txt"
echo "pd_validation: done in $(( $(date +%s) - t0 )) s"
