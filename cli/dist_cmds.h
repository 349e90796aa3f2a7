/* dist_cmds.h — the distributed commands: `quept coordinator`, `quept
 * status`, `quept keygen`, and `quept calibrate --workers`
 * (local multi-process mode). */
#ifndef QUEPT_DIST_CMDS_H
#define QUEPT_DIST_CMDS_H

#include "base/cli_opts.h"
#include "quant/qconfig.h"

#define COORD_MAX_LOCAL 64

int cmd_coordinator(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
/* `quept calibrate --workers N` (options already parsed by cmd_calibrate). */
int calibrate_local(const CliOpt *o, int no, const QuantConfig *qc, int max_seqs, int workers);

#endif
