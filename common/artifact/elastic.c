/* elastic.c — writing, loading and switching the elastic artifact. */
#include "elastic.h"

#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/numeric.h"

#ifndef QUEPT_VERSION
#define QUEPT_VERSION "dev"
#endif

int elastic_alloc(ElasticModel *em, const ModelConfig *c, const QuantConfig *qc, QErr *err) {
    memset(em, 0, sizeof *em);
    em->cfg = *c;
    em->qc = *qc;
    em->params = calloc((size_t)c->n_layers, sizeof *em->params);
    em->stats = calloc((size_t)c->n_layers, sizeof *em->stats);
    em->gptq = calloc((size_t)c->n_layers, sizeof *em->gptq);
    if (!em->params || !em->stats || !em->gptq) {
        elastic_free(em);
        return qerr_set(err, "out of memory");
    }
    return 0;
}

void elastic_free(ElasticModel *em) {
    if (em->params)
        for (int j = 0; j < em->cfg.n_layers; j++) qblock_params_free(&em->params[j]);
    if (em->gptq)
        for (int j = 0; j < em->cfg.n_layers; j++)
            for (int l = 0; l < N_LIN; l++)
                for (int bi = 0; bi < QMAX_NBITS; bi++) {
                    free(em->gptq[j][l][bi].codes);
                    free(em->gptq[j][l][bi].scales);
                    free(em->gptq[j][l][bi].zeros);
                }
    free(em->params);
    free(em->gptq);
    free(em->stats);
    free(em->sens);
    model_free(&em->base);
    memset(em, 0, sizeof *em);
}

/* ---- metadata ---- */

static void pack_model_config(msgpack_packer *pk, const ModelConfig *c) {
    msgpack_pack_map(pk, 13);
    mp_pack_kv_int(pk, "dim", c->dim);
    mp_pack_kv_int(pk, "hidden_dim", c->hidden_dim);
    mp_pack_kv_int(pk, "n_layers", c->n_layers);
    mp_pack_kv_int(pk, "n_heads", c->n_heads);
    mp_pack_kv_int(pk, "n_kv_heads", c->n_kv_heads);
    mp_pack_kv_int(pk, "head_dim", c->head_dim);
    mp_pack_kv_int(pk, "vocab_size", c->vocab_size);
    mp_pack_kv_int(pk, "seq_len", c->seq_len);
    mp_pack_kv_double(pk, "rope_theta", c->rope_theta);
    mp_pack_kv_double(pk, "norm_eps", c->norm_eps);
    mp_pack_kv_int(pk, "rope_halves", c->rope_halves);
    mp_pack_kv_int(pk, "has_qkv_bias", c->has_qkv_bias);
    mp_pack_kv_int(pk, "tied_classifier", c->tied_classifier);
}

static int get_i(const msgpack_object *m, const char *k, int *out, QErr *err) {
    int64_t v;
    if (mp_map_int(m, k, &v, err) != 0) return -1;
    if (v < -2147483647 || v > 2147483647)
        return qerr_set(err, "key \"%s\": %lld out of range", k, (long long)v);
    *out = (int)v;
    return 0;
}
static int get_f(const msgpack_object *m, const char *k, float *out, QErr *err) {
    double v;
    if (mp_map_float(m, k, &v, err) != 0) return -1;
    *out = (float)v;
    return 0;
}

static int parse_model_config(const msgpack_object *m, ModelConfig *c, QErr *err) {
    memset(c, 0, sizeof *c);
    if (get_i(m, "dim", &c->dim, err) || get_i(m, "hidden_dim", &c->hidden_dim, err) ||
        get_i(m, "n_layers", &c->n_layers, err) || get_i(m, "n_heads", &c->n_heads, err) ||
        get_i(m, "n_kv_heads", &c->n_kv_heads, err) || get_i(m, "head_dim", &c->head_dim, err) ||
        get_i(m, "vocab_size", &c->vocab_size, err) || get_i(m, "seq_len", &c->seq_len, err) ||
        get_f(m, "rope_theta", &c->rope_theta, err) || get_f(m, "norm_eps", &c->norm_eps, err) ||
        get_i(m, "rope_halves", &c->rope_halves, err) || get_i(m, "has_qkv_bias", &c->has_qkv_bias, err) ||
        get_i(m, "tied_classifier", &c->tied_classifier, err))
        return -1;
    return model_config_validate(c, "artifact model config", err);
}

/* "weight_format": {"default": "int"|"pot", "pot_l2": x,
 *                   "tensors": {"blk.J.L": "int"|"pot", ...}} — the code format of every
 * quantized linear (absent in older artifacts: all "int"). */
static void pack_weight_format(msgpack_packer *pk, const ModelConfig *c, const QuantConfig *q) {
    const char *f = quant_format_name(q->format);
    char name[96];
    mp_pack_str(pk, "weight_format");
    msgpack_pack_map(pk, 3);
    mp_pack_kv_str(pk, "default", f);
    mp_pack_kv_double(pk, "pot_l2", q->pot_l2);
    mp_pack_str(pk, "tensors");
    msgpack_pack_map(pk, (size_t)c->n_layers * N_LIN);
    for (int j = 0; j < c->n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            snprintf(name, sizeof name, "blk.%d.%s", j, LIN_NAMES[l]);
            mp_pack_kv_str(pk, name, f);
        }
}

/* Reads "weight_format" into q (absent: integer codes, as every artifact
 * before it). Every quantized linear must be listed; one artifact holds one
 * format (a mix is refused, naming the tensor). */
static int parse_weight_format(const msgpack_object *meta, const ModelConfig *c, QuantConfig *q, QErr *err) {
    const msgpack_object *wf = mp_map_get(meta, "weight_format"), *tens;
    q->format = QFORMAT_INT;
    if (!wf) return 0;
    char s[16], name[96];
    if (wf->type != MSGPACK_OBJECT_MAP) return qerr_set(err, "key \"weight_format\": expected a map");
    if (mp_map_str(wf, "default", s, sizeof s, err) != 0 || quant_parse_format(s, &q->format, err) != 0)
        return qerr_wrap(err, "key \"weight_format\"");
    if (mp_map_get(wf, "pot_l2") && get_f(wf, "pot_l2", &q->pot_l2, err) != 0) return -1;
    if (mp_map_map(wf, "tensors", &tens, err) != 0) return qerr_wrap(err, "key \"weight_format\"");
    for (int j = 0; j < c->n_layers; j++)
        for (int l = 0; l < N_LIN; l++) {
            WeightFormat f;
            snprintf(name, sizeof name, "blk.%d.%s", j, LIN_NAMES[l]);
            if (mp_map_str(tens, name, s, sizeof s, err) != 0 || quant_parse_format(s, &f, err) != 0)
                return qerr_wrap(err, "key \"weight_format\".tensors");
            if (f != q->format)
                return qerr_set(err,
                                "key \"weight_format\": %s is %s but the artifact's default is %s "
                                "(one format per artifact)",
                                name, s, quant_format_name(q->format));
        }
    return quant_config_validate(q, err);
}

/* ---- tensors ---- */

static int add_f32(ArtWriter *w, const char *name, const float *x, int64_t d0, int64_t d1, QErr *err) {
    int64_t shape[2] = {d0, d1};
    return art_writer_add(w, name, ART_F32, d1 > 0 ? 2 : 1, shape, x, 1, err);
}

static int read_f32(const ArtReader *r, const char *name, float *dst, size_t n, QErr *err) {
    int i = art_find(r, name);
    if (i < 0) return qerr_set(err, "%s: missing tensor '%s'", art_name(r), name);
    const ArtTensorInfo *t = art_tensor_info(r, i);
    if (t->dtype != ART_F32 || (size_t)t->numel != n)
        return qerr_set(err, "%s: tensor '%s' should be f32 with %zu elements, has %s with %lld", art_name(r),
                        name, n, art_dtype_name(t->dtype), (long long)t->numel);
    if (art_read(r, i, dst, n * sizeof(float), err) != 0) return -1;
    /* a NaN/Inf parameter would only show up as NaN metrics after switching */
    char what[300];
    snprintf(what, sizeof what, "%s: tensor '%s'", art_name(r), name);
    return floats_check_finite(dst, n, what, err);
}

/* blk.J.L.codes.B (u8, out x in), blk.J.L.scales.B / zeros.B (out, ng). */
static int write_codes(ArtWriter *w, int j, int l, int bits, const GptqLinear *g, int out, int in, int group,
                       QErr *err) {
    char name[128];
    int ng = (in + group - 1) / group;
    int64_t shape[2] = {out, in};
    snprintf(name, sizeof name, "blk.%d.%s.codes.%d", j, LIN_NAMES[l], bits);
    int rc = art_writer_add(w, name, ART_U8, 2, shape, g->codes, 1, err);
    snprintf(name, sizeof name, "blk.%d.%s.scales.%d", j, LIN_NAMES[l], bits);
    rc = rc || add_f32(w, name, g->scales, out, ng, err);
    snprintf(name, sizeof name, "blk.%d.%s.zeros.%d", j, LIN_NAMES[l], bits);
    return rc || add_f32(w, name, g->zeros, out, ng, err);
}

/* Reads what write_codes wrote into g (alloc: allocate g's arrays first)
 * and checks every code and group. */
/* code_bits: the codes' range (the width; a GGUF row's type's) */
static int read_codes(ArtReader *r, const char *path, int j, int l, int bits, int code_bits, GptqLinear *g,
                      int out, int in, int group, int alloc, QErr *err) {
    char name[128];
    size_t ng = (size_t)out * ((in + group - 1) / group), n = (size_t)out * in;
    if (alloc) {
        g->codes = malloc(n);
        g->scales = malloc(ng * sizeof(float));
        g->zeros = malloc(ng * sizeof(float));
        if (!g->codes || !g->scales || !g->zeros) return qerr_set(err, "out of memory");
    }
    snprintf(name, sizeof name, "blk.%d.%s.codes.%d", j, LIN_NAMES[l], bits);
    int ti = art_find(r, name);
    const ArtTensorInfo *info = ti >= 0 ? art_tensor_info(r, ti) : NULL;
    if (!info || info->dtype != ART_U8 || (size_t)info->numel != n)
        return qerr_set(err, "%s: missing or malformed tensor '%s'", path, name);
    int rc = art_read(r, ti, g->codes, n, err);
    snprintf(name, sizeof name, "blk.%d.%s.scales.%d", j, LIN_NAMES[l], bits);
    rc = rc || read_f32(r, name, g->scales, ng, err);
    snprintf(name, sizeof name, "blk.%d.%s.zeros.%d", j, LIN_NAMES[l], bits);
    rc = rc || read_f32(r, name, g->zeros, ng, err);
    snprintf(name, sizeof name, "tensor 'blk.%d.%s.*.%d'", j, LIN_NAMES[l], bits);
    return rc || gptq_linear_check(g, n, ng, code_bits, name, err);
}

static void base_sizes(const ModelConfig *c, int l, size_t *n) {
    int out, in;
    qblock_linear_shape(c, l, &out, &in);
    *n = (size_t)out * in;
}

int elastic_write(const ElasticModel *em, const char *path, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const QuantConfig *q = &em->qc;
    ArtWriter *w = art_writer_new(err);
    if (!w) return -1;
    msgpack_packer *pk = art_writer_meta(w);
    msgpack_pack_map(pk, (em->sens ? 9 : 8) + 1 /* weight_format */);
    mp_pack_kv_str(pk, "format", "quept-elastic");
    mp_pack_kv_int(pk, "artifact_version", ELASTIC_VERSION);
    mp_pack_str(pk, "model");
    pack_model_config(pk, c);
    mp_pack_str(pk, "quant");
    qconfig_pack(pk, q);
    mp_pack_str(pk, "ranks");
    msgpack_pack_array(pk, N_LIN);
    for (int l = 0; l < N_LIN; l++) {
        msgpack_pack_array(pk, (size_t)q->n_bits);
        for (int bi = 0; bi < q->n_bits; bi++) {
            int out, in;
            qblock_linear_shape(c, l, &out, &in);
            msgpack_pack_int64(pk, quant_rank(q, q->bits[bi], out, in));
        }
    }
    mp_pack_str(pk, "losses");
    msgpack_pack_array(pk, (size_t)c->n_layers);
    for (int j = 0; j < c->n_layers; j++) {
        msgpack_pack_array(pk, (size_t)q->n_bits);
        for (int bi = 0; bi < q->n_bits; bi++) {
            msgpack_pack_array(pk, 3);
            msgpack_pack_double(pk, em->stats[j].loss_rtn[bi]);
            msgpack_pack_double(pk, em->stats[j].loss_init[bi]);
            msgpack_pack_double(pk, em->stats[j].loss_final[bi]);
        }
    }
    mp_pack_str(pk, "choice"); /* per block and bit: 0 trained, 1 no adapter, 2 RTN, 3 stored codes */
    msgpack_pack_array(pk, (size_t)c->n_layers);
    for (int j = 0; j < c->n_layers; j++) {
        msgpack_pack_array(pk, (size_t)q->n_bits);
        for (int bi = 0; bi < q->n_bits; bi++) msgpack_pack_int64(pk, em->stats[j].choice[bi]);
    }
    if (em->sens) {
        mp_pack_str(pk, "sensitivity");
        msgpack_pack_map(pk, 2);
        mp_pack_kv_str(pk, "measure", em->sens_measure[0] ? em->sens_measure : "kld");
        mp_pack_str(pk, "table");
        msgpack_pack_array(pk, (size_t)q->n_bits);
        for (int bi = 0; bi < q->n_bits; bi++) {
            msgpack_pack_array(pk, (size_t)c->n_layers);
            for (int j = 0; j < c->n_layers; j++)
                msgpack_pack_double(pk, em->sens[(size_t)bi * c->n_layers + j]);
        }
    }
    pack_weight_format(pk, c, q);
    mp_pack_str(pk, "provenance");
    msgpack_pack_map(pk, 4);
    mp_pack_kv_str(pk, "model_sha256", em->model_sha256);
    mp_pack_kv_str(pk, "data_sha256", em->data_sha256);
    mp_pack_kv_int(pk, "seed", (int64_t)q->seed);
    mp_pack_kv_str(pk, "quept_version", QUEPT_VERSION);

    const Model *m = &em->base;
    int rc = add_f32(w, "tok_emb", m->tok_emb, c->vocab_size, c->dim, err);
    rc = rc || add_f32(w, "final_norm", m->final_norm, c->dim, 0, err);
    if (!c->tied_classifier) rc = rc || add_f32(w, "classifier", m->classifier, c->vocab_size, c->dim, err);
    char name[256];
    for (int j = 0; rc == 0 && j < c->n_layers; j++) {
        BlockWeights *bw = &m->blocks[j];
        snprintf(name, sizeof name, "blk.%d.attn_norm", j);
        rc = rc || add_f32(w, name, bw->attn_norm, c->dim, 0, err);
        snprintf(name, sizeof name, "blk.%d.mlp_norm", j);
        rc = rc || add_f32(w, name, bw->mlp_norm, c->dim, 0, err);
        if (c->has_qkv_bias) {
            int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
            snprintf(name, sizeof name, "blk.%d.bq", j);
            rc = rc || add_f32(w, name, bw->bq, qd, 0, err);
            snprintf(name, sizeof name, "blk.%d.bk", j);
            rc = rc || add_f32(w, name, bw->bk, kvd, 0, err);
            snprintf(name, sizeof name, "blk.%d.bv", j);
            rc = rc || add_f32(w, name, bw->bv, kvd, 0, err);
        }
        for (int l = 0; rc == 0 && l < N_LIN; l++) {
            int out, in;
            qblock_linear_shape(c, l, &out, &in);
            snprintf(name, sizeof name, "blk.%d.%s", j, LIN_NAMES[l]);
            rc = add_f32(w, name, qblock_linear_weight(bw, l), out, in, err);
            if (rc == 0 && q->method == METHOD_QUEPT) {
                const QBlockParams *p = &em->params[j];
                const QLinear *ql = &p->lin[l];
                snprintf(name, sizeof name, "blk.%d.%s.Bd", j, LIN_NAMES[l]);
                { /* always 2-D: add_f32 would write (out) for R = 0 (no adapter) */
                    int64_t shape[2] = {ql->out, ql->R};
                    rc = rc || art_writer_add(w, name, ART_F32, 2, shape, p->adapter + ql->off_Bd, 1, err);
                }
                snprintf(name, sizeof name, "blk.%d.%s.Bu", j, LIN_NAMES[l]);
                rc = rc || add_f32(w, name, p->adapter + ql->off_Bu, ql->R, ql->in, err);
                for (int bi = 0; rc == 0 && bi < q->n_bits; bi++) {
                    int ng = fq_ngroups(&ql->spec[bi]);
                    snprintf(name, sizeof name, "blk.%d.%s.gamma.%d", j, LIN_NAMES[l], q->bits[bi]);
                    rc = rc || add_f32(w, name, p->lwc + ql->off_gamma[bi], ql->out, ng, err);
                    snprintf(name, sizeof name, "blk.%d.%s.beta.%d", j, LIN_NAMES[l], q->bits[bi]);
                    rc = rc || add_f32(w, name, p->lwc + ql->off_beta[bi], ql->out, ng, err);
                }
            }
            for (int bi = 0; rc == 0 && bi < q->n_bits; bi++) {
                /* stored codes: every bit of gptq, the QB_GPTQ bits of quept */
                if (q->method == METHOD_GPTQ)
                    rc = write_codes(w, j, l, q->bits[bi], &em->gptq[j][l][bi], out, in,
                                     quant_group(q, q->bits[bi], in), err);
                else if (q->method == METHOD_QUEPT && em->params[j].choice[bi] == QB_GPTQ)
                    rc = write_codes(w, j, l, q->bits[bi], &em->params[j].rounded[l][bi], out, in,
                                     quant_group(q, q->bits[bi], in), err);
            }
        }
    }
    if (rc == 0) rc = art_writer_write(w, path, err);
    art_writer_free(w);
    return rc;
}

/* "sensitivity" (optional): {"measure": str, "table": [n_bits][n_layers]} */
static int parse_sensitivity(const msgpack_object *meta, ElasticModel *em, QErr *err) {
    const msgpack_object *sm = mp_map_get(meta, "sensitivity"), *tab;
    if (!sm) return 0;
    int L = em->cfg.n_layers, NB = em->qc.n_bits;
    if (mp_map_str(sm, "measure", em->sens_measure, sizeof em->sens_measure, err) != 0 ||
        mp_map_array(sm, "table", &tab, err) != 0)
        return qerr_wrap(err, "key \"sensitivity\"");
    if (tab->via.array.size != (uint32_t)NB)
        return qerr_set(err, "key \"sensitivity\": expected %d bit rows", NB);
    em->sens = malloc(sizeof(double) * (size_t)NB * L);
    if (!em->sens) return qerr_set(err, "out of memory");
    for (int bi = 0; bi < NB; bi++) {
        const msgpack_object *row = &tab->via.array.ptr[bi];
        if (row->type != MSGPACK_OBJECT_ARRAY || row->via.array.size != (uint32_t)L)
            return qerr_set(err, "key \"sensitivity\"[%d]: expected %d blocks", bi, L);
        for (int j = 0; j < L; j++) {
            double v;
            if (mp_obj_float(&row->via.array.ptr[j], "sensitivity", &v, err) != 0) return -1;
            if (!(v >= 0.0) || !isfinite(v))
                return qerr_set(err, "key \"sensitivity\"[%d][%d]: %g is not a finite value >= 0", bi, j, v);
            em->sens[(size_t)bi * L + j] = v;
        }
    }
    return 0;
}

int elastic_load_meta(ElasticModel *em, const ArtReader *r, QErr *err) {
    memset(em, 0, sizeof *em);
    const msgpack_object *meta = art_meta(r), *mm, *qm, *prov, *losses, *choice;
    char fmt[32];
    int64_t ver;
    ModelConfig c;
    QuantConfig q;
    int rc = 0;
    if (mp_map_str(meta, "format", fmt, sizeof fmt, err) || mp_map_int(meta, "artifact_version", &ver, err)) {
        rc = -1;
    } else if (strcmp(fmt, "quept-elastic") != 0) {
        rc = qerr_set(err, "not a quept elastic artifact (format '%s')", fmt);
    } else if (ver > ELASTIC_VERSION) {
        rc = qerr_set(err, "artifact version %lld is newer than this quept reads (%d): upgrade quept",
                      (long long)ver, ELASTIC_VERSION);
    } else if (mp_map_map(meta, "model", &mm, err) || parse_model_config(mm, &c, err) ||
               mp_map_map(meta, "quant", &qm, err) || qconfig_unpack(qm, &q, err) ||
               parse_weight_format(meta, &c, &q, err) || mp_map_map(meta, "provenance", &prov, err) ||
               mp_map_array(meta, "losses", &losses, err)) {
        rc = -1;
    }
    if (rc == 0) rc = elastic_alloc(em, &c, &q, err);
    if (rc == 0) {
        mp_map_str(prov, "model_sha256", em->model_sha256, sizeof em->model_sha256, err);
        mp_map_str(prov, "data_sha256", em->data_sha256, sizeof em->data_sha256, err);
        if (losses->via.array.size != (uint32_t)c.n_layers)
            rc = qerr_set(err, "key \"losses\": expected %d blocks", c.n_layers);
        /* "choice" is absent in artifacts calibrated without the fallback: all trained */
        choice = mp_map_get(meta, "choice");
        if (choice && choice->type != MSGPACK_OBJECT_ARRAY)
            rc = qerr_set(err, "key \"choice\": expected an array");
        else if (choice && choice->via.array.size != (uint32_t)c.n_layers)
            rc = qerr_set(err, "key \"choice\": expected %d blocks", c.n_layers);
        for (int j = 0; rc == 0 && choice && j < c.n_layers; j++) {
            const msgpack_object *cb = &choice->via.array.ptr[j];
            if (cb->type != MSGPACK_OBJECT_ARRAY || cb->via.array.size != (uint32_t)q.n_bits) {
                rc = qerr_set(err, "key \"choice\"[%d]: expected %d entries", j, q.n_bits);
                break;
            }
            for (int bi = 0; rc == 0 && bi < q.n_bits; bi++) {
                int64_t v;
                rc = mp_obj_int(&cb->via.array.ptr[bi], "choice", &v, err);
                if (rc == 0 && (v < QB_TRAINED || v > QB_GPTQ || (v == QB_GPTQ && q.format == QFORMAT_POT)))
                    rc = qerr_set(
                        err,
                        "key \"choice\"[%d][%d]: %lld is not 0, 1, 2 or 3 (3: integer and GGUF codes only)",
                        j, bi, (long long)v);
                if (rc == 0) em->stats[j].choice[bi] = (int)v;
            }
        }
        for (int j = 0; rc == 0 && j < c.n_layers; j++) {
            const msgpack_object *lb = &losses->via.array.ptr[j];
            if (lb->type != MSGPACK_OBJECT_ARRAY || lb->via.array.size != (uint32_t)q.n_bits) {
                rc = qerr_set(err, "key \"losses\"[%d]: expected %d entries", j, q.n_bits);
                break;
            }
            for (int bi = 0; rc == 0 && bi < q.n_bits; bi++) {
                const msgpack_object *e = &lb->via.array.ptr[bi];
                if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 3) {
                    rc = qerr_set(err, "key \"losses\"[%d][%d]: expected 3 numbers", j, bi);
                    break;
                }
                rc = mp_obj_float(&e->via.array.ptr[0], "loss", &em->stats[j].loss_rtn[bi], err) ||
                     mp_obj_float(&e->via.array.ptr[1], "loss", &em->stats[j].loss_init[bi], err) ||
                     mp_obj_float(&e->via.array.ptr[2], "loss", &em->stats[j].loss_final[bi], err);
            }
        }
    }
    if (rc == 0) rc = parse_sensitivity(meta, em, err);
    if (rc != 0) {
        elastic_free(em);
        return -1;
    }
    return 0;
}

int elastic_load(ElasticModel *em, const char *path, QErr *err) {
    memset(em, 0, sizeof *em);
    ArtReader *r;
    if (art_open(&r, path, err) != 0) return -1;
    int rc = elastic_load_meta(em, r, err);
    const ModelConfig c = em->cfg;
    const QuantConfig q = em->qc;
    Model *m = &em->base;
    if (rc == 0) {
        m->cfg = c;
        size_t VC = (size_t)c.vocab_size * c.dim;
        m->blocks = calloc((size_t)c.n_layers, sizeof(BlockWeights));
        m->tok_emb = malloc(VC * sizeof(float));
        m->final_norm = malloc((size_t)c.dim * sizeof(float));
        m->classifier = c.tied_classifier ? m->tok_emb : malloc(VC * sizeof(float));
        if (!m->blocks || !m->tok_emb || !m->final_norm || !m->classifier)
            rc = qerr_set(err, "out of memory");
        rc = rc || read_f32(r, "tok_emb", m->tok_emb, VC, err);
        rc = rc || read_f32(r, "final_norm", m->final_norm, c.dim, err);
        if (!c.tied_classifier) rc = rc || read_f32(r, "classifier", m->classifier, VC, err);
    }
    char name[256];
    for (int j = 0; rc == 0 && j < c.n_layers; j++) {
        BlockWeights *bw = &m->blocks[j];
        rc = block_weights_alloc(bw, &c, err);
        bw->down_had = q.rotate == ROTATE_HADAMARD; /* the stored base is rotated: the online transform */
        snprintf(name, sizeof name, "blk.%d.attn_norm", j);
        rc = rc || read_f32(r, name, bw->attn_norm, c.dim, err);
        snprintf(name, sizeof name, "blk.%d.mlp_norm", j);
        rc = rc || read_f32(r, name, bw->mlp_norm, c.dim, err);
        if (c.has_qkv_bias) {
            size_t qd = (size_t)c.n_heads * c.head_dim, kvd = (size_t)c.n_kv_heads * c.head_dim;
            snprintf(name, sizeof name, "blk.%d.bq", j);
            rc = rc || read_f32(r, name, bw->bq, qd, err);
            snprintf(name, sizeof name, "blk.%d.bk", j);
            rc = rc || read_f32(r, name, bw->bk, kvd, err);
            snprintf(name, sizeof name, "blk.%d.bv", j);
            rc = rc || read_f32(r, name, bw->bv, kvd, err);
        }
        if (rc == 0 && q.method == METHOD_QUEPT) {
            rc = qblock_params_init(&em->params[j], &c, &q, j, err);
            /* ranks first; the RTN logits (20) come with the tensors read below */
            for (int bi = 0; rc == 0 && bi < q.n_bits; bi++)
                if (em->stats[j].choice[bi] != QB_TRAINED)
                    qblock_set_choice(&em->params[j], bi, em->stats[j].choice[bi]);
        }
        for (int l = 0; rc == 0 && l < N_LIN; l++) {
            size_t n;
            base_sizes(&c, l, &n);
            snprintf(name, sizeof name, "blk.%d.%s", j, LIN_NAMES[l]);
            rc = read_f32(r, name, *qblock_linear_slot(bw, l), n, err);
            if (rc == 0 && q.method == METHOD_QUEPT) {
                QBlockParams *p = &em->params[j];
                const QLinear *ql = &p->lin[l];
                snprintf(name, sizeof name, "blk.%d.%s.Bd", j, LIN_NAMES[l]);
                rc = rc || read_f32(r, name, p->adapter + ql->off_Bd, (size_t)ql->out * ql->R, err);
                snprintf(name, sizeof name, "blk.%d.%s.Bu", j, LIN_NAMES[l]);
                rc = rc || read_f32(r, name, p->adapter + ql->off_Bu, (size_t)ql->R * ql->in, err);
                for (int bi = 0; rc == 0 && bi < q.n_bits; bi++) {
                    size_t ng = (size_t)ql->out * fq_ngroups(&ql->spec[bi]);
                    snprintf(name, sizeof name, "blk.%d.%s.gamma.%d", j, LIN_NAMES[l], q.bits[bi]);
                    rc = rc || read_f32(r, name, p->lwc + ql->off_gamma[bi], ng, err);
                    snprintf(name, sizeof name, "blk.%d.%s.beta.%d", j, LIN_NAMES[l], q.bits[bi]);
                    rc = rc || read_f32(r, name, p->lwc + ql->off_beta[bi], ng, err);
                }
            }
            int out, in;
            qblock_linear_shape(&c, l, &out, &in);
            for (int bi = 0; rc == 0 && bi < q.n_bits; bi++) {
                int gs = quant_group(&q, q.bits[bi], in);
                if (q.method == METHOD_GPTQ)
                    rc = read_codes(r, path, j, l, q.bits[bi], q.bits[bi], &em->gptq[j][l][bi], out, in, gs,
                                    1, err);
                else if (q.method == METHOD_QUEPT && em->params[j].choice[bi] == QB_GPTQ)
                    rc = qblock_rounded_alloc(&em->params[j], bi, err) ||
                         read_codes(r, path, j, l, q.bits[bi],
                                    qblock_code_bits(&em->params[j].lin[l].spec[bi]),
                                    &em->params[j].rounded[l][bi], out, in, gs, 0, err);
            }
        }
    }
    art_close(r);
    if (rc != 0) {
        qerr_wrap(err, "%s", path);
        elastic_free(em);
        return -1;
    }
    return 0;
}

int elastic_switch(const ElasticModel *em, const int *bits, Model *out, QErr *err) {
    const ModelConfig *c = &em->cfg;
    const QuantConfig *q = &em->qc;
    int bis[4096];
    if (c->n_layers > 4096) return qerr_set(err, "too many blocks");
    for (int j = 0; j < c->n_layers; j++) {
        bis[j] = quant_bit_index(q, bits[j]);
        if (bis[j] < 0)
            return qerr_set(err, "block %d: %d bits is not in the artifact's bit list", j, bits[j]);
    }
    if (!out->blocks) {
        /* first switch: share embeddings and norms with the base (read-only),
         * own the quantized linears */
        out->cfg = *c;
        out->tok_emb = NULL;
        out->blocks = calloc((size_t)c->n_layers, sizeof(BlockWeights));
        if (!out->blocks) return qerr_set(err, "out of memory");
        for (int j = 0; j < c->n_layers; j++)
            if (block_weights_alloc(&out->blocks[j], c, err) != 0) return -1;
    }
    const Model *m = &em->base;
    for (int j = 0; j < c->n_layers; j++) {
        BlockWeights *dst = &out->blocks[j], *src = &m->blocks[j];
        memcpy(dst->attn_norm, src->attn_norm, sizeof(float) * c->dim);
        memcpy(dst->mlp_norm, src->mlp_norm, sizeof(float) * c->dim);
        if (c->has_qkv_bias) {
            memcpy(dst->bq, src->bq, sizeof(float) * c->n_heads * c->head_dim);
            memcpy(dst->bk, src->bk, sizeof(float) * c->n_kv_heads * c->head_dim);
            memcpy(dst->bv, src->bv, sizeof(float) * c->n_kv_heads * c->head_dim);
        }
        int bi = bis[j];
        dst->act_bits = quant_act_bits(q, bi); /* the width's paired activation quantization */
        dst->down_had = src->down_had;         /* a rotated artifact's online transform */
        for (int l = 0; l < N_LIN; l++) {
            const float *W = qblock_linear_weight(src, l);
            float *Wq = *qblock_linear_slot(dst, l);
            int o, in;
            qblock_linear_shape(c, l, &o, &in);
            if (q->method == METHOD_QUEPT && em->params[j].choice[bi] == QB_GPTQ) {
                const GptqLinear *g = &em->params[j].rounded[l][bi];
                const QBlockParams *p = &em->params[j];
                const QLinear *ql = &p->lin[l];
                if (q->format == QFORMAT_GGUF) /* the indices on the calibrated GGUF grid */
                    fq_gguf_from_index(&ql->spec[bi], W, p->adapter + ql->off_Bd, p->adapter + ql->off_Bu,
                                       p->lwc + ql->off_gamma[bi], p->lwc + ql->off_beta[bi], g->codes, Wq);
                else
                    fq_dequantize(&ql->spec[bi], g->codes, g->scales, g->zeros, Wq);
            } else if (q->method == METHOD_QUEPT) {
                const QBlockParams *p = &em->params[j];
                const QLinear *ql = &p->lin[l];
                fq_forward(&ql->spec[bi], W, p->adapter + ql->off_Bd, p->adapter + ql->off_Bu,
                           p->lwc + ql->off_gamma[bi], p->lwc + ql->off_beta[bi], Wq, NULL);
            } else {
                FqSpec s = {.out = o,
                            .in = in,
                            .bits = bits[j],
                            .group = quant_group(q, bits[j], in),
                            .format = (int)q->format,
                            .gtype = quant_gtype(q, bits[j], in)};
                if (q->method == METHOD_RTN)
                    fq_rtn(&s, W, Wq);
                else {
                    const GptqLinear *g = &em->gptq[j][l][bi];
                    fq_dequantize(&s, g->codes, g->scales, g->zeros, Wq);
                }
            }
        }
    }
    return 0;
}
