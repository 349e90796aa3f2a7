/* sensitivity.h — per-block, per-bit sensitivity of the whole model's output
 * to quantizing ONE block (what mixed-precision assignment minimises).
 *
 * Measure "kld": sens[bi][j] = mean per-token KL(P_fp || P_q) of the
 * next-token distributions when only block j is switched to bits[bi] (every
 * other block full precision), against the full-precision model. Positions
 * are the T-1 next-token predictions of each sequence (as metrics.h).
 *
 * Sequences: the LAST n = sens_holdout_count(n_seq) = max(1, min(8, n_seq/8))
 * calibration sequences. With the default --holdout 0.125 these lie inside
 * the fallback's held-out slice (the last 1/8 of the sequences are never
 * trained on); with --holdout 0 they are training sequences. Cost:
 * n_bits * (n_layers + 1) * n single-sequence forward passes. */
#ifndef QUEPT_SENSITIVITY_H
#define QUEPT_SENSITIVITY_H

#include "../data/tokens.h"
#include "elastic.h"

#define SENS_MAX_SEQS 8

int sens_holdout_count(int n_seq);

/* Fills em->sens ([n_bits][n_layers], row-major, allocated here; freed by
 * elastic_free) and em->sens_measure = "kld" from the sequences described
 * above. em must hold the base model and every block's parameters. */
int sensitivity_compute(ElasticModel *em, const TokenSet *ts, QErr *err);

#endif
