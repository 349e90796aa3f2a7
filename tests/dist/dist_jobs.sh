#!/bin/bash
# Jobs that finish, and only with their own results: a worker error sends
# its shard back to the queue under a retry budget; done.json is believed
# only for the artifact it names, with the SHA-256 it recorded; one
# coordinator per checkpoint (flock); a journal entry of another job is
# refused by its fingerprint. Every completed artifact is byte-identical
# to an undisturbed run.
. "$(dirname "$0")/lib.sh"
EPOCHS=2
make_data
calib ref.qept --workers 1 --shards 4 --quiet 2>/dev/null || fail "undisturbed run"

# 1. a worker error: retried, identical; past the budget the job fails naming it
QUEPT_TEST_WORKER_FAIL="*:2:1" calib a.qept --workers 1 --shards 4 2>a.log || { cat a.log; fail "one error"; }
grep -q "reported an error (1 of 2 allowed)" a.log || { cat a.log; fail "the error was not retried"; }
cmp ref.qept a.qept || fail "artifact after a worker error differs"
QUEPT_TEST_WORKER_FAIL="*:2:9" calib b.qept --workers 1 --shards 4 2>b.log
st=$?
[ $st -eq 1 ] || { cat b.log; fail "exhausted budget: exit $st, expected 1"; }
grep -q "shard 2 failed 3 times (the retry budget); last, worker local-0: .*test hook: failing at block 2" b.log ||
    { cat b.log; fail "the failure does not name shard, budget and cause"; }
pass "worker error: shard retried (identical bytes); budget spent: exit 1 naming the cause"

# 2. done.json: another --out is refused; a changed or missing artifact is recomputed
cp ref.qept r.qept
calib r.qept --workers 1 --shards 4 --checkpoint r.ckpt --quiet 2>/dev/null || fail "job r"
cp r.qept other.qept
calib other.qept --workers 1 --shards 4 --checkpoint r.ckpt 2>o.log
st=$?
[ $st -eq 2 ] || { cat o.log; fail "another --out on a finished checkpoint: exit $st, expected 2"; }
grep -q "holds a finished job whose artifact is .*/r.qept" o.log || { cat o.log; fail "message"; }
calib r.qept --workers 1 --shards 4 --checkpoint r.ckpt 2>s.log || { cat s.log; fail "rerun of a finished job"; }
grep -q "says the job is complete" s.log || { cat s.log; fail "an intact artifact was not recognised"; }
printf '\x00' | dd of=r.qept bs=1 seek=100 conv=notrunc 2>/dev/null
cmp -s ref.qept r.qept && fail "corruption did not change the file"
calib r.qept --workers 1 --shards 4 --checkpoint r.ckpt 2>c.log || { cat c.log; fail "rerun after corruption"; }
grep -q "is not the artifact the job wrote" c.log || { cat c.log; fail "corruption not noticed"; }
cmp ref.qept r.qept || fail "recomputed artifact differs"
rm r.qept
calib r.qept --workers 1 --shards 4 --checkpoint r.ckpt 2>m.log || { cat m.log; fail "rerun after deletion"; }
grep -q "artifact .* is missing" m.log || { cat m.log; fail "missing artifact not noticed"; }
cmp ref.qept r.qept || fail "recomputed artifact differs (missing)"
pass "done.json: other --out refused (exit 2); changed or missing artifact recomputed, identical"

# 3. one coordinator per checkpoint: a second is refused, naming the first's pid
EPOCHS=40 calib_bg slow.qept --workers 1 --checkpoint lk.ckpt --quiet 2>/dev/null &
pid=$!
wait_for 30 test -f lk.ckpt/coordinator.json || fail "first coordinator did not start"
calib fast.qept --workers 1 --checkpoint lk.ckpt 2>lk.log && fail "a second coordinator was admitted"
grep -q "lk.ckpt is in use by another coordinator (pid $pid)" lk.log || { cat lk.log; fail "holder not named"; }
kill -TERM $pid
wait $pid 2>/dev/null
pass "checkpoint lock: second coordinator refused, holder pid named"

# 4. a journal entry of another job (same block, other seed) is refused and recomputed
calib x.qept --workers 1 --shards 4 --seed 7 --checkpoint x.ckpt --keep-checkpoint --quiet 2>/dev/null || fail "job x"
QUEPT_TEST_COORD_DIE_AFTER=1 calib y.qept --workers 1 --shards 4 --checkpoint y.ckpt --quiet 2>/dev/null
ls y.ckpt/block-0.qckp >/dev/null 2>&1 || fail "nothing journaled before the kill"
cp x.ckpt/block-1.qckp y.ckpt/block-1.qckp
calib y.qept --workers 1 --shards 4 --checkpoint y.ckpt 2>y.log || { cat y.log; fail "resume with a foreign entry"; }
grep -q "block-1.qckp is not this job's (it belongs to another job" y.log || { cat y.log; fail "foreign entry not named"; }
cmp ref.qept y.qept || fail "artifact after a foreign entry differs"
pass "foreign journal entry refused by fingerprint, recomputed, identical"
