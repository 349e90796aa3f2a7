/* The tokenizer files of a Hugging Face export: a loader (transformers,
 * vLLM) needs them beside config.json and the weights, and quept only
 * copies what the source model directory has. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "data/text_tokenizer.h"
#include "export.h"

const char *const EXPORT_HF_TOKENIZER_FILES[] = {"tokenizer.json",
                                                 "tokenizer_config.json",
                                                 "special_tokens_map.json",
                                                 "tokenizer.model",
                                                 "added_tokens.json",
                                                 "generation_config.json",
                                                 NULL};

/* The directory of --tokenizer: itself, or the folder of a tokenizer.json. */
static int tokenizer_dir(const char *src, char *dir, size_t n, QErr *err) {
    struct stat st;
    if (stat(src, &st) != 0) return qerr_setc(err, QERR_IO, "--tokenizer %s: no such file or directory", src);
    if (S_ISDIR(st.st_mode)) {
        snprintf(dir, n, "%s", src);
        return 0;
    }
    const char *slash = strrchr(src, '/');
    if (strcmp(slash ? slash + 1 : src, "tokenizer.json") != 0)
        return qerr_setc(err, QERR_USAGE,
                         "--tokenizer %s: for a Hugging Face export give the model directory or its "
                         "tokenizer.json",
                         src);
    snprintf(dir, n, "%.*s", slash ? (int)(slash - src) : 1, slash ? src : ".");
    return 0;
}

int export_hf_tokenizer_check(const char *src, int vocab_size, QErr *err) {
    char dir[1024], path[1200];
    if (tokenizer_dir(src, dir, sizeof dir, err) != 0) return -1;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) != 0)
        return qerr_setc(err, QERR_USAGE, "--tokenizer %s: no tokenizer.json there to copy into the export",
                         src);
    TextTokenizer *t;
    if (ttok_open(&t, path, err) != 0) return qerr_wrap(err, "--tokenizer");
    int n = ttok_vocab_size(t);
    ttok_free(t);
    if (n > vocab_size)
        return qerr_setc(err, QERR_USAGE,
                         "--tokenizer %s: %d tokens, more than the model's vocab_size %d: not this model's "
                         "tokenizer",
                         path, n, vocab_size);
    return 0;
}

int export_hf_tokenizer_copy(const char *src, const char *out_dir, int *copied, QErr *err) {
    char dir[1024], from[1200], to[1200];
    *copied = 0;
    if (tokenizer_dir(src, dir, sizeof dir, err) != 0) return -1;
    for (int i = 0; EXPORT_HF_TOKENIZER_FILES[i]; i++) {
        snprintf(from, sizeof from, "%s/%s", dir, EXPORT_HF_TOKENIZER_FILES[i]);
        if (access(from, F_OK) != 0) continue;
        char *buf;
        size_t len;
        if (file_read_all(from, &buf, &len, err) != 0) return -1;
        snprintf(to, sizeof to, "%s/%s", out_dir, EXPORT_HF_TOKENIZER_FILES[i]);
        int rc = file_write_all(to, buf, len, err);
        free(buf);
        if (rc != 0) return -1;
        (*copied)++;
    }
    return 0;
}
