#!/usr/bin/env bash
# Set up .venv (scripts/setup.sh), prepare the base model (cached in ~/.cache/mental-r1), run the suite.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python -m mental_r1.default_model
exec .venv/bin/python -m pytest "$@"
