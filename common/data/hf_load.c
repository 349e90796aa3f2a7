/* hf_load.c — tokenizer.json: parse, validate every field we act on, refuse
 * what we do not implement. See hf_tokenizer.h. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/mapfile.h"
#include "hf_internal.h"
#include "utf8.h"

/* GPT-2's byte <-> character map: printable bytes stand for themselves, the
 * others for code points 256 upwards in byte order. */
static void byte_level_init(HfTokenizer *t) {
    for (int i = 0; i < 324; i++) t->char_byte[i] = -1;
    int next = 256;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        int cp = keep ? b : next++;
        t->char_byte[cp] = b;
        char *s = t->byte_char[b];
        if (cp < 0x80)
            s[0] = (char)cp, s[1] = 0;
        else
            s[0] = (char)(0xC0 | cp >> 6), s[1] = (char)(0x80 | (cp & 0x3F)), s[2] = 0;
    }
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* A string member, or NULL (with an error) naming where. */
static const char *get_str(const cJSON *o, const char *key, const char *where, QErr *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) {
        qerr_setc(err, QERR_CORRUPT, "%s.%s: %s", where, key, v ? "must be a string" : "missing");
        return NULL;
    }
    return v->valuestring;
}

/* A boolean member: def when absent or null. */
static int get_bool(const cJSON *o, const char *key, int def, const char *where, int *out, QErr *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return *out = def, 0;
    if (!cJSON_IsBool(v)) return qerr_setc(err, QERR_CORRUPT, "%s.%s: must be true or false", where, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int refuse(QErr *err, const char *where, const char *what) {
    return qerr_setc(err, QERR_FAILED, "%s: %s is not supported (refused rather than tokenize differently)",
                     where, what);
}

/* The type of a component; NULL with an error when missing. */
static const char *type_of(const cJSON *o, const char *where, QErr *err) {
    if (!cJSON_IsObject(o)) {
        qerr_setc(err, QERR_CORRUPT, "%s: must be an object or null", where);
        return NULL;
    }
    return get_str(o, "type", where, err);
}

/* A {"String": s} pattern as a string; a {"Regex": r} is refused unless
 * regex is given (then *regex = 1). */
static const char *pattern_of(const cJSON *o, const char *where, int *regex, QErr *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const cJSON *s = p ? cJSON_GetObjectItemCaseSensitive(p, "String") : NULL;
    const cJSON *r = p ? cJSON_GetObjectItemCaseSensitive(p, "Regex") : NULL;
    if (cJSON_IsString(s)) {
        if (regex) *regex = 0;
        return s->valuestring;
    }
    if (cJSON_IsString(r) && regex) {
        *regex = 1;
        return r->valuestring;
    }
    if (cJSON_IsString(r)) {
        char what[300];
        snprintf(what, sizeof what, "pattern {\"Regex\": \"%.200s\"}", r->valuestring);
        refuse(err, where, what);
        return NULL;
    }
    qerr_setc(err, QERR_CORRUPT, "%s.pattern: missing, or neither {\"String\": ...} nor {\"Regex\": ...}",
              where);
    return NULL;
}

static pcre2_code *compile_re(const char *pat, int literal, const char *where, QErr *err) {
    int ec;
    PCRE2_SIZE eo;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        qerr_setc(err, QERR_CORRUPT, "%s: regex \"%.200s\" does not compile at offset %zu: %s", where, pat,
                  (size_t)eo, (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
    return re;
}

/* GPT-2's pattern, what ByteLevel splits with when use_regex is true. */
static const char *GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---------------------------------------------------------- components */

static int load_normalizer(HfTokenizer *t, const cJSON *o, const char *where, QErr *err) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = type_of(o, where, err);
    if (!type) return -1;
    char w[200];
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "normalizers");
        if (!cJSON_IsArray(list))
            return qerr_setc(err, QERR_CORRUPT, "%s.normalizers: must be an array", where);
        int i = 0;
        for (const cJSON *c = list->child; c; c = c->next, i++) {
            snprintf(w, sizeof w, "%s.normalizers[%d]", where, i);
            if (load_normalizer(t, c, w, err) != 0) return -1;
        }
        return 0;
    }
    if (t->n_norm == HF_MAX_STEPS) return refuse(err, where, "more than 8 normalizers");
    HfNorm *n = &t->norm[t->n_norm];
    if (strcmp(type, "NFC") == 0) {
        n->kind = NORM_NFC;
    } else if (strcmp(type, "Prepend") == 0) {
        const char *p = get_str(o, "prepend", where, err);
        if (!p) return -1;
        n->kind = NORM_PREPEND;
        if (!(n->a = dup_str(p))) return qerr_set(err, "out of memory");
    } else if (strcmp(type, "Replace") == 0) {
        const char *p = pattern_of(o, where, NULL, err), *c = p ? get_str(o, "content", where, err) : NULL;
        if (!c) return -1;
        if (!*p) return refuse(err, where, "an empty Replace pattern");
        n->kind = NORM_REPLACE;
        if (!(n->a = dup_str(p)) || !(n->b = dup_str(c))) return qerr_set(err, "out of memory");
    } else {
        char what[160];
        snprintf(what, sizeof what, "normalizer type \"%.100s\"", type);
        return refuse(err, where, what);
    }
    t->n_norm++;
    return 0;
}

static int prepend_scheme(const cJSON *o, const char *where, int *out, QErr *err) {
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(o, "prepend_scheme");
    if (cJSON_IsString(ps)) {
        if (strcmp(ps->valuestring, "always") == 0)
            *out = PREPEND_ALWAYS;
        else if (strcmp(ps->valuestring, "first") == 0)
            *out = PREPEND_FIRST;
        else if (strcmp(ps->valuestring, "never") == 0)
            *out = PREPEND_NEVER;
        else
            return qerr_setc(err, QERR_CORRUPT, "%s.prepend_scheme: \"%.50s\" is not always/first/never",
                             where, ps->valuestring);
        return 0;
    }
    int aps = 1; /* older files: add_prefix_space */
    if (get_bool(o, "add_prefix_space", 1, where, &aps, err) != 0) return -1;
    *out = aps ? PREPEND_ALWAYS : PREPEND_NEVER;
    return 0;
}

static int load_pre(HfTokenizer *t, const cJSON *o, const char *where, QErr *err) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = type_of(o, where, err);
    if (!type) return -1;
    char w[200];
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
        if (!cJSON_IsArray(list))
            return qerr_setc(err, QERR_CORRUPT, "%s.pretokenizers: must be an array", where);
        int i = 0;
        for (const cJSON *c = list->child; c; c = c->next, i++) {
            snprintf(w, sizeof w, "%s.pretokenizers[%d]", where, i);
            if (load_pre(t, c, w, err) != 0) return -1;
        }
        return 0;
    }
    if (t->n_pre == HF_MAX_STEPS) return refuse(err, where, "more than 8 pre-tokenizers");
    HfPre *p = &t->pre[t->n_pre];
    memset(p, 0, sizeof *p);
    if (strcmp(type, "Split") == 0) {
        int regex = 0, invert = 0;
        const char *pat = pattern_of(o, where, &regex, err);
        if (!pat) return -1;
        const char *beh = get_str(o, "behavior", where, err);
        if (!beh || get_bool(o, "invert", 0, where, &invert, err) != 0) return -1;
        if (strcmp(beh, "Isolated") != 0) {
            char what[120];
            snprintf(what, sizeof what, "Split behavior \"%.50s\" (only \"Isolated\")", beh);
            return refuse(err, where, what);
        }
        if (invert) return refuse(err, where, "Split with invert true");
        p->kind = PRE_SPLIT;
        if (!(p->re = compile_re(pat, !regex, where, err))) return -1;
        if (regex && !(p->pattern = dup_str(pat))) return qerr_set(err, "out of memory");
    } else if (strcmp(type, "ByteLevel") == 0) {
        int use_regex = 1;
        if (get_bool(o, "add_prefix_space", 1, where, &p->add_prefix_space, err) != 0 ||
            get_bool(o, "use_regex", 1, where, &use_regex, err) != 0)
            return -1;
        /* the tokenizers crate prefixes every piece an earlier pre-tokenizer made; we prefix one */
        if (p->add_prefix_space && t->n_pre > 0)
            return refuse(err, where, "ByteLevel add_prefix_space true after another pre-tokenizer");
        p->kind = PRE_BYTELEVEL;
        if (use_regex && !(p->re = compile_re(GPT2_PATTERN, 0, where, err))) return -1;
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *r = get_str(o, "replacement", where, err);
        if (!r || prepend_scheme(o, where, &p->prepend, err) != 0 ||
            get_bool(o, "split", 1, where, &p->split, err) != 0)
            return -1;
        if (!*r) return qerr_setc(err, QERR_CORRUPT, "%s.replacement: empty", where);
        p->kind = PRE_METASPACE;
        if (!(p->repl = dup_str(r))) return qerr_set(err, "out of memory");
    } else {
        char what[160];
        snprintf(what, sizeof what, "pre-tokenizer type \"%.100s\"", type);
        return refuse(err, where, what);
    }
    t->n_pre++;
    return 0;
}

static int load_decoder(HfTokenizer *t, const cJSON *o, const char *where, QErr *err) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = type_of(o, where, err);
    if (!type) return -1;
    char w[200];
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "decoders");
        if (!cJSON_IsArray(list)) return qerr_setc(err, QERR_CORRUPT, "%s.decoders: must be an array", where);
        int i = 0;
        for (const cJSON *c = list->child; c; c = c->next, i++) {
            snprintf(w, sizeof w, "%s.decoders[%d]", where, i);
            if (load_decoder(t, c, w, err) != 0) return -1;
        }
        return 0;
    }
    if (t->n_dec == HF_MAX_STEPS) return refuse(err, where, "more than 8 decoders");
    HfDec *d = &t->dec[t->n_dec];
    memset(d, 0, sizeof *d);
    if (strcmp(type, "ByteLevel") == 0) {
        d->kind = DEC_BYTELEVEL;
    } else if (strcmp(type, "ByteFallback") == 0) {
        d->kind = DEC_BYTEFALLBACK;
    } else if (strcmp(type, "Fuse") == 0) {
        d->kind = DEC_FUSE;
    } else if (strcmp(type, "Replace") == 0) {
        const char *p = pattern_of(o, where, NULL, err), *c = p ? get_str(o, "content", where, err) : NULL;
        if (!c) return -1;
        if (!*p) return refuse(err, where, "an empty Replace pattern");
        d->kind = DEC_REPLACE;
        if (!(d->a = dup_str(p)) || !(d->b = dup_str(c))) return qerr_set(err, "out of memory");
    } else if (strcmp(type, "Strip") == 0) {
        const char *c = get_str(o, "content", where, err);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "start"),
                    *e = cJSON_GetObjectItemCaseSensitive(o, "stop");
        if (!c) return -1;
        if (!cJSON_IsNumber(s) || !cJSON_IsNumber(e) || s->valueint < 0 || e->valueint < 0)
            return qerr_setc(err, QERR_CORRUPT, "%s: start and stop must be numbers >= 0", where);
        d->kind = DEC_STRIP;
        d->start = s->valueint, d->stop = e->valueint;
        if (!(d->a = dup_str(c))) return qerr_set(err, "out of memory");
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *r = get_str(o, "replacement", where, err);
        if (!r || prepend_scheme(o, where, &d->prepend, err) != 0) return -1;
        d->kind = DEC_METASPACE;
        if (!(d->a = dup_str(r))) return qerr_set(err, "out of memory");
    } else {
        char what[160];
        snprintf(what, sizeof what, "decoder type \"%.100s\"", type);
        return refuse(err, where, what);
    }
    t->n_dec++;
    return 0;
}

static int template_ids(HfTokenizer *t, const cJSON *o, const char *where, QErr *err) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
    if (!cJSON_IsArray(single)) return qerr_setc(err, QERR_CORRUPT, "%s.single: must be an array", where);
    int seen_a = 0, i = 0;
    for (const cJSON *it = single->child; it; it = it->next, i++) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        if (sq) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(sq, "id");
            if (seen_a || !cJSON_IsString(id) || strcmp(id->valuestring, "A") != 0)
                return refuse(err, where, "a \"single\" template other than special tokens around one $A");
            seen_a = 1;
            continue;
        }
        const cJSON *name = sp ? cJSON_GetObjectItemCaseSensitive(sp, "id") : NULL;
        if (!cJSON_IsString(name))
            return qerr_setc(err, QERR_CORRUPT, "%s.single[%d]: neither SpecialToken nor Sequence", where, i);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(specials, name->valuestring);
        const cJSON *ids = st ? cJSON_GetObjectItemCaseSensitive(st, "ids") : NULL;
        if (!cJSON_IsArray(ids))
            return qerr_setc(err, QERR_CORRUPT, "%s.special_tokens: \"%.100s\" missing or has no ids", where,
                             name->valuestring);
        for (const cJSON *x = ids->child; x; x = x->next) {
            int *arr = seen_a ? t->suffix : t->prefix, *n = seen_a ? &t->n_suffix : &t->n_prefix;
            if (!cJSON_IsNumber(x) || x->valueint < 0)
                return qerr_setc(err, QERR_CORRUPT, "%s.special_tokens.%s: bad id", where, name->valuestring);
            if (*n == 4) return refuse(err, where, "more than 4 special tokens on one side");
            arr[(*n)++] = x->valueint;
        }
    }
    if (!seen_a) return refuse(err, where, "a \"single\" template without $A");
    return 0;
}

static int load_post(HfTokenizer *t, const cJSON *o, const char *where, QErr *err) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = type_of(o, where, err);
    if (!type) return -1;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "processors");
        if (!cJSON_IsArray(list))
            return qerr_setc(err, QERR_CORRUPT, "%s.processors: must be an array", where);
        int i = 0;
        for (const cJSON *c = list->child; c; c = c->next, i++) {
            char w[200];
            snprintf(w, sizeof w, "%s.processors[%d]", where, i);
            if (load_post(t, c, w, err) != 0) return -1;
        }
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) return 0; /* changes offsets only, never ids */
    if (strcmp(type, "TemplateProcessing") == 0) {
        if (t->n_prefix || t->n_suffix) return refuse(err, where, "two TemplateProcessing post-processors");
        return template_ids(t, o, where, err);
    }
    char what[160];
    snprintf(what, sizeof what, "post-processor type \"%.100s\"", type);
    return refuse(err, where, what);
}

static int load_model(HfBpe *b, const cJSON *m, QErr *err) {
    const char *type = type_of(m, "model", err);
    if (!type) return -1;
    if (strcmp(type, "BPE") != 0) {
        char what[160];
        snprintf(what, sizeof what, "model type \"%.100s\" (only BPE)", type);
        return refuse(err, "model", what);
    }
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (drop && !cJSON_IsNull(drop) && !(cJSON_IsNumber(drop) && drop->valuedouble == 0.0))
        return refuse(err, "model.dropout", "BPE dropout (random tokenization)");
    const char *affix[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, affix[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && v->valuestring[0] == 0)) {
            char what[160];
            snprintf(what, sizeof what, "a non-empty %s", affix[i]);
            return refuse(err, "model", what);
        }
    }
    if (get_bool(m, "byte_fallback", 0, "model", &b->byte_fallback, err) != 0 ||
        get_bool(m, "fuse_unk", 0, "model", &b->fuse_unk, err) != 0 ||
        get_bool(m, "ignore_merges", 0, "model", &b->ignore_merges, err) != 0)
        return -1;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    if (!cJSON_IsObject(vocab)) return qerr_setc(err, QERR_CORRUPT, "model.vocab: missing or not an object");
    if (hf_bpe_reserve(b, cJSON_GetArraySize(vocab) + 1024, err) != 0) return -1;
    for (const cJSON *v = vocab->child; v; v = v->next) {
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)v->valueint)
            return qerr_setc(err, QERR_CORRUPT, "model.vocab[\"%.100s\"]: the id must be an integer",
                             v->string);
        if (hf_bpe_add(b, v->string, strlen(v->string), v->valueint, "model.vocab", err) != 0) return -1;
    }
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!cJSON_IsArray(merges)) return qerr_setc(err, QERR_CORRUPT, "model.merges: missing or not an array");
    int i = 0;
    for (const cJSON *x = merges->child; x; x = x->next, i++) {
        const char *l, *r;
        size_t ln, rn;
        if (cJSON_IsString(x)) { /* "a b" */
            l = x->valuestring;
            const char *sp = strchr(l, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return qerr_setc(err, QERR_CORRUPT,
                                 "model.merges[%d]: \"%.100s\" is not two tokens separated by one space", i,
                                 l);
            ln = (size_t)(sp - l), r = sp + 1, rn = strlen(r);
        } else if (cJSON_IsArray(x) && cJSON_GetArraySize(x) == 2 && cJSON_IsString(x->child) &&
                   cJSON_IsString(x->child->next)) { /* ["a", "b"] */
            l = x->child->valuestring, r = x->child->next->valuestring;
            ln = strlen(l), rn = strlen(r);
        } else {
            return qerr_setc(err, QERR_CORRUPT, "model.merges[%d]: neither \"a b\" nor [\"a\", \"b\"]", i);
        }
        if (hf_bpe_add_merge(b, l, ln, r, rn, err) != 0) return -1;
    }
    b->unk_id = -1;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(m, "unk_token");
    if (cJSON_IsString(unk)) {
        b->unk_id = hf_bpe_lookup(b, unk->valuestring, strlen(unk->valuestring));
        if (b->unk_id < 0)
            return qerr_setc(err, QERR_CORRUPT, "model.unk_token: \"%.100s\" is not in the vocab",
                             unk->valuestring);
    } else if (unk && !cJSON_IsNull(unk)) {
        return qerr_setc(err, QERR_CORRUPT, "model.unk_token: must be a string or null");
    }
    for (int c = 0; c < 256; c++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", c);
        b->byte_id[c] = hf_bpe_lookup(b, name, 6);
    }
    return 0;
}

static int cmp_added(const void *pa, const void *pb) {
    const HfAdded *a = pa, *b = pb;
    unsigned char ca = (unsigned char)a->content[0], cb = (unsigned char)b->content[0];
    if (ca != cb) return ca < cb ? -1 : 1;
    return b->len - a->len; /* longest first: leftmost-longest matching */
}

static int load_added(HfTokenizer *t, const cJSON *list, QErr *err) {
    if (!list || cJSON_IsNull(list)) return 0;
    if (!cJSON_IsArray(list)) return qerr_setc(err, QERR_CORRUPT, "added_tokens: must be an array");
    int n = cJSON_GetArraySize(list);
    t->added = calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added) return qerr_set(err, "out of memory");
    int plain_norm = 1; /* does the normalizer leave the text as matched? (none, or NFC of ASCII) */
    for (int i = 0; i < t->n_norm; i++) plain_norm &= t->norm[i].kind == NORM_NFC;
    int i = 0;
    for (const cJSON *a = list->child; a; a = a->next, i++) {
        char w[64];
        snprintf(w, sizeof w, "added_tokens[%d]", i);
        const char *content = get_str(a, "content", w, err);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!content) return -1;
        if (!cJSON_IsNumber(id) || id->valuedouble != (double)id->valueint || id->valueint < 0)
            return qerr_setc(err, QERR_CORRUPT, "%s.id: missing or not an integer >= 0", w);
        if (!*content) return qerr_setc(err, QERR_CORRUPT, "%s.content: empty", w);
        int special = 0, lstrip = 0, rstrip = 0, normalized = 0, single = 0;
        if (get_bool(a, "special", 0, w, &special, err) || get_bool(a, "lstrip", 0, w, &lstrip, err) ||
            get_bool(a, "rstrip", 0, w, &rstrip, err) ||
            get_bool(a, "normalized", !special, w, &normalized, err) ||
            get_bool(a, "single_word", 0, w, &single, err))
            return -1;
        if (lstrip || rstrip || single) {
            char what[200];
            snprintf(what, sizeof what, "\"%.60s\" with %s true", content,
                     lstrip   ? "lstrip"
                     : rstrip ? "rstrip"
                              : "single_word");
            return refuse(err, w, what);
        }
        if (normalized && !plain_norm) {
            char what[200];
            snprintf(what, sizeof what, "\"%.60s\" with normalized true under this normalizer", content);
            return refuse(err, w, what);
        }
        size_t len = strlen(content), bad;
        if (!utf8_valid(content, len, &bad))
            return qerr_setc(err, QERR_CORRUPT, "%s.content: invalid UTF-8 at byte %zu", w, bad);
        if (hf_bpe_add(&t->bpe, content, len, id->valueint, w, err) != 0) return -1;
        HfAdded *ad = &t->added[t->n_added++];
        ad->len = (int)len, ad->id = id->valueint, ad->special = special;
        if (!(ad->content = dup_str(content))) return qerr_set(err, "out of memory");
    }
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added);
    int j = 0;
    for (int c = 0; c <= 256; c++) {
        while (j < t->n_added && (unsigned char)t->added[j].content[0] < c) j++;
        t->added_first[c] = j;
    }
    return 0;
}

int hf_is_special(const HfTokenizer *t, int id) { return hf_tokenizer_added(t, id) == 2; }

static int token_named(const HfTokenizer *t, const cJSON *v) {
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v)) return -1;
    return hf_bpe_lookup(&t->bpe, v->valuestring, strlen(v->valuestring));
}

int hf_tokenizer_parse(HfTokenizer **out, const char *json, size_t len, const char *name, QErr *err) {
    *out = NULL;
    size_t bad;
    if (!utf8_valid(json, len, &bad))
        return qerr_setc(err, QERR_CORRUPT, "%s: invalid UTF-8 at byte offset %zu", name, bad);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : len;
        return qerr_setc(err, QERR_CORRUPT,
                         "%s: not valid JSON (error at byte offset %zu of %zu; truncated?)", name, at, len);
    }
    HfTokenizer *t = calloc(1, sizeof *t);
    int rc = t ? 0 : qerr_set(err, "out of memory");
    if (rc == 0 && !cJSON_IsObject(root)) rc = qerr_setc(err, QERR_CORRUPT, "not a JSON object");
    const char *none[] = {"truncation", "padding"};
    for (int i = 0; rc == 0 && i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, none[i]);
        if (v && !cJSON_IsNull(v)) rc = refuse(err, none[i], "a non-null value");
    }
    if (rc == 0) {
        t->bos = t->eos = -1;
        byte_level_init(t);
        rc = load_model(&t->bpe, cJSON_GetObjectItemCaseSensitive(root, "model"), err);
    }
    if (rc == 0)
        rc = load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer", err);
    if (rc == 0) rc = load_added(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err);
    if (rc == 0)
        rc = load_pre(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pre_tokenizer", err);
    if (rc == 0)
        rc = load_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "post_processor", err);
    if (rc == 0) rc = load_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), "decoder", err);
    for (int i = 0; rc == 0 && i < t->n_prefix + t->n_suffix; i++) {
        int id = i < t->n_prefix ? t->prefix[i] : t->suffix[i - t->n_prefix];
        if (id >= t->bpe.n_ids || !t->bpe.str[id])
            rc = qerr_setc(err, QERR_CORRUPT, "post_processor: special token id %d is not in the vocab", id);
    }
    if (rc == 0 && t->bpe.n_entries == 0) rc = qerr_setc(err, QERR_CORRUPT, "model.vocab: empty");
    cJSON_Delete(root);
    if (rc != 0) {
        hf_tokenizer_free(t);
        return qerr_wrap(err, "%s", name);
    }
    if (t->n_prefix > 0) t->bos = t->prefix[0];
    if (t->n_suffix > 0) t->eos = t->suffix[t->n_suffix - 1];
    *out = t;
    return 0;
}

/* tokenizer_config.json beside the file: the BOS and EOS names (optional). */
static void read_config(HfTokenizer *t, const char *path) {
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path + 1) : 0;
    char *cfg = malloc(dir + 32);
    if (!cfg) return;
    memcpy(cfg, path, dir);
    strcpy(cfg + dir, "tokenizer_config.json");
    char *text = NULL;
    size_t len = 0;
    QErr ignored = {{0}};
    if (file_read_all(cfg, &text, &len, &ignored) == 0) {
        cJSON *root = cJSON_ParseWithLength(text, len);
        if (root) {
            int b = token_named(t, cJSON_GetObjectItemCaseSensitive(root, "bos_token"));
            int e = token_named(t, cJSON_GetObjectItemCaseSensitive(root, "eos_token"));
            if (t->bos < 0) t->bos = b;
            if (t->eos < 0) t->eos = e;
            cJSON_Delete(root);
        }
        free(text);
    }
    free(cfg);
}

int hf_tokenizer_load(HfTokenizer **out, const char *path, QErr *err) {
    char *text = NULL;
    size_t len = 0;
    if (file_read_all(path, &text, &len, err) != 0) return -1;
    int rc = hf_tokenizer_parse(out, text, len, path, err);
    free(text);
    if (rc == 0) read_config(*out, path);
    return rc;
}

void hf_tokenizer_free(HfTokenizer *t) {
    if (!t) return;
    hf_bpe_free(&t->bpe);
    for (int i = 0; i < t->n_norm; i++) free(t->norm[i].a), free(t->norm[i].b);
    for (int i = 0; i < t->n_pre; i++) {
        if (t->pre[i].re) pcre2_code_free(t->pre[i].re);
        free(t->pre[i].repl);
        free(t->pre[i].pattern);
    }
    for (int i = 0; i < t->n_dec; i++) free(t->dec[i].a), free(t->dec[i].b);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t);
}

int hf_tokenizer_vocab_size(const HfTokenizer *t) { return t->bpe.n_ids; }
int hf_tokenizer_bos(const HfTokenizer *t) { return t->bos; }
int hf_tokenizer_eos(const HfTokenizer *t) { return t->eos; }
int hf_tokenizer_unk(const HfTokenizer *t) { return t->bpe.unk_id; }

const char *hf_tokenizer_token(const HfTokenizer *t, int id, int *len) {
    if (id < 0 || id >= t->bpe.n_ids || !t->bpe.str[id]) return NULL;
    if (len) *len = t->bpe.len[id];
    return t->bpe.str[id];
}

int hf_tokenizer_added(const HfTokenizer *t, int id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return t->added[i].special ? 2 : 1;
    return 0;
}

HfStyle hf_tokenizer_style(const HfTokenizer *t) {
    for (int i = 0; i < t->n_pre; i++)
        if (t->pre[i].kind == PRE_BYTELEVEL) return HF_STYLE_BYTE_LEVEL;
    if (!t->bpe.byte_fallback) return HF_STYLE_OTHER;
    for (int i = 0; i < t->n_pre; i++)
        if (t->pre[i].kind == PRE_METASPACE) return HF_STYLE_SENTENCEPIECE;
    for (int i = 0; i < t->n_norm; i++)
        if (t->norm[i].kind == NORM_REPLACE && strcmp(t->norm[i].a, " ") == 0 &&
            strcmp(t->norm[i].b, "\xe2\x96\x81") == 0)
            return HF_STYLE_SENTENCEPIECE;
    return HF_STYLE_OTHER;
}

int hf_tokenizer_normalizes(const HfTokenizer *t) {
    for (int i = 0; i < t->n_norm; i++)
        if (t->norm[i].kind == NORM_NFC) return 1;
    return 0;
}

const char *hf_tokenizer_split_regex(const HfTokenizer *t) {
    for (int i = 0; i < t->n_pre; i++)
        if (t->pre[i].kind == PRE_SPLIT) return t->pre[i].pattern;
    return NULL;
}

int hf_tokenizer_adds_bos(const HfTokenizer *t) { return t->n_prefix > 0 && t->prefix[0] == t->bos; }

int hf_tokenizer_merge_list(const HfTokenizer *t, HfMerges *m, QErr *err) {
    int cap = hf_bpe_merge_count(&t->bpe);
    size_t bytes = ((size_t)cap + 1) * sizeof(int);
    m->left = malloc(bytes), m->right = malloc(bytes), m->merged = malloc(bytes);
    m->n = m->left && m->right && m->merged ? hf_bpe_merges(&t->bpe, m->left, m->right, m->merged, err)
                                            : qerr_set(err, "out of memory for %d merges", cap);
    if (m->n < 0) {
        hf_merges_free(m);
        return -1;
    }
    return 0;
}

void hf_merges_free(HfMerges *m) {
    free(m->left), free(m->right), free(m->merged);
    m->left = m->right = m->merged = NULL;
    m->n = 0;
}
