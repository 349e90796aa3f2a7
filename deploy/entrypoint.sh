#!/bin/sh
# quept-entrypoint — the container image's entrypoint (/usr/local/bin/quept-entrypoint).
#
#   quept-entrypoint coordinator   quept coordinator, configured from the environment
#   quept-entrypoint worker        quept worker, configured from the environment
#   quept-entrypoint ARGS...       quept ARGS... (status, inspect, eval, --help, ...)
#
# The environment comes from the job's ConfigMap (k8s/base/kustomization.yaml
# lists every key; `quept submit` fills them in) and the pod spec:
#   QUEPT_MODEL QUEPT_DATA QUEPT_OUT QUEPT_CHECKPOINT   paths on the data volume (workers:
#                                                       the checkpoint only to see done.json)
#   QUEPT_WORKERS QUEPT_SHARDS                          --expect-workers, --shards (if set)
#   QUEPT_PORT QUEPT_STATUS_PORT                        the coordinator's ports
#   QUEPT_CONNECT                                       the workers' endpoint (the Service)
#   QUEPT_CURVE (1|0) QUEPT_KEYS_DIR                    CURVE on/off, the mounted keys
#   QUEPT_MAX_LOST QUEPT_THREADS                        worker --max-lost, --threads
#   QUEPT_CALIB_ARGS                                    calibration flags, one word a line
#   JOB_COMPLETION_INDEX                                set by Kubernetes in an Indexed Job
# A missing setting is an error naming it, with exit status 2 (the Jobs'
# podFailurePolicy fails the job at once on 2 instead of retrying).
set -eu

need() {
    eval "v=\${$1:-}"
    if [ -z "$v" ]; then
        echo "quept-entrypoint: $1 is not set (the job's ConfigMap or pod spec must set it)" >&2
        exit 2
    fi
}

role=${1:-}
case "$role" in
coordinator)
    shift
    for k in QUEPT_MODEL QUEPT_DATA QUEPT_OUT QUEPT_CHECKPOINT QUEPT_WORKERS \
             QUEPT_PORT QUEPT_STATUS_PORT; do need "$k"; done
    mkdir -p "$QUEPT_CHECKPOINT" "$(dirname "$QUEPT_OUT")"
    set -- coordinator --model "$QUEPT_MODEL" --data "$QUEPT_DATA" --out "$QUEPT_OUT" \
        --checkpoint "$QUEPT_CHECKPOINT" --bind "tcp://*:$QUEPT_PORT" \
        --status-bind "tcp://*:$QUEPT_STATUS_PORT" --expect-workers "$QUEPT_WORKERS" "$@"
    # --shards only when the job asked for it: otherwise the coordinator plans
    # one shard per worker, or keeps the plan of the journal it resumes
    if [ -n "${QUEPT_SHARDS:-}" ]; then set -- "$@" --shards "$QUEPT_SHARDS"; fi
    if [ "${QUEPT_CURVE:-1}" = 1 ]; then
        need QUEPT_KEYS_DIR
        set -- "$@" --curve-keys "$QUEPT_KEYS_DIR"
    else
        # the job asked for no CURVE (submit --no-curve): the pod's ports are
        # reachable beyond loopback, which the coordinator refuses unless told
        set -- "$@" --insecure
    fi
    # calibration flags, split on newlines only, no globbing
    old_ifs=$IFS
    IFS='
'
    set -f
    # shellcheck disable=SC2086
    set -- "$@" ${QUEPT_CALIB_ARGS:-}
    set +f
    IFS=$old_ifs
    ;;
worker)
    shift
    for k in QUEPT_CONNECT JOB_COMPLETION_INDEX; do need "$k"; done
    # A worker pod started after the job finished (a replacement that came up
    # late) would wait for a coordinator that is gone: the journal's done.json
    # (on the shared volume) says there is nothing left to do.
    if [ -n "${QUEPT_CHECKPOINT:-}" ] && [ -f "$QUEPT_CHECKPOINT/done.json" ]; then
        echo "quept-entrypoint: $QUEPT_CHECKPOINT/done.json: the job is complete; nothing to do"
        exit 0
    fi
    set -- worker --connect "$QUEPT_CONNECT" --name "worker-$JOB_COMPLETION_INDEX" "$@"
    if [ -n "${QUEPT_THREADS:-}" ]; then set -- "$@" --threads "$QUEPT_THREADS"; fi
    if [ -n "${QUEPT_MAX_LOST:-}" ]; then set -- "$@" --max-lost "$QUEPT_MAX_LOST"; fi
    if [ "${QUEPT_CURVE:-1}" = 1 ]; then
        need QUEPT_KEYS_DIR
        set -- "$@" --curve-keys "$QUEPT_KEYS_DIR"
    fi
    ;;
esac
exec quept "$@"
