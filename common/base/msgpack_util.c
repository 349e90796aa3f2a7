/* msgpack_util.c — see msgpack_util.h. */
#include "msgpack_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static uint64_t get_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* A structural MessagePack scanner. It checks, without allocating, that    */
/* p[0..n) starts with one complete object: every length inside the buffer, */
/* every container count at most the bytes left (each element takes at      */
/* least one byte, which bounds what msgpack-c will allocate) and at most   */
/* max_depth containers nested (msgpack-c's own limit is 32).               */

#define SCAN_MAX_DEPTH 32

int mp_scan(const uint8_t *p, size_t n, int max_depth, size_t *used, char *why, size_t whylen) {
    uint64_t left[SCAN_MAX_DEPTH + 1]; /* items still to read at each level */
    int depth = 0;
    size_t pos = 0;
    if (max_depth > SCAN_MAX_DEPTH) max_depth = SCAN_MAX_DEPTH;
    left[0] = 1;
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        if (pos >= n) goto truncated;
        size_t at = pos;
        uint8_t b = p[pos++];
        uint64_t len = 0, count = 0;
        int is_container = 0, lenbytes = 0;
        size_t fixed = 0; /* payload bytes after the type byte (and length) */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            fixed = 0;
        } else if (b >= 0x80 && b <= 0x8f) {
            is_container = 1;
            count = 2 * (uint64_t)(b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            is_container = 1;
            count = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            len = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4:
            case 0xd9: lenbytes = 1; break; /* bin8, str8 */
            case 0xc5:
            case 0xda: lenbytes = 2; break; /* bin16, str16 */
            case 0xc6:
            case 0xdb: lenbytes = 4; break; /* bin32, str32 */
            case 0xc7:
                lenbytes = 1;
                fixed = 1;
                break; /* ext8 (+type) */
            case 0xc8:
                lenbytes = 2;
                fixed = 1;
                break; /* ext16 */
            case 0xc9:
                lenbytes = 4;
                fixed = 1;
                break;                   /* ext32 */
            case 0xca: fixed = 4; break; /* float32 */
            case 0xcb: fixed = 8; break; /* float64 */
            case 0xcc:
            case 0xd0: fixed = 1; break;
            case 0xcd:
            case 0xd1: fixed = 2; break;
            case 0xce:
            case 0xd2: fixed = 4; break;
            case 0xcf:
            case 0xd3: fixed = 8; break;
            case 0xd4: fixed = 2; break; /* fixext1..16 */
            case 0xd5: fixed = 3; break;
            case 0xd6: fixed = 5; break;
            case 0xd7: fixed = 9; break;
            case 0xd8: fixed = 17; break;
            case 0xdc:
                is_container = 1;
                lenbytes = 2;
                break; /* array16 */
            case 0xdd:
                is_container = 1;
                lenbytes = 4;
                break; /* array32 */
            case 0xde:
                is_container = 2;
                lenbytes = 2;
                break; /* map16 */
            case 0xdf:
                is_container = 2;
                lenbytes = 4;
                break; /* map32 */
            default:
                snprintf(why, whylen, "invalid MessagePack type byte 0x%02x at byte %zu", b, at);
                return -1;
            }
        }
        if (lenbytes) {
            if (n - pos < (size_t)lenbytes) goto truncated;
            uint64_t v = get_be(p + pos, lenbytes);
            pos += (size_t)lenbytes;
            if (is_container == 1)
                count = v;
            else if (is_container == 2)
                count = 2 * v;
            else
                len = v;
        }
        if (is_container) {
            if (depth + 1 > max_depth) {
                snprintf(why, whylen, "containers nested deeper than %d at byte %zu", max_depth, at);
                return -1;
            }
            if (count > n - pos) {
                snprintf(why, whylen,
                         "container at byte %zu claims %" PRIu64 " elements, more than the %zu bytes left",
                         at, count, n - pos);
                return -1;
            }
            if (count > 0) left[++depth] = count;
            continue;
        }
        if (n - pos < fixed || n - pos - fixed < len) goto truncated;
        pos += fixed + (size_t)len;
    }
    *used = pos;
    return 0;
truncated:
    snprintf(why, whylen, "MessagePack data ends in the middle of an object (%zu bytes)", n);
    return -1;
}

/* ---- packing ---- */

int mp_pack_str(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    if (msgpack_pack_str(pk, n) != 0) return -1;
    return msgpack_pack_str_body(pk, s, n);
}

void mp_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v) {
    mp_pack_str(pk, k);
    msgpack_pack_int64(pk, v);
}

void mp_pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v) {
    mp_pack_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

void mp_pack_kv_double(msgpack_packer *pk, const char *k, double v) {
    mp_pack_str(pk, k);
    msgpack_pack_double(pk, v);
}

void mp_pack_kv_str(msgpack_packer *pk, const char *k, const char *v) {
    mp_pack_str(pk, k);
    mp_pack_str(pk, v);
}

void mp_pack_kv_doubles(msgpack_packer *pk, const char *k, const double *v, int n) {
    mp_pack_str(pk, k);
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) msgpack_pack_double(pk, v[i]);
}

/* ---- reading ---- */

int mp_key_is(const msgpack_object *k, const char *s) {
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, s, n) == 0;
}

const char *mp_type_name(const msgpack_object *o) {
    if (!o) return "nothing";
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "unsigned integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "negative integer";
    case MSGPACK_OBJECT_FLOAT32: return "float32";
    case MSGPACK_OBJECT_FLOAT64: return "float64";
    case MSGPACK_OBJECT_STR: return "string";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "binary";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "unknown";
}

const msgpack_object *mp_map_get(const msgpack_object *map, const char *key) {
    if (!map || map->type != MSGPACK_OBJECT_MAP || !key) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (mp_key_is(&map->via.map.ptr[i].key, key)) return &map->via.map.ptr[i].val;
    return NULL;
}

int mp_obj_int(const msgpack_object *o, const char *what, int64_t *out, QErr *err) {
    if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return qerr_set(err, "%s: %" PRIu64 " is out of the integer range", what, o->via.u64);
        *out = (int64_t)o->via.u64;
        return 0;
    }
    return qerr_set(err, "%s: expected an integer, got %s", what, mp_type_name(o));
}

int mp_obj_float(const msgpack_object *o, const char *what, double *out, QErr *err) {
    if (o && (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)) {
        *out = o->via.f64;
        return 0;
    }
    if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = (double)o->via.i64;
        return 0;
    }
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = (double)o->via.u64;
        return 0;
    }
    return qerr_set(err, "%s: expected a number, got %s", what, mp_type_name(o));
}

int mp_obj_bool(const msgpack_object *o, const char *what, int *out, QErr *err) {
    if (o && o->type == MSGPACK_OBJECT_BOOLEAN) {
        *out = o->via.boolean ? 1 : 0;
        return 0;
    }
    return qerr_set(err, "%s: expected a boolean, got %s", what, mp_type_name(o));
}

int mp_obj_str(const msgpack_object *o, const char *what, char *buf, size_t bufsize, QErr *err) {
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return qerr_set(err, "%s: expected a string, got %s", what, mp_type_name(o));
    size_t n = o->via.str.size;
    if (n >= bufsize)
        return qerr_set(err, "%s: string of %zu bytes is too long (at most %zu)", what, n,
                        bufsize ? bufsize - 1 : 0);
    if (n && memchr(o->via.str.ptr, 0, n)) return qerr_set(err, "%s: string contains a NUL byte", what);
    if (n) memcpy(buf, o->via.str.ptr, n);
    buf[n] = '\0';
    return 0;
}

/* Looks key up; on a miss fills err. what gets "key \"<key>\"". */
static const msgpack_object *meta_lookup(const msgpack_object *map, const char *key, char *what, size_t wn,
                                         QErr *err) {
    snprintf(what, wn, "key \"%s\"", key);
    if (!map || map->type != MSGPACK_OBJECT_MAP) {
        qerr_set(err, "%s: looked up in %s, not a map", what, mp_type_name(map));
        return NULL;
    }
    const msgpack_object *o = mp_map_get(map, key);
    if (!o) qerr_set(err, "%s: missing", what);
    return o;
}

#define MAP_GETTER(fn, objfn, T)                                                 \
    int fn(const msgpack_object *map, const char *key, T *out, QErr *err) {      \
        char what[200];                                                          \
        const msgpack_object *o = meta_lookup(map, key, what, sizeof what, err); \
        if (!o) return -1;                                                       \
        return objfn(o, what, out, err);                                         \
    }
MAP_GETTER(mp_map_int, mp_obj_int, int64_t)
MAP_GETTER(mp_map_float, mp_obj_float, double)
MAP_GETTER(mp_map_bool, mp_obj_bool, int)

int mp_map_str(const msgpack_object *map, const char *key, char *buf, size_t bufsize, QErr *err) {
    char what[200];
    const msgpack_object *o = meta_lookup(map, key, what, sizeof what, err);
    if (!o) return -1;
    return mp_obj_str(o, what, buf, bufsize, err);
}

static int meta_typed(const msgpack_object *map, const char *key, msgpack_object_type ty, const char *tyname,
                      const msgpack_object **out, QErr *err) {
    char what[200];
    *out = NULL;
    const msgpack_object *o = meta_lookup(map, key, what, sizeof what, err);
    if (!o) return -1;
    if (o->type != ty) return qerr_set(err, "%s: expected %s, got %s", what, tyname, mp_type_name(o));
    *out = o;
    return 0;
}

int mp_map_doubles(const msgpack_object *map, const char *key, double *out, int n, QErr *err) {
    const msgpack_object *a;
    if (mp_map_array(map, key, &a, err) != 0) return -1;
    if ((int)a->via.array.size != n)
        return qerr_set(err, "key \"%s\": expected %d numbers, got %u", key, n, a->via.array.size);
    for (int i = 0; i < n; i++)
        if (mp_obj_float(&a->via.array.ptr[i], key, &out[i], err) != 0) return -1;
    return 0;
}

int mp_map_array(const msgpack_object *map, const char *key, const msgpack_object **out, QErr *err) {
    return meta_typed(map, key, MSGPACK_OBJECT_ARRAY, "an array", out, err);
}

int mp_map_map(const msgpack_object *map, const char *key, const msgpack_object **out, QErr *err) {
    return meta_typed(map, key, MSGPACK_OBJECT_MAP, "a map", out, err);
}
