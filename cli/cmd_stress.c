/* cmd_stress.c — `quept stress`: writes a stress variant of a model
 * (model/stress.h). */
#include <stdio.h>

#include "base/log.h"
#include "cli.h"
#include "model/stress.h"

static const char *HELP =
    "usage: quept stress --model M --out O [--channels K --alpha A]\n"
    "                    [--weight-outliers FRAC --factor F [--linears L]] [--seed S]\n"
    "                    [--pad-dim D] [--pad-ffn H]\n"
    "\n"
    "Writes a stress variant of model M (llama2.c .bin or Hugging Face directory) to O,\n"
    "in the input's format (llama2.c: the legacy layout; HF: an F32 safetensors\n"
    "directory). O must not be M nor lie inside it.\n"
    "\n"
    "Activation outliers (function-preserving): in every layer, K input channels\n"
    "(a seeded choice, separately for each norm) of the attention and FFN RMSNorm\n"
    "weights are multiplied by A, and the matching input columns of wq/wk/wv\n"
    "(resp. w1/w3) are divided by A. The model computes the same function (exactly\n"
    "when A is a power of two, else up to float rounding) but its normed activations\n"
    "have K channels A times larger: the activation outliers real LLMs have.\n"
    "  --channels K        channels per norm and layer (default 0: off)\n"
    "  --alpha A           the factor, > 0 (default 1)\n"
    "\n"
    "Weight outliers (NOT function-preserving: a different model, to be compared\n"
    "with itself in full precision): in each chosen linear of every layer,\n"
    "round(FRAC x entries) distinct entries (a seeded choice) are multiplied by F.\n"
    "  --weight-outliers FRAC  share of entries, in [0, 1] (default 0: off)\n"
    "  --factor F          the factor, non-zero (default 1)\n"
    "  --linears L         comma list of wq wk wv wo w1 w2 w3 (or gate down up), or\n"
    "                      all (default w2)\n"
    "\n"
    "Padding (function-preserving): the model width and/or the FFN width zero-\n"
    "padded, e.g. so every row fits GGUF's 256-weight super-blocks. The RMSNorm\n"
    "weights are scaled by sqrt(dim / D) and eps by dim / D so the function is\n"
    "unchanged (up to float rounding); the head size stays, so a\n"
    "llama2.c model padded in width is written as a Hugging Face directory.\n"
    "  --pad-dim D         the new model width, >= dim (default: unchanged)\n"
    "  --pad-ffn H         the new FFN width, >= the FFN width (default: unchanged)\n"
    "\n"
    "  --seed S            seed of every choice (default 1)\n"
    "\n"
    "The variants of docs/results.md ('Stress variants'):\n"
    "  quept stress --model M --out act.bin --channels 4 --alpha 32\n"
    "  quept stress --model M --out w2.bin --weight-outliers 0.001 --factor 20\n"
    "  quept stress --model M --out pad256 --pad-dim 256 --pad-ffn 256\n";

int cmd_stress(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"model", 1, 0},           {"out", 1, 0},    {"channels", 1, 0}, {"alpha", 1, 0},
                  {"weight-outliers", 1, 0}, {"factor", 1, 0}, {"linears", 1, 0},  {"seed", 1, 0},
                  {"pad-dim", 1, 0},         {"pad-ffn", 1, 0}};
    int no = sizeof o / sizeof o[0], npos, seed;
    const char *pos[1];
    QErr err = {{0}};
    StressConfig sc;
    stress_config_default(&sc);
    double alpha, factor, frac;
    if (cli_parse(argc, argv, o, no, pos, 0, &npos, &err) ||
        cli_get_int(o, no, "channels", 0, 0, 1 << 30, &sc.channels, &err) ||
        cli_get_float(o, no, "alpha", 1.0, 1e-30, 1e30, &alpha, &err) ||
        cli_get_float(o, no, "weight-outliers", 0.0, 0.0, 1.0, &frac, &err) ||
        cli_get_float(o, no, "factor", 1.0, -1e30, 1e30, &factor, &err) ||
        cli_get_int(o, no, "seed", 1, 0, 0x7fffffff, &seed, &err) ||
        cli_get_int(o, no, "pad-dim", 0, 1, 1 << 16, &sc.pad_dim, &err) ||
        cli_get_int(o, no, "pad-ffn", 0, 1, 1 << 18, &sc.pad_ffn, &err) ||
        (cli_get(o, no, "linears") &&
         stress_parse_linears(cli_get(o, no, "linears"), &sc.wo_linears, &err))) {
        log_error("stress: %s", err.msg);
        return 2;
    }
    sc.alpha = (float)alpha;
    sc.wo_factor = (float)factor;
    sc.wo_frac = frac;
    sc.seed = (uint64_t)seed;
    const char *model_path = cli_get(o, no, "model"), *out_path = cli_get(o, no, "out");
    if (!model_path || !out_path) {
        log_error("stress: --model and --out are required (see --help)");
        return 2;
    }
    if ((sc.channels > 0) != (cli_get(o, no, "alpha") != NULL)) {
        log_error("stress: --channels and --alpha go together (see --help)");
        return 2;
    }
    if ((sc.wo_frac > 0.0) != (cli_get(o, no, "factor") != NULL)) {
        log_error("stress: --weight-outliers and --factor go together (see --help)");
        return 2;
    }
    if (sc.channels == 0 && sc.wo_frac == 0.0 && !sc.pad_dim && !sc.pad_ffn) {
        log_error("stress: nothing to do: give --channels K --alpha A, --weight-outliers FRAC --factor F, "
                  "and/or --pad-dim D --pad-ffn H");
        return 2;
    }
    if (stress_config_validate(&sc, NULL, &err) != 0) {
        log_error("stress: %s", err.msg);
        return 2;
    }
    StressReport rep;
    if (stress_write_model(model_path, out_path, &sc, &rep, &err) != 0) {
        log_error("stress: %s", err.msg);
        return qerr_exit_status(err.code);
    }
    log_info("wrote %s: %lld norm channels x %g, %lld weight entries x %g", out_path,
             (long long)rep.channels_scaled, (double)sc.alpha, (long long)rep.entries_scaled,
             (double)sc.wo_factor);
    return 0;
}
