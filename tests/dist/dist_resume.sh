#!/bin/bash
# Resume after failure: the coordinator SIGKILLed (by a test hook at an exact
# point, and from outside at a random point) and restarted — also for a
# weight-activation job with Hadamard rotation; a worker killed mid-block; a
# corrupt journal entry; a checkpoint of another job. Every resumed artifact
# is byte-identical to an uninterrupted run.
. "$(dirname "$0")/lib.sh"
EPOCHS=3
make_data
calib ref.qept --workers 2 --quiet 2>/dev/null || fail "uninterrupted run"

# 1. coordinator SIGKILLs itself after journaling 2 blocks; its workers must go too
QUEPT_TEST_COORD_DIE_AFTER=2 calib a.qept --workers 2 --quiet 2>a1.log
[ $? -eq 137 ] || { cat a1.log; fail "coordinator did not die by SIGKILL"; }
dir=$(private_dir_of a.qept.ckpt)
[ -n "$dir" ] || fail "no coordinator.json left by the killed coordinator"
wait_for 10 no_workers_of "$dir" || fail "orphan workers 10 s after the coordinator's SIGKILL"
ls a.qept.ckpt/block-*.qckp >/dev/null 2>&1 || fail "nothing journaled before the kill"
calib a.qept --workers 2 2>a2.log || { cat a2.log; fail "resume"; }
[ -d "$dir" ] && fail "the killed run's private directory $dir outlived the next local run"
grep -q "journaled already" a2.log || fail "resume did not read the journal"
cmp ref.qept a.qept || fail "resumed artifact differs"
pass "coordinator SIGKILL + restart: byte-identical, no orphans"

# 1b. the same for a weight-activation job with rotation: the journal replays
# activation-quantized streams through the online Hadamard
WA=(--rotate hadamard --rotate-seed 5 --bits 4,8 --act-bits 4,8)
calib wref.qept --workers 2 "${WA[@]}" --quiet 2>/dev/null || fail "uninterrupted W-A run"
QUEPT_TEST_COORD_DIE_AFTER=2 calib w.qept --workers 2 "${WA[@]}" --quiet 2>/dev/null
[ $? -eq 137 ] || fail "W-A coordinator did not die by SIGKILL"
calib w.qept --workers 2 "${WA[@]}" 2>w2.log || { cat w2.log; fail "W-A resume"; }
grep -q "journaled already" w2.log || fail "W-A resume did not read the journal"
cmp wref.qept w.qept || fail "resumed W-A artifact differs"
pass "W4A4/W8A8 with rotation: coordinator SIGKILL + restart byte-identical"

# 2. SIGKILL from outside while a block trains; workers notice and exit
EPOCHS=12 calib big.qept --workers 2 --quiet 2>/dev/null || fail "12-epoch reference"
EPOCHS=12 calib_bg b.qept --workers 2 --quiet 2>b1.log &
pid=$!
wait_for 60 test -f b.qept.ckpt/block-0.qckp || fail "no block journaled within 60 s"
dir=$(private_dir_of b.qept.ckpt)
[ -n "$dir" ] || fail "no coordinator.json"
[ -n "$(workers_of "$dir")" ] || fail "no workers running"
kill -KILL $pid
wait $pid 2>/dev/null
wait_for 10 no_workers_of "$dir" || fail "workers still alive 10 s after the coordinator's SIGKILL"
EPOCHS=12 calib b.qept --workers 2 --quiet 2>b2.log || { cat b2.log; fail "resume after outside kill"; }
cmp big.qept b.qept || fail "artifact after outside kill differs"
pass "outside SIGKILL mid-block: workers gone within 10 s, resume byte-identical"

# 3. a worker killed mid-block: its shard is reassigned (respawned worker) and continues
QUEPT_TEST_WORKER_DIE="*:3:2" calib c.qept --workers 2 2>c.log || { cat c.log; fail "run with a dying worker"; }
grep -q "local worker [01] died" c.log || { cat c.log; fail "the worker did not die"; }
grep -q "goes back to the queue" c.log || fail "shard not reassigned"
cmp ref.qept c.qept || fail "artifact after a worker kill differs"
pass "worker SIGKILL mid-block: shard reassigned, byte-identical"

# 4. a corrupt journal entry is recomputed, never used
QUEPT_TEST_COORD_DIE_AFTER=3 calib d.qept --workers 2 --quiet 2>/dev/null
f=$(ls d.qept.ckpt/block-*.qckp | head -1)
[ -n "$f" ] || fail "nothing journaled"
size=$(stat -c %s "$f")
printf '\xff' | dd of="$f" bs=1 seek=$((size - 9)) conv=notrunc 2>/dev/null
calib d.qept --workers 2 2>d.log || { cat d.log; fail "resume with a corrupt entry"; }
grep -q "is corrupt" d.log || { cat d.log; fail "corruption not reported"; }
cmp ref.qept d.qept || fail "artifact after a corrupt entry differs"
pass "corrupt journal entry recomputed"

# 5. another job's checkpoint is refused, naming what differs
QUEPT_TEST_COORD_DIE_AFTER=1 calib e.qept --workers 2 --quiet 2>/dev/null
EPOCHS=5 calib e.qept --workers 2 --checkpoint e.qept.ckpt 2>e.log && fail "other epochs accepted"
grep -q "epochs is 3 there, 5 here" e.log || { cat e.log; fail "message does not name epochs"; }
"$QUEPT" sample --model "$MODEL" --n 16 --len 64 --seed 9 --out other.qtok >/dev/null 2>&1
"$QUEPT" calibrate --model "$MODEL" --data other.qtok --out e.qept --epochs "$EPOCHS" --workers 2 2>e2.log && fail "other data accepted"
grep -q "data_sha256" e2.log || { cat e2.log; fail "message does not name the data"; }
calib e.qept --workers 2 --shards 1 2>e3.log && fail "other shard plan accepted"
grep -q "shards" e3.log || { cat e3.log; fail "message does not name the shards"; }
pass "checkpoint of another job refused"
