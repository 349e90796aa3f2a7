#!/usr/bin/env bash
# Builds the quept container image from deploy/Dockerfile and prints its
# size and digest.
#
#   bash deploy/image.sh [--tag NAME] [--base auto|registry|offline]
#
#   --tag NAME   image name (default localhost/quept:0.1.0); then push it:
#                podman push NAME   (or docker push NAME)
#   --base       where debian:12 and debian:12-slim come from when the engine
#                does not have them yet: the registry (registry), a local
#                stand-in built with debootstrap (offline), or the registry
#                when it answers and the stand-in otherwise (auto, default)
#
# Uses podman, else docker (ENGINE=docker to choose). With podman, when its
# defaults cannot start a container on this host, deploy/podman/containers.conf
# is used (and named). The build context is the repository root
# (.dockerignore leaves out builds, runs and npm trees).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=localhost/quept:0.1.0
base=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=${2:?--tag needs a name}; shift 2 ;;
    --base) base=${2:?--base needs auto, registry or offline}; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$base" in auto|registry|offline) ;; *) echo "image.sh: --base must be auto, registry or offline, not '$base'" >&2; exit 2 ;; esac

# shellcheck source=podman/env.sh
source deploy/podman/env.sh
engine_setup || { echo "image.sh: neither podman nor docker found (apt-get install podman)" >&2; exit 1; }
base_images_ensure "$base" || exit 1
engine_probe || exit 1

echo "building $tag from deploy/Dockerfile with $ENGINE"
start=$(date +%s)
"$ENGINE" build -f deploy/Dockerfile -t "$tag" .
secs=$(( $(date +%s) - start ))
id=$("$ENGINE" image inspect --format '{{.Id}}' "$tag")
digest=$("$ENGINE" image inspect --format '{{.Digest}}' "$tag")
bytes=$("$ENGINE" image inspect --format '{{.Size}}' "$tag")
echo "image:  $tag"
echo "id:     $id"
echo "digest: $digest"
echo "size:   $bytes bytes ($(( (bytes + 524288) / 1048576 )) MiB)"
echo "built in ${secs}s; push with: $ENGINE push $tag"
