/* test_tokenizer.c — the llama2.c tokenizer against independent expectations.
 *
 * 1. A tiny hand-made vocab (no ../shared needed): merge order, ties, the
 *    -1e10 score floor, byte-token decoding, bad files.
 * 2. The Llama 2 vocab (../shared/models/llama2-tokenizer.bin): ids published
 *    in karpathy/llama2.c test.c (from sentencepiece), ids from our Python
 *    reference tests/ref/tokenizer_ref.py, round trips and golden hashes of
 *    whole-file encodings (tests/data/tokenizer_golden.txt, same script). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "check.h"
#include "data/tokenizer.h"

static int same_ids(const int *got, int n_got, const int *want, int n_want) {
    if (n_got != n_want) return 0;
    for (int i = 0; i < n_got; i++)
        if (got[i] != want[i]) return 0;
    return 1;
}

static void print_ids(const char *label, const int *ids, int n) {
    fprintf(stderr, "  %s (%d):", label, n);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Encodes text and compares with the expected ids; prints both on mismatch. */
static void check_encode(const Tokenizer *t, const char *name, const char *text, int bos, int eos,
                         const int *want, int n_want) {
    QErr err = {{0}};
    int *ids = NULL, n = 0;
    int rc = tokenizer_encode(t, text, bos, eos, &ids, &n, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    if (rc != 0) return;
    CHECK_MSG(ids != NULL, "%s: tokens must be allocated even when empty", name);
    if (!same_ids(ids, n, want, n_want)) {
        CHECK_MSG(0, "%s: wrong ids", name);
        print_ids("got", ids, n);
        print_ids("want", want, n_want);
    }
    free(ids);
}

/* encode(bos=1) then decode must give the text back. */
static int round_trips(const Tokenizer *t, const char *text) {
    QErr err = {{0}};
    int *ids = NULL, n = 0;
    char *back = NULL;
    if (tokenizer_encode(t, text, 1, 0, &ids, &n, &err) != 0) return 0;
    int ok = tokenizer_decode(t, ids, n, &back, &err) == 0 && strcmp(back, text) == 0;
    free(ids);
    free(back);
    return ok;
}

/* Writes a llama2.c tokenizer file from strings and scores. */
static void write_tokenizer(const char *path, int32_t max_len, int n, const char *const *strs,
                            const float *scores) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(&max_len, 4, 1, f);
    for (int i = 0; i < n; i++) {
        int32_t len = (int32_t)strlen(strs[i]);
        fwrite(&scores[i], 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(strs[i], 1, (size_t)len, f);
    }
    fclose(f);
}

static void write_bytes(const char *path, const void *buf, size_t n) {
    QErr err = {{0}};
    if (file_write_all(path, buf, n, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
}

/* Loading must fail with a message containing all of the given fragments. */
static void check_load_fails(const char *path, int vocab_size, const char *frag1, const char *frag2) {
    QErr err = {{0}};
    Tokenizer *t = (Tokenizer *)1;
    int rc = tokenizer_load(&t, path, vocab_size, &err);
    CHECK_MSG(rc == -1 && t == NULL, "%s (vocab %d) should not load", path, vocab_size);
    CHECK_MSG(strstr(err.msg, path) != NULL, "message should name the file: %s", err.msg);
    CHECK_MSG(!frag1 || strstr(err.msg, frag1), "message should say '%s': %s", frag1, err.msg);
    CHECK_MSG(!frag2 || strstr(err.msg, frag2), "message should say '%s': %s", frag2, err.msg);
    if (rc == 0) tokenizer_free(t);
}

/* ------------------------------------------------------------ tiny vocab */

static void test_tiny(const char *dir) {
    static const char *const strs[] = {"<unk>", "\n<s>\n", "\n</s>\n", " ",  "a",   "b",
                                       "aa",    "ab",      "<0x41>",   "bb", "<0x4"};
    static const float scores[] = {0, 0, 0, -1e9f, 0, 0, 1.0f, 2.0f, 0, -3e10f, 0};
    char path[600];
    snprintf(path, sizeof path, "%s/tiny.bin", dir);
    write_tokenizer(path, 6, 11, strs, scores);

    QErr err = {{0}};
    Tokenizer *t = NULL;
    CHECK_MSG(tokenizer_load(&t, path, 0, &err) == 0, "%s", err.msg);
    if (!t) return;
    CHECK(tokenizer_vocab_size(t) == 11);
    CHECK(tokenizer_max_token_length(t) == 6);
    CHECK(tokenizer_lookup(t, "ab") == 7);
    CHECK(tokenizer_lookup(t, "abc") == -1);
    CHECK(tokenizer_score(t, 7) == 2.0f);

    /* " aaa": the two "aa" pairs tie; llama2.c merges the leftmost */
    check_encode(t, "tie", "aaa", 1, 0, (const int[]){1, 3, 6, 4}, 4);
    /* "aab": "ab" (2.0) beats the earlier "aa" (1.0) */
    check_encode(t, "best", "aab", 1, 1, (const int[]){1, 3, 4, 7, 2}, 5);
    /* "bb" scores -3e10, below llama2.c's -1e10 floor: never merged */
    check_encode(t, "floor", "bb", 0, 0, (const int[]){3, 5, 5}, 3);
    check_encode(t, "empty", "", 1, 0, (const int[]){1}, 1);
    check_encode(t, "empty_nobos", "", 0, 0, NULL, 0);

    /* 'z' is not in the vocab and its byte token 0x7A+3 is out of range */
    int *ids = NULL, n = 0;
    CHECK(tokenizer_encode(t, "az", 1, 0, &ids, &n, &err) == -1 && ids == NULL);
    CHECK_MSG(strstr(err.msg, "0x7A") && strstr(err.msg, "offset 1"), "%s", err.msg);

    CHECK(strcmp(tokenizer_piece(t, 0, 8), "A") == 0);     /* byte token */
    CHECK(strcmp(tokenizer_piece(t, 0, 10), "<0x4") == 0); /* not one */
    CHECK(strcmp(tokenizer_piece(t, 1, 3), "") == 0);      /* space after BOS */
    CHECK(strcmp(tokenizer_piece(t, 4, 3), " ") == 0);
    CHECK(tokenizer_piece(t, 0, 11) == NULL && tokenizer_piece(t, 0, -1) == NULL);
    char *s = NULL;
    CHECK(tokenizer_decode(t, (const int[]){1, 3, 6, 4, 8, 2}, 6, &s, &err) == 0);
    CHECK_MSG(s && strcmp(s, "aaaA") == 0, "decode gave '%s'", s ? s : "(null)");
    free(s);
    CHECK(tokenizer_decode(t, (const int[]){4, 11}, 2, &s, &err) == -1 && s == NULL);
    CHECK_MSG(strstr(err.msg, "token 11 at position 1"), "%s", err.msg);
    tokenizer_free(t);

    /* the file must hold exactly the expected count */
    check_load_fails(path, 12, "truncated at token 11 of 12", NULL);
    check_load_fails(path, 10, "more tokens than the expected vocab_size 10", NULL);
}

/* A tokenizer file put together field by field. */
typedef struct {
    uint8_t b[64];
    size_t n;
} Rec;

static void rec_i32(Rec *r, int32_t v) {
    memcpy(r->b + r->n, &v, 4);
    r->n += 4;
}

static void rec_str(Rec *r, const char *s) {
    memcpy(r->b + r->n, s, strlen(s));
    r->n += strlen(s);
}

/* max_token_length 8; token 0 = "x"; token 1 with the given length field */
static Rec two_tokens(int32_t len1) {
    Rec r = {{0}, 0};
    rec_i32(&r, 8);
    rec_i32(&r, 0); /* score 0.0f */
    rec_i32(&r, 1);
    rec_str(&r, "x");
    rec_i32(&r, 0);
    rec_i32(&r, len1);
    return r;
}

static void test_bad_files(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/bad.bin", dir);
    Rec r;

    write_bytes(path, "", 0);
    check_load_fails(path, 0, "too short", NULL);
    write_bytes(path, "ab", 2);
    check_load_fails(path, 0, "too short", NULL);

    int32_t v = 0;
    write_bytes(path, &v, 4);
    check_load_fails(path, 0, "max_token_length is 0", NULL);
    v = -7;
    write_bytes(path, &v, 4);
    check_load_fails(path, 0, "max_token_length is -7", NULL);
    v = 8;
    write_bytes(path, &v, 4);
    check_load_fails(path, 0, "no tokens", NULL);

    r = two_tokens(-5);
    write_bytes(path, r.b, r.n);
    check_load_fails(path, 0, "token 1", "negative length -5");

    r = two_tokens(1000);
    write_bytes(path, r.b, r.n);
    check_load_fails(path, 0, "token 1", "length 1000 exceeds max_token_length 8");

    r = two_tokens(5); /* claims 5 bytes, 2 are there */
    rec_str(&r, "ab");
    write_bytes(path, r.b, r.n);
    check_load_fails(path, 0, "truncated at token 1", "only 2 bytes left");

    r = two_tokens(2);
    rec_str(&r, "ab");
    write_bytes(path, r.b, r.n);
    QErr err = {{0}};
    Tokenizer *t = NULL;
    CHECK_MSG(tokenizer_load(&t, path, 0, &err) == 0, "the well-formed 2-token file: %s", err.msg);
    CHECK(t && tokenizer_vocab_size(t) == 2);
    tokenizer_free(t);

    r.n -= 7; /* cut inside token 1's score/length fields */
    write_bytes(path, r.b, r.n);
    check_load_fails(path, 0, "truncated at token 1", "need 8 bytes");

    /* garbage: a text file */
    const char *txt = "this is not a tokenizer file, just some words\n";
    write_bytes(path, txt, strlen(txt));
    check_load_fails(path, 0, "token 0", NULL);

    char missing[600];
    snprintf(missing, sizeof missing, "%s/does-not-exist.bin", dir);
    check_load_fails(missing, 0, "cannot open", NULL);
    unlink(path);
}

/* ----------------------------------------------------------- llama 2 vocab */

/* Ids published in karpathy/llama2.c test.c (obtained there from
 * sentencepiece), all encoded with bos=1, eos=0. */
static const struct {
    const char *text;
    int n;
    int ids[64];
} PUBLISHED[] = {
    {"", 1, {1}},
    {"I believe the meaning of life is", 8, {1, 306, 4658, 278, 6593, 310, 2834, 338}},
    {"Simply put, the theory of relativity states that ",
     13,
     {1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922, 393, 29871}},
    {"A brief message congratulating the team on the launch:\n\n        Hi everyone,\n\n"
     "        I just ",
     26,
     {1,     319, 11473, 2643, 378,  629,   271,   18099, 278, 3815, 373, 278, 6826,
      29901, 13,  13,    4706, 6324, 14332, 29892, 13,    13,  4706, 306, 925, 29871}},
    {"Translate English to French:\n\n        sea otter => loutre de mer\n        peppermint "
     "=> menthe poivr\303\251e\n        plush girafe => girafe peluche\n        cheese =>",
     50,
     {1,   4103, 9632, 4223, 304,  5176, 29901, 13,   13,   4706, 7205,  4932, 357,  1149,  301,  449, 276,
      316, 2778, 13,   4706, 1236, 407,  837,   524,  1149, 6042, 354,   772,  440,  29878, 1318, 13,  4706,
      715, 1878, 330,  3055, 1725, 1149, 330,   3055, 1725, 4639, 28754, 13,   4706, 923,   968,  1149}},
};

/* Generated by: /usr/bin/python3 tests/ref/tokenizer_ref.py --cases */
static const struct {
    const char *name, *text;
    int bos, eos, n;
    int ids[32];
} OWN[] = {
    {"hello_bos_eos", "Hello world", 1, 1, 4, {1, 15043, 3186, 2}},
    {"no_bos", "Hello world", 0, 0, 2, {15043, 3186}},
    {"empty_no_bos", "", 0, 0, 0, {0}},
    {"single_space", " ", 1, 0, 2, {1, 259}},
    {"wikitext_line", " = Robert Boulter = \015", 1, 0, 9, {1, 29871, 353, 4755, 350, 5059, 357, 353, 6756}},
    {"accents_cjk",
     "caf\303\251 na\303\257ve \344\270\226\347\225\214",
     1,
     0,
     9,
     {1, 274, 28059, 1055, 30085, 345, 29871, 30793, 30967}},
    {"emoji_fallback",
     "llama \360\237\246\231 \360\237\230\200!",
     1,
     0,
     14,
     {1, 11148, 3304, 29871, 243, 162, 169, 156, 29871, 243, 162, 155, 131, 29991}},
    {"control_bytes", "tab\011here\001\177", 1, 0, 6, {1, 4434, 12, 4150, 4, 130}},
    {"bad_utf8",
     "\377\376A\200\200\200\200\200z\303",
     1,
     0,
     12,
     {1, 29871, 258, 257, 68, 131, 131, 131, 131, 131, 29920, 198}},
    {"numbers",
     "In 2004 , 3 @.@ 5 km",
     1,
     0,
     15,
     {1, 512, 29871, 29906, 29900, 29900, 29946, 1919, 29871, 29941, 732, 21240, 29871, 29945, 2383}},
};

static uint64_t fnv_ids(uint64_t h, const int *ids, int n) {
    for (int i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xFF;
            h *= 0x100000001B3ULL;
        }
    }
    return h;
}

#define FNV_START 0xCBF29CE484222325ULL

/* Looks up "<kind> <file> <n_tokens> <fnv>" in the golden file. */
static int golden(const char *kind, const char *file, long *n, uint64_t *h) {
    FILE *f = fopen(QUEPT_TEST_DATA "/tokenizer_golden.txt", "r");
    if (!f) return 0;
    char line[512], k[64], name[256];
    unsigned long long hv;
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63s %255s %ld %llx", k, name, n, &hv) == 4 && !strcmp(k, kind) &&
            !strcmp(name, file)) {
            *h = hv;
            found = 1;
        }
    }
    fclose(f);
    return found;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Every line on its own (bos=1): round trip and the golden hash; then the
 * whole file as one text: timed, round trip and the golden hash. */
static void test_text_file(const Tokenizer *t, const char *rel, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", QUEPT_SHARED_DIR, rel);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "note: %s absent, skipping its checks\n", path);
        return;
    }
    QErr err = {{0}};
    char *text = NULL;
    size_t len = 0;
    CHECK_MSG(file_read_all(path, &text, &len, &err) == 0, "%s", err.msg);
    if (!text) return;

    char *copy = malloc(len + 1);
    memcpy(copy, text, len + 1);
    long total = 0, bad_lines = 0, lines = 0;
    uint64_t h = FNV_START;
    for (char *line = copy; line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        int *ids = NULL, n = 0;
        if (tokenizer_encode(t, line, 1, 0, &ids, &n, &err) != 0) {
            CHECK_MSG(0, "%s line %ld: %s", name, lines + 1, err.msg);
            break;
        }
        h = fnv_ids(h, ids, n);
        total += n;
        char *back = NULL;
        if (tokenizer_decode(t, ids, n, &back, &err) != 0 || strcmp(back, line) != 0) {
            if (bad_lines++ < 3) CHECK_MSG(0, "%s line %ld does not round trip", name, lines + 1);
        }
        free(back);
        free(ids);
        lines++;
        line = nl ? nl + 1 : NULL;
    }
    free(copy);
    CHECK_MSG(bad_lines == 0, "%s: %ld of %ld lines do not round trip", name, bad_lines, lines);
    long want_n = 0;
    uint64_t want_h = 0;
    if (golden("lines", name, &want_n, &want_h))
        CHECK_MSG(total == want_n && h == want_h,
                  "%s per line: %ld tokens fnv %016llx, reference %ld %016llx", name, total,
                  (unsigned long long)h, want_n, (unsigned long long)want_h);
    else
        CHECK_MSG(0, "no golden 'lines %s' in tokenizer_golden.txt", name);

    double t0 = now_s();
    int *ids = NULL, n = 0;
    int rc = tokenizer_encode(t, text, 1, 0, &ids, &n, &err);
    double dt = now_s() - t0;
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        printf("encode %s (%zu bytes, %ld lines): %d tokens in %.3f s\n", name, len, lines, n, dt);
        h = fnv_ids(FNV_START, ids, n);
        if (golden("whole", name, &want_n, &want_h))
            CHECK_MSG(n == want_n && h == want_h, "%s whole: %d tokens fnv %016llx, reference %ld %016llx",
                      name, n, (unsigned long long)h, want_n, (unsigned long long)want_h);
        else
            CHECK_MSG(0, "no golden 'whole %s' in tokenizer_golden.txt", name);
        char *back = NULL;
        CHECK_MSG(tokenizer_decode(t, ids, n, &back, &err) == 0 && strcmp(back, text) == 0,
                  "%s: whole-file round trip", name);
        free(back);
    }
    free(ids);
    free(text);
}

static void test_llama2(const char *tok_path, const char *dir) {
    QErr err = {{0}};
    Tokenizer *t = NULL;
    CHECK_MSG(tokenizer_load(&t, tok_path, 32000, &err) == 0, "%s", err.msg);
    if (!t) return;
    CHECK(tokenizer_vocab_size(t) == 32000);
    CHECK(tokenizer_max_token_length(t) == 27);
    {
        Tokenizer *t0 = NULL;
        CHECK_MSG(tokenizer_load(&t0, tok_path, 0, &err) == 0, "%s", err.msg);
        CHECK(t0 && tokenizer_vocab_size(t0) == 32000);
        tokenizer_free(t0);
    }
    check_load_fails(tok_path, 512, "more tokens than the expected vocab_size 512", NULL);

    for (size_t i = 0; i < sizeof PUBLISHED / sizeof PUBLISHED[0]; i++)
        check_encode(t, PUBLISHED[i].text, PUBLISHED[i].text, 1, 0, PUBLISHED[i].ids, PUBLISHED[i].n);
    for (size_t i = 0; i < sizeof OWN / sizeof OWN[0]; i++)
        check_encode(t, OWN[i].name, OWN[i].text, OWN[i].bos, OWN[i].eos, OWN[i].ids, OWN[i].n);

    /* decode: llama2.c piece semantics */
    CHECK(strcmp(tokenizer_piece(t, 1, 15043), "Hello") == 0);
    CHECK(strcmp(tokenizer_piece(t, 15043, 3186), " world") == 0);
    CHECK(strcmp(tokenizer_piece(t, 0, 13), "\n") == 0);
    CHECK(strcmp(tokenizer_piece(t, 0, 3 + 0xF0), "\xF0") == 0);
    CHECK(strcmp(tokenizer_piece(t, 0, 1), "\n<s>\n") == 0);
    CHECK(tokenizer_piece(t, 0, 32000) == NULL);
    for (size_t i = 0; i < sizeof OWN / sizeof OWN[0]; i++)
        CHECK_MSG(round_trips(t, OWN[i].text), "%s does not round trip", OWN[i].name);
    for (size_t i = 0; i < sizeof PUBLISHED / sizeof PUBLISHED[0]; i++)
        CHECK_MSG(round_trips(t, PUBLISHED[i].text), "published case %zu round trip", i);

    test_text_file(t, "data/wikitext-2-test.txt", "wikitext-2-test.txt");
    test_text_file(t, "data/tinystories-valid-sample.txt", "tinystories-valid-sample.txt");
    tokenizer_free(t);

    /* truncated copies of the real file */
    char *bytes = NULL;
    size_t len = 0;
    CHECK_MSG(file_read_all(tok_path, &bytes, &len, &err) == 0, "%s", err.msg);
    if (!bytes) return;
    char path[600];
    snprintf(path, sizeof path, "%s/truncated.bin", dir);
    write_bytes(path, bytes, 1000);
    check_load_fails(path, 0, "truncated at token", NULL);
    check_load_fails(path, 32000, "truncated at token", "of 32000");
    write_bytes(path, bytes, len - 1);
    check_load_fails(path, 32000, "truncated at token 31999 of 32000", NULL);
    check_load_fails(path, 0, "truncated at token 31999", NULL);
    free(bytes);
    unlink(path);
}

int main(void) {
    char dir[] = "/tmp/quept_test_tokenizer_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_tiny(dir);
    test_bad_files(dir);
    char tiny[600];
    snprintf(tiny, sizeof tiny, "%s/tiny.bin", dir);
    unlink(tiny);

    char buf[1024];
    snprintf(buf, sizeof buf, "%s/models/llama2-tokenizer.bin", QUEPT_SHARED_DIR);
    if (access(buf, R_OK) == 0) test_llama2(buf, dir);
    rmdir(dir);
    if (access(buf, R_OK) != 0 && check_failures == 0)
        shared_path_or_skip("models/llama2-tokenizer.bin", buf, sizeof buf); /* exits 77 */
    CHECK_DONE();
}
