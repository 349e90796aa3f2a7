/* layers.h — the layers of a Llama decoder block, one plain function per
 * layer and direction (llm.c style). N = B*T rows; C = model dim;
 * QD = n_heads*head_dim; KVD = n_kv_heads*head_dim; H = FFN hidden size.
 *
 * Backward functions ACCUMULATE (+=) into their d-inputs, so a tensor that
 * feeds two branches (the residual stream) sums its gradients naturally;
 * zero the buffers before a backward pass. Weight gradients may be NULL when
 * the weight is frozen. */
#ifndef QUEPT_LAYERS_H
#define QUEPT_LAYERS_H

#include <stddef.h>

/* out (N,C) = inp / rms(inp) * weight;  rstd (N) saved for backward */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C);

/* out (N,OC) = inp (N,IC) @ weight(OC,IC)^T + bias(OC) ; bias may be NULL */
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int IC,
                    int OC);
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int IC, int OC);

/* RoPE tables: cos/sin (T, head_dim/2) for positions 0..T-1. */
typedef struct {
    int T, head_dim, halves;
    float *cos_t, *sin_t;
} RopeTable;
int rope_table_init(RopeTable *rt, int T, int head_dim, float theta, int halves);
void rope_table_free(RopeTable *rt);
/* In place on x (B,T,n_heads,head_dim). halves=0 rotates pairs (2i,2i+1),
 * halves=1 rotates (i, i+hd/2). Backward applies the inverse rotation to dx. */
void rope_forward(float *x, const RopeTable *rt, int B, int T, int n_heads);
void rope_backward(float *dx, const RopeTable *rt, int B, int T, int n_heads);

/* Causal grouped-query attention.
 * q (B,T,NH*hd), k,v (B,T,NKV*hd) -> out (B,T,NH*hd); att (B,NH,T,T) holds the
 * softmax probabilities (saved for backward; may be a single (T,T) scratch when
 * save_att == 0, e.g. for inference). */
void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int B, int T,
                       int NH, int NKV, int hd, int save_att);
/* datt: scratch (T,T). */
void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout, const float *q,
                        const float *k, const float *v, const float *att, int B, int T, int NH, int NKV,
                        int hd);

/* SwiGLU: out (n) = silu(gate) * up */
void swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                     size_t n);

/* out = a + b (out may alias a) */
void residual_forward(float *out, const float *a, const float *b, size_t n);

#endif
