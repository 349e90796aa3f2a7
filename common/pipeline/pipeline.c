/* pipeline.c — see pipeline.h. */
#include "pipeline.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../artifact/sensitivity.h"
#include "../base/log.h"
#include "../base/numeric.h"
#include "../base/sha256.h"
#include "../engine/teq.h"
#include "../model/rotate.h"

int pipeline_load_job(const CalibJob *job, const QuantConfig *qc, const ModelConfig *c, TokenSet *ts,
                      char model_sha256[65], char data_sha256[65], QErr *err) {
    const char *data = job->data_path;
    if (tokens_load_any(data, NULL, 0, job->max_seqs, ts, err) != 0) return -1;
    int rc = tokens_check_vocab(ts, c->vocab_size, data, err);
    if (rc == 0 && ts->seq_len > c->seq_len)
        rc = qerr_set(err, "%s: sequences of %d tokens exceed the model's context of %d", data, ts->seq_len,
                      c->seq_len);
    if (rc == 0 && ts->n_seq < qc->batch)
        rc = qerr_set(err, "%s: %d calibration sequences, need at least the batch size %d", data, ts->n_seq,
                      qc->batch);
    if (rc == 0 && ts->seq_len < 2)
        rc = qerr_set(err, "%s: sequences of %d tokens are too short", data, ts->seq_len);
    if (rc == 0) rc = sha256_path_hex(job->model_path, model_sha256, err);
    if (rc == 0) rc = sha256_path_hex(data, data_sha256, err);
    if (rc != 0) tokens_free(ts);
    return rc;
}

int pipeline_rotate(Model *m, const QuantConfig *qc, QErr *err) {
    if (qc->rotate == ROTATE_NONE) return 0;
    if (model_rotate_full(m, qc->rotate_seed, err) != 0) return qerr_wrap(err, "--rotate hadamard");
    return 0;
}

void pipeline_fold_teq(QBlockParams *p, const ModelConfig *c, BlockWeights *w, int j, int quiet) {
    if (p->n_teq == 0) return;
    if (!quiet) {
        float lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < p->n_teq; i++) lo = fminf(lo, p->teq[i]), hi = fmaxf(hi, p->teq[i]);
        fprintf(stderr, "block %d/%d TEQ scales in [%.3f, %.3f]\n", j + 1, c->n_layers, lo, hi);
    }
    teq_fold(p, c, w);
}

int pipeline_finish(ElasticModel *em, Model *m, const char *model_sha256, const char *data_sha256,
                    const TokenSet *ts, const char *out_path, int quiet, QErr *err) {
    em->base = *m;
    memset(m, 0, sizeof *m);
    snprintf(em->model_sha256, sizeof em->model_sha256, "%s", model_sha256);
    snprintf(em->data_sha256, sizeof em->data_sha256, "%s", data_sha256);
    double t_sens = now_seconds();
    if (sensitivity_compute(em, ts, err) != 0) return -1;
    if (!quiet)
        log_info("sensitivity table (kld, last %d sequences) took %.1fs", sens_holdout_count(ts->n_seq),
                 now_seconds() - t_sens);
    return elastic_write(em, out_path, err);
}
