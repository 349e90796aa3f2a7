#!/bin/bash
# The trust boundary: plain TCP only on loopback (or --insecure); the
# status socket authenticated like the work socket; names from the network
# sanitised before they reach a log or quept status; a flood of idle
# connections at a low descriptor limit does not fail the job.
. "$(dirname "$0")/lib.sh"
EPOCHS=2
make_data
P=$(free_port); S=$((P + 1))
coord_args() { echo --model "$MODEL" --data cal.qtok --epochs "$EPOCHS"; }

# 1. beyond loopback without CURVE: refused (exit 2), unless --insecure
"$QUEPT" coordinator $(coord_args) --out x.qept --checkpoint x.ckpt --bind "tcp://*:$P" 2>x.log
st=$?
[ $st -eq 2 ] || { cat x.log; fail "plain tcp://* accepted (exit $st)"; }
grep -q -- "--bind tcp://\*:$P listens beyond this machine without authentication.*--insecure" x.log ||
    { cat x.log; fail "message"; }
"$QUEPT" coordinator $(coord_args) --out x.qept --checkpoint x.ckpt --status-bind "tcp://0.0.0.0:$S" 2>y.log
[ $? -eq 2 ] || { cat y.log; fail "plain status on 0.0.0.0 accepted"; }
"$QUEPT" coordinator $(coord_args) --out i.qept --checkpoint i.ckpt --bind "tcp://*:$P" \
    --status-bind "tcp://127.0.0.1:$S" --insecure 2>i.log &
cp=$!
wait_for 20 test -f i.ckpt/coordinator.json || { cat i.log; fail "--insecure did not start"; }
kill -TERM $cp; wait $cp 2>/dev/null
pass "plain TCP beyond loopback refused (exit 2) unless --insecure"

# 2. with CURVE, the status socket answers authorised clients only
"$QUEPT" keygen keys >/dev/null 2>&1 || fail "keygen"
"$QUEPT" coordinator $(coord_args) --out c.qept --checkpoint c.ckpt --bind "tcp://127.0.0.1:$P" \
    --status-bind "tcp://127.0.0.1:$S" --curve-keys keys 2>c.log &
cp=$!
wait_for 20 test -f c.ckpt/coordinator.json || { cat c.log; fail "coordinator did not start"; }
"$QUEPT" status --connect "tcp://127.0.0.1:$S" --json --timeout 2 >plain.json 2>plain.err &&
    { cat plain.json; fail "status answered a client without keys"; }
"$QUEPT" status --connect "tcp://127.0.0.1:$S" --json --timeout 5 --curve-keys keys >auth.json 2>auth.err ||
    { cat auth.err c.log; fail "status refused the authorised client"; }
grep -q '"state"' auth.json || fail "no report"
pass "status socket: refused without keys, answered with --curve-keys"

# 3. a worker name with terminal escapes and CR/LF is shown sanitised
evil=$(printf 'w\033[31mred\r\nquept info: forged')
"$QUEPT" worker --connect "tcp://127.0.0.1:$P" --curve-keys keys --name "$evil" --max-lost 10 2>w.log &
wp=$!
wait_for 20 grep -q "registered" c.log || { cat c.log; fail "worker did not register"; }
"$QUEPT" status --connect "tcp://127.0.0.1:$S" --json --timeout 5 --curve-keys keys >named.json 2>/dev/null
grep -q 'w?\[31mred??quept info: forged' named.json || { cat named.json; fail "status name not sanitised"; }
grep -q $'\033' c.log && fail "an escape character reached the coordinator's log"
grep -q '^quept info: forged' c.log && fail "a forged log line"
grep -q 'worker w?\[31mred??quept info: forged registered' c.log || { cat c.log; fail "log line"; }
wait $cp || { cat c.log; fail "job with the oddly named worker"; }
wait $wp 2>/dev/null
pass "worker names sanitised in the log and in quept status"

# 4. a flood of idle connections at a low descriptor limit does not fail the job
calib ref.qept --quiet 2>/dev/null || fail "reference run"
PY=$(command -v python3 || true)
[ -n "$PY" ] || { echo "SKIP part 4: no python3 for the flood"; exit 0; }
cat >flood.py <<'PYEOF'
import socket, sys, time
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2); socks.append(s)
    except OSError:
        time.sleep(0.05)
print(len(socks), "connections", flush=True)
time.sleep(hold)
PYEOF
(
  ulimit -n 128
  exec "$QUEPT" coordinator $(coord_args) --out f.qept --checkpoint f.ckpt --bind "tcp://127.0.0.1:$P" \
      --status-bind "tcp://127.0.0.1:$S" --curve-keys keys 2>f.log
) &
cp=$!
wait_for 20 test -f f.ckpt/coordinator.json || { cat f.log; fail "flood coordinator did not start"; }
"$PY" flood.py "$P" 200 8 >flood.out 2>&1 &
fp=$!
sleep 1
"$QUEPT" worker --connect "tcp://127.0.0.1:$P" --curve-keys keys --name honest --max-lost 60 2>fw.log &
wp=$!
wait $cp || { cat f.log; fail "the job failed under a connection flood"; }
wait $wp 2>/dev/null; kill $fp 2>/dev/null; wait $fp 2>/dev/null
cmp ref.qept f.qept || fail "artifact under a flood differs from the single-process run"
pass "flood of $(cut -d' ' -f1 flood.out 2>/dev/null || echo '?') idle connections at ulimit -n 128: job completed, identical"
