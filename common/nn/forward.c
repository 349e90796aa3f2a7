/* forward.c — model-level forward passes built on block_forward. */
#include "forward.h"

#include "actquant.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int forward_state_init(ForwardState *fs, const ModelConfig *c, int B, int T, QErr *err) {
    memset(fs, 0, sizeof *fs);
    fs->B = B;
    fs->T = T;
    size_t N = (size_t)B * T;
    if (block_acts_init(&fs->acts, c, B, T, 0, err) != 0) return -1;
    fs->x = malloc(N * c->dim * sizeof(float));
    fs->y = malloc(N * c->dim * sizeof(float));
    fs->xn = malloc(N * c->dim * sizeof(float));
    fs->logits = malloc(N * c->vocab_size * sizeof(float));
    if (!fs->x || !fs->y || !fs->xn || !fs->logits) {
        forward_state_free(fs);
        return qerr_set(err, "out of memory for the forward pass (B=%d, T=%d)", B, T);
    }
    return 0;
}

void forward_state_free(ForwardState *fs) {
    block_acts_free(&fs->acts);
    free(fs->x);
    free(fs->y);
    free(fs->xn);
    free(fs->logits);
    memset(fs, 0, sizeof *fs);
}

void embed_forward(float *x, const float *tok_emb, const int *tokens, int N, int C) {
    for (int n = 0; n < N; n++)
        memcpy(x + (size_t)n * C, tok_emb + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
}

void head_forward(const Model *m, const float *x, float *xn, float *logits, int N) {
    const ModelConfig *c = &m->cfg;
    rmsnorm_forward(xn, NULL, x, m->final_norm, N, c->dim, c->norm_eps);
    matmul_forward(logits, xn, m->classifier, NULL, N, c->dim, c->vocab_size);
}

void model_forward(const Model *m, ForwardState *fs, const int *tokens) {
    const ModelConfig *c = &m->cfg;
    int N = fs->B * fs->T;
    embed_forward(fs->x, m->tok_emb, tokens, N, c->dim);
    for (int j = 0; j < c->n_layers; j++) {
        block_forward(c, &m->blocks[j], &fs->acts, fs->x, fs->y);
        float *t = fs->x;
        fs->x = fs->y;
        fs->y = t;
    }
    head_forward(m, fs->x, fs->xn, fs->logits, N);
}

int decode_state_init(DecodeState *ds, const ModelConfig *c, int max_T, QErr *err) {
    memset(ds, 0, sizeof *ds);
    ds->max_T = max_T;
    size_t C = c->dim, H = c->hidden_dim, L = c->n_layers;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    ds->k_cache = malloc(L * max_T * KVD * sizeof(float));
    ds->v_cache = malloc(L * max_T * KVD * sizeof(float));
    ds->x = malloc(C * sizeof(float));
    ds->xb = malloc(C * sizeof(float));
    ds->q = malloc(QD * sizeof(float));
    ds->att = malloc((size_t)max_T * sizeof(float));
    ds->atty = malloc(QD * sizeof(float));
    ds->h1 = malloc(C * sizeof(float));
    ds->gate = malloc(H * sizeof(float));
    ds->up = malloc(H * sizeof(float));
    ds->tmp = malloc(C * sizeof(float));
    ds->logits = malloc((size_t)c->vocab_size * sizeof(float));
    int rc = rope_table_init(&ds->rope, max_T, c->head_dim, c->rope_theta, c->rope_halves);
    /* the down input's online transform (BlockWeights.down_had); its scratch is ds->up */
    if (rc == 0 && hadamard_supported(c->hidden_dim, NULL, NULL))
        rc = hadamard_init(&ds->had, c->hidden_dim, err);
    if (rc != 0 || !ds->k_cache || !ds->v_cache || !ds->x || !ds->xb || !ds->q || !ds->att || !ds->atty ||
        !ds->h1 || !ds->gate || !ds->up || !ds->tmp || !ds->logits) {
        decode_state_free(ds);
        return qerr_set(err, "out of memory for decoding (T=%d)", max_T);
    }
    return 0;
}

void decode_state_free(DecodeState *ds) {
    free(ds->k_cache);
    free(ds->v_cache);
    free(ds->x);
    free(ds->xb);
    free(ds->q);
    free(ds->att);
    free(ds->atty);
    free(ds->h1);
    free(ds->gate);
    free(ds->up);
    free(ds->tmp);
    free(ds->logits);
    hadamard_free(&ds->had);
    rope_table_free(&ds->rope);
    memset(ds, 0, sizeof *ds);
}

const float *decode_step(const Model *m, DecodeState *ds, int token, int pos) {
    const ModelConfig *c = &m->cfg;
    int C = c->dim, H = c->hidden_dim, hd = c->head_dim, NH = c->n_heads, NKV = c->n_kv_heads;
    int QD = NH * hd, KVD = NKV * hd, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
    /* a one-position view of the RoPE table at pos */
    RopeTable rt = ds->rope;
    rt.cos_t += (size_t)pos * (hd / 2);
    rt.sin_t += (size_t)pos * (hd / 2);
    rt.T = 1;

    memcpy(ds->x, m->tok_emb + (size_t)token * C, (size_t)C * sizeof(float));
    for (int j = 0; j < c->n_layers; j++) {
        const BlockWeights *w = &m->blocks[j];
        float *kc = ds->k_cache + ((size_t)j * ds->max_T) * KVD;
        float *vc = ds->v_cache + ((size_t)j * ds->max_T) * KVD;
        const int ab = w->act_bits; /* activation quantization, in place (block.h) */
        rmsnorm_forward(ds->xb, NULL, ds->x, w->attn_norm, 1, C, c->norm_eps);
        if (ab) actquant_forward(ds->xb, ds->xb, 1, C, ab);
        matmul_forward(ds->q, ds->xb, w->wq, w->bq, 1, C, QD);
        matmul_forward(kc + (size_t)pos * KVD, ds->xb, w->wk, w->bk, 1, C, KVD);
        matmul_forward(vc + (size_t)pos * KVD, ds->xb, w->wv, w->bv, 1, C, KVD);
        rope_forward(ds->q, &rt, 1, 1, NH);
        rope_forward(kc + (size_t)pos * KVD, &rt, 1, 1, NKV);
        for (int h = 0; h < NH; h++) {
            const float *qh = ds->q + (size_t)h * hd;
            int kvh = h / group;
            float mx = -INFINITY;
            for (int s = 0; s <= pos; s++) {
                const float *ks = kc + (size_t)s * KVD + (size_t)kvh * hd;
                float d = 0.0f;
                for (int i = 0; i < hd; i++) d += qh[i] * ks[i];
                ds->att[s] = d * scale;
                if (ds->att[s] > mx) mx = ds->att[s];
            }
            float sum = 0.0f;
            for (int s = 0; s <= pos; s++) {
                ds->att[s] = expf(ds->att[s] - mx);
                sum += ds->att[s];
            }
            float *oh = ds->atty + (size_t)h * hd;
            memset(oh, 0, (size_t)hd * sizeof(float));
            for (int s = 0; s <= pos; s++) {
                const float *vs = vc + (size_t)s * KVD + (size_t)kvh * hd;
                float p = ds->att[s] / sum;
                for (int i = 0; i < hd; i++) oh[i] += p * vs[i];
            }
        }
        if (ab) actquant_forward(ds->atty, ds->atty, 1, QD, ab);
        matmul_forward(ds->tmp, ds->atty, w->wo, NULL, 1, QD, C);
        residual_forward(ds->h1, ds->x, ds->tmp, (size_t)C);
        rmsnorm_forward(ds->xb, NULL, ds->h1, w->mlp_norm, 1, C, c->norm_eps);
        if (ab) actquant_forward(ds->xb, ds->xb, 1, C, ab);
        matmul_forward(ds->gate, ds->xb, w->w_gate, NULL, 1, C, H);
        matmul_forward(ds->up, ds->xb, w->w_up, NULL, 1, C, H);
        swiglu_forward(ds->gate, ds->gate, ds->up, (size_t)H);
        if (w->down_had) { /* online Hadamard of the down input, before its quantization */
            assert(ds->had.n == H && "down_had on a FFN width without a Hadamard matrix");
            hadamard_transform_t(ds->gate, &ds->had, ds->up);
        }
        if (ab) actquant_forward(ds->gate, ds->gate, 1, H, ab);
        matmul_forward(ds->tmp, ds->gate, w->w_down, NULL, 1, H, C);
        residual_forward(ds->x, ds->h1, ds->tmp, (size_t)C);
    }
    head_forward(m, ds->x, ds->xb, ds->logits, 1);
    return ds->logits;
}
