/* safetensors.c — see safetensors.h. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/bf16.h"
#include "../base/bytebuf.h"

/* ------------------------------------------------------------------------ */
/* dtypes                                                                    */

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [ST_F64] = {"F64", 8}, [ST_F32] = {"F32", 4},   [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4},   [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtype_info / sizeof dtype_info[0]))

const char *st_dtype_name(StDtype dt) {
    if ((int)dt < 0 || (int)dt >= N_DTYPES) return "?";
    return dtype_info[dt].name;
}

size_t st_dtype_size(StDtype dt) {
    if ((int)dt < 0 || (int)dt >= N_DTYPES) return 0;
    return dtype_info[dt].size;
}

int st_dtype_parse(const char *s, StDtype *out) {
    for (int i = 0; i < N_DTYPES; i++) {
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* little helpers                                                            */

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void st_format_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    if (n == 0) return;
    size_t len = 0;
    buf[0] = '\0';
#define APPEND(...)                                             \
    do {                                                        \
        if (len < n) {                                          \
            int w_ = snprintf(buf + len, n - len, __VA_ARGS__); \
            if (w_ > 0) len += (size_t)w_;                      \
        }                                                       \
    } while (0)
    APPEND("[");
    for (int i = 0; i < ndim; i++) APPEND("%s%lld", i ? ", " : "", (long long)shape[i]);
    APPEND("]");
#undef APPEND
}

size_t st_numel(const StTensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

/* numel of a shape with overflow detection (limit 2^62). */
static int shape_numel(int ndim, const int64_t *shape, uint64_t *out) {
    uint64_t n = 1;
    const uint64_t lim = (uint64_t)1 << 62;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && n > lim / d) return -1;
        n *= d;
    }
    *out = n;
    return 0;
}

static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* ------------------------------------------------------------------------ */
/* reader                                                                    */

static void st_free_parts(SafeTensors *st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    st->tensors = NULL;
    st->n_tensors = 0;
    st->meta_keys = st->meta_values = NULL;
    st->n_meta = 0;
}

void st_close(SafeTensors *st) {
    if (!st) return;
    st_free_parts(st);
    mapfile_close(&st->mf);
    st->data = NULL;
    st->data_size = 0;
}

const char *st_path(const SafeTensors *st) { return st->mf.path; }

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

static int cmp_tensor_range(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Reads a JSON number that must be an integer in [0, 2^53]. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0 || d > 9007199254740992.0 || floor(d) != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_metadata(SafeTensors *st, const cJSON *meta, QErr *err) {
    const char *path = st->mf.path;
    if (!cJSON_IsObject(meta))
        return qerr_set(err, "%s: safetensors header: \"__metadata__\" must be an object of strings", path);
    int n = cJSON_GetArraySize(meta);
    if (n == 0) return 0;
    st->meta_keys = calloc((size_t)n, sizeof *st->meta_keys);
    st->meta_values = calloc((size_t)n, sizeof *st->meta_values);
    if (!st->meta_keys || !st->meta_values) return qerr_set(err, "%s: out of memory", path);
    const cJSON *it;
    cJSON_ArrayForEach(it, meta) {
        if (!cJSON_IsString(it))
            return qerr_set(err, "%s: safetensors header: \"__metadata__\" value of '%s' must be a string",
                            path, it->string ? it->string : "?");
        char *k = xstrdup(it->string ? it->string : "");
        char *v = xstrdup(it->valuestring);
        if (!k || !v) {
            free(k);
            free(v);
            return qerr_set(err, "%s: out of memory", path);
        }
        st->meta_keys[st->n_meta] = k;
        st->meta_values[st->n_meta] = v;
        st->n_meta++;
    }
    /* sort by key (insertion sort: metadata is small) */
    for (int i = 1; i < st->n_meta; i++) {
        char *k = st->meta_keys[i], *v = st->meta_values[i];
        int j = i - 1;
        while (j >= 0 && strcmp(st->meta_keys[j], k) > 0) {
            st->meta_keys[j + 1] = st->meta_keys[j];
            st->meta_values[j + 1] = st->meta_values[j];
            j--;
        }
        st->meta_keys[j + 1] = k;
        st->meta_values[j + 1] = v;
    }
    for (int i = 1; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i - 1], st->meta_keys[i]) == 0)
            return qerr_set(err, "%s: safetensors header: duplicate \"__metadata__\" key '%s'", path,
                            st->meta_keys[i]);
    return 0;
}

static int parse_entry(SafeTensors *st, const cJSON *ent, StTensor *t, QErr *err) {
    const char *path = st->mf.path;
    const char *name = t->name;
    if (!cJSON_IsObject(ent))
        return qerr_set(err, "%s: tensor '%s': header entry must be an object", path, name);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(ent, "dtype");
    if (!cJSON_IsString(dt))
        return qerr_set(err, "%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    if (st_dtype_parse(dt->valuestring, &t->dtype) != 0)
        return qerr_set(
            err, "%s: tensor '%s': unknown dtype '%s' (known: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)", path,
            name, dt->valuestring);

    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(ent, "shape");
    if (!cJSON_IsArray(sh))
        return qerr_set(err, "%s: tensor '%s': missing or non-array \"shape\"", path, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return qerr_set(err, "%s: tensor '%s': shape has %d dimensions, at most %d supported", path, name, nd,
                        ST_MAX_DIMS);
    t->ndim = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        if (json_uint(d, &v) != 0 || v > (uint64_t)INT64_MAX)
            return qerr_set(err, "%s: tensor '%s': shape[%d] must be a non-negative integer", path, name,
                            t->ndim);
        t->shape[t->ndim++] = (int64_t)v;
    }

    const cJSON *off = cJSON_GetObjectItemCaseSensitive(ent, "data_offsets");
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return qerr_set(err, "%s: tensor '%s': \"data_offsets\" must be an array [begin, end]", path, name);
    uint64_t b, e;
    if (json_uint(cJSON_GetArrayItem(off, 0), &b) != 0 || json_uint(cJSON_GetArrayItem(off, 1), &e) != 0)
        return qerr_set(err, "%s: tensor '%s': \"data_offsets\" must be non-negative integers", path, name);
    if (b > e)
        return qerr_set(err, "%s: tensor '%s': data_offsets [%llu, %llu] has begin > end", path, name,
                        (unsigned long long)b, (unsigned long long)e);
    if (e > (uint64_t)st->data_size)
        return qerr_set(
            err, "%s: tensor '%s': data_offsets [%llu, %llu] out of range: the data section has %zu bytes",
            path, name, (unsigned long long)b, (unsigned long long)e, st->data_size);
    uint64_t numel;
    char shs[160];
    st_format_shape(shs, sizeof shs, t->ndim, t->shape);
    if (shape_numel(t->ndim, t->shape, &numel) != 0 ||
        numel > (((uint64_t)1 << 62) / st_dtype_size(t->dtype)))
        return qerr_set(err, "%s: tensor '%s': shape %s is too large", path, name, shs);
    uint64_t want = numel * st_dtype_size(t->dtype);
    if (e - b != want)
        return qerr_set(
            err, "%s: tensor '%s': data_offsets [%llu, %llu] span %llu bytes, but shape %s of %s needs %llu",
            path, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)(e - b), shs,
            st_dtype_name(t->dtype), (unsigned long long)want);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    return 0;
}

static int parse_header(SafeTensors *st, const char *json, size_t n, QErr *err) {
    const char *path = st->mf.path;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, n, &end, 0);
    if (!root) {
        /* cJSON sets end to the error position (cJSON_GetErrorPtr is a global) */
        size_t at = (end && end >= json && end <= json + n) ? (size_t)(end - json) : 0;
        return qerr_set(err, "%s: safetensors header is not valid JSON (error near byte %zu of %zu)", path,
                        at, n);
    }
    /* only whitespace may follow the object (the padding) */
    for (const char *p = end ? end : json + n; p < json + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return qerr_set(
                err,
                "%s: safetensors header is not valid JSON: unexpected byte 0x%02x at %zu after the object",
                path, (unsigned)(unsigned char)*p, (size_t)(p - json));
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qerr_set(err, "%s: safetensors header must be a JSON object", path);
    }

    int n_items = cJSON_GetArraySize(root);
    st->tensors = calloc(n_items > 0 ? (size_t)n_items : 1, sizeof *st->tensors);
    if (!st->tensors) {
        cJSON_Delete(root);
        return qerr_set(err, "%s: out of memory", path);
    }
    int n_meta_seen = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        const char *name = it->string ? it->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            if (n_meta_seen++) {
                cJSON_Delete(root);
                return qerr_set(err, "%s: safetensors header: duplicate \"__metadata__\"", path);
            }
            if (parse_metadata(st, it, err) != 0) {
                cJSON_Delete(root);
                return -1;
            }
            continue;
        }
        StTensor *t = &st->tensors[st->n_tensors];
        memset(t, 0, sizeof *t);
        t->name = xstrdup(name);
        if (!t->name) {
            cJSON_Delete(root);
            return qerr_set(err, "%s: out of memory", path);
        }
        st->n_tensors++;
        if (parse_entry(st, it, t, err) != 0) {
            cJSON_Delete(root);
            return -1;
        }
    }
    cJSON_Delete(root);

    if (st->n_tensors > 1) qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_tensor_name);
    for (int i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return qerr_set(err, "%s: safetensors header: duplicate tensor '%s'", path, st->tensors[i].name);

    /* no two tensors may share bytes (empty tensors occupy none) */
    if (st->n_tensors > 1) {
        const StTensor **by = malloc((size_t)st->n_tensors * sizeof *by);
        if (!by) return qerr_set(err, "%s: out of memory", path);
        int m = 0;
        for (int i = 0; i < st->n_tensors; i++)
            if (st->tensors[i].end > st->tensors[i].begin) by[m++] = &st->tensors[i];
        if (m > 1) qsort(by, (size_t)m, sizeof *by, cmp_tensor_range);
        for (int i = 1; i < m; i++) {
            if (by[i]->begin < by[i - 1]->end) {
                qerr_set(err, "%s: tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap in the data section",
                         path, by[i - 1]->name, by[i - 1]->begin, by[i - 1]->end, by[i]->name, by[i]->begin,
                         by[i]->end);
                free(by);
                return -1;
            }
        }
        free(by);
    }
    return 0;
}

int st_open(SafeTensors *st, const char *path, QErr *err) {
    memset(st, 0, sizeof *st);
    if (mapfile_open(&st->mf, path, err) != 0) return -1;
    const char *p = st->mf.path;
    if (st->mf.size < 8) {
        qerr_set(err, "%s: truncated safetensors file: %zu bytes, need at least 8 for the header length", p,
                 st->mf.size);
        st_close(st);
        return -1;
    }
    uint64_t n = read_le64(st->mf.data);
    if (n > (uint64_t)(st->mf.size - 8)) {
        qerr_set(err,
                 "%s: safetensors header length %llu exceeds the file size (%zu bytes after the 8-byte "
                 "length; truncated or not a safetensors file)",
                 p, (unsigned long long)n, st->mf.size - 8);
        st_close(st);
        return -1;
    }
    if (n > ST_MAX_HEADER) {
        qerr_set(err, "%s: safetensors header length %llu is larger than the %u-byte limit", p,
                 (unsigned long long)n, ST_MAX_HEADER);
        st_close(st);
        return -1;
    }
    if (n < 2 || st->mf.data[8] != '{') {
        qerr_set(err, "%s: safetensors header (%llu bytes) does not start with '{'", p,
                 (unsigned long long)n);
        st_close(st);
        return -1;
    }
    st->data = st->mf.data + 8 + n;
    st->data_size = st->mf.size - 8 - (size_t)n;
    /* parse from a NUL-terminated copy: the mapping is not terminated */
    char *json = malloc((size_t)n + 1);
    if (!json) {
        qerr_set(err, "%s: out of memory for a %llu-byte header", p, (unsigned long long)n);
        st_close(st);
        return -1;
    }
    memcpy(json, st->mf.data + 8, (size_t)n);
    json[n] = '\0';
    int rc = parse_header(st, json, (size_t)n, err);
    free(json);
    if (rc != 0) {
        st_close(st);
        return -1;
    }
    return 0;
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const char *st_metadata_get(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

int st_check_shape(const SafeTensors *st, const StTensor *t, int ndim, const int64_t *shape, QErr *err) {
    int ok = (t->ndim == ndim);
    for (int i = 0; ok && i < ndim; i++) ok = (t->shape[i] == shape[i]);
    if (ok) return 0;
    char want[160], got[160];
    st_format_shape(want, sizeof want, ndim, shape);
    st_format_shape(got, sizeof got, t->ndim, t->shape);
    return qerr_set(err, "%s: tensor '%s': expected shape %s, found %s", st->mf.path, t->name, want, got);
}

static int host_is_le(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

int st_read_f32(const SafeTensors *st, const StTensor *t, float *out, size_t expected_numel, QErr *err) {
    size_t numel = st_numel(t);
    if (numel != expected_numel) {
        char got[160];
        st_format_shape(got, sizeof got, t->ndim, t->shape);
        return qerr_set(err, "%s: tensor '%s': expected %zu elements, found %zu (shape %s)", st->mf.path,
                        t->name, expected_numel, numel, got);
    }
    /* parse_entry guarantees end - begin == numel * size and end <= data_size */
    const uint8_t *src = st->data + t->begin;
    switch (t->dtype) {
    case ST_F32:
        if (host_is_le()) {
            if (numel) memcpy(out, src, numel * 4);
        } else {
            for (size_t i = 0; i < numel; i++) {
                const uint8_t *q = src + 4 * i;
                out[i] = bits_f32((uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                                  (uint32_t)q[3] << 24);
            }
        }
        return 0;
    case ST_F16:
        for (size_t i = 0; i < numel; i++)
            out[i] = f16_to_float((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        return 0;
    case ST_BF16:
        for (size_t i = 0; i < numel; i++)
            out[i] = bf16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        return 0;
    case ST_F64:
        for (size_t i = 0; i < numel; i++) {
            uint64_t u = 0;
            for (int k = 7; k >= 0; k--) u = (u << 8) | src[8 * i + (size_t)k];
            double d;
            memcpy(&d, &u, 8);
            if (isfinite(d) && fabs(d) > FLT_MAX) /* out of float range: round as IEEE does */
                out[i] = (float)copysign(fabs(d) >= 3.4028235677973366e38 ? (double)INFINITY : FLT_MAX, d);
            else
                out[i] = (float)d;
        }
        return 0;
    default:
        return qerr_set(
            err,
            "%s: tensor '%s': dtype %s cannot be read as floating point (expected F32, F16, BF16 or F64)",
            st->mf.path, t->name, st_dtype_name(t->dtype));
    }
}

/* ------------------------------------------------------------------------ */
/* writer                                                                    */

void st_writer_init(StWriter *w) { memset(w, 0, sizeof *w); }

void st_writer_free(StWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->entries[i].name);
        free(w->entries[i].owned);
    }
    free(w->entries);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->meta_keys);
    free(w->meta_values);
    memset(w, 0, sizeof *w);
}

static int writer_add_common(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                             QErr *err, StWriterEntry **out) {
    if (!name || !*name) return qerr_set(err, "safetensors writer: empty tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return qerr_set(err, "safetensors writer: '__metadata__' is not a valid tensor name");
    if (st_dtype_size(dtype) == 0)
        return qerr_set(err, "safetensors writer: tensor '%s': invalid dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > ST_MAX_DIMS)
        return qerr_set(err, "safetensors writer: tensor '%s': %d dimensions (0..%d supported)", name, ndim,
                        ST_MAX_DIMS);
    uint64_t numel;
    if (shape_numel(ndim, shape, &numel) != 0 || numel > (((uint64_t)1 << 62) / st_dtype_size(dtype)))
        return qerr_set(err, "safetensors writer: tensor '%s': invalid or too large shape", name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return qerr_set(err, "safetensors writer: duplicate tensor '%s'", name);
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 16;
        StWriterEntry *ne = realloc(w->entries, (size_t)nc * sizeof *ne);
        if (!ne) return qerr_set(err, "safetensors writer: out of memory");
        w->entries = ne;
        w->cap = nc;
    }
    StWriterEntry *e = &w->entries[w->n];
    memset(e, 0, sizeof *e);
    e->name = xstrdup(name);
    if (!e->name) return qerr_set(err, "safetensors writer: out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = (size_t)(numel * st_dtype_size(dtype));
    w->n++;
    *out = e;
    return 0;
}

int st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                  const void *bytes, size_t nbytes, QErr *err) {
    StWriterEntry *e = NULL;
    if (writer_add_common(w, name, dtype, ndim, shape, err, &e) != 0) return -1;
    if (e->nbytes != nbytes || (nbytes && !bytes)) {
        size_t want = e->nbytes;
        free(e->name);
        w->n--;
        return qerr_set(err, "safetensors writer: tensor '%s': %zu bytes given, shape and dtype %s need %zu",
                        name, nbytes, st_dtype_name(dtype), want);
    }
    e->bytes = bytes;
    return 0;
}

int st_writer_add_f32(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                      const float *src, QErr *err) {
    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16)
        return qerr_set(
            err, "safetensors writer: tensor '%s': fp32 data can be stored as F32, F16 or BF16, not %s",
            name ? name : "?", st_dtype_name(dtype));
    StWriterEntry *e = NULL;
    if (writer_add_common(w, name, dtype, ndim, shape, err, &e) != 0) return -1;
    if (e->nbytes && !src) {
        free(e->name);
        w->n--;
        return qerr_set(err, "safetensors writer: tensor '%s': NULL data", name);
    }
    e->f32 = src;
    return 0;
}

int st_writer_add_f32_owned(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                            float *src, QErr *err) {
    if (st_writer_add_f32(w, name, dtype, ndim, shape, src, err) != 0) {
        free(src);
        return -1;
    }
    w->entries[w->n - 1].owned = src;
    return 0;
}

int st_writer_set_metadata(StWriter *w, const char *key, const char *value, QErr *err) {
    for (int i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta_keys[i], key) == 0) {
            char *v = xstrdup(value);
            if (!v) return qerr_set(err, "safetensors writer: out of memory");
            free(w->meta_values[i]);
            w->meta_values[i] = v;
            return 0;
        }
    }
    char **nk = realloc(w->meta_keys, (size_t)(w->n_meta + 1) * sizeof *nk);
    if (!nk) return qerr_set(err, "safetensors writer: out of memory");
    w->meta_keys = nk;
    char **nv = realloc(w->meta_values, (size_t)(w->n_meta + 1) * sizeof *nv);
    if (!nv) return qerr_set(err, "safetensors writer: out of memory");
    w->meta_values = nv;
    char *k = xstrdup(key), *v = xstrdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return qerr_set(err, "safetensors writer: out of memory");
    }
    w->meta_keys[w->n_meta] = k;
    w->meta_values[w->n_meta] = v;
    w->n_meta++;
    return 0;
}

/* The JSON header, appended to a ByteBuf (out of memory checked once at the end). */
static void put_str(ByteBuf *b, const char *s) { bytebuf_append(b, s, strlen(s)); }

static void put_json_string(ByteBuf *b, const char *s) {
    bytebuf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            bytebuf_append(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)*p);
            bytebuf_append(b, esc, 6);
        } else {
            bytebuf_append(b, (const char *)p, 1);
        }
    }
    bytebuf_append(b, "\"", 1);
}

static int cmp_entry_ptr_name(const void *a, const void *b) {
    return strcmp((*(const StWriterEntry *const *)a)->name, (*(const StWriterEntry *const *)b)->name);
}

/* Writes one entry's bytes, converting fp32 sources in chunks. */
static int write_entry_data(AtomicFile *af, const StWriterEntry *e, QErr *err) {
    if (e->nbytes == 0) return 0;
    if (e->bytes) return atomic_write(af, e->bytes, e->nbytes, err);
    size_t numel = e->nbytes / st_dtype_size(e->dtype);
    if (e->dtype == ST_F32 && host_is_le()) return atomic_write(af, e->f32, e->nbytes, err);
    enum { CHUNK = 8192 };
    uint8_t buf[CHUNK * 4];
    for (size_t i0 = 0; i0 < numel; i0 += CHUNK) {
        size_t n = numel - i0 < CHUNK ? numel - i0 : CHUNK;
        size_t nb = 0;
        for (size_t i = 0; i < n; i++) {
            float f = e->f32[i0 + i];
            if (e->dtype == ST_F32) {
                uint32_t u = f32_bits(f);
                for (int k = 0; k < 4; k++) buf[nb++] = (uint8_t)(u >> (8 * k));
            } else {
                uint16_t h = e->dtype == ST_F16 ? float_to_f16(f) : bf16_from_f32(f);
                buf[nb++] = (uint8_t)(h & 0xff);
                buf[nb++] = (uint8_t)(h >> 8);
            }
        }
        if (atomic_write(af, buf, nb, err) != 0) return -1;
    }
    return 0;
}

int st_writer_write(StWriter *w, const char *path, QErr *err) {
    const StWriterEntry **order = malloc((size_t)(w->n > 0 ? w->n : 1) * sizeof *order);
    if (!order) return qerr_set(err, "%s: out of memory", path);
    for (int i = 0; i < w->n; i++) order[i] = &w->entries[i];
    if (w->n > 1) qsort(order, (size_t)w->n, sizeof *order, cmp_entry_ptr_name);

    ByteBuf hb = {0};
    char num[64];
    put_str(&hb, "{");
    int first = 1;
    if (w->n_meta > 0) {
        put_str(&hb, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) put_str(&hb, ",");
            put_json_string(&hb, w->meta_keys[i]);
            put_str(&hb, ":");
            put_json_string(&hb, w->meta_values[i]);
        }
        put_str(&hb, "}");
        first = 0;
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const StWriterEntry *e = order[i];
        if (!first) put_str(&hb, ",");
        first = 0;
        put_json_string(&hb, e->name);
        put_str(&hb, ":{\"dtype\":\"");
        put_str(&hb, st_dtype_name(e->dtype));
        put_str(&hb, "\",\"shape\":[");
        for (int k = 0; k < e->ndim; k++) {
            snprintf(num, sizeof num, "%s%lld", k ? "," : "", (long long)e->shape[k]);
            put_str(&hb, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + e->nbytes);
        put_str(&hb, num);
        off += e->nbytes;
    }
    put_str(&hb, "}");
    while (!hb.oom && hb.len % 8 != 0) put_str(&hb, " ");
    if (hb.oom) {
        bytebuf_free(&hb);
        free(order);
        return qerr_set(err, "%s: out of memory building the safetensors header", path);
    }
    if (hb.len > ST_MAX_HEADER) {
        bytebuf_free(&hb);
        free(order);
        return qerr_set(err, "%s: safetensors header would be %zu bytes (limit %u)", path, hb.len,
                        ST_MAX_HEADER);
    }

    uint8_t lenbuf[8];
    for (int k = 0; k < 8; k++) lenbuf[k] = (uint8_t)((uint64_t)hb.len >> (8 * k));
    AtomicFile *af = atomic_open(path, err);
    if (!af) {
        bytebuf_free(&hb);
        free(order);
        return -1;
    }
    int rc = atomic_write(af, lenbuf, 8, err);
    if (rc == 0) rc = atomic_write(af, hb.data, hb.len, err);
    for (int i = 0; rc == 0 && i < w->n; i++) rc = write_entry_data(af, order[i], err);
    bytebuf_free(&hb);
    free(order);
    if (rc != 0) {
        atomic_abort(af);
        return qerr_wrap(err, "%s: writing safetensors", path);
    }
    return atomic_commit(af, err);
}
