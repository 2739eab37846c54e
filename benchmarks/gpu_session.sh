#!/usr/bin/env bash
# One prepared GPU session (the lent device machine has ~15 minutes in all, one command of at
# most 10): profile a model's operators on the GPU, train a predictor set on that profile,
# and measure the step and sweep benchmarks there. Stages run in order of value, each under
# its own time limit, and each leaves its results as soon as it ends, so a cut-off run still
# returns what it finished.
#
#   bash benchmarks/gpu_session.sh                      # on the device machine (uses $OUT)
#   DEVICE=cpu QUICK=1 MODEL=tiny-llama PY=.venv/bin/python bash benchmarks/gpu_session.sh
#                                                       # rehearsal here (~1 min, only under $OUT)
#
# Knobs (environment): DEVICE (cuda), MODEL (llama-3-8b), TP (1), STAGES ("profile step
# train sweep"), QUICK (1: tiny plans, for rehearsals), PY (python3, the device image's
# interpreter; it holds jax, torch, flax, optax, sklearn, pandas), OUT (where results go;
# default /tmp/gpu_session_out). Results: session.log, profile.tgz (the profile folder, to
# unpack under profiling/), predictors.tgz (the trained set, to unpack under predictors/),
# step.json (surrogate_step.py), sweep.json (sweep_scale.py, roofline and surrogate).
set -uo pipefail
DEVICE="${DEVICE:-cuda}"
MODEL="${MODEL:-llama-3-8b}"
TP="${TP:-1}"
STAGES="${STAGES:-profile step train sweep}"
QUICK="${QUICK:-0}"
PY="${PY:-python3}"
OUT="${OUT:-/tmp/gpu_session_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/session.log") 2>&1

tag="${DEVICE%%:*}"
[ "$tag" = cuda ] && tag="$("$PY" -c 'import torch; n = torch.cuda.get_device_name(0).lower(); print(next((g for g in ("h200", "h100", "a100") if g in n), "cuda"))' 2>/dev/null || echo cuda)"
# a rehearsal (QUICK=1) keeps its profile and set out of the checkout
BASE=.
[ "$QUICK" = 1 ] && BASE="$OUT/work"
PROFILE="$BASE/profiling/$tag/$MODEL/run1"
SET="$BASE/predictors/$tag-$MODEL"
echo "== gpu_session $(date -Is) device=$DEVICE ($tag) model=$MODEL tp=$TP stages='$STAGES' quick=$QUICK"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PY" -c 'import jax, torch; print("jax", jax.__version__, jax.devices()); print("torch", torch.__version__)'

has() { [[ " $STAGES " == *" $1 "* ]]; }
stage() {  # stage NAME SECONDS COMMAND...: run under a time limit, report how it ended
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit}s)" >&2
  timeout "$limit" "$@"
  local rc=$?
  echo "== $name: rc=$rc in $((SECONDS - t0))s" >&2
  return $rc
}

if has profile; then
  if [ "$QUICK" = 1 ]; then plan=(--quick); else plan=(--repeats 15 --rounds 3 --seed 1); fi
  stage profile 240 "$PY" -m frontier_jax.cli profile --model "$MODEL" --tp "$TP" \
    --device "$DEVICE" --out "$PROFILE" --quiet "${plan[@]}"
  tar czf "$OUT/profile.tgz" -C "$BASE/profiling" "$tag/$MODEL" && echo "profile -> $OUT/profile.tgz"
fi

step_args=(--json --configs 1 64 256 1024 --requests 2000)
[ "$QUICK" = 1 ] && step_args=(--json --configs 1 8 --requests 200)
if has step; then  # the tier's cost in the step; the synthetic H100 set costs what a real one does
  stage step 180 "$PY" benchmarks/surrogate_step.py "${step_args[@]}" >"$OUT/step.json"
fi

if has train; then
  [ "$QUICK" = 1 ] && train_args=(--surrogate-steps 200) || train_args=()
  if [ -d "$PROFILE" ]; then
    stage train 240 "$PY" -m frontier_jax.cli predictors train --data "$PROFILE" --format native \
      --out "$SET" "${train_args[@]}" \
      && tar czf "$OUT/predictors.tgz" -C "$BASE/predictors" "$(basename "$SET")" \
      && echo "predictors -> $OUT/predictors.tgz"
  else
    echo "== train: skipped, no profile at $PROFILE"
  fi
fi

if has sweep; then
  if [ "$QUICK" = 1 ]; then sw=(--json --requests 200 --rates 1); else sw=(--json --requests 2000 --rates 4); fi
  { stage sweep-roofline 120 "$PY" benchmarks/sweep_scale.py "${sw[@]}"
    stage sweep-surrogate 150 "$PY" benchmarks/sweep_scale.py "${sw[@]}" --synthetic-predictor
  } >"$OUT/sweep.json"
fi
echo "== done $(date -Is)"
ls -la "$OUT"
