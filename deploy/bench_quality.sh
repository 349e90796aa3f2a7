#!/usr/bin/env bash
# bench_quality.sh — the quality benchmark of issue 13: mean KLD (held-out,
# against the full-precision model the artifact was calibrated from) of RTN,
# GPTQ and QuEPT configurations at bits 2-8, on a model and its stress
# variants, for several seeds; one table per variant and seed with the best
# method of each width marked '*', and each QuEPT configuration's calibration
# time (CPU seconds) as a ratio to the first one's, measured in the same run.
#
#   bash deploy/bench_quality.sh                      # every variant, seeds 0 1
#   VARIANTS="clean act" SEEDS=0 bash deploy/bench_quality.sh
#   CONFIGS='default|
#   teq|--teq' bash deploy/bench_quality.sh            # one QuEPT config per line: name|flags
#
# Variants (the data of each is sampled from the variant itself, seed s:
# calibration `sample --seed 100+s`, held-out `sample --seed 200+s`):
#   clean    the model, N_CALIB (128) calibration sequences
#   act      quept stress --channels 4 --alpha 32 (activation outliers; the
#            same function as clean)
#   w2       quept stress --weight-outliers 0.001 --factor 20 (w2 entries)
#   small16  the model, 16 calibration sequences
# QuEPT runs with --seed s. Artifacts and per-run results are kept in OUT
# (default runs/bench-quality) and reused when present (delete OUT to rerun);
# runs one calibration at a time. Set OPENBLAS_NUM_THREADS yourself (the
# docs' figures use 1) and prefix `nice` on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${QUEPT_BIN:-build/quept}
MODEL=${MODEL:-../shared/models/stories260K.bin}
OUT=${OUT:-runs/bench-quality}
SEEDS=${SEEDS:-0 1}
VARIANTS=${VARIANTS:-clean act w2 small16}
N_CALIB=${N_CALIB:-128}
N_EVAL=${N_EVAL:-32}
LEN=${LEN:-256}
CONFIGS=${CONFIGS:-default|}
BASELINES=${BASELINES:-rtn gptq}
mkdir -p "$OUT"

variant_model() { # variant -> model path (made on first use)
  case "$1" in
    clean | small16) echo "$MODEL" ;;
    act)
      [ -e "$OUT/act.bin" ] || $Q stress --model "$MODEL" --out "$OUT/act.bin" --channels 4 --alpha 32 >&2
      echo "$OUT/act.bin" ;;
    w2)
      [ -e "$OUT/w2.bin" ] || $Q stress --model "$MODEL" --out "$OUT/w2.bin" --weight-outliers 0.001 \
        --factor 20 --linears w2 >&2
      echo "$OUT/w2.bin" ;;
    *) echo "bench_quality: unknown variant $1" >&2; exit 2 ;;
  esac
}

# run VARIANT SEED NAME FLAGS...: calibrates (unless its result exists) and
# writes NAME.res: "secs kld2 ... kld8 cpu_secs" (wall seconds; CPU seconds,
# user + system, of the calibration: the fairer measure on a shared machine)
run_one() {
  local v=$1 s=$2 name=$3
  shift 3
  local d="$OUT/$v/s$s" m
  m=$(variant_model "$v")
  [ -e "$d/$name.res" ] && return 0
  local t0 t1 cpu
  t0=$(date +%s.%N)
  cpu=$( { TIMEFORMAT='%U %S'; time $Q calibrate --model "$m" --data "$d/calib.qtok" --out "$d/$name.qept" \
    --quiet "$@" >/dev/null 2>"$d/$name.log"; } 2>&1 | awk '{printf "%.2f", $1 + $2}')
  t1=$(date +%s.%N)
  local kld
  kld=$($Q eval --artifact "$d/$name.qept" --bits all --data "$d/eval.qtok" --reference "$m" --json 2>>"$d/$name.log" |
    grep -o '"kld_mean": [0-9.e+-]*' | awk '{printf " %s", $2}')
  echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')$kld $cpu" >"$d/$name.res"
}

for v in $VARIANTS; do
  m=$(variant_model "$v")
  n=$N_CALIB
  [ "$v" = small16 ] && n=16
  for s in $SEEDS; do
    d="$OUT/$v/s$s"
    mkdir -p "$d"
    [ -e "$d/calib.qtok" ] || $Q sample --model "$m" --n "$n" --len "$LEN" --seed $((100 + s)) --out "$d/calib.qtok" 2>/dev/null
    [ -e "$d/eval.qtok" ] || $Q sample --model "$m" --n "$N_EVAL" --len "$LEN" --seed $((200 + s)) --out "$d/eval.qtok" 2>/dev/null
    for b in $BASELINES; do run_one "$v" "$s" "$b" --method "$b"; done
    while IFS='|' read -r name flags; do
      [ -n "$name" ] || continue
      # shellcheck disable=SC2086
      run_one "$v" "$s" "quept-$name" --seed "$s" $flags
    done <<<"$CONFIGS"
  done
done

# the tables: one per variant and seed, '*' marks the lowest KLD of a width
for v in $VARIANTS; do
  for s in $SEEDS; do
    d="$OUT/$v/s$s"
    echo
    echo "## $v, seed $s (mean KLD, held-out; wall and CPU seconds of the calibration, CPU ratio to the first QuEPT config)"
    echo
    rows=""
    for b in $BASELINES; do rows+="$b $(cat "$d/$b.res")"$'\n'; done
    while IFS='|' read -r name flags; do
      [ -n "$name" ] || continue
      rows+="quept-$name $(cat "$d/quept-$name.res")"$'\n'
    done <<<"$CONFIGS"
    printf '%s' "$rows" | awk '
      { name[NR] = $1; t[NR] = $2; cpu[NR] = NF >= 10 ? $10 : ""; for (i = 3; i <= 9; i++) { k[NR, i] = $i; if (!(i in best) || $i + 0 < best[i] + 0) best[i] = $i } }
      $1 ~ /^quept-/ && !seen { seen = 1; ref = NF >= 10 ? $10 : "" }
      END {
        printf "| method | 2 | 3 | 4 | 5 | 6 | 7 | 8 | wall s | CPU s | CPU ratio |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
        for (r = 1; r <= NR; r++) {
          printf "| %s", name[r]
          for (i = 3; i <= 9; i++) printf " | %.4g%s", k[r, i], (k[r, i] + 0 == best[i] + 0) ? "*" : ""
          printf " | %.1f | %s", t[r], cpu[r] == "" ? "n/a" : sprintf("%.1f", cpu[r])
          if (name[r] ~ /^quept-/ && cpu[r] != "" && ref != "") printf " | %.2f |\n", cpu[r] / ref
          else printf " | |\n"
        }
      }'
  done
done
