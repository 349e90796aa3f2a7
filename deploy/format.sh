#!/usr/bin/env bash
# The house style (.clang-format) on every C source and header.
#   deploy/format.sh           rewrite the files in place
#   deploy/format.sh --check   list the files that differ and fail (ctest "format")
# Uses Debian 12's clang-format 14: other versions format some constructs
# differently, so the check insists on it (deploy/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLANG_FORMAT:-clang-format-14}
if ! command -v "$CF" >/dev/null; then
  echo "format: $CF not found (apt-get install clang-format-14)" >&2
  # in CI the check must run: a missing formatter fails instead of skipping
  [ "${CI:-}" = true ] && exit 1
  exit 77
fi
# our sources only: in a clone, what git tracks or would track (ignored
# build trees and npm packages are not ours)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- 'common/*.[ch]' 'proto/*.[ch]' 'coordinator/*.[ch]' 'worker/*.[ch]' \
    'cli/*.[ch]' 'tests/*.[ch]' 'tools/*.[ch]' | sort -u)
else
  mapfile -t files < <(find common proto coordinator worker cli tests tools -name '*.[ch]' -not -path '*/node_modules/*' | sort)
fi
if [ "${1:-}" = --check ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! "$CF" --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
      echo "format: $f is not formatted (run deploy/format.sh)"
      bad=1
    fi
  done
  [ $bad = 0 ] && echo "format: ${#files[@]} files formatted"
  exit $bad
fi
"$CF" --style=file -i "${files[@]}"
echo "format: ${#files[@]} files rewritten"
