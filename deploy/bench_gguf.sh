#!/usr/bin/env bash
# bench_gguf.sh — issue 14's benchmark: per GGUF type, llama-quantize,
# llama-quantize with an importance matrix, and quept's export of one QuEPT
# artifact — file size, llama.cpp perplexity and KLD against the
# full-precision model, all measured by llama.cpp's own llama-perplexity.
#
#   bash deploy/bench_gguf.sh                    # variants orig pad256, seeds 0 1
#   VARIANTS=orig SEEDS=0 bash deploy/bench_gguf.sh
#   CONFIGS='default|' bash deploy/bench_gguf.sh  # quept configs, one per line: name|flags
#
# Needs build/quept and llama-perplexity, llama-quantize, llama-imatrix
# (`bash tests/llama_check/build_tools.sh llama-perplexity llama-quantize
# llama-imatrix` builds them into tests/llama_check/bin; LLAMA_BIN points
# elsewhere). Variants:
#   orig     stories260K (dim 64, FFN 172: no row fits a 256-weight
#            super-block, so llama-quantize falls back for K-quants)
#   pad256   quept stress --pad-dim 256 --pad-ffn 256: the same function
#            (KLD 1.4e-11), every row a multiple of 256
# Data, the same ids for every method: calibration = quept sample 128 x 256
# (seed 1), held-out = 16 x 256 (seed 7), both from stories260K. The model
# has no tokenizer file, so tests/llama_check/id_vocab.pl gives it a
# vocabulary in which every id is one character: llama-imatrix reads the
# calibration ids as text (BOS, space and non-ASCII byte ids, ~11 %, cannot
# be written and are left out), llama-perplexity scores the held-out ids
# through quept's KL-divergence base file (quept eval --kld-base-out on the
# full-precision model; llama-perplexity scores the second half of each
# 256-token chunk). quept: each config of CONFIGS (default: the defaults,
# and --gguf-grid: groups of 32, the blocks of the legacy types) with --seed s, exported at
# 4 bits as Q4_1, 5 bits as Q5_1 and 7 bits as Q8_0 — the types it writes
# exactly; other types are "-" (no K-quants yet). llama-quantize keeps the
# token embeddings (and an untied head) in F16 as quept does
# (--token-embedding-type f16 --output-tensor-type f16), so each type
# compares the linears.
# Artifacts and logs are kept in OUT (default runs/bench-gguf) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${QUEPT_BIN:-$PWD/build/quept}
LB=${LLAMA_BIN:-$PWD/tests/llama_check/bin}
MODEL=${MODEL:-$PWD/../shared/models/stories260K.bin}
OUT=${OUT:-runs/bench-gguf}
SEEDS=${SEEDS:-0 1}
VARIANTS=${VARIANTS:-orig pad256}
TYPES=${TYPES:-Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_M Q4_K_M Q5_K_M Q6_K}
CONFIGS=${CONFIGS:-default|
g32|--gguf-grid}
IDV=$PWD/tests/llama_check/id_vocab.pl
for t in llama-perplexity llama-quantize llama-imatrix; do
  [ -x "$LB/$t" ] || { echo "bench_gguf: $LB/$t not found (bash tests/llama_check/build_tools.sh $t)" >&2; exit 2; }
done
[ -x "$Q" ] || { echo "bench_gguf: $Q not found (bash deploy/build.sh)" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

# quept's exact exports: type -> "bits gguf-type"
quept_export_of() {
  case "$1" in Q4_1) echo "4 q4_1" ;; Q5_1) echo "5 q5_1" ;; Q8_0) echo "7 q8_0" ;; *) echo "" ;; esac
}
# llama-perplexity's log -> "ppl kld" (its summary lines), "nan nan" when absent
lp_figures() {
  local ppl kld
  ppl=$(sed -n 's/^Mean PPL(Q) *: *\([-0-9.]*\).*/\1/p' "$1" | head -1)
  kld=$(sed -n 's/^Mean    KLD: *\([-0-9.]*\).*/\1/p' "$1" | head -1)
  echo "${ppl:-nan} ${kld:-nan}"
}
# score FILE.gguf LOG: llama-perplexity on the held-out base; prints "bytes ppl kld".
# Its asynchronous log may lose the summary (or part of it) at exit: rerun,
# at most 3 times.
score() {
  local f=$1 log=$2 try
  if [ ! -s "$log" ] || [[ "$(lp_figures "$log")" == *nan* ]]; then
    for try in 1 2 3; do
      "$LB/llama-perplexity" -m "$f" --kl-divergence-base "$D/base.kld" --kl-divergence -c 256 -b 256 -t 1 \
        --no-warmup >"$log" 2>&1 || { echo "bench_gguf: llama-perplexity failed on $f (see $log)" >&2; exit 1; }
      [[ "$(lp_figures "$log")" == *nan* ]] || break
    done
  fi
  echo "$(stat -c %s "$f") $(lp_figures "$log")"
}

mkdir -p "$OUT/data"
[ -s "$OUT/data/tok.bin" ] || perl "$IDV" tokenizer 512 "$OUT/data/tok.bin"
[ -s "$OUT/data/cal.qtok" ] || $Q sample --model "$MODEL" --n 128 --len 256 --seed 1 --out "$OUT/data/cal.qtok" 2>/dev/null
[ -s "$OUT/data/ev.qtok" ] || $Q sample --model "$MODEL" --n 16 --len 256 --seed 7 --out "$OUT/data/ev.qtok" 2>/dev/null
[ -s "$OUT/data/cal.txt" ] || perl "$IDV" text "$OUT/data/cal.qtok" "$OUT/data/cal.txt"

for v in $VARIANTS; do
  D="$OUT/$v"
  mkdir -p "$D"
  case "$v" in
    orig) M=$MODEL ;;
    pad256)
      M="$D/model"
      [ -e "$M/config.json" ] || $Q stress --model "$MODEL" --out "$M" --pad-dim 256 --pad-ffn 256 2>/dev/null ;;
    *) echo "bench_gguf: unknown variant $v" >&2; exit 2 ;;
  esac
  [ -s "$D/f16.gguf" ] || $Q export --model "$M" --format gguf --tokenizer "$OUT/data/tok.bin" --out "$D/f16.gguf" 2>/dev/null
  [ -s "$D/base.kld" ] || $Q eval --model "$M" --data "$OUT/data/ev.qtok" --kld-base-out "$D/base.kld" >/dev/null 2>&1
  if [ ! -s "$D/imatrix.gguf" ]; then
    "$LB/llama-imatrix" -m "$D/f16.gguf" -f "$OUT/data/cal.txt" -o "$D/imatrix.gguf" -c 256 -b 256 -t 1 \
      >"$D/imatrix.log" 2>&1 || { echo "bench_gguf: llama-imatrix failed (see $D/imatrix.log)" >&2; exit 1; }
  fi
  while IFS='|' read -r cn cflags; do
    [ -n "$cn" ] || continue
    for s in $SEEDS; do
      a="$D/quept-$cn-s$s.qept"
      if [ ! -s "$a" ]; then
        t0=$(date +%s)
        # shellcheck disable=SC2086
        $Q calibrate --model "$M" --data "$OUT/data/cal.qtok" --out "$a" --seed "$s" $cflags --quiet 2>/dev/null
        echo "$(( $(date +%s) - t0 ))" >"$D/quept-$cn-s$s.secs"
      fi
    done
  done <<<"$CONFIGS"
  read -r fbytes fppl fkld <<<"$(score "$D/f16.gguf" "$D/f16.log")"
  echo
  echo "== $v ($M): llama-perplexity on 16 x 256 held-out ids (second half of each chunk), KLD vs the"
  echo "   full-precision model; F16 file: $fbytes bytes, PPL $fppl, KLD $fkld"
  printf '%-8s %-22s %10s %10s %10s\n' type method bytes PPL KLD
  for t in $TYPES; do
    rows=()
    for im in none imatrix; do
      f="$D/lq-$t-$im.gguf"
      if [ ! -s "$f" ]; then
        # the embeddings stay F16, as in quept's files: the types compare the linears
        args=(--token-embedding-type f16 --output-tensor-type f16)
        [ $im = imatrix ] && args+=(--imatrix "$D/imatrix.gguf")
        "$LB/llama-quantize" "${args[@]}" "$D/f16.gguf" "$f" "$t" 1 >"$D/lq-$t-$im.qlog" 2>&1 ||
          { echo "bench_gguf: llama-quantize $t failed (see $D/lq-$t-$im.qlog)" >&2; exit 1; }
      fi
      name="llama-quantize"; [ $im = imatrix ] && name="llama-quantize+im"
      rows+=("$name $(score "$f" "$D/lq-$t-$im.log")")
    done
    qe=$(quept_export_of "$t")
    while IFS='|' read -r cn cflags; do
      [ -n "$cn" ] || continue
      for s in $SEEDS; do
        if [ -n "$qe" ]; then
          read -r qb qt <<<"$qe"
          f="$D/quept-$cn-$t-s$s.gguf"
          [ -s "$f" ] || $Q export "$D/quept-$cn-s$s.qept" --bits "$qb" --format gguf --gguf-type "$qt" --force \
            --tokenizer "$OUT/data/tok.bin" --out "$f" 2>/dev/null
          rows+=("quept:$cn(${qb}b,s$s) $(score "$f" "$D/quept-$cn-$t-s$s.log")")
        else
          rows+=("quept:$cn(s$s) - - -")
        fi
      done
    done <<<"$CONFIGS"
    best=$(printf '%s\n' "${rows[@]}" | awk '$4 != "-" && $4 != "nan" { if (b == "" || $4 + 0 < m) { m = $4 + 0; b = $1 } } END { print b }')
    for r in "${rows[@]}"; do
      read -r name bytes ppl kld <<<"$r"
      mark=""; [ "$name" = "$best" ] && mark=" *"
      printf '%-8s %-22s %10s %10s %10s%s\n' "$t" "$name" "$bytes" "$ppl" "$kld" "$mark"
    done
  done
  while IFS='|' read -r cn _; do
    [ -n "$cn" ] || continue
    for s in $SEEDS; do
      echo "quept calibration, $cn, seed $s: $(cat "$D/quept-$cn-s$s.secs" 2>/dev/null || echo '?') s wall"
    done
  done <<<"$CONFIGS"
done
echo
echo "* = lowest KLD of the type. quept's Q8_0 file holds 7-bit codes (the same size as llama-quantize's Q8_0)."
