/* cli.c — helpers shared by the subcommands: per-block --bits. */
#include "cli.h"

#include "base/paths.h"
#include "quant/qconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_block_bits(const char *s, int n_layers, int *bits, QErr *err) {
    if (!s) return qerr_set(err, "--bits is required");
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p || b < QBITS_MIN || b > QBITS_MAX)
            return qerr_set(err, "--bits: expected widths in 2..8, got '%s'", s);
        if (n >= n_layers) return qerr_set(err, "--bits: more widths than the %d blocks", n_layers);
        bits[n++] = (int)b;
        if (*end && *end != ',') return qerr_set(err, "--bits: cannot parse '%s'", s);
        p = *end == ',' ? end + 1 : end;
    }
    if (n == 1)
        for (int j = 1; j < n_layers; j++) bits[j] = bits[0];
    else if (n != n_layers)
        return qerr_set(err, "--bits: %d widths given, the model has %d blocks", n, n_layers);
    return 0;
}

int cli_check_job_paths(const char *model, const char *data, const char *out, const char *ckpt, QErr *err) {
    PathArg inputs[] = {{"--model", model}, {"--data", data}};
    if (paths_check_output((PathArg){"--out", out}, 0, inputs, 2, err) != 0) return -1;
    if (!ckpt) return 0;
    if (paths_inside(out, ckpt))
        return qerr_set(err, "--out %s lies inside --checkpoint %s: only the journal writes there", out,
                        ckpt);
    return paths_check_output((PathArg){"--checkpoint", ckpt}, 1, inputs, 2, err);
}
