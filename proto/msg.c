/* msg.c — encoding and bounds-checked decoding of protocol messages. */
#include "msg.h"

#include <lz4.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/msgpack_util.h"
#include "engine/recon_stats_codec.h"
#include "quant/qconfig_table.h"

static const char *const TYPE_NAMES[MSG_N_TYPES] = {
    "register", "assign", "activations", "params", "result", "progress", "heartbeat", "error", "shutdown"};

const char *msg_type_name(MsgType t) { return t < MSG_N_TYPES ? TYPE_NAMES[t] : "?"; }

void msg_init(Msg *m, MsgType type) {
    memset(m, 0, sizeof *m);
    m->type = type;
}

static size_t dtype_size(MsgDtype dt) { return dt == MSG_U8 ? 1 : dt == MSG_BF16 ? 2 : 4; }
static const char *dtype_name(MsgDtype dt) { return dt == MSG_U8 ? "u8" : dt == MSG_BF16 ? "bf16" : "f32"; }

int msg_add_tensor(Msg *m, const char *name, MsgDtype dt, int ndim, const int64_t *shape, const void *data,
                   QErr *err) {
    if (m->n_tensors >= PROTO_MAX_TENSORS)
        return qerr_set(err, "more than %d tensors in one message", PROTO_MAX_TENSORS);
    if (ndim < 1 || ndim > 3) return qerr_set(err, "tensor %s: %d dimensions (1..3 allowed)", name, ndim);
    if (strlen(name) >= sizeof m->t[0].name) return qerr_set(err, "tensor name '%s' too long", name);
    MsgTensor *t = &m->t[m->n_tensors];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->dtype = dt;
    t->ndim = ndim;
    size_t n = dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return qerr_set(err, "tensor %s: negative dimension", name);
        t->shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    if (n > PROTO_MAX_TENSOR)
        return qerr_set(err, "tensor %s: %zu bytes exceed the %zu-byte limit", name, n, PROTO_MAX_TENSOR);
    t->nbytes = n;
    t->data = (void *)data;
    m->n_tensors++;
    return 0;
}

const MsgTensor *msg_tensor(const Msg *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    return NULL;
}

void msg_free(Msg *m) {
    for (int i = 0; i < m->n_tensors; i++) {
        free(m->t[i].data);
        m->t[i].data = NULL;
    }
    m->n_tensors = 0;
}

void msg_frames_free(MsgFrames *f) {
    for (int i = 0; i < f->n; i++) free(f->data[i]);
    memset(f, 0, sizeof *f);
}

/* ---- encode ---- */

static void pack_stats(msgpack_packer *pk, const ReconStats *s, int n) {
    mp_pack_str(pk, "stats");
    msgpack_pack_map(pk, 2 + RECON_STATS_ENTRIES);
    mp_pack_kv_int(pk, "n", n);
    recon_stats_pack(pk, s, n);
    mp_pack_kv_double(pk, "tps", s->tokens_per_s);
}

/* The number of type-specific pairs each type packs (plus v, t, session,
 * assign, tensors). */
static int n_fields(MsgType t) {
    switch (t) {
    case MSG_REGISTER: return 2;
    case MSG_ASSIGN: return 11;
    case MSG_ACTIVATIONS: return 2;
    case MSG_PARAMS:
    case MSG_RESULT: return 2;
    case MSG_PROGRESS: return 5;
    case MSG_ERROR:
    case MSG_SHUTDOWN: return 1;
    default: return 0;
    }
}

int msg_encode(const Msg *m, int compress, MsgFrames *out, QErr *err) {
    memset(out, 0, sizeof *out);
    if (m->type >= MSG_N_TYPES) return qerr_set(err, "encode: bad message type %d", (int)m->type);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)(5 + n_fields(m->type)));
    mp_pack_kv_int(&pk, "v", PROTO_VERSION);
    mp_pack_kv_str(&pk, "t", TYPE_NAMES[m->type]);
    mp_pack_kv_u64(&pk, "session", m->session);
    mp_pack_kv_u64(&pk, "assign", m->assign);
    switch (m->type) {
    case MSG_REGISTER:
        mp_pack_kv_str(&pk, "name", m->name);
        mp_pack_kv_int(&pk, "threads", m->threads);
        break;
    case MSG_ASSIGN:
        mp_pack_kv_int(&pk, "shard", m->shard);
        mp_pack_kv_int(&pk, "block_begin", m->block_begin);
        mp_pack_kv_int(&pk, "block_end", m->block_end);
        mp_pack_kv_int(&pk, "block_start", m->block_start);
        mp_pack_kv_int(&pk, "send_fp_out", m->send_fp_out);
        mp_pack_kv_int(&pk, "n_seq", m->n_seq);
        mp_pack_kv_int(&pk, "T", m->T);
        mp_pack_kv_int(&pk, "dim", m->dim);
        mp_pack_kv_int(&pk, "n_layers", m->n_layers);
        mp_pack_kv_str(&pk, "model_path", m->model_path);
        mp_pack_str(&pk, "qc");
        qconfig_pack(&pk, &m->qc);
        break;
    case MSG_ACTIVATIONS:
        mp_pack_kv_int(&pk, "block", m->block);
        mp_pack_kv_int(&pk, "seq0", m->seq0);
        break;
    case MSG_PARAMS:
    case MSG_RESULT:
        mp_pack_kv_int(&pk, "block", m->block);
        pack_stats(&pk, &m->stats, m->n_bits);
        break;
    case MSG_PROGRESS:
        mp_pack_kv_int(&pk, "block", m->block);
        mp_pack_kv_int(&pk, "epoch", m->epoch);
        mp_pack_kv_int(&pk, "epochs", m->epochs);
        mp_pack_kv_doubles(&pk, "group_loss", m->group_loss, QN_GROUPS);
        mp_pack_kv_double(&pk, "tokens_per_s", m->tokens_per_s);
        break;
    case MSG_ERROR:
    case MSG_SHUTDOWN: mp_pack_kv_str(&pk, "text", m->text); break;
    default: break;
    }
    mp_pack_str(&pk, "tensors");
    msgpack_pack_array(&pk, (size_t)m->n_tensors);
    int rc = 0;
    uint8_t *body[PROTO_MAX_TENSORS] = {0};
    size_t blen[PROTO_MAX_TENSORS] = {0};
    for (int i = 0; i < m->n_tensors && rc == 0; i++) {
        const MsgTensor *t = &m->t[i];
        int lz = 0;
        if (compress && t->nbytes > 64) {
            int cap = LZ4_compressBound((int)t->nbytes);
            uint8_t *c = cap > 0 ? malloc((size_t)cap) : NULL;
            int got = c ? LZ4_compress_default(t->data, (char *)c, (int)t->nbytes, cap) : 0;
            if (got > 0 && (size_t)got < t->nbytes) {
                body[i] = c, blen[i] = (size_t)got, lz = 1;
            } else {
                free(c);
            }
        }
        if (!lz) {
            body[i] = malloc(t->nbytes ? t->nbytes : 1);
            if (!body[i]) {
                rc = qerr_set(err, "out of memory encoding tensor %s", t->name);
                break;
            }
            if (t->nbytes) memcpy(body[i], t->data, t->nbytes);
            blen[i] = t->nbytes;
        }
        msgpack_pack_array(&pk, 5);
        mp_pack_str(&pk, t->name);
        mp_pack_str(&pk, dtype_name(t->dtype));
        msgpack_pack_array(&pk, (size_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) msgpack_pack_int64(&pk, t->shape[d]);
        mp_pack_str(&pk, lz ? "lz4" : "raw");
        msgpack_pack_uint64(&pk, t->nbytes);
    }
    if (rc == 0 && sb.size > PROTO_MAX_HEADER)
        rc = qerr_set(err, "encode: header of %zu bytes too large", sb.size);
    if (rc != 0) {
        for (int i = 0; i < m->n_tensors; i++) free(body[i]);
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    out->n = 1 + m->n_tensors;
    out->len[0] = sb.size; /* before release, which zeroes it */
    out->data[0] = (uint8_t *)msgpack_sbuffer_release(&sb);
    msgpack_sbuffer_destroy(&sb);
    for (int i = 0; i < m->n_tensors; i++) {
        out->data[1 + i] = body[i];
        out->len[1 + i] = blen[i];
    }
    return 0;
}

/* ---- decode ---- */

static int get_int(const msgpack_object *map, const char *k, int64_t lo, int64_t hi, int *out, QErr *err) {
    int64_t v;
    if (mp_map_int(map, k, &v, err) != 0) return -1;
    if (v < lo || v > hi)
        return qerr_set(err, "field \"%s\": %lld outside [%lld, %lld]", k, (long long)v, (long long)lo,
                        (long long)hi);
    *out = (int)v;
    return 0;
}

static int get_u64(const msgpack_object *map, const char *k, uint64_t *out, QErr *err) {
    const msgpack_object *o = mp_map_get(map, k);
    if (!o) return qerr_set(err, "field \"%s\" is missing", k);
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return qerr_set(err, "field \"%s\": expected an unsigned integer, got %s", k, mp_type_name(o));
    *out = o->via.u64;
    return 0;
}

static int parse_stats(const msgpack_object *map, ReconStats *s, int *n_bits, QErr *err) {
    const msgpack_object *st;
    if (mp_map_map(map, "stats", &st, err) != 0) return -1;
    int n = 0;
    if (get_int(st, "n", 1, QMAX_NBITS, &n, err) || recon_stats_parse(st, s, n, err) ||
        mp_map_float(st, "tps", &s->tokens_per_s, err))
        return qerr_wrap(err, "stats");
    *n_bits = n;
    return 0;
}

/* The tensor table against the frames: shapes, sizes, codecs, decode. */
static int parse_tensors(const msgpack_object *map, const uint8_t *const *frames, const size_t *lens,
                         int n_frames, Msg *m, QErr *err) {
    const msgpack_object *a;
    if (mp_map_array(map, "tensors", &a, err) != 0) return -1;
    int nt = (int)a->via.array.size;
    if (nt > PROTO_MAX_TENSORS) return qerr_set(err, "%d tensors (at most %d)", nt, PROTO_MAX_TENSORS);
    if (n_frames != 1 + nt) return qerr_set(err, "%d tensor frames for %d tensors", n_frames - 1, nt);
    for (int i = 0; i < nt; i++) {
        const msgpack_object *d = &a->via.array.ptr[i];
        if (d->type != MSGPACK_OBJECT_ARRAY || d->via.array.size != 5)
            return qerr_set(err, "tensor %d: expected [name, dtype, shape, codec, raw_bytes]", i);
        const msgpack_object *f = d->via.array.ptr;
        MsgTensor *t = &m->t[i];
        char dt[8], codec[8];
        if (mp_obj_str(&f[0], "tensor name", t->name, sizeof t->name, err) ||
            mp_obj_str(&f[1], "tensor dtype", dt, sizeof dt, err) ||
            mp_obj_str(&f[3], "tensor codec", codec, sizeof codec, err))
            return qerr_wrap(err, "tensor %d", i);
        if (strcmp(dt, "f32") == 0)
            t->dtype = MSG_F32;
        else if (strcmp(dt, "bf16") == 0)
            t->dtype = MSG_BF16;
        else if (strcmp(dt, "u8") == 0)
            t->dtype = MSG_U8;
        else
            return qerr_set(err, "tensor %s: dtype '%s' (expected f32, bf16 or u8)", t->name, dt);
        int lz = strcmp(codec, "lz4") == 0;
        if (!lz && strcmp(codec, "raw") != 0)
            return qerr_set(err, "tensor %s: codec '%s' (expected raw or lz4)", t->name, codec);
        if (f[2].type != MSGPACK_OBJECT_ARRAY || f[2].via.array.size < 1 || f[2].via.array.size > 3)
            return qerr_set(err, "tensor %s: shape must be a list of 1 to 3 sizes", t->name);
        t->ndim = (int)f[2].via.array.size;
        uint64_t bytes = dtype_size(t->dtype);
        for (int k = 0; k < t->ndim; k++) {
            int64_t v;
            if (mp_obj_int(&f[2].via.array.ptr[k], "tensor shape", &v, err) != 0)
                return qerr_wrap(err, "tensor %s", t->name);
            if (v < 0 || (uint64_t)v > PROTO_MAX_TENSOR)
                return qerr_set(err, "tensor %s: dimension %lld out of range", t->name, (long long)v);
            t->shape[k] = v;
            bytes *= (uint64_t)v;
            if (bytes > PROTO_MAX_TENSOR)
                return qerr_set(err, "tensor %s: larger than %zu bytes", t->name, PROTO_MAX_TENSOR);
        }
        int64_t raw;
        if (mp_obj_int(&f[4], "tensor raw_bytes", &raw, err) != 0)
            return qerr_wrap(err, "tensor %s", t->name);
        if ((uint64_t)raw != bytes)
            return qerr_set(err, "tensor %s: raw_bytes %lld, shape says %llu", t->name, (long long)raw,
                            (unsigned long long)bytes);
        const uint8_t *src = frames[1 + i];
        size_t slen = lens[1 + i];
        if (!lz && slen != bytes)
            return qerr_set(err, "tensor %s: frame of %zu bytes, expected %llu", t->name, slen,
                            (unsigned long long)bytes);
        if (lz && (slen == 0 || slen > (size_t)LZ4_compressBound((int)bytes)))
            return qerr_set(err, "tensor %s: LZ4 frame of %zu bytes for %llu raw bytes", t->name, slen,
                            (unsigned long long)bytes);
        t->nbytes = (size_t)bytes;
        t->data = malloc(bytes ? bytes : 1);
        if (!t->data)
            return qerr_set(err, "tensor %s: out of memory (%llu bytes)", t->name, (unsigned long long)bytes);
        m->n_tensors = i + 1; /* owned from here: the caller frees on failure */
        if (!lz) {
            if (bytes) memcpy(t->data, src, bytes);
        } else {
            int got = LZ4_decompress_safe((const char *)src, t->data, (int)slen, (int)bytes);
            if (got < 0 || (uint64_t)got != bytes)
                return qerr_set(err, "tensor %s: corrupt LZ4 data (decoded %d of %llu bytes)", t->name, got,
                                (unsigned long long)bytes);
        }
        for (int k = 0; k < i; k++)
            if (strcmp(m->t[k].name, t->name) == 0) return qerr_set(err, "tensor %s appears twice", t->name);
    }
    return 0;
}

/* Which tensors a type must carry, with their dimensions checked against
 * the header fields by the caller (coordinator / worker), which knows the
 * job's sizes. */
static int require_tensor(const Msg *m, const char *name, int ndim, QErr *err) {
    const MsgTensor *t = msg_tensor(m, name);
    if (!t) return qerr_set(err, "%s message without tensor \"%s\"", TYPE_NAMES[m->type], name);
    if (t->ndim != ndim) return qerr_set(err, "tensor %s: %d dimensions, expected %d", name, t->ndim, ndim);
    return 0;
}

/* rq_codes.K: piece K of a block's stored codes. */
static void piece_name(char *buf, size_t n, int k) { snprintf(buf, n, "rq_codes.%d", k); }

/* Pieces rq_codes.0 .. rq_codes.(n-1) present (n >= 0); -1 with err if one
 * is not u8 1-D or the numbering has a gap. */
static int count_pieces(const Msg *m, int *n, QErr *err) {
    int found = 0, top = -1;
    for (int i = 0; i < m->n_tensors; i++) {
        int k;
        char tail;
        if (sscanf(m->t[i].name, "rq_codes.%d%c", &k, &tail) != 1) continue;
        if (k < 0 || k >= PROTO_MAX_CODE_PIECES)
            return qerr_set(err, "tensor %s: piece %d outside 0..%d", m->t[i].name, k,
                            PROTO_MAX_CODE_PIECES - 1);
        if (m->t[i].dtype != MSG_U8 || m->t[i].ndim != 1)
            return qerr_set(err, "tensor %s: expected u8 with 1 dimension", m->t[i].name);
        found++;
        top = k > top ? k : top;
    }
    if (found != top + 1) return qerr_set(err, "tensors rq_codes.*: %d pieces numbered up to %d", found, top);
    *n = found;
    return 0;
}

/* A block's parameters: f32 lwc, adapter (and teq), and the stored codes
 * of QB_GPTQ bits as u8 pieces rq_codes.0.. with f32 rq_grid — both or
 * neither. */
static int check_params(const Msg *m, QErr *err) {
    if (require_tensor(m, "lwc", 1, err) || require_tensor(m, "adapter", 1, err)) return -1;
    static const char *const f32[] = {"lwc", "adapter", "teq", "rq_grid"};
    for (int i = 0; i < 4; i++) {
        const MsgTensor *t = msg_tensor(m, f32[i]);
        if (t && (t->dtype != MSG_F32 || t->ndim != 1))
            return qerr_set(err, "tensor %s: expected f32 with 1 dimension", f32[i]);
    }
    int pieces;
    if (count_pieces(m, &pieces, err) != 0) return -1;
    if (!pieces != !msg_tensor(m, "rq_grid"))
        return qerr_set(err, "tensors rq_codes.* and rq_grid come together (one is missing)");
    return 0;
}

static int copy_tensor(const MsgTensor *t, void **out, size_t *n, size_t elem, QErr *err) {
    *out = malloc(t && t->nbytes ? t->nbytes : 1);
    if (!*out) return qerr_set(err, "out of memory for tensor %s", t ? t->name : "");
    *n = t ? t->nbytes / elem : 0;
    if (t && t->nbytes) memcpy(*out, t->data, t->nbytes);
    return 0;
}

int msg_add_params_split(Msg *m, const QBlockParams *raw, size_t piece, QErr *err) {
    int64_t nl = (int64_t)raw->n_lwc, na = (int64_t)raw->n_adapter, nt = (int64_t)raw->n_teq;
    int64_t ng = (int64_t)raw->n_flat_grid;
    if (msg_add_tensor(m, "lwc", MSG_F32, 1, &nl, raw->lwc, err) != 0 ||
        msg_add_tensor(m, "adapter", MSG_F32, 1, &na, raw->adapter, err) != 0 ||
        (nt && msg_add_tensor(m, "teq", MSG_F32, 1, &nt, raw->teq, err) != 0))
        return -1;
    if (!raw->n_flat_codes) return 0;
    if (piece < 1 || (raw->n_flat_codes + piece - 1) / piece > PROTO_MAX_CODE_PIECES)
        return qerr_set(err,
                        "the block's stored codes (%zu bytes) need more than %d pieces of %zu bytes; "
                        "calibrate with --no-fallback-gptq or in one process",
                        raw->n_flat_codes, PROTO_MAX_CODE_PIECES, piece);
    for (size_t off = 0, k = 0; off < raw->n_flat_codes; off += piece, k++) {
        char name[32];
        piece_name(name, sizeof name, (int)k);
        int64_t n = (int64_t)(raw->n_flat_codes - off < piece ? raw->n_flat_codes - off : piece);
        if (msg_add_tensor(m, name, MSG_U8, 1, &n, raw->flat_codes + off, err) != 0) return -1;
    }
    return msg_add_tensor(m, "rq_grid", MSG_F32, 1, &ng, raw->flat_grid, err);
}

int msg_add_params(Msg *m, const QBlockParams *raw, QErr *err) {
    return msg_add_params_split(m, raw, PROTO_MAX_TENSOR, err);
}

int msg_take_params(const Msg *m, QBlockParams *raw, QErr *err) {
    const MsgTensor *teq = msg_tensor(m, "teq");
    if (copy_tensor(msg_tensor(m, "lwc"), (void **)&raw->lwc, &raw->n_lwc, sizeof(float), err) ||
        copy_tensor(msg_tensor(m, "adapter"), (void **)&raw->adapter, &raw->n_adapter, sizeof(float), err) ||
        copy_tensor(teq, (void **)&raw->teq, &raw->n_teq, sizeof(float), err))
        return -1;
    int pieces;
    if (count_pieces(m, &pieces, err) != 0) return -1;
    if (!pieces) return 0;
    size_t total = 0;
    for (int k = 0; k < pieces; k++) {
        char name[32];
        piece_name(name, sizeof name, k);
        total += msg_tensor(m, name)->nbytes;
    }
    raw->flat_codes = malloc(total ? total : 1);
    if (!raw->flat_codes) return qerr_set(err, "out of memory for %zu bytes of stored codes", total);
    raw->n_flat_codes = total;
    size_t off = 0;
    for (int k = 0; k < pieces; k++) {
        char name[32];
        piece_name(name, sizeof name, k);
        const MsgTensor *t = msg_tensor(m, name);
        memcpy(raw->flat_codes + off, t->data, t->nbytes);
        off += t->nbytes;
    }
    return copy_tensor(msg_tensor(m, "rq_grid"), (void **)&raw->flat_grid, &raw->n_flat_grid, sizeof(float),
                       err);
}

static int decode_fields(const msgpack_object *h, Msg *m, QErr *err) {
    const int BIG = 1 << 30;
    switch (m->type) {
    case MSG_REGISTER:
        if (mp_map_str(h, "name", m->name, sizeof m->name, err) ||
            get_int(h, "threads", 1, 4096, &m->threads, err))
            return -1;
        log_sanitize(m->name); /* shown in logs and quept status */
        return 0;
    case MSG_ASSIGN: {
        const msgpack_object *q;
        if (get_int(h, "n_layers", 1, 1 << 16, &m->n_layers, err) ||
            get_int(h, "shard", 0, m->n_layers - 1, &m->shard, err) ||
            get_int(h, "block_begin", 0, m->n_layers - 1, &m->block_begin, err) ||
            get_int(h, "block_end", m->block_begin + 1, m->n_layers, &m->block_end, err) ||
            get_int(h, "block_start", m->block_begin, m->block_end, &m->block_start, err) ||
            get_int(h, "send_fp_out", 0, 1, &m->send_fp_out, err) ||
            get_int(h, "n_seq", 1, 1 << 24, &m->n_seq, err) || get_int(h, "T", 1, 1 << 24, &m->T, err) ||
            get_int(h, "dim", 1, 1 << 20, &m->dim, err) ||
            mp_map_str(h, "model_path", m->model_path, sizeof m->model_path, err) ||
            mp_map_map(h, "qc", &q, err))
            return -1;
        if (qconfig_unpack(q, &m->qc, err) != 0) return qerr_wrap(err, "field \"qc\"");
        return 0;
    }
    case MSG_ACTIVATIONS:
        if (get_int(h, "block", 0, 1 << 16, &m->block, err) || get_int(h, "seq0", 0, BIG, &m->seq0, err))
            return -1;
        return 0;
    case MSG_PARAMS:
    case MSG_RESULT:
        return get_int(h, "block", 0, 1 << 16, &m->block, err) || parse_stats(h, &m->stats, &m->n_bits, err);
    case MSG_PROGRESS:
        if (get_int(h, "block", 0, 1 << 16, &m->block, err) ||
            get_int(h, "epochs", 0, 1 << 20, &m->epochs, err) ||
            get_int(h, "epoch", 0, m->epochs, &m->epoch, err) ||
            mp_map_doubles(h, "group_loss", m->group_loss, QN_GROUPS, err) ||
            mp_map_float(h, "tokens_per_s", &m->tokens_per_s, err))
            return -1;
        return 0;
    case MSG_ERROR:
    case MSG_SHUTDOWN:
        if (mp_map_str(h, "text", m->text, sizeof m->text, err) != 0) return -1;
        log_sanitize(m->text);
        return 0;
    default: return 0;
    }
}

int msg_decode(const uint8_t *const *frames, const size_t *lens, int n, Msg *m, QErr *err) {
    memset(m, 0, sizeof *m);
    if (n < 1) return qerr_set(err, "empty message");
    if (n > 1 + PROTO_MAX_TENSORS) return qerr_set(err, "%d frames (at most %d)", n, 1 + PROTO_MAX_TENSORS);
    if (lens[0] == 0 || lens[0] > PROTO_MAX_HEADER)
        return qerr_set(err, "header of %zu bytes (1..%zu)", lens[0], PROTO_MAX_HEADER);
    /* hostile container counts would make msgpack-c allocate gigabytes: check first */
    char why[160];
    size_t used;
    if (mp_scan(frames[0], lens[0], 8, &used, why, sizeof why) != 0)
        return qerr_set(err, "malformed message: header: %s", why);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = 0;
    if (msgpack_unpack_next(&up, (const char *)frames[0], lens[0], &off) != MSGPACK_UNPACK_SUCCESS)
        rc = qerr_set(err, "header is not valid MessagePack");
    else if (off != lens[0])
        rc = qerr_set(err, "%zu bytes after the header map", lens[0] - off);
    const msgpack_object *h = &up.data;
    if (rc == 0 && h->type != MSGPACK_OBJECT_MAP)
        rc = qerr_set(err, "header is a %s, expected a map", mp_type_name(h));
    int v = 0;
    char t[16];
    if (rc == 0) {
        int64_t vv;
        rc = mp_map_int(h, "v", &vv, err);
        if (rc == 0 && vv != PROTO_VERSION)
            rc = qerr_set(err, "protocol version %lld; this build speaks version %d (upgrade the %s side)",
                          (long long)vv, PROTO_VERSION, vv > PROTO_VERSION ? "older" : "newer");
        v = (int)vv;
    }
    (void)v;
    if (rc == 0) rc = mp_map_str(h, "t", t, sizeof t, err);
    if (rc == 0) {
        m->type = MSG_N_TYPES;
        for (int i = 0; i < MSG_N_TYPES; i++)
            if (strcmp(t, TYPE_NAMES[i]) == 0) m->type = (MsgType)i;
        if (m->type == MSG_N_TYPES) rc = qerr_set(err, "unknown message type '%s'", t);
    }
    if (rc == 0) rc = get_u64(h, "session", &m->session, err) || get_u64(h, "assign", &m->assign, err);
    if (rc == 0) rc = decode_fields(h, m, err);
    if (rc == 0) rc = parse_tensors(h, frames, lens, n, m, err);
    if (rc == 0) {
        if (m->type == MSG_ACTIVATIONS) rc = require_tensor(m, "x", 3, err);
        if (m->type == MSG_PARAMS || m->type == MSG_RESULT) rc = check_params(m, err);
    }
    msgpack_unpacked_destroy(&up);
    if (rc != 0) {
        const char *tn = m->type < MSG_N_TYPES ? TYPE_NAMES[m->type] : "message";
        msg_free(m);
        qerr_wrap(err, "malformed %s", rc && m->type < MSG_N_TYPES ? tn : "message");
        return -1;
    }
    return 0;
}
