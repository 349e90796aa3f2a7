#include "tome.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void tome_merge(float *out, const float *const *outs, int n, int T, int C, float keep, float *sim, int *idx) {
    const float *hi = outs[0], *lo = outs[n - 1];
    for (int t = 0; t < T; t++) {
        const float *a = hi + (size_t)t * C, *b = lo + (size_t)t * C;
        double ab = 0, aa = 0, bb = 0;
        for (int c = 0; c < C; c++) {
            ab += (double)a[c] * b[c];
            aa += (double)a[c] * a[c];
            bb += (double)b[c] * b[c];
        }
        double den = sqrt(aa) * sqrt(bb);
        sim[t] = (float)(den > 1e-12 ? ab / den : 1.0);
        idx[t] = t;
    }
    /* stable insertion sort by descending similarity (T is a few thousand at most) */
    for (int i = 1; i < T; i++) {
        int k = idx[i];
        int j = i - 1;
        while (j >= 0 && sim[idx[j]] < sim[k]) {
            idx[j + 1] = idx[j];
            j--;
        }
        idx[j + 1] = k;
    }
    int n_keep = (int)ceilf(keep * (float)T);
    for (int r = 0; r < T; r++) {
        int t = idx[r];
        float *o = out + (size_t)t * C;
        if (r < n_keep) {
            memcpy(o, hi + (size_t)t * C, (size_t)C * sizeof(float));
        } else {
            for (int c = 0; c < C; c++) {
                float s = 0.0f;
                for (int g = 0; g < n; g++) s += outs[g][(size_t)t * C + c];
                o[c] = s / (float)n;
            }
        }
    }
}
