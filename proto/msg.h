/* msg.h — the coordinator <-> worker wire format, protocol version 1.
 *
 * One message is one ZeroMQ multipart message (after the ROUTER's peer
 * identity frame, which transport.c handles):
 *
 *   frame 0      MessagePack map {"v": 1, "t": "<type>", <fields>,
 *                "tensors": [[name, dtype, [shape...], codec, raw_bytes], ...]}
 *   frame 1..n   one per tensor: its raw bytes, or one LZ4 block of them
 *
 * Types and their fields (every message also carries "session" and
 * "assign"; the conversation: docs/protocol.md, coordinator/coord.c):
 *   register     worker -> coordinator: name, threads
 *   assign       coordinator -> worker: shard, block_begin, block_end,
 *                block_start (first block still to calibrate), send_fp_out,
 *                n_seq, T, dim, n_layers, model_path, qc (the "quant" map of
 *                the artifact; its bf16_activations says how the worker
 *                stores the shard's activations)
 *   activations  both ways: block (whose input they are), seq0; tensor "x"
 *                (n, T, dim) for sequences [seq0, seq0 + n)
 *   params       coordinator -> worker: a journaled block (replayed, not
 *                trained): block, stats; tensors "lwc", "adapter" (and
 *                "teq" when the job trains TEQ scales)
 *   result       worker -> coordinator: block, stats; the same tensors
 *   progress     worker -> coordinator: block, epoch, epochs, group_loss[4],
 *                tokens_per_s
 *   heartbeat    both ways, no fields
 *   error        worker -> coordinator: text (the job fails with it)
 *   shutdown     coordinator -> worker: text (the job is over: exit)
 *
 * msg_decode checks everything: the version, the type, every field's type
 * and range, the tensor table against the frames (count, dtype, shape,
 * sizes, LZ4 framing and exact decoded size). Unknown keys are ignored (a
 * newer minor addition), an unknown version is refused. */
#ifndef QUEPT_PROTO_MSG_H
#define QUEPT_PROTO_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "engine/recon.h"

#define PROTO_VERSION         3
#define PROTO_MAX_CODE_PIECES 8 /* rq_codes.0..7: a block's stored GPTQ codes, <= 512 MiB each */
#define PROTO_MAX_TENSORS     (4 + PROTO_MAX_CODE_PIECES)
#define PROTO_MAX_HEADER      ((size_t)1 << 20)         /* bytes of frame 0 */
#define PROTO_MAX_TENSOR      ((size_t)512 << 20)       /* decoded bytes of one tensor */
#define PROTO_MAX_FRAME       (PROTO_MAX_TENSOR + 4096) /* ZMQ_MAXMSGSIZE on every socket */
#define PROTO_CHUNK_BYTES     ((size_t)64 << 20)        /* activations are sent in chunks of about this */

typedef enum {
    MSG_REGISTER = 0,
    MSG_ASSIGN,
    MSG_ACTIVATIONS,
    MSG_PARAMS,
    MSG_RESULT,
    MSG_PROGRESS,
    MSG_HEARTBEAT,
    MSG_ERROR,
    MSG_SHUTDOWN,
    MSG_N_TYPES
} MsgType;

typedef enum { MSG_F32 = 0, MSG_BF16 = 1, MSG_U8 = 2 } MsgDtype;

typedef struct {
    char name[16];
    MsgDtype dtype;
    int ndim;
    int64_t shape[3];
    size_t nbytes; /* dtype size * product of shape */
    void *data;    /* msg_encode: borrowed; msg_decode: owned (msg_free) */
} MsgTensor;

typedef struct {
    MsgType type;
    uint64_t session; /* the coordinator's run (it changes when a coordinator restarts) */
    uint64_t assign;  /* the assignment a message belongs to (0: none) */
    /* register */
    char name[64];
    int threads;
    /* assign */
    int shard, block_begin, block_end, block_start, send_fp_out;
    int n_seq, T, dim, n_layers;
    char model_path[1024];
    QuantConfig qc;
    /* activations, params, result, progress */
    int block, seq0;
    int epoch, epochs;
    double group_loss[QN_GROUPS], tokens_per_s;
    ReconStats stats; /* n_bits entries of each array are sent (qc's bits) */
    int n_bits;       /* params/result: entries in the stats arrays */
    /* error, shutdown */
    char text[512];
    int n_tensors;
    MsgTensor t[PROTO_MAX_TENSORS];
} Msg;

/* Encoded frames: frame 0 the header, then one per tensor. Buffers are
 * malloc'd; ownership can be taken frame by frame (set data[i] = NULL). */
typedef struct {
    int n;
    uint8_t *data[1 + PROTO_MAX_TENSORS];
    size_t len[1 + PROTO_MAX_TENSORS];
} MsgFrames;

const char *msg_type_name(MsgType t);

/* Zeroes m and sets its type. */
void msg_init(Msg *m, MsgType type);
/* Adds a borrowed tensor (shape of ndim <= 3) to an outgoing message. */
int msg_add_tensor(Msg *m, const char *name, MsgDtype dt, int ndim, const int64_t *shape, const void *data,
                   QErr *err);
/* The tensor called name, or NULL. */
const MsgTensor *msg_tensor(const Msg *m, const char *name);

/* A block's raw parameters (lwc, adapter, teq, and the flattened stored
 * codes rq_codes.K/rq_grid of QB_GPTQ bits when there are any) as tensors of
 * an outgoing params/result message (borrowed), and back: copies into raw's
 * arrays (malloc'd; free with qblock_params_free). msg_decode has checked
 * their dtypes. */
int msg_add_params(Msg *m, const QBlockParams *raw, QErr *err);
/* The same with the stored codes cut into pieces rq_codes.0, rq_codes.1, ...
 * of at most `piece` bytes (msg_add_params: PROTO_MAX_TENSOR, the frame
 * limit; more than PROTO_MAX_CODE_PIECES pieces is an error saying what to
 * do); msg_take_params joins them in order. */
int msg_add_params_split(Msg *m, const QBlockParams *raw, size_t piece, QErr *err);
int msg_take_params(const Msg *m, QBlockParams *raw, QErr *err);

/* compress: LZ4 each tensor frame (kept raw where that is not smaller). */
int msg_encode(const Msg *m, int compress, MsgFrames *out, QErr *err);
void msg_frames_free(MsgFrames *f);

/* Decodes n frames into m (tensors malloc'd; msg_free releases them). On
 * failure m holds nothing to free and err says what was wrong. */
int msg_decode(const uint8_t *const *frames, const size_t *lens, int n, Msg *m, QErr *err);
void msg_free(Msg *m);

/* bf16 tensors: base/bf16.h converts (bf16_from_f32_n / bf16_to_f32_n). */

#endif
