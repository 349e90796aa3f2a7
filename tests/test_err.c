/* test_err.c — the error codes of QErr (common/base/err.h): qerr_set sets
 * the generic code, qerr_setc the one given, qerr_wrap keeps the code and
 * prepends to the message, qerr_clear resets both, a NULL err is accepted
 * everywhere, and the exit status each code maps to; plus the codes the
 * sources set (the option parser: usage; a missing file: io; a file that is
 * not an artifact, or whose header or data checksum fails: corrupt). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifact/container.h"
#include "base/cli_opts.h"
#include "base/err.h"
#include "base/mapfile.h"
#include "check.h"

static void test_set_and_wrap(void) {
    QErr err = {{0}};
    CHECK(err.code == QERR_FAILED); /* a zeroed QErr holds the generic code */
    CHECK(qerr_setc(&err, QERR_INTERRUPTED, "interrupted by signal %d", 2) == -1);
    CHECK(err.code == QERR_INTERRUPTED && strcmp(err.msg, "interrupted by signal 2") == 0);
    CHECK(qerr_wrap(&err, "job %s", "j1") == -1);
    CHECK(err.code == QERR_INTERRUPTED && strcmp(err.msg, "job j1: interrupted by signal 2") == 0);
    CHECK(qerr_set(&err, "plain %s", "failure") == -1);
    CHECK(err.code == QERR_FAILED && strcmp(err.msg, "plain failure") == 0);
    qerr_setc(&err, QERR_CORRUPT, "bad");
    qerr_clear(&err);
    CHECK(err.code == QERR_FAILED && err.msg[0] == '\0');
    /* every code survives a wrap */
    for (int c = QERR_FAILED; c <= QERR_CANCELLED; c++) {
        qerr_setc(&err, (QErrCode)c, "x");
        qerr_wrap(&err, "a");
        qerr_wrap(&err, "b");
        CHECK_MSG(err.code == (QErrCode)c && strcmp(err.msg, "b: a: x") == 0, "code %d: %d '%s'", c,
                  (int)err.code, err.msg);
    }
}

static void test_null(void) {
    CHECK(qerr_set(NULL, "x %d", 1) == -1);
    CHECK(qerr_setc(NULL, QERR_IO, "x %d", 1) == -1);
    CHECK(qerr_wrap(NULL, "x %d", 1) == -1);
    qerr_clear(NULL);
}

static void test_exit_status(void) {
    CHECK(qerr_exit_status(QERR_USAGE) == 2);
    CHECK(qerr_exit_status(QERR_INTERRUPTED) == 130);
    CHECK(qerr_exit_status(QERR_FAILED) == 1);
    CHECK(qerr_exit_status(QERR_IO) == 1);
    CHECK(qerr_exit_status(QERR_CORRUPT) == 1);
    CHECK(qerr_exit_status(QERR_CANCELLED) == 1);
}

static void test_sources(void) {
    QErr err = {{0}};
    CliOpt o[] = {{"n", 1, 0}, {"flag", 0, 0}};
    int npos, n;
    char a0[] = "--nope", a1[] = "--n", a2[] = "--flag=1", a3[] = "--n=abc";
    char *unknown[] = {a0}, *missing[] = {a1}, *novalue[] = {a2}, *bad[] = {a3};
    CHECK(cli_parse(1, unknown, o, 2, NULL, 0, &npos, &err) == -1 && err.code == QERR_USAGE);
    CHECK(cli_parse(1, missing, o, 2, NULL, 0, &npos, &err) == -1 && err.code == QERR_USAGE);
    CHECK(cli_parse(1, novalue, o, 2, NULL, 0, &npos, &err) == -1 && err.code == QERR_USAGE);
    CHECK(cli_parse(1, bad, o, 2, NULL, 0, &npos, &err) == 0);
    CHECK(cli_get_int(o, 2, "n", 0, 0, 9, &n, &err) == -1 && err.code == QERR_USAGE);

    char dir[] = "/tmp/test_err.XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/absent", dir);
    char *buf = NULL;
    size_t len = 0;
    MappedFile mf;
    CHECK(file_read_all(path, &buf, &len, &err) == -1 && err.code == QERR_IO);
    CHECK(mapfile_open(&mf, path, &err) == -1 && err.code == QERR_IO);

    /* a file with the wrong magic: corrupt */
    snprintf(path, sizeof path, "%s/not.qept", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs("this is not an artifact, only text", f);
        fclose(f);
    }
    ArtReader *r = NULL;
    CHECK(art_open(&r, path, &err) == -1 && err.code == QERR_CORRUPT);
    art_close(r);

    /* an artifact with a flipped bit in the header, then in a tensor's bytes */
    float x[4] = {1, 2, 3, 4};
    int64_t shape[1] = {4};
    ArtWriter *w = art_writer_new(&err);
    CHECK(w && art_writer_add(w, "x", ART_F32, 1, shape, x, 0, &err) == 0 &&
          art_writer_write(w, path, &err) == 0);
    art_writer_free(w);
    CHECK(file_read_all(path, &buf, &len, &err) == 0 && len > ART_PREAMBLE_BYTES + 16);
    if (buf && len > ART_PREAMBLE_BYTES + 16) {
        buf[ART_PREAMBLE_BYTES + 4] ^= 1;
        r = NULL;
        CHECK(art_open_buffer(&r, buf, len, "hdr", &err) == -1 && err.code == QERR_CORRUPT);
        art_close(r);
        buf[ART_PREAMBLE_BYTES + 4] ^= 1;
        buf[len - 1] ^= 1;
        r = NULL;
        float y[4];
        CHECK(art_open_buffer(&r, buf, len, "data", &err) == 0);
        CHECK(r && art_read(r, 0, y, sizeof y, &err) == -1 && err.code == QERR_CORRUPT);
        art_close(r);
    }
    free(buf);
    remove(path);
    remove(dir);
}

/* A path as long as PATH_MAX, wrapped with another, still leaves the reason
 * in the message (a 1 KiB message used to cut it off). */
static void test_long_paths_keep_the_reason(void) {
    static char path[4096];
    memset(path, 'p', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    QErr err = {{0}};
    qerr_set(&err, "checkpoint %s belongs to another job: epochs is 2 there, 3 here", path);
    qerr_wrap(&err, "%s", path);
    CHECK_MSG(strstr(err.msg, "epochs is 2 there, 3 here") != NULL, "reason cut off (%zu bytes)",
              strlen(err.msg));
}

int main(void) {
    test_long_paths_keep_the_reason();
    test_set_and_wrap();
    test_null();
    test_exit_status();
    test_sources();
    CHECK_DONE();
}
