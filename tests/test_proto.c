/* test_proto.c — the wire protocol: every message type round-trips; every
 * malformed input is refused with a message (never a crash: run under ASan);
 * seeded random mutations of valid messages; and a live coordinator fed
 * garbage on its socket still finishes its job. */
#include <lz4.h>
#include <msgpack.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "base/rng.h"
#include "check.h"
#include "proto/msg.h"
#include "proto/transport.h"
#include "quant/qconfig_table.h"

#include "fuzz/fuzz_msg.c"

extern char **environ;

static int decode_frames(const MsgFrames *f, Msg *m, QErr *err) {
    return msg_decode((const uint8_t *const *)f->data, f->len, f->n, m, err);
}

static void sample_msg(Msg *m, MsgType t, float *buf, size_t nbuf) {
    msg_init(m, t);
    m->session = 0x1234567890abcdefULL;
    m->assign = 42;
    QErr err;
    switch (t) {
    case MSG_REGISTER:
        snprintf(m->name, sizeof m->name, "worker-7");
        m->threads = 3;
        break;
    case MSG_ASSIGN:
        m->n_layers = 8, m->shard = 1, m->block_begin = 4, m->block_end = 8, m->block_start = 6,
        m->send_fp_out = 1;
        m->n_seq = 16, m->T = 64, m->dim = 32;
        snprintf(m->model_path, sizeof m->model_path, "/models/x.bin");
        quant_config_default(&m->qc);
        m->qc.epochs = 3, m->qc.seed = 77, m->qc.act_bf16 = 1;
        break;
    case MSG_ACTIVATIONS: {
        m->block = 4, m->seq0 = 2;
        int64_t shape[3] = {2, 4, (int64_t)(nbuf / 8)};
        msg_add_tensor(m, "x", MSG_F32, 3, shape, buf, &err);
        break;
    }
    case MSG_PARAMS:
    case MSG_RESULT: {
        m->block = 5, m->n_bits = 3;
        for (int i = 0; i < 3; i++) {
            m->stats.loss_rtn[i] = 1.5 + i, m->stats.loss_init[i] = 1.25 + i,
            m->stats.loss_final[i] = 0.5 + i;
            m->stats.hold_rtn[i] = 2 + i, m->stats.hold_final[i] = 1 + i, m->stats.choice[i] = i % 3;
        }
        m->stats.seconds = 3.25, m->stats.tokens_per_s = 1000;
        int64_t a = (int64_t)nbuf / 2, b = (int64_t)nbuf - a;
        msg_add_tensor(m, "lwc", MSG_F32, 1, &a, buf, &err);
        msg_add_tensor(m, "adapter", MSG_F32, 1, &b, buf + a, &err);
        break;
    }
    case MSG_PROGRESS:
        m->block = 3, m->epoch = 2, m->epochs = 15, m->tokens_per_s = 512.5;
        m->group_loss[0] = 0.1, m->group_loss[1] = NAN, m->group_loss[2] = 0.3, m->group_loss[3] = 0.4;
        break;
    case MSG_ERROR:
    case MSG_SHUTDOWN: snprintf(m->text, sizeof m->text, "something happened"); break;
    default: break;
    }
}

static int same_double(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

static void test_roundtrip(void) {
    enum { N = 4096 };
    float *buf = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) buf[i] = (float)(i % 17) * 0.25f; /* compressible */
    for (int t = 0; t < MSG_N_TYPES; t++)
        for (int lz = 0; lz < 2; lz++) {
            Msg m, d;
            sample_msg(&m, (MsgType)t, buf, N);
            MsgFrames f;
            QErr err = {{0}};
            CHECK(msg_encode(&m, lz, &f, &err) == 0);
            int rc = decode_frames(&f, &d, &err);
            CHECK_MSG(rc == 0, "%s: %s", msg_type_name((MsgType)t), err.msg);
            if (rc != 0) {
                msg_frames_free(&f);
                continue;
            }
            CHECK(d.type == m.type && d.session == m.session && d.assign == m.assign);
            CHECK(strcmp(d.name, m.name) == 0 && d.threads == m.threads && strcmp(d.text, m.text) == 0);
            CHECK(d.shard == m.shard && d.block_begin == m.block_begin && d.block_end == m.block_end &&
                  d.block_start == m.block_start && d.send_fp_out == m.send_fp_out && d.n_seq == m.n_seq &&
                  d.T == m.T && d.dim == m.dim && strcmp(d.model_path, m.model_path) == 0);
            CHECK(d.block == m.block && d.seq0 == m.seq0 && d.epoch == m.epoch && d.epochs == m.epochs);
            for (int g = 0; g < QN_GROUPS; g++) CHECK(same_double(d.group_loss[g], m.group_loss[g]));
            if (t == MSG_RESULT || t == MSG_PARAMS) {
                CHECK(d.n_bits == 3 && d.stats.seconds == 3.25);
                for (int i = 0; i < 3; i++)
                    CHECK(d.stats.loss_final[i] == m.stats.loss_final[i] &&
                          d.stats.choice[i] == m.stats.choice[i] &&
                          d.stats.hold_rtn[i] == m.stats.hold_rtn[i]);
            }
            if (t == MSG_ASSIGN) {
                /* the config survives the wire exactly: packing it again gives the same bytes */
                msgpack_sbuffer a, b;
                msgpack_sbuffer_init(&a);
                msgpack_sbuffer_init(&b);
                msgpack_packer pa, pb;
                msgpack_packer_init(&pa, &a, msgpack_sbuffer_write);
                msgpack_packer_init(&pb, &b, msgpack_sbuffer_write);
                qconfig_pack(&pa, &m.qc);
                qconfig_pack(&pb, &d.qc);
                CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
                CHECK(d.qc.act_bf16 == 1); /* how the worker stores the activations */
                CHECK(d.qc.epochs == 3 && d.qc.seed == 77 && d.qc.fallback == m.qc.fallback &&
                      d.qc.prefix_grad_stop == m.qc.prefix_grad_stop && d.qc.lwc_init[8] == m.qc.lwc_init[8]);
                msgpack_sbuffer_destroy(&a);
                msgpack_sbuffer_destroy(&b);
            }
            CHECK(d.n_tensors == m.n_tensors);
            for (int i = 0; i < d.n_tensors && i < m.n_tensors; i++) {
                CHECK(strcmp(d.t[i].name, m.t[i].name) == 0 && d.t[i].nbytes == m.t[i].nbytes &&
                      d.t[i].ndim == m.t[i].ndim);
                CHECK(memcmp(d.t[i].data, m.t[i].data, m.t[i].nbytes) == 0);
                if (lz) CHECK_MSG(f.len[1 + i] < m.t[i].nbytes, "compressible tensor not compressed");
            }
            msg_free(&d);
            msg_frames_free(&f);
        }
    free(buf);
}

/* A header built by hand, with one field changed. */
static size_t header_with(uint8_t *out, size_t cap, const char *type, int version, const char *bad_key,
                          int64_t bad_val) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8);
    mp_pack_str(&pk, "v");
    msgpack_pack_int(&pk, version);
    mp_pack_str(&pk, "t");
    mp_pack_str(&pk, type);
    mp_pack_str(&pk, "session");
    msgpack_pack_uint64(&pk, 1);
    mp_pack_str(&pk, "assign");
    msgpack_pack_uint64(&pk, 1);
    mp_pack_str(&pk, "block");
    msgpack_pack_int64(&pk, strcmp(bad_key, "block") == 0 ? bad_val : 1);
    mp_pack_str(&pk, "seq0");
    msgpack_pack_int64(&pk, strcmp(bad_key, "seq0") == 0 ? bad_val : 0);
    mp_pack_str(&pk, "text");
    mp_pack_str(&pk, "x");
    mp_pack_str(&pk, "tensors");
    msgpack_pack_array(&pk, 0);
    size_t n = sb.size < cap ? sb.size : cap;
    memcpy(out, sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static void expect_refused(const uint8_t *const *fr, const size_t *len, int n, const char *want,
                           const char *what) {
    Msg m;
    QErr err = {{0}};
    int rc = msg_decode(fr, len, n, &m, &err);
    CHECK_MSG(rc != 0, "%s: accepted", what);
    if (rc == 0)
        msg_free(&m);
    else
        CHECK_MSG(strstr(err.msg, want) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, want);
}

/* A result carrying stored codes (QB_GPTQ bits): u8 pieces rq_codes.K and
 * f32 rq_grid come through intact, in one piece or cut in several and joined
 * (msg_add_params[_split] / msg_take_params); codes without a grid, either
 * of the wrong dtype, or a gap in the pieces are refused. */
static void test_params_codes(void) {
    float lwc[6] = {1, 2, 3, 4, 5, 6}, ad[4] = {-1, -2, -3, -4}, grid[4] = {0.5f, 0.25f, 3, 4};
    uint8_t codes[10] = {0, 1, 2, 3, 250, 251, 7, 8, 9, 255};
    QBlockParams raw;
    memset(&raw, 0, sizeof raw);
    raw.lwc = lwc, raw.n_lwc = 6, raw.adapter = ad, raw.n_adapter = 4;
    raw.flat_codes = codes, raw.n_flat_codes = 10, raw.flat_grid = grid, raw.n_flat_grid = 4;
    QErr err = {{0}};
    static const char *const want[6] = {"", "come together", "rq_codes.0", "rq_grid", "", "pieces"};
    for (int variant = 0; variant < 6; variant++) {
        Msg m;
        msg_init(&m, MSG_RESULT);
        m.block = 1, m.n_bits = 1;
        m.stats.choice[0] = QB_GPTQ;
        int64_t n6 = 6, n4 = 4, n10 = 10;
        switch (variant) {
        case 0: CHECK_MSG(msg_add_params(&m, &raw, &err) == 0, "%s", err.msg); break;
        case 4: /* pieces of 3 bytes: rq_codes.0..3, the last one short */
            CHECK_MSG(msg_add_params_split(&m, &raw, 3, &err) == 0 && m.n_tensors == 7, "%s", err.msg);
            break;
        default:
            msg_add_tensor(&m, "lwc", MSG_F32, 1, &n6, lwc, &err);
            msg_add_tensor(&m, "adapter", MSG_F32, 1, &n4, ad, &err);
            if (variant == 1) msg_add_tensor(&m, "rq_codes.0", MSG_U8, 1, &n10, codes, &err); /* no grid */
            if (variant == 2) msg_add_tensor(&m, "rq_codes.0", MSG_F32, 1, &n4, grid, &err);  /* f32 codes */
            if (variant == 5) {                                                               /* a gap */
                msg_add_tensor(&m, "rq_codes.0", MSG_U8, 1, &n4, codes, &err);
                msg_add_tensor(&m, "rq_codes.2", MSG_U8, 1, &n4, codes, &err);
            }
            if (variant != 1) /* the grid; u8 in variant 3, with no codes */
                msg_add_tensor(&m, "rq_grid", variant == 3 ? MSG_U8 : MSG_F32, 1, variant == 3 ? &n10 : &n4,
                               variant == 3 ? (const void *)codes : (const void *)grid, &err);
        }
        MsgFrames f;
        CHECK(msg_encode(&m, variant & 1, &f, &err) == 0);
        if (variant == 0 || variant == 4) {
            Msg d;
            CHECK_MSG(msg_decode((const uint8_t *const *)f.data, f.len, f.n, &d, &err) == 0, "%s", err.msg);
            QBlockParams back;
            memset(&back, 0, sizeof back);
            CHECK_MSG(msg_take_params(&d, &back, &err) == 0, "%s", err.msg);
            CHECK(back.n_lwc == 6 && back.n_adapter == 4 && back.n_teq == 0 && back.n_flat_codes == 10 &&
                  back.n_flat_grid == 4);
            CHECK(back.flat_codes && memcmp(back.flat_codes, codes, 10) == 0 &&
                  memcmp(back.flat_grid, grid, sizeof grid) == 0 && memcmp(back.lwc, lwc, sizeof lwc) == 0 &&
                  memcmp(back.adapter, ad, sizeof ad) == 0);
            CHECK(d.stats.choice[0] == QB_GPTQ);
            qblock_params_free(&back);
            msg_free(&d);
        } else {
            expect_refused((const uint8_t *const *)f.data, f.len, f.n, want[variant],
                           "malformed stored codes");
        }
        msg_frames_free(&f);
    }
    /* more pieces than the protocol allows: refused when the message is built */
    CHECK(msg_add_params_split(&(Msg){.type = MSG_RESULT}, &raw, 1, &err) == -1 && strstr(err.msg, "pieces"));
}

static void test_malformed(void) {
    uint8_t h[512];
    const uint8_t *fr[6];
    size_t len[6];
    fr[0] = h;
    len[0] = header_with(h, sizeof h, "heartbeat", PROTO_VERSION, "", 0);
    Msg m;
    QErr err = {{0}};
    CHECK_MSG(msg_decode(fr, len, 1, &m, &err) == 0, "%s", err.msg);
    len[0] = header_with(h, sizeof h, "heartbeat", PROTO_VERSION + 1, "", 0);
    char newer[64];
    snprintf(newer, sizeof newer, "protocol version %d", PROTO_VERSION + 1);
    expect_refused(fr, len, 1, newer, "newer version");
    len[0] = header_with(h, sizeof h, "teleport", PROTO_VERSION, "", 0);
    expect_refused(fr, len, 1, "unknown message type 'teleport'", "unknown type");
    len[0] = header_with(h, sizeof h, "register", PROTO_VERSION, "", 0);
    expect_refused(fr, len, 1, "name", "register without a name");
    len[0] = header_with(h, sizeof h, "activations", PROTO_VERSION, "seq0", -5);
    expect_refused(fr, len, 1, "seq0", "negative seq0");
    len[0] = header_with(h, sizeof h, "activations", PROTO_VERSION, "block", 1 << 20);
    expect_refused(fr, len, 1, "block", "block out of range");
    len[0] = header_with(h, sizeof h, "activations", PROTO_VERSION, "", 0);
    expect_refused(fr, len, 1, "tensor \"x\"", "activations without x");
    len[0] = header_with(h, sizeof h, "heartbeat", PROTO_VERSION, "", 0);
    fr[1] = h;
    len[1] = 4;
    expect_refused(fr, len, 2, "tensor frames", "extra frame");
    expect_refused(fr, len, 0, "empty", "no frames");
    len[0] = 0;
    expect_refused(fr, len, 1, "header of 0 bytes", "empty header");
    uint8_t junk[5] = {0xc1, 0xc1, 0xc1, 0xc1, 0xc1};
    fr[0] = junk, len[0] = sizeof junk;
    expect_refused(fr, len, 1, "MessagePack", "garbage header");
    uint8_t arr[1] = {0x90}; /* an empty array, not a map */
    fr[0] = arr, len[0] = 1;
    expect_refused(fr, len, 1, "expected a map", "array header");
    /* tensor table vs frames */
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    Msg a;
    msg_init(&a, MSG_ACTIVATIONS);
    int64_t shape[3] = {1, 2, 4};
    msg_add_tensor(&a, "x", MSG_F32, 3, shape, x, &err);
    MsgFrames f;
    CHECK(msg_encode(&a, 0, &f, &err) == 0);
    size_t ok_len = f.len[1];
    f.len[1] = ok_len - 4;
    expect_refused((const uint8_t *const *)f.data, f.len, f.n, "frame of 28 bytes", "short tensor frame");
    f.len[1] = ok_len;
    expect_refused((const uint8_t *const *)f.data, f.len, 1, "0 tensor frames for 1 tensors",
                   "missing tensor frame");
    msg_frames_free(&f);
    /* LZ4 that lies about its size */
    float big[256];
    for (int i = 0; i < 256; i++) big[i] = 1.0f;
    int64_t s2[3] = {1, 4, 64};
    msg_init(&a, MSG_ACTIVATIONS);
    msg_add_tensor(&a, "x", MSG_F32, 3, s2, big, &err);
    CHECK(msg_encode(&a, 1, &f, &err) == 0);
    CHECK(f.len[1] < sizeof big);
    f.len[1] -= 3;
    expect_refused((const uint8_t *const *)f.data, f.len, f.n, "LZ4", "truncated LZ4");
    msg_frames_free(&f);
    /* too many tensors / dims on encode */
    msg_init(&a, MSG_ACTIVATIONS);
    int64_t s4[4] = {1, 1, 1, 1};
    CHECK(msg_add_tensor(&a, "x", MSG_F32, 4, s4, x, &err) != 0);
    int64_t huge[3] = {1 << 20, 1 << 20, 1 << 10};
    CHECK(msg_add_tensor(&a, "x", MSG_F32, 3, huge, x, &err) != 0);
}

/* Seeded random mutations of every valid message: decode must answer
 * (accept or refuse), never crash or leak (ASan run). */
static void test_mutations(void) {
    enum { N = 256 };
    float buf[N];
    for (int i = 0; i < N; i++) buf[i] = (float)(i % 5);
    Rng rng;
    rng_seed(&rng, 12345);
    int accepted = 0, refused = 0;
    for (int t = 0; t < MSG_N_TYPES; t++)
        for (int lz = 0; lz < 2; lz++) {
            Msg m;
            sample_msg(&m, (MsgType)t, buf, N);
            MsgFrames f;
            QErr err;
            CHECK(msg_encode(&m, lz, &f, &err) == 0);
            for (int it = 0; it < 1500; it++) {
                uint8_t *copy[1 + PROTO_MAX_TENSORS];
                size_t len[1 + PROTO_MAX_TENSORS];
                int n = f.n;
                for (int i = 0; i < n; i++) {
                    len[i] = f.len[i];
                    copy[i] = malloc(f.len[i] + 8);
                    memcpy(copy[i], f.data[i], f.len[i]);
                }
                int k = rng_int(&rng, n), kind = rng_int(&rng, 4);
                if (kind == 0 && len[k])
                    copy[k][rng_int(&rng, (int)len[k])] ^= (uint8_t)(1u << rng_int(&rng, 8));
                else if (kind == 1 && len[k])
                    len[k] = (size_t)rng_int(&rng, (int)len[k]);
                else if (kind == 2 && len[k])
                    copy[k][rng_int(&rng, (int)len[k])] = (uint8_t)rng_int(&rng, 256);
                else if (kind == 3)
                    n = rng_int(&rng, n + 1);
                Msg d;
                if (msg_decode((const uint8_t *const *)copy, len, n, &d, &err) == 0) {
                    accepted++;
                    msg_free(&d);
                } else {
                    refused++;
                }
                for (int i = 0; i < f.n; i++) free(copy[i]);
            }
            msg_frames_free(&f);
        }
    printf("mutations: %d accepted, %d refused\n", accepted, refused);
    CHECK(refused > 0 && accepted > 0);
}

/* Seeds for the fuzz target (every message type, raw and LZ4) in its input
 * layout; written with QUEPT_WRITE_FUZZ_SEEDS=DIR, and every file in
 * tests/data/fuzz-msg/ (seeds and any crasher found) runs through it here. */
/* Names and texts from the network reach logs and quept status: control
 * characters (escape sequences, CR/LF that would forge a log line, C1) come
 * out as '?'. */
static void test_sanitized_text(void) {
    Msg m, d;
    msg_init(&m, MSG_REGISTER);
    m.threads = 1;
    snprintf(m.name, sizeof m.name, "a\033[31mb\r\nquept info: fake\xc2\x9bz\xc3\xa9");
    MsgFrames f;
    QErr err = {{0}};
    CHECK(msg_encode(&m, 0, &f, &err) == 0);
    CHECK_MSG(decode_frames(&f, &d, &err) == 0, "%s", err.msg);
    CHECK_MSG(strcmp(d.name, "a?[31mb??quept info: fake??z\xc3\xa9") == 0, "got '%s'", d.name);
    msg_free(&d);
    msg_frames_free(&f);
    msg_init(&m, MSG_ERROR);
    snprintf(m.text, sizeof m.text, "bad\033]0;title\007");
    CHECK(msg_encode(&m, 0, &f, &err) == 0);
    CHECK(decode_frames(&f, &d, &err) == 0);
    CHECK_MSG(strcmp(d.text, "bad?]0;title?") == 0, "got '%s'", d.text);
    msg_free(&d);
    msg_frames_free(&f);
}

static void test_fuzz_corpus(void) {
    const char *out = getenv("QUEPT_WRITE_FUZZ_SEEDS");
    float buf[64];
    for (int i = 0; i < 64; i++) buf[i] = (float)(i % 3);
    for (int t = 0; t < MSG_N_TYPES && out; t++)
        for (int lz = 0; lz < 2; lz++) {
            Msg m;
            sample_msg(&m, (MsgType)t, buf, 64);
            MsgFrames f;
            QErr err;
            if (msg_encode(&m, lz, &f, &err) != 0) continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/seed-%s-%s", out, msg_type_name((MsgType)t), lz ? "lz4" : "raw");
            FILE *fp = fopen(path, "wb");
            if (fp) {
                fputc(f.n, fp);
                for (int i = 0; i + 1 < f.n; i++) {
                    fputc((int)(f.len[i] & 0xff), fp);
                    fputc((int)(f.len[i] >> 8), fp);
                }
                for (int i = 0; i < f.n; i++) fwrite(f.data[i], 1, f.len[i], fp);
                fclose(fp);
            }
            msg_frames_free(&f);
        }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls %s/fuzz-msg 2>/dev/null", QUEPT_TEST_DATA);
    FILE *ls = popen(cmd, "r");
    int n = 0;
    char name[512];
    while (ls && fgets(name, sizeof name, ls)) {
        name[strcspn(name, "\n")] = 0;
        char path[1200];
        snprintf(path, sizeof path, "%s/fuzz-msg/%s", QUEPT_TEST_DATA, name);
        FILE *fp = fopen(path, "rb");
        if (!fp) continue;
        uint8_t data[65536];
        size_t len = fread(data, 1, sizeof data, fp);
        fclose(fp);
        LLVMFuzzerTestOneInput(data, len);
        n++;
    }
    if (ls) pclose(ls);
    printf("fuzz corpus: %d inputs\n", n);
    CHECK(n >= 2 * MSG_N_TYPES);
}

/* ---- a live coordinator fed garbage ---- */

static pid_t spawn(char *const argv[]) {
    pid_t pid;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0) return -1;
    return pid;
}

static int wait_exit(pid_t pid, double timeout_s) {
    for (double t = 0; t < timeout_s; t += 0.05) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void test_live_garbage(void) {
    char model[1024];
    snprintf(model, sizeof model, "%s/models/stories260K.bin", QUEPT_SHARED_DIR);
    if (access(model, R_OK) != 0) {
        printf("live test skipped: %s not found\n", model);
        return;
    }
    char dir[] = "/tmp/quept-proto-XXXXXX";
    if (!mkdtemp(dir)) return;
    char data[1200], out[1200], ckpt[1200], ep[1200], cmd[4096];
    snprintf(data, sizeof data, "%s/cal.qtok", dir);
    snprintf(out, sizeof out, "%s/a.qept", dir);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", dir);
    snprintf(ep, sizeof ep, "ipc://%s/work", dir);
    snprintf(cmd, sizeof cmd, "%s sample --model %s --n 4 --len 32 --out %s 2>/dev/null", QUEPT_BIN, model,
             data);
    CHECK(system(cmd) == 0);
    char sep[1200];
    snprintf(sep, sizeof sep, "ipc://%s/status", dir);
    char *cargv[] = {QUEPT_BIN,      "coordinator", "--model", model, "--data",        data, "--out",    out,
                     "--checkpoint", ckpt,          "--bind",  ep,    "--status-bind", sep,  "--epochs", "1",
                     "--heartbeat",  "0.2",         "--quiet", NULL};
    pid_t cp = spawn(cargv);
    CHECK(cp > 0);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    CHECK(zmq_connect(s, ep) == 0);
    Rng rng;
    rng_seed(&rng, 99);
    /* random frames, a valid-looking header with bad fields, results nobody asked for */
    for (int i = 0; i < 200; i++) {
        uint8_t junk[64];
        int n = 1 + rng_int(&rng, 64), parts = 1 + rng_int(&rng, 7);
        for (int p = 0; p < parts; p++) {
            for (int k = 0; k < n; k++) junk[k] = (uint8_t)rng_int(&rng, 256);
            zmq_send(s, junk, (size_t)n, p + 1 < parts ? ZMQ_SNDMORE : 0);
        }
    }
    uint8_t h[512];
    size_t hl = header_with(h, sizeof h, "result", PROTO_VERSION, "block", 3);
    zmq_send(s, h, hl, 0);
    float buf[64] = {0};
    Msg r;
    sample_msg(&r, MSG_RESULT, buf, 64);
    QErr err;
    wire_send(s, NULL, 0, &r, 0, &err); /* from an unregistered peer */
    Msg reg;
    msg_init(&reg, MSG_REGISTER);
    snprintf(reg.name, sizeof reg.name, "liar");
    reg.threads = 1;
    wire_send(s, NULL, 0, &reg, 0, &err);
    sample_msg(&r, MSG_RESULT, buf, 64);
    wire_send(s, NULL, 0, &r, 0, &err); /* registered, but no assignment: stale */
    zmq_close(s);                       /* the liar goes silent: declared dead after 3 heartbeats */
    zmq_ctx_term(ctx);
    char *wargv[] = {QUEPT_BIN, "worker",     "--connect", ep,        "--heartbeat",
                     "0.2",     "--max-lost", "20",        "--quiet", NULL};
    pid_t wp = spawn(wargv);
    int wrc = wait_exit(wp, 120), crc = wait_exit(cp, 30);
    CHECK_MSG(crc == 0, "coordinator exit %d after garbage", crc);
    CHECK_MSG(wrc == 0, "worker exit %d", wrc);
    CHECK(access(out, R_OK) == 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    test_roundtrip();
    test_malformed();
    test_params_codes();
    test_sanitized_text();
    test_mutations();
    test_fuzz_corpus();
    test_live_garbage();
    if (check_failures)
        fprintf(stderr, "%d check(s) failed\n", check_failures);
    else
        printf("all proto checks passed\n");
    return check_failures ? 1 : 0;
}
