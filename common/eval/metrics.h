/* metrics.h — the quality metrics every quept result is judged by
 * (DESIGN.md §4, as llama.cpp's perplexity tool reports them):
 *   perplexity  exp(mean NLL of token t+1 given tokens 0..t)
 *   KLD         per position, KL(P_ref || P_model) of the next-token
 *               distributions: mean and 99th percentile
 *   top-1       share of positions where both argmax tokens are equal
 * A sequence of T tokens contributes its T-1 next-token predictions. */
#ifndef QUEPT_METRICS_H
#define QUEPT_METRICS_H

#include <stddef.h>

#include "../base/err.h"

typedef struct {
    /* positions t < first are not scored (0: all; llama-perplexity scores
     * the second half of each chunk: first = T/2) */
    int first;
    double nll_sum;
    long n_pred;
    double *kld; /* one per compared position */
    size_t n_kld, cap_kld;
    long top1_same;
    int oom;
    /* positions whose logits (model or reference) hold NaN/Inf: the result
     * is then an error, never a number */
    long n_nonfinite;
    long first_bad_pos;   /* index among all predicted positions, -1 = none */
    int first_bad_is_ref; /* the first bad row came from the reference */
} EvalAccum;

typedef struct {
    double ppl, nll_mean;
    double kld_mean, kld_p99, top1_agree; /* NAN without a reference */
    long tokens;
} EvalResult;

void eval_accum_init(EvalAccum *a);
void eval_accum_free(EvalAccum *a);
/* logits (T,V) of one sequence; ref_logits (T,V) or NULL. Scores the
 * predictions of tokens first+1 .. T-1. */
void eval_accum_sequence(EvalAccum *a, const float *logits, const float *ref_logits, const int *tokens, int T,
                         int V);
/* The metrics; an error (never a number) when any logit was NaN/Inf. */
int eval_accum_result(EvalAccum *a, EvalResult *r, QErr *err);

/* 1 when every one of the V logits is finite (0 for any NaN or Inf). */
int logits_row_finite(const float *x, int V);
/* The nearest-rank quantile q (in (0, 1]) of v[0..n), n >= 1; sorts v. */
double quantile_nearest_rank(double *v, size_t n, double q);

/* log-softmax of one row into out (double precision). */
void log_softmax_row(double *out, const float *logits, int V);
/* KL(p || q) from log-probabilities; NaN stays NaN. */
double kl_divergence(const double *logp, const double *logq, int V);

#endif
