/* cli_opts.c — the option parser every `quept` command uses (cli_opts.h). */
#include "cli_opts.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int cli_parse(int argc, char **argv, CliOpt *opts, int n_opts, const char **pos, int max_pos, int *n_pos,
              QErr *err) {
    *n_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (*n_pos >= max_pos) return qerr_setc(err, QERR_USAGE, "unexpected argument '%s'", a);
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int found = 0;
        for (int k = 0; k < n_opts; k++) {
            if (strlen(opts[k].name) != len || strncmp(opts[k].name, name, len) != 0) continue;
            found = 1;
            /* silently keeping the last value would hide a typo'd script */
            if (opts[k].value) return qerr_setc(err, QERR_USAGE, "option --%s given twice", opts[k].name);
            if (opts[k].takes_value) {
                if (eq) {
                    opts[k].value = eq + 1;
                } else {
                    if (i + 1 >= argc)
                        return qerr_setc(err, QERR_USAGE, "option --%s needs a value", opts[k].name);
                    opts[k].value = argv[++i];
                }
            } else {
                if (eq) return qerr_setc(err, QERR_USAGE, "option --%s takes no value", opts[k].name);
                opts[k].value = "1";
            }
            break;
        }
        if (!found) return qerr_setc(err, QERR_USAGE, "unknown option '%s' (see --help)", a);
    }
    return 0;
}

const char *cli_get(const CliOpt *opts, int n_opts, const char *name) {
    for (int k = 0; k < n_opts; k++)
        if (strcmp(opts[k].name, name) == 0) return opts[k].value;
    return NULL;
}

int cli_get_int(const CliOpt *opts, int n_opts, const char *name, int def, int lo, int hi, int *out,
                QErr *err) {
    const char *v = cli_get(opts, n_opts, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi)
        return qerr_setc(err, QERR_USAGE, "--%s: expected an integer in [%d, %d], got '%s'", name, lo, hi, v);
    *out = (int)x;
    return 0;
}

int cli_get_float(const CliOpt *opts, int n_opts, const char *name, double def, double lo, double hi,
                  double *out, QErr *err) {
    const char *v = cli_get(opts, n_opts, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !isfinite(x) || x < lo || x > hi)
        return qerr_setc(err, QERR_USAGE, "--%s: expected a number in [%g, %g], got '%s'", name, lo, hi, v);
    *out = x;
    return 0;
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}
