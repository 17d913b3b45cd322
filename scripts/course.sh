#!/usr/bin/env bash
# The course job: set up, then train on the course's digits 1/4/8 files, reconstruct and classify the
# test files with the course's own commands, printing the metrics. Outputs go to runs/course/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/vaegmm ] || bash scripts/setup.sh
DATA=${VAEGMM_COURSE_DATA:-../shared/data/mnist_1_4_8}
if [ ! -f "$DATA/mnist_1_4_8_train.npz" ]; then
  echo "error: the course files are not in $DATA; set VAEGMM_COURSE_DATA to their folder." >&2
  exit 1
fi
DATA=$(cd "$DATA" && pwd)
OUT=${1:-runs/course}
mkdir -p "$OUT"
cd "$OUT"
PY=$OLDPWD/.venv/bin/python
VAE=$OLDPWD/vae.py
start=$(date +%s)
"$PY" "$VAE" "$DATA/mnist_1_4_8_train.npz" "$DATA/mnist_1_4_8_val.npz" train vae.pth gmm_params.pkl
# SSIM and 1 - MSE on all test images first; the RECON file's run then leaves its vae_reconstructed.npz.
"$PY" "$VAE" "$DATA/mnist_1_4_8_test.npz" test_reconstruction vae.pth
"$PY" "$VAE" "$DATA/mnist_1_4_8_test_recon.npz" test_reconstruction vae.pth
"$PY" "$VAE" "$DATA/mnist_1_4_8_test.npz" test_classifier vae.pth gmm_params.pkl
echo "all three course commands took $(( $(date +%s) - start )) s; outputs in $(pwd)"
