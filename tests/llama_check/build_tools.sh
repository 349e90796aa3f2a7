#!/usr/bin/env bash
# Builds llama.cpp tools — by default llama-perplexity (the ctest
# llama_perplexity); deploy/bench_gguf.sh asks for llama-quantize and
# llama-imatrix too — from the source
# bundle node-llama-cpp ships (node_modules/node-llama-cpp/llama/
# gitRelease.bundle, the llama.cpp release its prebuilt binaries come from)
# into tests/llama_check/bin/. Portable CPU code (-DGGML_NATIVE=OFF), no
# network; the build happens in a temporary directory outside the repository
# (its sources must not meet our own tools, e.g. deploy/format.sh), only the
# binaries land in bin/ (ignored by git).
#
#   bash tests/llama_check/build_tools.sh [TOOL...]   (after npm install --prefix tests/llama_check)
#
# Does nothing when bin/ already holds the tools built from the same bundle;
# a new bundle empties bin/ first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bundle="$here/node_modules/node-llama-cpp/llama/gitRelease.bundle"
[ -f "$bundle" ] || { echo "build_tools.sh: $bundle not found (npm install --prefix tests/llama_check first)" >&2; exit 1; }
stamp="$(sha256sum "$bundle" | cut -c1-16)"
tools="${*:-llama-perplexity}"
[ "$(cat "$here/bin/.bundle" 2>/dev/null)" = "$stamp" ] || rm -rf "$here/bin"
up_to_date=1
for t in $tools; do [ -x "$here/bin/$t" ] || up_to_date=0; done
if [ $up_to_date = 1 ]; then
  echo "$tools up to date in $here/bin"
  exit 0
fi
command -v g++ >/dev/null || { echo "build_tools.sh: g++ not found (apt-get install build-essential)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/quept-llama-build-XXXXXX")
trap 'rm -rf "$work"' EXIT
src="$work/src"
mkdir -p "$here/bin"
git clone -q "$bundle" "$src"
start=$(date +%s)
cmake -S "$src" -B "$work/out" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build "$work/out" --target $tools -j"$(nproc)" >/dev/null
for t in $tools; do cp "$work/out/bin/$t" "$here/bin/"; done
echo "$stamp" > "$here/bin/.bundle"
echo "built $tools in $(( $(date +%s) - start ))s into $here/bin"
