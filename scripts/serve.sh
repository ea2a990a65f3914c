#!/usr/bin/env bash
# Set up .venv (scripts/setup.sh), prepare the embedded default model, start the service on :8000.
#   bash scripts/serve.sh [--model DIR] [--host H] [--port P] ...   (mental-r1 serve --help lists all)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python -m mental_r1.default_model >/dev/null
exec .venv/bin/mental-r1 serve "$@"  # = python -m app; the page is at http://127.0.0.1:8000/
