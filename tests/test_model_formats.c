/* The same synthetic model written as a llama2.c legacy checkpoint, a
 * llama2.c v1 ("ak42") checkpoint and a Hugging Face directory (q/k rows
 * permuted for the halves RoPE convention; F32 and F16) gives the same logits
 * — so both RoPE conventions and all loaders agree. Plus the llama2.c error
 * paths: truncated file, header dims that disagree with the size, bad version. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "fixtures.h"
#include "model/safetensors.h"
#include "nn/forward.h"

static char tmpdir[256];

static void path_in_tmp(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m) m = d;
    }
    return m;
}

static void round_f16(float *x, size_t n) {
    for (size_t i = 0; x && i < n; i++) x[i] = f16_to_float(float_to_f16(x[i]));
}

static void round_model_to_f16(Model *m) {
    const ModelConfig *c = &m->cfg;
    round_f16(m->tok_emb, (size_t)c->vocab_size * c->dim);
    if (m->classifier != m->tok_emb) round_f16(m->classifier, (size_t)c->vocab_size * c->dim);
    round_f16(m->final_norm, c->dim);
    for (int j = 0; j < c->n_layers; j++) round_f16(m->blocks[j].attn_norm, block_weights_numel(c));
}

/* Writes a llama2.c v1 file by hand (the format is small enough to spell out). */
static int write_v1(const char *path, const Model *m) {
    const ModelConfig *c = &m->cfg;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint8_t header[256] = {0};
    uint32_t magic = 0x616b3432u;
    int32_t version = 1;
    int32_t h[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len};
    memcpy(header, &magic, 4);
    memcpy(header + 4, &version, 4);
    memcpy(header + 8, h, sizeof h);
    header[8 + sizeof h] = (uint8_t)c->tied_classifier;
    fwrite(header, 1, sizeof header, f);
    size_t L = c->n_layers, C = c->dim, H = c->hidden_dim, V = c->vocab_size;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    for (size_t j = 0; j < L; j++) fwrite(m->blocks[j].attn_norm, 4, C, f);
    for (size_t j = 0; j < L; j++) fwrite(m->blocks[j].mlp_norm, 4, C, f);
    fwrite(m->final_norm, 4, C, f);
    fwrite(m->tok_emb, 4, V * C, f);
    for (size_t j = 0; j < L; j++) fwrite(m->blocks[j].wq, 4, QD * C, f);
    for (size_t j = 0; j < L; j++) fwrite(m->blocks[j].wk, 4, KVD * C, f);
    for (size_t j = 0; j < L; j++) fwrite(m->blocks[j].wv, 4, KVD * C, f);
    for (size_t j = 0; j < L; j++) fwrite(m->blocks[j].wo, 4, C * QD, f);
    for (size_t j = 0; j < L; j++) fwrite(m->blocks[j].w_gate, 4, H * C, f);
    for (size_t j = 0; j < L; j++) fwrite(m->blocks[j].w_down, 4, C * H, f);
    for (size_t j = 0; j < L; j++) fwrite(m->blocks[j].w_up, 4, H * C, f);
    if (!c->tied_classifier) fwrite(m->classifier, 4, V * C, f);
    return fclose(f);
}

static void copy_prefix(const char *src, const char *dst, long n) {
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    for (long i = 0; i < n; i++) {
        int ch = fgetc(a);
        if (ch == EOF) break;
        fputc(ch, b);
    }
    fclose(a);
    fclose(b);
}

static void expect_load_error(const char *path, const char *needle) {
    Model m;
    QErr err = {{0}};
    int rc = model_load(&m, path, &err);
    CHECK_MSG(rc != 0, "loading %s should fail", path);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "message '%s' should mention '%s'", err.msg, needle);
    if (rc == 0) model_free(&m);
}

int main(void) {
    scratch_dir(tmpdir, sizeof tmpdir, "fmt");
    QErr err = {{0}};
    for (int tied = 0; tied <= 1; tied++) {
        ModelConfig c = llama_config(48, 96, 2, 4, 2, 37, 32);
        c.tied_classifier = tied;
        Model m;
        CHECK(model_init_random(&m, &c, 7 + tied, &err) == 0);
        int B = 2, T = 20;
        int tok[40];
        for (int i = 0; i < B * T; i++) tok[i] = (i * 13 + 5) % c.vocab_size;
        float *ref = logits_of(&m, tok, B, T);
        size_t n = (size_t)B * T * c.vocab_size;

        char p_legacy[512], p_v1[512], p_hf[512], p_hf16[512];
        path_in_tmp(p_legacy, sizeof p_legacy, "legacy.bin");
        path_in_tmp(p_v1, sizeof p_v1, "v1.bin");
        path_in_tmp(p_hf, sizeof p_hf, "hf32");
        path_in_tmp(p_hf16, sizeof p_hf16, "hf16");
        CHECK_MSG(llama2c_write_legacy(p_legacy, &m, &err) == 0, "%s", err.msg);
        CHECK(write_v1(p_v1, &m) == 0);
        CHECK_MSG(hf_write_dir(p_hf, &m, 0, &err) == 0, "%s", err.msg);
        CHECK_MSG(hf_write_dir(p_hf16, &m, 1, &err) == 0, "%s", err.msg);

        const char *paths[3] = {p_legacy, p_v1, p_hf};
        for (int k = 0; k < 3; k++) {
            Model l;
            CHECK_MSG(model_load(&l, paths[k], &err) == 0, "%s: %s", paths[k], err.msg);
            CHECK(l.cfg.tied_classifier == tied);
            CHECK(l.cfg.rope_halves == (k == 2));
            float *lg = logits_of(&l, tok, B, T);
            double d = max_abs_diff(lg, ref, n);
            /* identical weights, only the RoPE convention (and float summation
             * order of the rotation) differs: 1e-4 absolute on logits of O(1) */
            CHECK_MSG(d < 1e-4, "%s (tied=%d): max |logit diff| = %g", paths[k], tied, d);
            free(lg);
            model_free(&l);
        }
        /* F16 storage rounds weights: the F16 directory must give the logits
         * of the same model rounded to F16 in memory (exact conversion path),
         * and differ from the F32 logits (the rounding really happened). */
        Model l16, m16;
        CHECK_MSG(model_load(&l16, p_hf16, &err) == 0, "%s", err.msg);
        CHECK(model_load(&m16, p_legacy, &err) == 0);
        round_model_to_f16(&m16);
        float *lg16 = logits_of(&l16, tok, B, T), *lr16 = logits_of(&m16, tok, B, T);
        double d16 = max_abs_diff(lg16, lr16, n);
        CHECK_MSG(d16 < 1e-4, "F16 HF copy vs F16-rounded model: max |logit diff| = %g", d16);
        CHECK_MSG(max_abs_diff(lg16, ref, n) > 1e-6, "F16 copy should differ from F32 logits");
        free(lg16);
        free(lr16);
        model_free(&l16);
        model_free(&m16);

        /* a block can be loaded alone from each format */
        ModelSource *src;
        CHECK(model_source_open(&src, p_hf, &err) == 0);
        BlockWeights bw;
        CHECK(model_source_load_block(src, 1, &bw, &err) == 0);
        CHECK(memcmp(bw.w_down, m.blocks[1].w_down, sizeof(float) * c.dim * c.hidden_dim) == 0);
        block_weights_free(&bw);
        CHECK(model_source_load_block(src, 2, &bw, &err) != 0);
        CHECK(strstr(err.msg, "out of range") != NULL);
        model_source_close(src);

        if (tied == 0) {
            /* failure paths on the legacy file */
            struct stat st;
            stat(p_legacy, &st);
            char p_trunc[512], p_hdr[512], p_tiny[512], p_v2[512];
            path_in_tmp(p_trunc, sizeof p_trunc, "trunc.bin");
            path_in_tmp(p_tiny, sizeof p_tiny, "tiny.bin");
            path_in_tmp(p_hdr, sizeof p_hdr, "hdr.bin");
            path_in_tmp(p_v2, sizeof p_v2, "v2.bin");
            copy_prefix(p_legacy, p_trunc, st.st_size - 100);
            expect_load_error(p_trunc, "need");
            copy_prefix(p_legacy, p_tiny, 10);
            expect_load_error(p_tiny, "truncated");
            /* header says more layers than the file holds */
            copy_prefix(p_legacy, p_hdr, st.st_size);
            FILE *f = fopen(p_hdr, "r+b");
            int32_t layers = 3;
            fseek(f, 8, SEEK_SET);
            fwrite(&layers, 4, 1, f);
            fclose(f);
            expect_load_error(p_hdr, "layers=3");
            /* negative/zero dims */
            f = fopen(p_hdr, "r+b");
            int32_t zero = 0;
            fwrite(&zero, 4, 1, f);
            fclose(f);
            expect_load_error(p_hdr, "invalid model dims");
            /* version 2 (int8) is refused by name */
            copy_prefix(p_v1, p_v2, 300);
            f = fopen(p_v2, "r+b");
            int32_t v2 = 2;
            fseek(f, 4, SEEK_SET);
            fwrite(&v2, 4, 1, f);
            fclose(f);
            expect_load_error(p_v2, "version 2");
            char p_missing[512];
            path_in_tmp(p_missing, sizeof p_missing, "nope.bin");
            expect_load_error(p_missing, "not found");
            /* an HF config.json that disagrees with its weights: one layer
             * fewer than the files hold is refused, naming the extra tensor */
            char cfg[600], cmd[1400];
            snprintf(cfg, sizeof cfg, "%s/config.json", p_hf);
            snprintf(cmd, sizeof cmd,
                     "sed -E -i 's/\"num_hidden_layers\":[[:space:]]*2/\"num_hidden_layers\": 1/' %s && "
                     "grep -q '\"num_hidden_layers\": 1' %s",
                     cfg, cfg);
            CHECK_MSG(system(cmd) == 0, "could not edit %s", cfg);
            expect_load_error(p_hf, "model.layers.1.");
        }
        free(ref);
        model_free(&m);
    }
    scratch_remove(tmpdir);
    CHECK_DONE();
}
