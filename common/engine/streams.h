/* streams.h — the calibration activation streams (n_seq, T, C): `fp` the
 * full-precision stream (the recon targets come from it), `q[k]` the
 * quantized stream(s): one merged stream (q[0]) in STREAM_MERGED, one per
 * bit group in STREAM_PER_GROUP, one per bit index in STREAM_PER_BIT, none
 * in STREAM_FP.
 *
 * Storage is fp32 or, with qc->act_bf16, bf16 (half the bytes; rounded to
 * nearest even on every store, base/bf16.h). The engine always computes in
 * fp32: every read and write goes through the accessors below, one batch of
 * whole sequences at a time. With fp32 storage the accessors hand out the
 * stream's own memory (no copy), so that path is the plain fp32 engine bit
 * for bit; with bf16 they convert through a caller's scratch of nb*T*C
 * floats, laid out once (ReconStep.xin in the engine).
 *
 * A slot names a stream: STREAMS_FP, or k for q[k]. */
#ifndef QUEPT_STREAMS_H
#define QUEPT_STREAMS_H

#include <stddef.h>

#include "../quant/qconfig.h"

#define STREAMS_FP (-1)

typedef struct {
    int n_seq, T, C;
    int bf16; /* storage: 0 fp32, 1 bf16 */
    void *fp; /* float* or uint16_t* by bf16 */
    void *q[QMAX_NBITS];
} Streams;

/* Storage from qc->act_bf16; the quantized streams qc's stream mode uses. */
int streams_init(Streams *s, const QuantConfig *qc, int n_seq, int T, int C, QErr *err);
void streams_free(Streams *s);
/* Copies fp into every quantized stream (block 0, or a shard start). */
void streams_reset_q(Streams *s);
/* The slot bit b trains on / is evaluated on (STREAMS_FP in STREAM_FP). */
int streams_slot(const QuantConfig *qc, int bit);
/* Bytes of stream storage held (all slots). */
size_t streams_bytes(const Streams *s);

/* Sequences [s0, s0 + nb) of a slot as fp32: the stream itself (fp32) or
 * converted into scratch (bf16). */
const float *streams_load(const Streams *s, int slot, int s0, int nb, float *scratch);
/* The same for read-modify-write: edit what it returns, then streams_store it. */
float *streams_edit(Streams *s, int slot, int s0, int nb, float *scratch);
/* Where to write sequences [s0, ...) before a streams_store: the stream
 * itself (fp32) or scratch (bf16); nothing is read. */
float *streams_wbuf(Streams *s, int slot, int s0, float *scratch);
/* Writes x (nb sequences, fp32) into the slot at s0, rounding to bf16 when
 * so stored; a no-op when x is the stream's own memory (fp32). */
void streams_store(Streams *s, int slot, int s0, int nb, const float *x);

/* Copies src's full-precision stream into dst's (same shape and storage). */
void streams_copy_fp(Streams *dst, const Streams *src);

/* Fails on the first NaN/Inf of a slot ("<what>: non-finite value V at index I"). */
int streams_check_finite(const Streams *s, int slot, const char *what, QErr *err);

#endif
