/* export_safetensors.c — safetensors-fp16, the Hugging Face directory of
 * dequantized weights (see export.h): config.json + model.safetensors, the
 * switched weights stored as F16 by hf_write_dir (HF names, q/k rows in
 * HF's "halves" order, q/k/v biases of a Qwen2 model included); and the
 * clean-up both HF exports share. safetensors-int is export_gptq.c. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "model/hf.h"
#include "model/rotate.h"

/* A failed export leaves no debris: when it made the directory, the files it
 * writes and the directory go again (a directory that was there is left as
 * it is: its files are replaced atomically or not at all). */
void export_remove_debris(const char *dir, int made_dir) {
    if (!made_dir) return;
    static const char *const FILES[] = {"model.safetensors", "config.json"};
    char path[1200];
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, FILES[i]);
        unlink(path);
    }
    for (int i = 0; EXPORT_HF_TOKENIZER_FILES[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, EXPORT_HF_TOKENIZER_FILES[i]);
        unlink(path);
    }
    rmdir(dir);
}

int export_refuse_rotated(const char *format, QErr *err) {
    return qerr_set(err,
                    "%s: the artifact was calibrated with --rotate hadamard: its down_proj codes are in the "
                    "Hadamard basis and need the input transformed online (h -> H^T h / sqrt(hidden)) before "
                    "the matmul, an operation %s has no way to express; folding it back into the weights "
                    "would leave them dense, off the quantization grid. Use --format safetensors-fp16%s (the "
                    "transform folded into the dequantized down_proj weights)",
                    format, strcmp(format, "gguf") == 0 ? " or --gguf-type f16" : "",
                    strcmp(format, "gguf") == 0 ? "llama.cpp's graph" : "a GPTQ checkpoint");
}

int export_dequantized(const ElasticModel *em, const int *bits, Model *q, QErr *err) {
    memset(q, 0, sizeof *q);
    int rc = elastic_switch(em, bits, q, err); /* copies the q/k/v biases too */
    /* a rotated artifact (--rotate hadamard): the down_proj input's online
     * transform folded into the dequantized W_down, a plain checkpoint */
    if (rc == 0) rc = model_unfold_down_hadamard(q, err);
    if (rc == 0) {
        q->tok_emb = em->base.tok_emb;
        q->final_norm = em->base.final_norm;
        q->classifier = em->base.classifier;
    }
    if (rc != 0) export_dequantized_free(q);
    return rc;
}

void export_dequantized_free(Model *q) {
    q->tok_emb = q->final_norm = q->classifier = NULL; /* the artifact's, borrowed */
    model_free(q);
}

int export_fp16(const ElasticModel *em, const int *bits, const char *dir, QErr *err) {
    int made_dir = access(dir, F_OK) != 0;
    Model q;
    int rc = export_dequantized(em, bits, &q, err);
    if (rc == 0) {
        rc = hf_write_dir(dir, &q, 1, err);
        export_dequantized_free(&q);
    }
    if (rc != 0) export_remove_debris(dir, made_dir);
    return rc;
}
