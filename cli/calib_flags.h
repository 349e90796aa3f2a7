/* calib_flags.h — the calibration flags shared by `quept calibrate`,
 * `quept coordinator` and `quept submit`: the settings' table
 * (quant/qconfig_table.h) plus the job options --max-seqs and --quiet. */
#ifndef QUEPT_CALIB_FLAGS_H
#define QUEPT_CALIB_FLAGS_H

#include <stdio.h>

#include "cli.h"
#include "quant/qconfig.h"

#define CALIB_MAX_OPTS 64

/* The flags' --help lines; the Markdown reference (docs/calibration-flags.md). */
void calib_flags_help(FILE *f);
void calib_flags_markdown(FILE *f);

/* Appends the calibration options (not --quiet: each command lists it) to
 * o, which has room for CALIB_MAX_OPTS more; returns the new count. */
int calib_opts_add(CliOpt *o, int n);
/* The QuantConfig (and --max-seqs) from parsed options; errors name the flag. */
int calib_opts_config(const CliOpt *o, int no, QuantConfig *qc, int *max_seqs, QErr *err);

#endif
