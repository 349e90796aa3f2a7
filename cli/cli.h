/* cli.h — the `quept` command's subcommands and the helpers they share. The
 * option parser itself is base/cli_opts.h. */
#ifndef QUEPT_CLI_H
#define QUEPT_CLI_H

#include "base/cli_opts.h"
#include "eval/metrics.h"

/* --bits for a switch: one width (2..8) for every block, or a comma list
 * with one width per block. */
int cli_parse_block_bits(const char *s, int n_layers, int *bits, QErr *err);

/* Inputs are sacred: the artifact --out is neither --model nor --data nor
 * inside them, and, with a checkpoint (NULL: none), it is not inside the
 * checkpoint directory, which holds no input either (only the journal writes
 * there). */
int cli_check_job_paths(const char *model, const char *data, const char *out, const char *ckpt, QErr *err);

int cmd_sample(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_stress(int argc, char **argv);

void print_eval_result(const EvalResult *r, int json);

#endif
