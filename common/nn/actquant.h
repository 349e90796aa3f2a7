/* actquant.h — per-token activation fake quantization at the input of a
 * linear layer (weight-activation quantization, DESIGN.md §1), forward and
 * backward. Dynamic (the scale comes from the row itself, nothing is
 * learned or stored), symmetric, abs-max, round to nearest.
 *
 * For each row x (C) of inp (N,C) at b bits (2..8), qmax = 2^(b-1) - 1:
 *   m      = max_i |x_i|,  a = the first index attaining it
 *   s      = clamp(m / qmax, ACTQ_SCALE_MIN, ACTQ_SCALE_MAX)
 *   r_i    = round_half_even(x_i * (1/s))
 *   code_i = clamp(r_i, -qmax - 1, qmax)
 *   out_i  = code_i * s
 * With s = m / qmax (the scale not clamped: every row whose abs-max lies in
 * [1e-4·qmax, 1e4·qmax]) every |x_i / s| <= qmax, so the code clamp never
 * acts; it (and the signed b-bit range -qmax-1..qmax it keeps) matters only
 * when s hits a bound. A row of zeros gives s = 1e-4 and zeros.
 *
 * Backward: the gradient autograd gives QuEPT's ActQuantizer
 * (src/llm/quantize/quantizer.py: round_ste, clamp_ste on the scale, the
 * scale NOT detached), which is:
 *   - round: straight through (d r_i / d u_i = 1);
 *   - code clamp: zero gradient where it acts (code_i != r_i);
 *   - scale clamp: straight through (clamp_ste: d s / d(m/qmax) = 1 even
 *     where the bound acts);
 *   - the scale depends on x through m: d m / d x_a = sign(x_a), all other
 *     d m / d x_j = 0 (ties, a measure-zero event, go to the first index;
 *     torch would split them).
 * So, with g = dout, u_i = x_i / s:
 *   dinp_j = g_j [r_j in range]
 *          + [j == a] sign(x_a) / qmax * sum_i g_i (r_i in range ? r_i - u_i : code_i)
 * The second term (the rounding residuals seen through the scale) goes to
 * one element per row.
 *
 * Where the reference differs: it multiplies by 1/(m/qmax) before clamping
 * the scale and does not clamp codes, so a row whose abs-max is below
 * 1e-4·qmax is scaled UP by 1e-4/(m/qmax) (and an all-zero row is NaN);
 * here the clamped scale is used on both sides. Identical everywhere else. */
#ifndef QUEPT_ACTQUANT_H
#define QUEPT_ACTQUANT_H

#define ACTQ_SCALE_MIN 1e-4f
#define ACTQ_SCALE_MAX 1e4f

/* out (N,C) = the fake-quantized rows of inp at `bits`; out may alias inp
 * (quantization in place, for forward-only passes). */
void actquant_forward(float *out, const float *inp, int N, int C, int bits);

/* dinp (N,C) = the gradient above, from dout and the forward's input inp
 * (the scale and its arg-max are recomputed from inp, bitwise as the
 * forward found them). Unlike the other layers' backward it WRITES dinp
 * rather than accumulating: it maps a gradient, in place if wanted —
 * dinp may alias dout or inp (each row is read whole before it is written). */
void actquant_backward(float *dinp, const float *dout, const float *inp, int N, int C, int bits);

#endif
