/* msgpack_util.h — MessagePack helpers shared by the artifact, the wire
 * protocol and the checkpoint journal: a structural check for untrusted
 * bytes, map entries in one call, and typed access to maps with string keys
 * whose errors name the key. */
#ifndef QUEPT_MSGPACK_UTIL_H
#define QUEPT_MSGPACK_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "err.h"

/* Packs a NUL-terminated string (a convenience for metadata keys/values). */
int mp_pack_str(msgpack_packer *pk, const char *s);
/* A map entry: key k, then the value (int64, uint64, double, string, or a
 * list of n doubles). */
void mp_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v);
void mp_pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v);
void mp_pack_kv_double(msgpack_packer *pk, const char *k, double v);
void mp_pack_kv_str(msgpack_packer *pk, const char *k, const char *v);
void mp_pack_kv_doubles(msgpack_packer *pk, const char *k, const double *v, int n);

/* A structural MessagePack check that allocates nothing: p[0..n) starts
 * with one complete object whose every length lies inside the buffer, whose
 * container counts are at most the bytes left (what bounds msgpack-c's
 * allocation) and whose nesting is at most max_depth (<= 32). Returns 0 and
 * the object's size in *used, or -1 with the reason in why. Run it before
 * msgpack_unpack_next on untrusted bytes. */
int mp_scan(const uint8_t *p, size_t n, int max_depth, size_t *used, char *why, size_t whylen);

/* ---- typed access to maps with string keys ----
 * mp_obj_* convert one object; "what" names it in the error
 * ("key \"bits\": expected an integer, got string"). mp_map_* look up key
 * in map first; a missing key or a map that is not a map is an error.
 * Integers: any msgpack integer in int64 range. Floats: float32/float64 or
 * an integer. Strings: copied NUL-terminated into buf (error if it does not
 * fit or contains a NUL). */
const msgpack_object *mp_map_get(const msgpack_object *map, const char *key); /* NULL if absent */
const char *mp_type_name(const msgpack_object *o);
int mp_obj_int(const msgpack_object *o, const char *what, int64_t *out, QErr *err);
int mp_obj_float(const msgpack_object *o, const char *what, double *out, QErr *err);
int mp_obj_bool(const msgpack_object *o, const char *what, int *out, QErr *err);
int mp_obj_str(const msgpack_object *o, const char *what, char *buf, size_t bufsize, QErr *err);
int mp_map_int(const msgpack_object *map, const char *key, int64_t *out, QErr *err);
int mp_map_float(const msgpack_object *map, const char *key, double *out, QErr *err);
int mp_map_bool(const msgpack_object *map, const char *key, int *out, QErr *err);
int mp_map_str(const msgpack_object *map, const char *key, char *buf, size_t bufsize, QErr *err);
/* The value under key: a list of exactly n numbers into out. */
int mp_map_doubles(const msgpack_object *map, const char *key, double *out, int n, QErr *err);
/* The value under key, checked to be an array / a map. */
int mp_map_array(const msgpack_object *map, const char *key, const msgpack_object **out, QErr *err);
int mp_map_map(const msgpack_object *map, const char *key, const msgpack_object **out, QErr *err);

/* 1 when k is the string s. */
int mp_key_is(const msgpack_object *k, const char *s);

#endif
