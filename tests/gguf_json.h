/* gguf_json.h — a GGUF file as the independent reader @huggingface/gguf sees
 * it (tests/gguf_check/check.mjs prints its metadata, value types and
 * tensors as JSON), for the tests that check our GGUF files. Static inline:
 * each test is its own executable. */
#ifndef QUEPT_GGUF_JSON_H
#define QUEPT_GGUF_JSON_H

#include <cjson/cJSON.h>
#include <unistd.h>

#include "check.h"
#include "fixtures.h"

/* The file's JSON, or NULL with a note when node or the package is missing
 * (`npm ci --prefix tests/gguf_check`). */
static inline cJSON *gguf_read(const char *path) {
    char check[512], mod[600], cmd[2048];
    int st;
    snprintf(check, sizeof check, "%s/../gguf_check/check.mjs", QUEPT_TEST_DATA);
    snprintf(mod, sizeof mod, "%s/../gguf_check/node_modules/@huggingface/gguf/package.json",
             QUEPT_TEST_DATA);
    free(run_capture("node --version > /dev/null 2>&1", &st));
    if (exit_code(st) != 0 || access(mod, R_OK) != 0) {
        fprintf(stderr, "NOTE: independent GGUF reader skipped: node or @huggingface/gguf missing "
                        "(npm ci --prefix tests/gguf_check)\n");
        return NULL;
    }
    snprintf(cmd, sizeof cmd, "node %s %s", check, path);
    char *js = run_capture(cmd, &st);
    CHECK_MSG(exit_code(st) == 0, "%s failed", cmd);
    cJSON *root = js && exit_code(st) == 0 ? cJSON_Parse(js) : NULL;
    free(js);
    CHECK_MSG(root != NULL, "check.mjs printed no JSON for %s", path);
    return root;
}

#endif
