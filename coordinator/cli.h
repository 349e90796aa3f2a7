/* cli.h — the `quept` command: subcommand table and a small option parser
 * shared by every subcommand (GNU-style "--name value" and "--flag"). */
#ifndef QUEPT_CLI_H
#define QUEPT_CLI_H

#include "base/err.h"
#include "eval/metrics.h"

typedef struct {
    const char *name;  /* without the leading "--" */
    int takes_value;
    const char *value; /* set by cli_parse; "1" for a present flag */
} CliOpt;

/* Parses argv into opts (positional arguments into pos, up to max_pos).
 * Unknown options and missing values are errors naming the option. */
int cli_parse(int argc, char **argv, CliOpt *opts, int n_opts, const char **pos, int max_pos,
              int *n_pos, QErr *err);
const char *cli_get(const CliOpt *opts, int n_opts, const char *name);
int cli_get_int(const CliOpt *opts, int n_opts, const char *name, int def, int lo, int hi,
                int *out, QErr *err);
int cli_get_float(const CliOpt *opts, int n_opts, const char *name, double def, double lo,
                  double hi, double *out, QErr *err);
int cli_wants_help(int argc, char **argv);
/* --bits for a switch: one width (2..8) for every block, or a comma list
 * with one width per block. */
int cli_parse_block_bits(const char *s, int n_layers, int *bits, QErr *err);

int cmd_sample(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_submit(int argc, char **argv);

void print_eval_result(const EvalResult *r, int json);

#endif
