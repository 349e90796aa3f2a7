/* evaluate.h — runs a model (and optionally a reference) over a token set. */
#ifndef QUEPT_EVALUATE_H
#define QUEPT_EVALUATE_H

#include "../data/tokens.h"
#include "../model/model.h"
#include "metrics.h"

/* Evaluates m on ts in batches of `batch` sequences; with ref, also KLD and
 * top-1 agreement. Token ids are checked against both vocabularies. */
int evaluate_model(const Model *m, const Model *ref, const TokenSet *ts, int batch, EvalResult *out,
                   QErr *err);

#endif
