#!/bin/bash
# pod_test.sh — the ctest `container`: the image built from deploy/Dockerfile
# and a job run by real containers (podman), compared byte for byte with the
# same job run by the quept binary on this machine.
#
#   QUEPT=build/quept SHARED=../shared REPO=. bash tests/container/pod_test.sh
#
# 1. The README's `bash deploy/image.sh --tag ...` line, run as written,
#    builds the image (the offline base stand-in when no registry answers);
#    it runs `quept --help` as uid 10001, never as root.
# 2. A pod (`podman pod create`: one network namespace, as a Kubernetes pod
#    or a node's loopback) of a coordinator and 2 worker containers started
#    through the image's entrypoint with the environment the job's ConfigMap
#    gives, the pod spec's security context (uid 10001, read-only root,
#    no capabilities, no new privileges, /tmp a tmpfs), a podman volume
#    holding model and data at /data (read-only for the workers), CURVE keys
#    from `quept keygen` mounted read-only at /etc/quept/keys with the items
#    and mode 0440 of the job's Secret. The artifact equals the local run's.
# 3. The coordinator container SIGKILLed (`podman kill -s KILL`) after its
#    first journaled block and a new one started: it resumes from the journal
#    on the volume, the workers re-register, the artifact is identical.
# 4. A worker container SIGKILLed mid-job and a replacement started (as the
#    Job controller would): its shard goes back to the queue, the artifact
#    is identical.
# 5. `podman kube play` of what `quept submit --dry-run` renders (kubectl
#    kustomize), turned into Pods by tests/container/kube_pods.mjs: the
#    manifests' commands, env (ConfigMap, resourceFieldRef), volumes (the
#    claim, the Secret's items, emptyDir) and security context run for real;
#    the workers reach the coordinator by its Service name (podman's DNS).
#
# OPENBLAS_* variables of this environment are passed into the containers: the
# bytes are the same only with the same OpenBLAS kernels (OPENBLAS_CORETYPE).
# Exit 77 (skip) with a message only when podman is missing or cannot start
# a container here, or when ../shared's model is absent.
set -u
: "${QUEPT:?QUEPT must point at the quept binary}" "${SHARED:?SHARED must point at ../shared}"
: "${REPO:?REPO must point at the repository root}"
MODEL="$SHARED/models/stories260K.bin"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
[ -f "$MODEL" ] || skip "$MODEL not found"

# shellcheck source=../../deploy/podman/env.sh
source "$REPO/deploy/podman/env.sh"
ENGINE=podman
engine_setup || skip "podman not found (apt-get install podman buildah runc debootstrap)"
base_images_ensure auto || skip "no debian:12 base image: the registry is unreachable and debootstrap failed"
engine_probe || skip "podman cannot start a container on this machine"

export OPENBLAS_NUM_THREADS=1
TAG=$$
# the README's build line, run as written below (its tag is a local name until pushed)
BUILD_LINE=$(grep -m1 '^bash deploy/image.sh --tag ' "$REPO/README.md")
IMAGE=$(printf '%s\n' "$BUILD_LINE" | sed -n 's/^bash deploy\/image.sh --tag \([^ ]*\)$/\1/p')
[ -n "$IMAGE" ] || fail "README.md has no 'bash deploy/image.sh --tag IMAGE' line"
POD=quept-ct-$TAG
VOL=quept-ct-$TAG-data
WORK=$(mktemp -d /tmp/quept-container-XXXXXX)
cleanup() {
    podman pod rm -f -t 0 "$POD" >/dev/null 2>&1
    podman volume rm -f "$VOL" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds
wait_for() {
    local t=$1; shift
    local end=$(( $(date +%s) + t ))
    while [ "$(date +%s)" -lt $end ]; do "$@" && return 0; sleep 0.1; done
    return 1
}

# ---- 1. the image ----
(cd "$REPO" && bash deploy/image.sh --tag "$IMAGE") >image.log 2>&1 || { tail -30 image.log; fail "$BUILD_LINE"; }
grep -E '^(base|podman|image|digest|size):' image.log
out=$(podman run --rm "$IMAGE" --help 2>&1) || { echo "$out"; fail "the image does not run quept --help"; }
echo "$out" | grep -q "^usage: quept" || { echo "$out"; fail "quept --help printed no usage"; }
uid=$(podman run --rm --entrypoint id "$IMAGE" -u) || fail "id in the image"
[ "$uid" = 10001 ] || fail "the image runs as uid '$uid', not 10001"
pass "image: quept --help runs as uid 10001"

# ---- the volume, the keys, the local references ----
"$QUEPT" sample --model "$MODEL" --n 16 --len 64 --seed 1 --out cal.qtok >/dev/null 2>&1 || fail "sample"
# the same jobs run locally: 2 workers, so the same 2-shard plan
for e in 4 30; do
    "$QUEPT" calibrate --model "$MODEL" --data cal.qtok --out "ref$e.qept" --epochs $e --workers 2 --quiet 2>/dev/null ||
        fail "local reference run ($e epochs)"
done
podman volume create "$VOL" >/dev/null || fail "podman volume create"
MP=$(podman volume inspect --format '{{.Mountpoint}}' "$VOL")
mkdir -p "$MP/models" && cp "$MODEL" "$MP/models/" && cp cal.qtok "$MP/" || fail "filling the volume"
chown -R 10001:10001 "$MP" # the pod's fsGroup
"$QUEPT" keygen keys >/dev/null 2>&1 || fail "keygen"
# the Secret's items per role (k8s/base/*-job.yaml), mode 0440, group 10001
mkdir ckeys wkeys
cp keys/server.key keys/authorized ckeys/ && cp keys/client.key keys/server.pub wkeys/
chgrp -R 10001 ckeys wkeys && chmod 0440 ckeys/* wkeys/* && chmod 0750 ckeys wkeys

podman pod create --name "$POD" >/dev/null || fail "podman pod create"
RUN=(podman run -d --pod "$POD" --user 10001:10001 --read-only --tmpfs /tmp --cap-drop ALL
     --security-opt no-new-privileges)
for v in $(env | sed -n 's/^\(OPENBLAS_[A-Z0-9_]*\)=.*/\1/p'); do RUN+=(-e "$v"); done

coordinator() { # coordinator NAME JOB EPOCHS: the coordinator role, as the Job runs it
    "${RUN[@]}" --name "$1" -v "$VOL:/data" -v "$WORK/ckeys:/etc/quept/keys:ro" \
        -e QUEPT_MODEL=/data/models/stories260K.bin -e QUEPT_DATA=/data/cal.qtok \
        -e "QUEPT_OUT=/data/jobs/$2/$2.qept" -e "QUEPT_CHECKPOINT=/data/jobs/$2/checkpoint" \
        -e QUEPT_WORKERS=2 -e QUEPT_PORT=5555 -e QUEPT_STATUS_PORT=5556 -e QUEPT_CURVE=1 \
        -e QUEPT_KEYS_DIR=/etc/quept/keys -e "QUEPT_CALIB_ARGS=--epochs
$3" "$IMAGE" coordinator >/dev/null
}
worker() { # worker NAME JOB INDEX: the worker role of an Indexed Job
    "${RUN[@]}" --name "$1" -v "$VOL:/data:ro" -v "$WORK/wkeys:/etc/quept/keys:ro" \
        -e QUEPT_CONNECT=tcp://127.0.0.1:5555 -e "JOB_COMPLETION_INDEX=$3" \
        -e "QUEPT_CHECKPOINT=/data/jobs/$2/checkpoint" -e QUEPT_CURVE=1 -e QUEPT_KEYS_DIR=/etc/quept/keys \
        -e QUEPT_THREADS=1 -e QUEPT_MAX_LOST=60 "$IMAGE" worker >/dev/null
}
exit_of() { podman wait "$1" 2>/dev/null | tail -1; }
logs() { for c in "$@"; do echo "---- $c"; podman logs "$c" 2>&1 | tail -15; done; }
expect_exit() { # expect_exit CODE CONTAINER...
    local code=$1 c; shift
    for c in "$@"; do
        local got; got=$(exit_of "$c")
        [ "$got" = "$code" ] || { logs "$@"; fail "container $c exited '$got', expected $code"; }
    done
}
same_as() { # same_as JOB REF: the job's artifact is byte-identical to REF
    cmp "$MP/jobs/$1/$1.qept" "$2" || fail "job $1: the containers' artifact differs from the local run's"
}

start_job() { # start_job JOB EPOCHS: its coordinator JOB-coord and workers JOB-w0, JOB-w1
    coordinator "$1-coord" "$1" "$2" && worker "$1-w0" "$1" 0 && worker "$1-w1" "$1" 1 || fail "starting the containers"
}
mid_job() { # mid_job JOB: waits for its first journaled block; the job must still be running
    wait_for 120 test -f "$MP/jobs/$1/checkpoint/block-0.qckp" || { logs "$1-coord"; fail "no block journaled in 120 s"; }
    [ -f "$MP/jobs/$1/$1.qept" ] && fail "job $1 finished before the kill (make it longer)"
}

# ---- 2. a job in a pod ----
start_job a 4
expect_exit 0 a-coord a-w0 a-w1
same_as a ref4.qept
"$QUEPT" inspect "$MP/jobs/a/a.qept" >/dev/null || fail "quept inspect of the pod's artifact"
pass "pod of coordinator + 2 workers (CURVE, uid 10001, read-only root): artifact identical to the local run"

# ---- 3. the coordinator container SIGKILLed and started again ----
start_job b 30
mid_job b
podman kill -s KILL b-coord >/dev/null || fail "podman kill"
expect_exit 137 b-coord
coordinator b-coord2 b 30 || fail "starting the second coordinator"
expect_exit 0 b-coord2 b-w0 b-w1
podman logs b-coord2 2>&1 | grep -q "journaled already" || { logs b-coord2; fail "the new coordinator did not resume"; }
same_as b ref30.qept
pass "coordinator container SIGKILLed after a journaled block, started again: resumed, identical"

# ---- 4. a worker container SIGKILLed mid-job and replaced ----
start_job c 30
mid_job c
podman kill -s KILL c-w1 >/dev/null || fail "podman kill"
expect_exit 137 c-w1
worker c-w1b c 1 || fail "starting the replacement worker"
expect_exit 0 c-coord c-w0 c-w1b
podman logs c-coord 2>&1 | grep "worker worker-1 .*goes back to the queue" ||
    { logs c-coord; fail "the killed worker held no shard, or the coordinator did not notice"; }
same_as c ref30.qept
pass "worker container SIGKILLed mid-shard, replaced: its shard re-queued, identical"

# ---- 5. the rendered Kubernetes pod specs, played by podman ----
if ! command -v kubectl >/dev/null || ! command -v node >/dev/null ||
   [ ! -d "$REPO/tests/k8s_check/node_modules/yaml" ]; then
    echo "note: kubectl, node or tests/k8s_check/node_modules missing: podman kube play not tried"
    exit 0
fi
NET=quept-ct-$TAG-net
kube_cleanup() {
    podman pod rm -f -t 0 kp-coordinator kp-workers-0 kp-workers-1 >/dev/null 2>&1
    podman network rm -f "$NET" >/dev/null 2>&1
    cleanup
}
trap kube_cleanup EXIT
podman pod exists kp-coordinator && fail "a pod named kp-coordinator exists already on this machine"
"$QUEPT" submit --name kp --image "$IMAGE" --model /data/models/stories260K.bin --data /data/cal.qtok \
    --workers 2 --pvc "$VOL" --out-dir kp --worker-cpu 1 --coordinator-cpu 1 --worker-memory 1Gi \
    --coordinator-memory 1Gi --dry-run --epochs 4 >/dev/null || fail "quept submit --dry-run"
kubectl kustomize kp >rendered.yaml || fail "kubectl kustomize"
node "$REPO/tests/container/kube_pods.mjs" rendered.yaml "$WORK/secrets" >pods.yaml || fail "kube_pods.mjs"
podman network create "$NET" >/dev/null || fail "podman network create"
podman kube play --network "$NET" pods.yaml >play.log 2>&1 || { cat play.log; fail "podman kube play"; }
expect_exit 0 kp-coordinator-coordinator kp-workers-0-worker kp-workers-1-worker
sec=$(podman inspect kp-coordinator-coordinator --format \
      '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.EffectiveCaps}} {{.HostConfig.SecurityOpt}}')
[ "$sec" = "10001:10001 true [] [no-new-privileges]" ] ||
    fail "the played coordinator runs with '$sec', not the manifest's security context"
podman inspect kp-workers-0-worker --format '{{range .Config.Env}}{{println .}}{{end}}' | grep -qx OPENBLAS_NUM_THREADS=1 ||
    fail "the worker's OPENBLAS_NUM_THREADS (resourceFieldRef limits.cpu) is not 1"
podman logs kp-workers-0-worker 2>&1 | grep -q "registering with tcp://kp-coordinator:5555" ||
    { logs kp-workers-0-worker; fail "the worker did not connect through the Service name"; }
cmp "$MP/jobs/kp/kp.qept" ref4.qept || fail "the played job's artifact differs from the local run's"
pass "podman kube play of the rendered pod specs: uid 10001, read-only root, no capabilities, CURVE keys from the Secret, identical artifact"
