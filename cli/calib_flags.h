/* calib_flags.h — the calibration flags shared by `quept calibrate` and
 * `quept coordinator` (one table, one parser, one help text). */
#ifndef QUEPT_CALIB_FLAGS_H
#define QUEPT_CALIB_FLAGS_H

#include "cli.h"
#include "quant/qconfig.h"

#define CALIB_MAX_OPTS 64

extern const char CALIB_FLAGS_HELP[];

/* Appends the calibration options to o (which has room for CALIB_MAX_OPTS
 * more); returns the new count. */
int calib_opts_add(CliOpt *o, int n);
/* The QuantConfig (and --max-seqs) from parsed options; errors name the flag. */
int calib_opts_config(const CliOpt *o, int no, QuantConfig *qc, int *max_seqs, QErr *err);

#endif
