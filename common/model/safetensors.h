/* safetensors.h — reader and writer for the safetensors format.
 *
 * File layout: an 8-byte little-endian u64 N, then N bytes of JSON header,
 * then the data section. The header is one JSON object mapping each tensor
 * name to {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}
 * (offsets relative to the data section), plus an optional "__metadata__"
 * object of string → string.
 *
 * Reader: st_open memory-maps the file and validates the whole header before
 * returning: N within the file and below ST_MAX_HEADER, a JSON object, every
 * entry with a known dtype, a shape of at most ST_MAX_DIMS non-negative
 * integers, offsets 0 <= begin <= end <= data size with end - begin ==
 * numel * dtype size, no duplicate names, no two tensors sharing bytes.
 * Every error names the file and the tensor. Tensor data is read with
 * st_read_f32 (F64/F32/F16/BF16 → fp32; any alignment is fine).
 *
 * Writer: collect entries (StWriter), then st_writer_write writes the file
 * atomically (temp + fsync + rename, see AtomicFile): header padded with
 * spaces so the data section starts at a multiple of 8, tensors in name
 * order, packed back to back. fp32 sources can be stored as F32, F16 or
 * BF16 (converted while writing, round-to-nearest-even). */
#ifndef QUEPT_SAFETENSORS_H
#define QUEPT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"
#include "../base/f16.h"
#include "../base/mapfile.h"

#define ST_MAX_DIMS   8
#define ST_MAX_HEADER (100u * 1024u * 1024u) /* header bytes we accept */

typedef enum { ST_F64, ST_F32, ST_F16, ST_BF16, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL } StDtype;

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t begin, end; /* byte range within the data section */
} StTensor;

typedef struct {
    MappedFile mf;
    StTensor *tensors; /* sorted by name */
    int n_tensors;
    const uint8_t *data; /* start of the data section (inside mf) */
    size_t data_size;
    char **meta_keys, **meta_values; /* "__metadata__", sorted by key */
    int n_meta;
} SafeTensors;

/* "F32", "BF16", ...; st_dtype_parse returns -1 for an unknown name. */
const char *st_dtype_name(StDtype dt);
size_t st_dtype_size(StDtype dt);
int st_dtype_parse(const char *s, StDtype *out);

/* Opens and validates path. On failure st is left closed (st_close is a no-op). */
int st_open(SafeTensors *st, const char *path, QErr *err);
void st_close(SafeTensors *st);
const char *st_path(const SafeTensors *st);

/* NULL when absent (binary search). */
const StTensor *st_find(const SafeTensors *st, const char *name);
/* NULL when absent. */
const char *st_metadata_get(const SafeTensors *st, const char *key);
size_t st_numel(const StTensor *t);

/* Checks t's shape; the error names the file, the tensor, the expected and the
 * found shape. */
int st_check_shape(const SafeTensors *st, const StTensor *t, int ndim, const int64_t *shape, QErr *err);

/* Converts t (F64, F32, F16 or BF16) to fp32 into out, which holds
 * expected_numel floats; a different element count or dtype is an error naming
 * the tensor, what was expected and what was found. */
int st_read_f32(const SafeTensors *st, const StTensor *t, float *out, size_t expected_numel, QErr *err);

/* Formats "[a, b, c]" into buf (always NUL-terminated). */
void st_format_shape(char *buf, size_t n, int ndim, const int64_t *shape);

/* scalar conversions: float_to_f16 / f16_to_float in base/f16.h, bf16 in base/bf16.h */

/* --- writer --- */
typedef struct {
    char *name;
    StDtype dtype; /* as stored in the file */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *bytes; /* raw source (already in dtype), or NULL */
    const float *f32;  /* fp32 source converted to dtype on write, or NULL */
    void *owned;       /* freed by st_writer_free */
    size_t nbytes;     /* bytes in the file */
} StWriterEntry;

typedef struct {
    StWriterEntry *entries;
    int n, cap;
    char **meta_keys, **meta_values;
    int n_meta;
} StWriter;

void st_writer_init(StWriter *w);
void st_writer_free(StWriter *w);

/* Adds a tensor whose bytes are already in `dtype` (little-endian). The bytes
 * are borrowed: they must stay valid until st_writer_write. nbytes must equal
 * numel * dtype size. Duplicate names are an error. */
int st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                  const void *bytes, size_t nbytes, QErr *err);
/* Adds an fp32 source stored as dtype (ST_F32, ST_F16 or ST_BF16); src is
 * borrowed and holds numel floats. */
int st_writer_add_f32(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                      const float *src, QErr *err);
/* Same, but the writer takes ownership of src (malloc'd) and frees it in
 * st_writer_free — also when this call fails. */
int st_writer_add_f32_owned(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                            float *src, QErr *err);
/* Adds a "__metadata__" string pair (a repeated key replaces the value). */
int st_writer_set_metadata(StWriter *w, const char *key, const char *value, QErr *err);
/* Writes the file atomically. The writer stays valid (free it afterwards). */
int st_writer_write(StWriter *w, const char *path, QErr *err);

#endif
