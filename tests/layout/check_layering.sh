#!/usr/bin/env bash
# check_layering.sh SRC_DIR — the folder dependency rules of docs/architecture.md.
# Every #include "..." in common/*, proto, coordinator, worker and cli is
# resolved to the folder it names; an include of a folder that is not among
# the includer's allowed dependencies (or theirs, transitively) fails the
# test and is printed with file and line. A cycle between folders is thereby
# impossible: the table below is ordered bottom up and only names folders
# above it.
set -euo pipefail
cd "$1"
declare -A DEPS=(
  [base]=""
  [model]="base"
  [data]="base"
  [nn]="model"
  [quant]="base"
  [eval]="nn data"
  [engine]="nn quant"
  [artifact]="engine eval"
  [export]="artifact data model"
  [pipeline]="artifact engine eval quant"
  [proto]="quant engine"
  [coordinator]="proto pipeline"
  [worker]="proto engine"
  [cli]="coordinator worker export pipeline proto"
)
declare -A CLOSURE
closure() { # $1 folder -> space-separated transitive deps
  local f=$1 out="" d
  for d in ${DEPS[$f]}; do out+=" $d $(closure "$d")"; done
  echo "$out"
}
for f in "${!DEPS[@]}"; do CLOSURE[$f]=" $(closure "$f" | tr ' ' '\n' | sort -u | xargs) "; done
folder_of() { # path -> folder name in the table
  case $1 in
    common/*) local r=${1#common/}; echo "${r%%/*}" ;;
    *) echo "${1%%/*}" ;;
  esac
}
bad=0 checked=0
while IFS= read -r file; do
  dir=$(dirname "$file")
  from=$(folder_of "$file")
  [ -n "${DEPS[$from]+x}" ] || { echo "unknown folder '$from' ($file): add it to the table"; bad=1; continue; }
  while IFS=: read -r line inc; do
    inc=${inc#*\"}; inc=${inc%\"*}
    if [ -f "$dir/$inc" ]; then target=$(realpath -m --relative-to=. "$dir/$inc")
    elif [ -f "common/$inc" ]; then target="common/$inc"
    elif [ -f "$inc" ]; then target=$inc
    else echo "$file:$line: cannot resolve #include \"$inc\""; bad=1; continue; fi
    to=$(folder_of "$target")
    checked=$((checked + 1))
    [ "$to" = "$from" ] && continue
    case "${CLOSURE[$from]}" in *" $to "*) ;; *)
      echo "$file:$line: $from may not include $to (\"$inc\"); allowed: ${CLOSURE[$from]}"; bad=1 ;;
    esac
  done < <(grep -n '^#include "' "$file" || true)
done < <(find common proto coordinator worker cli -name '*.[ch]' | sort)
echo "layering: $checked includes checked"
exit $bad
