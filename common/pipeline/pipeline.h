/* pipeline.h — the calibration steps every path shares: the single-process
 * run (calibrate.c) and the distributed coordinator (coordinator/coord.c)
 * load and check the job the same way and end it the same way, so the same
 * job gives the same artifact either way. */
#ifndef QUEPT_PIPELINE_H
#define QUEPT_PIPELINE_H

#include "../artifact/elastic.h"
#include "../data/tokens.h"

typedef struct {
    const char *model_path, *data_path, *out_path;
    int max_seqs; /* 0 = all */
    int quiet;
} CalibJob;

/* The job's calibration sequences, checked against the model's config c
 * (token ids in the vocabulary, no longer than the context, at least one
 * batch of qc's, at least 2 tokens each), and the SHA-256 of the model and
 * data files, the artifact's provenance. On failure ts holds nothing. */
int pipeline_load_job(const CalibJob *job, const QuantConfig *qc, const ModelConfig *c, TokenSet *ts,
                      char model_sha256[65], char data_sha256[65], QErr *err);

/* The calibration's rotation of a whole model m (qc->rotate hadamard:
 * model_rotate_full with qc->rotate_seed; nothing for none), as the workers
 * rotate the blocks they load. */
int pipeline_rotate(Model *m, const QuantConfig *qc, QErr *err);

/* Block j's TEQ scales go into its base weights w (what the artifact stores
 * and every later consumer — GPTQ, switch, export — sees); logs their range
 * unless quiet. Nothing to do for a block without TEQ scales. */
void pipeline_fold_teq(QBlockParams *p, const ModelConfig *c, BlockWeights *w, int j, int quiet);

/* The ending, once every block of em is calibrated and folded: the artifact
 * takes m as its base model (m is em's from the call on, whatever it
 * returns), records its provenance, computes its sensitivity table on ts
 * and is written to out_path. */
int pipeline_finish(ElasticModel *em, Model *m, const char *model_sha256, const char *data_sha256,
                    const TokenSet *ts, const char *out_path, int quiet, QErr *err);

#endif
