#!/bin/bash
# perplexity_check.sh — the ctest `llama_perplexity`: quept eval and llama.cpp's
# own llama-perplexity side by side on the same chunks, through the
# KL-divergence base file in both directions.
#
#   QUEPT=build/quept SHARED=../shared REPO=. bash tests/llama_check/perplexity_check.sh
#
# stories260K is calibrated (2 epochs) and exported as GGUF at 8 bits (F16)
# and 4 bits (Q4_1). Then:
#  1. quept -> llama.cpp: `quept eval --artifact A --bits B --kld-base-out F`
#     on held-out token ids, and `llama-perplexity --kl-divergence
#     --kl-divergence-base F` on the GGUF of the same width: llama.cpp reads
#     our file as quept does (its PPL(base) = quept's ppl_base of the file;
#     at 8 bits, where no target falls below the file's floor, also quept's
#     perplexity), and its KLD between our base and its own run of the same
#     weights is what its kernels differ by;
#  2. llama.cpp -> quept: llama-perplexity writes the base of the F16 file
#     on a text (tokenized by llama.cpp itself), and `quept eval --kld-base F`
#     reads it: its ppl_base equals llama-perplexity's final estimate, and
#     quept's own perplexity on the file's tokens agrees with it (within 1 %:
#     measured 0.3 % at perplexity ~1000 on bytes of text, where llama.cpp's
#     F16 arithmetic moves a flat distribution; the KLD is 1.4e-5).
# Tolerances: a stored log probability is good to 16/65535/2; F16 files
# differ from quept by F16 activations (KLD <= 5e-4, PPL within 0.2 %), Q4_1
# by 8-bit activations (KLD <= 0.06, PPL within 8 %), as in test_llama_cpp.
#
# Skips (77) with a message when llama-perplexity is not built
# (tests/llama_check/build_tools.sh, run by deploy/test.sh) or ../shared's
# model is absent.
set -u
: "${QUEPT:?QUEPT must point at the quept binary}" "${SHARED:?}" "${REPO:?}"
LP=${LLAMA_PERPLEXITY:-$REPO/tests/llama_check/bin/llama-perplexity}
MODEL="$SHARED/models/stories260K.bin"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
[ -x "$LP" ] || skip "$LP not built (bash tests/llama_check/build_tools.sh; deploy/test.sh runs it)"
[ -f "$MODEL" ] || skip "$MODEL not found"
export OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d /tmp/quept-llamappl-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
cd "$WORK"

# within A B REL: |A - B| <= REL * |B|
within() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b < 0) b = -b; exit !(d <= r * b) }'; }
atmost() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
json_field() { sed -n "s/.*\"$1\": \([-0-9.e+]*\).*/\1/p"; }
lp_field() { sed -n "s/^$1 *: *\([-0-9.]*\).*/\1/p" | head -1; }

# a llama2.c tokenizer.bin of the model's 512 ids (llama.cpp needs a
# vocabulary; ids are what count): tests/llama_check/id_vocab.pl
perl "$REPO/tests/llama_check/id_vocab.pl" tokenizer 512 tok512.bin || fail "tokenizer"
"$QUEPT" sample --model "$MODEL" --n 16 --len 64 --seed 1 --out cal.qtok >/dev/null 2>&1 || fail "sample"
"$QUEPT" sample --model "$MODEL" --n 6 --len 64 --seed 9 --out ev.qtok >/dev/null 2>&1 || fail "sample"
"$QUEPT" calibrate --model "$MODEL" --data cal.qtok --out a.qept --epochs 2 --quiet 2>/dev/null || fail "calibrate"
for b in 8 4; do
    "$QUEPT" export a.qept --bits $b --format gguf --tokenizer tok512.bin --out b$b.gguf 2>/dev/null || fail "export $b"
done
LPARGS=(-c 64 -b 64 -t 1 --no-warmup)
# run_lp LOG LINE ARGS...: llama-perplexity ARGS into LOG until LOG holds LINE.
# Its log goes through an asynchronous writer thread that now and then loses
# the last lines at exit (seen: the final estimate, the KLD summary, with exit
# status 0), so a run whose summary is missing is repeated, at most 3 times;
# a failing exit status fails at once.
run_lp() {
    local log=$1 line=$2 try; shift 2
    for try in 1 2 3; do
        "$LP" "$@" >"$log" 2>&1 || return 1
        grep -q "$line" "$log" && return 0
        echo "note: llama-perplexity's output lacks '$line' (try $try): running it again"
    done
    return 0 # the caller reports what is missing
}

# ---- 1. quept writes the base, llama-perplexity reads it ----
# The file floors log probabilities at max - 16 (llama.cpp's format), so its
# PPL(base) reads low where next tokens are that unlikely (the 4-bit model):
# llama.cpp's PPL(base) is compared with quept's own reading of the same file.
printf '%-16s %10s %12s %12s %10s %10s\n' "quept base" "ppl quept" "ppl_base q" "PPL(base) l" "KLD l" "PPL(Q) l"
for b in 8 4; do
    ppl_q=$("$QUEPT" eval --artifact a.qept --bits $b --data ev.qtok --kld-base-out q$b.kld --json 2>/dev/null | json_field ppl)
    [ -n "$ppl_q" ] || fail "quept eval --kld-base-out at $b bits"
    pb_q=$("$QUEPT" eval --artifact a.qept --bits $b --kld-base q$b.kld --json 2>/dev/null | json_field ppl_base)
    [ -n "$pb_q" ] || fail "quept eval --kld-base on its own file at $b bits"
    run_lp lp$b.log "Mean    KLD" -m b$b.gguf --kl-divergence --kl-divergence-base q$b.kld "${LPARGS[@]}" ||
        { tail -20 lp$b.log; fail "llama-perplexity --kl-divergence on quept's base ($b bits)"; }
    base=$(lp_field "Mean PPL(base)" <lp$b.log); q=$(lp_field "Mean PPL(Q)" <lp$b.log); kld=$(lp_field "Mean    KLD" <lp$b.log)
    [ -n "$base" ] && [ -n "$q" ] && [ -n "$kld" ] || { tail -30 lp$b.log; fail "no KLD summary from llama-perplexity"; }
    printf '%-16s %10.4f %12.4f %12.4f %10.6f %10.4f\n' "$b bits ($( [ $b = 8 ] && echo F16 || echo Q4_1 ))" "$ppl_q" "$pb_q" "$base" "$kld" "$q"
    within "$base" "$pb_q" 1e-4 || fail "$b bits: llama.cpp reads PPL(base) $base from quept's file, quept reads $pb_q"
    if [ $b = 8 ]; then
        tk=5e-4; tp=2e-3
        within "$pb_q" "$ppl_q" 1e-3 || fail "8 bits: the file's PPL(base) $pb_q is not quept's perplexity $ppl_q"
    else tk=0.06; tp=8e-2; fi
    atmost "$kld" "$tk" || fail "$b bits: KLD(quept base || llama.cpp) $kld > $tk"
    within "$q" "$ppl_q" "$tp" || fail "$b bits: llama.cpp PPL $q vs quept $ppl_q"
done
pass "llama-perplexity reads quept's base files as quept does; KLD within the kernels' rounding"

# ---- 2. llama-perplexity writes the base, quept reads it ----
head -c 900 "$SHARED/data/tinystories-valid-sample.txt" >text.txt
run_lp lpw.log "Final estimate" -m b8.gguf -f text.txt --kl-divergence-base l8.kld "${LPARGS[@]}" ||
    { tail -20 lpw.log; fail "llama-perplexity writing a base file"; }
est=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' lpw.log)
[ -n "$est" ] && [ -s l8.kld ] || { tail -20 lpw.log; fail "llama-perplexity wrote no base / no final estimate"; }
out=$("$QUEPT" eval --artifact a.qept --bits 8 --kld-base l8.kld --json 2>&1) || { echo "$out"; fail "quept eval --kld-base"; }
ppl=$(echo "$out" | json_field ppl); pb=$(echo "$out" | json_field ppl_base); kld=$(echo "$out" | json_field kld_mean)
n=$(echo "$out" | sed -n 's/.*"positions": \([0-9]*\).*/\1/p')
printf '%-28s %10s %10s %12s %10s\n' "llama.cpp base -> quept" "est. PPL" "ppl_base" "KLD" "ppl quept"
printf '%-28s %10.4f %10.4f %12.6f %10.4f\n' "8 bits (F16), $n positions" "$est" "$pb" "$kld" "$ppl"
within "$pb" "$est" 1e-3 || fail "quept reads ppl_base $pb from llama.cpp's file, llama-perplexity estimated $est"
atmost "$kld" 5e-4 || fail "KLD(llama.cpp base || quept) $kld > 5e-4"
within "$ppl" "$est" 1e-2 || fail "quept's perplexity $ppl on llama.cpp's chunks vs its $est"
pass "quept reads llama-perplexity's base file: ppl_base = its estimate, quept's perplexity agrees"
