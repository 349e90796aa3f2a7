/* optim.h — AdamW (PyTorch semantics: decoupled weight decay, bias-corrected
 * moments) and cosine annealing from lr down to lr/100 over all steps. */
#ifndef QUEPT_OPTIM_H
#define QUEPT_OPTIM_H

#include <stddef.h>

typedef struct {
    float beta1, beta2, eps, weight_decay;
    size_t n;
    float *m, *v; /* (n) first and second moments */
    long t;       /* steps taken */
} AdamW;

int adamw_init(AdamW *o, size_t n, float weight_decay);
void adamw_free(AdamW *o);
/* One step on params (n) with gradient grad (n) at learning rate lr. */
void adamw_step(AdamW *o, float *params, const float *grad, float lr);
/* The learning rate at step t (0-based) of total: CosineAnnealingLR with
 * eta_min = base/100, stepped once per optimizer step. */
float cosine_lr(float base, long t, long total);

#endif
