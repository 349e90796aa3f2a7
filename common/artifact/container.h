/* container.h — the storage layer under the quept elastic artifact: named
 * tensors plus one MessagePack metadata tree in a single file.
 *
 * The byte layout is specified in docs/artifact-format.md. In short (all
 * integers little endian):
 *
 *   0   "QEPTART\0"                 magic
 *   8   u32 format version (1), u32 reserved (0)
 *   16  u64 H                       header length
 *   24  H bytes of MessagePack      {"version": 1, "meta": <tree>,
 *                                    "tensors": [{name, dtype, shape, offset,
 *                                    stored, raw, codec, checksum}, ...],
 *                                    "header_checksum": u32}
 *       zero padding to a multiple of 8 — the data section starts here
 *       tensor sections in header order, each at an 8-byte aligned offset
 *       from the data section start, zero padding between them; the file
 *       ends with the last section.
 *
 * Checksums are CRC-32 (IEEE 802.3, as zlib's crc32): one over the header
 * (everything before the "header_checksum" pair), one per tensor over its
 * STORED bytes. Codec "lz4" stores independent chunks (default 64 MiB raw)
 * so sections of any size work.
 *
 * Determinism: the same calls in the same order give a byte-identical file
 * (no timestamps; tensors and map keys in insertion order).
 *
 * Writer:
 *     ArtWriter *w = art_writer_new(&err);
 *     msgpack_packer *pk = art_writer_meta(w);   // pack exactly ONE object
 *     msgpack_pack_map(pk, 1); mp_pack_str(pk, "bits"); ...
 *     art_writer_add(w, "tok_embeddings", ART_F32, 2, shape, data, 1, &err);
 *     art_writer_write(w, "model.qept", &err);   // temp + fsync + rename
 *     art_writer_free(w);
 * art_writer_add copies (or compresses) the data immediately: the caller may
 * free it on return. The writer holds every stored section in memory until
 * art_writer_free.
 *
 * Reader:
 *     ArtReader *r;
 *     if (art_open(&r, path, &err) != 0) ...     // validates the whole header
 *     const msgpack_object *meta = art_meta(r);
 *     int i = art_find(r, "tok_embeddings");
 *     const ArtTensorInfo *ti = art_tensor_info(r, i);
 *     art_read(r, i, buf, ti->raw_bytes, &err);  // checksum, then decode
 *     art_close(r);
 * art_open checks everything that can be checked without touching the tensor
 * data: magic, version, header length, header checksum, every header field's
 * type and range, the exact section layout and the file size. art_read and
 * art_verify_all check the data (checksum of the stored bytes first, then the
 * LZ4 framing and the exact decoded size). Every error names the file and the
 * field or tensor. Readers never modify the ArtReader after art_open: several
 * threads may call art_read on one reader at once. */
#ifndef QUEPT_ARTIFACT_CONTAINER_H
#define QUEPT_ARTIFACT_CONTAINER_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "../base/err.h"
#include "../base/msgpack_util.h"

#define ART_MAGIC             "QEPTART\0" /* 8 bytes, including the NUL */
#define ART_FORMAT_VERSION    1u
#define ART_PREAMBLE_BYTES    24u /* magic + version + reserved + H */
#define ART_MAX_DIMS          8
#define ART_MAX_NAME          1024               /* bytes in a tensor name */
#define ART_MAX_HEADER        (64u << 20)        /* largest header H a reader accepts */
#define ART_MAX_META_DEPTH    24                 /* nesting of containers in "meta" */
#define ART_LZ4_CHUNK_DEFAULT ((size_t)64 << 20) /* raw bytes per LZ4 chunk */

typedef enum { ART_F32 = 0, ART_F16 = 1, ART_U8 = 2, ART_I32 = 3 } ArtDtype;
typedef enum { ART_CODEC_RAW = 0, ART_CODEC_LZ4 = 1 } ArtCodec;

/* "f32", "f16", "u8", "i32"; NULL / 0 for an invalid value.
 * art_dtype_parse returns -1 for an unknown name. */
const char *art_dtype_name(ArtDtype dt);
size_t art_dtype_size(ArtDtype dt);
int art_dtype_parse(const char *s, size_t len, ArtDtype *out);
const char *art_codec_name(ArtCodec c); /* "raw", "lz4" */

/* ---- writer ---- */

typedef struct ArtWriter ArtWriter;

ArtWriter *art_writer_new(QErr *err);
void art_writer_free(ArtWriter *w); /* NULL is fine */

/* The packer for the metadata tree. Pack exactly ONE msgpack object (usually
 * a map; nesting at most ART_MAX_META_DEPTH containers). Nothing packed means
 * an empty map. Checked at art_writer_write. */
msgpack_packer *art_writer_meta(ArtWriter *w);

/* Adds a tensor of shape[0..ndim) (ndim 0..ART_MAX_DIMS, ndim 0 is a scalar;
 * any dimension may be 0) holding numel * art_dtype_size(dt) bytes at data
 * (NULL allowed when that is 0). compress != 0 stores it as LZ4 chunks — or
 * raw if that would not be smaller. Copies or compresses immediately.
 * Names must be 1..ART_MAX_NAME bytes, without NUL, unique in the file. */
int art_writer_add(ArtWriter *w, const char *name, ArtDtype dt, int ndim, const int64_t *shape,
                   const void *data, int compress, QErr *err);

/* Raw bytes per LZ4 chunk for tensors added after this call (1 byte to
 * LZ4_MAX_INPUT_SIZE; default ART_LZ4_CHUNK_DEFAULT). For tests. */
int art_writer_set_chunk_size(ArtWriter *w, size_t bytes, QErr *err);

int art_writer_n_tensors(const ArtWriter *w);

/* Writes the file atomically (see AtomicFile in base/mapfile.h): on any
 * failure the old file at path is untouched and the temp file removed. The
 * writer stays valid; writing again gives the same bytes. */
int art_writer_write(ArtWriter *w, const char *path, QErr *err);

/* ---- reader ---- */

typedef struct {
    const char *name; /* NUL-terminated, owned by the reader */
    ArtDtype dtype;
    int ndim;
    int64_t shape[ART_MAX_DIMS];
    int64_t numel;         /* product of shape (1 for ndim 0) */
    uint64_t offset;       /* of the stored bytes, from the data section start */
    uint64_t stored_bytes; /* bytes in the file */
    uint64_t raw_bytes;    /* decoded bytes == numel * art_dtype_size(dtype) */
    ArtCodec codec;
    uint32_t checksum; /* CRC-32 of the stored bytes */
} ArtTensorInfo;

typedef struct ArtReader ArtReader;

/* Maps and validates path. On failure *r is NULL. */
int art_open(ArtReader **r, const char *path, QErr *err);
/* Same over a buffer the caller keeps alive and unchanged until art_close
 * (name is used in messages). */
int art_open_buffer(ArtReader **r, const void *data, size_t size, const char *name, QErr *err);
void art_close(ArtReader *r); /* NULL is fine */

const char *art_name(const ArtReader *r);
/* The metadata tree, valid until art_close. */
const msgpack_object *art_meta(const ArtReader *r);
int art_n_tensors(const ArtReader *r);
const ArtTensorInfo *art_tensor_info(const ArtReader *r, int i); /* NULL if out of range */
int art_find(const ArtReader *r, const char *name);              /* index or -1 */

/* Decodes tensor i into dst; dst_bytes must equal its raw_bytes. Verifies
 * the checksum of the stored bytes first, then the LZ4 framing and exact
 * decoded size. Errors name the file and the tensor. */
int art_read(const ArtReader *r, int i, void *dst, size_t dst_bytes, QErr *err);

/* A pointer into the file to the decoded bytes of a raw-codec tensor after
 * checking its checksum (8-byte aligned relative to the file start); NULL
 * with an error for an LZ4 tensor or a mismatch. Valid until art_close. */
const void *art_view(const ArtReader *r, int i, QErr *err);

/* Checks every section: checksum, LZ4 framing, full decode. */
int art_verify_all(const ArtReader *r, QErr *err);
/* The same for section i alone (to go on past a bad one). */
int art_verify_section(const ArtReader *r, int i, QErr *err);

/* For tests and fuzzing: the stored bytes of tensor i (unchecked), and the
 * decoder art_read uses after its checksum check. */
const uint8_t *art_stored_ptr(const ArtReader *r, int i);
int art_decode(const uint8_t *src, uint64_t stored, ArtCodec codec, void *dst, uint64_t raw, QErr *err);

#endif
