/* qconfig_table.c — the calibration settings, one row each, and the code
 * the rows drive: the "quant" map, the command line, --help and the
 * Markdown reference (qconfig_table.h).
 *
 * To add a calibration setting (a boolean flag, say) — three places:
 *   1. the field in QuantConfig (qconfig.h); its default in
 *      quant_config_reference / quant_config_default (0 needs nothing: the
 *      reference starts from a memset);
 *   2. one row at the end of QCONFIG_TABLE below, e.g.
 *        {.flag = "my-flag", .type = QS_BOOL, .off = F(my_flag), .key = "my_flag",
 *         .codec = QS_OPTIONAL | QS_IF_SET, .help = "what it does"},
 *      At the end, because the map's keys go in table order; QS_IF_SET
 *      leaves the key out when the flag is off, so every existing artifact,
 *      journal and message keeps its bytes, and QS_OPTIONAL reads those
 *      without the key (as off);
 *   3. the engine code that reads qc->my_flag.
 * Then regenerate the reference (ctest's calibration_flags_doc fails until
 * you do):  quept calibrate --help-markdown > docs/calibration-flags.md */
#include "qconfig_table.h"

#include "ggml_quant.h"

#include <stdint.h>
#include <string.h>

#define F(field) offsetof(QuantConfig, field)
#define NAMES(a) .names = a, .n_names = (int)(sizeof a / sizeof a[0])

/* enum names by value */
static const char *const METHOD_NAMES[] = {"quept", "rtn", "gptq"};                 /* QuantMethod */
static const char *const STREAM_NAMES[] = {"merged", "per-group", "fp", "per-bit"}; /* StreamMode */
static const char *const LOSS_NAMES[] = {"l1", "l2"};                               /* loss_l2 */
static const char *const TEQ_NAMES[] = {"off", "norm", "wide"};                     /* TeqPlacement */
static const char *const FORMAT_NAMES[] = {"int", "pot", "gguf"};                   /* WeightFormat */
static const char *const TEQ_INIT_NAMES[] = {"ones", "awq"};                        /* teq_init */
static const char *const ROTATE_NAMES[] = {"none", "hadamard"};                     /* RotateKind */

/* QS_ENUM fields are read and written as int */
_Static_assert(sizeof(QuantMethod) == sizeof(int) && sizeof(StreamMode) == sizeof(int) &&
                   sizeof(TeqPlacement) == sizeof(int) && sizeof(WeightFormat) == sizeof(int) &&
                   sizeof(RotateKind) == sizeof(int),
               "enum fields must be int-sized");

/* --format pot brings its widths, groups and Γ's learning rate; --format
 * gguf its widths and types */
static void format_preset(QuantConfig *qc) {
    if (qc->format == QFORMAT_POT) quant_config_set_pot(qc);
    if (qc->format == QFORMAT_GGUF) quant_config_set_gguf(qc);
}

/* --gguf-grid: the groups of GGUF's legacy block types at every width */
static void gguf_grid_preset(QuantConfig *qc) {
    for (int b = QBITS_MIN; b <= QBITS_MAX; b++) qc->group[b] = 32;
}

/* Rows with a key are the map, in this order (the artifact's bytes depend on
 * it). Rows with a flag are the command line and the help, in this order. */
/* One row per setting reads as a table: */
/* clang-format off */
const QSetting QCONFIG_TABLE[] = {
    {.flag = "reference-method", .type = QS_PRESET, .preset = quant_config_reference,
     .help = "start from the faithful QuEPT reference settings (merged stream, absolute ranks, "
             "clipping logits 4.0, shared-rank gradients, no fallback); the other flags still apply"},
    {.flag = "gguf-grid", .type = QS_PRESET, .preset = gguf_grid_preset,
     .help = "groups of 32 at every width: the blocks of GGUF's Q4_1 / Q5_1 / Q8_0, so quept export --format "
             "gguf stores each linear whose rows are multiples of 32 in those types with the calibrated codes "
             "(the default groups, 128 and per channel, leave the file's per-32 scales unused); --group-low / "
             "--group-high still apply"},
    {.flag = "method", .arg = "M", .type = QS_ENUM, .off = F(method), NAMES(METHOD_NAMES), .key = "method",
     .help = "quept: learnable clipping per bit and cascaded low-rank adapters, trained on the multi-bit "
             "objective; rtn: round to nearest on the same grid and groups; gptq: GPTQ for each bit"},
    {.flag = "bits", .arg = "LIST", .type = QS_BITS, .off = F(bits), .key = "bits",
     .help = "bit widths in 2..8, e.g. 2-8 or 2,3,4"},
    {.flag = "group-low", .arg = "G", .type = QS_INTS, .off = F(group), .lo = 0, .hi = 1 << 20,
     .bit_lo = 2, .bit_hi = 4, .key = "group",
     .help = "group size for 2-4 bits; 0 = per output channel, capped by the row length"},
    {.flag = "group-high", .arg = "G", .type = QS_INTS, .off = F(group), .lo = 0, .hi = 1 << 20,
     .bit_lo = 5, .bit_hi = 8, .help = "group size for 5-8 bits; 0 = per output channel"},
    {.flag = "rank-low", .arg = "R", .type = QS_INTS, .off = F(rank), .lo = 0, .hi = 1 << 16,
     .bit_lo = 2, .bit_hi = 4, .key = "rank", .help = "adapter rank for 2-4 bits"},
    {.flag = "rank-mid", .arg = "R", .type = QS_INTS, .off = F(rank), .lo = 0, .hi = 1 << 16,
     .bit_lo = 5, .bit_hi = 6, .help = "adapter rank for 5-6 bits"},
    {.flag = "rank-high", .arg = "R", .type = QS_INTS, .off = F(rank), .lo = 0, .hi = 1 << 16,
     .bit_lo = 7, .bit_hi = 8, .help = "adapter rank for 7-8 bits"},
    {.flag = "rank-ref-width", .arg = "W", .type = QS_INT, .off = F(rank_ref_width), .lo = 0, .hi = 1 << 20,
     .key = "rank_ref_width", .help = "scale the ranks by min(in,out)/W (0: absolute ranks, capped by the layer)"},
    {.flag = "rank-cap", .arg = "X", .type = QS_FLOAT, .off = F(rank_cap), .lo = 0, .hi = 1, .key = "rank_cap",
     .help = "rank <= X * min(in,out)"},
    {.flag = "adapter-mode", .arg = "N", .type = QS_INT, .off = F(adapter_mode), .lo = 0, .hi = 1,
     .key = "adapter_mode",
     .help = "0: adapter before quantization, Q(W + BdBu); 1: after scaling, round(W/s + BdBu/s) with s from W"},
    {.no_flag = "no-lwc", .type = QS_BOOL, .off = F(lwc), .key = "lwc",
     .help = "turn learnable clipping off (clipping factors fixed at 1)"},
    {.flag = "lwc-init-low", .arg = "X", .type = QS_FLOATS, .off = F(lwc_init), .lo = -30, .hi = 30,
     .bit_lo = 2, .bit_hi = 4, .key = "lwc_init", .codec = QS_OPTIONAL,
     .help = "initial clipping logit for 2-4 bits"},
    {.flag = "lwc-init-high", .arg = "X", .type = QS_FLOATS, .off = F(lwc_init), .lo = -30, .hi = 30,
     .bit_lo = 5, .bit_hi = 8, .help = "initial clipping logit for 5-8 bits (sigmoid(8) = 0.9997: almost unclipped)"},
    {.flag = "epochs", .arg = "E", .type = QS_INT, .off = F(epochs), .lo = 0, .hi = 100000, .key = "epochs",
     .help = "epochs per block"},
    {.flag = "batch", .arg = "B", .type = QS_INT, .off = F(batch), .lo = 1, .hi = 4096, .key = "batch",
     .help = "sequences per step"},
    {.flag = "lr-lwc", .arg = "X", .type = QS_FLOAT, .off = F(lr_lwc), .lo = 0, .hi = 10, .key = "lr_lwc",
     .help = "clipping learning rate (with --format pot: of the scale refinements Γ; pot's default 3e-4)"},
    {.flag = "lr-adapter", .arg = "X", .type = QS_FLOAT, .off = F(lr_adapter), .lo = 0, .hi = 10,
     .key = "lr_adapter", .help = "adapter learning rate"},
    {.type = QS_FLOAT, .off = F(weight_decay), .key = "weight_decay", .codec = QS_OPTIONAL,
     .help = "AdamW weight decay"},
    {.flag = "loss", .arg = "L", .type = QS_ENUM, .off = F(loss_l2), NAMES(LOSS_NAMES), .key = "loss",
     .codec = QS_OPTIONAL | QS_LAX, .help = "reconstruction loss"},
    {.flag = "merge-keep", .arg = "X", .type = QS_FLOAT, .off = F(merge_keep), .lo = 0, .hi = 1,
     .key = "merge_keep", .help = "MB-ToMe: share of tokens kept from the highest bit"},
    {.flag = "stream", .arg = "S", .type = QS_ENUM, .off = F(stream), NAMES(STREAM_NAMES), .key = "stream",
     .help = "the quantized input stream each bit trains on: merged (the reference's MB-ToMe stream), "
             "per-group (one per bit group), fp (the full-precision stream) or per-bit (one per width)"},
    {.flag = "normalize-loss", .type = QS_BOOL, .off = F(normalize_loss), .key = "normalize_loss",
     .codec = QS_OPTIONAL, .help = "divide each bit's loss by its starting loss"},
    {.flag = "prefix-grad-stop", .no_flag = "no-prefix-grad-stop", .type = QS_BOOL, .off = F(prefix_grad_stop),
     .key = "prefix_grad_stop", .codec = QS_OPTIONAL,
     .help = "lower bit groups do not train the adapter ranks higher groups use"},
    {.flag = "holdout", .arg = "X", .type = QS_FLOAT, .off = F(holdout), .lo = 0, .hi = 0.9, .key = "holdout",
     .codec = QS_OPTIONAL,
     .help = "share of calibration sequences held out of training to judge the fallback; --fallback "
             "without --holdout raises a holdout of 0 to the default's"},
    {.flag = "fallback", .no_flag = "no-fallback", .type = QS_BOOL, .off = F(fallback), .key = "fallback",
     .codec = QS_OPTIONAL,
     .help = "per block and bit, keep the trained adapters, drop them, or fall back to RTN, whichever "
             "has the lowest held-out loss"},
    {.flag = "fallback-gptq", .no_flag = "no-fallback-gptq", .type = QS_BOOL, .off = F(fallback_gptq),
     .key = "fallback_gptq", .codec = QS_OPTIONAL | QS_IF_SET,
     .help = "with --fallback, also try GPTQ's error feedback on each width's chosen grid (Hessians "
             "from the width's stream) and keep its codes where the held-out loss is lower; adds one "
             "byte per weight to the artifact for each width that keeps them (integer and GGUF codes; "
             "on a GGUF grid the learned grid stays and GPTQ picks the codes)"},
    {.type = QS_FLOAT, .off = F(gptq_damp), .key = "gptq_damp", .codec = QS_OPTIONAL,
     .help = "GPTQ's damping, a share of the Hessian's mean diagonal"},
    {.flag = "seed", .arg = "S", .type = QS_SEED, .off = F(seed), .lo = 0, .hi = 0x7fffffff, .key = "seed",
     .help = "job seed: the same job gives the same bytes"},
    {.type = QS_CONST, .lo = QCONFIG_ELASTIC_VERSION, .key = "elastic_version",
     .help = "the elastic artifact version the config belongs to"},
    {.flag = "teq", .type = QS_ENUM, .off = F(teq), NAMES(TEQ_NAMES), .on = TEQ_NORM,
     .help = "TEQ, placement norm: train a positive per-input-channel scale for each group of linears "
             "sharing an input, with the block, shared by all widths, folded into the base weights at the "
             "end (any --method; rtn and gptq train the scales alone)"},
    {.flag = "teq-placement", .arg = "P", .type = QS_ENUM, .off = F(teq), NAMES(TEQ_NAMES), .key = "teq",
     .codec = QS_OPTIONAL | QS_IF_SET,
     .help = "where the TEQ scales go: norm (q/k/v and gate/up, folded into the RMSNorms), wide (also o, "
             "folded into v's rows, and down, into up's rows) or off; implies --teq and overrides it"},
    {.flag = "lr-teq", .arg = "X", .type = QS_FLOAT, .off = F(lr_teq), .lo = 0, .hi = 10, .key = "lr_teq",
     .with = "teq", .help = "TEQ scale learning rate"},
    {.flag = "format", .arg = "F", .type = QS_ENUM, .off = F(format), NAMES(FORMAT_NAMES), .key = "format",
     .codec = QS_OPTIONAL | QS_IF_SET, .preset = format_preset,
     .help = "weight codes: int; pot (sign + exponent, value ±s·2^E, bits 2-5): data-free scales, "
             "refined by --method quept (Γ in place of the clipping logits); --method rtn or --epochs 0: "
             "data-free only. pot first sets --bits 2-5, groups of 128 at every width and --lr-lwc "
             "3e-4; or gguf: each width is a GGUF block type of llama.cpp, calibrated against the type's "
             "own quantizer (sub-blocks, quantized scales and mins) so export writes the codes calibration "
             "saw; gguf first sets --bits 2,3,4,5,6,8 as Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_0 (--gguf-types "
             "changes them); the other flags still apply"},
    {.flag = "gguf-types", .arg = "LIST", .type = QS_GGUF_TYPES, .off = F(gguf_type), .key = "gguf_types",
     .codec = QS_OPTIONAL | QS_IF_SET,
     .help = "with --format gguf: the GGUF type of some widths, e.g. 4=q4_0,5=q5_0 (2 q2_k; 3 q3_k; 4 q4_0, "
             "q4_1, q4_k or iq4_nl; 5 q5_0, q5_1 or q5_k; 6 q6_k; 8 q8_0); a row that does not fit a type's "
             "block gets llama-quantize's fallback (Q2_K/Q3_K: IQ4_NL, Q4_K: Q5_0, Q5_K: Q5_1, Q6_K: Q8_0; "
             "F16 when not a multiple of 32)"},
    {.flag = "pot-l2", .arg = "X", .type = QS_FLOAT, .off = F(pot_l2), .lo = 0, .hi = 1e6, .key = "pot_l2",
     .with = "format", .help = "pot: L2 penalty X·ΣΓ² on the scale refinements"},
    {.flag = "bf16-activations", .type = QS_BOOL, .off = F(act_bf16), .key = "bf16_activations",
     .codec = QS_OPTIONAL | QS_IF_SET,
     .help = "store the calibration activation streams (full-precision and quantized) in bf16, half the "
             "memory; the engine still computes in fp32 (workers hold their shard's input in bf16 too)"},
    {.flag = "min-steps", .arg = "N", .type = QS_INT, .off = F(min_steps), .lo = 0, .hi = 1 << 24,
     .key = "min_steps", .codec = QS_OPTIONAL | QS_IF_SET,
     .help = "training budget floor: each block trains max(--epochs, ceil(N / steps per epoch)) epochs, so a "
             "small calibration set still gets N steps (0: --epochs alone; --epochs 0 trains nothing); an explicit "
             "--epochs without --min-steps sets 0"},
    {.flag = "teq-log", .no_flag = "no-teq-log", .type = QS_BOOL, .off = F(teq_log), .key = "teq_log",
     .codec = QS_OPTIONAL | QS_IF_SET,
     .help = "TEQ: AdamW steps the logarithm of each scale (a step changes a scale by a ratio, so scales "
             "reach large ratios); --no-teq-log steps the scales themselves"},
    {.flag = "teq-init", .arg = "I", .type = QS_ENUM, .off = F(teq_init), NAMES(TEQ_INIT_NAMES), .key = "teq_init",
     .codec = QS_OPTIONAL | QS_IF_SET,
     .help = "TEQ: where the scales start: ones, or awq (per block, s_c = (mean |x_c| / geometric mean)^a "
             "on the normed full-precision activations, a in {0, 1/4, 1/2, 3/4, 1} with the lowest RTN loss "
             "summed over the widths, each relative to its loss at a = 0)"},
    {.flag = "act-bits", .arg = "LIST", .type = QS_ACT_BITS, .off = F(act_bits), .key = "act_bits",
     .codec = QS_OPTIONAL | QS_IF_SET,
     .help = "activation widths paired one to one with --bits (same length and order; 16 = none): the "
             "input of every linear is fake-quantized per token (dynamic, symmetric, abs-max, round to "
             "nearest) whenever the weights are at the paired width, in calibration and at evaluation; "
             "e.g. --bits 4,5,6,8 --act-bits 4,5,6,8 (the reference's W4A4 ... W8A8), or 8,8,8,8 (W4A8 ...)"},
    {.flag = "rotate", .arg = "R", .type = QS_ENUM, .off = F(rotate), NAMES(ROTATE_NAMES), .key = "rotate",
     .codec = QS_OPTIONAL | QS_IF_SET,
     .help = "rotate the model before calibration (the reference's --pre_rotate --down_online_had): hadamard "
             "folds the RMSNorms into the linears, spins the residual stream by a Hadamard matrix with seeded "
             "random signs and folds the FFN width's Hadamard into down_proj, whose input is then transformed "
             "online (calibration, evaluation, sampling); the function is unchanged, activation outliers are "
             "spread. The artifact stores the rotated weights; not with --teq-placement wide"},
    {.flag = "rotate-seed", .arg = "S", .type = QS_SEED, .off = F(rotate_seed), .lo = 0, .hi = 0x7fffffff,
     .key = "rotate_seed", .with = "rotate",
     .help = "with --rotate hadamard: the seed of the rotation's random signs (independent of --seed, so "
             "calibrations with different seeds share one rotation); without a rotation it has no effect"},
};
/* clang-format on */
const int QCONFIG_TABLE_N = (int)(sizeof QCONFIG_TABLE / sizeof QCONFIG_TABLE[0]);

/* ---- helpers ---- */

static void *field(const QSetting *r, QuantConfig *qc) { return (char *)qc + r->off; }
static const void *cfield(const QSetting *r, const QuantConfig *qc) { return (const char *)qc + r->off; }

static const QSetting *row_by_key(const char *key) {
    for (int i = 0; i < QCONFIG_TABLE_N; i++)
        if (QCONFIG_TABLE[i].key && strcmp(QCONFIG_TABLE[i].key, key) == 0) return &QCONFIG_TABLE[i];
    return NULL;
}

static int enum_index(const QSetting *r, const char *s) {
    for (int k = 0; k < r->n_names; k++)
        if (strcmp(r->names[k], s) == 0) return k;
    return -1;
}

/* out-of-range values (no valid config has them) pack as names[0] */
static const char *enum_name(const QSetting *r, int v) {
    return v >= 0 && v < r->n_names ? r->names[v] : r->names[0];
}

/* "a, b or c" */
static void enum_list(const QSetting *r, const char *sep, const char *last, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    for (int k = 0; k < r->n_names && len < n; k++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s",
                                k == 0                ? ""
                                : k + 1 == r->n_names ? last
                                                      : sep,
                                r->names[k]);
}

/* ---- the "quant" map ---- */

/* Whether r's key is in qc's map (QS_IF_SET: only when set; with: as its head). */
static int is_packed(const QSetting *r, const QuantConfig *qc) {
    if (r->with && !(r = row_by_key(r->with))) return 0;
    if (r->type == QS_ACT_BITS) return !(r->codec & QS_IF_SET) || quant_has_act(qc);
    if (r->type == QS_GGUF_TYPES && (r->codec & QS_IF_SET)) {
        for (int b = 0; b <= QBITS_MAX; b++)
            if (((const int *)cfield(r, qc))[b]) return 1;
        return 0;
    }
    return !(r->codec & QS_IF_SET) || *(const int *)cfield(r, qc) != 0;
}

static void pack_ints(msgpack_packer *pk, const char *k, const int *v, int n) {
    mp_pack_str(pk, k);
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) msgpack_pack_int64(pk, v[i]);
}

void qconfig_pack(msgpack_packer *pk, const QuantConfig *qc) {
    size_t n = 0;
    for (int i = 0; i < QCONFIG_TABLE_N; i++)
        if (QCONFIG_TABLE[i].key && is_packed(&QCONFIG_TABLE[i], qc)) n++;
    msgpack_pack_map(pk, n);
    for (int i = 0; i < QCONFIG_TABLE_N; i++) {
        const QSetting *r = &QCONFIG_TABLE[i];
        if (!r->key || !is_packed(r, qc)) continue;
        const void *p = cfield(r, qc);
        switch (r->type) {
        case QS_BOOL: /* a key written only when set says so with 1 */
            mp_pack_kv_int(pk, r->key, (r->codec & QS_IF_SET) ? 1 : *(const int *)p);
            break;
        case QS_INT: mp_pack_kv_int(pk, r->key, *(const int *)p); break;
        case QS_FLOAT: mp_pack_kv_double(pk, r->key, *(const float *)p); break;
        case QS_SEED: mp_pack_kv_int(pk, r->key, (int64_t)(*(const uint64_t *)p)); break;
        case QS_ENUM: mp_pack_kv_str(pk, r->key, enum_name(r, *(const int *)p)); break;
        case QS_BITS: pack_ints(pk, r->key, qc->bits, qc->n_bits); break;
        case QS_INTS:
        case QS_GGUF_TYPES: pack_ints(pk, r->key, (const int *)p, QBITS_MAX + 1); break;
        case QS_FLOATS:
            mp_pack_str(pk, r->key);
            msgpack_pack_array(pk, QBITS_MAX + 1);
            for (int b = 0; b <= QBITS_MAX; b++) msgpack_pack_double(pk, ((const float *)p)[b]);
            break;
        case QS_CONST: mp_pack_kv_int(pk, r->key, (int64_t)r->lo); break;
        case QS_PRESET: break;
        case QS_ACT_BITS: /* one per width, 16 for none (as --act-bits writes it) */
            mp_pack_str(pk, r->key);
            msgpack_pack_array(pk, (size_t)qc->n_bits);
            for (int k = 0; k < qc->n_bits; k++)
                msgpack_pack_int64(pk, qc->act_bits[k] ? qc->act_bits[k] : 16);
            break;
        }
    }
}

/* A list of at most max integers (n: its length; NULL: exactly max). */
static int read_ints(const msgpack_object *m, const char *k, int *out, int max, int *n, QErr *err) {
    const msgpack_object *a;
    if (mp_map_array(m, k, &a, err) != 0) return -1;
    if ((int)a->via.array.size > max) return qerr_set(err, "key \"%s\": more than %d entries", k, max);
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        int64_t v;
        if (mp_obj_int(&a->via.array.ptr[i], k, &v, err) != 0) return -1;
        out[i] = (int)v;
    }
    if (n)
        *n = (int)a->via.array.size;
    else if ((int)a->via.array.size != max)
        return qerr_set(err, "key \"%s\": expected %d entries", k, max);
    return 0;
}

static int read_row(const msgpack_object *m, const QSetting *r, QuantConfig *qc, QErr *err) {
    void *p = field(r, qc);
    const char *k = r->key;
    int64_t i64;
    double d;
    char s[32];
    switch (r->type) {
    case QS_BOOL:
    case QS_INT:
        if (mp_map_int(m, k, &i64, err) != 0) return -1;
        if (i64 < -2147483647 || i64 > 2147483647)
            return qerr_set(err, "key \"%s\": %lld out of range", k, (long long)i64);
        *(int *)p = (int)i64;
        return 0;
    case QS_FLOAT:
        if (mp_map_float(m, k, &d, err) != 0) return -1;
        *(float *)p = (float)d;
        return 0;
    case QS_SEED:
        if (mp_map_int(m, k, &i64, err) != 0) return -1;
        if (i64 < 0 || i64 > 0xffffffffLL)
            return qerr_set(err, "key \"%s\": %lld outside [0, 2^32)", k, (long long)i64);
        *(uint64_t *)p = (uint64_t)i64;
        return 0;
    case QS_ENUM: {
        if (mp_map_str(m, k, s, sizeof s, err) != 0) return -1;
        int v = enum_index(r, s);
        if (v < 0 && !(r->codec & QS_LAX)) {
            char names[128];
            enum_list(r, ", ", " or ", names, sizeof names);
            return qerr_set(err, "key \"%s\": unknown value '%s' (expected %s)", k, s, names);
        }
        *(int *)p = v < 0 ? 0 : v;
        return 0;
    }
    case QS_BITS: return read_ints(m, k, qc->bits, QMAX_NBITS, &qc->n_bits, err);
    case QS_INTS:
    case QS_GGUF_TYPES: return read_ints(m, k, (int *)p, QBITS_MAX + 1, NULL, err);
    case QS_FLOATS: {
        const msgpack_object *a;
        if (mp_map_array(m, k, &a, err) != 0) return -1;
        if (a->via.array.size != QBITS_MAX + 1)
            return qerr_set(err, "key \"%s\": expected %d numbers", k, QBITS_MAX + 1);
        for (int b = 0; b <= QBITS_MAX; b++) {
            if (mp_obj_float(&a->via.array.ptr[b], k, &d, err) != 0) return -1;
            ((float *)p)[b] = (float)d;
        }
        return 0;
    }
    case QS_CONST: /* written for readers, not read back */
    case QS_PRESET: return 0;
    case QS_ACT_BITS: {
        int v[QMAX_NBITS], n;
        if (read_ints(m, k, v, QMAX_NBITS, &n, err) != 0) return -1;
        if (n != qc->n_bits)
            return qerr_set(err, "key \"%s\": %d entries for the %d widths of \"bits\"", k, n, qc->n_bits);
        memset(qc->act_bits, 0, sizeof qc->act_bits);
        for (int i = 0; i < n; i++) {
            if (v[i] != 16 && (v[i] < QBITS_MIN || v[i] > QBITS_MAX))
                return qerr_set(err, "key \"%s\": %d is neither a width in 2..8 nor 16 (none)", k, v[i]);
            qc->act_bits[i] = v[i] == 16 ? 0 : v[i];
        }
        return 0;
    }
    }
    return 0;
}

int qconfig_unpack(const msgpack_object *m, QuantConfig *qc, QErr *err) {
    quant_config_reference(qc); /* what optional keys that are absent mean */
    for (int i = 0; i < QCONFIG_TABLE_N; i++) {
        const QSetting *r = &QCONFIG_TABLE[i];
        if (!r->key) continue;
        if (r->with ? !mp_map_get(m, r->with) : (r->codec & QS_OPTIONAL) && !mp_map_get(m, r->key)) continue;
        if (read_row(m, r, qc, err) != 0) return -1;
    }
    return quant_config_validate(qc, err);
}

/* ---- the command line ---- */

int qconfig_cli_opts(CliOpt *o, int max) {
    int n = 0;
    for (int i = 0; i < QCONFIG_TABLE_N; i++) {
        const QSetting *r = &QCONFIG_TABLE[i];
        if (r->flag) {
            if (n >= max) return -1;
            o[n++] = (CliOpt){r->flag, r->arg != NULL, NULL};
        }
        if (r->no_flag) {
            if (n >= max) return -1;
            o[n++] = (CliOpt){r->no_flag, 0, NULL};
        }
    }
    return n;
}

/* "4=q4_0,5=q5_1" into types[b] (other widths unchanged) */
static int parse_gguf_types(const char *v, int *types, QErr *err) {
    char buf[256];
    if (strlen(v) >= sizeof buf) return qerr_set(err, "--gguf-types: list too long");
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        char *end = NULL;
        long b = eq ? strtol(tok, &end, 10) : -1;
        if (!eq || end != eq || b < QBITS_MIN || b > QBITS_MAX)
            return qerr_set(err, "--gguf-types: '%s': expected WIDTH=TYPE with a width in 2..8, e.g. 4=q4_0",
                            tok);
        int t = gq_type_parse(eq + 1, 0);
        if (t < 0)
            return qerr_set(err,
                            "--gguf-types: '%s': unknown type (q2_k, q3_k, q4_0, q4_1, q4_k, iq4_nl, q5_0, "
                            "q5_1, q5_k, q6_k, q8_0)",
                            eq + 1);
        types[b] = t;
    }
    return 0;
}

/* r's flags from o into qc: --flag, then --no-flag (which wins). */
static int apply_row(const QSetting *r, const CliOpt *o, int no, QuantConfig *qc, QErr *err) {
    void *p = field(r, qc);
    const char *v = r->flag ? cli_get(o, no, r->flag) : NULL;
    if (v) {
        int x;
        double d;
        switch (r->type) {
        case QS_BOOL: *(int *)p = 1; break;
        case QS_INT:
            if (cli_get_int(o, no, r->flag, 0, (int)r->lo, (int)r->hi, (int *)p, err) != 0) return -1;
            break;
        case QS_FLOAT:
            if (cli_get_float(o, no, r->flag, 0, r->lo, r->hi, &d, err) != 0) return -1;
            *(float *)p = (float)d;
            break;
        case QS_SEED:
            if (cli_get_int(o, no, r->flag, 0, (int)r->lo, (int)r->hi, &x, err) != 0) return -1;
            *(uint64_t *)p = (uint64_t)x;
            break;
        case QS_ENUM:
            if (r->arg && (x = enum_index(r, v)) < 0) {
                char names[128];
                enum_list(r, ", ", " or ", names, sizeof names);
                return qerr_set(err, "--%s: expected %s, got '%s'", r->flag, names, v);
            }
            *(int *)p = r->arg ? x : r->on;
            break;
        case QS_BITS:
            if (quant_parse_bits(qc, v, err) != 0) return -1;
            break;
        case QS_INTS:
            if (cli_get_int(o, no, r->flag, 0, (int)r->lo, (int)r->hi, &x, err) != 0) return -1;
            for (int b = r->bit_lo; b <= r->bit_hi; b++) ((int *)p)[b] = x;
            break;
        case QS_FLOATS:
            if (cli_get_float(o, no, r->flag, 0, r->lo, r->hi, &d, err) != 0) return -1;
            for (int b = r->bit_lo; b <= r->bit_hi; b++) ((float *)p)[b] = (float)d;
            break;
        case QS_ACT_BITS:
            if (quant_parse_act_bits(qc, cli_get(o, no, "bits"), v, err) != 0) return -1;
            break;
        case QS_GGUF_TYPES:
            if (parse_gguf_types(v, (int *)p, err) != 0) return -1;
            break;
        case QS_CONST:
        case QS_PRESET: break;
        }
        if (r->preset) r->preset(qc);
    }
    if (r->no_flag && cli_get(o, no, r->no_flag)) *(int *)p = 0;
    return 0;
}

int qconfig_cli_parse(const CliOpt *o, int no, QuantConfig *qc, QErr *err) {
    quant_config_default(qc);
    /* presets first (they reset fields the other flags then adjust), then the rest */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < QCONFIG_TABLE_N; i++) {
            const QSetting *r = &QCONFIG_TABLE[i];
            if ((r->preset != NULL) == (pass == 0) && apply_row(r, o, no, qc, err) != 0) return -1;
        }
    /* the default's TEQ belongs to QuEPT: --method rtn / gptq stay plain
     * rounding / GPTQ unless --teq or --teq-placement asks for TEQ */
    if (qc->method != METHOD_QUEPT && !cli_get(o, no, "teq") && !cli_get(o, no, "teq-placement"))
        qc->teq = TEQ_OFF;
    /* an explicit --epochs is the budget: the default's step floor applies
     * only along with it when --min-steps is given too */
    if (cli_get(o, no, "epochs") && !cli_get(o, no, "min-steps")) qc->min_steps = 0;
    /* --fallback on a config without a holdout (--reference-method) would
     * have nothing to judge by: it gets the default's share */
    if (cli_get(o, no, "fallback") && qc->fallback && qc->holdout == 0.0f && !cli_get(o, no, "holdout")) {
        QuantConfig d;
        quant_config_default(&d);
        qc->holdout = d.holdout;
    }
    return 0;
}

/* ---- help and the Markdown reference ---- */

/* "--flag ARG", "--flag / --no-flag", "--no-flag"; enums show their names. */
static void flag_spec(const QSetting *r, int names, char *buf, size_t n) {
    char arg[96];
    if (r->type == QS_ENUM && r->arg && names)
        enum_list(r, "|", "|", arg, sizeof arg);
    else
        snprintf(arg, sizeof arg, "%s", r->arg ? r->arg : "");
    if (r->flag && r->no_flag)
        snprintf(buf, n, "--%s / --%s", r->flag, r->no_flag);
    else if (r->flag)
        snprintf(buf, n, "--%s%s%s", r->flag, r->arg ? " " : "", arg);
    else
        snprintf(buf, n, "--%s", r->no_flag);
}

static void bits_str(const QuantConfig *qc, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < qc->n_bits && len < n; i++) {
        int j = i;
        while (j + 1 < qc->n_bits && qc->bits[j + 1] == qc->bits[j] + 1) j++;
        if (j > i)
            len += (size_t)snprintf(buf + len, n - len, "%s%d-%d", i ? "," : "", qc->bits[i], qc->bits[j]);
        else
            len += (size_t)snprintf(buf + len, n - len, "%s%d", i ? "," : "", qc->bits[i]);
        i = j;
    }
}

/* What the row's flag means in qc, as the user would write it ("" for presets). */
static void value_str(const QSetting *r, const QuantConfig *qc, char *buf, size_t n) {
    const void *p = cfield(r, qc);
    buf[0] = '\0';
    switch (r->type) {
    case QS_BOOL: /* the state of --flag, or of --no-flag when that is all there is */
        snprintf(buf, n, "%s", (*(const int *)p != 0) == (r->flag != NULL) ? "on" : "off");
        break;
    case QS_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case QS_FLOAT: snprintf(buf, n, "%g", *(const float *)p); break;
    case QS_SEED: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case QS_ENUM:
        if (r->arg)
            snprintf(buf, n, "%s", enum_name(r, *(const int *)p));
        else
            snprintf(buf, n, "%s", *(const int *)p == r->on ? "on" : "off");
        break;
    case QS_BITS: bits_str(qc, buf, n); break;
    case QS_INTS: snprintf(buf, n, "%d", ((const int *)p)[r->bit_lo]); break;
    case QS_GGUF_TYPES:
        buf[0] = '\0';
        for (int b = 0, len = 0; b <= QBITS_MAX && len < (int)n; b++)
            if (((const int *)p)[b])
                len += snprintf(buf + len, n - (size_t)len, "%s%d=%s", len ? "," : "", b,
                                gq_type_name(((const int *)p)[b]));
        if (!buf[0]) snprintf(buf, n, "none");
        break;
    case QS_FLOATS: snprintf(buf, n, "%g", ((const float *)p)[r->bit_lo]); break;
    case QS_CONST: snprintf(buf, n, "%g", r->lo); break;
    case QS_PRESET: break;
    case QS_ACT_BITS:
        if (!quant_has_act(qc)) {
            snprintf(buf, n, "16 (none)");
            break;
        }
        for (int i = 0, len = 0; i < qc->n_bits && len < (int)n; i++)
            len += snprintf(buf + len, n - (size_t)len, "%s%d", i ? "," : "",
                            qc->act_bits[i] ? qc->act_bits[i] : 16);
        break;
    }
}

/* quept's default, and the reference's value when it differs:
 * "per-bit" or "per-bit<sep>merged" ("" for presets). */
static void default_str(const QSetting *r, const char *sep, char *buf, size_t n) {
    QuantConfig d, ref;
    quant_config_default(&d);
    quant_config_reference(&ref);
    char a[64], b[64];
    value_str(r, &d, a, sizeof a);
    value_str(r, &ref, b, sizeof b);
    if (strcmp(a, b) == 0)
        snprintf(buf, n, "%s", a);
    else
        snprintf(buf, n, "%s%s%s", a, sep, b);
}

/* Display width of UTF-8 text (one column per character). */
static int text_width(const char *s, size_t len) {
    int w = 0;
    for (size_t i = 0; i < len; i++) w += ((unsigned char)s[i] & 0xC0) != 0x80;
    return w;
}

/* "  SPEC" then text from column COL, wrapped before column WIDTH. */
static void print_wrapped(FILE *f, const char *spec, const char *text) {
    enum { COL = 22, WIDTH = 79 };
    int col = fprintf(f, "  %s", spec);
    if (col >= COL) {
        fputc('\n', f);
        col = 0;
    }
    for (const char *w = text; *w;) {
        while (*w == ' ') w++;
        if (!*w) break;
        size_t len = strcspn(w, " ");
        int ww = text_width(w, len);
        if (col > COL && col + 1 + ww > WIDTH) {
            fputc('\n', f);
            col = 0;
        }
        if (col < COL)
            col += fprintf(f, "%*s", COL - col, "");
        else
            col += fprintf(f, " ");
        fwrite(w, 1, len, f);
        col += ww;
        w += len;
    }
    fputc('\n', f);
}

void qconfig_print_help(FILE *f) {
    for (int i = 0; i < QCONFIG_TABLE_N; i++) {
        const QSetting *r = &QCONFIG_TABLE[i];
        if (!r->flag && !r->no_flag) continue;
        char spec[256], def[160], text[1024];
        flag_spec(r, 1, spec, sizeof spec);
        default_str(r, "; --reference-method: ", def, sizeof def);
        if (def[0])
            snprintf(text, sizeof text, "%s (default %s)", r->help, def);
        else
            snprintf(text, sizeof text, "%s", r->help);
        print_wrapped(f, spec, text);
    }
}

/* s with '|' escaped, for a Markdown table cell. */
static void md_cell(FILE *f, const char *s) {
    fputs("| ", f);
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s, f);
    }
    fputc(' ', f);
}

void qconfig_print_markdown(FILE *f) {
    fputs("<!-- Generated by `quept calibrate --help-markdown > docs/calibration-flags.md` from the table in "
          "common/quant/qconfig_table.c; edit the table, not this file (ctest: calibration_flags_doc). -->\n"
          "# Calibration flags\n"
          "\n"
          "The calibration flags of `quept calibrate`, `quept coordinator` and `quept submit`. *default* is "
          "quept's default; where `--reference-method` starts from another value, it follows the arrow. "
          "*key* is the setting's key in the `\"quant\"` map of the artifact (also the wire protocol's "
          "`qc` and the checkpoint journal's job); keys marked ° are written only when the setting is on.\n"
          "\n"
          "| flag | values | default | range | key | meaning |\n"
          "|---|---|---|---|---|---|\n",
          f);
    for (int i = 0; i < QCONFIG_TABLE_N; i++) {
        const QSetting *r = &QCONFIG_TABLE[i];
        if (!r->flag && !r->no_flag) continue;
        char spec[256], cell[256], tmp[160];
        flag_spec(r, 0, tmp, sizeof tmp);
        snprintf(spec, sizeof spec, "`%s`", tmp);
        md_cell(f, spec);
        switch (r->type) {
        case QS_INT:
        case QS_SEED: snprintf(cell, sizeof cell, "integer"); break;
        case QS_FLOAT: snprintf(cell, sizeof cell, "number"); break;
        case QS_ENUM:
            if (!r->arg) {
                snprintf(cell, sizeof cell, "flag");
                break;
            }
            enum_list(r, "`, `", "`, `", tmp, sizeof tmp);
            snprintf(cell, sizeof cell, "`%s`", tmp);
            break;
        case QS_BITS: snprintf(cell, sizeof cell, "widths, e.g. `2-8`, `2,3,4`"); break;
        case QS_INTS: snprintf(cell, sizeof cell, "integer, bits %d–%d", r->bit_lo, r->bit_hi); break;
        case QS_FLOATS: snprintf(cell, sizeof cell, "number, bits %d–%d", r->bit_lo, r->bit_hi); break;
        case QS_ACT_BITS:
            snprintf(cell, sizeof cell, "widths, one per `--bits` width, e.g. `4,5,6,8`");
            break;
        case QS_GGUF_TYPES: snprintf(cell, sizeof cell, "width=type list, e.g. `4=q4_0,5=q5_0`"); break;
        default: snprintf(cell, sizeof cell, "flag"); break;
        }
        md_cell(f, cell);
        default_str(r, " → ", cell, sizeof cell);
        md_cell(f, cell);
        switch (r->type) {
        case QS_INT:
        case QS_SEED:
        case QS_INTS: snprintf(cell, sizeof cell, "%.0f … %.0f", r->lo, r->hi); break;
        case QS_FLOAT:
        case QS_FLOATS: snprintf(cell, sizeof cell, "%g … %g", r->lo, r->hi); break;
        case QS_BITS: snprintf(cell, sizeof cell, "%d … %d", QBITS_MIN, QBITS_MAX); break;
        case QS_ACT_BITS: snprintf(cell, sizeof cell, "%d … %d, 16", QBITS_MIN, QBITS_MAX); break;
        default: cell[0] = '\0'; break;
        }
        md_cell(f, cell);
        const char *key = r->key;
        const QSetting *kr = r;
        /* a second flag of a field shows the field's key */
        for (int j = 0; !key && j < QCONFIG_TABLE_N; j++)
            if (QCONFIG_TABLE[j].key && QCONFIG_TABLE[j].type != QS_CONST && QCONFIG_TABLE[j].off == r->off &&
                r->type != QS_PRESET)
                key = QCONFIG_TABLE[j].key, kr = &QCONFIG_TABLE[j];
        if (key) {
            const QSetting *head = kr->with ? row_by_key(kr->with) : kr;
            snprintf(cell, sizeof cell, "`%s`%s", key, head && (head->codec & QS_IF_SET) ? "°" : "");
        } else {
            cell[0] = '\0';
        }
        md_cell(f, cell);
        md_cell(f, r->help);
        fputs("|\n", f);
    }
    fputs("\nKeys without a flag:", f);
    int first = 1;
    for (int i = 0; i < QCONFIG_TABLE_N; i++) {
        const QSetting *r = &QCONFIG_TABLE[i];
        if (r->flag || r->no_flag || !r->key) continue;
        char def[160];
        default_str(r, " → ", def, sizeof def);
        fprintf(f, "%s `%s` (%s; %s)", first ? "" : ",", r->key, r->help, def);
        first = 0;
    }
    fputs(".\n", f);
}
