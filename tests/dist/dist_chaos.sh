#!/bin/bash
# Chaos, bounded and seeded: a local job with 3 workers while a driver
# SIGKILLs or SIGSTOPs the coordinator or a random worker at random moments,
# CHAOS_ROUNDS rounds (default 6; seed CHAOS_SEED, default 1). After the
# rounds the job runs to its end; its artifact must be byte-identical to an
# undisturbed run. Prints the counts. A longer run by hand:
#   CHAOS_ROUNDS=50 CHAOS_SEED=7 QUEPT=build/quept SHARED=../shared bash tests/dist/dist_chaos.sh
. "$(dirname "$0")/lib.sh"
EPOCHS=6
ROUNDS=${CHAOS_ROUNDS:-6}
RANDOM=${CHAOS_SEED:-1}
make_data
calib ref.qept --workers 3 --quiet 2>/dev/null || fail "undisturbed run"
kills=0 wkills=0 stops=0 wstops=0 resumes=0 failures=0 completed=0
for r in $(seq 1 "$ROUNDS"); do
    rm -f c.qept.ckpt/coordinator.json # a SIGKILLed run's: wait for this run's own
    calib_bg c.qept --workers 3 --quiet 2>>chaos.log &
    pid=$!
    resumes=$((resumes + 1))
    wait_for 20 test -f c.qept.ckpt/coordinator.json || { kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null; continue; }
    sleep "0.$((RANDOM % 9 + 1))"
    dir=$(private_dir_of c.qept.ckpt)
    # no private dir read: never match other runs' workers (ctest runs tests side by side)
    [ -n "$dir" ] || dir=/nonexistent-$$
    mapfile -t ws < <(workers_of "$dir")
    action=$((RANDOM % 4)); [ -n "${CHAOS_VERBOSE:-}" ] && echo "round $r: action $action, ${#ws[@]} workers"
    case $action in
    0) kill -KILL $pid 2>/dev/null && kills=$((kills + 1)) ;;
    1) if [ ${#ws[@]} -gt 0 ]; then kill -KILL "${ws[RANDOM % ${#ws[@]}]}" 2>/dev/null && wkills=$((wkills + 1)); fi ;;
    2) kill -STOP $pid 2>/dev/null && { stops=$((stops + 1)); sleep "$((RANDOM % 3 + 1)).$((RANDOM % 10))"; kill -CONT $pid; } ;;
    3) if [ ${#ws[@]} -gt 0 ]; then
           w=${ws[RANDOM % ${#ws[@]}]}
           kill -STOP "$w" 2>/dev/null && { wstops=$((wstops + 1)); sleep "$((RANDOM % 5 + 1))"; kill -CONT "$w" 2>/dev/null; }
       fi ;;
    esac
    sleep "0.$((RANDOM % 9 + 1))"
    # end the round: SIGKILL whatever still runs (the next round resumes it)
    if kill -0 $pid 2>/dev/null; then kill -KILL $pid 2>/dev/null; fi
    wait $pid 2>/dev/null
    st=$?
    [ $st -ne 0 ] && [ $st -ne 137 ] && { failures=$((failures + 1)); echo "round $r: exit $st"; tail -5 chaos.log; }
    wait_for 10 no_workers_of "$dir" || { failures=$((failures + 1)); echo "round $r: orphan workers"; }
    if [ $st -eq 0 ]; then # the job finished within the round: check it, start a new one
        cmp -s ref.qept c.qept || { failures=$((failures + 1)); echo "round $r: artifact differs"; }
        completed=$((completed + 1))
        rm -rf c.qept c.qept.ckpt
    fi
done
calib c.qept --workers 3 --quiet 2>>chaos.log || { tail -20 chaos.log; fail "final run after chaos"; }
echo "chaos: $ROUNDS rounds (seed ${CHAOS_SEED:-1}): $kills coordinator SIGKILLs, $stops coordinator SIGSTOPs," \
     "$wkills worker SIGKILLs, $wstops worker SIGSTOPs, $resumes runs, $completed jobs completed within a round" \
     "(each identical), $failures failures"
[ $failures -eq 0 ] || fail "$failures failures"
cmp ref.qept c.qept || fail "artifact after chaos differs from the undisturbed run"
pass "chaos: artifact byte-identical to the undisturbed run"
