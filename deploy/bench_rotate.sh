#!/usr/bin/env bash
# bench_rotate.sh — weight-activation pairs with and without the Hadamard
# rotation (issue 15, docs/results.md "Hadamard rotation with
# weight-activation pairs"): mean KLD (held-out, against the model the
# artifact was calibrated from) of RTN, GPTQ and QuEPT at W4A4, W5A5, W6A6,
# W8A8 (one artifact per method: --bits 4,5,6,8 --act-bits 4,5,6,8), each
# with and without --rotate hadamard, on stories260K and its
# activation-outlier variant (quept stress --channels 4 --alpha 32, the same
# function). The data is the quick start's (128 calibration sequences of 256
# tokens, seed 1; 32 held-out, seed 2), sampled from stories260K (the act
# variant computes the same function, so the same tokens).
#
#   OPENBLAS_NUM_THREADS=1 bash deploy/bench_rotate.sh            # both variants
#   VARIANTS=act RUNS="rtn rtn_rot" bash deploy/bench_rotate.sh
#
# RUNS (default all, in this order): rtn rtn_rot gptq gptq_rot quept_rot_s0
# quept_s0 quept_rot_s1 quept_s1 (QuEPT with its defaults, --seed 0 / 1;
# the rotation's seed is --rotate-seed's default 0). Artifacts and results
# (NAME.res: "cpu_seconds kld4 kld5 kld6 kld8") are kept in OUT (default
# runs/bench-rotate) and reused when present.
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${QUEPT_BIN:-build/quept}
MODEL=${MODEL:-../shared/models/stories260K.bin}
OUT=${OUT:-runs/bench-rotate}
VARIANTS=${VARIANTS:-clean act}
RUNS=${RUNS:-rtn rtn_rot gptq gptq_rot quept_rot_s0 quept_s0 quept_rot_s1 quept_s1}
P="--bits 4,5,6,8 --act-bits 4,5,6,8"
mkdir -p "$OUT"
[ -e "$OUT/calib.qtok" ] || $Q sample --model "$MODEL" --n 128 --len 256 --seed 1 --out "$OUT/calib.qtok" 2>/dev/null
[ -e "$OUT/eval.qtok" ] || $Q sample --model "$MODEL" --n 32 --len 256 --seed 2 --out "$OUT/eval.qtok" 2>/dev/null

flags_of() { # run name -> calibrate flags
  case "$1" in
    rtn) echo "--method rtn" ;;
    rtn_rot) echo "--method rtn --rotate hadamard" ;;
    gptq) echo "--method gptq" ;;
    gptq_rot) echo "--method gptq --rotate hadamard" ;;
    quept_s0) echo "--seed 0" ;;
    quept_s1) echo "--seed 1" ;;
    quept_rot_s0) echo "--seed 0 --rotate hadamard" ;;
    quept_rot_s1) echo "--seed 1 --rotate hadamard" ;;
    *) echo "bench_rotate: unknown run $1" >&2; exit 2 ;;
  esac
}

for v in $VARIANTS; do
  case "$v" in
    clean) m=$MODEL ;;
    act)
      m=$OUT/act.bin
      [ -e "$m" ] || $Q stress --model "$MODEL" --out "$m" --channels 4 --alpha 32 >&2 ;;
    *) echo "bench_rotate: unknown variant $v" >&2; exit 2 ;;
  esac
  mkdir -p "$OUT/$v"
  for r in $RUNS; do
    res=$OUT/$v/$r.res
    [ -e "$res" ] && continue
    # shellcheck disable=SC2046
    cpu=$( { TIMEFORMAT='%U %S'; time $Q calibrate --model "$m" --data "$OUT/calib.qtok" --out "$OUT/$v/$r.qept" \
      $P $(flags_of "$r") --quiet >/dev/null 2>"$OUT/$v/$r.log"; } 2>&1 | awk '{printf "%.1f", $1 + $2}')
    kld=$($Q eval --artifact "$OUT/$v/$r.qept" --bits all --data "$OUT/eval.qtok" --reference "$m" --json \
      2>>"$OUT/$v/$r.log" | grep -o '"kld_mean": [0-9.e+-]*' | awk '{printf " %s", $2}')
    echo "$cpu$kld" >"$res"
    echo "$v $r: $(cat "$res")"
  done
done
