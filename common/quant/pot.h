/* pot.h — power-of-two (PoT) quantization kernels (DESIGN.md §2, PoTPTQ).
 *
 * A b-bit PoT code is a sign bit and a (b-1)-bit exponent:
 *   code = (sign << (b-1)) | E,   E in 0 .. Emax = 2^(b-1) - 1
 *   value = (sign ? -1 : +1) * s * 2^E
 * with one positive scale s per group (no zero point, no code for zero: the
 * smallest magnitude is s). Widths 2..5 (POT_BITS_MIN..POT_BITS_MAX): b = 2
 * has a 1-bit exponent (values ±s, ±2s); at b = 5 the grid already spans
 * 2^15 (s .. 32768 s), and each further bit only adds exponents for
 * magnitudes below 2^-15 of the group's largest, while the relative step
 * between levels stays 2 — the data-free weight error is the same at 4, 5
 * and 6 bits (docs/results.md, tests/ref/pot_weight_error.py), so 6..8 bits are not
 * offered (and 5 buys nothing over 4).
 *
 * Quantizing x with scale s: u = x / s, E = the exponent of the power of two
 * NEAREST to |u| (ties up), clamped to [0, Emax]:
 *   E_raw = floor(log2 |u|) + [mantissa of |u| >= 1.5]
 * read straight from the float's bits (the exponent field plus the top
 * mantissa bit), so the rounding boundaries are the arithmetic midpoints
 * 1.5·2^k between neighbouring levels (not the geometric ones of
 * round(log2|u|)); the value is the nearest representable one. The sign is
 * the sign bit of x (so -0 gives -s).
 *
 * Straight-through estimator: an element is "in range" when E_raw lies in
 * [0, Emax] (0.75 <= |u| < 1.5·2^Emax). Through v = pot(u)·s with dpot/du =
 * 1 in range and 0 outside (as the INT quantizer's clamp mask):
 *   dv/dx = [in range]
 *   dv/ds = pot(u) - [in range]·u
 *
 * Dequantization with fp32 scales is an integer add into the exponent field
 * and an XOR of the sign bit: bits(v) = (bits(s) + (E << 23)) ^ (sign << 31),
 * exact (equal to s·2^E) whenever s and s·2^Emax are normal floats. */
#ifndef QUEPT_POT_H
#define QUEPT_POT_H

#include <stddef.h>
#include <stdint.h>

#define POT_BITS_MIN 2
#define POT_BITS_MAX 5
/* Data-free search: multipliers k/100 for k = 1..POT_SEARCH_STEPS of the
 * starting scale max|x| / 2^(Emax-1). */
#define POT_SEARCH_STEPS 200
/* The refined scale is s0 * max(1 + Gamma, POT_FACTOR_MIN) (the gradient
 * passes the floor unconditionally, as the INT quantizer's 1e-5 floor). */
#define POT_FACTOR_MIN 0.01f
/* The scale of an all-zero group (any scale gives the same error ratio). */
#define POT_ZERO_GROUP_SCALE 1e-8f

static inline int pot_emax(int bits) { return (1 << (bits - 1)) - 1; }

/* out[j] = pot(x[j]/s)·s for one group of n. out may equal x. */
void pot_group_quant(const float *x, int n, float s, int emax, float *out);

/* codes[j] = (sign << (bits-1)) | E for one group of n. */
void pot_group_codes(const float *x, int n, float s, int bits, uint8_t *codes);

/* Backward of one group: returns ds = sum_j dy[j]·(pot(u_j) - in_j·u_j) and,
 * if dx != NULL, writes dx[j] = in_j·dy[j] (dx may equal x). */
float pot_group_backward(const float *x, const float *dy, int n, float s, int emax, float *dx);

/* Sum of squared errors of quantizing the group with scale s. */
float pot_group_sse(const float *x, int n, float s, int emax);

/* The data-free scale of one group: the multiplier m = k/100 (k = 1..200,
 * the first minimum) of s_start = max|x| / 2^(Emax-1) that minimises the
 * group's squared weight error; returns m·s_start (POT_ZERO_GROUP_SCALE for
 * an all-zero group). */
float pot_search_scale(const float *x, int n, int bits);

/* W = sign·s·2^E for one group (exponent add when exact, see the top). */
void pot_group_dequant(const uint8_t *codes, int n, float s, int bits, float *out);

#endif
