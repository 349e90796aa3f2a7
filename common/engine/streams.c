/* streams.c — see streams.h. */
#include "streams.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../base/bf16.h"
#include "../base/numeric.h"

static size_t elem_bytes(const Streams *s) { return s->bf16 ? sizeof(uint16_t) : sizeof(float); }
static size_t seq_elems(const Streams *s) { return (size_t)s->T * s->C; }
static size_t total_elems(const Streams *s) { return (size_t)s->n_seq * seq_elems(s); }

static void *slot_base(const Streams *s, int slot) { return slot == STREAMS_FP ? s->fp : s->q[slot]; }

/* Element offset of sequence s0, as a byte pointer. */
static unsigned char *slot_at(const Streams *s, int slot, int s0) {
    return (unsigned char *)slot_base(s, slot) + (size_t)s0 * seq_elems(s) * elem_bytes(s);
}

int streams_slot(const QuantConfig *qc, int bit) {
    switch (qc->stream) {
    case STREAM_MERGED: return 0;
    case STREAM_PER_GROUP: return quant_bit_group(bit);
    case STREAM_PER_BIT: return quant_bit_index(qc, bit);
    default: return STREAMS_FP;
    }
}

int streams_init(Streams *s, const QuantConfig *qc, int n_seq, int T, int C, QErr *err) {
    memset(s, 0, sizeof *s);
    s->n_seq = n_seq;
    s->T = T;
    s->C = C;
    s->bf16 = qc->act_bf16 != 0;
    size_t bytes = total_elems(s) * elem_bytes(s);
    s->fp = malloc(bytes);
    int ok = s->fp != NULL;
    for (int i = 0; i < qc->n_bits && ok; i++) {
        int k = streams_slot(qc, qc->bits[i]);
        if (k >= 0 && !s->q[k]) ok = (s->q[k] = malloc(bytes)) != NULL;
    }
    if (!ok) {
        streams_free(s);
        return qerr_set(err, "out of memory for the activation streams (%d x %d x %d)", n_seq, T, C);
    }
    return 0;
}

void streams_free(Streams *s) {
    free(s->fp);
    for (int k = 0; k < QMAX_NBITS; k++) free(s->q[k]);
    memset(s, 0, sizeof *s);
}

void streams_reset_q(Streams *s) {
    size_t bytes = total_elems(s) * elem_bytes(s);
    for (int k = 0; k < QMAX_NBITS; k++)
        if (s->q[k]) memcpy(s->q[k], s->fp, bytes);
}

void streams_copy_fp(Streams *dst, const Streams *src) {
    memcpy(dst->fp, src->fp, total_elems(src) * elem_bytes(src));
}

size_t streams_bytes(const Streams *s) {
    size_t n = s->fp ? 1 : 0;
    for (int k = 0; k < QMAX_NBITS; k++) n += s->q[k] != NULL;
    return n * total_elems(s) * elem_bytes(s);
}

const float *streams_load(const Streams *s, int slot, int s0, int nb, float *scratch) {
    const unsigned char *p = slot_at(s, slot, s0);
    if (!s->bf16) return (const float *)p;
    bf16_to_f32_n((const uint16_t *)p, scratch, (size_t)nb * seq_elems(s));
    return scratch;
}

float *streams_edit(Streams *s, int slot, int s0, int nb, float *scratch) {
    unsigned char *p = slot_at(s, slot, s0);
    if (!s->bf16) return (float *)p;
    bf16_to_f32_n((const uint16_t *)p, scratch, (size_t)nb * seq_elems(s));
    return scratch;
}

float *streams_wbuf(Streams *s, int slot, int s0, float *scratch) {
    return s->bf16 ? scratch : (float *)slot_at(s, slot, s0);
}

void streams_store(Streams *s, int slot, int s0, int nb, const float *x) {
    unsigned char *p = slot_at(s, slot, s0);
    size_t n = (size_t)nb * seq_elems(s);
    if (s->bf16)
        bf16_from_f32_n(x, (uint16_t *)p, n);
    else if ((const unsigned char *)x != p)
        memcpy(p, x, n * sizeof(float));
}

int streams_check_finite(const Streams *s, int slot, const char *what, QErr *err) {
    const void *base = slot_base(s, slot);
    if (!s->bf16) return floats_check_finite(base, total_elems(s), what, err);
    const uint16_t *h = base;
    size_t n = total_elems(s);
    for (size_t i = 0; i < n; i++)
        if ((h[i] & 0x7f80u) == 0x7f80u) /* exponent all ones: inf or NaN */
            return qerr_set(err, "%s: non-finite value %g at index %zu", what, (double)bf16_to_f32(h[i]), i);
    return 0;
}
