#!/bin/sh
# run.sh QUEPT SHARED SCRATCH — the tokenizer.json check against an
# independent implementation (check.mjs). Installs its pinned npm packages
# when deploy/test.sh has not; skips (77, ctest's skip) only when node/npm
# are missing or the npm registry is unreachable.
dir=$(cd "$(dirname "$0")" && pwd)
[ -f "$2/data/wikitext-2-test.txt" ] || { echo "SKIP: $2/data/wikitext-2-test.txt not found"; exit 77; }
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
  { echo "SKIP: node/npm not found (apt-get install nodejs npm)"; exit 77; }
if [ ! -f "$dir/node_modules/@huggingface/tokenizers/package.json" ]; then
  if ! npm ci --prefix "$dir" --no-audit --no-fund --silent; then
    if npm ping >/dev/null 2>&1; then
      echo "FAIL: npm ci --prefix $dir failed although the registry answers"; exit 1
    fi
    echo "SKIP: the npm registry is unreachable, so the reference tokenizers cannot be installed"; exit 77
  fi
fi
exec node "$dir/check.mjs" "$@"
