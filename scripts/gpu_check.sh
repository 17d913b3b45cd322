#!/usr/bin/env bash
# The checks to run where a GPU is lent: the test suite with the GPU visible (tests/test_device.py's GPU
# tests run there) and the demo on the GPU. It uses the python3 found on the PATH with its own torch (a GPU
# machine's image, not .venv), and reads MNIST from $VAEGMM_DATA and the course files from
# $VAEGMM_COURSE_DATA (copy ../shared/data beside the checkout where it does not travel with it).
# Logs go to ${OUT:-/tmp/vaegmm_gpu_check}.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/vaegmm_gpu_check}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1
SECONDS=0
python3 -c 'import sys; from vaegmm.cli import main; sys.exit(main())' demo --out-dir "$out/demo" --no-progress \
  > "$out/demo.log" 2>&1
echo "demo: exit $?, $SECONDS s"; grep -E "^training:|score|ssim|one_minus_mse" "$out/demo.log"
python3 -m pytest -q -p no:cacheprovider -rs tests 2>&1 | tee "$out/pytest.log" | tail -15
