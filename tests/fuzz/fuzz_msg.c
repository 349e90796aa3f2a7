/* fuzz_msg.c — libFuzzer target for the wire protocol's decoder
 * (proto/msg.c). Build and run: see docs/protocol.md ("Fuzzing").
 * tests/test_proto.c also includes this file and runs every input under
 * tests/data/fuzz-msg/ through LLVMFuzzerTestOneInput.
 *
 * Input layout (so one byte string describes a multipart message): byte 0
 * is the frame count n (taken mod 1 + PROTO_MAX_TENSORS + 1, so a few too
 * many are possible), then n - 1 little-endian u16 lengths, then the frames
 * back to back (the last one takes whatever is left). A decoded message is
 * encoded again and decoded again: both must succeed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    enum { MAXF = 2 + PROTO_MAX_TENSORS };
    if (size < 1) return 0;
    int n = data[0] % (MAXF + 1);
    size_t pos = 1;
    const uint8_t *fr[MAXF] = {0};
    size_t len[MAXF] = {0};
    for (int i = 0; i + 1 < n; i++) {
        if (pos + 2 > size) return 0;
        len[i] = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
        pos += 2;
    }
    size_t need = 0;
    for (int i = 0; i + 1 < n; i++) need += len[i];
    if (pos + need > size) return 0;
    if (n > 0) len[n - 1] = size - pos - need;
    for (int i = 0; i < n; i++) {
        /* each frame in its own allocation, so ASan sees any overread */
        uint8_t *copy = malloc(len[i] ? len[i] : 1);
        if (!copy) abort();
        memcpy(copy, data + pos, len[i]);
        fr[i] = copy;
        pos += len[i];
    }
    Msg m;
    QErr err;
    if (msg_decode(fr, len, n, &m, &err) == 0) {
        MsgFrames f;
        if (msg_encode(&m, 1, &f, &err) != 0) abort();
        Msg m2;
        if (msg_decode((const uint8_t *const *)f.data, f.len, f.n, &m2, &err) != 0) abort();
        if (m2.type != m.type || m2.n_tensors != m.n_tensors) abort();
        msg_free(&m2);
        msg_frames_free(&f);
        msg_free(&m);
    }
    for (int i = 0; i < n; i++) free((void *)fr[i]);
    return 0;
}
