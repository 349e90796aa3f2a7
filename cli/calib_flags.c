/* calib_flags.c — the calibration flags of `quept calibrate`, `quept
 * coordinator` and `quept submit`: the settings come from the table in
 * quant/qconfig_table.c; here only the job options, which are not part of
 * the QuantConfig. */
#include "calib_flags.h"

#include <stdlib.h>

#include "base/log.h"
#include "quant/qconfig_table.h"

static const char JOB_HELP[] = "  --max-seqs N        use the first N sequences of F\n"
                               "  --quiet             no progress lines\n";

void calib_flags_help(FILE *f) {
    qconfig_print_help(f);
    fputs(JOB_HELP, f);
}

void calib_flags_markdown(FILE *f) {
    qconfig_print_markdown(f);
    fputs("\nJob options, not part of the config: `--max-seqs N` (use the first N calibration sequences), "
          "`--quiet` (no progress lines).\n",
          f);
}

int calib_opts_add(CliOpt *o, int n) {
    int k = qconfig_cli_opts(o + n, CALIB_MAX_OPTS - 1);
    if (k < 0) { /* a programming error: the table outgrew CALIB_MAX_OPTS */
        log_error("calibration flags: more than %d", CALIB_MAX_OPTS - 1);
        abort();
    }
    o[n + k] = (CliOpt){"max-seqs", 1, NULL};
    return n + k + 1;
}

int calib_opts_config(const CliOpt *o, int no, QuantConfig *qc, int *max_seqs, QErr *err) {
    if (qconfig_cli_parse(o, no, qc, err) != 0 ||
        cli_get_int(o, no, "max-seqs", 0, 0, 1 << 30, max_seqs, err) != 0)
        return -1;
    return 0;
}
