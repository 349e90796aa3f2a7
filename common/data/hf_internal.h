/* hf_internal.h — the parts of a loaded tokenizer.json, shared by
 * hf_load.c (parsing, validation) and hf_encode.c / hf_decode.c. Not for use
 * outside common/data. */
#ifndef QUEPT_HF_INTERNAL_H
#define QUEPT_HF_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "hf_bpe.h"
#include "hf_tokenizer.h"

#define HF_MAX_STEPS 8

typedef enum { NORM_NFC, NORM_PREPEND, NORM_REPLACE } HfNormKind;
typedef struct {
    HfNormKind kind;
    char *a, *b; /* Prepend: a; Replace: a -> b */
} HfNorm;

typedef enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE } HfPreKind;
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
typedef struct {
    HfPreKind kind;
    pcre2_code *re;       /* Split; ByteLevel with use_regex */
    char *pattern;        /* Split: the file's regex (NULL for a String pattern) */
    int add_prefix_space; /* ByteLevel */
    char *repl;           /* Metaspace replacement */
    int prepend, split;   /* Metaspace: PREPEND_*, split on the replacement */
} HfPre;

typedef enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE } HfDecKind;
typedef struct {
    HfDecKind kind;
    char *a, *b;     /* Replace a -> b; Strip: a = the character; Metaspace: a = replacement */
    int start, stop; /* Strip */
    int prepend;     /* Metaspace: PREPEND_* */
} HfDec;

typedef struct {
    char *content;
    int len, id, special;
} HfAdded;

struct HfTokenizer {
    HfBpe bpe;
    HfNorm norm[HF_MAX_STEPS];
    int n_norm;
    HfPre pre[HF_MAX_STEPS];
    int n_pre;
    HfDec dec[HF_MAX_STEPS];
    int n_dec;
    HfAdded *added; /* sorted by first byte, then longest first */
    int n_added;
    int added_first[257]; /* added[added_first[c] .. added_first[c+1]) start with byte c */
    int prefix[4], n_prefix, suffix[4], n_suffix; /* TemplateProcessing "single" */
    int bos, eos;
    char byte_char[256][3]; /* ByteLevel: byte -> its character (UTF-8, NUL-terminated) */
    int char_byte[324];     /* ByteLevel: code point -> byte, -1 if not a byte's character */
};

/* Is id a special added token? */
int hf_is_special(const HfTokenizer *t, int id);

#endif
