#include "qconfig.h"

#include "ggml_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const int QGROUP_LO[QN_GROUPS] = {7, 5, 3, 2};
const int QGROUP_HI[QN_GROUPS] = {8, 6, 4, 2};

void quant_config_reference(QuantConfig *qc) {
    memset(qc, 0, sizeof *qc);
    qc->method = METHOD_QUEPT;
    qc->n_bits = 7;
    for (int i = 0; i < 7; i++) qc->bits[i] = 2 + i;
    for (int b = 0; b <= QBITS_MAX; b++) {
        qc->group[b] = b <= 4 ? 128 : 0;
        qc->rank[b] = b <= 4 ? 192 : b <= 6 ? 128 : 64;
        qc->lwc_init[b] = 4.0f;
    }
    qc->rank_ref_width = 0; /* the reference uses the ranks as they are ... */
    qc->rank_cap = 1.0f;    /* ... capped by the layer size */
    qc->adapter_mode = 0;
    qc->lwc = 1;
    qc->epochs = 15;
    qc->batch = 2;
    qc->lr_lwc = 2e-2f;
    qc->lr_adapter = 7e-4f;
    qc->weight_decay = 0.0f;
    qc->loss_l2 = 0;
    qc->merge_keep = 0.5f;
    qc->stream = STREAM_MERGED;
    qc->normalize_loss = 0;
    qc->prefix_grad_stop = 0;
    qc->holdout = 0.0f;
    qc->fallback = 0;
    qc->fallback_gptq = 0;
    qc->gptq_damp = 0.01f;
    qc->seed = 0;
    qc->format = QFORMAT_INT;
    qc->pot_l2 = 1e-4f;
    qc->teq = TEQ_OFF;
    qc->lr_teq = 1e-3f; /* the published TEQ's Adam learning rate */
}

void quant_config_default(QuantConfig *qc) {
    quant_config_reference(qc);
    /* Each change measured on stories260K (docs/defaults.md):
     * every bit trains on the stream it will really see, low bits do not move
     * the adapter ranks high bits share, ranks scale with the layer width as
     * the reference's 192/128/64 do for 4096-wide layers, high-bit grids start
     * almost unclipped (sigmoid(8) = 0.9997; 0.982 already clips more than
     * an 8-bit step), and a block keeps the adapters at a bit only where they
     * pay on held-out sequences. */
    qc->stream = STREAM_PER_BIT;
    qc->prefix_grad_stop = 1;
    qc->rank_ref_width = 4096;
    for (int b = 5; b <= QBITS_MAX; b++) qc->lwc_init[b] = 8.0f;
    qc->holdout = 0.125f;
    qc->fallback = 1;
    /* the fallback also tries GPTQ's error feedback on the trained grid:
     * what closes the gap to GPTQ at 5-8 bits (docs/defaults.md) */
    qc->fallback_gptq = 1;
    /* a budget of at least 840 steps per block (15 epochs of the quick
     * start's 128 sequences): 16 sequences no longer get ~105 steps */
    qc->min_steps = 840;
    /* TEQ on q/k/v and gate/up, started from the activations' per-channel
     * magnitude (AWQ-style) and trained in log scale: the activation-outlier
     * variant of stories260K no longer breaks the method, and the clean
     * model gains at every width (docs/defaults.md, "TEQ by default") */
    qc->teq = TEQ_NORM;
    qc->teq_init = 1;
    qc->teq_log = 1;
    qc->lr_teq = 1e-2f;
}

/* --format gguf: a ggml type of b-bit codes for every width b, and the
 * parts of quept the file format cannot carry refused; other formats: no
 * types. */
static int validate_gguf(const QuantConfig *qc, QErr *err) {
    if (qc->format != QFORMAT_GGUF) {
        for (int b = 0; b <= QBITS_MAX; b++)
            if (qc->gguf_type[b]) return qerr_set(err, "--gguf-types needs --format gguf");
        return 0;
    }
    for (int b = 0; b <= QBITS_MAX; b++) {
        int t = qc->gguf_type[b];
        if (t == 0) continue;
        if (!gq_is_block_type(t))
            return qerr_set(err, "--gguf-types: %d bits: ggml type %d is not a block type quept writes", b,
                            t);
        if (gq_code_bits(t) != b)
            return qerr_set(err, "--gguf-types: %s has %d-bit codes, not %d", gq_type_name(t),
                            gq_code_bits(t), b);
    }
    for (int i = 0; i < qc->n_bits; i++)
        if (!qc->gguf_type[qc->bits[i]])
            return qerr_set(
                err,
                "--format gguf: no GGUF type for %d bits (7 has none; the types: 2 q2_k, 3 q3_k, "
                "4 q4_0|q4_1|q4_k|iq4_nl, 5 q5_0|q5_1|q5_k, 6 q6_k, 8 q8_0; set with --gguf-types)",
                qc->bits[i]);
    if (qc->method == METHOD_GPTQ)
        return qerr_set(err, "--format gguf: GPTQ on GGUF's block types is not implemented (use --method "
                             "quept or rtn)");
    if (qc->adapter_mode != 0) return qerr_set(err, "--format gguf needs --adapter-mode 0");
    if (qc->rotate != ROTATE_NONE)
        return qerr_set(err,
                        "--format gguf with --rotate: llama.cpp cannot run the online Hadamard transform "
                        "of down_proj's input");
    return 0;
}

int quant_config_validate(const QuantConfig *qc, QErr *err) {
    if (qc->n_bits < 1 || qc->n_bits > QMAX_NBITS) return qerr_set(err, "--bits: need 1 to 7 bit widths");
    for (int i = 0; i < qc->n_bits; i++) {
        if (qc->bits[i] < QBITS_MIN || qc->bits[i] > QBITS_MAX)
            return qerr_set(err, "--bits: %d is outside 2..8", qc->bits[i]);
        if (i > 0 && qc->bits[i] <= qc->bits[i - 1]) return qerr_set(err, "--bits: widths must be unique");
    }
    for (int b = QBITS_MIN; b <= QBITS_MAX; b++) {
        if (qc->group[b] < 0) return qerr_set(err, "group size for %d bits must be >= 0", b);
        if (qc->rank[b] < 0) return qerr_set(err, "rank for %d bits must be >= 0", b);
    }
    if (!(qc->rank_cap >= 0.0f && qc->rank_cap <= 1.0f)) return qerr_set(err, "--rank-cap must be in [0, 1]");
    if (qc->epochs < 0) return qerr_set(err, "--epochs must be >= 0");
    if (qc->min_steps < 0) return qerr_set(err, "--min-steps must be >= 0");
    if (qc->teq_log != 0 && qc->teq_log != 1) return qerr_set(err, "teq_log must be 0 or 1");
    if (qc->teq_init != 0 && qc->teq_init != 1)
        return qerr_set(err, "--teq-init: unknown value %d", qc->teq_init);
    if (qc->batch < 1) return qerr_set(err, "--batch must be >= 1");
    if (!(qc->lr_lwc >= 0.0f) || !(qc->lr_adapter >= 0.0f))
        return qerr_set(err, "learning rates must be >= 0");
    if (!(qc->merge_keep >= 0.0f && qc->merge_keep <= 1.0f))
        return qerr_set(err, "--merge-keep must be in [0, 1]");
    if (!(qc->holdout >= 0.0f && qc->holdout < 1.0f)) return qerr_set(err, "--holdout must be in [0, 1)");
    if (qc->adapter_mode != 0 && qc->adapter_mode != 1) return qerr_set(err, "--adapter-mode must be 0 or 1");
    if (qc->act_bf16 != 0 && qc->act_bf16 != 1) return qerr_set(err, "bf16_activations must be 0 or 1");
    if (qc->format != QFORMAT_INT && qc->format != QFORMAT_POT && qc->format != QFORMAT_GGUF)
        return qerr_set(err, "unknown weight format %d", (int)qc->format);
    if (validate_gguf(qc, err) != 0) return -1;
    if (qc->format == QFORMAT_POT) {
        for (int i = 0; i < qc->n_bits; i++)
            if (qc->bits[i] < 2 || qc->bits[i] > 5)
                return qerr_set(err,
                                "--format pot: %d bits is outside 2..5 (sign + exponent codes: 6-8 "
                                "bits add only exponents below 2^-15 of the group maximum)",
                                qc->bits[i]);
        if (qc->method == METHOD_GPTQ)
            return qerr_set(err, "--format pot: GPTQ is not implemented for "
                                 "power-of-two codes (use --method quept or rtn)");
        if (qc->adapter_mode != 0) return qerr_set(err, "--format pot needs --adapter-mode 0");
        if (qc->weight_decay != 0.0f)
            return qerr_set(
                err,
                "--format pot needs weight decay 0 (the data-free scales share the logits' parameter group)");
        if (!(qc->pot_l2 >= 0.0f)) return qerr_set(err, "--pot-l2 must be >= 0");
    }
    for (int i = 0; i < QMAX_NBITS; i++) {
        int a = qc->act_bits[i];
        if (i >= qc->n_bits && a != 0)
            return qerr_set(err, "--act-bits: an activation width past the %d weight widths", qc->n_bits);
        if (a != 0 && (a < QBITS_MIN || a > QBITS_MAX))
            return qerr_set(err, "--act-bits: %d is outside 2..8 (16: no activation quantization)", a);
    }
    if (qc->teq != TEQ_OFF && qc->teq != TEQ_NORM && qc->teq != TEQ_WIDE)
        return qerr_set(err, "--teq-placement: unknown placement %d", (int)qc->teq);
    if (!(qc->lr_teq >= 0.0f)) return qerr_set(err, "--lr-teq must be >= 0");
    if (qc->rotate != ROTATE_NONE && qc->rotate != ROTATE_HADAMARD)
        return qerr_set(err, "--rotate: unknown rotation %d", (int)qc->rotate);
    if (qc->rotate == ROTATE_HADAMARD && qc->teq == TEQ_WIDE)
        return qerr_set(err,
                        "--rotate hadamard with --teq-placement wide is not implemented (the down scales "
                        "divide up's rows and multiply down's columns, which the online Hadamard between "
                        "them does not commute with); use --teq-placement norm or off");
    if (qc->teq != TEQ_OFF && qc->format == QFORMAT_POT)
        return qerr_set(err,
                        "--teq with --format pot is not implemented (the TEQ scales need the weight gradient "
                        "through the quantizer, which the PoT path does not compute)");
    return 0;
}

int quant_parse_bits(QuantConfig *qc, const char *s, QErr *err) {
    int seen[QBITS_MAX + 2] = {0};
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p) return qerr_set(err, "--bits: cannot parse '%s' (expected e.g. 2,3,4 or 2-8)", s);
        p = end;
        if (*p == '-') {
            b = strtol(p + 1, &end, 10);
            if (end == p + 1) return qerr_set(err, "--bits: cannot parse '%s'", s);
            p = end;
        }
        if (a < QBITS_MIN || b > QBITS_MAX || a > b)
            return qerr_set(err, "--bits: '%s' has a width outside 2..8", s);
        for (long x = a; x <= b; x++) seen[x] = 1;
        if (*p == ',')
            p++;
        else if (*p)
            return qerr_set(err, "--bits: unexpected '%c' in '%s'", *p, s);
    }
    qc->n_bits = 0;
    for (int x = QBITS_MIN; x <= QBITS_MAX; x++)
        if (seen[x]) qc->bits[qc->n_bits++] = x;
    if (qc->n_bits == 0) return qerr_set(err, "--bits: empty list");
    return 0;
}

/* "a,b-c,..." in the order written (ranges ascending, repeats kept) into
 * out (at most max); each value in 2..8, or (allow16) exactly 16. The
 * count, or -1 with err naming flag. */
static int expand_widths(const char *flag, const char *s, int allow16, int *out, int max, QErr *err) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b;
        if (end == p) return qerr_set(err, "%s: cannot parse '%s' (expected e.g. 4,5,6,8 or 4-8)", flag, s);
        p = end;
        b = a;
        if (*p == '-') {
            b = strtol(p + 1, &end, 10);
            if (end == p + 1) return qerr_set(err, "%s: cannot parse '%s'", flag, s);
            p = end;
        }
        int is16 = allow16 && a == 16 && b == 16;
        if (!is16 && (a < QBITS_MIN || b > QBITS_MAX || a > b))
            return qerr_set(err, "%s: '%s' has a width outside 2..8%s", flag, s,
                            allow16 ? " (or 16: none)" : "");
        for (long x = a; x <= b; x++) {
            if (n >= max) return qerr_set(err, "%s: more than %d widths in '%s'", flag, max, s);
            out[n++] = (int)x;
        }
        if (*p == ',')
            p++;
        else if (*p)
            return qerr_set(err, "%s: unexpected '%c' in '%s'", flag, *p, s);
    }
    if (n == 0) return qerr_set(err, "%s: empty list", flag);
    return n;
}

int quant_parse_act_bits(QuantConfig *qc, const char *bits_arg, const char *act, QErr *err) {
    int wb[QMAX_NBITS + 1], ab[QMAX_NBITS + 1], nw = qc->n_bits;
    if (bits_arg) {
        nw = expand_widths("--bits", bits_arg, 0, wb, QMAX_NBITS + 1, err);
        if (nw < 0) return -1;
        for (int i = 0; i < nw; i++)
            for (int j = 0; j < i; j++)
                if (wb[i] == wb[j])
                    return qerr_set(
                        err, "--act-bits pairs with --bits one to one: %d appears twice in --bits '%s'",
                        wb[i], bits_arg);
    } else {
        memcpy(wb, qc->bits, sizeof(int) * (size_t)nw);
    }
    int na = expand_widths("--act-bits", act, 1, ab, QMAX_NBITS + 1, err);
    if (na < 0) return -1;
    if (na != nw)
        return qerr_set(err,
                        "--act-bits: %d activation widths for the %d weight widths of --bits (one per weight "
                        "width, in the same order; 16 = no activation quantization)",
                        na, nw);
    memset(qc->act_bits, 0, sizeof qc->act_bits);
    for (int i = 0; i < nw; i++) {
        int bi = quant_bit_index(qc, wb[i]);
        if (bi < 0) return qerr_set(err, "--act-bits: %d bits is not among the weight widths", wb[i]);
        qc->act_bits[bi] = ab[i] == 16 ? 0 : ab[i];
    }
    return 0;
}

int quant_act_bits(const QuantConfig *qc, int bi) {
    return bi >= 0 && bi < qc->n_bits ? qc->act_bits[bi] : 0;
}

int quant_has_act(const QuantConfig *qc) {
    for (int i = 0; i < qc->n_bits; i++)
        if (qc->act_bits[i]) return 1;
    return 0;
}

int quant_gtype(const QuantConfig *qc, int bit, int in) {
    if (qc->format != QFORMAT_GGUF) return 0;
    return gq_row_type(qc->gguf_type[bit], in);
}

int quant_group(const QuantConfig *qc, int bit, int in) {
    if (qc->format == QFORMAT_GGUF) {
        int t = quant_gtype(qc, bit, in);
        return t == GQ_F16 ? in : gq_sub_elems(t);
    }
    int g = qc->group[bit];
    return (g <= 0 || g > in) ? in : g;
}

int quant_rank(const QuantConfig *qc, int bit, int out, int in) {
    if (qc->method != METHOD_QUEPT) return 0;
    int width = out < in ? out : in;
    double r = qc->rank[bit];
    if (qc->rank_ref_width > 0) r = r * width / qc->rank_ref_width;
    int ri = (int)lround(r);
    if (qc->rank[bit] > 0 && ri < 1) ri = 1;
    int cap = (int)floor(qc->rank_cap * width);
    return ri < cap ? ri : cap;
}

int quant_bit_index(const QuantConfig *qc, int bit) {
    for (int i = 0; i < qc->n_bits; i++)
        if (qc->bits[i] == bit) return i;
    return -1;
}

int quant_bit_group(int bit) {
    for (int g = 0; g < QN_GROUPS; g++)
        if (bit >= QGROUP_LO[g] && bit <= QGROUP_HI[g]) return g;
    return -1;
}

const char *quant_method_name(QuantMethod m) {
    return m == METHOD_QUEPT ? "quept" : m == METHOD_RTN ? "rtn" : "gptq";
}

const char *quant_stream_name(StreamMode s) {
    return s == STREAM_MERGED      ? "merged"
           : s == STREAM_PER_GROUP ? "per-group"
           : s == STREAM_PER_BIT   ? "per-bit"
                                   : "fp";
}

void quant_config_set_pot(QuantConfig *qc) {
    qc->format = QFORMAT_POT;
    qc->n_bits = 4;
    for (int i = 0; i < 4; i++) qc->bits[i] = 2 + i;
    for (int b = 5; b <= QBITS_MAX; b++) qc->group[b] = 128;
    qc->lr_lwc = 3e-4f;
    qc->teq = TEQ_OFF; /* not implemented for PoT codes (quant_config_validate) */
}

void quant_config_set_gguf(QuantConfig *qc) {
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    static const int type[QBITS_MAX + 1] = {0, 0, GQ_Q2_K, GQ_Q3_K, GQ_Q4_K, GQ_Q5_K, GQ_Q6_K, 0, GQ_Q8_0};
    qc->format = QFORMAT_GGUF;
    qc->n_bits = 6;
    memcpy(qc->bits, bits, sizeof bits);
    memcpy(qc->gguf_type, type, sizeof type);
}

const char *quant_format_name(WeightFormat f) {
    return f == QFORMAT_POT ? "pot" : f == QFORMAT_GGUF ? "gguf" : "int";
}

int quant_parse_format(const char *s, WeightFormat *f, QErr *err) {
    if (strcmp(s, "int") == 0)
        *f = QFORMAT_INT;
    else if (strcmp(s, "pot") == 0)
        *f = QFORMAT_POT;
    else if (strcmp(s, "gguf") == 0)
        *f = QFORMAT_GGUF;
    else
        return qerr_set(err, "--format: expected int, pot or gguf, got '%s'", s);
    return 0;
}

const char *quant_teq_name(TeqPlacement t) { return t == TEQ_NORM ? "norm" : t == TEQ_WIDE ? "wide" : "off"; }

int quant_parse_teq(const char *s, TeqPlacement *t, QErr *err) {
    if (strcmp(s, "off") == 0)
        *t = TEQ_OFF;
    else if (strcmp(s, "norm") == 0)
        *t = TEQ_NORM;
    else if (strcmp(s, "wide") == 0)
        *t = TEQ_WIDE;
    else
        return qerr_set(
            err, "--teq-placement: expected norm (q/k/v, gate/up) or wide (also o, down), got '%s'", s);
    return 0;
}
