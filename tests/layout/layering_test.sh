#!/usr/bin/env bash
# ctest "layering": the tree obeys the folder rules, and the checker does
# catch a violation (an include of artifact/ planted in base/ of a copy).
set -euo pipefail
src=$1
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/check_layering.sh" "$src"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r "$src/common" "$src/proto" "$src/coordinator" "$src/worker" "$src/cli" "$tmp/"
sed -i '1i #include "artifact/elastic.h"' "$tmp/common/base/err.c"
if out=$(bash "$here/check_layering.sh" "$tmp" 2>&1); then
  echo "FAIL: a planted base -> artifact include was not reported"; exit 1
fi
grep -q 'common/base/err.c:1: base may not include artifact' <<<"$out" ||
  { echo "FAIL: unexpected report: $out"; exit 1; }
echo "planted violation reported: ok"
