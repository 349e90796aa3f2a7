#include "kld_base.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/mapfile.h"
#include "../nn/forward.h"

#define KLD_MAGIC      "_logits_"
#define KLD_HEADER     (8 + 4 + 4 + 4)
#define KLD_LOGP_FLOOR (-16.0f) /* llama.cpp keeps log probabilities above this */

/* u16 per stored row: 2 floats, then the vocabulary padded to even */
static int row_u16(int n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }
/* scored positions per chunk: t = n_ctx/2 .. n_ctx-2 */
static int rows_per_chunk(int n_ctx) { return n_ctx - 1 - n_ctx / 2; }

/* Encodes one row of logits (V) as llama.cpp stores it (see the header),
 * in float arithmetic as it does, so a file of ours reads like one of its. */
static void encode_row(const float *l, int V, uint16_t *row) {
    float mx = l[0], mn = l[0];
    for (int i = 1; i < V; i++) {
        mx = l[i] > mx ? l[i] : mx;
        mn = l[i] < mn ? l[i] : mn;
    }
    mn = mn > mx - 16 ? mn : mx - 16;
    double sum_exp = 0.0;
    for (int i = 0; i < V; i++) sum_exp += expf(l[i] - mx);
    const float lse = (float)log(sum_exp);
    float hdr[2] = {(mx - mn) / 65535.f, mn - mx - lse};
    memcpy(row, hdr, sizeof hdr);
    uint16_t *q = row + 4;
    memset(q, 0, sizeof(uint16_t) * (size_t)(row_u16(V) - 4));
    if (hdr[0] == 0.0f) return;
    const float inv = 1.0f / hdr[0];
    for (int i = 0; i < V; i++) {
        if (!(l[i] > mn)) continue;
        long v = lrintf(inv * (l[i] - mn)); /* round half to even, as llama.cpp's nearest_int */
        q[i] = (uint16_t)(v > 65535 ? 65535 : v);
    }
}

/* Runs m on chunks [s0, s0+nb) of ts (BOS first) into fs->logits. */
static void forward_chunks(const Model *m, ForwardState *fs, const TokenSet *ts, int s0, int nb, int bos_id,
                           int *tmp) {
    EvalOptions opt = {.scoring = EVAL_SCORE_LLAMA, .bos_id = bos_id};
    fs->B = nb;
    fs->acts.B = nb;
    model_forward(m, fs, eval_forward_tokens(ts, s0, nb, &opt, tmp));
}

static int check_model_fits(const Model *m, int n_ctx, int n_vocab, int bos_id, const char *what, QErr *err) {
    if (n_ctx < 4) return qerr_setc(err, QERR_USAGE, "%s: chunks of %d tokens: need >= 4", what, n_ctx);
    if (n_ctx > m->cfg.seq_len)
        return qerr_setc(err, QERR_USAGE, "%s: chunks of %d tokens, but the model allows %d", what, n_ctx,
                         m->cfg.seq_len);
    if (n_vocab != m->cfg.vocab_size)
        return qerr_setc(err, QERR_USAGE, "%s: vocabulary of %d tokens, the model's is %d", what, n_vocab,
                         m->cfg.vocab_size);
    if (bos_id < 0 || bos_id >= n_vocab)
        return qerr_setc(err, QERR_USAGE, "%s: BOS id %d is not in the vocabulary of %d", what, bos_id,
                         n_vocab);
    return 0;
}

int kld_base_write(const char *path, const Model *m, const TokenSet *ts, int batch, int bos_id, QErr *err) {
    const int T = ts->seq_len, V = m->cfg.vocab_size, nv = row_u16(V), R = rows_per_chunk(T);
    if (check_model_fits(m, T, V, bos_id, path, err) != 0) return -1;
    if (tokens_check_vocab(ts, V, "evaluation data", err) != 0) return -1;
    if (batch < 1) batch = 1;
    if (batch > ts->n_seq) batch = ts->n_seq;
    ForwardState fs;
    if (forward_state_init(&fs, &m->cfg, batch, T, err) != 0) return -1;
    int *tmp = malloc(sizeof(int) * (size_t)batch * T);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T * ts->n_seq);
    uint16_t *rows = malloc(sizeof(uint16_t) * (size_t)R * nv);
    AtomicFile *af = tmp && ids && rows ? atomic_open(path, err) : NULL;
    int rc = af ? 0 : -1;
    if (!tmp || !ids || !rows) rc = qerr_set(err, "out of memory");
    if (rc == 0) {
        char hdr[KLD_HEADER];
        uint32_t n_ctx = (uint32_t)T;
        int32_t n_vocab = V, n_chunk = ts->n_seq;
        memcpy(hdr, KLD_MAGIC, 8);
        memcpy(hdr + 8, &n_ctx, 4);
        memcpy(hdr + 12, &n_vocab, 4);
        memcpy(hdr + 16, &n_chunk, 4);
        for (size_t i = 0; i < (size_t)T * ts->n_seq; i++) ids[i] = ts->tokens[i];
        rc = atomic_write(af, hdr, sizeof hdr, err);
        if (rc == 0) rc = atomic_write(af, ids, sizeof(int32_t) * (size_t)T * ts->n_seq, err);
    }
    for (int s0 = 0; rc == 0 && s0 < ts->n_seq; s0 += batch) {
        int nb = ts->n_seq - s0 < batch ? ts->n_seq - s0 : batch;
        forward_chunks(m, &fs, ts, s0, nb, bos_id, tmp);
        for (int b = 0; rc == 0 && b < nb; b++) {
            for (int r = 0; r < R; r++) {
                const float *l = fs.logits + ((size_t)b * T + T / 2 + r) * V;
                if (!logits_row_finite(l, V)) {
                    rc = qerr_setc(err, QERR_CORRUPT,
                                   "the model's logits are NaN or infinite (chunk %d, position %d): no base "
                                   "file is written",
                                   s0 + b, T / 2 + r);
                    break;
                }
                encode_row(l, V, rows + (size_t)r * nv);
            }
            if (rc == 0) rc = atomic_write(af, rows, sizeof(uint16_t) * (size_t)R * nv, err);
        }
    }
    if (af) {
        if (rc == 0)
            rc = atomic_commit(af, err);
        else
            atomic_abort(af);
    }
    free(rows);
    free(ids);
    free(tmp);
    forward_state_free(&fs);
    return rc;
}

/* Opens a base file, reads and checks its header, and leaves f at the tokens. */
static int open_base(const char *path, FILE **out, int *n_ctx, int *n_vocab, int *n_chunk, QErr *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return qerr_setc(err, QERR_IO, "%s: cannot open", path);
    char hdr[KLD_HEADER];
    uint32_t c;
    int32_t v, k;
    if (fread(hdr, 1, sizeof hdr, f) != sizeof hdr) {
        fclose(f);
        return qerr_setc(err, QERR_CORRUPT,
                         "%s: shorter than the %d-byte header of a KL-divergence base file", path,
                         KLD_HEADER);
    }
    if (memcmp(hdr, KLD_MAGIC, 8) != 0) {
        fclose(f);
        return qerr_setc(err, QERR_CORRUPT,
                         "%s: not a KL-divergence base file (llama-perplexity --kl-divergence-base): no "
                         "\"_logits_\" magic",
                         path);
    }
    memcpy(&c, hdr + 8, 4);
    memcpy(&v, hdr + 12, 4);
    memcpy(&k, hdr + 16, 4);
    if (c < 4 || c > (1u << 20) || v < 1 || v > (1 << 24) || k < 1 || k > (1 << 24)) {
        fclose(f);
        return qerr_setc(err, QERR_CORRUPT, "%s: header n_ctx %u, n_vocab %d, n_chunk %d out of range", path,
                         c, v, k);
    }
    struct stat st;
    long long want = KLD_HEADER + 4LL * c * k + 2LL * k * rows_per_chunk((int)c) * row_u16(v);
    if (fstat(fileno(f), &st) != 0 || (long long)st.st_size != want) {
        fclose(f);
        return qerr_setc(err, QERR_CORRUPT,
                         "%s: %lld bytes, but n_ctx %u, n_vocab %d and n_chunk %d make %lld", path,
                         (long long)st.st_size, c, v, k, want);
    }
    *out = f;
    *n_ctx = (int)c, *n_vocab = v, *n_chunk = k;
    return 0;
}

static int read_ids(FILE *f, const char *path, int n_ctx, int n_vocab, int n_chunk, TokenSet *ts, QErr *err) {
    size_t n = (size_t)n_ctx * n_chunk;
    int32_t *ids = malloc(sizeof(int32_t) * n);
    ts->tokens = malloc(sizeof(int) * n);
    if (!ids || !ts->tokens || fread(ids, sizeof(int32_t), n, f) != n) {
        free(ids);
        free(ts->tokens);
        ts->tokens = NULL;
        return qerr_setc(err, QERR_IO, "%s: cannot read the %zu token ids", path, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= n_vocab) {
            int bad = ids[i];
            free(ids);
            free(ts->tokens);
            ts->tokens = NULL;
            return qerr_setc(err, QERR_CORRUPT,
                             "%s: token %zu (chunk %zu) is id %d, outside the vocabulary of %d", path, i,
                             i / n_ctx, bad, n_vocab);
        }
        ts->tokens[i] = ids[i];
    }
    free(ids);
    ts->n_seq = n_chunk, ts->seq_len = n_ctx, ts->vocab_size = n_vocab;
    return 0;
}

int kld_base_read_tokens(const char *path, TokenSet *ts, QErr *err) {
    FILE *f;
    int c, v, k;
    if (open_base(path, &f, &c, &v, &k, err) != 0) return -1;
    int rc = read_ids(f, path, c, v, k, ts, err);
    fclose(f);
    return rc;
}

/* One position, as llama.cpp's kl_divergence log_softmax: the model's
 * logits l, the stored base row. Adds to the sums; returns the KLD. */
typedef struct {
    double nll, nll_base, p_diff2;
    long same_top;
} KldSums;

static double compare_row(const float *l, const uint16_t *row, int V, int tok, KldSums *s) {
    float mx = l[0];
    int imax = 0;
    for (int i = 1; i < V; i++)
        if (l[i] > mx) mx = l[i], imax = i;
    double sum_exp = 0.0;
    for (int i = 0; i < V; i++) sum_exp += expf(l[i] - mx);
    const float lse = (float)log(sum_exp);
    float hdr[2];
    memcpy(hdr, row, sizeof hdr);
    const float scale = hdr[0], min_lp = hdr[1];
    const uint16_t *q = row + 4;
    const float nll = mx + lse - l[tok];
    const float nll_base = -(scale * q[tok] + min_lp);
    const float log_z = mx + lse;
    double kld = 0.0;
    int imax_base = 0;
    float best = 0.0f;
    for (int i = 0; i < V; i++) {
        const float lpb = scale * q[i] + min_lp;
        if (i == 0 || lpb > best) best = lpb, imax_base = i;
        if (lpb > KLD_LOGP_FLOOR) kld += expf(lpb) * (lpb - l[i] + log_z);
    }
    const float p_diff = expf(-nll) - expf(-nll_base);
    s->nll += nll;
    s->nll_base += nll_base;
    s->p_diff2 += (double)p_diff * p_diff;
    s->same_top += imax == imax_base;
    return kld;
}

int kld_base_compare(const char *path, const Model *m, int batch, int bos_id, KldBaseResult *out, QErr *err) {
    FILE *f;
    int T, V, K;
    if (open_base(path, &f, &T, &V, &K, err) != 0) return -1;
    TokenSet ts = {0};
    if (check_model_fits(m, T, V, bos_id, path, err) != 0 || read_ids(f, path, T, V, K, &ts, err) != 0) {
        fclose(f);
        return -1;
    }
    const int nv = row_u16(V), R = rows_per_chunk(T);
    if (batch < 1) batch = 1;
    if (batch > K) batch = K;
    ForwardState fs;
    if (forward_state_init(&fs, &m->cfg, batch, T, err) != 0) {
        free(ts.tokens);
        fclose(f);
        return -1;
    }
    int *tmp = malloc(sizeof(int) * (size_t)batch * T);
    uint16_t *rows = malloc(sizeof(uint16_t) * (size_t)R * nv);
    double *klds = malloc(sizeof(double) * (size_t)R * K);
    int rc = tmp && rows && klds ? 0 : qerr_set(err, "out of memory");
    KldSums s = {0};
    long n = 0;
    for (int s0 = 0; rc == 0 && s0 < K; s0 += batch) {
        int nb = K - s0 < batch ? K - s0 : batch;
        forward_chunks(m, &fs, &ts, s0, nb, bos_id, tmp);
        for (int b = 0; rc == 0 && b < nb; b++) {
            if (fread(rows, sizeof(uint16_t), (size_t)R * nv, f) != (size_t)R * nv) {
                rc = qerr_setc(err, QERR_IO, "%s: cannot read the log probabilities of chunk %d", path,
                               s0 + b);
                break;
            }
            const int *tok = ts.tokens + (size_t)(s0 + b) * T;
            for (int r = 0; r < R; r++) {
                const int t = T / 2 + r;
                const float *l = fs.logits + ((size_t)b * T + t) * V;
                float hdr[2];
                memcpy(hdr, rows + (size_t)r * nv, sizeof hdr);
                if (!logits_row_finite(l, V) || !isfinite(hdr[0]) || !isfinite(hdr[1])) {
                    rc = qerr_setc(err, QERR_CORRUPT,
                                   "chunk %d, position %d: %s is NaN or infinite: no metric is reported",
                                   s0 + b, t,
                                   logits_row_finite(l, V) ? "the base file's row" : "the model's logit row");
                    break;
                }
                klds[n++] = compare_row(l, rows + (size_t)r * nv, V, tok[t + 1], &s);
            }
        }
    }
    if (rc == 0) {
        double sum = 0.0;
        for (long i = 0; i < n; i++) sum += klds[i];
        memset(out, 0, sizeof *out);
        out->positions = n;
        out->ppl = exp(s.nll / n);
        out->ppl_base = exp(s.nll_base / n);
        out->kld_mean = sum / n;
        out->kld_p99 = quantile_nearest_rank(klds, (size_t)n, 0.99);
        out->top1_agree = (double)s.same_top / n;
        out->p_diff_rms = sqrt(s.p_diff2 / n);
        out->n_ctx = T, out->n_vocab = V, out->n_chunk = K;
    }
    free(klds);
    free(rows);
    free(tmp);
    free(ts.tokens);
    forward_state_free(&fs);
    fclose(f);
    return rc;
}
