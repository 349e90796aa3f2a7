/* main.c — the `quept` command: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli.h"
#include "dist_cmds.h"
#include "worker/worker.h"

static void usage(FILE *f) {
    fprintf(f,
            "quept %s — elastic-precision post-training quantization for Llama models\n"
            "\n"
            "usage: quept <command> [options]   (quept <command> --help for details)\n"
            "\n"
            "commands:\n"
            "  sample     sample token sequences from a model (calibration/eval data)\n"
            "  tokenize   text or JSONL to token windows with a model's tokenizer\n"
            "  calibrate  calibrate one elastic artifact for bits 2-8 (quept, rtn, gptq)\n"
            "  eval       perplexity, and KL divergence / top-1 agreement vs a reference\n"
            "  export     write a switched artifact as HF safetensors (F16 or GPTQ int) or GGUF\n"
            "  inspect    describe an artifact: config, storage, losses, sensitivity, checksums\n"
            "  bench      benchmarks (forward, recon, switch, distributed, pot)\n"
            "  stress     write a stress variant of a model (activation / weight outliers)\n"
            "\n"
            "distributed calibration (also: quept calibrate --workers N):\n"
            "  coordinator  plan shards, hand them to workers, journal, merge\n"
            "  worker       calibrate the shards a coordinator assigns\n"
            "  status       progress of a running job, or what a checkpoint holds\n"
            "  keygen       CURVE keys for coordinator and workers\n"
            "  submit       run a job on Kubernetes (kustomize overlay, kubectl apply)\n",
            QUEPT_VERSION);
}

int main(int argc, char **argv) {
    log_level_from_env();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("quept %s\n", QUEPT_VERSION);
        return 0;
    }
    if (strcmp(cmd, "sample") == 0) return cmd_sample(argc - 2, argv + 2);
    if (strcmp(cmd, "tokenize") == 0) return cmd_tokenize(argc - 2, argv + 2);
    if (strcmp(cmd, "calibrate") == 0) return cmd_calibrate(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0) return cmd_eval(argc - 2, argv + 2);
    if (strcmp(cmd, "inspect") == 0) return cmd_inspect(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0) return cmd_bench(argc - 2, argv + 2);
    if (strcmp(cmd, "stress") == 0) return cmd_stress(argc - 2, argv + 2);
    if (strcmp(cmd, "export") == 0) return cmd_export(argc - 2, argv + 2);
    if (strcmp(cmd, "coordinator") == 0) return cmd_coordinator(argc - 2, argv + 2);
    if (strcmp(cmd, "worker") == 0) return cmd_worker(argc - 2, argv + 2);
    if (strcmp(cmd, "status") == 0) return cmd_status(argc - 2, argv + 2);
    if (strcmp(cmd, "keygen") == 0) return cmd_keygen(argc - 2, argv + 2);
    if (strcmp(cmd, "submit") == 0) return cmd_submit(argc - 2, argv + 2);
    log_error("unknown command '%s'", cmd);
    usage(stderr);
    return 2;
}
