/* fuzz_container.c — libFuzzer target for the artifact reader
 * (common/artifact/container.c). Build and run: see docs/testing.md
 * ("Fuzzing"). tests/test_container.c also includes this file and runs every
 * input under tests/data/fuzz-container/ through LLVMFuzzerTestOneInput.
 *
 * The input is an artifact file. The harness recomputes the header checksum
 * (when the header ends with the checksum field) so that mutations reach the
 * MessagePack parser and the field checks instead of stopping at the CRC; it
 * then reads every tensor, also through art_decode directly (bypassing the
 * data checksum) so that corrupt LZ4 framing reaches the decoder, and
 * parses the metadata as an elastic artifact's (elastic_load_meta). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "artifact/container.h"
#include "artifact/elastic.h"
#include "base/crc32.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    if (size >= ART_PREAMBLE_BYTES) {
        uint64_t h = 0;
        for (int i = 7; i >= 0; i--) h = h << 8 | buf[16 + i];
        if (h >= 22 && h <= size - ART_PREAMBLE_BYTES) {
            uint8_t *hd = buf + ART_PREAMBLE_BYTES, *tr = hd + h - 21;
            if (tr[16] == 0xce) {
                uint32_t crc = crc32_ieee(0, hd, (size_t)h - 21);
                for (int i = 0; i < 4; i++) tr[17 + i] = (uint8_t)(crc >> (24 - 8 * i));
            }
        }
    }
    QErr err;
    ArtReader *r = NULL;
    if (art_open_buffer(&r, buf, size, "fuzz", &err) == 0) {
        const msgpack_object *m = art_meta(r);
        int64_t iv;
        double dv;
        int bv;
        char s[16];
        const msgpack_object *arr;
        mp_map_int(m, "a", &iv, &err);
        mp_map_float(m, "b", &dv, &err);
        mp_map_bool(m, "c", &bv, &err);
        mp_map_str(m, "d", s, sizeof s, &err);
        if (mp_map_array(m, "e", &arr, &err) == 0)
            for (uint32_t k = 0; k < arr->via.array.size; k++)
                mp_obj_int(&arr->via.array.ptr[k], "e[]", &iv, &err);
        mp_map_map(m, "f", &arr, &err);
        uint64_t total = 0;
        for (int i = 0; i < art_n_tensors(r); i++) {
            const ArtTensorInfo *t = art_tensor_info(r, i);
            if (!t || art_find(r, t->name) != i) __builtin_trap(); /* names are unique */
            total += t->raw_bytes;
            if (t->raw_bytes > (1u << 20)) continue;
            void *dst = malloc(t->raw_bytes ? (size_t)t->raw_bytes : 1);
            if (!dst) continue;
            art_read(r, i, dst, (size_t)t->raw_bytes, &err);
            art_decode(art_stored_ptr(r, i), t->stored_bytes, t->codec, dst, t->raw_bytes, &err);
            art_view(r, i, &err);
            free(dst);
        }
        if (total <= (16u << 20)) art_verify_all(r, &err);
        /* the elastic artifact's schema on top of the container */
        ElasticModel em;
        if (elastic_load_meta(&em, r, &err) == 0) elastic_free(&em);
        art_close(r);
    }
    free(buf);
    return 0;
}
