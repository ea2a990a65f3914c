#!/usr/bin/env bash
# Set up .venv (scripts/setup.sh), prepare the base model (cached in ~/.cache/mental-r1), run the suite.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the web page's browser tests drive Debian's chromium through chromium-driver (tests/app/test_page.py);
# without them those tests fail (they never skip), so install them when we may (root, or sudo without a password)
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then as_root=(); elif sudo -n true 2>/dev/null; then as_root=(sudo -n); else as_root=(false); fi
  { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
    || { "${as_root[@]}" apt-get update -q >/dev/null 2>&1 \
         && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }; } \
    || echo "test.sh: could not install chromium + chromium-driver (needs root or passwordless sudo); the browser tests will fail" >&2
fi
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python -m mental_r1.default_model
exec .venv/bin/python -m pytest "$@"
