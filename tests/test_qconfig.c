/* test_qconfig.c — the table of calibration settings (quant/qconfig_table.h):
 * the "quant" map is byte-identical to the one the hand-written codec made
 * before the table existed (golden bytes), every row round-trips, the old
 * maps still load, and the command line keeps its ranges and rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli/calib_flags.h"
#include "quant/ggml_quant.h"
#include "quant/qconfig_table.h"

/* ---- golden bytes ----
 * tests/data/qconfig_golden.bin: for each config below, a u32 LE length and
 * the bytes elastic_pack_quant_config (common/artifact/elastic.c at a60a8bd,
 * the last commit before the table) packed for it. */

/* The settings newer than the golden bytes (issue 13: the step floor, the
 * GPTQ candidate) at the values that
 * leave them out of the map, and TEQ at its defaults of the time. */
static void golden_era(QuantConfig *q) {
    q->min_steps = 0;
    q->fallback_gptq = 0;
    q->teq = TEQ_OFF, q->teq_init = 0, q->teq_log = 0, q->lr_teq = 1e-3f;
}

static void everything(QuantConfig *q) { /* every field away from its default */
    quant_config_default(q);
    golden_era(q);
    q->method = METHOD_GPTQ;
    q->n_bits = 3, q->bits[0] = 2, q->bits[1] = 3, q->bits[2] = 4;
    for (int b = 0; b <= QBITS_MAX; b++)
        q->group[b] = 32 + b, q->rank[b] = 7 * b, q->lwc_init[b] = 1.5f + 0.25f * b;
    q->rank_ref_width = 512, q->rank_cap = 0.75f, q->adapter_mode = 1, q->lwc = 0;
    q->epochs = 9, q->batch = 5, q->lr_lwc = 1.25e-3f, q->lr_adapter = 3.5e-5f, q->weight_decay = 0.1f;
    q->loss_l2 = 1, q->merge_keep = 0.3f, q->stream = STREAM_PER_GROUP, q->normalize_loss = 1;
    q->prefix_grad_stop = 0, q->holdout = 0.25f, q->fallback = 0, q->gptq_damp = 0.05f;
    q->seed = 4000000000ULL, q->teq = TEQ_WIDE, q->lr_teq = 2e-3f, q->format = QFORMAT_POT, q->pot_l2 = 3e-4f;
    q->act_bf16 = 1;
}

#define N_GOLDEN 7
static const char *const GOLDEN_NAMES[N_GOLDEN] = {"default",  "reference", "pot",       "teq norm",
                                                   "teq wide", "bf16",      "everything"};

static void golden_config(int k, QuantConfig *q) {
    quant_config_default(q);
    golden_era(q);
    switch (k) {
    case 1: quant_config_reference(q); break;
    case 2: quant_config_set_pot(q); break;
    case 3: q->teq = TEQ_NORM; break;
    case 4: q->teq = TEQ_WIDE, q->lr_teq = 5e-4f; break;
    case 5: q->act_bf16 = 1; break;
    case 6: everything(q); break;
    }
}

static void pack(const QuantConfig *q, msgpack_sbuffer *sb) {
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    qconfig_pack(&pk, q);
}

/* pack, then unpack into *out; 0 or -1 with err */
static int round_trip(const QuantConfig *q, QuantConfig *out, QErr *err) {
    msgpack_sbuffer sb;
    pack(q, &sb);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = msgpack_unpack_next(&up, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS ? 0 : -1;
    if (rc == 0) rc = qconfig_unpack(&up.data, out, err);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void test_golden(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/qconfig_golden.bin", QUEPT_TEST_DATA);
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "%s", path);
    if (!f) return;
    for (int k = 0; k < N_GOLDEN; k++) {
        unsigned char len4[4], want[4096];
        CHECK(fread(len4, 1, 4, f) == 4);
        size_t n = (size_t)len4[0] | (size_t)len4[1] << 8 | (size_t)len4[2] << 16 | (size_t)len4[3] << 24;
        CHECK(n <= sizeof want && fread(want, 1, n, f) == n);
        QuantConfig q, back;
        golden_config(k, &q);
        msgpack_sbuffer sb;
        pack(&q, &sb);
        CHECK_MSG(sb.size == n && memcmp(sb.data, want, n) == 0, "%s: %zu bytes, golden %zu", GOLDEN_NAMES[k],
                  sb.size, n);
        msgpack_sbuffer_destroy(&sb);
        /* and back (the "everything" config is invalid: TEQ with pot) */
        QErr err = {{0}};
        if (k != 6)
            CHECK_MSG(round_trip(&q, &back, &err) == 0 && memcmp(&q, &back, sizeof q) == 0, "%s: %s",
                      GOLDEN_NAMES[k], err.msg);
    }
    fclose(f);
}

/* ---- every row ---- */

static void *field(const QSetting *r, QuantConfig *q) { return (char *)q + r->off; }

/* Moves r's field (its bits, for per-bit rows) away from its value in q,
 * keeping q valid; a row packed only with another (lr_teq with teq) sets
 * that one too. */
static void change_row(const QSetting *r, QuantConfig *q) {
    if (r->with) {
        for (int i = 0; i < QCONFIG_TABLE_N; i++)
            if (QCONFIG_TABLE[i].key && strcmp(QCONFIG_TABLE[i].key, r->with) == 0)
                change_row(&QCONFIG_TABLE[i], q);
    }
    void *p = field(r, q);
    switch (r->type) {
    case QS_BOOL: *(int *)p = !*(int *)p; break;
    case QS_INT: *(int *)p += *(int *)p < r->hi ? 1 : -1; break;
    case QS_FLOAT: {
        float *x = p;
        *x = r->lo == r->hi ? *x + 0.25f : *x < r->hi ? (float)((*x + r->hi) / 2) : (float)((*x + r->lo) / 2);
        break;
    }
    case QS_SEED: *(uint64_t *)p = 0xfffffffeULL; break;
    case QS_ENUM:
        *(int *)p = (*(int *)p + 1) % r->n_names;
        if (r->off == offsetof(QuantConfig, format)) { /* PoT refuses TEQ; lr_teq travels with TEQ only */
            q->teq = TEQ_OFF;
            q->lr_teq = 1e-3f;
        }
        break;
    case QS_BITS: q->n_bits = 3, q->bits[0] = 3, q->bits[1] = 5, q->bits[2] = 7; break;
    case QS_INTS:
        for (int b = r->bit_lo; b <= r->bit_hi; b++) ((int *)p)[b] += b + 1;
        break;
    case QS_FLOATS:
        for (int b = r->bit_lo; b <= r->bit_hi; b++) ((float *)p)[b] += 0.5f + 0.125f * b;
        break;
    case QS_CONST: break;
    case QS_PRESET: break;
    case QS_ACT_BITS:
        for (int i = 0; i < q->n_bits; i++) q->act_bits[i] = i % 2 ? 0 : 4 + i % 5;
        break;
    case QS_GGUF_TYPES: /* only with --format gguf */
        quant_config_set_gguf(q);
        q->teq = TEQ_OFF, q->lr_teq = 1e-3f;
        q->gguf_type[4] = q->gguf_type[4] == GQ_Q4_0 ? GQ_Q4_K : GQ_Q4_0;
        break;
    }
    if (r->preset) r->preset(q); /* --reference-method; pot's widths and groups */
}

static const char *row_name(const QSetting *r) {
    return r->flag ? r->flag : r->no_flag ? r->no_flag : r->key;
}

static void test_rows(void) {
    for (int i = 0; i < QCONFIG_TABLE_N; i++) {
        const QSetting *r = &QCONFIG_TABLE[i];
        if (r->type == QS_CONST) continue;
        QuantConfig def, q, back;
        quant_config_default(&def);
        q = def;
        change_row(r, &q);
        if (r->type != QS_PRESET) CHECK_MSG(memcmp(&q, &def, sizeof q) != 0, "%s: not changed", row_name(r));
        QErr err = {{0}};
        int rc = round_trip(&q, &back, &err);
        CHECK_MSG(rc == 0, "%s: %s", row_name(r), err.msg);
        CHECK_MSG(rc != 0 || memcmp(&q, &back, sizeof q) == 0, "%s: the value did not survive", row_name(r));
    }
    /* the seed's whole range */
    QuantConfig q, back;
    quant_config_default(&q);
    q.seed = 0xffffffffULL;
    QErr err = {{0}};
    CHECK(round_trip(&q, &back, &err) == 0 && back.seed == 0xffffffffULL);
}

/* the table itself: unique flags and keys, every "with" names a key, the
 * flags fit the commands' option arrays */
static void test_table(void) {
    CliOpt o[CALIB_MAX_OPTS];
    int n = qconfig_cli_opts(o, CALIB_MAX_OPTS - 1); /* calib_flags.c adds --max-seqs */
    CHECK(n > 30);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) CHECK_MSG(strcmp(o[i].name, o[j].name) != 0, "--%s twice", o[i].name);
    for (int i = 0; i < QCONFIG_TABLE_N; i++) {
        const QSetting *r = &QCONFIG_TABLE[i];
        CHECK_MSG(r->help && r->help[0], "row %d without help", i);
        int found = !r->with;
        for (int j = 0; j < QCONFIG_TABLE_N; j++) {
            const QSetting *s = &QCONFIG_TABLE[j];
            if (r->with && s->key && strcmp(s->key, r->with) == 0) found = 1;
            if (j > i && r->key && s->key) CHECK_MSG(strcmp(r->key, s->key) != 0, "key %s twice", r->key);
        }
        CHECK_MSG(found, "%s: with \"%s\" names no key", row_name(r), r->with);
    }
}

/* ---- maps written before the table (and by hand) ---- */

/* A map of the required keys only, plus extra (key, value) pairs packed by fn. */
static int unpack_minimal(void (*extra)(msgpack_packer *), int n_extra, const char *drop, QuantConfig *q,
                          QErr *err) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    static const char *const REQ[] = {"method",   "bits",         "group",      "rank",   "rank_ref_width",
                                      "rank_cap", "adapter_mode", "lwc",        "epochs", "batch",
                                      "lr_lwc",   "lr_adapter",   "merge_keep", "seed",   "stream"};
    int n = (int)(sizeof REQ / sizeof REQ[0]);
    msgpack_pack_map(&pk, (size_t)(n - (drop != NULL) + n_extra));
    for (int i = 0; i < n; i++) {
        if (drop && strcmp(drop, REQ[i]) == 0) continue;
        const char *k = REQ[i];
        if (!strcmp(k, "method"))
            mp_pack_kv_str(&pk, k, "rtn");
        else if (!strcmp(k, "stream"))
            mp_pack_kv_str(&pk, k, "fp");
        else if (!strcmp(k, "bits")) {
            mp_pack_str(&pk, k);
            msgpack_pack_array(&pk, 2);
            msgpack_pack_int64(&pk, 3);
            msgpack_pack_int64(&pk, 4);
        } else if (!strcmp(k, "group") || !strcmp(k, "rank")) {
            mp_pack_str(&pk, k);
            msgpack_pack_array(&pk, QBITS_MAX + 1);
            for (int b = 0; b <= QBITS_MAX; b++) msgpack_pack_int64(&pk, 16);
        } else if (!strcmp(k, "rank_cap") || !strcmp(k, "lr_lwc") || !strcmp(k, "lr_adapter") ||
                   !strcmp(k, "merge_keep"))
            mp_pack_kv_double(&pk, k, 0.25);
        else
            mp_pack_kv_int(&pk, k, !strcmp(k, "adapter_mode") || !strcmp(k, "lwc") ? 1 : 3);
    }
    if (extra) extra(&pk);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_next(&up, sb.data, sb.size, &off);
    int rc = qconfig_unpack(&up.data, q, err);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void lax_loss(msgpack_packer *pk) { mp_pack_kv_str(pk, "loss", "L1-ish"); }
static void teq_alone(msgpack_packer *pk) { mp_pack_kv_str(pk, "teq", "wide"); }
static void lr_teq_alone(msgpack_packer *pk) { mp_pack_kv_str(pk, "lr_teq", "not read without teq"); }
static void bad_format(msgpack_packer *pk) {
    mp_pack_kv_str(pk, "format", "float");
    mp_pack_kv_double(pk, "pot_l2", 0.5);
}

static void test_old_maps(void) {
    QuantConfig q, ref;
    QErr err = {{0}};
    quant_config_reference(&ref);
    CHECK_MSG(unpack_minimal(NULL, 0, NULL, &q, &err) == 0, "%s", err.msg);
    /* absent optional keys are the reference's */
    CHECK(q.method == METHOD_RTN && q.stream == STREAM_FP && q.n_bits == 2 && q.bits[1] == 4 &&
          q.group[5] == 16);
    CHECK(q.epochs == 3 && q.seed == 3 && q.rank_cap == 0.25f && q.adapter_mode == 1);
    CHECK(q.holdout == ref.holdout && q.fallback == ref.fallback &&
          q.prefix_grad_stop == ref.prefix_grad_stop && q.lwc_init[8] == ref.lwc_init[8] &&
          q.gptq_damp == ref.gptq_damp && q.loss_l2 == 0 && q.teq == TEQ_OFF && q.format == QFORMAT_INT &&
          q.act_bf16 == 0);
    /* a missing required key is named */
    static const char *const REQ[] = {"method",   "bits",         "group",      "rank",   "rank_ref_width",
                                      "rank_cap", "adapter_mode", "lwc",        "epochs", "batch",
                                      "lr_lwc",   "lr_adapter",   "merge_keep", "seed",   "stream"};
    for (size_t i = 0; i < sizeof REQ / sizeof REQ[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "key \"%s\"", REQ[i]);
        CHECK_MSG(unpack_minimal(NULL, 0, REQ[i], &q, &err) != 0 && strstr(err.msg, want), "%s: '%s'", REQ[i],
                  err.msg);
    }
    /* "loss" always read anything but "l2" as l1 */
    CHECK(unpack_minimal(lax_loss, 1, NULL, &q, &err) == 0 && q.loss_l2 == 0);
    /* teq needs its learning rate; lr_teq alone is not read */
    CHECK(unpack_minimal(teq_alone, 1, NULL, &q, &err) != 0 && strstr(err.msg, "key \"lr_teq\""));
    CHECK_MSG(unpack_minimal(lr_teq_alone, 1, NULL, &q, &err) == 0 && q.lr_teq == ref.lr_teq, "%s", err.msg);
    CHECK(unpack_minimal(bad_format, 2, NULL, &q, &err) != 0 && strstr(err.msg, "key \"format\"") &&
          strstr(err.msg, "float"));
}

/* ---- the command line ---- */

/* qconfig_cli_parse of a NULL-terminated argument list */
static int parse_argv(QuantConfig *q, QErr *err, const char *const *args) {
    CliOpt o[CALIB_MAX_OPTS];
    int no = qconfig_cli_opts(o, CALIB_MAX_OPTS), npos, argc = 0;
    char *argv[16];
    while (args[argc] && argc < 16) argv[argc] = (char *)args[argc], argc++;
    if (cli_parse(argc, argv, o, no, NULL, 0, &npos, err) != 0) return -1;
    return qconfig_cli_parse(o, no, q, err);
}
#define PARSE(q, err, ...) parse_argv(q, err, (const char *const[]){__VA_ARGS__, NULL})

static void test_cli_ranges(void) {
    /* the ranges as cli/calib_flags.c had them before the table */
    static const struct {
        const char *flag;
        double lo, hi;
    } OLD[] = {{"epochs", 0, 100000},
               {"batch", 1, 4096},
               {"seed", 0, 0x7fffffff},
               {"lr-lwc", 0, 10},
               {"lr-adapter", 0, 10},
               {"group-low", 0, 1 << 20},
               {"group-high", 0, 1 << 20},
               {"rank-low", 0, 1 << 16},
               {"rank-mid", 0, 1 << 16},
               {"rank-high", 0, 1 << 16},
               {"rank-ref-width", 0, 1 << 20},
               {"rank-cap", 0, 1},
               {"adapter-mode", 0, 1},
               {"merge-keep", 0, 1},
               {"lwc-init-low", -30, 30},
               {"lwc-init-high", -30, 30},
               {"holdout", 0, 0.9},
               {"lr-teq", 0, 10},
               {"pot-l2", 0, 1e6}};
    for (size_t k = 0; k < sizeof OLD / sizeof OLD[0]; k++) {
        int found = 0;
        for (int i = 0; i < QCONFIG_TABLE_N; i++) {
            const QSetting *r = &QCONFIG_TABLE[i];
            if (!r->flag || strcmp(r->flag, OLD[k].flag) != 0) continue;
            found = 1;
            CHECK_MSG(r->lo == OLD[k].lo && r->hi == OLD[k].hi, "--%s: [%g, %g]", r->flag, r->lo, r->hi);
        }
        CHECK_MSG(found, "--%s missing", OLD[k].flag);
    }
    for (int i = 0; i < QCONFIG_TABLE_N; i++) {
        const QSetting *r = &QCONFIG_TABLE[i];
        if (!r->flag || !r->arg) continue;
        char flag[64], lo[64], hi[64], over[64], under[64];
        snprintf(flag, sizeof flag, "--%s", r->flag);
        QuantConfig q;
        QErr err = {{0}};
        switch (r->type) {
        case QS_INT:
        case QS_SEED:
        case QS_INTS:
        case QS_FLOAT:
        case QS_FLOATS:
            snprintf(lo, sizeof lo, "%.17g", r->lo);
            snprintf(hi, sizeof hi, "%.17g", r->hi);
            snprintf(over, sizeof over, "%.17g", r->hi + 1);
            snprintf(under, sizeof under, "%.17g", r->lo - 1);
            CHECK_MSG(PARSE(&q, &err, flag, lo) == 0, "%s %s: %s", flag, lo, err.msg);
            CHECK_MSG(PARSE(&q, &err, flag, hi) == 0, "%s %s: %s", flag, hi, err.msg);
            CHECK_MSG(PARSE(&q, &err, flag, over) != 0 && strstr(err.msg, flag), "%s %s: '%s'", flag, over,
                      err.msg);
            CHECK_MSG(PARSE(&q, &err, flag, under) != 0 && strstr(err.msg, flag), "%s %s: '%s'", flag, under,
                      err.msg);
            CHECK_MSG(PARSE(&q, &err, flag, "x") != 0 && strstr(err.msg, flag), "%s x: '%s'", flag, err.msg);
            break;
        case QS_ENUM:
            for (int k = 0; k < r->n_names; k++) {
                CHECK_MSG(PARSE(&q, &err, flag, r->names[k]) == 0, "%s %s: %s", flag, r->names[k], err.msg);
                CHECK(*(int *)field(r, &q) == k);
            }
            CHECK_MSG(PARSE(&q, &err, flag, "nonsense") != 0 && strstr(err.msg, flag), "%s: '%s'", flag,
                      err.msg);
            break;
        case QS_BITS:
            CHECK(PARSE(&q, &err, flag, "2,4-5") == 0 && q.n_bits == 3 && q.bits[2] == 5);
            CHECK_MSG(PARSE(&q, &err, flag, "9") != 0 && strstr(err.msg, flag), "%s: '%s'", flag, err.msg);
            break;
        default: break;
        }
    }
}

static void test_cli_rules(void) {
    QuantConfig q, want;
    QErr err = {{0}};
    /* no flag: quept's default */
    quant_config_default(&want);
    CHECK(parse_argv(&q, &err, (const char *const[]){NULL}) == 0 && memcmp(&q, &want, sizeof q) == 0);
    /* --reference-method first, wherever it stands */
    quant_config_reference(&want);
    want.epochs = 3;
    CHECK(PARSE(&q, &err, "--epochs", "3", "--reference-method") == 0 && memcmp(&q, &want, sizeof q) == 0);
    /* --gguf-grid: groups of 32 at every width, after --reference-method,
     * before the group flags wherever they stand */
    quant_config_reference(&want);
    for (int b = QBITS_MIN; b <= QBITS_MAX; b++) want.group[b] = b <= 4 ? 64 : 32;
    CHECK(PARSE(&q, &err, "--group-low", "64", "--gguf-grid", "--reference-method") == 0 &&
          memcmp(&q, &want, sizeof q) == 0);
    quant_config_default(&want);
    for (int b = QBITS_MIN; b <= QBITS_MAX; b++) want.group[b] = 32;
    CHECK(PARSE(&q, &err, "--gguf-grid") == 0 && memcmp(&q, &want, sizeof q) == 0);
    /* --format pot first: its widths and groups, then the flags */
    quant_config_default(&want);
    quant_config_set_pot(&want);
    want.n_bits = 2, want.bits[0] = 2, want.bits[1] = 3;
    for (int b = 5; b <= 8; b++) want.group[b] = 64;
    CHECK(PARSE(&q, &err, "--group-high", "64", "--bits", "2-3", "--format", "pot") == 0 &&
          memcmp(&q, &want, sizeof q) == 0);
    CHECK(PARSE(&q, &err, "--format", "pot", "--lr-lwc", "0.5") == 0 && q.lr_lwc == 0.5f);
    /* --teq is norm; --teq-placement overrides it */
    CHECK(PARSE(&q, &err, "--teq") == 0 && q.teq == TEQ_NORM);
    CHECK(PARSE(&q, &err, "--teq-placement", "wide", "--teq") == 0 && q.teq == TEQ_WIDE);
    CHECK(PARSE(&q, &err, "--teq-placement", "off", "--teq") == 0 && q.teq == TEQ_OFF);
    /* --no-X wins */
    CHECK(PARSE(&q, &err, "--no-fallback", "--fallback") == 0 && q.fallback == 0);
    CHECK(PARSE(&q, &err, "--no-prefix-grad-stop", "--prefix-grad-stop") == 0 && q.prefix_grad_stop == 0);
    CHECK(PARSE(&q, &err, "--no-lwc") == 0 && q.lwc == 0);
    CHECK(PARSE(&q, &err, "--bf16-activations") == 0 && q.act_bf16 == 1);
    /* the step floor: the default's, 0 with an explicit --epochs, unless --min-steps is given too */
    CHECK(PARSE(&q, &err, "--seed", "1") == 0 && q.min_steps == 840);
    CHECK(PARSE(&q, &err, "--epochs", "4") == 0 && q.epochs == 4 && q.min_steps == 0);
    CHECK(PARSE(&q, &err, "--epochs", "4", "--min-steps", "100") == 0 && q.min_steps == 100);
    CHECK(PARSE(&q, &err, "--min-steps", "0") == 0 && q.min_steps == 0 && q.epochs == 15);
    /* --fallback on a config without a holdout brings the default's, unless --holdout says otherwise */
    CHECK(PARSE(&q, &err, "--reference-method", "--fallback") == 0 && q.fallback == 1 && q.holdout == 0.125f);
    CHECK(PARSE(&q, &err, "--reference-method", "--fallback", "--holdout", "0") == 0 && q.holdout == 0.0f);
    CHECK(PARSE(&q, &err, "--reference-method") == 0 && q.fallback == 0 && q.holdout == 0.0f);
    CHECK(PARSE(&q, &err, "--holdout", "0.25") == 0 && q.holdout == 0.25f);
    /* per-bit flags set their widths only */
    quant_config_default(&want);
    CHECK(PARSE(&q, &err, "--group-low", "64", "--rank-mid", "7", "--lwc-init-high", "2") == 0);
    for (int b = 0; b <= QBITS_MAX; b++) {
        CHECK(q.group[b] == (b >= 2 && b <= 4 ? 64 : want.group[b]));
        CHECK(q.rank[b] == (b == 5 || b == 6 ? 7 : want.rank[b]));
        CHECK(q.lwc_init[b] == (b >= 5 ? 2.0f : want.lwc_init[b]));
    }
    CHECK(PARSE(&q, &err, "--rank-low", "1", "--rank-high", "2") == 0 && q.rank[2] == 1 && q.rank[4] == 1 &&
          q.rank[5] == want.rank[5] && q.rank[7] == 2 && q.rank[8] == 2);
    CHECK(PARSE(&q, &err, "--seed", "2147483647", "--method", "gptq") == 0 && q.seed == 2147483647ULL &&
          q.method == METHOD_GPTQ);
    CHECK(PARSE(&q, &err, "--loss", "l2", "--stream", "merged") == 0 && q.loss_l2 == 1 &&
          q.stream == STREAM_MERGED);
}

/* --help and the Markdown reference name every flag */
static void test_docs(void) {
    char *hb = NULL, *mb = NULL;
    size_t hn = 0, mn = 0;
    FILE *h = open_memstream(&hb, &hn), *m = open_memstream(&mb, &mn);
    CHECK(h && m);
    if (!h || !m) return;
    qconfig_print_help(h);
    qconfig_print_markdown(m);
    fclose(h);
    fclose(m);
    for (int i = 0; i < QCONFIG_TABLE_N; i++) {
        const QSetting *r = &QCONFIG_TABLE[i];
        const char *names[2] = {r->flag, r->no_flag};
        for (int k = 0; k < 2; k++) {
            if (!names[k]) continue;
            char f[80];
            snprintf(f, sizeof f, "--%s", names[k]);
            CHECK_MSG(strstr(hb, f) != NULL, "%s missing from --help", f);
            CHECK_MSG(strstr(mb, f) != NULL, "%s missing from the Markdown", f);
        }
        if (r->key) CHECK_MSG(strstr(mb, r->key) != NULL, "key %s missing from the Markdown", r->key);
    }
    CHECK(strstr(hb, "--stream merged|per-group|fp|per-bit") &&
          strstr(hb, "(default per-bit; --reference-method: merged)"));
    free(hb);
    free(mb);
}

/* --act-bits: pairs with --bits, the "act_bits" key, old maps */
static void act_bits_bad_len(msgpack_packer *pk) {
    mp_pack_str(pk, "act_bits");
    msgpack_pack_array(pk, 1);
    msgpack_pack_int64(pk, 4);
}
static void act_bits_bad_width(msgpack_packer *pk) {
    mp_pack_str(pk, "act_bits");
    msgpack_pack_array(pk, 2);
    msgpack_pack_int64(pk, 4);
    msgpack_pack_int64(pk, 12);
}
static void act_bits_ok(msgpack_packer *pk) {
    mp_pack_str(pk, "act_bits");
    msgpack_pack_array(pk, 2);
    msgpack_pack_int64(pk, 16);
    msgpack_pack_int64(pk, 8);
}

static int has_bytes(const msgpack_sbuffer *sb, const char *str) {
    size_t n = strlen(str);
    for (size_t i = 0; i + n <= sb->size; i++)
        if (memcmp(sb->data + i, str, n) == 0) return 1;
    return 0;
}

static void test_act_bits(void) {
    QuantConfig q, back;
    QErr err = {{0}};
    /* paired in the order written, whatever order the widths end up in */
    CHECK_MSG(PARSE(&q, &err, "--bits", "8,4", "--act-bits", "8,16") == 0, "%s", err.msg);
    CHECK(q.n_bits == 2 && q.bits[0] == 4 && q.bits[1] == 8 && q.act_bits[0] == 0 && q.act_bits[1] == 8);
    CHECK(quant_act_bits(&q, 1) == 8 && quant_act_bits(&q, 0) == 0 && quant_has_act(&q));
    CHECK(PARSE(&q, &err, "--act-bits", "4-6,8", "--bits", "4-6,8") == 0 && q.n_bits == 4 &&
          q.act_bits[0] == 4 && q.act_bits[2] == 6 && q.act_bits[3] == 8 && q.act_bits[4] == 0);
    CHECK(PARSE(&q, &err, "--bits", "4,5,6,8", "--act-bits", "8,8,8,8") == 0 && q.act_bits[0] == 8 &&
          q.act_bits[3] == 8);
    /* without --bits: the default widths, ascending */
    CHECK(PARSE(&q, &err, "--act-bits", "16,16,4,5,6,7,8") == 0 && q.act_bits[0] == 0 && q.act_bits[2] == 4);
    CHECK(PARSE(&q, &err, "--act-bits", "16,16,16,16,16,16,16") == 0 && !quant_has_act(&q));
    /* refusals name the flag */
    CHECK(PARSE(&q, &err, "--act-bits", "4") != 0 && strstr(err.msg, "--act-bits") && strstr(err.msg, "7"));
    CHECK(PARSE(&q, &err, "--bits", "4,8", "--act-bits", "4,9") != 0 && strstr(err.msg, "--act-bits"));
    CHECK(PARSE(&q, &err, "--bits", "4,8", "--act-bits", "4,1") != 0 && strstr(err.msg, "--act-bits"));
    CHECK(PARSE(&q, &err, "--bits", "4,4", "--act-bits", "4,8") != 0 && strstr(err.msg, "twice"));
    CHECK(PARSE(&q, &err, "--bits", "4,8", "--act-bits", "4,x") != 0 && strstr(err.msg, "--act-bits"));
    /* the key: only with activation quantization, and it round-trips */
    msgpack_sbuffer a, b;
    quant_config_default(&q);
    pack(&q, &a);
    q.n_bits = 3, q.bits[0] = 4, q.bits[1] = 6, q.bits[2] = 8;
    q.act_bits[0] = 4, q.act_bits[1] = 0, q.act_bits[2] = 8;
    pack(&q, &b);
    CHECK(b.size > a.size && !has_bytes(&a, "act_bits") && has_bytes(&b, "act_bits"));
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    CHECK_MSG(round_trip(&q, &back, &err) == 0 && memcmp(&q, &back, sizeof q) == 0, "%s", err.msg);
    /* old maps have none; a bad list is named */
    CHECK(unpack_minimal(NULL, 0, NULL, &q, &err) == 0 && !quant_has_act(&q));
    CHECK(unpack_minimal(act_bits_ok, 1, NULL, &q, &err) == 0 && q.act_bits[0] == 0 && q.act_bits[1] == 8);
    CHECK(unpack_minimal(act_bits_bad_len, 1, NULL, &q, &err) != 0 && strstr(err.msg, "key \"act_bits\""));
    CHECK(unpack_minimal(act_bits_bad_width, 1, NULL, &q, &err) != 0 && strstr(err.msg, "key \"act_bits\""));
    /* validation: 2..8, nothing past the widths */
    quant_config_default(&q);
    q.act_bits[0] = 9;
    CHECK(quant_config_validate(&q, &err) != 0 && strstr(err.msg, "--act-bits"));
    q.act_bits[0] = 0, q.n_bits = 2, q.act_bits[5] = 4;
    CHECK(quant_config_validate(&q, &err) != 0 && strstr(err.msg, "--act-bits"));
}

int main(void) {
    test_golden();
    test_act_bits();
    test_rows();
    test_table();
    test_old_maps();
    test_cli_ranges();
    test_cli_rules();
    test_docs();
    CHECK_DONE();
}
