#!/usr/bin/env bash
# The README's second command: the whole test suite, in the Release build and
# in the Debug + ASan + UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
# the independent GGUF reader (@huggingface/gguf) that test_export checks our
# files with; node/npm come from Debian when the machine has none
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm || true
fi
(command -v npm >/dev/null && npm ci --prefix tests/gguf_check --no-audit --no-fund --silent) ||
  echo "note: npm unavailable; test_export skips the independent GGUF check"
for flavour in release asan; do
  bash deploy/build.sh "$flavour"
  dir=build; [ "$flavour" = asan ] && dir=build-asan
  echo "== ctest ($flavour)"
  (cd "$dir" && ctest --output-on-failure -j2)
done
