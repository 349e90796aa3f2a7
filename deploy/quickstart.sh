#!/usr/bin/env bash
# The README's first command: install the dependencies, build, and run the
# default job on the tiny real model ../shared/models/stories260K.bin.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash deploy/build.sh release
MODEL=${QUEPT_MODEL:-../shared/models/stories260K.bin}
OUT=${QUEPT_OUT:-runs/quickstart}
if [ ! -f "$MODEL" ]; then
  echo "quickstart: model $MODEL not found (set QUEPT_MODEL)" >&2
  exit 1
fi
mkdir -p "$OUT"
Q=build/quept
# the model's own tokenizer is not available: calibration and evaluation data
# are sequences sampled from the model itself, with different seeds
$Q sample --model "$MODEL" --n 128 --len 256 --seed 1 --out "$OUT/calib.qtok"
$Q sample --model "$MODEL" --n 32 --len 256 --seed 2 --out "$OUT/eval.qtok"
echo "== full-precision model on held-out samples"
$Q eval --model "$MODEL" --data "$OUT/eval.qtok" --reference "$MODEL"
# one artifact per method, each holding bits 2-8 (QuEPT with its defaults:
# 15 epochs and at least 840 steps per block, a few minutes here;
# QUEPT_EPOCHS=N for a quicker look: N epochs, no step floor)
EPOCHS_ARGS=()
if [ -n "${QUEPT_EPOCHS:-}" ]; then EPOCHS_ARGS=(--epochs "$QUEPT_EPOCHS"); fi
$Q calibrate --model "$MODEL" --data "$OUT/calib.qtok" --out "$OUT/rtn.qept" --method rtn --quiet
$Q calibrate --model "$MODEL" --data "$OUT/calib.qtok" --out "$OUT/gptq.qept" --method gptq --quiet
$Q calibrate --model "$MODEL" --data "$OUT/calib.qtok" --out "$OUT/quept.qept" "${EPOCHS_ARGS[@]}"
for method in rtn gptq quept; do
  echo "== $method: every bit width from one artifact (KLD vs the FP model)"
  $Q eval --artifact "$OUT/$method.qept" --bits all --data "$OUT/eval.qtok" --reference "$MODEL"
done
