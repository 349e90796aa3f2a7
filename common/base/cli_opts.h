/* cli_opts.h — a small option parser shared by every `quept` command
 * (GNU-style "--name value", "--name=value" and "--flag"). It lives in base/
 * because the worker's command entry (worker/) and the front end (cli/)
 * both use it. */
#ifndef QUEPT_CLI_OPTS_H
#define QUEPT_CLI_OPTS_H

#include "err.h"

typedef struct {
    const char *name; /* without the leading "--" */
    int takes_value;
    const char *value; /* set by cli_parse; "1" for a present flag */
} CliOpt;

/* Parses argv into opts (positional arguments into pos, up to max_pos).
 * Unknown options, missing values and an option given twice are errors
 * naming the option; these, and the bad values of cli_get_int /
 * cli_get_float, have code QERR_USAGE. */
int cli_parse(int argc, char **argv, CliOpt *opts, int n_opts, const char **pos, int max_pos, int *n_pos,
              QErr *err);
const char *cli_get(const CliOpt *opts, int n_opts, const char *name);
int cli_get_int(const CliOpt *opts, int n_opts, const char *name, int def, int lo, int hi, int *out,
                QErr *err);
int cli_get_float(const CliOpt *opts, int n_opts, const char *name, double def, double lo, double hi,
                  double *out, QErr *err);
int cli_wants_help(int argc, char **argv);

#endif
