/* transport.h — protocol messages over ZeroMQ sockets, socket limits, and
 * CURVE keys.
 *
 * The coordinator binds a ROUTER, each worker connects a DEALER; on the
 * ROUTER side every message is preceded by the peer's routing id. Every
 * socket gets ZMQ_MAXMSGSIZE (a peer sending a larger frame is dropped by
 * libzmq) and a bounded linger, so a dead peer never blocks shutdown.
 *
 * CURVE (optional): `quept keygen DIR` writes DIR/server.key and
 * DIR/client.key (line 1 the public key, line 2 the secret key, Z85),
 * DIR/server.pub (the server's public key alone, for workers) and
 * DIR/authorized (the public keys of the workers allowed in, one per line).
 * The coordinator's ZAP handler (zap_handle, polled in its loop) admits a
 * worker only if its public key is listed. */
#ifndef QUEPT_PROTO_TRANSPORT_H
#define QUEPT_PROTO_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

#define WIRE_MAX_ID 256

/* Limits and linger on a new socket (max_msg: ZMQ_MAXMSGSIZE in bytes); a
 * connection that has not finished its handshake within WIRE_HANDSHAKE_MS
 * is closed (idle connections cannot pile up and use the descriptors). */
#define WIRE_HANDSHAKE_MS 5000
int wire_socket_limits(void *sock, int64_t max_msg, QErr *err);

/* 1 when endpoint ep can be reached from this machine only: ipc://,
 * inproc://, or tcp:// on 127.0.0.0/8, localhost or [::1]. */
int wire_endpoint_is_local(const char *ep);

/* Sends m (to routing id `id` on a ROUTER; id NULL on a DEALER). */
int wire_send(void *sock, const uint8_t *id, size_t id_len, const Msg *m, int compress, QErr *err);
/* Sends already encoded frames (takes ownership of every buffer). */
int wire_send_frames(void *sock, const uint8_t *id, size_t id_len, MsgFrames *f, QErr *err);

/* Receives one message (non-blocking when dontwait). Returns 0 with m
 * filled, 1 when nothing was waiting (dontwait), -1 when the message was
 * malformed (it is consumed; err says why and *id holds its sender when
 * with_id), -2 on a socket error. */
int wire_recv(void *sock, int with_id, uint8_t *id, size_t *id_len, Msg *m, int dontwait, QErr *err);

/* Receives raw frames (for relaying): up to max frames, the rest dropped
 * and reported as an error. Returns as wire_recv. */
int wire_recv_frames(void *sock, MsgFrames *f, int dontwait, QErr *err);

/* ---- CURVE ---- */

typedef struct {
    char pub[41], sec[41]; /* Z85, NUL-terminated */
} CurveKeyPair;

typedef struct {
    int n;
    char (*keys)[41];
} CurveAuthorized;

int curve_keygen_dir(const char *dir, QErr *err);
int curve_read_pair(const char *path, CurveKeyPair *kp, QErr *err);
/* One public key (first line of the file). */
int curve_read_public(const char *path, char pub[41], QErr *err);
int curve_read_authorized(const char *path, CurveAuthorized *a, QErr *err);
void curve_authorized_free(CurveAuthorized *a);
/* Coordinator side: the server key on the ROUTER (before bind). */
int curve_setup_server(void *sock, const CurveKeyPair *server, QErr *err);
/* Worker side: the server's public key and our pair (before connect). */
int curve_setup_client(void *sock, const char *server_pub, const CurveKeyPair *client, QErr *err);

/* Binds the ZAP handler socket (inproc://zeromq.zap.01) in ctx. */
void *zap_open(void *ctx, QErr *err);
/* Answers one waiting ZAP request: 200 for a CURVE client key in a, 400
 * otherwise. Returns 1 if a worker was refused (for logging), 0 if
 * admitted, -1 on a malformed request (answered 500). */
int zap_handle(void *zap, const CurveAuthorized *a);

#endif
