#!/bin/bash
# Coordinator and workers as separate processes over TCP (as on a cluster):
# live status, CURVE (an unauthorised worker cannot register), a coordinator
# restarted under running workers (they re-register and the job resumes), and
# Ctrl-C on local mode (everything cleaned up).
. "$(dirname "$0")/lib.sh"
EPOCHS=10
make_data
P=$(free_port); S=$((P + 1))
coord() { # coord OUT CKPT [flags] &  (exec: $! is the coordinator itself)
    local out=$1 ck=$2; shift 2
    exec "$QUEPT" coordinator --model "$MODEL" --data cal.qtok --out "$out" --checkpoint "$ck" --epochs "$EPOCHS" \
        --bind "tcp://127.0.0.1:$P" --status-bind "tcp://127.0.0.1:$S" "$@"
}
# --max-lost defaults to 30 here; a caller may give its own (an option given twice is refused)
worker() { case " $* " in *" --max-lost "*) ;; *) set -- --max-lost 30 "$@" ;; esac
           "$QUEPT" worker --connect "tcp://127.0.0.1:$P" "$@"; }
worker_bg() { case " $* " in *" --max-lost "*) ;; *) set -- --max-lost 30 "$@" ;; esac
              exec "$QUEPT" worker --connect "tcp://127.0.0.1:$P" "$@"; } # for `worker_bg ... &`
json_has() { "$QUEPT" status --checkpoint "$1" --json 2>/dev/null | grep -q "$2"; }

# 1. CURVE: a worker with another key never registers; the right one finishes the job
"$QUEPT" keygen keys >/dev/null 2>&1 && "$QUEPT" keygen other >/dev/null 2>&1 || fail "keygen"
[ "$(stat -c %a keys/server.key)" = 600 ] || fail "secret key file not 0600"
coord k.qept k.ckpt --curve-keys keys 2>k.log &
cp=$!
wait_for 20 test -f k.ckpt/coordinator.json || fail "coordinator did not start"
cp -r keys bad && cp other/client.key bad/client.key
worker --curve-keys bad --name intruder --max-lost 3 2>bad.log &
worker --name plain --max-lost 3 2>plain.log &
sleep 2
"$QUEPT" status --checkpoint k.ckpt --json >st.json || fail "status"
grep -q '"workers":\[\]' st.json || { cat st.json; fail "an unauthorised worker registered"; }
grep -q "unauthorised" k.log || fail "the refusal was not logged"
worker --curve-keys keys --name good 2>good.log || { cat good.log k.log; fail "authorised worker"; }
wait $cp || { cat k.log; fail "coordinator with CURVE"; }
"$QUEPT" inspect k.qept >/dev/null 2>&1 || fail "artifact of the CURVE job"
pass "CURVE: unauthorised and plain workers refused, authorised worker completes the job"

# 2. live status while running, then the journal when no coordinator runs
coord s.qept s.ckpt --keep-checkpoint 2>s.log &
cp=$!
worker --name w0 2>w0.log &
wait_for 30 json_has s.ckpt '"state":"training"' || { cat s.log; fail "no block in training in the status"; }
"$QUEPT" status --checkpoint s.ckpt --json >live.json
for k in '"coordinator_running":true' '"state":"running"' '"name":"w0"' '"alive":true' '"group_loss"' '"eta_s"' '"tokens_per_s"'; do
    grep -q "$k" live.json || { cat live.json; fail "status lacks $k"; }
done
"$QUEPT" status --connect "tcp://127.0.0.1:$S" >live.txt || fail "status --connect"
grep -q "worker w0" live.txt && grep -q "shard 0" live.txt || { cat live.txt; fail "text status"; }
wait $cp || fail "status job"
"$QUEPT" status --checkpoint s.ckpt --json >after.json
grep -q '"coordinator_running":false' after.json && grep -q '"state":"done"' after.json || { cat after.json; fail "status after the job"; }
pass "status: live report from the coordinator, journal report after"

# 3. the coordinator killed under its workers and restarted: they re-register, the job resumes
coord r.qept r.ckpt 2>r1.log &
cp=$!
worker --name w0 2>rw0.log &
w0=$!
worker --name w1 2>rw1.log &
w1=$!
wait_for 60 test -f r.ckpt/block-0.qckp || fail "nothing journaled"
kill -KILL $cp
wait $cp 2>/dev/null
sleep 1
coord r.qept r.ckpt 2>r2.log &
cp=$!
wait $cp || { cat r2.log; fail "restarted coordinator"; }
wait $w0 && wait $w1 || { cat rw0.log rw1.log; fail "workers did not exit 0"; }
grep -q "coordinator restarted\|reconnecting" rw0.log rw1.log || fail "workers did not notice the restart"
grep -q "registered" r2.log || fail "no worker registered again"
"$QUEPT" calibrate --model "$MODEL" --data cal.qtok --out ref.qept --epochs "$EPOCHS" --workers 1 --quiet 2>/dev/null
cmp ref.qept r.qept || fail "artifact after a coordinator restart differs from an uninterrupted 1-shard run"
pass "coordinator restart under live workers: they re-register, byte-identical result"

# 4. a worker that goes silent (SIGSTOP: alive, but no heartbeats) is declared
#    dead after three heartbeats; its shard goes to an idle worker and resumes
#    from the journal; same bytes as an uninterrupted 2-shard run
EPOCHS=30
coord h.qept h.ckpt --expect-workers 2 2>h.log &
cp=$!
worker_bg --name a 2>ha.log &
wa=$!
wait_for 30 json_has h.ckpt '"name":"a","threads":1,"shard":[0-9]' || { cat h.log; fail "worker a got no shard"; }
worker_bg --name b 2>hb.log &
wb=$!
wait_for 30 json_has h.ckpt '"name":"b","threads":1,"shard":[0-9]' || { cat h.log; fail "worker b got no shard"; }
kill -STOP $wa
worker_bg --name c 2>hc.log &
wc=$!
wait $cp || { cat h.log; fail "job with a silent worker"; }
kill -KILL $wa 2>/dev/null
wait $wa 2>/dev/null
wait $wb && wait $wc || { cat hb.log hc.log; fail "workers b, c did not exit 0"; }
grep -q "worker a silent for .* declared dead" h.log || { cat h.log; fail "the silent worker was not declared dead"; }
grep -q "goes back to the queue" h.log || fail "its shard was not requeued"
sed -n '/worker a silent/,$p' h.log | grep -q "> worker [bc]" || { cat h.log; fail "no other worker took the shard"; }
calib ref2.qept --workers 2 --quiet 2>/dev/null || fail "2-shard reference"
cmp ref2.qept h.qept || fail "artifact after a silent worker differs from an uninterrupted 2-shard run"
pass "silent worker: declared dead after 3 heartbeats, shard reassigned, byte-identical"
EPOCHS=10

# 5. Ctrl-C on local mode: exit 130, no worker left
calib_bg c.qept --workers 2 2>c.log &
cp=$!
wait_for 30 test -f c.qept.ckpt/coordinator.json || fail "local run did not start"
dir=$(private_dir_of c.qept.ckpt)
wait_for 30 test -n "$(workers_of "$dir")" || fail "no local workers"
kill -INT $cp
wait $cp
rc=$?
[ $rc -eq 130 ] || { cat c.log; fail "exit status $rc after SIGINT (want 130)"; }
wait_for 5 no_workers_of "$dir" || fail "workers left after Ctrl-C"
[ ! -e "$dir" ] || fail "private ipc dir left behind"
pass "Ctrl-C: exit 130, workers and ipc dir cleaned up"
