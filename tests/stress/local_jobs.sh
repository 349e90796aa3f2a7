#!/bin/bash
# Stress, not a test (no time limits, not in ctest): N small local jobs of
# 5 shards on one worker — the setting where the worker used to refuse an
# assignment that arrived before its compute thread went idle ("assignment
# while busy": 4 failures in 18 runs). Prints how many jobs ran, failed, and
# differed from the first job's bytes.
#   tests/stress/local_jobs.sh [N=200] [QUEPT=build/quept] [SHARED=../shared]
set -u
N=${1:-200}
root=$(cd "$(dirname "$0")/../.." && pwd)
QUEPT=${QUEPT:-$root/build/quept}
SHARED=${SHARED:-$root/../shared}
MODEL=$SHARED/models/stories260K.bin
[ -x "$QUEPT" ] && [ -f "$MODEL" ] || { echo "need $QUEPT and $MODEL"; exit 2; }
export OPENBLAS_NUM_THREADS=1
W=$(mktemp -d /tmp/quept-stress-XXXXXX)
trap 'rm -rf "$W"' EXIT
"$QUEPT" sample --model "$MODEL" --n 8 --len 64 --seed 1 --out "$W/cal.qtok" 2>/dev/null || exit 1
fail=0 differ=0 ref=""
t0=$(date +%s)
for i in $(seq 1 "$N"); do
  out="$W/j$i.qept"
  if ! "$QUEPT" calibrate --model "$MODEL" --data "$W/cal.qtok" --out "$out" --workers 1 --shards 5 \
       --epochs 1 --max-seqs 8 --quiet 2>"$W/j$i.log"; then
    fail=$((fail + 1)); echo "job $i failed:"; tail -3 "$W/j$i.log"
    continue
  fi
  sum=$(sha256sum "$out" | cut -c1-64)
  [ -z "$ref" ] && ref=$sum
  [ "$sum" = "$ref" ] || differ=$((differ + 1))
  rm -f "$out"; rm -rf "$out.ckpt"
done
echo "local_jobs: $N jobs (--workers 1 --shards 5) in $(( $(date +%s) - t0 )) s: $fail failed, $differ differed from the first"
[ $fail = 0 ] && [ $differ = 0 ]
