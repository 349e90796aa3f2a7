/* hf_config.c — a Hugging Face config.json, read (the model config, the
 * GPTQ quantization_config) and written (hf_write_dir's config). The
 * tensors are hf.c's. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/mapfile.h"
#include "hf.h"

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

/* A positive integer field; absent or null → def (or an error when required). */
static int cfg_int(const cJSON *root, const char *key, int required, int def, int *out, const char *path,
                   QErr *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return qerr_set(err, "%s: missing field '%s' (integer)", path, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return qerr_set(err, "%s: field '%s' must be a positive integer, found %s", path, key,
                        json_type_name(v));
    double d = v->valuedouble;
    if (!isfinite(d) || floor(d) != d || d < 1 || d > 2147483647.0)
        return qerr_set(err, "%s: field '%s' must be a positive integer, found %.17g", path, key, d);
    *out = (int)d;
    return 0;
}

static int cfg_float(const cJSON *root, const char *key, float def, float *out, const char *path, QErr *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return qerr_set(err, "%s: field '%s' must be a positive number, found %s", path, key,
                        json_type_name(v));
    double d = v->valuedouble;
    if (!isfinite(d) || !(d > 0) || d > 3.0e38)
        return qerr_set(err, "%s: field '%s' must be a positive finite number, found %.17g", path, key, d);
    *out = (float)d;
    return 0;
}

static int cfg_bool(const cJSON *root, const char *key, int def, int *out, const char *path, QErr *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v))
        return qerr_set(err, "%s: field '%s' must be true or false, found %s", path, key, json_type_name(v));
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return 0;
}

/* Parses config.json into c; *is_qwen2 tells whether model_type is "qwen2";
 * a GPTQ quantization_config sets h->gptq and h->has_gptq. */
int hf_parse_config(const char *path, ModelConfig *c, int *is_qwen2, int *has_gptq, GptqLayout *gptq,
                    QErr *err) {
    char *text = NULL;
    size_t len = 0;
    if (file_read_all(path, &text, &len, err) != 0) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = (end && end >= text && end <= text + len) ? (size_t)(end - text) : 0;
        free(text);
        return qerr_set(err, "%s: not valid JSON (error near byte %zu)", path, at);
    }
    free(text);
    int rc = -1;
    memset(c, 0, sizeof *c);
    *is_qwen2 = 0;
    if (!cJSON_IsObject(root)) {
        qerr_set(err, "%s: must be a JSON object", path);
        goto out;
    }

    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && !cJSON_IsNull(mt)) {
        if (!cJSON_IsString(mt)) {
            qerr_set(err, "%s: field 'model_type' must be a string, found %s", path, json_type_name(mt));
            goto out;
        }
        const char *s = mt->valuestring;
        if (strcmp(s, "llama") != 0 && strcmp(s, "mistral") != 0 && strcmp(s, "qwen2") != 0) {
            qerr_set(err, "%s: model_type '%s' is not supported (expected llama, mistral or qwen2)", path, s);
            goto out;
        }
        *is_qwen2 = strcmp(s, "qwen2") == 0;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !cJSON_IsNull(act) && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0)) {
        qerr_set(err, "%s: field 'hidden_act' must be \"silu\" (SwiGLU), found %s%s%s", path,
                 cJSON_IsString(act) ? "\"" : "",
                 cJSON_IsString(act) ? act->valuestring : json_type_name(act),
                 cJSON_IsString(act) ? "\"" : "");
        goto out;
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        const cJSON *ty = cJSON_IsObject(rs) ? cJSON_GetObjectItemCaseSensitive(rs, "rope_type") : NULL;
        if (!ty && cJSON_IsObject(rs)) ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
        if (!(cJSON_IsString(ty) && strcmp(ty->valuestring, "default") == 0)) {
            qerr_set(err, "%s: rope_scaling (type '%s') is not supported: only plain RoPE", path,
                     cJSON_IsString(ty) ? ty->valuestring : "?");
            goto out;
        }
    }

    if (cfg_int(root, "hidden_size", 1, 0, &c->dim, path, err) ||
        cfg_int(root, "intermediate_size", 1, 0, &c->hidden_dim, path, err) ||
        cfg_int(root, "num_hidden_layers", 1, 0, &c->n_layers, path, err) ||
        cfg_int(root, "num_attention_heads", 1, 0, &c->n_heads, path, err) ||
        cfg_int(root, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads, path, err) ||
        cfg_int(root, "vocab_size", 1, 0, &c->vocab_size, path, err) ||
        cfg_int(root, "max_position_embeddings", 1, 0, &c->seq_len, path, err))
        goto out;
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if ((!hd || cJSON_IsNull(hd)) && c->dim % c->n_heads != 0) {
        qerr_set(err,
                 "%s: hidden_size %d is not a multiple of num_attention_heads %d and no 'head_dim' is given",
                 path, c->dim, c->n_heads);
        goto out;
    }
    if (cfg_int(root, "head_dim", 0, c->dim / c->n_heads, &c->head_dim, path, err) ||
        cfg_float(root, "rope_theta", 10000.0f, &c->rope_theta, path, err) ||
        cfg_float(root, "rms_norm_eps", 1e-6f, &c->norm_eps, path, err) ||
        cfg_bool(root, "tie_word_embeddings", 0, &c->tied_classifier, path, err))
        goto out;
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    const cJSON *qm = cJSON_IsObject(qc) ? cJSON_GetObjectItemCaseSensitive(qc, "quant_method") : NULL;
    if (cJSON_IsString(qm) && strcmp(qm->valuestring, "gptq") == 0) {
        if (gptq_layout_from_config(qc, path, gptq, err) != 0) goto out;
        *has_gptq = 1;
    }
    c->rope_halves = 1;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* opening                                                                   */

/* A JSON number for f printed with the fewest digits that read back as f. */
double hf_json_float(float f) {
    char buf[48];
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static cJSON *float_number(float f) { return cJSON_CreateNumber(hf_json_float(f)); }

int hf_write_config(const char *path, const ModelConfig *c, int tied, int dtype_f16, QErr *err) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return qerr_set(err, "%s: out of memory", path);
    int ok = 1;
    const char *arch = c->has_qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
    cJSON *archs = cJSON_AddArrayToObject(root, "architectures");
    ok = ok && archs && cJSON_AddItemToArray(archs, cJSON_CreateString(arch));
    /* q/k/v biases without an o_proj bias is Qwen2's layout; a "llama" config
     * cannot express it (attention_bias adds an o_proj bias too). */
    ok = ok && cJSON_AddStringToObject(root, "model_type", c->has_qkv_bias ? "qwen2" : "llama");
    ok = ok && cJSON_AddNumberToObject(root, "hidden_size", c->dim);
    ok = ok && cJSON_AddNumberToObject(root, "intermediate_size", c->hidden_dim);
    ok = ok && cJSON_AddNumberToObject(root, "num_hidden_layers", c->n_layers);
    ok = ok && cJSON_AddNumberToObject(root, "num_attention_heads", c->n_heads);
    ok = ok && cJSON_AddNumberToObject(root, "num_key_value_heads", c->n_kv_heads);
    ok = ok && cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
    ok = ok && cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    ok = ok && cJSON_AddNumberToObject(root, "max_position_embeddings", c->seq_len);
    cJSON *th = float_number(c->rope_theta), *eps = float_number(c->norm_eps);
    if (th) ok = ok && cJSON_AddItemToObject(root, "rope_theta", th);
    if (eps) ok = ok && cJSON_AddItemToObject(root, "rms_norm_eps", eps);
    ok = ok && th && eps;
    ok = ok && cJSON_AddBoolToObject(root, "tie_word_embeddings", tied);
    ok = ok && cJSON_AddStringToObject(root, "hidden_act", "silu");
    ok = ok && cJSON_AddBoolToObject(root, "attention_bias", 0);
    ok = ok && cJSON_AddStringToObject(root, "torch_dtype", dtype_f16 ? "float16" : "float32");
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return qerr_set(err, "%s: out of memory building config.json", path);
    size_t n = strlen(text);
    int rc = file_write_all(path, text, n, err);
    cJSON_free(text);
    return rc;
}
