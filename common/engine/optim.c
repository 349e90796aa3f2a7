#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int adamw_init(AdamW *o, size_t n, float weight_decay) {
    memset(o, 0, sizeof *o);
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = weight_decay;
    o->n = n;
    o->m = calloc(n ? n : 1, sizeof(float));
    o->v = calloc(n ? n : 1, sizeof(float));
    if (!o->m || !o->v) {
        adamw_free(o);
        return -1;
    }
    return 0;
}

void adamw_free(AdamW *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void adamw_step(AdamW *o, float *params, const float *grad, float lr) {
    o->t++;
    float b1 = o->beta1, b2 = o->beta2;
    float bc1 = 1.0f - powf(b1, (float)o->t), bc2 = 1.0f - powf(b2, (float)o->t);
    float step = lr / bc1, rbc2 = 1.0f / sqrtf(bc2), decay = 1.0f - lr * o->weight_decay;
    for (size_t i = 0; i < o->n; i++) {
        float g = grad[i];
        float m = o->m[i] = b1 * o->m[i] + (1.0f - b1) * g;
        float v = o->v[i] = b2 * o->v[i] + (1.0f - b2) * g * g;
        params[i] = params[i] * decay - step * m / (sqrtf(v) * rbc2 + o->eps);
    }
}

float cosine_lr(float base, long t, long total) {
    float eta_min = base / 100.0f;
    if (total <= 0) return base;
    return eta_min + (base - eta_min) * 0.5f * (1.0f + cosf(3.14159265358979f * (float)t / (float)total));
}
