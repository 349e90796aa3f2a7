/* test_tokens.c — QTOK token files and text -> token sequences. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "check.h"
#include "data/tokenizer.h"
#include "data/tokens.h"

static char dir[] = "/tmp/quept_test_tokens_XXXXXX";

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static void write_bytes(const char *path, const void *buf, size_t n) {
    QErr err = {{0}};
    if (file_write_all(path, buf, n, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* tokens_read must fail with a message containing both fragments. */
static void check_read_fails(const char *path, const char *frag1, const char *frag2) {
    QErr err = {{0}};
    TokenSet ts;
    int rc = tokens_read(path, &ts, &err);
    CHECK_MSG(rc == -1 && ts.tokens == NULL, "%s should not read", path);
    CHECK_MSG(strstr(err.msg, path), "message should name the file: %s", err.msg);
    CHECK_MSG(!frag1 || strstr(err.msg, frag1), "message should say '%s': %s", frag1, err.msg);
    CHECK_MSG(!frag2 || strstr(err.msg, frag2), "message should say '%s': %s", frag2, err.msg);
    if (rc == 0) tokens_free(&ts);
}

/* A 3 x 5 set, vocab 100, written to <dir>/a.qtok; returns the file bytes. */
static uint8_t *write_sample(char *path, size_t n_path, size_t *size) {
    int ids[15];
    for (int i = 0; i < 15; i++) ids[i] = (i * 37 + 11) % 100;
    TokenSet ts = {3, 5, 100, ids};
    QErr err = {{0}};
    path_in(path, n_path, "a.qtok");
    CHECK_MSG(tokens_write(path, &ts, &err) == 0, "%s", err.msg);
    char *bytes = NULL;
    CHECK_MSG(file_read_all(path, &bytes, size, &err) == 0, "%s", err.msg);
    return (uint8_t *)bytes;
}

static void test_round_trip(void) {
    char path[600];
    size_t size = 0;
    uint8_t *b = write_sample(path, sizeof path, &size);
    if (!b) return;
    CHECK(size == 24 + 15 * 4);
    CHECK(memcmp(b, "QTOK", 4) == 0);
    CHECK(b[4] == 1 && b[5] == 0 && b[6] == 0 && b[7] == 0); /* version 1, LE */
    CHECK(b[8] == 3 && b[12] == 5 && b[16] == 100 && b[20] == 0);
    CHECK(b[24] == 11 && b[28] == 48); /* ids 0 and 1, LE */
    free(b);

    QErr err = {{0}};
    TokenSet ts;
    CHECK_MSG(tokens_read(path, &ts, &err) == 0, "%s", err.msg);
    CHECK(ts.n_seq == 3 && ts.seq_len == 5 && ts.vocab_size == 100);
    for (int i = 0; ts.tokens && i < 15; i++) CHECK(ts.tokens[i] == (i * 37 + 11) % 100);
    CHECK(tokens_check_vocab(&ts, 100, path, &err) == 0);
    tokens_free(&ts);
    CHECK(ts.tokens == NULL && ts.n_seq == 0);

    /* load_any: by magic, no tokenizer needed; seq_len must match; max_seqs */
    CHECK_MSG(tokens_load_any(path, NULL, 0, 0, &ts, &err) == 0, "%s", err.msg);
    CHECK(ts.n_seq == 3 && ts.seq_len == 5 && ts.tokens && ts.tokens[14] == (14 * 37 + 11) % 100);
    tokens_free(&ts);
    CHECK_MSG(tokens_load_any(path, "/nonexistent/tok.bin", 5, 2, &ts, &err) == 0, "%s", err.msg);
    CHECK(ts.n_seq == 2 && ts.seq_len == 5);
    tokens_free(&ts);
    CHECK(tokens_load_any(path, NULL, 7, 0, &ts, &err) == -1 && ts.tokens == NULL);
    CHECK_MSG(strstr(err.msg, "sequences of 5") && strstr(err.msg, "seq_len 7"), "%s", err.msg);
    unlink(path);
}

static void test_bad_files(void) {
    char path[600], bad[600];
    size_t size = 0;
    uint8_t *b = write_sample(path, sizeof path, &size);
    if (!b) return;
    path_in(bad, sizeof bad, "bad.qtok");

    write_bytes(bad, b, size - 4);
    check_read_fails(bad, "truncated", "needs 84 bytes");
    check_read_fails(bad, "file has 80", NULL);

    uint8_t *more = calloc(1, size + 3);
    memcpy(more, b, size);
    write_bytes(bad, more, size + 3);
    check_read_fails(bad, "3 trailing bytes", NULL);
    free(more);

    write_bytes(bad, b, 10);
    check_read_fails(bad, "too short", "24-byte");

    uint8_t h[84];
    memcpy(h, b, size);
    memcpy(h, "QTOX", 4);
    write_bytes(bad, h, size);
    check_read_fails(bad, "bad magic", "expected \"QTOK\"");

    memcpy(h, b, size);
    put_u32(h + 4, 2);
    write_bytes(bad, h, size);
    check_read_fails(bad, "version 2 is not supported", "version 1");

    memcpy(h, b, size);
    put_u32(h + 20, 9);
    write_bytes(bad, h, size);
    check_read_fails(bad, "reserved", "expected 0");

    memcpy(h, b, size);
    put_u32(h + 8, 0);
    write_bytes(bad, h, size);
    check_read_fails(bad, "n_seq is 0", NULL);

    /* a huge n_seq must be caught by the size check, not allocated */
    memcpy(h, b, size);
    put_u32(h + 8, 0x7FFFFFFF);
    put_u32(h + 12, 0x7FFFFFFF);
    write_bytes(bad, h, size);
    check_read_fails(bad, "truncated", NULL);

    /* id 150 at sequence 2 position 1 with vocab 100 in the header */
    memcpy(h, b, size);
    put_u32(h + 24 + 4 * 11, 150);
    write_bytes(bad, h, size);
    check_read_fails(bad, "token id 150 at sequence 2 position 1", "vocab of 100");

    /* an id that does not fit an int */
    memcpy(h, b, size);
    put_u32(h + 16, 0);
    put_u32(h + 24, 0x80000000u);
    write_bytes(bad, h, size);
    check_read_fails(bad, "2147483648 at sequence 0 position 0", NULL);

    check_read_fails("/nonexistent/x.qtok", "cannot open", NULL);
    free(b);
    unlink(bad);
    unlink(path);
}

static void test_vocab_check(void) {
    int ids[8] = {0, 1, 2, 3, 4, 5, 6, 99};
    TokenSet ts = {2, 4, 0, ids};
    QErr err = {{0}};
    CHECK(tokens_check_vocab(&ts, 100, "calib.qtok", &err) == 0);
    CHECK(tokens_check_vocab(&ts, 99, "calib.qtok", &err) == -1);
    CHECK_MSG(strstr(err.msg, "calib.qtok: token id 99 at sequence 1 position 3") &&
                  strstr(err.msg, "vocab of 99"),
              "%s", err.msg);
    ids[2] = -4;
    CHECK(tokens_check_vocab(&ts, 100, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "token id -4 at sequence 0 position 2"), "%s", err.msg);

    /* the writer refuses what the reader would refuse */
    char path[600];
    path_in(path, sizeof path, "w.qtok");
    CHECK(tokens_write(path, &ts, &err) == -1);
    CHECK_MSG(strstr(err.msg, "token id -4"), "%s", err.msg);
    ids[2] = 2;
    ts.vocab_size = 50;
    CHECK(tokens_write(path, &ts, &err) == -1);
    CHECK_MSG(strstr(err.msg, "token id 99 at sequence 1 position 3"), "%s", err.msg);
    ts.n_seq = 0;
    CHECK(tokens_write(path, &ts, &err) == -1);
    CHECK(access(path, F_OK) != 0);
}

/* A tiny byte-fallback tokenizer: 0-2 specials, 3-258 bytes, then
 * 259 " ", 260 "a", 261 "b", 262 "ab" (1.0), 263 " ab" (2.0). */
static void write_tiny_tokenizer(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    int32_t max_len = 6;
    fwrite(&max_len, 4, 1, f);
    for (int i = 0; i < 264; i++) {
        char s[16];
        float score = 0;
        if (i == 0)
            snprintf(s, sizeof s, "<unk>");
        else if (i == 1)
            snprintf(s, sizeof s, "\n<s>\n");
        else if (i == 2)
            snprintf(s, sizeof s, "\n</s>\n");
        else if (i < 259)
            snprintf(s, sizeof s, "<0x%02X>", i - 3);
        else {
            static const char *const extra[] = {" ", "a", "b", "ab", " ab"};
            static const float sc[] = {-1e9f, 0, 0, 1.0f, 2.0f};
            snprintf(s, sizeof s, "%s", extra[i - 259]);
            score = sc[i - 259];
        }
        int32_t len = (int32_t)strlen(s);
        fwrite(&score, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(s, 1, (size_t)len, f);
    }
    fclose(f);
}

static void test_text(void) {
    char tok[600], txt[600];
    path_in(tok, sizeof tok, "tiny_tok.bin");
    path_in(txt, sizeof txt, "t.txt");
    write_tiny_tokenizer(tok);
    /* " ab ab ab ab\n" -> BOS " ab" x4 <0x0A> (derived by hand) */
    write_bytes(txt, "ab ab ab ab\n", 12);
    static const int want[] = {1, 263, 263, 263, 263, 13};
    QErr err = {{0}};
    TokenSet ts;

    CHECK(tokens_load_any(txt, NULL, 2, 0, &ts, &err) == -1);
    CHECK_MSG(strstr(err.msg, txt) && strstr(err.msg, "--tokenizer"), "%s", err.msg);

    CHECK_MSG(tokens_load_any(txt, tok, 2, 0, &ts, &err) == 0, "%s", err.msg);
    CHECK(ts.n_seq == 3 && ts.seq_len == 2 && ts.vocab_size == 264);
    for (int i = 0; ts.tokens && i < 6; i++) CHECK_MSG(ts.tokens[i] == want[i], "id %d", i);
    tokens_free(&ts);

    CHECK_MSG(tokens_load_any(txt, tok, 4, 0, &ts, &err) == 0, "%s", err.msg); /* tail dropped */
    CHECK(ts.n_seq == 1 && ts.seq_len == 4);
    for (int i = 0; ts.tokens && i < 4; i++) CHECK(ts.tokens[i] == want[i]);
    tokens_free(&ts);

    CHECK_MSG(tokens_load_any(txt, tok, 1, 4, &ts, &err) == 0, "%s", err.msg); /* max_seqs */
    CHECK(ts.n_seq == 4 && ts.seq_len == 1 && ts.tokens && ts.tokens[3] == 263);
    tokens_free(&ts);

    CHECK(tokens_load_any(txt, tok, 7, 0, &ts, &err) == -1);
    CHECK_MSG(strstr(err.msg, "6 tokens, fewer than one sequence of 7"), "%s", err.msg);
    CHECK(tokens_load_any(txt, tok, 0, 0, &ts, &err) == -1);
    CHECK_MSG(strstr(err.msg, "sequence length"), "%s", err.msg);

    write_bytes(txt, "ab\0ab", 5);
    CHECK(tokens_load_any(txt, tok, 1, 0, &ts, &err) == -1);
    CHECK_MSG(strstr(err.msg, "NUL byte at offset 2"), "%s", err.msg);

    char missing[600];
    path_in(missing, sizeof missing, "missing.bin");
    write_bytes(txt, "ab", 2);
    CHECK(tokens_load_any(txt, missing, 1, 0, &ts, &err) == -1);
    CHECK_MSG(strstr(err.msg, missing), "%s", err.msg);
    unlink(txt);
    unlink(tok);
}

/* The real thing when ../shared is there: wikitext through the Llama 2 vocab,
 * then through a QTOK file and back. */
static void test_wikitext(void) {
    char tok[1024], txt[1024];
    snprintf(tok, sizeof tok, "%s/models/llama2-tokenizer.bin", QUEPT_SHARED_DIR);
    snprintf(txt, sizeof txt, "%s/data/wikitext-2-test.txt", QUEPT_SHARED_DIR);
    if (access(tok, R_OK) != 0 || access(txt, R_OK) != 0) {
        printf("note: ../shared absent, wikitext check skipped\n");
        return;
    }
    QErr err = {{0}};
    TokenSet ts, back;
    CHECK_MSG(tokens_load_any(txt, tok, 512, 0, &ts, &err) == 0, "%s", err.msg);
    /* 350182 tokens (tests/data/tokenizer_golden.txt) -> 683 full sequences */
    CHECK_MSG(ts.n_seq == 683 && ts.seq_len == 512 && ts.vocab_size == 32000, "n_seq %d", ts.n_seq);
    CHECK(ts.tokens && ts.tokens[0] == 1);
    CHECK(tokens_check_vocab(&ts, 32000, txt, &err) == 0);
    char path[600];
    path_in(path, sizeof path, "wiki.qtok");
    CHECK_MSG(tokens_write(path, &ts, &err) == 0, "%s", err.msg);
    CHECK_MSG(tokens_load_any(path, NULL, 512, 16, &back, &err) == 0, "%s", err.msg);
    CHECK(back.n_seq == 16 && back.vocab_size == 32000);
    CHECK(back.tokens && ts.tokens && memcmp(back.tokens, ts.tokens, 16 * 512 * sizeof(int)) == 0);
    CHECK(tokens_check_vocab(&back, 512, path, &err) == -1); /* stories260K's vocab */
    CHECK_MSG(strstr(err.msg, "wiki.qtok: token id") && strstr(err.msg, "vocab of 512"), "%s", err.msg);
    tokens_free(&back);
    tokens_free(&ts);
    unlink(path);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_bad_files();
    test_vocab_check();
    test_text();
    test_wikitext();
    rmdir(dir);
    CHECK_DONE();
}
