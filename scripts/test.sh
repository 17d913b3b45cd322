#!/usr/bin/env bash
# The test command: sets up if needed, points the tests at ../shared/data when it exists, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/vaegmm ] || bash scripts/setup.sh
if [ -z "${VAEGMM_DATA:-}" ] && [ -d ../shared/data/mnist ]; then
  export VAEGMM_DATA="$(cd ../shared/data/mnist && pwd)"
fi
if [ -z "${VAEGMM_COURSE_DATA:-}" ] && [ -d ../shared/data/mnist_1_4_8 ]; then
  export VAEGMM_COURSE_DATA="$(cd ../shared/data/mnist_1_4_8 && pwd)"
fi
exec .venv/bin/python -m pytest "$@"
