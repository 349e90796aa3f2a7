/* Inputs are sacred: no output path may name an input — the same file by
 * another name (hard link, symlink, "./x", "d/../x"), a file inside an input
 * directory, or a checkpoint file. Unit cases for base/paths.h, then every
 * command that writes (calibrate, calibrate --workers, coordinator, sample,
 * export, submit): refused with exit 2, the input's bytes untouched. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/paths.h"
#include "base/sha256.h"
#include "check.h"
#include "data/tokens.h"
#include "fixtures.h"
#include "model/model.h"

static char tmp[256];

static void touch(const char *p) {
    FILE *f = fopen(p, "w");
    if (f) {
        fputs("x", f);
        fclose(f);
    }
}

static void test_unit(void) {
    QErr err = {{0}};
    char a[512], hard[512], sym[512], dot[512], dir[512], inside[512], fresh[512];
    snprintf(a, sizeof a, "%s/a.bin", tmp);
    snprintf(hard, sizeof hard, "%s/hard.bin", tmp);
    snprintf(sym, sizeof sym, "%s/sym.bin", tmp);
    snprintf(dot, sizeof dot, "%s/./sub/../a.bin", tmp);
    snprintf(dir, sizeof dir, "%s/hfdir", tmp);
    snprintf(inside, sizeof inside, "%s/hfdir/model.safetensors", tmp);
    snprintf(fresh, sizeof fresh, "%s/new.qept", tmp);
    touch(a);
    CHECK(link(a, hard) == 0);
    CHECK(symlink(a, sym) == 0);
    char sub[512];
    snprintf(sub, sizeof sub, "%s/sub", tmp);
    CHECK(mkdir(sub, 0755) == 0);
    CHECK(mkdir(dir, 0755) == 0);
    touch(inside);
    PathArg in = {"--model", a};
    const char *same[] = {a, hard, sym, dot};
    for (int i = 0; i < 4; i++) {
        CHECK_MSG(paths_check_output((PathArg){"--out", same[i]}, 0, &in, 1, &err) != 0, "%s", same[i]);
        CHECK_MSG(strstr(err.msg, "--out") && strstr(err.msg, "--model"), "%s", err.msg);
    }
    CHECK(paths_check_output((PathArg){"--out", fresh}, 0, &in, 1, &err) == 0);
    /* a new file inside an input directory (an HF model dir) */
    PathArg hf = {"--model", dir};
    CHECK(paths_check_output((PathArg){"--out", inside}, 0, &hf, 1, &err) != 0);
    char newin[512];
    snprintf(newin, sizeof newin, "%s/hfdir/new.qept", tmp);
    CHECK(paths_check_output((PathArg){"--out", newin}, 0, &hf, 1, &err) != 0);
    /* a directory output that holds an input */
    PathArg art = {"the artifact", inside};
    CHECK(paths_check_output((PathArg){"--out", dir}, 1, &art, 1, &err) != 0);
    CHECK(paths_check_output((PathArg){"--out", fresh}, 1, &art, 1, &err) == 0);
    /* inputs not given are skipped */
    PathArg none = {"--tokenizer", NULL};
    CHECK(paths_check_output((PathArg){"--out", a}, 0, &none, 1, &err) == 0);
    CHECK(paths_inside(inside, dir) && !paths_inside(a, dir) && paths_inside(dir, dir));
}

static void sha_of(const char *path, char hex[65]) {
    hex[0] = 0;
    QErr err;
    if (sha256_path_hex(path, hex, &err) != 0) hex[0] = 0;
}

/* The command must exit 2 and leave `victim` byte for byte as it was. */
static void refused(const char *cmd, const char *victim) {
    char before[65], after[65];
    sha_of(victim, before);
    char full[4096];
    snprintf(full, sizeof full, "%s 2>%s/err.txt", cmd, tmp);
    int st = exit_code(system(full));
    sha_of(victim, after);
    CHECK_MSG(st == 2, "exit %d for: %s", st, cmd);
    CHECK_MSG(before[0] && strcmp(before, after) == 0, "%s changed by: %s", victim, cmd);
}

static void test_commands(void) {
    QErr err = {{0}};
    ModelConfig c = untied_config();
    Model m;
    char model[512], data[512], art[512], cmd[4096];
    snprintf(model, sizeof model, "%s/m.bin", tmp);
    snprintf(data, sizeof data, "%s/d.qtok", tmp);
    snprintf(art, sizeof art, "%s/a.qept", tmp);
    CHECK(model_init_random(&m, &c, 1, &err) == 0);
    write_calib_inputs(&m, model, data, 4, 16, 1);
    model_free(&m);
    snprintf(cmd, sizeof cmd, "%s calibrate --model %s --data %s --out %s --method rtn --quiet 2>/dev/null",
             QUEPT_BIN, model, data, art);
    CHECK(exit_code(system(cmd)) == 0);

    snprintf(cmd, sizeof cmd, "%s calibrate --model %s --data %s --out %s --method rtn", QUEPT_BIN, model,
             data, model);
    refused(cmd, model);
    snprintf(cmd, sizeof cmd, "%s calibrate --model %s --data %s --out %s/./d.qtok --method rtn", QUEPT_BIN,
             model, data, tmp);
    refused(cmd, data);
    snprintf(cmd, sizeof cmd, "%s calibrate --model %s --data %s --out %s --workers 1 --epochs 1", QUEPT_BIN,
             model, data, data);
    refused(cmd, data);
    /* --out inside the checkpoint, which only the journal writes */
    snprintf(cmd, sizeof cmd,
             "%s calibrate --model %s --data %s --out %s/ck/done.json --checkpoint %s/ck "
             "--workers 1 --epochs 1",
             QUEPT_BIN, model, data, tmp, tmp);
    refused(cmd, model);
    snprintf(cmd, sizeof cmd,
             "%s coordinator --model %s --data %s --out %s/ck/input-0.qckp --checkpoint %s/ck "
             "--bind ipc://%s/w.sock --status-bind ipc://%s/s.sock",
             QUEPT_BIN, model, data, tmp, tmp, tmp, tmp);
    refused(cmd, model);
    snprintf(cmd, sizeof cmd,
             "%s coordinator --model %s --data %s --out %s/x.qept --checkpoint %s "
             "--bind ipc://%s/w.sock --status-bind ipc://%s/s.sock",
             QUEPT_BIN, model, data, tmp, tmp, tmp, tmp);
    refused(cmd, model); /* the checkpoint directory holds the inputs */
    snprintf(cmd, sizeof cmd, "%s sample --model %s --n 1 --len 4 --out %s", QUEPT_BIN, model, model);
    refused(cmd, model);
    snprintf(cmd, sizeof cmd, "%s export %s --bits 4 --format gguf --out %s", QUEPT_BIN, art, art);
    refused(cmd, art);
    snprintf(cmd, sizeof cmd, "%s export %s --bits 4 --format safetensors-fp16 --out %s", QUEPT_BIN, art,
             tmp);
    refused(cmd, art); /* the output directory holds the artifact */
    snprintf(cmd, sizeof cmd,
             "%s submit --name j --image i --model /data/m.bin --data /data/d.qtok "
             "--out /data/m.bin --workers 2 --dry-run --out-dir %s/ov",
             QUEPT_BIN, tmp);
    refused(cmd, model);
    snprintf(cmd, sizeof cmd,
             "%s submit --name j --image i --model /data/m.bin --data /data/d.qtok "
             "--out /data/jobs/j/checkpoint/done.json --workers 2 --dry-run --out-dir %s/ov",
             QUEPT_BIN, tmp);
    refused(cmd, model);
}

int main(void) {
    scratch_dir(tmp, sizeof tmp, "paths");
    test_unit();
    test_commands();
    scratch_remove(tmp);
    CHECK_DONE();
}
