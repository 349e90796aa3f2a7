# lib.sh — shared helpers of the distributed tests (sourced). Each test runs
# in its own temp dir on stories260K with a few short epochs; ctest sets
# QUEPT (the binary) and SHARED (../shared).
set -u
: "${QUEPT:?QUEPT must point at the quept binary}" "${SHARED:?SHARED must point at ../shared}"
MODEL="$SHARED/models/stories260K.bin"
if [ ! -f "$MODEL" ]; then echo "SKIP: $MODEL not found"; exit 77; fi
export OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d /tmp/quept-disttest-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
cd "$WORK"
EPOCHS=${EPOCHS:-2}

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

make_data() { # 16 sequences of 64 tokens, seed 1
    "$QUEPT" sample --model "$MODEL" --n 16 --len 64 --seed 1 --out cal.qtok >/dev/null 2>&1 || fail "sample"
}

calib() { # calib OUT [extra flags...]: local mode run
    local out=$1; shift
    "$QUEPT" calibrate --model "$MODEL" --data cal.qtok --out "$out" --epochs "$EPOCHS" "$@"
}

calib_bg() { # as calib, for `calib_bg ... &`: exec, so $! is quept itself (kill reaches it)
    local out=$1; shift
    exec "$QUEPT" calibrate --model "$MODEL" --data cal.qtok --out "$out" --epochs "$EPOCHS" "$@"
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds
wait_for() {
    local t=$1; shift
    local end=$(( $(date +%s%N) / 1000000 + t * 1000 ))
    while [ $(( $(date +%s%N) / 1000000 )) -lt $end ]; do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# the local workers of a coordinator run (their private ipc:// dir is in argv)
workers_of() { pgrep -f " worker --connect ipc://$1" || true; }
no_workers_of() { [ -z "$(workers_of "$1")" ]; }
private_dir_of() { # the ipc dir a checkpoint's running coordinator recorded
    sed -n 's|.*"work": *"ipc://\(/tmp/quept-[A-Za-z0-9-]*\)/work".*|\1|p' "$1/coordinator.json" 2>/dev/null
}
free_port() { echo $(( 20000 + ($$ * 7 + RANDOM) % 30000 )); }
