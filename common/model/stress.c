/* stress.c — stress variants of a model (stress.h). */
#include "stress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/paths.h"
#include "../base/log.h"
#include "../base/rng.h"
#include "pad.h"

/* rng_mix's "kind" argument: which draw */
enum { DRAW_ATTN_CHANNELS = 1, DRAW_MLP_CHANNELS = 2, DRAW_WEIGHTS = 3 };

static const struct {
    const char *name, *alias;
    unsigned bit;
} LINEARS[] = {{"wq", "q", STRESS_WQ}, {"wk", "k", STRESS_WK},    {"wv", "v", STRESS_WV},
               {"wo", "o", STRESS_WO}, {"w1", "gate", STRESS_W1}, {"w2", "down", STRESS_W2},
               {"w3", "up", STRESS_W3}};
#define N_LINEARS ((int)(sizeof LINEARS / sizeof LINEARS[0]))

void stress_config_default(StressConfig *sc) {
    memset(sc, 0, sizeof *sc);
    sc->alpha = 1.0f;
    sc->wo_factor = 1.0f;
    sc->wo_linears = STRESS_W2;
    sc->seed = 1;
}

int stress_config_validate(const StressConfig *sc, const ModelConfig *mc, QErr *err) {
    if (sc->channels < 0 || (mc && sc->channels > mc->dim))
        return qerr_setc(err, QERR_USAGE, "--channels %d: must be in [0, dim = %d]", sc->channels,
                         mc ? mc->dim : 0);
    if (!isfinite(sc->alpha) || sc->alpha <= 0.0f)
        return qerr_setc(err, QERR_USAGE, "--alpha %g: must be finite and > 0", (double)sc->alpha);
    if (!(sc->wo_frac >= 0.0 && sc->wo_frac <= 1.0))
        return qerr_setc(err, QERR_USAGE, "--weight-outliers %g: must be a fraction in [0, 1]", sc->wo_frac);
    if (!isfinite(sc->wo_factor) || sc->wo_factor == 0.0f)
        return qerr_setc(err, QERR_USAGE, "--factor %g: must be finite and non-zero", (double)sc->wo_factor);
    if (sc->pad_dim < 0 || sc->pad_ffn < 0 || (mc && sc->pad_dim && sc->pad_dim < mc->dim) ||
        (mc && sc->pad_ffn && sc->pad_ffn < mc->hidden_dim))
        return qerr_setc(err, QERR_USAGE,
                         "--pad-dim %d / --pad-ffn %d: must be at least dim %d / FFN width %d", sc->pad_dim,
                         sc->pad_ffn, mc ? mc->dim : 0, mc ? mc->hidden_dim : 0);
    if (sc->wo_frac > 0.0 && (sc->wo_linears & STRESS_ALL) == 0)
        return qerr_setc(err, QERR_USAGE, "--linears: no linear chosen for the weight outliers");
    return 0;
}

int stress_parse_linears(const char *s, unsigned *mask, QErr *err) {
    *mask = 0;
    if (!s || !*s)
        return qerr_setc(err, QERR_USAGE, "--linears: empty list (names: wq wk wv wo w1 w2 w3, all)");
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int found = 0;
        if (n == 3 && strncmp(p, "all", 3) == 0) {
            *mask |= STRESS_ALL;
            found = 1;
        }
        for (int i = 0; i < N_LINEARS && !found; i++)
            if ((strlen(LINEARS[i].name) == n && strncmp(p, LINEARS[i].name, n) == 0) ||
                (strlen(LINEARS[i].alias) == n && strncmp(p, LINEARS[i].alias, n) == 0)) {
                *mask |= LINEARS[i].bit;
                found = 1;
            }
        if (!found)
            return qerr_setc(err, QERR_USAGE,
                             "--linears '%s': unknown linear '%.*s' (names: wq wk wv wo w1 w2 w3, all)", s,
                             (int)n, p);
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* Draws k distinct indices of [0, n) into idx (Floyd's algorithm; `taken`
 * is a zeroed byte map of n entries, left zeroed on return). */
static void draw_distinct(Rng *r, int64_t n, int64_t k, int64_t *idx, unsigned char *taken) {
    int64_t m = 0;
    for (int64_t j = n - k; j < n; j++) {
        int64_t t = (int64_t)(rng_u64(r) % (uint64_t)(j + 1));
        if (taken[t]) t = j;
        taken[t] = 1;
        idx[m++] = t;
    }
    for (int64_t i = 0; i < m; i++) taken[idx[i]] = 0;
}

/* (a) on one norm: g (dim) *= alpha at the chosen channels, and the columns
 * c of each reader W (rows x dim) /= alpha. */
static void reparam_norm(float *g, int dim, float *const *readers, const int *rows, int n_readers,
                         const int64_t *ch, int k, float alpha) {
    for (int i = 0; i < k; i++) {
        int64_t c = ch[i];
        g[c] *= alpha;
        for (int r = 0; r < n_readers; r++)
            for (int o = 0; o < rows[r]; o++) readers[r][(size_t)o * dim + c] /= alpha;
    }
}

int stress_apply(Model *m, const StressConfig *sc, StressReport *rep, QErr *err) {
    const ModelConfig *c = &m->cfg;
    if (stress_config_validate(sc, c, err) != 0) return -1;
    StressReport local = {0, 0};
    size_t C = c->dim, H = c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    /* the largest linear sets the scratch size */
    size_t maxn = QD * C;
    if (H * C > maxn) maxn = H * C;
    int64_t k_max = sc->channels;
    size_t k_w = (size_t)llround(sc->wo_frac * (double)maxn);
    if ((size_t)k_max < k_w) k_max = (int64_t)k_w;
    int64_t *idx = malloc(((size_t)k_max + 1) * sizeof *idx);
    unsigned char *taken = calloc(maxn > C ? maxn : C, 1);
    if (!idx || !taken) {
        free(idx);
        free(taken);
        return qerr_set(err, "stress: out of memory for a %zu-entry linear", maxn);
    }
    for (int j = 0; j < c->n_layers; j++) {
        BlockWeights *b = &m->blocks[j];
        if (sc->channels > 0 && sc->alpha != 1.0f) {
            Rng r;
            rng_seed(&r, rng_mix(sc->seed, (uint64_t)j, DRAW_ATTN_CHANNELS, 0));
            draw_distinct(&r, (int64_t)C, sc->channels, idx, taken);
            float *attn[3] = {b->wq, b->wk, b->wv};
            int attn_rows[3] = {(int)QD, (int)KVD, (int)KVD};
            reparam_norm(b->attn_norm, (int)C, attn, attn_rows, 3, idx, sc->channels, sc->alpha);
            rng_seed(&r, rng_mix(sc->seed, (uint64_t)j, DRAW_MLP_CHANNELS, 0));
            draw_distinct(&r, (int64_t)C, sc->channels, idx, taken);
            float *mlp[2] = {b->w_gate, b->w_up};
            int mlp_rows[2] = {(int)H, (int)H};
            reparam_norm(b->mlp_norm, (int)C, mlp, mlp_rows, 2, idx, sc->channels, sc->alpha);
            local.channels_scaled += 2 * (int64_t)sc->channels;
        }
        if (sc->wo_frac > 0.0 && sc->wo_factor != 1.0f) {
            float *w[N_LINEARS] = {b->wq, b->wk, b->wv, b->wo, b->w_gate, b->w_down, b->w_up};
            size_t n[N_LINEARS] = {QD * C, KVD * C, KVD * C, C * QD, H * C, C * H, H * C};
            for (int t = 0; t < N_LINEARS; t++) {
                if (!(sc->wo_linears & LINEARS[t].bit)) continue;
                int64_t k = (int64_t)llround(sc->wo_frac * (double)n[t]);
                Rng r;
                rng_seed(&r, rng_mix(sc->seed, (uint64_t)j, DRAW_WEIGHTS, (uint64_t)t));
                draw_distinct(&r, (int64_t)n[t], k, idx, taken);
                for (int64_t i = 0; i < k; i++) w[t][idx[i]] *= sc->wo_factor;
                local.entries_scaled += k;
            }
        }
    }
    free(idx);
    free(taken);
    if (rep) *rep = local;
    return 0;
}

int stress_write_model(const char *in_path, const char *out_path, const StressConfig *sc, StressReport *rep,
                       QErr *err) {
    ModelSource *src;
    if (model_source_open(&src, in_path, err) != 0) return -1;
    const ModelConfig *ic = model_source_config(src);
    int hf = model_source_format(src) == MODEL_FMT_HF;
    if (stress_config_validate(sc, ic, err) != 0) {
        model_source_close(src);
        return -1;
    }
    /* llama2.c's header has no head size: a wider residual needs an HF dir */
    const int head_apart = sc->pad_dim && sc->pad_dim != ic->n_heads * ic->head_dim;
    if (!hf && head_apart)
        log_info("stress: --pad-dim %d makes the head size (%d) differ from dim / n_heads, which llama2.c "
                 "files cannot say: writing %s as a Hugging Face directory",
                 sc->pad_dim, ic->head_dim, out_path);
    hf = hf || head_apart;
    model_source_close(src);
    PathArg in = {"--model", in_path};
    if (paths_check_output((PathArg){"--out", out_path}, hf, &in, 1, err) != 0) return -1;
    Model m;
    if (model_load(&m, in_path, err) != 0) return -1;
    int rc = stress_apply(&m, sc, rep, err);
    if (rc == 0) rc = model_pad(&m, sc->pad_dim, sc->pad_ffn, err);
    if (rc == 0) rc = hf ? hf_write_dir(out_path, &m, 0, err) : llama2c_write_legacy(out_path, &m, err);
    model_free(&m);
    return rc;
}
