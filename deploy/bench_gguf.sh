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
#            (KLD 1.4e-11); every row a multiple of 256 except attn_output's
#            64 (the heads keep their size: it gets llama-quantize's fallback)
# Data, the same ids for every method: calibration = quept sample 128 x 256
# (seed 1), held-out = 16 x 256 (seed 7), both from stories260K. The model
# has no tokenizer file, so tests/llama_check/id_vocab.pl gives it a
# vocabulary in which every id is one character: llama-imatrix reads the
# calibration ids as text (BOS, space and non-ASCII byte ids, ~11 %, cannot
# be written and are left out), llama-perplexity scores the held-out ids
# through quept's KL-divergence base file (quept eval --kld-base-out on the
# full-precision model; llama-perplexity scores the second half of each
# 256-token chunk). quept: each config of CONFIGS with --seed s —
# by default `gguf` (quept calibrate --format gguf: widths 2,3,4,5,6,8
# calibrated as Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_0) and `legacy` (--format
# gguf --bits 4,5 --gguf-types 4=q4_0,5=q5_0) — exported with
# `quept export --format gguf` at the width whose type the row names (the
# codes as calibrated; rows that fit no block get llama-quantize's
# fallback). llama-quantize runs three ways: its ftype as it ships (a
# K-quant ftype mixes types: Q2_K raises attn_v / ffn_down, Q4_K_S the first
# attn_v …), with the imatrix, and with the imatrix and --pure (every linear
# in the one type: the same types and the same size as quept's file). It
# keeps the token embeddings (and an untied head) in F16 as quept does
# (--token-embedding-type f16 --output-tensor-type f16), so each type
# compares the linears. For the _M mixes (llama-quantize raises attn_v and
# ffn_down of some layers), quept's row is its per-block mix of the `gguf`
# artifact's types (export --avg-bits, chosen from the sensitivity table)
# at the largest budget whose file is no larger than llama-quantize's.
# Artifacts and logs are kept in OUT (default runs/bench-gguf) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${QUEPT_BIN:-$PWD/build/quept}
LB=${LLAMA_BIN:-$PWD/tests/llama_check/bin}
MODEL=${MODEL:-$PWD/../shared/models/stories260K.bin}
OUT=${OUT:-runs/bench-gguf}
SEEDS=${SEEDS:-0 1}
VARIANTS=${VARIANTS:-orig pad256}
TYPES=${TYPES:-Q2_K Q3_K_S Q3_K_M Q4_0 Q4_K_S Q4_K_M Q5_0 Q5_K_S Q5_K_M Q6_K Q8_0}
CONFIGS=${CONFIGS:-gguf|--format gguf
legacy|--format gguf --bits 4,5 --gguf-types 4=q4_0,5=q5_0}
IDV=$PWD/tests/llama_check/id_vocab.pl
for t in llama-perplexity llama-quantize llama-imatrix; do
  [ -x "$LB/$t" ] || { echo "bench_gguf: $LB/$t not found (bash tests/llama_check/build_tools.sh $t)" >&2; exit 2; }
done
[ -x "$Q" ] || { echo "bench_gguf: $Q not found (bash deploy/build.sh)" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

# quept's file of a llama-quantize type: type -> "config width" ("" when none)
quept_export_of() {
  case "$1" in
    Q2_K) echo "gguf 2" ;; Q3_K_S) echo "gguf 3" ;; Q4_K_S) echo "gguf 4" ;; Q5_K_S) echo "gguf 5" ;;
    Q6_K) echo "gguf 6" ;; Q8_0) echo "gguf 8" ;; Q4_0) echo "legacy 4" ;; Q5_0) echo "legacy 5" ;;
    *) echo "" ;;
  esac
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
    for im in none imatrix pure; do
      f="$D/lq-$t-$im.gguf"
      if [ ! -s "$f" ]; then
        # the embeddings stay F16, as in quept's files: the types compare the linears
        args=(--token-embedding-type f16 --output-tensor-type f16)
        [ $im != none ] && args+=(--imatrix "$D/imatrix.gguf")
        [ $im = pure ] && args+=(--pure)
        "$LB/llama-quantize" "${args[@]}" "$D/f16.gguf" "$f" "$t" 1 >"$D/lq-$t-$im.qlog" 2>&1 ||
          { echo "bench_gguf: llama-quantize $t failed (see $D/lq-$t-$im.qlog)" >&2; exit 1; }
      fi
      name="llama-quantize"; [ $im = imatrix ] && name="llama-quantize+im"; [ $im = pure ] && name="llama-q+im+pure"
      rows+=("$name $(score "$f" "$D/lq-$t-$im.log")")
    done
    qe=$(quept_export_of "$t")
    while IFS='|' read -r cn cflags; do
      [ -n "$cn" ] || continue
      read -r qc qb <<<"${qe:-- -}"
      [ "$qc" = "$cn" ] || continue
      for s in $SEEDS; do
        f="$D/quept-$cn-$t-s$s.gguf"
        [ -s "$f" ] || $Q export "$D/quept-$cn-s$s.qept" --bits "$qb" --format gguf \
          --tokenizer "$OUT/data/tok.bin" --out "$f" 2>/dev/null
        rows+=("quept:$cn(${qb}b,s$s) $(score "$f" "$D/quept-$cn-$t-s$s.log")")
      done
    done <<<"$CONFIGS"
    # a llama-quantize mix (_M: attn_v / ffn_down raised) against quept's
    # per-block mix from the sensitivity table (export --avg-bits) at the
    # largest budget, in steps of 0.05, whose file fits the imatrix file
    case "$t" in *_M)
      if [[ "$CONFIGS" == gguf\|* || "$CONFIGS" == *$'\n'gguf\|* ]]; then
        target=$(stat -c %s "$D/lq-$t-imatrix.gguf")
        for s in $SEEDS; do
          f="$D/quept-gguf-$t-s$s.gguf"
          if [ ! -s "$f" ]; then
            for a in $(seq 8 -0.05 2); do
              $Q export "$D/quept-gguf-s$s.qept" --avg-bits "$a" --format gguf --tokenizer "$OUT/data/tok.bin" \
                --out "$f.tmp" >/dev/null 2>&1 || continue
              if [ "$(stat -c %s "$f.tmp")" -le "$target" ]; then mv "$f.tmp" "$f"; echo "$a" >"$f.avg"; break; fi
            done
            rm -f "$f.tmp"
          fi
          [ -s "$f" ] && rows+=("quept:gguf(mix$(cat "$f.avg"),s$s) $(score "$f" "$D/quept-gguf-$t-s$s.log")")
        done
      fi ;;
    esac
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
echo "* = lowest KLD of the type (llama-q+im+pure: every linear in the type, the size of quept's file)."
