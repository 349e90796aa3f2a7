#!/bin/bash
# Local multi-process mode: --workers 1 gives the single-process bytes (also
# with TEQ, PoT codes, activation widths and --rotate hadamard, which travel in
# the job's config: workers rotate the blocks they load, the coordinator the
# embeddings);
# --workers 2 gives a valid artifact that evaluates; bad input is refused.
. "$(dirname "$0")/lib.sh"
make_data
calib single.qept --quiet 2>/dev/null || fail "single-process calibrate"
calib w1.qept --workers 1 --quiet 2>w1.log || { cat w1.log; fail "--workers 1"; }
cmp single.qept w1.qept || fail "--workers 1 artifact differs from the single-process one"
for flags in "--teq-placement wide" "--format pot" "--bits 4,5,8 --act-bits 4,16,8" \
    "--rotate hadamard --rotate-seed 3 --bits 4,8 --act-bits 4,8"; do
    calib s2.qept --quiet $flags 2>/dev/null || fail "single-process calibrate $flags"
    calib w2.qept --workers 1 --quiet $flags 2>w1.log || { cat w1.log; fail "--workers 1 $flags"; }
    cmp s2.qept w2.qept || fail "--workers 1 $flags differs from the single-process artifact"
    rm -rf s2.qept w2.qept w2.qept.ckpt
done
pass "--workers 1 == single process (byte-identical; also with TEQ, PoT, weight-activation pairs and the Hadamard rotation)"
calib w2.qept --workers 2 --quiet 2>w2.log || { cat w2.log; fail "--workers 2"; }
"$QUEPT" inspect w2.qept >/dev/null 2>&1 || fail "inspect of the --workers 2 artifact"
"$QUEPT" eval --artifact w2.qept --bits 4 --data cal.qtok --reference "$MODEL" >eval.txt 2>&1 || { cat eval.txt; fail "eval"; }
pass "--workers 2 artifact verifies and evaluates"
[ -f w2.qept.ckpt/done.json ] && [ ! -f w2.qept.ckpt/block-0.qckp ] || fail "checkpoint not cleaned after success"
calib w2.qept --workers 2 --quiet 2>again.log || fail "rerun of a finished job"
grep -q "says the job is complete" again.log || { cat again.log; fail "a finished job was not recognised"; }
pass "a finished job's checkpoint is recognised"
calib x.qept --workers 2 --method gptq 2>gptq.log && fail "gptq with --workers accepted"
grep -q "distributed calibration runs quept" gptq.log || { cat gptq.log; fail "gptq refusal message"; }
calib x.qept --workers 0 2>w0.log && fail "--workers 0 accepted"
grep -q "workers" w0.log || fail "--workers 0 message"
pass "bad input refused"
