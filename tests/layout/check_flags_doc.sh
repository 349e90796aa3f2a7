#!/bin/sh
# usage: check_flags_doc.sh QUEPT DOC — DOC (docs/calibration-flags.md) must be
# exactly what `quept calibrate --help-markdown` prints: the reference is
# generated from the table of calibration settings (common/quant/qconfig_table.c).
out=$("$1" calibrate --help-markdown) || { echo "quept calibrate --help-markdown failed"; exit 1; }
if ! printf '%s\n' "$out" | diff -u "$2" -; then
    echo "$2 is stale: regenerate it with  quept calibrate --help-markdown > docs/calibration-flags.md"
    exit 1
fi
