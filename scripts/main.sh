#!/usr/bin/env bash
# The main job: set up, then `vaegmm demo` — load MNIST (digits 1, 4, 8), train, fit the GMM from 5 labels
# per digit, evaluate on the MNIST test digits, and write every figure and the report into runs/demo/.
# MNIST is read from $VAEGMM_DATA, else ../shared/data/mnist when it exists, else the user cache (downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/vaegmm ] || bash scripts/setup.sh
if [ -z "${VAEGMM_DATA:-}" ] && [ -d ../shared/data/mnist ]; then
  export VAEGMM_DATA="$(cd ../shared/data/mnist && pwd)"
fi
exec .venv/bin/vaegmm demo --out-dir "${1:-runs/demo}"
