/* cmd_sample.c — `quept sample`: seeded token sequences from a model. */
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/paths.h"
#include "cli.h"
#include "eval/sample.h"

static const char *HELP = "usage: quept sample --model M --n N --len T --out F [--seed S] [--temperature X]\n"
                          "\n"
                          "Samples N sequences of T tokens from model M (each starts with BOS = 1) and\n"
                          "writes them as a QTOK token file (docs/formats.md, 'Token files'). This is how a\n"
                          "model without its tokenizer gets calibration and evaluation data.\n"
                          "\n"
                          "  --model M        llama2.c checkpoint (.bin) or Hugging Face directory\n"
                          "  --n N            number of sequences (default 32)\n"
                          "  --len T          tokens per sequence, including BOS (default 256)\n"
                          "  --seed S         random seed (default 1); sequence i depends only on (S, i)\n"
                          "  --temperature X  sampling temperature, 0 = greedy (default 1.0)\n"
                          "  --out F          output token file (written atomically)\n";

static void progress(int i, int n, void *user) {
    (void)user;
    if (i == n || i % 16 == 0) fprintf(stderr, "\rsampled %d/%d sequences", i, n);
    if (i == n) fputc('\n', stderr);
}

int cmd_sample(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"model", 1, 0}, {"n", 1, 0},           {"len", 1, 0},
                  {"seed", 1, 0},  {"temperature", 1, 0}, {"out", 1, 0}};
    int no = sizeof o / sizeof o[0], npos;
    const char *pos[1];
    QErr err = {{0}};
    int n, T, seed;
    double temp;
    if (cli_parse(argc, argv, o, no, pos, 0, &npos, &err) ||
        cli_get_int(o, no, "n", 32, 1, 1 << 24, &n, &err) ||
        cli_get_int(o, no, "len", 256, 1, 1 << 24, &T, &err) ||
        cli_get_int(o, no, "seed", 1, 0, 0x7fffffff, &seed, &err) ||
        cli_get_float(o, no, "temperature", 1.0, 0.0, 100.0, &temp, &err)) {
        log_error("sample: %s", err.msg);
        return 2;
    }
    const char *model_path = cli_get(o, no, "model"), *out_path = cli_get(o, no, "out");
    if (!model_path || !out_path) {
        log_error("sample: --model and --out are required (see --help)");
        return 2;
    }
    PathArg model_arg = {"--model", model_path};
    if (paths_check_output((PathArg){"--out", out_path}, 0, &model_arg, 1, &err) != 0) {
        log_error("sample: %s", err.msg);
        return 2;
    }
    Model m;
    if (model_load(&m, model_path, &err) != 0) {
        log_error("%s", err.msg);
        return 1;
    }
    int rc = sample_to_file(&m, n, T, (uint64_t)seed, (float)temp, out_path, progress, NULL, &err);
    if (rc == 0)
        log_info("wrote %d x %d tokens to %s", n, T, out_path);
    else
        log_error("sample: %s", err.msg);
    model_free(&m);
    return rc == 0 ? 0 : 1;
}
