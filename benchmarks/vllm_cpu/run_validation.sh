#!/usr/bin/env bash
# End-to-end validation of frontier-jax against vLLM's V1 engine on this machine's CPU:
# setup -> random-init model -> profile -> replay at 3 rates x 3 repeats (each round of repeats
# opened by a piece of the calibration workload) -> compare.
#
#   bash benchmarks/vllm_cpu/run_validation.sh            # the real run (quiet machine; est. 20-40 min)
#   SIZE=tiny bash benchmarks/vllm_cpu/run_validation.sh  # smoke test of the harness (~100 s)
#
# Knobs (environment): SIZE (full|tiny), BUDGET, SEQS, MAXLEN, KV_GIB, KV_BLOCKS, BLOCK, GRID,
# PROFILE_REPEATS, REPEATS, NREQ, LOAD_FACTORS ("0.3 0.7 1.3": x the capacity estimated from
# the profile), RATES (explicit req/s list, overrides LOAD_FACTORS), LENGTHS (trace|synthetic),
# ARCH (llama|qwen2: make_model.py --arch; qwen2 lives in work/model-qwen2),
# CALIBRATION (1: CAL_NREQ=100 requests of their own, seed 1, at CAL_LOAD=0.6 x capacity,
# served by the validation's engine split into one piece per round of repeats, each before its
# round, whose steps join the profile; separate: the same requests in one replay of their own engine before the
# validation (runs 3-5); 0: the profile alone),
# OUT (default benchmarks/vllm_cpu/work/validation), SKIP_SETUP=1, SKIP_PROFILE=1.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SIZE="${SIZE:-full}"
if [ "$SIZE" = tiny ]; then
  : "${BUDGET:=512}" "${SEQS:=8}" "${MAXLEN:=1024}" "${GRID:=tiny}" "${PROFILE_REPEATS:=1}"
  : "${REPEATS:=1}" "${NREQ:=10}" "${RATES:=2 8}" "${CAL_NREQ:=10}"
else
  : "${BUDGET:=2048}" "${SEQS:=64}" "${MAXLEN:=4096}" "${GRID:=small}" "${PROFILE_REPEATS:=3}"
  : "${REPEATS:=3}" "${NREQ:=200}"
fi
: "${CALIBRATION:=1}" "${CAL_LOAD:=0.6}" "${CAL_NREQ:=100}"
case "$CALIBRATION" in
  1) case "$CAL_LOAD" in *" "*) echo "CAL_LOAD=\"$CAL_LOAD\": one load with CALIBRATION=1 (a list needs CALIBRATION=separate)" >&2; exit 2;; esac ;;
  separate|0) ;;
  *) echo "CALIBRATION=$CALIBRATION: 1 (in the validation's engine), separate or 0" >&2; exit 2;;
esac
: "${KV_GIB:=1}" "${LOAD_FACTORS:=0.3 0.7 1.3}" "${LENGTHS:=trace}" "${RATES:=}" "${ARCH:=llama}"
# one checkpoint folder per architecture: a Qwen2 run never rewrites the Llama model, nor back
if [ "$ARCH" = llama ]; then MODEL_DIR="$HERE/work/model"; else MODEL_DIR="$HERE/work/model-$ARCH"; fi
OUT="${OUT:-$HERE/work/validation}"
VPY="$HERE/.venv/bin/python"
mkdir -p "$OUT"
LOG="$OUT/run_validation.log"
exec > >(tee -a "$LOG") 2>&1
echo "== run_validation $(date -Is) SIZE=$SIZE arch=$ARCH budget=$BUDGET seqs=$SEQS max_model_len=$MAXLEN"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
awk '{ if ($1 > 0.5) print "WARNING: load average " $1 " > 0.5: timings will be noisy (other jobs?)" }' /proc/loadavg

ENGINE=(--model "$MODEL_DIR" --max-num-batched-tokens "$BUDGET" --max-num-seqs "$SEQS" --max-model-len "$MAXLEN"
        --kv-cache-gib "$KV_GIB")
[ -n "${BLOCK:-}" ] && ENGINE+=(--block-size "$BLOCK")
[ -n "${KV_BLOCKS:-}" ] && ENGINE+=(--kv-blocks "$KV_BLOCKS")

t=$(date +%s)
if [ "${SKIP_SETUP:-0}" != 1 ]; then
  echo "== 1/5 setup"
  bash "$HERE/setup.sh"
fi
if [ ! -x "$ROOT/.venv/bin/python" ] || [ ! -f "$ROOT/.venv/.installed" ]; then
  echo "== project venv (make)"
  make -C "$ROOT" .venv/.installed
fi

echo "== 2/5 model ($ARCH)"
"$VPY" "$HERE/make_model.py" --arch "$ARCH" --out "$MODEL_DIR"

PROFILE="$OUT/profile/profile.csv"
if [ "${SKIP_PROFILE:-0}" != 1 ] || [ ! -f "$PROFILE" ]; then
  echo "== 3/5 profile (grid $GRID x $PROFILE_REPEATS)"
  "$VPY" "$HERE/profile_engine.py" "${ENGINE[@]}" --grid "$GRID" --repeats "$PROFILE_REPEATS" \
    --out "$PROFILE"
fi

LEN_ARGS=()
if [ "$LENGTHS" = trace ]; then LEN_ARGS+=(--trace-lengths); fi
CAL_ARGS=()
REPLAY_CAL=()
if [ "$CALIBRATION" = 1 ]; then
  # in the validation's engine, a piece before each round of repeats (replay.py
  # --calibration-requests): the calibration sees the engine the validation runs on, over the
  # same session (a separate engine ran 4-6% off the validation's on decode steps)
  rm -rf "$OUT/calibration"
  REPLAY_CAL=(--calibration-requests "$CAL_NREQ" --calibration-load-factor "$CAL_LOAD"
              --calibration-seed 1 --calibration-dir "$OUT/calibration" --rates-from-profile "$PROFILE")
  CAL_ARGS=(--calibration "$OUT/calibration")
elif [ "$CALIBRATION" = separate ]; then
  # the engine's steps as served: a replay of its own requests (seed 1; the validation's are
  # seed 0) at one load, whose steps join the profile for calibration (compare.py --calibration)
  echo "== 3b/5 calibration replay ($CAL_NREQ requests at $CAL_LOAD x capacity, seed 1)"
  rm -rf "$OUT/calibration"
  # shellcheck disable=SC2086  # CAL_LOAD may list several loads, one run each
  "$VPY" "$HERE/replay.py" "${ENGINE[@]}" "${LEN_ARGS[@]}" --num-requests "$CAL_NREQ" --repeats 1 \
    --seed 1 --rates-from-profile "$PROFILE" --load-factors $CAL_LOAD --out-dir "$OUT/calibration"
  CAL_ARGS=(--calibration "$OUT/calibration")
fi

echo "== 4/5 replay ($NREQ requests, $REPEATS repeats per rate, lengths: $LENGTHS)"
REPLAY=(--num-requests "$NREQ" --repeats "$REPEATS" --out-dir "$OUT/replay" "${LEN_ARGS[@]}"
        "${REPLAY_CAL[@]}")
if [ -n "$RATES" ]; then
  # shellcheck disable=SC2206
  REPLAY+=(--rates $RATES)
else
  # shellcheck disable=SC2206
  REPLAY+=(--rates-from-profile "$PROFILE" --load-factors $LOAD_FACTORS)
fi
rm -rf "$OUT/replay"
"$VPY" "$HERE/replay.py" "${ENGINE[@]}" "${REPLAY[@]}"

echo "== 5/5 compare"
"$ROOT/.venv/bin/python" "$HERE/compare.py" "$OUT/replay" --profile "$PROFILE" "${CAL_ARGS[@]}" \
  --json "$OUT/compare.json" | tee "$OUT/compare.txt"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== done in $(( $(date +%s) - t )) s: $OUT/compare.json, $OUT/compare.txt"
