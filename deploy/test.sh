#!/usr/bin/env bash
# The README's second command: the whole test suite, in the Release build and
# in the Debug + ASan + UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
for flavour in release asan; do
  bash deploy/build.sh "$flavour"
  dir=build; [ "$flavour" = asan ] && dir=build-asan
  echo "== ctest ($flavour)"
  (cd "$dir" && ctest --output-on-failure -j2)
done
