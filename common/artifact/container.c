/* container.c — see container.h and docs/artifact-format.md. */
#include "container.h"

#include <errno.h>
#include <inttypes.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/bytebuf.h"
#include "../base/crc32.h"
#include "../base/mapfile.h"

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

static uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_le64(const uint8_t *p) { return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32; }
static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}
/* x rounded up to a multiple of 8; x must be <= UINT64_MAX - 7 */
static uint64_t align8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

static const uint8_t zeros8[8];

/* The header ends with this key and a msgpack uint32 (0xce + 4 bytes BE). */
static const char TRAILER_KEY[] = "\xaf"
                                  "header_checksum";
#define TRAILER_KEY_LEN 16
#define TRAILER_LEN     (TRAILER_KEY_LEN + 5)

const char *art_dtype_name(ArtDtype dt) {
    switch (dt) {
    case ART_F32: return "f32";
    case ART_F16: return "f16";
    case ART_U8: return "u8";
    case ART_I32: return "i32";
    }
    return NULL;
}

size_t art_dtype_size(ArtDtype dt) {
    switch (dt) {
    case ART_F32: return 4;
    case ART_F16: return 2;
    case ART_U8: return 1;
    case ART_I32: return 4;
    }
    return 0;
}

int art_dtype_parse(const char *s, size_t len, ArtDtype *out) {
    static const ArtDtype all[] = {ART_F32, ART_F16, ART_U8, ART_I32};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *n = art_dtype_name(all[i]);
        if (strlen(n) == len && memcmp(n, s, len) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -1;
}

const char *art_codec_name(ArtCodec c) {
    switch (c) {
    case ART_CODEC_RAW: return "raw";
    case ART_CODEC_LZ4: return "lz4";
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* section codecs                                                           */

/* LZ4 framing: chunks of u32 raw_len, u32 stored_len (LE), stored_len bytes;
 * stored_len == raw_len: the chunk is verbatim, stored_len < raw_len: an LZ4
 * block. Returns 1 (and nothing allocated) when the result would not be
 * smaller than raw. */
static int lz4_encode(const uint8_t *src, uint64_t raw, size_t chunk, uint8_t **out, uint64_t *out_n,
                      QErr *err) {
    *out = NULL;
    *out_n = 0;
    uint64_t nchunks = (raw + chunk - 1) / chunk;
    if (raw >= SIZE_MAX / 2 || nchunks > (SIZE_MAX / 2 - raw) / 8)
        return qerr_set(err, "%" PRIu64 " bytes are too many to compress", raw);
    size_t cap = (size_t)(raw + 8 * nchunks);
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return qerr_set(err, "out of memory (%zu bytes) compressing", cap);
    size_t pos = 0;
    for (uint64_t off = 0; off < raw; off += chunk) {
        size_t len = (size_t)(raw - off < chunk ? raw - off : chunk);
        /* capacity len-1: LZ4 gives up (returns 0) unless it saves a byte */
        int c = len > 1 ? LZ4_compress_default((const char *)src + off, (char *)buf + pos + 8, (int)len,
                                               (int)len - 1)
                        : 0;
        size_t sl = c > 0 ? (size_t)c : len;
        if (c <= 0) memcpy(buf + pos + 8, src + off, len);
        put_le32(buf + pos, (uint32_t)len);
        put_le32(buf + pos + 4, (uint32_t)sl);
        pos += 8 + sl;
    }
    if (pos >= raw) {
        free(buf);
        return 1;
    }
    uint8_t *shrunk = realloc(buf, pos ? pos : 1);
    *out = shrunk ? shrunk : buf;
    *out_n = pos;
    return 0;
}

/* Decodes into dst, or chunk by chunk into *scratch when dst is NULL (to
 * check a section without holding it whole). */
static int decode_impl(const uint8_t *src, uint64_t stored, ArtCodec codec, uint8_t *dst, uint64_t raw,
                       uint8_t **scratch, size_t *scratch_cap, QErr *err) {
    if (codec == ART_CODEC_RAW) {
        if (stored != raw)
            return qerr_set(err, "raw section has %" PRIu64 " stored bytes but %" PRIu64 " raw bytes", stored,
                            raw);
        if (dst && raw) memcpy(dst, src, (size_t)raw);
        return 0;
    }
    if (codec != ART_CODEC_LZ4) return qerr_set(err, "unknown codec %d", (int)codec);
    uint64_t pos = 0, out = 0;
    while (pos < stored) {
        if (stored - pos < 8)
            return qerr_set(err,
                            "LZ4 chunk header at stored byte %" PRIu64 " is cut off (%" PRIu64 " bytes left)",
                            pos, stored - pos);
        uint32_t rl = get_le32(src + pos), sl = get_le32(src + pos + 4);
        if (rl == 0 || rl > LZ4_MAX_INPUT_SIZE)
            return qerr_set(err, "LZ4 chunk at stored byte %" PRIu64 ": raw length %" PRIu32 " not in 1..%d",
                            pos, rl, LZ4_MAX_INPUT_SIZE);
        if (sl > rl)
            return qerr_set(err,
                            "LZ4 chunk at stored byte %" PRIu64 ": stored length %" PRIu32
                            " exceeds its raw length %" PRIu32,
                            pos, sl, rl);
        if (sl > stored - pos - 8)
            return qerr_set(
                err, "LZ4 chunk at stored byte %" PRIu64 ": %" PRIu32 " bytes run past the section end", pos,
                sl);
        if (rl > raw - out)
            return qerr_set(err, "LZ4 chunks decode to more than the %" PRIu64 " raw bytes", raw);
        const uint8_t *cs = src + pos + 8;
        uint8_t *cd;
        if (dst) {
            cd = dst + out;
        } else {
            if (!*scratch || *scratch_cap < rl) {
                uint8_t *ns = realloc(*scratch, rl);
                if (!ns) return qerr_set(err, "out of memory (%" PRIu32 " bytes) checking a chunk", rl);
                *scratch = ns;
                *scratch_cap = rl;
            }
            cd = *scratch;
        }
        if (sl == rl) {
            memcpy(cd, cs, rl);
        } else {
            int d = LZ4_decompress_safe((const char *)cs, (char *)cd, (int)sl, (int)rl);
            if (d != (int)rl)
                return qerr_set(err,
                                "LZ4 chunk at stored byte %" PRIu64
                                " is corrupt (decoder returned %d, expected %" PRIu32 " bytes)",
                                pos, d, rl);
        }
        pos += 8 + (uint64_t)sl;
        out += rl;
    }
    if (out != raw)
        return qerr_set(err, "LZ4 chunks decode to %" PRIu64 " bytes, expected %" PRIu64, out, raw);
    return 0;
}

int art_decode(const uint8_t *src, uint64_t stored, ArtCodec codec, void *dst, uint64_t raw, QErr *err) {
    if (!dst && raw) return qerr_set(err, "no destination buffer");
    uint8_t dummy;
    return decode_impl(src, stored, codec, dst ? dst : &dummy, raw, NULL, NULL, err);
}

/* ------------------------------------------------------------------------ */
/* writer                                                                   */

typedef struct {
    char *name;
    ArtDtype dtype;
    int ndim;
    int64_t shape[ART_MAX_DIMS];
    uint64_t raw, stored;
    ArtCodec codec;
    uint32_t crc;
    uint8_t *bytes; /* stored bytes */
} WTensor;

struct ArtWriter {
    ByteBuf meta;
    msgpack_packer pk;
    WTensor *t;
    int n, cap;
    size_t chunk;
};

ArtWriter *art_writer_new(QErr *err) {
    ArtWriter *w = calloc(1, sizeof *w);
    if (!w) {
        qerr_set(err, "out of memory creating an artifact writer");
        return NULL;
    }
    msgpack_packer_init(&w->pk, &w->meta, bytebuf_msgpack_write);
    w->chunk = ART_LZ4_CHUNK_DEFAULT;
    return w;
}

void art_writer_free(ArtWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].bytes);
    }
    free(w->t);
    bytebuf_free(&w->meta);
    free(w);
}

msgpack_packer *art_writer_meta(ArtWriter *w) { return &w->pk; }

int art_writer_n_tensors(const ArtWriter *w) { return w->n; }

int art_writer_set_chunk_size(ArtWriter *w, size_t bytes, QErr *err) {
    if (bytes < 1 || bytes > LZ4_MAX_INPUT_SIZE)
        return qerr_set(err, "LZ4 chunk size %zu not in 1..%d", bytes, LZ4_MAX_INPUT_SIZE);
    w->chunk = bytes;
    return 0;
}

int art_writer_add(ArtWriter *w, const char *name, ArtDtype dt, int ndim, const int64_t *shape,
                   const void *data, int compress, QErr *err) {
    if (!name) return qerr_set(err, "artifact tensor without a name");
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > ART_MAX_NAME)
        return qerr_set(err, "tensor \"%.64s\": name must be 1..%d bytes (is %zu)", name, ART_MAX_NAME, nlen);
    size_t esize = art_dtype_size(dt);
    if (esize == 0) return qerr_set(err, "tensor \"%s\": unknown dtype %d", name, (int)dt);
    if (ndim < 0 || ndim > ART_MAX_DIMS)
        return qerr_set(err, "tensor \"%s\": %d dimensions (0..%d allowed)", name, ndim, ART_MAX_DIMS);
    int64_t numel = 1;
    int any_zero = 0;
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0) any_zero = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return qerr_set(err, "tensor \"%s\": dimension %d is negative (%" PRId64 ")", name, d, shape[d]);
        if (any_zero) continue;
        if (numel > INT64_MAX / shape[d])
            return qerr_set(err, "tensor \"%s\": shape product overflows", name);
        numel *= shape[d];
    }
    if (any_zero) numel = 0;
    if ((uint64_t)numel > (uint64_t)INT64_MAX / esize || (uint64_t)numel * esize > SIZE_MAX / 2)
        return qerr_set(err, "tensor \"%s\": %" PRId64 " elements are too many bytes", name, numel);
    uint64_t raw = (uint64_t)numel * esize;
    if (raw && !data) return qerr_set(err, "tensor \"%s\": no data for %" PRIu64 " bytes", name, raw);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0) return qerr_set(err, "tensor \"%s\" added twice", name);
    if (w->n == w->cap) {
        if (w->cap > (1 << 28)) return qerr_set(err, "too many tensors");
        int cap = w->cap ? 2 * w->cap : 64;
        WTensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) return qerr_set(err, "out of memory adding tensor \"%s\"", name);
        w->t = nt;
        w->cap = cap;
    }
    WTensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = ndim;
    for (int d = 0; d < ndim; d++) t.shape[d] = shape[d];
    t.raw = raw;
    t.name = malloc(nlen + 1);
    if (!t.name) return qerr_set(err, "out of memory adding tensor \"%s\"", name);
    memcpy(t.name, name, nlen + 1);
    int use_raw = 1;
    if (compress && raw > 0) {
        int rc = lz4_encode(data, raw, w->chunk, &t.bytes, &t.stored, err);
        if (rc < 0) {
            free(t.name);
            return qerr_wrap(err, "tensor \"%s\"", name);
        }
        use_raw = rc == 1;
    }
    if (use_raw) {
        t.codec = ART_CODEC_RAW;
        t.stored = raw;
        t.bytes = malloc(raw ? (size_t)raw : 1);
        if (!t.bytes) {
            free(t.name);
            return qerr_set(err, "out of memory (%" PRIu64 " bytes) adding tensor \"%s\"", raw, name);
        }
        if (raw) memcpy(t.bytes, data, (size_t)raw);
    } else {
        t.codec = ART_CODEC_LZ4;
    }
    t.crc = crc32_ieee(0, t.bytes, (size_t)t.stored);
    w->t[w->n++] = t;
    return 0;
}

/* The header: everything but the data section. */
static int build_header(ArtWriter *w, ByteBuf *h, QErr *err) {
    static const uint8_t empty_map = 0x80;
    const uint8_t *meta = w->meta.data;
    size_t meta_len = w->meta.len;
    if (w->meta.oom) return qerr_set(err, "out of memory while packing the metadata");
    if (meta_len == 0) {
        meta = &empty_map;
        meta_len = 1;
    } else {
        char why[160];
        size_t used = 0;
        if (mp_scan(meta, meta_len, ART_MAX_META_DEPTH, &used, why, sizeof why) != 0)
            return qerr_set(err, "metadata: %s", why);
        if (used != meta_len)
            return qerr_set(err,
                            "metadata must be exactly one MessagePack object (%zu bytes follow the first)",
                            meta_len - used);
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, h, bytebuf_msgpack_write);
    msgpack_pack_map(&pk, 4);
    mp_pack_str(&pk, "version");
    msgpack_pack_uint32(&pk, ART_FORMAT_VERSION);
    mp_pack_str(&pk, "meta");
    bytebuf_append(h, meta, meta_len);
    mp_pack_str(&pk, "tensors");
    msgpack_pack_array(&pk, (size_t)w->n);
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const WTensor *t = &w->t[i];
        msgpack_pack_map(&pk, 8);
        mp_pack_str(&pk, "name");
        mp_pack_str(&pk, t->name);
        mp_pack_str(&pk, "dtype");
        mp_pack_str(&pk, art_dtype_name(t->dtype));
        mp_pack_str(&pk, "shape");
        msgpack_pack_array(&pk, (size_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) msgpack_pack_uint64(&pk, (uint64_t)t->shape[d]);
        mp_pack_str(&pk, "offset");
        msgpack_pack_uint64(&pk, off);
        mp_pack_str(&pk, "stored");
        msgpack_pack_uint64(&pk, t->stored);
        mp_pack_str(&pk, "raw");
        msgpack_pack_uint64(&pk, t->raw);
        mp_pack_str(&pk, "codec");
        mp_pack_str(&pk, art_codec_name(t->codec));
        mp_pack_str(&pk, "checksum");
        msgpack_pack_uint32(&pk, t->crc);
        off = align8(off + t->stored);
    }
    uint32_t crc = crc32_ieee(0, h->data, h->len);
    uint8_t trailer[TRAILER_LEN];
    memcpy(trailer, TRAILER_KEY, TRAILER_KEY_LEN);
    trailer[TRAILER_KEY_LEN] = 0xce;
    for (int i = 0; i < 4; i++) trailer[TRAILER_KEY_LEN + 1 + i] = (uint8_t)(crc >> (24 - 8 * i));
    bytebuf_append(h, trailer, sizeof trailer);
    if (h->oom) return qerr_set(err, "out of memory building the artifact header");
    if (h->len > ART_MAX_HEADER)
        return qerr_set(err, "artifact header is %zu bytes, more than the %u a reader accepts", h->len,
                        (unsigned)ART_MAX_HEADER);
    return 0;
}

int art_writer_write(ArtWriter *w, const char *path, QErr *err) {
    ByteBuf h = {0};
    if (build_header(w, &h, err) != 0) {
        bytebuf_free(&h);
        return qerr_wrap(err, "%s", path);
    }
    uint8_t pre[ART_PREAMBLE_BYTES];
    memcpy(pre, ART_MAGIC, 8);
    put_le32(pre + 8, ART_FORMAT_VERSION);
    put_le32(pre + 12, 0);
    put_le64(pre + 16, h.len);
    uint64_t hend = ART_PREAMBLE_BYTES + (uint64_t)h.len;
    AtomicFile *af = atomic_open(path, err);
    if (!af) {
        bytebuf_free(&h);
        return -1;
    }
    int rc = atomic_write(af, pre, sizeof pre, err);
    if (rc == 0) rc = atomic_write(af, h.data, h.len, err);
    if (rc == 0) rc = atomic_write(af, zeros8, (size_t)(align8(hend) - hend), err);
    uint64_t pos = 0;
    for (int i = 0; rc == 0 && i < w->n; i++) {
        const WTensor *t = &w->t[i];
        rc = atomic_write(af, zeros8, (size_t)(align8(pos) - pos), err);
        if (rc == 0) rc = atomic_write(af, t->bytes, (size_t)t->stored, err);
        pos = align8(pos) + t->stored;
    }
    bytebuf_free(&h);
    if (rc != 0) {
        atomic_abort(af);
        return -1;
    }
    return atomic_commit(af, err);
}

/* ------------------------------------------------------------------------ */
/* reader                                                                   */

typedef struct {
    const char *name;
    int idx;
} NameIdx;

struct ArtReader {
    MappedFile mf;
    int mapped;
    const uint8_t *buf;
    size_t size;
    char name[512];
    const uint8_t *data; /* data section */
    uint64_t data_size;
    msgpack_unpacked unp;
    int unp_init;
    const msgpack_object *meta;
    ArtTensorInfo *t;
    int n;
    NameIdx *sorted;
};

static int rerr(const ArtReader *r, QErr *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rerr(const ArtReader *r, QErr *err, const char *fmt, ...) {
    char msg[QERR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qerr_set(err, "%s: %s", r->name, msg);
}

/* an unsigned field of a tensor entry */
static int field_u64(const ArtReader *r, int i, const char *tname, const char *key, const msgpack_object *o,
                     uint64_t max, uint64_t *out, QErr *err) {
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return rerr(r, err, "tensor %d \"%s\": field \"%s\" is negative (%" PRId64 ")", i, tname, key,
                    o->via.i64);
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return rerr(r, err, "tensor %d \"%s\": field \"%s\" must be an unsigned integer, got %s", i, tname,
                    key, mp_type_name(o));
    if (o->via.u64 > max)
        return rerr(r, err, "tensor %d \"%s\": field \"%s\" is %" PRIu64 ", more than %" PRIu64, i, tname,
                    key, o->via.u64, max);
    *out = o->via.u64;
    return 0;
}

enum { F_NAME, F_DTYPE, F_SHAPE, F_OFFSET, F_STORED, F_RAW, F_CODEC, F_CHECKSUM, F_COUNT };
static const char *const FIELD_NAMES[F_COUNT] = {"name",   "dtype", "shape", "offset",
                                                 "stored", "raw",   "codec", "checksum"};

static int parse_tensor(ArtReader *r, int i, const msgpack_object *e, QErr *err) {
    ArtTensorInfo *t = &r->t[i];
    if (e->type != MSGPACK_OBJECT_MAP)
        return rerr(r, err, "tensor %d: entry must be a map, got %s", i, mp_type_name(e));
    const msgpack_object *f[F_COUNT] = {0};
    for (uint32_t k = 0; k < e->via.map.size; k++) {
        const msgpack_object *key = &e->via.map.ptr[k].key;
        int which = -1;
        for (int j = 0; j < F_COUNT; j++)
            if (mp_key_is(key, FIELD_NAMES[j])) which = j;
        if (which < 0) {
            if (key->type == MSGPACK_OBJECT_STR)
                return rerr(r, err, "tensor %d: unknown field \"%.*s\"", i,
                            (int)(key->via.str.size > 64 ? 64 : key->via.str.size), key->via.str.ptr);
            return rerr(r, err, "tensor %d: field key must be a string, got %s", i, mp_type_name(key));
        }
        if (f[which]) return rerr(r, err, "tensor %d: field \"%s\" appears twice", i, FIELD_NAMES[which]);
        f[which] = &e->via.map.ptr[k].val;
    }
    for (int j = 0; j < F_COUNT; j++)
        if (!f[j]) return rerr(r, err, "tensor %d: missing field \"%s\"", i, FIELD_NAMES[j]);

    /* name first, so every later message can name the tensor */
    const msgpack_object *o = f[F_NAME];
    if (o->type != MSGPACK_OBJECT_STR)
        return rerr(r, err, "tensor %d: field \"name\" must be a string, got %s", i, mp_type_name(o));
    if (o->via.str.size == 0 || o->via.str.size > ART_MAX_NAME)
        return rerr(r, err, "tensor %d: name must be 1..%d bytes (is %" PRIu32 ")", i, ART_MAX_NAME,
                    o->via.str.size);
    if (memchr(o->via.str.ptr, 0, o->via.str.size))
        return rerr(r, err, "tensor %d: name contains a NUL byte", i);
    char *nm = malloc(o->via.str.size + 1);
    if (!nm) return rerr(r, err, "out of memory");
    memcpy(nm, o->via.str.ptr, o->via.str.size);
    nm[o->via.str.size] = '\0';
    t->name = nm;

    o = f[F_DTYPE];
    if (o->type != MSGPACK_OBJECT_STR || art_dtype_parse(o->via.str.ptr, o->via.str.size, &t->dtype) != 0) {
        if (o->type == MSGPACK_OBJECT_STR)
            return rerr(r, err, "tensor %d \"%s\": unknown dtype \"%.*s\" (f32, f16, u8, i32)", i, nm,
                        (int)(o->via.str.size > 32 ? 32 : o->via.str.size), o->via.str.ptr);
        return rerr(r, err, "tensor %d \"%s\": field \"dtype\" must be a string, got %s", i, nm,
                    mp_type_name(o));
    }

    o = f[F_SHAPE];
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return rerr(r, err, "tensor %d \"%s\": field \"shape\" must be an array, got %s", i, nm,
                    mp_type_name(o));
    if (o->via.array.size > ART_MAX_DIMS)
        return rerr(r, err, "tensor %d \"%s\": shape has %" PRIu32 " dimensions (at most %d)", i, nm,
                    o->via.array.size, ART_MAX_DIMS);
    t->ndim = (int)o->via.array.size;
    int any_zero = 0;
    for (int d = 0; d < t->ndim; d++) {
        const msgpack_object *dim = &o->via.array.ptr[d];
        if (dim->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return rerr(r, err, "tensor %d \"%s\": shape[%d] is negative (%" PRId64 ")", i, nm, d,
                        dim->via.i64);
        if (dim->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return rerr(r, err, "tensor %d \"%s\": shape[%d] must be an unsigned integer, got %s", i, nm, d,
                        mp_type_name(dim));
        if (dim->via.u64 > (uint64_t)INT64_MAX)
            return rerr(r, err, "tensor %d \"%s\": shape[%d] = %" PRIu64 " is too large", i, nm, d,
                        dim->via.u64);
        t->shape[d] = (int64_t)dim->via.u64;
        if (t->shape[d] == 0) any_zero = 1;
    }
    size_t esize = art_dtype_size(t->dtype);
    int64_t numel = 1;
    for (int d = 0; d < t->ndim && !any_zero; d++) {
        if (numel > INT64_MAX / t->shape[d])
            return rerr(r, err, "tensor %d \"%s\": shape product overflows", i, nm);
        numel *= t->shape[d];
    }
    if (any_zero) numel = 0;
    if ((uint64_t)numel > (uint64_t)INT64_MAX / esize)
        return rerr(r, err, "tensor %d \"%s\": shape product %" PRId64 " x %zu bytes overflows", i, nm, numel,
                    esize);
    t->numel = numel;

    if (field_u64(r, i, nm, "offset", f[F_OFFSET], UINT64_MAX, &t->offset, err) != 0) return -1;
    if (field_u64(r, i, nm, "stored", f[F_STORED], UINT64_MAX, &t->stored_bytes, err) != 0) return -1;
    if (field_u64(r, i, nm, "raw", f[F_RAW], UINT64_MAX, &t->raw_bytes, err) != 0) return -1;
    uint64_t ck;
    if (field_u64(r, i, nm, "checksum", f[F_CHECKSUM], UINT32_MAX, &ck, err) != 0) return -1;
    t->checksum = (uint32_t)ck;
    uint64_t expect_raw = (uint64_t)numel * esize;
    if (t->raw_bytes != expect_raw)
        return rerr(r, err,
                    "tensor %d \"%s\": field \"raw\" is %" PRIu64
                    " bytes but the shape and dtype %s give %" PRIu64,
                    i, nm, t->raw_bytes, art_dtype_name(t->dtype), expect_raw);

    o = f[F_CODEC];
    if (mp_key_is(o, "raw")) {
        t->codec = ART_CODEC_RAW;
        if (t->stored_bytes != t->raw_bytes)
            return rerr(r, err,
                        "tensor %d \"%s\": codec \"raw\" but stored %" PRIu64 " != raw %" PRIu64 " bytes", i,
                        nm, t->stored_bytes, t->raw_bytes);
    } else if (mp_key_is(o, "lz4")) {
        t->codec = ART_CODEC_LZ4;
        if ((t->raw_bytes == 0) != (t->stored_bytes == 0))
            return rerr(r, err,
                        "tensor %d \"%s\": codec \"lz4\" with stored %" PRIu64 " and raw %" PRIu64 " bytes",
                        i, nm, t->stored_bytes, t->raw_bytes);
    } else if (o->type == MSGPACK_OBJECT_STR) {
        return rerr(r, err, "tensor %d \"%s\": unknown codec \"%.*s\" (raw, lz4)", i, nm,
                    (int)(o->via.str.size > 32 ? 32 : o->via.str.size), o->via.str.ptr);
    } else {
        return rerr(r, err, "tensor %d \"%s\": field \"codec\" must be a string, got %s", i, nm,
                    mp_type_name(o));
    }
    return 0;
}

static int cmp_nameidx(const void *a, const void *b) {
    return strcmp(((const NameIdx *)a)->name, ((const NameIdx *)b)->name);
}

static int all_zero(const uint8_t *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static int parse_file(ArtReader *r, QErr *err) {
    const uint8_t *b = r->buf;
    size_t size = r->size;
    if (size < 8) {
        if (size == 0 || memcmp(b, ART_MAGIC, size) == 0)
            return rerr(r, err, "file is truncated (%zu bytes; the fixed preamble alone is %u)", size,
                        ART_PREAMBLE_BYTES);
        return qerr_setc(err, QERR_CORRUPT, "%s: not a quept artifact (bad magic)", r->name);
    }
    if (memcmp(b, ART_MAGIC, 8) != 0)
        return qerr_setc(err, QERR_CORRUPT, "%s: not a quept artifact (bad magic)", r->name);
    if (size < ART_PREAMBLE_BYTES)
        return rerr(r, err, "file is truncated (%zu bytes; the fixed preamble alone is %u)", size,
                    ART_PREAMBLE_BYTES);
    uint32_t version = get_le32(b + 8), reserved = get_le32(b + 12);
    uint64_t hlen = get_le64(b + 16);
    if (version > ART_FORMAT_VERSION)
        return qerr_setc(err, QERR_CORRUPT,
                         "%s: written by a newer quept (format %" PRIu32 ", this build reads %u)", r->name,
                         version, ART_FORMAT_VERSION);
    if (version != ART_FORMAT_VERSION)
        return qerr_setc(err, QERR_CORRUPT,
                         "%s: unsupported format version %" PRIu32 " (this build reads %u)", r->name, version,
                         ART_FORMAT_VERSION);
    if (reserved != 0) return rerr(r, err, "reserved preamble field is %" PRIu32 ", must be 0", reserved);
    if (hlen > size - ART_PREAMBLE_BYTES)
        return rerr(r, err, "header length %" PRIu64 " runs past the end of the file (%zu bytes): truncated?",
                    hlen, size);
    if (hlen > ART_MAX_HEADER)
        return rerr(r, err, "header length %" PRIu64 " exceeds the limit of %u bytes", hlen,
                    (unsigned)ART_MAX_HEADER);
    if (hlen < TRAILER_LEN + 1) return rerr(r, err, "header length %" PRIu64 " is too short", hlen);
    const uint8_t *h = b + ART_PREAMBLE_BYTES;
    size_t hn = (size_t)hlen;
    const uint8_t *tr = h + hn - TRAILER_LEN;
    if (memcmp(tr, TRAILER_KEY, TRAILER_KEY_LEN) != 0 || tr[TRAILER_KEY_LEN] != 0xce)
        return rerr(r, err,
                    "header does not end with the \"header_checksum\" field (corrupt or truncated header)");
    uint32_t want = (uint32_t)get_be(tr + TRAILER_KEY_LEN + 1, 4);
    uint32_t got = crc32_ieee(0, h, hn - TRAILER_LEN);
    if (want != got)
        return qerr_setc(err, QERR_CORRUPT,
                         "%s: header checksum mismatch (header says %08" PRIx32 ", bytes give %08" PRIx32
                         "): corrupt header",
                         r->name, want, got);

    char why[200];
    size_t used = 0;
    if (mp_scan(h, hn, 1 + ART_MAX_META_DEPTH, &used, why, sizeof why) != 0)
        return rerr(r, err, "header: %s", why);
    if (used != hn) return rerr(r, err, "header: %zu stray bytes after the header map", hn - used);
    msgpack_unpacked_init(&r->unp);
    r->unp_init = 1;
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&r->unp, (const char *)h, hn, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != hn)
        return rerr(r, err, "header is not valid MessagePack (%s)",
                    ur == MSGPACK_UNPACK_NOMEM_ERROR ? "out of memory" : "parse error");
    const msgpack_object *top = &r->unp.data;
    static const char *const TOP_KEYS[4] = {"version", "meta", "tensors", "header_checksum"};
    if (top->type != MSGPACK_OBJECT_MAP || top->via.map.size != 4)
        return rerr(r, err, "header must be a map of 4 fields (version, meta, tensors, header_checksum)");
    for (int k = 0; k < 4; k++)
        if (!mp_key_is(&top->via.map.ptr[k].key, TOP_KEYS[k]))
            return rerr(r, err, "header field %d must be \"%s\"", k, TOP_KEYS[k]);
    const msgpack_object *v = &top->via.map.ptr[0].val;
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != ART_FORMAT_VERSION)
        return rerr(r, err, "header field \"version\" must be %u (as in the preamble)", ART_FORMAT_VERSION);
    r->meta = &top->via.map.ptr[1].val;
    const msgpack_object *tl = &top->via.map.ptr[2].val;
    if (tl->type != MSGPACK_OBJECT_ARRAY)
        return rerr(r, err, "header field \"tensors\" must be an array, got %s", mp_type_name(tl));
    if (tl->via.array.size > (uint32_t)(INT32_MAX / 2))
        return rerr(r, err, "header field \"tensors\" lists too many tensors");
    int n = (int)tl->via.array.size;
    r->t = calloc(n ? (size_t)n : 1, sizeof *r->t);
    r->sorted = calloc(n ? (size_t)n : 1, sizeof *r->sorted);
    if (!r->t || !r->sorted) return rerr(r, err, "out of memory for %d tensor entries", n);
    r->n = n;
    for (int i = 0; i < n; i++)
        if (parse_tensor(r, i, &tl->via.array.ptr[i], err) != 0) return -1;

    /* names unique */
    for (int i = 0; i < n; i++) {
        r->sorted[i].name = r->t[i].name;
        r->sorted[i].idx = i;
    }
    qsort(r->sorted, (size_t)n, sizeof *r->sorted, cmp_nameidx);
    for (int i = 1; i < n; i++)
        if (strcmp(r->sorted[i - 1].name, r->sorted[i].name) == 0)
            return rerr(r, err, "tensor name \"%s\" appears twice (tensors %d and %d)", r->sorted[i].name,
                        r->sorted[i - 1].idx, r->sorted[i].idx);

    /* layout: header padding, then sections packed in order at 8-byte
     * alignment, and nothing after the last one */
    uint64_t hend = ART_PREAMBLE_BYTES + hlen, dstart = align8(hend);
    if (dstart > size)
        return rerr(r, err,
                    "file is truncated: the data section starts at byte %" PRIu64
                    " but the file has %zu bytes",
                    dstart, size);
    if (!all_zero(b + hend, dstart - hend)) return rerr(r, err, "padding after the header is not zero");
    r->data = b + dstart;
    r->data_size = size - dstart;
    uint64_t end = 0;
    for (int i = 0; i < n; i++) {
        const ArtTensorInfo *t = &r->t[i];
        uint64_t want_off = align8(end);
        if (t->offset != want_off)
            return rerr(r, err,
                        "tensor %d \"%s\": offset %" PRIu64 ", expected %" PRIu64
                        " (sections follow each other in header order at 8-byte alignment)",
                        i, t->name, t->offset, want_off);
        if (t->offset > r->data_size || t->stored_bytes > r->data_size - t->offset)
            return rerr(r, err,
                        "tensor %d \"%s\": section [%" PRIu64 ", +%" PRIu64
                        ") runs past the end of the data section (%" PRIu64 " bytes): file truncated?",
                        i, t->name, t->offset, t->stored_bytes, r->data_size);
        if (!all_zero(r->data + end, t->offset - end))
            return rerr(r, err, "tensor %d \"%s\": padding before the section is not zero", i, t->name);
        end = t->offset + t->stored_bytes;
        if (end > UINT64_MAX - 8) return rerr(r, err, "tensor %d \"%s\": section end overflows", i, t->name);
    }
    if (end != r->data_size)
        return rerr(r, err,
                    "%" PRIu64
                    " unexpected bytes after the last section (the file should end at byte %" PRIu64 ")",
                    r->data_size - end, dstart + end);
    return 0;
}

static int open_common(ArtReader *r, QErr *err) {
    if (parse_file(r, err) != 0) return -1;
    return 0;
}

int art_open(ArtReader **out, const char *path, QErr *err) {
    *out = NULL;
    ArtReader *r = calloc(1, sizeof *r);
    if (!r) return qerr_set(err, "%s: out of memory", path);
    snprintf(r->name, sizeof r->name, "%s", path);
    if (mapfile_open(&r->mf, path, err) != 0) {
        free(r);
        return -1;
    }
    r->mapped = 1;
    r->buf = r->mf.data;
    r->size = r->mf.size;
    if (open_common(r, err) != 0) {
        art_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

int art_open_buffer(ArtReader **out, const void *data, size_t size, const char *name, QErr *err) {
    *out = NULL;
    ArtReader *r = calloc(1, sizeof *r);
    if (!r) return qerr_set(err, "%s: out of memory", name);
    snprintf(r->name, sizeof r->name, "%s", name ? name : "(buffer)");
    r->buf = data;
    r->size = data ? size : 0;
    if (open_common(r, err) != 0) {
        art_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

void art_close(ArtReader *r) {
    if (!r) return;
    if (r->t)
        for (int i = 0; i < r->n; i++) free((char *)r->t[i].name);
    free(r->t);
    free(r->sorted);
    if (r->unp_init) msgpack_unpacked_destroy(&r->unp);
    if (r->mapped) mapfile_close(&r->mf);
    free(r);
}

const char *art_name(const ArtReader *r) { return r->name; }
const msgpack_object *art_meta(const ArtReader *r) { return r->meta; }
int art_n_tensors(const ArtReader *r) { return r->n; }

const ArtTensorInfo *art_tensor_info(const ArtReader *r, int i) {
    if (i < 0 || i >= r->n) return NULL;
    return &r->t[i];
}

int art_find(const ArtReader *r, const char *name) {
    if (!name || r->n == 0) return -1;
    NameIdx key = {name, -1};
    const NameIdx *hit = bsearch(&key, r->sorted, (size_t)r->n, sizeof *r->sorted, cmp_nameidx);
    return hit ? hit->idx : -1;
}

const uint8_t *art_stored_ptr(const ArtReader *r, int i) {
    if (i < 0 || i >= r->n) return NULL;
    return r->data + r->t[i].offset;
}

static int check_sum(const ArtReader *r, int i, QErr *err) {
    const ArtTensorInfo *t = &r->t[i];
    uint32_t got = crc32_ieee(0, r->data + t->offset, (size_t)t->stored_bytes);
    if (got != t->checksum)
        return qerr_setc(err, QERR_CORRUPT,
                         "%s: tensor %d \"%s\": checksum mismatch (header says %08" PRIx32
                         ", stored bytes give %08" PRIx32 "): corrupt data",
                         r->name, i, t->name, t->checksum, got);
    return 0;
}

int art_read(const ArtReader *r, int i, void *dst, size_t dst_bytes, QErr *err) {
    if (i < 0 || i >= r->n) return rerr(r, err, "no tensor %d (the file has %d)", i, r->n);
    const ArtTensorInfo *t = &r->t[i];
    if ((uint64_t)dst_bytes != t->raw_bytes)
        return rerr(r, err, "tensor %d \"%s\": destination holds %zu bytes, the tensor has %" PRIu64, i,
                    t->name, dst_bytes, t->raw_bytes);
    if (!dst && dst_bytes) return rerr(r, err, "tensor %d \"%s\": no destination buffer", i, t->name);
    if (check_sum(r, i, err) != 0) return -1;
    uint8_t dummy;
    if (decode_impl(r->data + t->offset, t->stored_bytes, t->codec, dst ? dst : &dummy, t->raw_bytes, NULL,
                    NULL, err) != 0)
        return qerr_wrap(err, "%s: tensor %d \"%s\"", r->name, i, t->name);
    return 0;
}

const void *art_view(const ArtReader *r, int i, QErr *err) {
    if (i < 0 || i >= r->n) {
        rerr(r, err, "no tensor %d (the file has %d)", i, r->n);
        return NULL;
    }
    const ArtTensorInfo *t = &r->t[i];
    if (t->codec != ART_CODEC_RAW) {
        rerr(r, err, "tensor %d \"%s\": stored with codec %s, cannot be viewed in place", i, t->name,
             art_codec_name(t->codec));
        return NULL;
    }
    if (check_sum(r, i, err) != 0) return NULL;
    return r->data + t->offset;
}

/* One section: checksum, then a full decode into scratch (grown as needed). */
static int verify_one(const ArtReader *r, int i, uint8_t **scratch, size_t *cap, QErr *err) {
    const ArtTensorInfo *t = &r->t[i];
    if (check_sum(r, i, err) != 0) return -1;
    if (decode_impl(r->data + t->offset, t->stored_bytes, t->codec, NULL, t->raw_bytes, scratch, cap, err) !=
        0)
        return qerr_wrap(err, "%s: tensor %d \"%s\"", r->name, i, t->name);
    return 0;
}

int art_verify_all(const ArtReader *r, QErr *err) {
    uint8_t *scratch = NULL;
    size_t cap = 0;
    int rc = 0;
    for (int i = 0; i < r->n && rc == 0; i++) rc = verify_one(r, i, &scratch, &cap, err);
    free(scratch);
    return rc;
}

int art_verify_section(const ArtReader *r, int i, QErr *err) {
    if (i < 0 || i >= r->n) return qerr_set(err, "%s: no tensor %d", r->name, i);
    uint8_t *scratch = NULL;
    size_t cap = 0;
    int rc = verify_one(r, i, &scratch, &cap, err);
    free(scratch);
    return rc;
}
