#!/bin/bash
# --bf16-activations: the activation streams (and a worker's shard input)
# stored in bf16. Single process == --workers 1 byte for byte; --workers 2
# completes and evaluates; a killed + resumed bf16 run == an uninterrupted
# one; the setting is part of the job (artifact, checkpoint fingerprint).
. "$(dirname "$0")/lib.sh"
EPOCHS=3
make_data
calib f32.qept --quiet 2>/dev/null || fail "single-process fp32"
calib single.qept --quiet --bf16-activations 2>single.log || { cat single.log; fail "single-process --bf16-activations"; }
"$QUEPT" inspect single.qept 2>&1 | grep -q '"bf16_activations": 1' || fail "the artifact does not record bf16_activations"
"$QUEPT" inspect f32.qept 2>&1 | grep -q 'bf16_activations' && fail "an fp32 artifact records bf16_activations"
cmp -s f32.qept single.qept && fail "--bf16-activations changed nothing"
calib w1.qept --workers 1 --quiet --bf16-activations 2>w1.log || { cat w1.log; fail "--workers 1 --bf16-activations"; }
cmp single.qept w1.qept || fail "--workers 1 --bf16-activations differs from the single-process artifact"
pass "--bf16-activations: --workers 1 == single process (byte-identical)"

calib w2.qept --workers 2 --quiet --bf16-activations 2>w2.log || { cat w2.log; fail "--workers 2 --bf16-activations"; }
"$QUEPT" inspect w2.qept 2>&1 | grep -q '"bf16_activations": 1' || fail "the --workers 2 artifact does not record bf16_activations"
"$QUEPT" eval --artifact w2.qept --bits all --data cal.qtok --reference "$MODEL" >eval.txt 2>&1 || { cat eval.txt; fail "eval"; }
grep -q "kld" eval.txt || { cat eval.txt; fail "eval printed no KLD"; }
pass "--workers 2 --bf16-activations: completes, verifies and evaluates"

# killed after 2 journaled blocks, resumed (the workers replay journaled
# blocks on bf16 streams): byte-identical
QUEPT_TEST_COORD_DIE_AFTER=2 calib k.qept --workers 2 --quiet --bf16-activations 2>k1.log
[ $? -eq 137 ] || { cat k1.log; fail "coordinator did not die by SIGKILL"; }
calib k.qept --workers 2 --bf16-activations 2>k2.log || { cat k2.log; fail "resume"; }
grep -q "journaled already" k2.log || { cat k2.log; fail "resume did not read the journal"; }
cmp w2.qept k.qept || fail "resumed --bf16-activations artifact differs"
pass "--bf16-activations: kill + resume byte-identical"

# the setting is part of the job: a checkpoint of one is refused by the other
QUEPT_TEST_COORD_DIE_AFTER=1 calib x.qept --workers 2 --quiet --bf16-activations 2>/dev/null
calib x.qept --workers 2 2>x.log && fail "fp32 resume of a bf16 checkpoint accepted"
grep -q "bf16_activations" x.log || { cat x.log; fail "message does not name bf16_activations"; }
rm -rf x.qept.ckpt
QUEPT_TEST_COORD_DIE_AFTER=1 calib x.qept --workers 2 --quiet 2>/dev/null
calib x.qept --workers 2 --bf16-activations 2>x2.log && fail "bf16 resume of an fp32 checkpoint accepted"
grep -q "bf16_activations" x2.log || { cat x2.log; fail "message does not name bf16_activations"; }
pass "a checkpoint with the other activation storage is refused"
