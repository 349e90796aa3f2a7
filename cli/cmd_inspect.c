/* cmd_inspect.c — `quept inspect A`: what an elastic artifact holds, what it
 * costs to store, its calibration losses and sensitivity table, and whether
 * every section's checksum verifies. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "artifact/elastic.h"
#include "artifact/mixed.h"
#include "base/log.h"
#include "cli.h"
#include "quant/ggml_quant.h"

static const char *HELP = "usage: quept inspect A [--json]\n"
                          "\n"
                          "Describes the elastic artifact A: model and quantization config, bit list,\n"
                          "adapter ranks, the storage of each part (stored and raw bytes) and its\n"
                          "overhead against FP16 quantized linears and a single packed 4-bit model,\n"
                          "per-block calibration losses, the sensitivity table (with a heat map), the\n"
                          "fallback choices and the provenance; then verifies the checksum of every\n"
                          "section. Exits 1 when a checksum (or the file) is bad.\n"
                          "\n"
                          "  --json   print one JSON object with all of the above\n";

enum { P_BASE_LIN, P_BASE_OTHER, P_ADAPTER, P_CLIP, P_CODES, P_SCALES, N_PARTS };
static const char *PART_NAMES[N_PARTS] = {"base_linears",    "base_other", "adapters",
                                          "clipping_logits", "gptq_codes", "gptq_scales_zeros"};
static const char *PART_DESC[N_PARTS] = {"base weights: quantized linears (fp32)",
                                         "base weights: embeddings, norms, head, biases",
                                         "adapters (Bd, Bu)",
                                         "clipping logits (gamma, beta)",
                                         "gptq codes (u8)",
                                         "gptq scales + zeros"};

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static int classify(const char *name) {
    if (ends_with(name, ".Bd") || ends_with(name, ".Bu")) return P_ADAPTER;
    if (strstr(name, ".gamma.") || strstr(name, ".beta.")) return P_CLIP;
    if (strstr(name, ".codes.")) return P_CODES;
    if (strstr(name, ".scales.") || strstr(name, ".zeros.")) return P_SCALES;
    if (strncmp(name, "blk.", 4) == 0) {
        const char *dot = strchr(name + 4, '.');
        if (dot)
            for (int l = 0; l < N_LIN; l++)
                if (strcmp(dot + 1, LIN_NAMES[l]) == 0) return P_BASE_LIN;
    }
    return P_BASE_OTHER;
}

static void json_str(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* Any metadata object as JSON (binary/ext as null, non-finite floats as null). */
static void json_obj(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN: printf(o->via.boolean ? "true" : "false"); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: printf("%llu", (unsigned long long)o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: printf("%lld", (long long)o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (isfinite(o->via.f64))
            printf("%.9g", o->via.f64);
        else
            printf("null");
        break;
    case MSGPACK_OBJECT_STR: json_str(o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_ARRAY:
        putchar('[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) printf(", ");
            json_obj(&o->via.array.ptr[i]);
        }
        putchar(']');
        break;
    case MSGPACK_OBJECT_MAP:
        putchar('{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i) printf(", ");
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type == MSGPACK_OBJECT_STR)
                json_str(k->via.str.ptr, k->via.str.size);
            else
                printf("\"?\"");
            printf(": ");
            json_obj(&o->via.map.ptr[i].val);
        }
        putchar('}');
        break;
    default: printf("null"); break;
    }
}

static void json_key_obj(const char *key, const msgpack_object *o) {
    printf(", \"%s\": ", key);
    if (o)
        json_obj(o);
    else
        printf("null");
}

/* ' .:-=+*#%@' by log-scaled value between the table's smallest and largest
 * positive entries (' ' for 0). */
static char shade(double v, double lo, double hi) {
    static const char *ramp = " .:-=+*#%@";
    if (!(v > 0.0)) return ' ';
    if (!(hi > lo)) return '@';
    double t = (log(v) - log(lo)) / (log(hi) - log(lo));
    int k = 1 + (int)floor(t * 8.0 + 0.5);
    if (k < 1) k = 1;
    if (k > 9) k = 9;
    return ramp[k];
}

typedef struct {
    uint64_t stored[N_PARTS], raw[N_PARTS];
    int count[N_PARTS];
    double fp16_lin, packed4, extra_stored, extra_raw, total_stored;
} Storage;

static void storage_sum(const ArtReader *r, const ElasticModel *em, Storage *st) {
    memset(st, 0, sizeof *st);
    for (int i = 0; i < art_n_tensors(r); i++) {
        const ArtTensorInfo *t = art_tensor_info(r, i);
        int p = classify(t->name);
        st->stored[p] += t->stored_bytes;
        st->raw[p] += t->raw_bytes;
        st->count[p]++;
        st->total_stored += (double)t->stored_bytes;
    }
    long n = 0;
    for (int j = 0; j < em->cfg.n_layers; j++) n += mixed_block_params(&em->cfg, j);
    st->fp16_lin = 2.0 * (double)n;
    int *b4 = malloc(sizeof(int) * (size_t)em->cfg.n_layers);
    if (b4) {
        for (int j = 0; j < em->cfg.n_layers; j++) b4[j] = 4;
        st->packed4 = true_bits_per_weight(em, b4) * (double)n / 8.0;
        free(b4);
    }
    for (int p = P_ADAPTER; p < N_PARTS; p++) {
        st->extra_stored += (double)st->stored[p];
        st->extra_raw += (double)st->raw[p];
    }
}

static void print_text(const char *path, long long fsize, const ArtReader *r, const ElasticModel *em,
                       const Storage *st, int ok, const char *verr) {
    const ModelConfig *c = &em->cfg;
    const QuantConfig *q = &em->qc;
    const msgpack_object *meta = art_meta(r);
    int L = c->n_layers, NB = q->n_bits;
    printf("artifact    %s (%lld bytes, %d tensors)\n", path, fsize, art_n_tensors(r));
    printf("model       dim %d, hidden %d, %d blocks, %d heads (%d kv, head_dim %d), vocab %d, ctx %d%s%s\n",
           c->dim, c->hidden_dim, L, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size, c->seq_len,
           c->has_qkv_bias ? ", qkv bias" : "", c->tied_classifier ? ", tied head" : "");
    printf("method      %s\n", quant_method_name(q->method));
    printf("codes       %s%s", quant_format_name(q->format),
           q->format == QFORMAT_POT    ? " (power of two: sign + exponent, gamma = scale refinement, "
                                         "beta = data-free scale)"
           : q->format == QFORMAT_GGUF ? " (GGUF block types:"
                                       : " (integer)");
    for (int bi = 0; q->format == QFORMAT_GGUF && bi < NB; bi++)
        printf(" %d %s%s", q->bits[bi], gq_type_name(q->gguf_type[q->bits[bi]]), bi + 1 < NB ? "," : ")");
    printf("\n");
    printf("bits       ");
    for (int bi = 0; bi < NB; bi++) printf(" %d", q->bits[bi]);
    if (quant_has_act(q)) { /* weight-activation pairs (16: that width is weight-only) */
        printf("\npairs      ");
        for (int bi = 0; bi < NB; bi++)
            printf(" W%dA%d", q->bits[bi], q->act_bits[bi] ? q->act_bits[bi] : 16);
    }
    printf("\nquant       ");
    json_obj(mp_map_get(meta, "quant"));
    printf("\n\nadapter ranks per linear and bit:\n  %-8s", "linear");
    for (int bi = 0; bi < NB; bi++) printf(" %5db", q->bits[bi]);
    printf("\n");
    const msgpack_object *ranks = mp_map_get(meta, "ranks");
    for (int l = 0;
         ranks && ranks->type == MSGPACK_OBJECT_ARRAY && l < (int)ranks->via.array.size && l < N_LIN; l++) {
        const msgpack_object *row = &ranks->via.array.ptr[l];
        printf("  %-8s", LIN_NAMES[l]);
        for (uint32_t bi = 0; row->type == MSGPACK_OBJECT_ARRAY && bi < row->via.array.size; bi++) {
            int64_t v = 0;
            QErr e;
            mp_obj_int(&row->via.array.ptr[bi], "rank", &v, &e);
            printf(" %6lld", (long long)v);
        }
        printf("\n");
    }
    printf("\nstorage (stored / raw bytes):\n");
    for (int p = 0; p < N_PARTS; p++) {
        if (!st->count[p]) continue;
        printf("  %-46s %12llu / %12llu  (%d tensors)\n", PART_DESC[p], (unsigned long long)st->stored[p],
               (unsigned long long)st->raw[p], st->count[p]);
    }
    printf("  %-46s %12.0f\n", "FP16 of the quantized linears", st->fp16_lin);
    printf("  %-46s %12.0f\n", "one packed 4-bit model (fp16 scale+zero/group)", st->packed4);
    printf("  %-46s %12.0f stored = %.1f%% of FP16 linears, %.2fx packed 4-bit\n",
           "elastic extra (adapters, logits, codes, scales)", st->extra_stored,
           st->fp16_lin > 0 ? 100.0 * st->extra_stored / st->fp16_lin : 0.0,
           st->packed4 > 0 ? st->extra_stored / st->packed4 : 0.0);
    printf("  %-46s %12lld = %.2fx FP16 linears, %.2fx packed 4-bit\n", "whole file", fsize,
           st->fp16_lin > 0 ? (double)fsize / st->fp16_lin : 0.0,
           st->packed4 > 0 ? (double)fsize / st->packed4 : 0.0);

    static const char *ch[4] = {"T", "A", "R", "G"};
    printf("\ncalibration loss per block and bit (rtn -> final; choice T trained, A adapters dropped, R "
           "rtn, G GPTQ-rounded stored codes):\n  %-5s",
           "block");
    for (int bi = 0; bi < NB; bi++) printf(" %18db ", q->bits[bi]);
    printf("\n");
    for (int j = 0; j < L; j++) {
        printf("  %-5d", j);
        for (int bi = 0; bi < NB; bi++)
            printf(" %9.4g->%-7.4g %s", em->stats[j].loss_rtn[bi], em->stats[j].loss_final[bi],
                   ch[em->stats[j].choice[bi] >= 0 && em->stats[j].choice[bi] <= 3 ? em->stats[j].choice[bi]
                                                                                   : 0]);
        printf("\n");
    }
    if (em->sens) {
        double lo = INFINITY, hi = 0.0;
        for (int i = 0; i < NB * L; i++)
            if (em->sens[i] > 0.0) {
                if (em->sens[i] < lo) lo = em->sens[i];
                if (em->sens[i] > hi) hi = em->sens[i];
            }
        printf("\nsensitivity (%s: output KL divergence with only that block quantized; heat ' .:-=+*#%%@' "
               "log scale):\n  %-4s",
               em->sens_measure, "bits");
        for (int j = 0; j < L; j++) printf(" %10s%-2d", "blk", j);
        printf("   heat\n");
        for (int bi = 0; bi < NB; bi++) {
            printf("  %-4d", q->bits[bi]);
            for (int j = 0; j < L; j++) printf(" %12.4g", em->sens[(size_t)bi * L + j]);
            printf("   |");
            for (int j = 0; j < L; j++) putchar(shade(em->sens[(size_t)bi * L + j], lo, hi));
            printf("|\n");
        }
    } else {
        printf("\nsensitivity: none stored (mixed precision uses the calibration-loss proxy)\n");
    }
    printf("\nprovenance  ");
    json_obj(mp_map_get(meta, "provenance"));
    printf("\n");
    if (ok)
        printf("checksums: ok (%d sections)\n", art_n_tensors(r));
    else
        printf("checksums: FAILED: %s\n", verr);
}

static void print_json(const char *path, long long fsize, const ArtReader *r, const ElasticModel *em,
                       const Storage *st, int ok, const char *verr) {
    const msgpack_object *meta = art_meta(r);
    printf("{\"artifact\": ");
    json_str(path, strlen(path));
    printf(", \"file_bytes\": %lld, \"tensors\": %d", fsize, art_n_tensors(r));
    json_key_obj("model", mp_map_get(meta, "model"));
    json_key_obj("quant", mp_map_get(meta, "quant"));
    printf(", \"weight_format\": \"%s\"", quant_format_name(em->qc.format));
    printf(", \"bits\": [");
    for (int bi = 0; bi < em->qc.n_bits; bi++) printf("%s%d", bi ? ", " : "", em->qc.bits[bi]);
    printf("]");
    json_key_obj("ranks", mp_map_get(meta, "ranks"));
    printf(", \"storage\": {");
    for (int p = 0; p < N_PARTS; p++)
        printf("%s\"%s\": {\"stored\": %llu, \"raw\": %llu, \"tensors\": %d}", p ? ", " : "", PART_NAMES[p],
               (unsigned long long)st->stored[p], (unsigned long long)st->raw[p], st->count[p]);
    printf("}, \"fp16_linears_bytes\": %.0f, \"packed4_bytes\": %.0f, \"elastic_extra_stored\": %.0f, "
           "\"elastic_extra_raw\": %.0f, \"extra_over_fp16\": %.6g, \"extra_over_packed4\": %.6g, "
           "\"file_over_fp16\": %.6g, \"file_over_packed4\": %.6g",
           st->fp16_lin, st->packed4, st->extra_stored, st->extra_raw,
           st->fp16_lin > 0 ? st->extra_stored / st->fp16_lin : 0.0,
           st->packed4 > 0 ? st->extra_stored / st->packed4 : 0.0,
           st->fp16_lin > 0 ? (double)fsize / st->fp16_lin : 0.0,
           st->packed4 > 0 ? (double)fsize / st->packed4 : 0.0);
    json_key_obj("losses", mp_map_get(meta, "losses"));
    json_key_obj("sensitivity", mp_map_get(meta, "sensitivity"));
    json_key_obj("choice", mp_map_get(meta, "choice"));
    json_key_obj("provenance", mp_map_get(meta, "provenance"));
    printf(", \"checksums\": {\"ok\": %s, \"error\": ", ok ? "true" : "false");
    if (ok)
        printf("null");
    else
        json_str(verr, strlen(verr));
    printf("}}\n");
}

int cmd_inspect(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"json", 0, 0}};
    const char *pos[1];
    int npos;
    QErr err = {{0}};
    if (cli_parse(argc, argv, o, 1, pos, 1, &npos, &err) != 0) {
        log_error("inspect: %s", err.msg);
        return 2;
    }
    if (npos != 1) {
        log_error("inspect: expected one artifact (see --help)");
        return 2;
    }
    const char *path = pos[0];
    struct stat sb;
    long long fsize = stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
    ArtReader *r;
    if (art_open(&r, path, &err) != 0) {
        log_error("inspect: %s", err.msg);
        return 1;
    }
    ElasticModel em;
    if (elastic_load_meta(&em, r, &err) != 0) {
        log_error("inspect: %s: %s", path, err.msg);
        art_close(r);
        return 1;
    }
    /* every section, not only up to the first bad one: the user sees how much is damaged */
    QErr verr = {{0}}, first = {{0}};
    int n_bad = 0;
    char names[600] = "";
    for (int i = 0; i < art_n_tensors(r); i++) {
        QErr e;
        if (art_verify_section(r, i, &e) == 0) continue;
        if (n_bad++ == 0) first = e;
        size_t l = strlen(names);
        if (l < sizeof names - 80)
            snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", art_tensor_info(r, i)->name);
    }
    int ok = n_bad == 0;
    if (!ok)
        snprintf(verr.msg, sizeof verr.msg, "%d of %d sections bad (%.600s); first: %.300s", n_bad,
                 art_n_tensors(r), names, first.msg);
    Storage st;
    storage_sum(r, &em, &st);
    if (cli_get(o, 1, "json"))
        print_json(path, fsize, r, &em, &st, ok, verr.msg);
    else
        print_text(path, fsize, r, &em, &st, ok, verr.msg);
    if (!ok) log_error("inspect: checksum verification failed: %s", verr.msg);
    elastic_free(&em);
    art_close(r);
    return ok ? 0 : 1;
}
