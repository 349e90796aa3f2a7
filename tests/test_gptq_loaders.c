/* safetensors-int read as the GPTQ loaders read it: tests/ref/gptq_loaders.py
 * (run with /usr/bin/python3 and torch; skipped with a message without them)
 * decodes each export the way AutoGPTQ, GPTQModel and transformers do, from
 * their published layouts, and holds every weight to the safetensors-fp16
 * export of the same switch within the F16 rounding of the scales; it also
 * decodes each export wrongly on purpose and must see the mismatch.
 * Exports made here (one width for every block, quept artifacts with groups
 * of 32 at 2-4 bits and 64 at 5-8):
 *  - a random model of dims 64 / 128: every width 2..8 in the default
 *    format (gptq_v2 at 2/3/4/8, planar gptq_p at 5/6/7), v1 (gptq) at
 *    2/3/4 (at 8 its zero points, around 128, are refused: AutoGPTQ's
 *    8-bit CUDA kernels keep 4 bits of them; planar gptq_p at 3 bits is
 *    refused too: transformers would read it as classic);
 *  - stories260K (FFN width 172, when ../shared has it): 8 bits (172 * 8
 *    fills whole words: 43 rows, GPTQModel's ceil), and the refusals: 2-4
 *    bits (172 * b does not fill words), 5-7 (planar needs multiples of
 *    32), v1 at 8 (AutoGPTQ's floor: 40 qzeros columns for out 172 where the
 *    codes fill 43).
 * And the whole check fails on files that lie about their layout: the
 * classic 3-bit export relabelled gptq_p (GPTQModel reads its words as
 * planar) and a gptq_v2 export relabelled gptq (AutoGPTQ adds one to every
 * zero point): gptq_loaders.py must exit 1 on each. */
#include <string.h>
#include <sys/stat.h>

#include "artifact/switch.h"
#include "check.h"
#include "export/export.h"
#include "fixtures.h"

static char tmpdir[256];

static void quept_qc(QuantConfig *qc) {
    QErr err = {{0}};
    quant_config_default(qc);
    CHECK(quant_parse_bits(qc, "2-8", &err) == 0);
    for (int b = 2; b <= 8; b++) qc->group[b] = b <= 4 ? 32 : 64;
}

/* Appends " INT FP16" for width b in checkpoint format ckpt (NULL: the
 * default) of em to args; or, with needle, checks the export is refused
 * with a message holding it and leaves nothing. */
static void export_pair(const ElasticModel *em, const char *tag, int b, const char *ckpt, const char *needle,
                        char *args, size_t cap) {
    char dint[600], dfp[600];
    snprintf(dint, sizeof dint, "%s/%s_int%d_%s", tmpdir, tag, b, ckpt ? ckpt : "default");
    snprintf(dfp, sizeof dfp, "%s/%s_fp16_%d", tmpdir, tag, b);
    int *bits = malloc((size_t)em->cfg.n_layers * sizeof *bits);
    for (int j = 0; j < em->cfg.n_layers; j++) bits[j] = b;
    SwitchedModel sw = {0};
    QErr err = {{0}};
    CHECK_MSG(elastic_switch_codes(em, bits, &sw, &err) == 0, "%s", err.msg);
    int rc = export_int(em, &sw, ckpt, dint, &err);
    if (needle) {
        CHECK_MSG(rc != 0 && strstr(err.msg, needle),
                  "%s at %d bits (%s): expected a refusal with '%s', got: %s", tag, b,
                  ckpt ? ckpt : "default", needle, rc ? err.msg : "written");
        CHECK_MSG(access(dint, F_OK) != 0, "a refused export left %s", dint);
    } else {
        CHECK_MSG(rc == 0, "%s at %d bits (%s): %s", tag, b, ckpt ? ckpt : "default", err.msg);
        if (access(dfp, F_OK) != 0) CHECK_MSG(export_fp16(em, bits, dfp, &err) == 0, "%s", err.msg);
        size_t n = strlen(args);
        snprintf(args + n, cap - n, " %s %s", dint, dfp);
    }
    switched_free(&sw);
    free(bits);
}

/* dst: a copy of export src whose quantization_config names format `to`
 * instead of `from` (every occurrence: "format" and "checkpoint_format");
 * the weights are a symlink. */
static void relabel(const char *src, const char *dst, const char *from, const char *to) {
    char path[700], target[700];
    CHECK(mkdir(dst, 0700) == 0);
    snprintf(target, sizeof target, "%s/model.safetensors", src);
    snprintf(path, sizeof path, "%s/model.safetensors", dst);
    CHECK(symlink(target, path) == 0);
    snprintf(path, sizeof path, "%s/config.json", src);
    FILE *f = fopen(path, "rb");
    static char text[1 << 16];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    snprintf(path, sizeof path, "%s/config.json", dst);
    f = fopen(path, "w");
    CHECK(f != NULL);
    char qfrom[32];
    snprintf(qfrom, sizeof qfrom, "\"%s\"", from);
    int replaced = 0;
    char *p = text;
    for (char *hit; f && (hit = strstr(p, qfrom)); p = hit + strlen(qfrom), replaced++)
        fprintf(f, "%.*s\"%s\"", (int)(hit - p), p, to);
    if (f) {
        fputs(p, f);
        fclose(f);
    }
    CHECK_MSG(replaced == 2, "%s: %d occurrences of %s, expected format and checkpoint_format", src, replaced,
              qfrom);
}

/* gptq_loaders.py on one mislabelled pair: it must report the mismatch. */
static void expect_check_fails(const char *int_dir, const char *fp16_dir, const char *what) {
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/../ref/gptq_loaders.py %s %s 2>&1", QUEPT_TEST_DATA,
             int_dir, fp16_dir);
    int st;
    char *out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 1 && out && strstr(out, "beyond the bound"),
              "gptq_loaders.py on %s should fail with weights beyond the bound: status %d, output:\n%s", what,
              exit_code(st), out ? out : "");
    printf("mislabelled (%s): the check fails as it should\n", what);
    free(out);
}

int main(void) {
    int st;
    free(run_capture("/usr/bin/python3 -c 'import torch' 2>/dev/null", &st));
    if (exit_code(st) != 0) SKIP("/usr/bin/python3 with torch is missing (apt-get install python3-torch)");
    scratch_dir(tmpdir, sizeof tmpdir, "gptq_loaders");
    static char args[65536];
    snprintf(args, sizeof args, "/usr/bin/python3 %s/../ref/gptq_loaders.py", QUEPT_TEST_DATA);

    QuantConfig qc;
    quept_qc(&qc);
    ElasticModel em;
    Model m;
    QErr err = {{0}};
    ModelConfig c = llama_config(64, 128, 2, 4, 2, 96, 32);
    CHECK_MSG(model_init_random(&m, &c, 3, &err) == 0, "%s", err.msg);
    CHECK_MSG(elastic_build_synthetic(&em, &m, &qc, 3, &err) == 0, "%s", err.msg);
    for (int b = 2; b <= 8; b++) {
        export_pair(&em, "rand", b, NULL, NULL, args, sizeof args);
        if (b <= 4) export_pair(&em, "rand", b, "gptq", NULL, args, sizeof args);
    }
    export_pair(&em, "rand", 8, "gptq", "AutoGPTQ's 8-bit CUDA kernels keep 4 bits", args, sizeof args);
    export_pair(&em, "rand", 3, "gptq_p", "transformers (through optimum)", args, sizeof args);
    elastic_free(&em);

    char mpath[600];
    snprintf(mpath, sizeof mpath, "%s/models/stories260K.bin", QUEPT_SHARED_DIR);
    if (access(mpath, R_OK) == 0) {
        CHECK_MSG(model_load(&m, mpath, &err) == 0, "%s", err.msg);
        CHECK_MSG(elastic_build_synthetic(&em, &m, &qc, 4, &err) == 0, "%s", err.msg);
        export_pair(&em, "stories", 8, NULL, NULL, args, sizeof args);
        for (int b = 2; b <= 4; b++)
            export_pair(&em, "stories", b, NULL, "does not fill whole int32 words", args, sizeof args);
        for (int b = 5; b <= 7; b++)
            export_pair(&em, "stories", b, NULL, "packs whole blocks of 32 codes", args, sizeof args);
        export_pair(&em, "stories", 8, "gptq",
                    "AutoGPTQ allocates in//32*8 = 16 qweight rows and out//32*8 = 40 qzeros columns", args,
                    sizeof args);
        elastic_free(&em);
    } else {
        printf("NOTE: %s missing: the 172-wide case is skipped\n", mpath);
    }

    char src[600], dst[600], fp[600];
    snprintf(src, sizeof src, "%s/rand_int3_default", tmpdir);
    snprintf(dst, sizeof dst, "%s/lie_planar", tmpdir);
    snprintf(fp, sizeof fp, "%s/rand_fp16_3", tmpdir);
    relabel(src, dst, "gptq_v2", "gptq_p");
    expect_check_fails(dst, fp, "classic 3-bit words labelled gptq_p");
    snprintf(src, sizeof src, "%s/rand_int4_default", tmpdir);
    snprintf(dst, sizeof dst, "%s/lie_v1", tmpdir);
    snprintf(fp, sizeof fp, "%s/rand_fp16_4", tmpdir);
    relabel(src, dst, "gptq_v2", "gptq");
    expect_check_fails(dst, fp, "gptq_v2 zero points labelled gptq (v1)");

    strncat(args, " 2>&1", sizeof args - strlen(args) - 1);
    char *out = run_capture(args, &st);
    fputs(out ? out : "(no output)\n", stdout);
    CHECK_MSG(exit_code(st) == 0, "gptq_loaders.py exited with %d", exit_code(st));
    free(out);
    scratch_remove(tmpdir);
    CHECK_DONE();
}
