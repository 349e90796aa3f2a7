#!/bin/sh
# run.sh SCRIPT.mjs ARGS... — runs a k8s_check script with node, or skips
# (exit 77, ctest's skip) with a message when node is not installed.
command -v node >/dev/null 2>&1 || { echo "SKIP: node not found (apt-get install nodejs npm)"; exit 77; }
exec node "$@"
