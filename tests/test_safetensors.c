/* test_safetensors.c — safetensors reader/writer, fp16 conversions (bf16:
 * test_bf16.c), the
 * RoPE q/k row permutation, and Hugging Face directories (hf_open /
 * hf_write_dir), including every validation failure we promise to report. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fixtures.h"
#include "model/hf.h"
#include "model/model.h"
#include "model/safetensors.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

#define CHECK_ERR(msg, needle) \
    CHECK_MSG(contains((msg), (needle)), "message \"%s\" lacks \"%s\"", (msg), (needle))

static void rm_tree(const char *path) {
    struct stat s;
    if (lstat(path, &s) != 0) return;
    if (S_ISDIR(s.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                char sub[2048];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                rm_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

/* A safetensors file by hand: u64 header length (given, or the real one when
 * hlen == UINT64_MAX), header text, data. */
static void write_raw_st(const char *path, uint64_t hlen, const char *header, const void *data,
                         size_t data_len) {
    size_t hn = strlen(header);
    if (hlen == UINT64_MAX) hlen = hn;
    size_t total = 8 + hn + data_len;
    uint8_t *buf = malloc(total);
    for (int k = 0; k < 8; k++) buf[k] = (uint8_t)(hlen >> (8 * k));
    memcpy(buf + 8, header, hn);
    if (data_len) memcpy(buf + 8 + hn, data, data_len);
    write_bytes(path, buf, total);
    free(buf);
}

/* Opens a hand-made file that must fail; returns the message. */
static const char *open_fail(const char *path, QErr *err) {
    SafeTensors st;
    err->msg[0] = '\0';
    int rc = st_open(&st, path, err);
    CHECK_MSG(rc != 0, "%s opened but should have failed", path);
    if (rc == 0) st_close(&st);
    return err->msg;
}

static uint32_t lcg(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s;
}

static float rnd(uint32_t *s) { return (float)((lcg(s) >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

/* ------------------------------------------------------------------------ */
/* conversions                                                               */

static void test_f16(void) {
    struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        {0x3f800000u, 0x3c00}, /* 1.0 */
        {0xc0000000u, 0xc000}, /* -2.0 */
        {0x00000000u, 0x0000}, /* +0 */
        {0x80000000u, 0x8000}, /* -0 */
        {0x477fe000u, 0x7bff}, /* 65504 = max half */
        {0x477fefffu, 0x7bff}, /* just below the 65520 tie */
        {0x477ff000u, 0x7c00}, /* 65520: tie, rounds to even = inf */
        {0x47800000u, 0x7c00}, /* 65536 */
        {0x7f7fffffu, 0x7c00}, /* FLT_MAX */
        {0x7f800000u, 0x7c00}, /* +inf */
        {0xff800000u, 0xfc00}, /* -inf */
        {0x33800000u, 0x0001}, /* 2^-24: smallest subnormal */
        {0xb3800000u, 0x8001}, /* -2^-24 */
        {0x33000000u, 0x0000}, /* 2^-25: tie between 0 and 2^-24 → 0 (even) */
        {0x33000001u, 0x0001}, /* just above the tie */
        {0x33c00000u, 0x0002}, /* 1.5 * 2^-24: tie between 1 and 2 → 2 (even) */
        {0x34200000u, 0x0002}, /* 2.5 * 2^-24: tie between 2 and 3 → 2 (even) */
        {0x387fc000u, 0x03ff}, /* 1023 * 2^-24: largest subnormal */
        {0x387fe000u, 0x0400}, /* 1023.5 * 2^-24: tie, 0x3ff odd → 0x400 (smallest normal) */
        {0x38800000u, 0x0400}, /* 2^-14: smallest normal */
        {0x3f801000u, 0x3c00}, /* 1 + 2^-11: tie → 1.0 (even) */
        {0x3f803000u, 0x3c02}, /* 1 + 3*2^-11: tie, 0x3c01 odd → 0x3c02 */
        {0x3f801001u, 0x3c01}, /* just above the tie */
        {0x3dcccccdu, 0x2e66}, /* 0.1f */
        {0x3eaaaaabu, 0x3555}, /* 1/3 */
        {0x322bcc77u, 0x0000}, /* 1e-8 underflows */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint16_t h = float_to_f16(fbits(cases[i].in));
        CHECK_MSG(h == cases[i].out, "float_to_f16(0x%08x) = 0x%04x, want 0x%04x", cases[i].in, h,
                  cases[i].out);
    }
    /* NaN stays NaN (quiet), sign kept */
    uint16_t hn = float_to_f16(fbits(0x7f800001u));
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0 && (hn & 0x200));
    hn = float_to_f16(fbits(0xffc00000u));
    CHECK((hn & 0xfc00) == 0xfc00 && (hn & 0x3ff) != 0);

    struct {
        uint16_t in;
        uint32_t out;
    } back[] = {
        {0x0001, 0x33800000u}, {0x8001, 0xb3800000u}, {0x03ff, 0x387fc000u}, {0x0200, 0x38000000u},
        {0x0400, 0x38800000u}, {0x7bff, 0x477fe000u}, {0x7c00, 0x7f800000u}, {0xfc00, 0xff800000u},
        {0x3c00, 0x3f800000u}, {0x8000, 0x80000000u}, {0x3555, 0x3eaaa000u},
    };
    for (size_t i = 0; i < sizeof back / sizeof *back; i++) {
        uint32_t u = bitsf(f16_to_float(back[i].in));
        CHECK_MSG(u == back[i].out, "f16_to_float(0x%04x) = 0x%08x, want 0x%08x", back[i].in, u, back[i].out);
    }
    CHECK(isnan(f16_to_float(0x7e00)) && isnan(f16_to_float(0x7c01)) && isnan(f16_to_float(0xfe00)));
    /* every non-NaN half survives the round trip bit-exactly */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = f16_to_float((uint16_t)h);
        if (isnan(f)) {
            if (!isnan(f16_to_float(float_to_f16(f)))) bad++;
        } else if (float_to_f16(f) != h) {
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d halves do not round-trip", bad);
    /* monotonic between neighbouring halves: midpoints go to the even one */
    bad = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double a = f16_to_float((uint16_t)h), b = f16_to_float((uint16_t)(h + 1));
        float mid = (float)((a + b) / 2); /* exact in float */
        uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (float_to_f16(mid) != want) bad++;
    }
    CHECK_MSG(bad == 0, "%d half midpoints not rounded to even", bad);
}

/* ------------------------------------------------------------------------ */
/* safetensors round trip                                                    */

static void test_roundtrip(const char *tmp) {
    QErr err = {{0}};
    char path[1024];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmp);

    float f32[6] = {1.0f, -2.5f, 3.14159274f, fbits(0x00000001u), INFINITY, fbits(0x7fc12345u)};
    float half_src[6] = {1.0f, 65520.0f, fbits(0x33800000u), -0.0f, 0.1f, fbits(0x3f801000u)};
    const uint16_t half_bits[6] = {0x3c00, 0x7c00, 0x0001, 0x8000, 0x2e66, 0x3c00};
    float bf_src[4] = {1.0f, fbits(0x3f818000u), -INFINITY, fbits(0x7f800001u)};
    const uint16_t bf_bits[4] = {0x3f80, 0x3f82, 0xff80, 0x7fc0};
    int32_t ints[3] = {7, -1, 123456};

    StWriter w;
    st_writer_init(&w);
    int64_t s23[2] = {2, 3}, s6[1] = {6}, s4[1] = {4}, s3[1] = {3}, s03[2] = {0, 3};
    /* added out of name order on purpose */
    CHECK(st_writer_add_f32(&w, "zeta.f32", ST_F32, 2, s23, f32, &err) == 0);
    CHECK(st_writer_add_f32(&w, "beta.f16", ST_F16, 1, s6, half_src, &err) == 0);
    CHECK(st_writer_add_f32(&w, "alpha.bf16", ST_BF16, 1, s4, bf_src, &err) == 0);
    CHECK(st_writer_add(&w, "gamma.i32", ST_I32, 1, s3, ints, sizeof ints, &err) == 0);
    float scalar = 42.0f;
    CHECK(st_writer_add_f32(&w, "scalar", ST_F32, 0, NULL, &scalar, &err) == 0);
    CHECK(st_writer_add_f32(&w, "empty", ST_F32, 2, s03, NULL, &err) == 0);
    float *owned = malloc(3 * sizeof *owned);
    owned[0] = 1, owned[1] = 2, owned[2] = 3;
    CHECK(st_writer_add_f32_owned(&w, "owned", ST_F32, 1, s3, owned, &err) == 0);
    CHECK(st_writer_set_metadata(&w, "format", "pt", &err) == 0);
    CHECK(st_writer_set_metadata(&w, "note", "quote\" and \\ and \n", &err) == 0);
    /* writer errors */
    CHECK(st_writer_add_f32(&w, "zeta.f32", ST_F32, 2, s23, f32, &err) != 0);
    CHECK_ERR(err.msg, "duplicate tensor 'zeta.f32'");
    CHECK(st_writer_add(&w, "bad.size", ST_I32, 1, s3, ints, 8, &err) != 0);
    CHECK_ERR(err.msg, "need 12");
    CHECK(st_writer_add_f32(&w, "bad.dtype", ST_I8, 1, s3, f32, &err) != 0);
    CHECK_ERR(err.msg, "bad.dtype");
    CHECK(st_writer_add_f32_owned(&w, "zeta.f32", ST_F32, 1, s3, malloc(12), &err) != 0); /* freed */
    CHECK(st_writer_write(&w, path, &err) == 0);
    st_writer_free(&w);

    SafeTensors st;
    if (st_open(&st, path, &err) != 0) {
        CHECK_MSG(0, "st_open: %s", err.msg);
        return;
    }
    CHECK(st.n_tensors == 7);
    /* header padded to 8, tensors packed in name order */
    CHECK((st.mf.size - st.data_size) % 8 == 0);
    const char *order[] = {"alpha.bf16", "beta.f16", "empty", "gamma.i32", "owned", "scalar", "zeta.f32"};
    size_t off = 0;
    for (int i = 0; i < 7; i++) {
        const StTensor *t = st_find(&st, order[i]);
        CHECK_MSG(t != NULL, "missing %s", order[i]);
        if (!t) continue;
        CHECK_MSG(t->begin == off, "%s begins at %zu, want %zu", order[i], t->begin, off);
        off = t->end;
    }
    CHECK(off == st.data_size);
    CHECK(st_find(&st, "nope") == NULL);
    CHECK(st_metadata_get(&st, "format") && strcmp(st_metadata_get(&st, "format"), "pt") == 0);
    CHECK(st_metadata_get(&st, "note") && strcmp(st_metadata_get(&st, "note"), "quote\" and \\ and \n") == 0);
    CHECK(st_metadata_get(&st, "absent") == NULL);

    const StTensor *t = st_find(&st, "zeta.f32");
    float out[8];
    if (t) {
        CHECK(t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
        CHECK(st_read_f32(&st, t, out, 6, &err) == 0);
        CHECK(memcmp(out, f32, sizeof f32) == 0); /* bit-exact incl. subnormal, inf, NaN payload */
        CHECK(memcmp(st.data + t->begin, f32, sizeof f32) == 0);
        /* wrong element count names the tensor, expected and found */
        CHECK(st_read_f32(&st, t, out, 5, &err) != 0);
        CHECK_ERR(err.msg, "zeta.f32");
        CHECK_ERR(err.msg, "expected 5 elements, found 6");
        int64_t want[2] = {3, 2};
        CHECK(st_check_shape(&st, t, 2, want, &err) != 0);
        CHECK_ERR(err.msg, "expected shape [3, 2], found [2, 3]");
        int64_t good[2] = {2, 3};
        CHECK(st_check_shape(&st, t, 2, good, &err) == 0);
    }
    t = st_find(&st, "beta.f16");
    if (t) {
        CHECK(t->dtype == ST_F16);
        for (int i = 0; i < 6; i++) {
            uint16_t h = (uint16_t)(st.data[t->begin + 2 * i] | st.data[t->begin + 2 * i + 1] << 8);
            CHECK_MSG(h == half_bits[i], "f16[%d] = 0x%04x, want 0x%04x", i, h, half_bits[i]);
        }
        CHECK(st_read_f32(&st, t, out, 6, &err) == 0);
        for (int i = 0; i < 6; i++) CHECK(bitsf(out[i]) == bitsf(f16_to_float(half_bits[i])));
    }
    t = st_find(&st, "alpha.bf16");
    if (t) {
        CHECK(t->dtype == ST_BF16);
        for (int i = 0; i < 4; i++) {
            uint16_t h = (uint16_t)(st.data[t->begin + 2 * i] | st.data[t->begin + 2 * i + 1] << 8);
            CHECK_MSG(h == bf_bits[i], "bf16[%d] = 0x%04x, want 0x%04x", i, h, bf_bits[i]);
        }
        CHECK(st_read_f32(&st, t, out, 4, &err) == 0);
        CHECK(out[0] == 1.0f && bitsf(out[1]) == 0x3f820000u && out[2] == -INFINITY && isnan(out[3]));
    }
    t = st_find(&st, "gamma.i32");
    if (t) {
        CHECK(t->dtype == ST_I32 && memcmp(st.data + t->begin, ints, sizeof ints) == 0);
        CHECK(st_read_f32(&st, t, out, 3, &err) != 0);
        CHECK_ERR(err.msg, "gamma.i32");
        CHECK_ERR(err.msg, "I32");
    }
    t = st_find(&st, "scalar");
    if (t) {
        CHECK(t->ndim == 0 && st_numel(t) == 1);
        CHECK(st_read_f32(&st, t, out, 1, &err) == 0 && out[0] == 42.0f);
    }
    t = st_find(&st, "empty");
    if (t) CHECK(t->ndim == 2 && st_numel(t) == 0 && t->begin == t->end);
    t = st_find(&st, "owned");
    if (t) CHECK(st_read_f32(&st, t, out, 3, &err) == 0 && out[2] == 3.0f);
    st_close(&st);

    /* a hand-made file with an odd header length: data unaligned, F64 too */
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]},"
                      "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[9,25]},"
                      "\"__metadata__\":{\"k\":\"v\"}}";
    uint8_t data[25] = {0};
    float av[2] = {1.5f, -7.25f};
    double dv[2] = {0.5, 1e300};
    memcpy(data + 1, av, 8);
    memcpy(data + 9, dv, 16);
    snprintf(path, sizeof path, "%s/odd.safetensors", tmp);
    write_raw_st(path, UINT64_MAX, hdr, data, sizeof data);
    if (st_open(&st, path, &err) == 0) {
        CHECK((st.data - st.mf.data) % 2 == 1 || strlen(hdr) % 2 == 1);
        CHECK(st_read_f32(&st, st_find(&st, "a"), out, 2, &err) == 0);
        CHECK(out[0] == 1.5f && out[1] == -7.25f);
        CHECK(st_read_f32(&st, st_find(&st, "d"), out, 2, &err) == 0);
        CHECK(out[0] == 0.5f && out[1] == INFINITY);
        CHECK(st_metadata_get(&st, "k") && strcmp(st_metadata_get(&st, "k"), "v") == 0);
        st_close(&st);
    } else {
        CHECK_MSG(0, "odd-header file: %s", err.msg);
    }
    /* gaps between tensors and whitespace padding are accepted */
    const char *gap = "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}   \n";
    snprintf(path, sizeof path, "%s/gap.safetensors", tmp);
    write_raw_st(path, UINT64_MAX, gap, data, 8);
    if (st_open(&st, path, &err) == 0)
        st_close(&st);
    else
        CHECK_MSG(0, "gap file: %s", err.msg);
}

/* ------------------------------------------------------------------------ */
/* safetensors failure paths                                                 */

/* Headers that must be refused (the length field the header's own), the
 * data bytes that follow them, and what the message must say. */
static const struct {
    const char *file, *header;
    size_t data_len;
    const char *says[3];
} BAD_HEADERS[] = {
    {"badjson", "{\"a\": {\"dtype\": \"F32\", ", 0, {"not valid JSON", "badjson.safetensors"}},
    {"badjson", "{} trailing", 0, {"not valid JSON"}},
    {"badjson", "[1, 2]", 0, {"'{'"}},
    {"badjson", "{\"a\": 5}", 0, {"tensor 'a'", "must be an object"}},
    {"dtype",
     "{\"w.fp8\":{\"dtype\":\"F8_E4M3X\",\"shape\":[4],\"data_offsets\":[0,4]}}",
     4,
     {"unknown dtype 'F8_E4M3X'", "tensor 'w.fp8'", "dtype.safetensors"}},
    {"dtype", "{\"w\":{\"shape\":[4],\"data_offsets\":[0,4]}}", 4, {"\"dtype\""}},
    {"overlap",
     "{\"first\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"second\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12,
     {"overlap", "'first'", "'second'"}},
    /* identical ranges overlap too */
    {"overlap",
     "{\"x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
     "\"y\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
     4,
     {"overlap"}},
    {"range",
     "{\"big\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
     8,
     {"tensor 'big'", "out of range"}},
    {"range", "{\"rev\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, {"begin > end"}},
    {"range", "{\"neg\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8, {"tensor 'neg'"}},
    {"range", "{\"frac\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4]}}", 8, {"tensor 'frac'"}},
    {"range",
     "{\"huge\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e300]}}",
     8,
     {"tensor 'huge'"}},
    {"numel",
     "{\"short\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
     16,
     {"tensor 'short'", "span 8 bytes", "needs 12"}},
    {"numel", "{\"negdim\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 16, {"shape[0]"}},
    {"numel",
     "{\"ovf\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}",
     16,
     {"too large"}},
    {"numel",
     "{\"nd\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
     16,
     {"dimensions"}},
    {"dup",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
     "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
     2,
     {"duplicate tensor 'a'"}},
    {"dup", "{\"__metadata__\":{\"k\":1}}", 0, {"__metadata__"}},
};

static void test_bad_files(const char *tmp) {
    QErr err;
    char path[1024];
    uint8_t data[64] = {0};
    const char *m;

    snprintf(path, sizeof path, "%s/empty.safetensors", tmp);
    write_bytes(path, "", 0);
    m = open_fail(path, &err);
    CHECK_ERR(m, "truncated");
    CHECK_ERR(m, "empty.safetensors");

    snprintf(path, sizeof path, "%s/trunc.safetensors", tmp);
    write_bytes(path, "\x10\x00\x00\x00\x00", 5);
    m = open_fail(path, &err);
    CHECK_ERR(m, "truncated");
    CHECK_ERR(m, "trunc.safetensors");

    /* header length larger than the file (a truncated download) */
    snprintf(path, sizeof path, "%s/longhdr.safetensors", tmp);
    write_raw_st(path, 1000, "{\"a\":{}}", NULL, 0);
    m = open_fail(path, &err);
    CHECK_ERR(m, "header length 1000 exceeds the file size");
    CHECK_ERR(m, "longhdr.safetensors");
    write_raw_st(path, UINT64_MAX - 3, "{}", NULL, 0);
    m = open_fail(path, &err);
    CHECK_ERR(m, "exceeds the file size");

    /* header length over the 100 MB limit (sparse file) */
    snprintf(path, sizeof path, "%s/huge.safetensors", tmp);
    {
        uint64_t n = (uint64_t)ST_MAX_HEADER + 8;
        uint8_t lb[9];
        for (int k = 0; k < 8; k++) lb[k] = (uint8_t)(n >> (8 * k));
        lb[8] = '{';
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0);
        if (fd >= 0) {
            CHECK(write(fd, lb, 9) == 9);
            CHECK(ftruncate(fd, (off_t)(8 + n)) == 0);
            close(fd);
        }
        m = open_fail(path, &err);
        CHECK_ERR(m, "limit");
        unlink(path);
    }

    for (size_t i = 0; i < sizeof BAD_HEADERS / sizeof BAD_HEADERS[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.safetensors", tmp, BAD_HEADERS[i].file);
        write_raw_st(path, UINT64_MAX, BAD_HEADERS[i].header, data, BAD_HEADERS[i].data_len);
        m = open_fail(path, &err);
        for (int k = 0; k < 3 && BAD_HEADERS[i].says[k]; k++) CHECK_ERR(m, BAD_HEADERS[i].says[k]);
    }
    /* an embedded NUL inside the header */
    snprintf(path, sizeof path, "%s/nul.safetensors", tmp);
    {
        char h[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}XX";
        size_t hl = strlen(h);
        h[hl - 2] = '\0';
        uint8_t buf[128];
        for (int k = 0; k < 8; k++) buf[k] = (uint8_t)((uint64_t)hl >> (8 * k));
        memcpy(buf + 8, h, hl);
        write_bytes(path, buf, 8 + hl);
        m = open_fail(path, &err);
        CHECK_ERR(m, "not valid JSON");
    }

    snprintf(path, sizeof path, "%s/does-not-exist.safetensors", tmp);
    m = open_fail(path, &err);
    CHECK_ERR(m, "does-not-exist.safetensors");
}

/* ------------------------------------------------------------------------ */
/* RoPE permutation                                                          */

static void test_permute(void) {
    /* 2 heads of head_dim 8, 2 columns; row r of head h holds (100h + r, -(100h + r)) */
    float w[2 * 8 * 2];
    for (int h = 0; h < 2; h++)
        for (int r = 0; r < 8; r++) {
            w[(h * 8 + r) * 2] = (float)(100 * h + r);
            w[(h * 8 + r) * 2 + 1] = -(float)(100 * h + r);
        }
    float orig[sizeof w / sizeof *w];
    memcpy(orig, w, sizeof w);
    rope_permute_qk_rows(w, 2, 8, 2, 1);
    const int want[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    for (int h = 0; h < 2; h++)
        for (int r = 0; r < 8; r++) {
            CHECK(w[(h * 8 + r) * 2] == (float)(100 * h + want[r]));
            CHECK(w[(h * 8 + r) * 2 + 1] == -(float)(100 * h + want[r]));
        }
    rope_permute_qk_rows(w, 2, 8, 2, 0);
    CHECK(memcmp(w, orig, sizeof w) == 0);

    /* other head sizes, bias-like vectors (in_dim 1) */
    for (int hd = 2; hd <= 130; hd += 2) {
        float v[130], u[130];
        for (int i = 0; i < hd; i++) v[i] = u[i] = (float)i;
        rope_permute_qk_rows(v, 1, hd, 1, 1);
        int ok = 1;
        for (int i = 0; i < hd; i++) {
            int src = i < hd / 2 ? 2 * i : 2 * (i - hd / 2) + 1;
            if (v[i] != (float)src) ok = 0;
        }
        rope_permute_qk_rows(v, 1, hd, 1, 0);
        if (memcmp(v, u, (size_t)hd * sizeof *v) != 0) ok = 0;
        CHECK_MSG(ok, "permutation wrong for head_dim %d", hd);
    }
    /* odd head_dim / bad sizes: untouched, no crash */
    float z[3] = {1, 2, 3};
    rope_permute_qk_rows(z, 1, 3, 1, 1);
    rope_permute_qk_rows(NULL, 1, 4, 1, 1);
    CHECK(z[0] == 1 && z[1] == 2 && z[2] == 3);
}

/* ------------------------------------------------------------------------ */
/* HF directories                                                            */

static ModelConfig tiny_cfg(int bias, int tied, int halves) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.dim = 8;
    c.hidden_dim = 12;
    c.n_layers = 2;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.head_dim = 4;
    c.vocab_size = 10;
    c.seq_len = 16;
    c.rope_theta = 10000.0f;
    c.norm_eps = 1e-5f;
    c.rope_halves = halves;
    c.has_qkv_bias = bias;
    c.tied_classifier = tied;
    return c;
}

static int make_model(Model *m, ModelConfig c, uint32_t seed) {
    QErr err;
    memset(m, 0, sizeof *m);
    m->cfg = c;
    size_t VC = (size_t)c.vocab_size * c.dim;
    m->tok_emb = malloc(VC * sizeof(float));
    m->final_norm = malloc((size_t)c.dim * sizeof(float));
    m->blocks = calloc((size_t)c.n_layers, sizeof *m->blocks);
    if (!m->tok_emb || !m->final_norm || !m->blocks) return -1;
    for (size_t i = 0; i < VC; i++) m->tok_emb[i] = rnd(&seed);
    for (int i = 0; i < c.dim; i++) m->final_norm[i] = 1.0f + rnd(&seed);
    if (c.tied_classifier) {
        m->classifier = m->tok_emb;
    } else {
        m->classifier = malloc(VC * sizeof(float));
        if (!m->classifier) return -1;
        for (size_t i = 0; i < VC; i++) m->classifier[i] = rnd(&seed);
    }
    for (int j = 0; j < c.n_layers; j++) {
        if (block_weights_alloc(&m->blocks[j], &c, &err) != 0) return -1;
        /* one buffer per block (model.c): fill all of it */
        float *p = m->blocks[j].attn_norm;
        size_t n = block_weights_numel(&c);
        for (size_t i = 0; i < n; i++) p[i] = rnd(&seed);
    }
    return 0;
}

typedef struct {
    const char *name;
    size_t off; /* offsetof in BlockWeights */
    int rows_q; /* 1: q rows, 2: k rows (permuted in llama2.c layout) */
    int bias;
} BT;

static const BT block_tensors[] = {
    {"attn_norm", offsetof(BlockWeights, attn_norm), 0, 0},
    {"wq", offsetof(BlockWeights, wq), 1, 0},
    {"wk", offsetof(BlockWeights, wk), 2, 0},
    {"wv", offsetof(BlockWeights, wv), 0, 0},
    {"wo", offsetof(BlockWeights, wo), 0, 0},
    {"bq", offsetof(BlockWeights, bq), 1, 1},
    {"bk", offsetof(BlockWeights, bk), 2, 1},
    {"bv", offsetof(BlockWeights, bv), 0, 1},
    {"mlp_norm", offsetof(BlockWeights, mlp_norm), 0, 0},
    {"w_gate", offsetof(BlockWeights, w_gate), 0, 0},
    {"w_up", offsetof(BlockWeights, w_up), 0, 0},
    {"w_down", offsetof(BlockWeights, w_down), 0, 0},
};

static size_t bt_numel(const ModelConfig *c, int i) {
    size_t C = c->dim, H = c->hidden_dim, QD = (size_t)c->n_heads * c->head_dim,
           KVD = (size_t)c->n_kv_heads * c->head_dim;
    switch (i) {
    case 0:
    case 8: return C;
    case 1:
    case 4: return QD * C;
    case 2:
    case 3: return KVD * C;
    case 5: return QD;
    case 6:
    case 7: return KVD;
    default: return H * C;
    }
}

static float *bt_ptr(const BlockWeights *bw, int i) {
    float *p;
    memcpy(&p, (const char *)bw + block_tensors[i].off, sizeof p);
    return p;
}

/* Compares a loaded block (HF layout) with the original; f16: values went
 * through fp16 rounding. Returns the number of mismatching tensors. */
static int compare_block(const ModelConfig *orig_c, const BlockWeights *orig, BlockWeights *got, int f16,
                         int j) {
    int bad = 0;
    for (int i = 0; i < (int)(sizeof block_tensors / sizeof *block_tensors); i++) {
        if (block_tensors[i].bias && !orig_c->has_qkv_bias) {
            if (bt_ptr(got, i) != NULL) bad++;
            continue;
        }
        size_t n = bt_numel(orig_c, i);
        float *g = bt_ptr(got, i), *o = bt_ptr(orig, i);
        if (!g || !o) {
            bad++;
            continue;
        }
        if (block_tensors[i].rows_q && orig_c->rope_halves == 0)
            rope_permute_qk_rows(g, block_tensors[i].rows_q == 1 ? orig_c->n_heads : orig_c->n_kv_heads,
                                 orig_c->head_dim, block_tensors[i].bias ? 1 : orig_c->dim, 0);
        int ok = 1;
        for (size_t k = 0; k < n; k++) {
            float want = f16 ? f16_to_float(float_to_f16(o[k])) : o[k];
            if (bitsf(g[k]) != bitsf(want)) ok = 0;
        }
        CHECK_MSG(ok, "block %d tensor %s differs after the round trip", j, block_tensors[i].name);
        if (!ok) bad++;
    }
    return bad;
}

/* hf_open + load everything, compare with m. */
static void check_hf_dir_matches(const char *dir, const Model *m, int f16) {
    QErr err;
    ModelConfig c;
    void *impl = NULL;
    const ModelBackend *be = NULL;
    if (hf_open(dir, &c, &impl, &be, &err) != 0) {
        CHECK_MSG(0, "hf_open(%s): %s", dir, err.msg);
        return;
    }
    const ModelConfig *o = &m->cfg;
    CHECK(c.dim == o->dim && c.hidden_dim == o->hidden_dim && c.n_layers == o->n_layers);
    CHECK(c.n_heads == o->n_heads && c.n_kv_heads == o->n_kv_heads && c.head_dim == o->head_dim);
    CHECK(c.vocab_size == o->vocab_size && c.seq_len == o->seq_len);
    CHECK(c.rope_theta == o->rope_theta && c.norm_eps == o->norm_eps);
    CHECK(c.rope_halves == 1);
    CHECK(c.has_qkv_bias == o->has_qkv_bias);
    CHECK(c.tied_classifier == (o->tied_classifier || m->classifier == m->tok_emb));
    for (int j = 0; j < c.n_layers; j++) {
        BlockWeights bw;
        if (be->load_block(impl, &c, j, &bw, &err) != 0) {
            CHECK_MSG(0, "load_block %d: %s", j, err.msg);
            continue;
        }
        compare_block(o, &m->blocks[j], &bw, f16, j);
        block_weights_free(&bw);
    }
    BlockWeights bw;
    CHECK(be->load_block(impl, &c, c.n_layers, &bw, &err) != 0);
    CHECK_ERR(err.msg, "out of range");
    float *emb, *norm, *cls;
    if (be->load_embeddings(impl, &c, &emb, &norm, &cls, &err) == 0) {
        size_t VC = (size_t)c.vocab_size * c.dim;
        int ok = 1;
        for (size_t i = 0; i < VC; i++) {
            float we = f16 ? f16_to_float(float_to_f16(m->tok_emb[i])) : m->tok_emb[i];
            float wc = f16 ? f16_to_float(float_to_f16(m->classifier[i])) : m->classifier[i];
            if (bitsf(emb[i]) != bitsf(we) || bitsf(cls[i]) != bitsf(wc)) ok = 0;
        }
        for (int i = 0; i < c.dim; i++) {
            float wn = f16 ? f16_to_float(float_to_f16(m->final_norm[i])) : m->final_norm[i];
            if (bitsf(norm[i]) != bitsf(wn)) ok = 0;
        }
        CHECK_MSG(ok, "%s: embeddings differ after the round trip", dir);
        CHECK((cls == emb) == (c.tied_classifier != 0));
        if (cls != emb) free(cls);
        free(emb);
        free(norm);
    } else {
        CHECK_MSG(0, "load_embeddings: %s", err.msg);
    }
    be->close(impl);
}

/* Reads dir/config.json, applies an edit (remove key, or set it), writes it back. */
static void edit_config(const char *dir, const char *key, cJSON *value) {
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    size_t len;
    QErr err;
    if (file_read_all(path, &text, &len, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        cJSON_Delete(value);
        return;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    if (value) cJSON_AddItemToObject(root, key, value);
    char *out = cJSON_Print(root);
    write_text(path, out);
    cJSON_free(out);
    cJSON_Delete(root);
}

static void copy_file(const char *from, const char *to) {
    char *text;
    size_t len;
    QErr err;
    if (file_read_all(from, &text, &len, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    write_bytes(to, text, len);
    free(text);
}

/* Copies every tensor of src into a new safetensors file at dst, except
 * `skip` (may be NULL); shard selects a subset: 0 all, 1 / 2 = the tensors
 * whose index is even / odd. */
static void copy_tensors(const SafeTensors *src, const char *dst, const char *skip, int shard) {
    QErr err;
    StWriter w;
    st_writer_init(&w);
    for (int i = 0; i < src->n_tensors; i++) {
        const StTensor *t = &src->tensors[i];
        if (skip && strcmp(t->name, skip) == 0) continue;
        if (shard && (i % 2) != (shard - 1)) continue;
        CHECK(st_writer_add(&w, t->name, t->dtype, t->ndim, t->shape, src->data + t->begin, t->end - t->begin,
                            &err) == 0);
    }
    CHECK_MSG(st_writer_write(&w, dst, &err) == 0, "%s", err.msg);
    st_writer_free(&w);
}

static const char *hf_open_fail(const char *dir, QErr *err) {
    ModelConfig c;
    void *impl = (void *)1;
    const ModelBackend *be = (const ModelBackend *)1;
    err->msg[0] = '\0';
    int rc = hf_open(dir, &c, &impl, &be, err);
    CHECK_MSG(rc != 0, "hf_open(%s) succeeded but should have failed", dir);
    if (rc == 0) {
        be->close(impl);
    } else {
        CHECK(impl == NULL && be == NULL);
    }
    return err->msg;
}

static void test_hf(const char *tmp) {
    QErr err;
    char dir[1024], path[1200], path2[1200];

    /* 1. llama2.c-layout model (interleaved), biases, untied, F32, nested new dir */
    Model m;
    CHECK(make_model(&m, tiny_cfg(1, 0, 0), 1) == 0);
    snprintf(dir, sizeof dir, "%s/out/a/b", tmp);
    CHECK_MSG(hf_write_dir(dir, &m, 0, &err) == 0, "hf_write_dir: %s", err.msg);
    check_hf_dir_matches(dir, &m, 0);
    {
        /* the stored q rows are in HF order: stored row 1 of head 0 = interleaved row 2 */
        SafeTensors st;
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (st_open(&st, path, &err) == 0) {
            const StTensor *t = st_find(&st, "model.layers.1.self_attn.q_proj.weight");
            float q[16 * 8];
            CHECK(t && st_read_f32(&st, t, q, 8 * 8, &err) == 0);
            if (t) {
                CHECK(memcmp(q + 1 * 8, m.blocks[1].wq + 2 * 8, 8 * sizeof(float)) == 0);
                CHECK(memcmp(q + 2 * 8, m.blocks[1].wq + 1 * 8, 8 * sizeof(float)) == 0);
                CHECK(memcmp(q + 4 * 8, m.blocks[1].wq + 4 * 8, 8 * sizeof(float)) == 0); /* head 1 row 0 */
            }
            CHECK(st_find(&st, "lm_head.weight") != NULL);
            CHECK(st_metadata_get(&st, "format") && strcmp(st_metadata_get(&st, "format"), "pt") == 0);
            st_close(&st);
        } else {
            CHECK_MSG(0, "%s", err.msg);
        }
        char *text;
        size_t len;
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (file_read_all(path, &text, &len, &err) == 0) {
            cJSON *root = cJSON_Parse(text);
            CHECK(root != NULL);
            const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "rms_norm_eps");
            CHECK(cJSON_IsNumber(eps) && eps->valuedouble == 1e-5);
            const cJSON *td = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
            CHECK(cJSON_IsString(td) && strcmp(td->valuestring, "float32") == 0);
            CHECK(strstr(text, "\"rms_norm_eps\":\t1e-05") != NULL);
            /* q/k/v biases without an o_proj bias: Qwen2's layout */
            const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
            CHECK(cJSON_IsString(mt) && strcmp(mt->valuestring, "qwen2") == 0);
            cJSON_Delete(root);
            free(text);
        }
    }
    /* the same through model.c's dispatch (a directory → hf_open) */
    {
        Model l;
        if (model_load(&l, dir, &err) == 0) {
            CHECK(l.cfg.rope_halves == 1 && l.cfg.has_qkv_bias == 1 && l.classifier != l.tok_emb);
            for (int j = 0; j < l.cfg.n_layers; j++) compare_block(&m.cfg, &m.blocks[j], &l.blocks[j], 0, j);
            model_free(&l);
        } else {
            CHECK_MSG(0, "model_load(%s): %s", dir, err.msg);
        }
    }

    /* 2. the sharded form of the same checkpoint: two shards + index by hand */
    char sdir[1024];
    snprintf(sdir, sizeof sdir, "%s/sharded", tmp);
    mkdir(sdir, 0755);
    {
        SafeTensors st;
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (st_open(&st, path, &err) == 0) {
            snprintf(path2, sizeof path2, "%s/model-00001-of-00002.safetensors", sdir);
            copy_tensors(&st, path2, NULL, 1);
            snprintf(path2, sizeof path2, "%s/model-00002-of-00002.safetensors", sdir);
            copy_tensors(&st, path2, NULL, 2);
            cJSON *root = cJSON_CreateObject();
            cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
            cJSON_AddNumberToObject(meta, "total_size", (double)st.data_size);
            cJSON *wm = cJSON_AddObjectToObject(root, "weight_map");
            for (int i = 0; i < st.n_tensors; i++)
                cJSON_AddStringToObject(wm, st.tensors[i].name,
                                        i % 2 ? "model-00002-of-00002.safetensors"
                                              : "model-00001-of-00002.safetensors");
            char *text = cJSON_Print(root);
            snprintf(path2, sizeof path2, "%s/model.safetensors.index.json", sdir);
            write_text(path2, text);
            cJSON_free(text);
            cJSON_Delete(root);
            st_close(&st);
        } else {
            CHECK_MSG(0, "%s", err.msg);
        }
        snprintf(path, sizeof path, "%s/config.json", dir);
        snprintf(path2, sizeof path2, "%s/config.json", sdir);
        copy_file(path, path2);
    }
    check_hf_dir_matches(sdir, &m, 0);

    /* sharded failures: tensor absent from weight_map; map points at the wrong shard;
     * unsafe shard name; missing shard file */
    {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", sdir);
        char *orig;
        size_t len;
        CHECK(file_read_all(path, &orig, &len, &err) == 0);
        cJSON *root = cJSON_Parse(orig);
        cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");

        cJSON_DeleteItemFromObjectCaseSensitive(wm, "model.layers.1.mlp.up_proj.weight");
        char *t1 = cJSON_Print(root);
        write_text(path, t1);
        cJSON_free(t1);
        const char *msg = hf_open_fail(sdir, &err);
        CHECK_ERR(msg, "missing tensor 'model.layers.1.mlp.up_proj.weight'");
        CHECK_ERR(msg, "model.safetensors.index.json");

        /* which shard holds down_proj? point it at the other one */
        const cJSON *dp = cJSON_GetObjectItemCaseSensitive(wm, "model.layers.0.mlp.down_proj.weight");
        int in_first = dp && strstr(dp->valuestring, "00001") != NULL;
        cJSON_AddStringToObject(wm, "model.layers.1.mlp.up_proj.weight", "model-00001-of-00002.safetensors");
        cJSON_ReplaceItemInObjectCaseSensitive(wm, "model.layers.0.mlp.down_proj.weight",
                                               cJSON_CreateString(in_first
                                                                      ? "model-00002-of-00002.safetensors"
                                                                      : "model-00001-of-00002.safetensors"));
        t1 = cJSON_Print(root);
        write_text(path, t1);
        cJSON_free(t1);
        msg = hf_open_fail(sdir, &err);
        CHECK_ERR(msg, "missing tensor 'model.layers");
        CHECK_ERR(msg, in_first ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors");

        cJSON_ReplaceItemInObjectCaseSensitive(wm, "model.layers.0.mlp.down_proj.weight",
                                               cJSON_CreateString("../model.safetensors"));
        t1 = cJSON_Print(root);
        write_text(path, t1);
        cJSON_free(t1);
        msg = hf_open_fail(sdir, &err);
        CHECK_ERR(msg, "shard file name");

        cJSON_ReplaceItemInObjectCaseSensitive(wm, "model.layers.0.mlp.down_proj.weight",
                                               cJSON_CreateString("model-00003-of-00002.safetensors"));
        t1 = cJSON_Print(root);
        write_text(path, t1);
        cJSON_free(t1);
        msg = hf_open_fail(sdir, &err);
        CHECK_ERR(msg, "model-00003-of-00002.safetensors");

        write_text(path, "{\"weight_map\": [1]}");
        msg = hf_open_fail(sdir, &err);
        CHECK_ERR(msg, "weight_map");
        write_text(path, "{\"weight_map\": ");
        msg = hf_open_fail(sdir, &err);
        CHECK_ERR(msg, "not valid JSON");

        write_text(path, orig); /* restore */
        cJSON_Delete(root);
        free(orig);
    }

    /* 3. missing tensor in a single-file dir */
    char bdir[1024];
    snprintf(bdir, sizeof bdir, "%s/bad", tmp);
    mkdir(bdir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(path2, sizeof path2, "%s/config.json", bdir);
    copy_file(path, path2);
    {
        SafeTensors st;
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (st_open(&st, path, &err) == 0) {
            snprintf(path2, sizeof path2, "%s/model.safetensors", bdir);
            copy_tensors(&st, path2, "model.layers.1.self_attn.v_proj.weight", 0);
            const char *msg = hf_open_fail(bdir, &err);
            CHECK_ERR(msg, "missing tensor 'model.layers.1.self_attn.v_proj.weight'");
            CHECK_ERR(msg, "bad/model.safetensors");
            /* an o_proj bias we cannot represent is refused, not dropped */
            StWriter w;
            st_writer_init(&w);
            for (int i = 0; i < st.n_tensors; i++) {
                const StTensor *t = &st.tensors[i];
                st_writer_add(&w, t->name, t->dtype, t->ndim, t->shape, st.data + t->begin, t->end - t->begin,
                              &err);
            }
            float ob[8] = {0};
            int64_t s8[1] = {8};
            st_writer_add_f32(&w, "model.layers.0.self_attn.o_proj.bias", ST_F32, 1, s8, ob, &err);
            CHECK(st_writer_write(&w, path2, &err) == 0);
            st_writer_free(&w);
            msg = hf_open_fail(bdir, &err);
            CHECK_ERR(msg, "model.layers.0.self_attn.o_proj.bias");
            /* restore a complete copy */
            copy_tensors(&st, path2, NULL, 0);
            st_close(&st);
        } else {
            CHECK_MSG(0, "%s", err.msg);
        }
    }

    /* 4. config.json problems */
    edit_config(bdir, "hidden_size", NULL);
    const char *msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "config.json: missing field 'hidden_size' (integer)");
    CHECK_ERR(msg, "bad/config.json");
    edit_config(bdir, "hidden_size", cJSON_CreateString("8"));
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "'hidden_size' must be a positive integer");
    edit_config(bdir, "hidden_size", cJSON_CreateNumber(8.5));
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "'hidden_size' must be a positive integer");
    edit_config(bdir, "hidden_size", cJSON_CreateNumber(8));
    /* shape mismatch against the config */
    edit_config(bdir, "intermediate_size", cJSON_CreateNumber(13));
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "model.layers.0.mlp.gate_proj.weight");
    CHECK_ERR(msg, "expected shape [13, 8], found [12, 8]");
    edit_config(bdir, "intermediate_size", cJSON_CreateNumber(12));
    edit_config(bdir, "num_key_value_heads", cJSON_CreateNumber(2));
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "model.layers.0.self_attn.k_proj.weight");
    CHECK_ERR(msg, "expected shape [8, 8], found [4, 8]");
    edit_config(bdir, "num_key_value_heads", cJSON_CreateNumber(1));
    edit_config(bdir, "vocab_size", cJSON_CreateNumber(11));
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "model.embed_tokens.weight");
    CHECK_ERR(msg, "expected shape [11, 8], found [10, 8]");
    edit_config(bdir, "vocab_size", cJSON_CreateNumber(10));
    edit_config(bdir, "num_key_value_heads", cJSON_CreateNumber(3)); /* 2 % 3 != 0 */
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "n_kv_heads");
    edit_config(bdir, "num_key_value_heads", cJSON_CreateNumber(1));
    edit_config(bdir, "model_type", cJSON_CreateString("gemma"));
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "model_type 'gemma'");
    edit_config(bdir, "model_type", cJSON_CreateString("llama"));
    {
        cJSON *rs = cJSON_CreateObject();
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
        edit_config(bdir, "rope_scaling", rs);
        msg = hf_open_fail(bdir, &err);
        CHECK_ERR(msg, "rope_scaling");
        CHECK_ERR(msg, "llama3");
        edit_config(bdir, "rope_scaling", cJSON_CreateNull());
    }
    edit_config(bdir, "rms_norm_eps", cJSON_CreateNumber(-1));
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "rms_norm_eps");
    edit_config(bdir, "rms_norm_eps", cJSON_CreateNumber(1e-5));
    edit_config(bdir, "tie_word_embeddings", cJSON_CreateString("no"));
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "tie_word_embeddings");
    edit_config(bdir, "tie_word_embeddings", cJSON_CreateFalse());
    /* defaults: no num_key_value_heads / head_dim / rope_theta / rms_norm_eps */
    edit_config(bdir, "num_key_value_heads", NULL);
    msg = hf_open_fail(bdir, &err); /* kv heads default to 2 → k_proj shape mismatch */
    CHECK_ERR(msg, "k_proj");
    edit_config(bdir, "num_key_value_heads", cJSON_CreateNumber(1));
    edit_config(bdir, "head_dim", NULL);
    edit_config(bdir, "rope_theta", NULL);
    edit_config(bdir, "rms_norm_eps", NULL);
    {
        ModelConfig c;
        void *impl;
        const ModelBackend *be;
        if (hf_open(bdir, &c, &impl, &be, &err) == 0) {
            CHECK(c.head_dim == 4 && c.rope_theta == 10000.0f && c.norm_eps == 1e-6f);
            CHECK(c.has_qkv_bias == 1); /* detected from q_proj.bias */
            be->close(impl);
        } else {
            CHECK_MSG(0, "defaults: %s", err.msg);
        }
    }
    snprintf(path, sizeof path, "%s/config.json", bdir);
    write_text(path, "{\"hidden_size\": 8,");
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "config.json: not valid JSON");
    unlink(path);
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "no config.json");
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(path2, sizeof path2, "%s/config.json", bdir);
    copy_file(path, path2);
    snprintf(path, sizeof path, "%s/model.safetensors", bdir);
    unlink(path);
    msg = hf_open_fail(bdir, &err);
    CHECK_ERR(msg, "no model.safetensors");
    model_free(&m);

    /* 5. HF-layout model (halves), no bias, tied, F16: written as-is */
    CHECK(make_model(&m, tiny_cfg(0, 1, 1), 7) == 0);
    snprintf(dir, sizeof dir, "%s/f16", tmp);
    CHECK_MSG(hf_write_dir(dir, &m, 1, &err) == 0, "hf_write_dir f16: %s", err.msg);
    check_hf_dir_matches(dir, &m, 1);
    {
        SafeTensors st;
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (st_open(&st, path, &err) == 0) {
            CHECK(st_find(&st, "lm_head.weight") == NULL);
            CHECK(st_find(&st, "model.layers.0.self_attn.q_proj.bias") == NULL);
            const StTensor *t = st_find(&st, "model.layers.0.self_attn.q_proj.weight");
            CHECK(t && t->dtype == ST_F16);
            if (t) { /* halves model: row order unchanged */
                uint16_t h;
                memcpy(&h, st.data + t->begin + 2 * 8, 2);
                CHECK(h == float_to_f16(m.blocks[0].wq[8]));
            }
            st_close(&st);
        }
    }
    /* rewriting over an existing dir works (atomic replace) */
    CHECK_MSG(hf_write_dir(dir, &m, 0, &err) == 0, "rewrite: %s", err.msg);
    check_hf_dir_matches(dir, &m, 0);
    model_free(&m);

    /* 6. interleaved, no bias, tied, F32 */
    CHECK(make_model(&m, tiny_cfg(0, 1, 0), 9) == 0);
    snprintf(dir, sizeof dir, "%s/tied32/", tmp); /* trailing slash is fine */
    CHECK_MSG(hf_write_dir(dir, &m, 0, &err) == 0, "hf_write_dir: %s", err.msg);
    check_hf_dir_matches(dir, &m, 0);
    /* writer refuses an incomplete model */
    BlockWeights keep = m.blocks[1];
    m.blocks[1].w_up = NULL;
    CHECK(hf_write_dir(dir, &m, 0, &err) != 0);
    CHECK_ERR(err.msg, "block 1");
    m.blocks[1] = keep;
    CHECK(hf_write_dir("", &m, 0, &err) != 0);
    /* a path under a regular file cannot be created */
    snprintf(path, sizeof path, "%s/model.safetensors/sub", dir);
    CHECK(hf_write_dir(path, &m, 0, &err) != 0);
    model_free(&m);
}

int main(void) {
    char tmpl[] = "/tmp/quept-st-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    if (!tmp) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    test_f16();
    test_permute();
    test_roundtrip(tmp);
    test_bad_files(tmp);
    test_hf(tmp);
    rm_tree(tmp);
    CHECK_DONE();
}
