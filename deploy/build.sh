#!/usr/bin/env bash
# Configures and builds one flavour of quept.
#   deploy/build.sh            Release build in build/
#   deploy/build.sh asan       Debug + AddressSanitizer + UBSan in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-release}" in
  release) dir=build; flags="-DCMAKE_BUILD_TYPE=Release" ;;
  asan)    dir=build-asan; flags="-DCMAKE_BUILD_TYPE=Debug -DQUEPT_SANITIZE=ON" ;;
  *) echo "usage: deploy/build.sh [release|asan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" $flags >/dev/null
cmake --build "$dir" -j"$(nproc)"
