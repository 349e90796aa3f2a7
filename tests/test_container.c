/* test_container.c — the artifact container (common/artifact/container.c):
 * round trip, determinism, every corruption detected with a clear error,
 * atomic writes that fail cleanly, LZ4 chunking, the metadata helpers, and
 * the fuzz regression inputs under tests/data/fuzz-container/. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "artifact/container.h"
#include "base/crc32.h"
#include "base/mapfile.h"
#include "check.h"

/* the fuzz target itself: its regression inputs run through it below */
#include "fuzz/fuzz_container.c"

static char tmpdir[256];

static void path_in_tmp(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static int read_file(const char *path, uint8_t **out, size_t *n) {
    char *b;
    QErr err;
    if (file_read_all(path, &b, n, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *out = (uint8_t *)b;
    return 0;
}

static int write_bytes(const char *path, const void *p, size_t n) {
    QErr err;
    if (file_write_all(path, p, n, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Opens a malloc'd copy of exactly n bytes (so ASan sees any over-read);
 * *copy must be freed after art_close. */
static int open_copy(const uint8_t *p, size_t n, ArtReader **r, uint8_t **copy, QErr *err) {
    uint8_t *c = malloc(n ? n : 1);
    if (n) memcpy(c, p, n);
    *copy = c;
    return art_open_buffer(r, c, n, "copy", err);
}

/* Opens a malloc'd copy and, if that works, verifies every section; returns
 * 0 only when both succeed. The copy is freed. Fills err on failure. */
static int open_and_verify(const uint8_t *p, size_t n, QErr *err) {
    uint8_t *c = malloc(n ? n : 1);
    if (n) memcpy(c, p, n);
    ArtReader *r;
    int rc = art_open_buffer(&r, c, n, "copy", err);
    if (rc == 0) {
        rc = art_verify_all(r, err);
        art_close(r);
    }
    free(c);
    return rc;
}

/* ---------------------------------------------------------------- CRC */

static uint32_t crc_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void test_crc(void) {
    CHECK(crc32_ieee(0, "123456789", 9) == 0xcbf43926u);
    CHECK(crc32_ieee(0, NULL, 0) == 0);
    uint8_t buf[1100];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)rnd();
    for (size_t start = 0; start < 9; start++)
        for (size_t n = 0; n + start <= sizeof buf; n += (n < 40 ? 1 : 37)) {
            uint32_t want = crc_bitwise(buf + start, n);
            CHECK(crc32_ieee(0, buf + start, n) == want);
            size_t half = n / 3;
            CHECK(crc32_ieee(crc32_ieee(0, buf + start, half), buf + start + half, n - half) == want);
        }
}

/* ---------------------------------------------------------- sample file */

#define N_A (64 * 48)
static float a_data[N_A];
static float b_data[33];
static uint8_t c_data[35];
static int32_t d_data[60];
static uint16_t s_data[1];

static void fill_sample_data(void) {
    for (int i = 0; i < N_A; i++) a_data[i] = (float)(i % 17) * 0.25f; /* compressible */
    for (int i = 0; i < 33; i++) b_data[i] = (float)rnd() / 4294967296.0f - 0.5f;
    for (int i = 0; i < 35; i++) c_data[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 60; i++) d_data[i] = i - 30;
    s_data[0] = 0x3c00; /* 1.0 in f16 */
}

static void pack_meta(msgpack_packer *pk) {
    msgpack_pack_map(pk, 8);
    mp_pack_str(pk, "model");
    msgpack_pack_map(pk, 3);
    mp_pack_str(pk, "dim");
    msgpack_pack_int(pk, 64);
    mp_pack_str(pk, "n_layers");
    msgpack_pack_int(pk, 5);
    mp_pack_str(pk, "name");
    mp_pack_str(pk, "stories260K");
    mp_pack_str(pk, "bits");
    msgpack_pack_array(pk, 7);
    for (int b = 2; b <= 8; b++) msgpack_pack_int(pk, b);
    mp_pack_str(pk, "lr");
    msgpack_pack_double(pk, 1e-3);
    mp_pack_str(pk, "scale");
    msgpack_pack_float(pk, 0.5f);
    mp_pack_str(pk, "flag");
    msgpack_pack_true(pk);
    mp_pack_str(pk, "neg");
    msgpack_pack_int(pk, -5);
    mp_pack_str(pk, "nested");
    msgpack_pack_array(pk, 2);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_nil(pk);
    msgpack_pack_map(pk, 1);
    mp_pack_str(pk, "x");
    msgpack_pack_bin(pk, 3);
    msgpack_pack_bin_body(pk, "\x01\x02\x03", 3);
    mp_pack_str(pk, "empty");
    msgpack_pack_map(pk, 0);
}

static ArtWriter *build_sample(void) {
    QErr err;
    ArtWriter *w = art_writer_new(&err);
    if (!w) return NULL;
    pack_meta(art_writer_meta(w));
    int64_t sa[2] = {64, 48}, sb[1] = {33}, sc[2] = {7, 5}, se[2] = {0, 16}, sd[3] = {3, 4, 5};
    int rc = 0;
    rc |= art_writer_add(w, "a.f32.lz4", ART_F32, 2, sa, a_data, 1, &err);
    rc |= art_writer_add(w, "b.f32.raw", ART_F32, 1, sb, b_data, 0, &err);
    rc |= art_writer_add(w, "c.u8", ART_U8, 2, sc, c_data, 1, &err);
    rc |= art_writer_add(w, "empty", ART_F32, 2, se, NULL, 1, &err);
    rc |= art_writer_add(w, "d.3d", ART_I32, 3, sd, d_data, 1, &err);
    rc |= art_writer_add(w, "scalar", ART_F16, 0, NULL, s_data, 0, &err);
    if (rc) {
        fprintf(stderr, "build_sample: %s\n", err.msg);
        art_writer_free(w);
        return NULL;
    }
    return w;
}

static void check_sample_reader(ArtReader *r) {
    QErr err;
    CHECK(art_n_tensors(r) == 6);
    const msgpack_object *m = art_meta(r);
    CHECK(m && m->type == MSGPACK_OBJECT_MAP);
    const msgpack_object *model = NULL, *bits = NULL, *nested = NULL;
    CHECK(mp_map_map(m, "model", &model, &err) == 0);
    int64_t iv = 0;
    double dv = 0;
    int bv = 0;
    char s[64];
    CHECK(mp_map_int(model, "dim", &iv, &err) == 0 && iv == 64);
    CHECK(mp_map_int(model, "n_layers", &iv, &err) == 0 && iv == 5);
    CHECK(mp_map_str(model, "name", s, sizeof s, &err) == 0 && strcmp(s, "stories260K") == 0);
    CHECK(mp_map_array(m, "bits", &bits, &err) == 0 && bits->via.array.size == 7);
    for (uint32_t k = 0; bits && k < bits->via.array.size; k++)
        CHECK(mp_obj_int(&bits->via.array.ptr[k], "bits[]", &iv, &err) == 0 && iv == (int64_t)k + 2);
    CHECK(mp_map_float(m, "lr", &dv, &err) == 0 && dv == 1e-3);
    CHECK(mp_map_float(m, "scale", &dv, &err) == 0 && dv == 0.5);
    CHECK(mp_map_float(m, "neg", &dv, &err) == 0 && dv == -5.0);
    CHECK(mp_map_bool(m, "flag", &bv, &err) == 0 && bv == 1);
    CHECK(mp_map_int(m, "neg", &iv, &err) == 0 && iv == -5);
    CHECK(mp_map_array(m, "nested", &nested, &err) == 0 && nested->via.array.size == 2);
    if (nested) {
        const msgpack_object *inner = &nested->via.array.ptr[0];
        CHECK(inner->type == MSGPACK_OBJECT_ARRAY && inner->via.array.size == 2);
        CHECK(inner->via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY &&
              inner->via.array.ptr[1].via.array.ptr[0].type == MSGPACK_OBJECT_NIL);
        const msgpack_object *x = mp_map_get(&nested->via.array.ptr[1], "x");
        CHECK(x && x->type == MSGPACK_OBJECT_BIN && x->via.bin.size == 3 &&
              memcmp(x->via.bin.ptr, "\x01\x02\x03", 3) == 0);
    }
    const msgpack_object *empty = NULL;
    CHECK(mp_map_map(m, "empty", &empty, &err) == 0 && empty->via.map.size == 0);

    /* helper errors name the key */
    CHECK(mp_map_int(model, "name", &iv, &err) != 0 && strstr(err.msg, "key \"name\"") &&
          strstr(err.msg, "expected an integer, got string"));
    CHECK(mp_map_int(model, "nope", &iv, &err) != 0 && strstr(err.msg, "key \"nope\"") &&
          strstr(err.msg, "missing"));
    CHECK(mp_map_str(model, "name", s, 5, &err) != 0 && strstr(err.msg, "too long"));
    CHECK(mp_map_bool(m, "lr", &bv, &err) != 0 && strstr(err.msg, "expected a boolean"));
    CHECK(mp_map_map(m, "bits", &model, &err) != 0 && strstr(err.msg, "expected a map, got array"));
    CHECK(mp_map_int(bits, "x", &iv, &err) != 0 && strstr(err.msg, "not a map"));

    struct {
        const char *name;
        ArtDtype dt;
        int ndim;
        int64_t shape[3];
        const void *data;
        size_t bytes;
    } want[6] = {
        {"a.f32.lz4", ART_F32, 2, {64, 48}, a_data, sizeof a_data},
        {"b.f32.raw", ART_F32, 1, {33}, b_data, sizeof b_data},
        {"c.u8", ART_U8, 2, {7, 5}, c_data, sizeof c_data},
        {"empty", ART_F32, 2, {0, 16}, NULL, 0},
        {"d.3d", ART_I32, 3, {3, 4, 5}, d_data, sizeof d_data},
        {"scalar", ART_F16, 0, {0}, s_data, sizeof s_data},
    };
    for (int i = 0; i < 6; i++) {
        const ArtTensorInfo *t = art_tensor_info(r, i);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK(strcmp(t->name, want[i].name) == 0);
        CHECK(art_find(r, want[i].name) == i);
        CHECK(t->dtype == want[i].dt && t->ndim == want[i].ndim);
        for (int d = 0; d < t->ndim; d++) CHECK(t->shape[d] == want[i].shape[d]);
        CHECK(t->raw_bytes == want[i].bytes);
        CHECK(t->offset % 8 == 0);
        void *buf = malloc(want[i].bytes + 1);
        CHECK_MSG(art_read(r, i, buf, want[i].bytes, &err) == 0, "%s", err.msg);
        if (want[i].bytes) CHECK(memcmp(buf, want[i].data, want[i].bytes) == 0);
        /* wrong destination size */
        CHECK(art_read(r, i, buf, want[i].bytes + 1, &err) != 0 && strstr(err.msg, want[i].name));
        free(buf);
    }
    CHECK(art_tensor_info(r, 0)->codec == ART_CODEC_LZ4);
    CHECK(art_tensor_info(r, 0)->stored_bytes < sizeof a_data);
    CHECK(art_tensor_info(r, 1)->codec == ART_CODEC_RAW);
    CHECK(art_tensor_info(r, 3)->numel == 0 && art_tensor_info(r, 3)->stored_bytes == 0);
    CHECK(art_tensor_info(r, 5)->numel == 1);
    CHECK(art_find(r, "missing") == -1);
    CHECK(art_tensor_info(r, 6) == NULL && art_tensor_info(r, -1) == NULL);
    CHECK(art_read(r, 6, NULL, 0, &err) != 0);
    const float *v = art_view(r, 1, &err);
    CHECK(v && memcmp(v, b_data, sizeof b_data) == 0 && ((uintptr_t)v % 8) == 0);
    CHECK(art_view(r, 0, &err) == NULL && strstr(err.msg, "lz4"));
    CHECK_MSG(art_verify_all(r, &err) == 0, "%s", err.msg);
}

static void test_roundtrip_and_determinism(const char *path, uint8_t **file, size_t *file_n) {
    QErr err;
    ArtWriter *w = build_sample();
    CHECK(w != NULL);
    if (!w) return;
    CHECK_MSG(art_writer_write(w, path, &err) == 0, "%s", err.msg);
    ArtReader *r = NULL;
    CHECK_MSG(art_open(&r, path, &err) == 0, "%s", err.msg);
    if (r) {
        CHECK(strcmp(art_name(r), path) == 0);
        check_sample_reader(r);
        art_close(r);
    }
    /* determinism: same writer again, and a fresh writer */
    char p2[600], p3[600];
    snprintf(p2, sizeof p2, "%s.2", path);
    snprintf(p3, sizeof p3, "%s.3", path);
    CHECK(art_writer_write(w, p2, &err) == 0);
    art_writer_free(w);
    w = build_sample();
    CHECK(w && art_writer_write(w, p3, &err) == 0);
    art_writer_free(w);
    uint8_t *f1 = NULL, *f2 = NULL, *f3 = NULL;
    size_t n1 = 0, n2 = 0, n3 = 0;
    int ok = read_file(path, &f1, &n1) == 0 && read_file(p2, &f2, &n2) == 0 && read_file(p3, &f3, &n3) == 0;
    CHECK(ok);
    if (!ok) {
        free(f1);
        free(f2);
        free(f3);
        return;
    }
    CHECK(n1 == n2 && n1 == n3 && memcmp(f1, f2, n1) == 0 && memcmp(f1, f3, n1) == 0);
    free(f2);
    free(f3);
    unlink(p2);
    unlink(p3);
    /* layout basics */
    CHECK(memcmp(f1, "QEPTART\0", 8) == 0);
    CHECK(f1[8] == 1 && f1[9] == 0 && f1[12] == 0);
    *file = f1;
    *file_n = n1;
    /* the same bytes from memory */
    uint8_t *copy;
    CHECK(open_copy(f1, n1, &r, &copy, &err) == 0);
    if (r) {
        check_sample_reader(r);
        art_close(r);
    }
    free(copy);
}

/* ------------------------------------------------------------ corruption */

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void test_truncation(const uint8_t *f, size_t n, const char *dir_path) {
    QErr err;
    int fails = 0;
    for (size_t len = 0; len < n; len++) {
        ArtReader *r = NULL;
        uint8_t *c = malloc(len ? len : 1);
        memcpy(c, f, len);
        err.msg[0] = 0;
        int rc = art_open_buffer(&r, c, len, "cut", &err);
        if (rc == 0) {
            fails++;
            art_close(r);
        } else if (!err.msg[0] || !strstr(err.msg, "cut")) {
            fails++;
        }
        CHECK(rc != 0 || r != NULL);
        free(c);
    }
    CHECK_MSG(fails == 0, "%d truncated files accepted or without a message", fails);
    /* a few through real files */
    size_t cuts[] = {0, 5, 8, 23, 24, 100, n / 2, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        ArtReader *r = NULL;
        CHECK(write_bytes(dir_path, f, cuts[k]) == 0);
        CHECK(art_open(&r, dir_path, &err) != 0 && r == NULL && strstr(err.msg, dir_path));
    }
    /* one byte too many */
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, f, n);
    longer[n] = 0;
    CHECK(open_and_verify(longer, n + 1, &err) != 0 &&
          strstr(err.msg, "unexpected bytes after the last section"));
    free(longer);
}

static void test_bitflips(const uint8_t *f, size_t n) {
    QErr err;
    ArtReader *r = NULL;
    uint8_t *copy;
    CHECK(open_copy(f, n, &r, &copy, &err) == 0);
    if (!r) {
        free(copy);
        return;
    }
    uint64_t h = le64(f + 16);
    uint64_t dstart = (24 + h + 7) & ~(uint64_t)7;
    uint8_t *c = malloc(n);
    int undetected = 0, misnamed = 0;
    for (size_t pos = 0; pos < n; pos++) {
        memcpy(c, f, n);
        c[pos] ^= (uint8_t)(1u << (pos % 8));
        if (open_and_verify(c, n, &err) == 0) {
            undetected++;
            fprintf(stderr, "flip at byte %zu undetected\n", pos);
            continue;
        }
        if (pos >= 24 && pos < 24 + h && !strstr(err.msg, "header")) {
            misnamed++;
            fprintf(stderr, "header flip at %zu: %s\n", pos, err.msg);
        }
        /* inside a section: opening works, reading that tensor names it */
        for (int i = 0; i < art_n_tensors(r); i++) {
            const ArtTensorInfo *t = art_tensor_info(r, i);
            if (pos < dstart + t->offset || pos >= dstart + t->offset + t->stored_bytes) continue;
            ArtReader *r2 = NULL;
            uint8_t *cc = malloc(n);
            memcpy(cc, c, n);
            if (art_open_buffer(&r2, cc, n, "copy", &err) != 0) {
                misnamed++;
                fprintf(stderr, "data flip at %zu fails open: %s\n", pos, err.msg);
            } else {
                void *dst = malloc(t->raw_bytes + 1);
                char want[128];
                snprintf(want, sizeof want, "\"%s\": checksum mismatch", t->name);
                if (art_read(r2, i, dst, t->raw_bytes, &err) == 0 || !strstr(err.msg, want)) {
                    misnamed++;
                    fprintf(stderr, "data flip at %zu: %s\n", pos, err.msg);
                }
                /* the other tensors still read */
                for (int j = 0; j < art_n_tensors(r2); j++) {
                    if (j == i) continue;
                    const ArtTensorInfo *tj = art_tensor_info(r2, j);
                    void *dj = malloc(tj->raw_bytes + 1);
                    if (art_read(r2, j, dj, tj->raw_bytes, &err) != 0) misnamed++;
                    free(dj);
                }
                free(dst);
                art_close(r2);
            }
            free(cc);
        }
    }
    CHECK_MSG(undetected == 0, "%d single-bit flips undetected", undetected);
    CHECK_MSG(misnamed == 0, "%d flips with a wrong error", misnamed);
    free(c);
    art_close(r);
    free(copy);
}

static void test_preamble(const uint8_t *f, size_t n) {
    QErr err;
    uint8_t *c = malloc(n);
    memcpy(c, f, n);
    c[3] = 'X';
    CHECK(open_and_verify(c, n, &err) != 0 && strstr(err.msg, "bad magic"));
    memcpy(c, f, n);
    c[8] = 2;
    CHECK(open_and_verify(c, n, &err) != 0 &&
          strstr(err.msg, "copy: written by a newer quept (format 2, this build reads 1)"));
    c[8] = 0;
    CHECK(open_and_verify(c, n, &err) != 0 && strstr(err.msg, "unsupported format version 0"));
    memcpy(c, f, n);
    c[12] = 1;
    CHECK(open_and_verify(c, n, &err) != 0 && strstr(err.msg, "reserved"));
    memcpy(c, f, n);
    uint64_t big = n; /* header length larger than the file */
    for (int i = 0; i < 8; i++) c[16 + i] = (uint8_t)(big >> (8 * i));
    CHECK(open_and_verify(c, n, &err) != 0 && strstr(err.msg, "header length") &&
          strstr(err.msg, "past the end"));
    big = UINT64_MAX;
    for (int i = 0; i < 8; i++) c[16 + i] = (uint8_t)(big >> (8 * i));
    CHECK(open_and_verify(c, n, &err) != 0 && strstr(err.msg, "header length"));
    free(c);
    CHECK(open_and_verify((const uint8_t *)"QEPT", 4, &err) != 0 && strstr(err.msg, "truncated"));
    CHECK(open_and_verify((const uint8_t *)"PK\x03\x04zipzipzip", 12, &err) != 0 &&
          strstr(err.msg, "bad magic"));
    CHECK(open_and_verify(NULL, 0, &err) != 0 && strstr(err.msg, "truncated"));
}

/* ------------------------------------------------ hand-crafted headers */

/* A complete file from a meta encoding, a "tensors" array encoding and a
 * data section, with a correct header checksum. */
static uint8_t *craft(const void *meta, size_t meta_n, const void *tens, size_t tens_n, const void *data,
                      size_t data_n, uint32_t version_field, size_t *out_n) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    mp_pack_str(&pk, "version");
    msgpack_pack_uint32(&pk, version_field);
    mp_pack_str(&pk, "meta");
    msgpack_sbuffer_write(&sb, meta, meta_n);
    mp_pack_str(&pk, "tensors");
    msgpack_sbuffer_write(&sb, tens, tens_n);
    uint32_t crc = crc32_ieee(0, sb.data, sb.size);
    mp_pack_str(&pk, "header_checksum");
    uint8_t ce[5] = {0xce, (uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    msgpack_sbuffer_write(&sb, (const char *)ce, 5);
    size_t h = sb.size, dstart = (24 + h + 7) & ~(size_t)7;
    size_t n = dstart + data_n;
    uint8_t *f = calloc(1, n);
    memcpy(f, "QEPTART\0", 8);
    f[8] = 1;
    for (int i = 0; i < 8; i++) f[16 + i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(f + 24, sb.data, h);
    if (data_n) memcpy(f + dstart, data, data_n);
    msgpack_sbuffer_destroy(&sb);
    *out_n = n;
    return f;
}

typedef struct {
    const char *name, *dtype, *codec;
    int ndim;
    int64_t shape[10]; /* packed as signed: negative values test the checks */
    uint64_t offset, stored, raw;
    uint32_t checksum;
} Ent;

static void pack_ent(msgpack_packer *pk, const Ent *e) {
    msgpack_pack_map(pk, 8);
    mp_pack_str(pk, "name");
    mp_pack_str(pk, e->name);
    mp_pack_str(pk, "dtype");
    mp_pack_str(pk, e->dtype);
    mp_pack_str(pk, "shape");
    msgpack_pack_array(pk, (size_t)e->ndim);
    for (int d = 0; d < e->ndim; d++) {
        if (e->shape[d] < 0)
            msgpack_pack_int64(pk, e->shape[d]);
        else
            msgpack_pack_uint64(pk, (uint64_t)e->shape[d]);
    }
    mp_pack_str(pk, "offset");
    msgpack_pack_uint64(pk, e->offset);
    mp_pack_str(pk, "stored");
    msgpack_pack_uint64(pk, e->stored);
    mp_pack_str(pk, "raw");
    msgpack_pack_uint64(pk, e->raw);
    mp_pack_str(pk, "codec");
    mp_pack_str(pk, e->codec);
    mp_pack_str(pk, "checksum");
    msgpack_pack_uint32(pk, e->checksum);
}

/* crafts a file with entries e[0..n) over data and checks that opening (and
 * verifying) fails with a message containing want (NULL: must succeed) */
static void expect_crafted(const char *what, const Ent *e, int n, const void *data, size_t data_n,
                           const char *want) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)n);
    for (int i = 0; i < n; i++) pack_ent(&pk, &e[i]);
    size_t fn;
    uint8_t *f = craft("\x80", 1, sb.data, sb.size, data, data_n, 1, &fn);
    QErr err;
    err.msg[0] = 0;
    int rc = open_and_verify(f, fn, &err);
    if (want)
        CHECK_MSG(rc != 0 && strstr(err.msg, want), "%s: got \"%s\", want \"%s\"", what,
                  rc ? err.msg : "success", want);
    else
        CHECK_MSG(rc == 0, "%s: %s", what, err.msg);
    free(f);
    msgpack_sbuffer_destroy(&sb);
}

static void test_crafted(void) {
    uint8_t data[64];
    for (int i = 0; i < 64; i++) data[i] = (uint8_t)i;
    uint32_t c16 = crc32_ieee(0, data, 16), c8 = crc32_ieee(0, data + 16, 8);
    Ent ok[2] = {
        {"x", "f32", "raw", 1, {4}, 0, 16, 16, c16},
        {"y", "u8", "raw", 2, {2, 4}, 16, 8, 8, c8},
    };
    expect_crafted("valid", ok, 2, data, 24, NULL);
    Ent e[2];
#define CASE(label, mutate, ndata, want)                \
    do {                                                \
        memcpy(e, ok, sizeof ok);                       \
        mutate;                                         \
        expect_crafted(label, e, 2, data, ndata, want); \
    } while (0)
    CASE("offset out of range", e[1].offset = 1u << 30, 24, "tensor 1 \"y\": offset 1073741824, expected 16");
    CASE("stored past end", (e[1].codec = "lz4", e[1].stored = 1ull << 40), 24,
         "tensor 1 \"y\": section [16, +1099511627776) runs past the end of the data section");
    CASE("stored huge", (e[1].codec = "lz4", e[1].stored = UINT64_MAX), 24, "runs past the end");
    CASE("data cut", (void)0, 20, "tensor 1 \"y\": section [16, +8) runs past the end");
    CASE("trailing data", (void)0, 32, "unexpected bytes after the last section");
    CASE("huge shape product", (e[0].ndim = 2, e[0].shape[0] = 1ll << 40, e[0].shape[1] = 1ll << 40), 24,
         "tensor 0 \"x\": shape product overflows");
    CASE("bytes overflow", (e[0].shape[0] = 1ll << 62), 24, "x 4 bytes overflows");
    CASE("max dim", (e[0].shape[0] = INT64_MAX), 24, "overflows");
    CASE("zero dim with huge others",
         (e[0].ndim = 3, e[0].shape[0] = 1ll << 40, e[0].shape[1] = 0, e[0].shape[2] = 1ll << 40,
          e[0].stored = 0, e[0].raw = 0, e[1].offset = 0, e[0].checksum = 0),
         8, "tensor 1 \"y\": checksum mismatch");
    CASE("negative dim", e[0].shape[0] = -4, 24, "tensor 0 \"x\": shape[0] is negative");
    CASE("too many dims", e[0].ndim = 9, 24, "shape has 9 dimensions");
    CASE("unknown dtype", e[0].dtype = "f64", 24, "tensor 0 \"x\": unknown dtype \"f64\"");
    CASE("unknown codec", e[0].codec = "zstd", 24, "unknown codec \"zstd\"");
    CASE("raw mismatch", e[0].raw = 12, 24, "field \"raw\" is 12 bytes but the shape and dtype f32 give 16");
    CASE("raw codec stored mismatch", (e[0].shape[0] = 3, e[0].raw = 12), 24,
         "codec \"raw\" but stored 16 != raw 12");
    CASE("duplicate names", e[1].name = "x", 24, "tensor name \"x\" appears twice");
    CASE("empty name", e[1].name = "", 24, "tensor 1: name must be 1..");
    CASE("data checksum", e[1].checksum ^= 1, 24, "tensor 1 \"y\": checksum mismatch");
    CASE("lz4 garbage", (e[1].codec = "lz4", e[1].checksum = c8), 24, "tensor 1 \"y\"");
    CASE("nonzero pad",
         (e[0].shape[0] = 3, e[0].raw = 12, e[0].stored = 12, e[0].checksum = crc32_ieee(0, data, 12),
          e[1].offset = 16),
         24, "padding before the section is not zero");
#undef CASE

    QErr err;
    size_t fn;
    uint8_t *f;
    /* header "version" field disagreeing with the preamble */
    f = craft("\x80", 1, "\x90", 1, NULL, 0, 2, &fn);
    CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "\"version\" must be 1"));
    free(f);
    /* no tensors, empty meta: valid */
    f = craft("\x80", 1, "\x90", 1, NULL, 0, 1, &fn);
    CHECK_MSG(open_and_verify(f, fn, &err) == 0, "%s", err.msg);
    free(f);
    /* tensors not an array */
    f = craft("\x80", 1, "\x80", 1, NULL, 0, 1, &fn);
    CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "\"tensors\" must be an array, got map"));
    free(f);
    /* entry not a map; missing field; unknown field; name not a string; name with NUL */
    f = craft("\x80", 1, "\x91\x01", 2, NULL, 0, 1, &fn);
    CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "tensor 0: entry must be a map"));
    free(f);
    f = craft("\x80", 1, "\x91\x81\xa4name\xa1z", 9, NULL, 0, 1, &fn);
    CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "tensor 0: missing field \"dtype\""));
    free(f);
    f = craft("\x80", 1,
              "\x91\x81\xa3"
              "foo\x01",
              7, NULL, 0, 1, &fn);
    CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "tensor 0: unknown field \"foo\""));
    free(f);
    f = craft("\x80", 1, "\x91\x82\xa4name\x01\xa4name\x02", 14, NULL, 0, 1, &fn);
    CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "field \"name\" appears twice"));
    free(f);
    {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 1);
        Ent x = {"x", "u8", "raw", 1, {0}, 0, 0, 0, 0};
        pack_ent(&pk, &x);
        /* "x" -> "\0" inside the packed name */
        char *p = NULL;
        for (size_t k = 0; k + 1 < sb.size && !p; k++)
            if ((uint8_t)sb.data[k] == 0xa1 && sb.data[k + 1] == 'x') p = sb.data + k;
        CHECK(p != NULL);
        if (p) p[1] = 0;
        f = craft("\x80", 1, sb.data, sb.size, NULL, 0, 1, &fn);
        CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "name contains a NUL"));
        free(f);
        /* name as an integer */
        if (p) p[0] = 0x05, p[1] = 0xc0; /* fixint 5 then nil → breaks the map: expect some error */
        f = craft("\x80", 1, sb.data, sb.size, NULL, 0, 1, &fn);
        CHECK(open_and_verify(f, fn, &err) != 0);
        free(f);
        msgpack_sbuffer_destroy(&sb);
    }
    /* meta: huge container count in a few bytes (no huge allocation) */
    f = craft("\xdd\xff\xff\xff\xff", 5, "\x90", 1, NULL, 0, 1, &fn);
    CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "claims 4294967295 elements"));
    free(f);
    f = craft("\xdf\x7f\xff\xff\xff", 5, "\x90", 1, NULL, 0, 1, &fn);
    CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "claims"));
    free(f);
    /* meta: a string longer than the header */
    f = craft("\xdb\x7f\xff\xff\xff", 5, "\x90", 1, NULL, 0, 1, &fn);
    CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "header"));
    free(f);
    /* meta: invalid type byte */
    f = craft("\xc1", 1, "\x90", 1, NULL, 0, 1, &fn);
    CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "invalid MessagePack type byte 0xc1"));
    free(f);
    /* meta: nested too deeply (40 arrays) */
    {
        uint8_t deep[41];
        memset(deep, 0x91, 40);
        deep[40] = 0x01;
        f = craft(deep, sizeof deep, "\x90", 1, NULL, 0, 1, &fn);
        CHECK(open_and_verify(f, fn, &err) != 0 && strstr(err.msg, "nested deeper than"));
        free(f);
        /* 24 levels are fine */
        f = craft(deep + 16, 25, "\x90", 1, NULL, 0, 1, &fn);
        CHECK_MSG(open_and_verify(f, fn, &err) == 0, "%s", err.msg);
        free(f);
    }
    /* meta: ext and fixext types pass */
    f = craft("\x92\xd4\x01\x02\xc7\x02\x05"
              "ab",
              9, "\x90", 1, NULL, 0, 1, &fn);
    CHECK_MSG(open_and_verify(f, fn, &err) == 0, "%s", err.msg);
    free(f);
}

/* ------------------------------------------------------------ writer */

static void test_writer_errors(void) {
    QErr err;
    ArtWriter *w = art_writer_new(&err);
    int64_t s2[2] = {2, 2}, neg[1] = {-1}, big[2] = {1ll << 40, 1ll << 40};
    float x[4] = {1, 2, 3, 4};
    CHECK(art_writer_add(w, "a", ART_F32, 2, s2, x, 1, &err) == 0);
    CHECK(art_writer_add(w, "a", ART_F32, 2, s2, x, 1, &err) != 0 && strstr(err.msg, "added twice"));
    CHECK(art_writer_add(w, "", ART_F32, 2, s2, x, 1, &err) != 0 && strstr(err.msg, "name must be"));
    CHECK(art_writer_add(w, "n", ART_F32, 1, neg, x, 1, &err) != 0 && strstr(err.msg, "negative"));
    CHECK(art_writer_add(w, "b", ART_F32, 2, big, x, 1, &err) != 0 && strstr(err.msg, "overflows"));
    CHECK(art_writer_add(w, "d", ART_F32, 9, s2, x, 1, &err) != 0 && strstr(err.msg, "dimensions"));
    CHECK(art_writer_add(w, "e", (ArtDtype)42, 2, s2, x, 1, &err) != 0 && strstr(err.msg, "dtype"));
    CHECK(art_writer_add(w, "f", ART_F32, 2, s2, NULL, 1, &err) != 0 && strstr(err.msg, "no data"));
    CHECK(art_writer_set_chunk_size(w, 0, &err) != 0);
    CHECK(art_writer_n_tensors(w) == 1);
    char path[512];
    path_in_tmp(path, sizeof path, "nodir/sub/x.qept");
    CHECK(art_writer_write(w, path, &err) != 0 && strstr(err.msg, "nodir/sub/x.qept"));
    /* two metadata objects */
    msgpack_pack_int(art_writer_meta(w), 1);
    msgpack_pack_int(art_writer_meta(w), 2);
    path_in_tmp(path, sizeof path, "two_meta.qept");
    CHECK(art_writer_write(w, path, &err) != 0 && strstr(err.msg, "exactly one MessagePack object"));
    CHECK(access(path, F_OK) != 0);
    art_writer_free(w);
    /* metadata nested too deeply, and an incomplete object */
    w = art_writer_new(&err);
    for (int i = 0; i < 30; i++) msgpack_pack_array(art_writer_meta(w), 1);
    msgpack_pack_nil(art_writer_meta(w));
    CHECK(art_writer_write(w, path, &err) != 0 && strstr(err.msg, "nested deeper"));
    art_writer_free(w);
    w = art_writer_new(&err);
    msgpack_pack_map(art_writer_meta(w), 2);
    CHECK(art_writer_write(w, path, &err) != 0 && strstr(err.msg, "metadata"));
    art_writer_free(w);
    /* no metadata packed: an empty map */
    w = art_writer_new(&err);
    CHECK_MSG(art_writer_write(w, path, &err) == 0, "%s", err.msg);
    art_writer_free(w);
    ArtReader *r = NULL;
    CHECK_MSG(art_open(&r, path, &err) == 0, "%s", err.msg);
    if (r) {
        CHECK(art_meta(r)->type == MSGPACK_OBJECT_MAP && art_meta(r)->via.map.size == 0 &&
              art_n_tensors(r) == 0);
        art_close(r);
    }
    /* reader on things that are not files */
    CHECK(art_open(&r, tmpdir, &err) != 0 && r == NULL);
    path_in_tmp(path, sizeof path, "does-not-exist.qept");
    CHECK(art_open(&r, path, &err) != 0 && strstr(err.msg, "does-not-exist"));
    art_close(NULL);
    art_writer_free(NULL);
}

static int count_temps(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    struct dirent *e;
    size_t pl = strlen(prefix);
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, pl) == 0 && strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* A write that fails half way (file size limit, as on a full disk): the old
 * file keeps its bytes and no temp file is left. */
static void test_write_fails_cleanly(void) {
    char path[512];
    path_in_tmp(path, sizeof path, "fsize.qept");
    CHECK(write_bytes(path, "old contents", 12) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {64 * 1024, 64 * 1024};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
        QErr err;
        ArtWriter *w = art_writer_new(&err);
        static uint32_t big[256 * 1024]; /* 1 MiB of incompressible data */
        for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) big[i] = rnd();
        int64_t shape[1] = {256 * 1024};
        if (art_writer_add(w, "big", ART_I32, 1, shape, big, 1, &err) != 0) _exit(4);
        int rc = art_writer_write(w, path, &err);
        art_writer_free(w);
        if (rc == 0) _exit(1);
        fprintf(stderr, "(expected) %s\n", err.msg);
        _exit(strstr(err.msg, "write failed") ? 0 : 2);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    uint8_t *b;
    size_t n;
    CHECK(read_file(path, &b, &n) == 0 && n == 12 && memcmp(b, "old contents", 12) == 0);
    free(b);
    CHECK(count_temps(tmpdir, "fsize.qept") == 0);
}

/* ------------------------------------------------------------ LZ4 chunks */

static void test_chunks(void) {
    QErr err;
    enum { N = 10000 };
    static uint8_t src[N];
    for (int i = 0; i < N; i++) src[i] = (i / 1000) % 2 ? (uint8_t)rnd() : (uint8_t)(i % 3); /* alternating */
    ArtWriter *w = art_writer_new(&err);
    CHECK(art_writer_set_chunk_size(w, 1000, &err) == 0);
    int64_t shape[1] = {N};
    CHECK(art_writer_add(w, "chunked", ART_U8, 1, shape, src, 1, &err) == 0);
    CHECK(art_writer_set_chunk_size(w, 4096, &err) == 0);
    static float fl[65536];
    for (int i = 0; i < 65536; i++) fl[i] = (float)(i % 100);
    int64_t fshape[2] = {256, 256};
    CHECK(art_writer_add(w, "many", ART_F32, 2, fshape, fl, 1, &err) == 0);
    CHECK(art_writer_set_chunk_size(w, 7, &err) == 0); /* chunks too small to compress: falls back to raw */
    CHECK(art_writer_add(w, "tiny", ART_U8, 1, shape, src, 1, &err) == 0);
    char path[512];
    path_in_tmp(path, sizeof path, "chunks.qept");
    CHECK_MSG(art_writer_write(w, path, &err) == 0, "%s", err.msg);
    art_writer_free(w);
    ArtReader *r = NULL;
    CHECK_MSG(art_open(&r, path, &err) == 0, "%s", err.msg);
    if (!r) return;
    const ArtTensorInfo *t = art_tensor_info(r, 0);
    CHECK(t->codec == ART_CODEC_LZ4);
    /* walk the framing: 10 chunks of 1000, alternating LZ4 / verbatim */
    const uint8_t *p = art_stored_ptr(r, 0);
    uint64_t pos = 0;
    int nchunks = 0, nverb = 0;
    while (pos + 8 <= t->stored_bytes) {
        uint32_t rl = p[pos] | p[pos + 1] << 8 | p[pos + 2] << 16 | (uint32_t)p[pos + 3] << 24;
        uint32_t sl = p[pos + 4] | p[pos + 5] << 8 | p[pos + 6] << 16 | (uint32_t)p[pos + 7] << 24;
        CHECK(rl == 1000);
        if (sl == rl) nverb++;
        nchunks++;
        pos += 8 + sl;
    }
    CHECK(pos == t->stored_bytes && nchunks == 10 && nverb == 5);
    static uint8_t back[N];
    CHECK_MSG(art_read(r, 0, back, N, &err) == 0, "%s", err.msg);
    CHECK(memcmp(back, src, N) == 0);
    static float flb[65536];
    CHECK(art_tensor_info(r, 1)->codec == ART_CODEC_LZ4);
    CHECK_MSG(art_read(r, 1, flb, sizeof flb, &err) == 0, "%s", err.msg);
    CHECK(memcmp(flb, fl, sizeof fl) == 0);
    CHECK(art_tensor_info(r, 2)->codec == ART_CODEC_RAW);
    CHECK(art_read(r, 2, back, N, &err) == 0 && memcmp(back, src, N) == 0);
    CHECK(art_verify_all(r, &err) == 0);

    /* the decoder on damaged framing (checksums bypassed) */
    uint8_t *s = malloc(t->stored_bytes);
    memcpy(s, p, t->stored_bytes);
    CHECK(art_decode(s, t->stored_bytes, ART_CODEC_LZ4, back, N, &err) == 0 && memcmp(back, src, N) == 0);
    CHECK(art_decode(s, t->stored_bytes - 1, ART_CODEC_LZ4, back, N, &err) != 0);
    CHECK(art_decode(s, t->stored_bytes, ART_CODEC_LZ4, back, N - 1, &err) != 0 &&
          strstr(err.msg, "more than"));
    CHECK(art_decode(s, 8 + (s[4] | s[5] << 8), ART_CODEC_LZ4, back, N, &err) != 0 &&
          strstr(err.msg, "decode to 1000 bytes"));
    CHECK(art_decode(s, 5, ART_CODEC_LZ4, back, N, &err) != 0 && strstr(err.msg, "cut off"));
    s[0] ^= 1; /* raw length 1001 */
    CHECK(art_decode(s, t->stored_bytes, ART_CODEC_LZ4, back, N, &err) != 0);
    s[0] ^= 1;
    s[4] = 0xff, s[5] = 0xff; /* stored length > raw length */
    CHECK(art_decode(s, t->stored_bytes, ART_CODEC_LZ4, back, N, &err) != 0 && strstr(err.msg, "exceeds"));
    memcpy(s, p, t->stored_bytes);
    s[0] = s[1] = s[2] = s[3] = 0; /* zero raw length */
    CHECK(art_decode(s, t->stored_bytes, ART_CODEC_LZ4, back, N, &err) != 0 &&
          strstr(err.msg, "raw length 0"));
    memcpy(s, p, t->stored_bytes);
    for (int k = 8; k < 40; k++) s[k] = 0xff; /* garbage LZ4 block */
    CHECK(art_decode(s, t->stored_bytes, ART_CODEC_LZ4, back, N, &err) != 0 && strstr(err.msg, "corrupt"));
    CHECK(art_decode(s, 10, ART_CODEC_RAW, back, 9, &err) != 0);
    CHECK(art_decode(NULL, 0, ART_CODEC_LZ4, NULL, 0, &err) == 0);
    free(s);
    art_close(r);
}

/* Opt-in (QUEPT_BIG_TESTS=1): a section over 2 GiB, raw and LZ4. */
static void test_big(void) {
    if (!getenv("QUEPT_BIG_TESTS")) return;
    QErr err;
    size_t n = ((size_t)2 << 30) + 12345;
    uint8_t *src = malloc(n);
    CHECK(src != NULL);
    if (!src) return;
    for (size_t i = 0; i < n; i++) src[i] = (uint8_t)((i >> 12) ^ (i % 251));
    ArtWriter *w = art_writer_new(&err);
    int64_t shape[1] = {(int64_t)n};
    CHECK_MSG(art_writer_add(w, "big.lz4", ART_U8, 1, shape, src, 1, &err) == 0, "%s", err.msg);
    CHECK_MSG(art_writer_add(w, "big.raw", ART_U8, 1, shape, src, 0, &err) == 0, "%s", err.msg);
    char path[512];
    path_in_tmp(path, sizeof path, "big.qept");
    CHECK_MSG(art_writer_write(w, path, &err) == 0, "%s", err.msg);
    art_writer_free(w);
    ArtReader *r = NULL;
    CHECK_MSG(art_open(&r, path, &err) == 0, "%s", err.msg);
    if (r) {
        CHECK(art_tensor_info(r, 0)->codec == ART_CODEC_LZ4);
        uint8_t *back = malloc(n);
        for (int i = 0; i < 2 && back; i++) {
            memset(back, 0, n);
            CHECK_MSG(art_read(r, i, back, n, &err) == 0, "%s", err.msg);
            CHECK(memcmp(back, src, n) == 0);
        }
        free(back);
        CHECK_MSG(art_verify_all(r, &err) == 0, "%s", err.msg);
        art_close(r);
    }
    unlink(path);
    free(src);
    printf("big sections: ok\n");
}

/* ------------------------------------------------- fuzz regressions */

static void test_fuzz_inputs(const uint8_t *sample, size_t sample_n) {
    /* the sample file through the harness too */
    LLVMFuzzerTestOneInput(sample, sample_n);
    const char *dir = QUEPT_TEST_DATA "/fuzz-container";
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "%s: %s", dir, strerror(errno));
    if (!d) return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        uint8_t *b;
        size_t bn;
        if (read_file(p, &b, &bn) != 0) {
            CHECK(0);
            continue;
        }
        LLVMFuzzerTestOneInput(b, bn);
        free(b);
        n++;
    }
    closedir(d);
    CHECK(n > 0);
    printf("fuzz regression inputs: %d\n", n);
}

/* Seeds for the fuzzer: the sample file and a small multi-chunk one. */
static void write_fuzz_seeds(const char *dir, const uint8_t *sample, size_t n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/seed-sample.qept", dir);
    CHECK(write_bytes(p, sample, n) == 0);
    QErr err;
    ArtWriter *w = art_writer_new(&err);
    msgpack_packer *pk = art_writer_meta(w);
    msgpack_pack_map(pk, 6);
    mp_pack_str(pk, "a");
    msgpack_pack_int(pk, -3);
    mp_pack_str(pk, "b");
    msgpack_pack_double(pk, 2.5);
    mp_pack_str(pk, "c");
    msgpack_pack_false(pk);
    mp_pack_str(pk, "d");
    mp_pack_str(pk, "text");
    mp_pack_str(pk, "e");
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 2);
    msgpack_pack_int(pk, 8);
    mp_pack_str(pk, "f");
    msgpack_pack_map(pk, 0);
    uint8_t buf[600];
    for (int i = 0; i < 600; i++) buf[i] = (i / 100) % 2 ? (uint8_t)rnd() : (uint8_t)(i % 5);
    art_writer_set_chunk_size(w, 100, &err);
    int64_t s1[1] = {600}, s2[2] = {2, 3};
    art_writer_add(w, "chunks", ART_U8, 1, s1, buf, 1, &err);
    art_writer_add(w, "raw", ART_I32, 2, s2, buf, 0, &err);
    snprintf(p, sizeof p, "%s/seed-chunks.qept", dir);
    CHECK(art_writer_write(w, p, &err) == 0);
    art_writer_free(w);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_container.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    fill_sample_data();
    test_crc();
    char path[512];
    path_in_tmp(path, sizeof path, "sample.qept");
    uint8_t *f = NULL;
    size_t n = 0;
    test_roundtrip_and_determinism(path, &f, &n);
    if (f) {
        char cut[512];
        path_in_tmp(cut, sizeof cut, "cut.qept");
        test_truncation(f, n, cut);
        test_bitflips(f, n);
        test_preamble(f, n);
        /* fuzz seeds when asked (see docs/artifact-format.md) */
        const char *seeds = getenv("QUEPT_WRITE_FUZZ_SEEDS");
        if (seeds) write_fuzz_seeds(seeds, f, n);
    }
    test_crafted();
    test_writer_errors();
    test_write_fails_cleanly();
    test_chunks();
    test_big();
    test_fuzz_inputs(f, n);
    free(f);
    /* clean up the temp dir */
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
        closedir(d);
        rmdir(tmpdir);
    }
    CHECK_DONE();
}
