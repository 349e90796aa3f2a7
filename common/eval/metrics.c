#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void eval_accum_init(EvalAccum *a) {
    memset(a, 0, sizeof *a);
    a->first_bad_pos = -1;
}
void eval_accum_free(EvalAccum *a) {
    free(a->kld);
    memset(a, 0, sizeof *a);
}

void log_softmax_row(double *out, const float *logits, int V) {
    double mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; i < V; i++) out[i] = (double)logits[i] - lse;
}

double kl_divergence(const double *logp, const double *logq, int V) {
    double kl = 0.0;
    for (int i = 0; i < V; i++) kl += exp(logp[i]) * (logp[i] - logq[i]);
    return kl < 0.0 ? 0.0 : kl; /* rounding can give -1e-17 for identical rows; NaN passes */
}

int logits_row_finite(const float *x, int V) {
    float acc = 0.0f;
    for (int i = 0; i < V; i++) acc += x[i] - x[i]; /* NaN for any NaN or Inf; vectorises */
    return acc == 0.0f;
}

static void note_nonfinite(EvalAccum *a, int is_ref) {
    if (a->n_nonfinite++ == 0) {
        a->first_bad_pos = a->n_pred;
        a->first_bad_is_ref = is_ref;
    }
}

static int argmax_row(const float *x, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void eval_accum_sequence(EvalAccum *a, const float *logits, const float *ref_logits, const int *tokens, int T,
                         int V) {
    double *lp = malloc(sizeof(double) * (size_t)V * 2);
    if (!lp) {
        a->oom = 1;
        return;
    }
    double *lq = lp + V;
    for (int t = a->first; t + 1 < T; t++) {
        const float *row = logits + (size_t)t * V;
        const float *rrow = ref_logits ? ref_logits + (size_t)t * V : NULL;
        int bad_model = !logits_row_finite(row, V), bad_ref = rrow && !logits_row_finite(rrow, V);
        if (bad_model || bad_ref) {
            note_nonfinite(a, !bad_model);
            a->n_pred++;
            continue;
        }
        log_softmax_row(lq, row, V);
        a->nll_sum -= lq[tokens[t + 1]];
        a->n_pred++;
        if (rrow) {
            log_softmax_row(lp, rrow, V);
            if (a->n_kld == a->cap_kld) {
                size_t nc = a->cap_kld ? a->cap_kld * 2 : 1024;
                double *nk = realloc(a->kld, nc * sizeof(double));
                if (!nk) {
                    a->oom = 1;
                    break;
                }
                a->kld = nk;
                a->cap_kld = nc;
            }
            a->kld[a->n_kld++] = kl_divergence(lp, lq, V);
            a->top1_same += argmax_row(row, V) == argmax_row(rrow, V);
        }
    }
    free(lp);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

double quantile_nearest_rank(double *v, size_t n, double q) {
    qsort(v, n, sizeof(double), cmp_double);
    size_t rank = (size_t)ceil(q * (double)n);
    if (rank < 1) rank = 1;
    return v[rank - 1];
}

int eval_accum_result(EvalAccum *a, EvalResult *r, QErr *err) {
    if (a->oom) return qerr_set(err, "out of memory while evaluating");
    if (a->n_pred == 0) return qerr_set(err, "no tokens to evaluate (sequences need >= 2 tokens)");
    if (a->n_nonfinite > 0)
        return qerr_set(
            err,
            "the %s's logits are NaN or infinite at %ld of %ld positions (first at position %ld): "
            "no metric is reported",
            a->first_bad_is_ref ? "reference" : "model", a->n_nonfinite, a->n_pred, a->first_bad_pos);
    r->tokens = a->n_pred;
    r->nll_mean = a->nll_sum / (double)a->n_pred;
    r->ppl = exp(r->nll_mean);
    r->kld_mean = r->kld_p99 = r->top1_agree = NAN;
    if (a->n_kld > 0) {
        double s = 0.0;
        for (size_t i = 0; i < a->n_kld; i++) s += a->kld[i];
        r->kld_mean = s / (double)a->n_kld;
        r->kld_p99 = quantile_nearest_rank(a->kld, a->n_kld, 0.99);
        r->top1_agree = (double)a->top1_same / (double)a->n_kld;
    }
    return 0;
}
