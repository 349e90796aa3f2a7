/* transport.c — messages over ZeroMQ, socket limits, CURVE keys and ZAP. */
#include "transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "base/mapfile.h"

int wire_socket_limits(void *sock, int64_t max_msg, QErr *err) {
    int linger = 1000; /* ms: a final shutdown message gets out, a dead peer cannot hold us */
    int hwm = 1000;
    int sndtimeo = 2000; /* ms: a send to a peer that is gone or stuck fails instead of blocking the loop */
    int type = 0;
    size_t tl = sizeof type;
    zmq_getsockopt(sock, ZMQ_TYPE, &type, &tl);
    /* a DEALER queues only on a finished handshake: with no coordinator (or a
     * CURVE refusal) a send fails at once rather than piling up */
    int immediate = type == ZMQ_DEALER;
    int handshake = WIRE_HANDSHAKE_MS;
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg) != 0 ||
        zmq_setsockopt(sock, ZMQ_HANDSHAKE_IVL, &handshake, sizeof handshake) != 0 ||
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(sock, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo) != 0 ||
        zmq_setsockopt(sock, ZMQ_IMMEDIATE, &immediate, sizeof immediate) != 0 ||
        zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0)
        return qerr_set(err, "socket options: %s", zmq_strerror(errno));
    return 0;
}

int wire_endpoint_is_local(const char *ep) {
    if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9)) return 1;
    if (strncmp(ep, "tcp://", 6) != 0) return 0;
    const char *h = ep + 6;
    if (!strncmp(h, "127.", 4) || !strncmp(h, "localhost:", 10) || !strncmp(h, "[::1]:", 6)) return 1;
    return 0;
}

static void free_frame(void *data, void *hint) {
    (void)hint;
    free(data);
}

int wire_send_frames(void *sock, const uint8_t *id, size_t id_len, MsgFrames *f, QErr *err) {
    int rc = 0;
    if (id && zmq_send(sock, id, id_len, ZMQ_SNDMORE) < 0)
        rc = qerr_set(err, "send: %s", zmq_strerror(errno));
    for (int i = 0; i < f->n && rc == 0; i++) {
        zmq_msg_t zm;
        /* zero copy: the frame's buffer passes to libzmq, freed once sent */
        if (zmq_msg_init_data(&zm, f->data[i], f->len[i], free_frame, NULL) != 0) {
            rc = qerr_set(err, "send: %s", zmq_strerror(errno));
            break;
        }
        f->data[i] = NULL;
        if (zmq_msg_send(&zm, sock, i + 1 < f->n ? ZMQ_SNDMORE : 0) < 0) {
            rc = qerr_set(err, "send: %s", zmq_strerror(errno));
            zmq_msg_close(&zm);
        }
    }
    msg_frames_free(f);
    return rc;
}

int wire_send(void *sock, const uint8_t *id, size_t id_len, const Msg *m, int compress, QErr *err) {
    MsgFrames f;
    if (msg_encode(m, compress, &f, err) != 0) return -1;
    return wire_send_frames(sock, id, id_len, &f, err);
}

/* Reads every part of one multipart message into zmq messages (at most
 * max kept, the rest read and dropped). */
static int recv_parts(void *sock, zmq_msg_t *parts, int max, int *n, int *dropped, int dontwait, QErr *err) {
    *n = 0;
    *dropped = 0;
    int more = 1, first = 1;
    while (more) {
        zmq_msg_t tmp, *dst = *n < max ? &parts[*n] : &tmp;
        zmq_msg_init(dst);
        if (zmq_msg_recv(dst, sock, first && dontwait ? ZMQ_DONTWAIT : 0) < 0) {
            int e = errno;
            zmq_msg_close(dst);
            for (int i = 0; i < *n; i++) zmq_msg_close(&parts[i]);
            *n = 0;
            if (first && e == EAGAIN) return 1;
            return e == EINTR ? (qerr_set(err, "interrupted"), -2)
                              : (qerr_set(err, "recv: %s", zmq_strerror(e)), -2);
        }
        first = 0;
        more = zmq_msg_more(dst);
        if (dst == &tmp) {
            zmq_msg_close(&tmp);
            (*dropped)++;
        } else {
            (*n)++;
        }
    }
    return 0;
}

int wire_recv(void *sock, int with_id, uint8_t *id, size_t *id_len, Msg *m, int dontwait, QErr *err) {
    enum { MAXP = 2 + PROTO_MAX_TENSORS };
    zmq_msg_t parts[MAXP];
    int n, dropped;
    int rc = recv_parts(sock, parts, MAXP, &n, &dropped, dontwait, err);
    if (rc != 0) return rc;
    int first = 0;
    if (with_id) {
        size_t l = zmq_msg_size(&parts[0]);
        if (l > WIRE_MAX_ID) l = WIRE_MAX_ID;
        memcpy(id, zmq_msg_data(&parts[0]), l);
        *id_len = l;
        first = 1;
    }
    if (dropped) {
        rc = qerr_set(err, "message of more than %d frames", MAXP - first);
    } else if (n - first < 1) {
        rc = qerr_set(err, "message without a header frame");
    } else {
        const uint8_t *fr[MAXP];
        size_t len[MAXP];
        for (int i = first; i < n; i++) {
            fr[i - first] = zmq_msg_data(&parts[i]);
            len[i - first] = zmq_msg_size(&parts[i]);
        }
        rc = msg_decode(fr, len, n - first, m, err);
    }
    for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
    return rc == 0 ? 0 : -1;
}

int wire_recv_frames(void *sock, MsgFrames *f, int dontwait, QErr *err) {
    enum { MAXP = 1 + PROTO_MAX_TENSORS };
    zmq_msg_t parts[MAXP];
    int n, dropped;
    memset(f, 0, sizeof *f);
    int rc = recv_parts(sock, parts, MAXP, &n, &dropped, dontwait, err);
    if (rc != 0) return rc;
    for (int i = 0; i < n && rc == 0; i++) {
        size_t l = zmq_msg_size(&parts[i]);
        f->data[i] = malloc(l ? l : 1);
        if (!f->data[i]) {
            rc = qerr_set(err, "out of memory");
            break;
        }
        if (l) memcpy(f->data[i], zmq_msg_data(&parts[i]), l);
        f->len[i] = l;
        f->n = i + 1;
    }
    for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
    if (rc == 0 && dropped) rc = qerr_set(err, "message of more than %d frames", MAXP);
    if (rc != 0) {
        msg_frames_free(f);
        return -1;
    }
    return 0;
}

/* ---- CURVE keys ---- */

static int write_pair(const char *path, const char *pub, const char *sec, QErr *err) {
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%s\n%s\n", pub, sec);
    AtomicFile *af = atomic_open(path, err);
    if (!af) return -1;
    if (atomic_write(af, buf, (size_t)n, err) != 0) {
        atomic_abort(af);
        return -1;
    }
    if (atomic_commit(af, err) != 0) return -1;
    if (chmod(path, 0600) != 0) return qerr_set(err, "%s: chmod: %s", path, strerror(errno));
    return 0;
}

int curve_keygen_dir(const char *dir, QErr *err) {
    if (!zmq_has("curve")) return qerr_set(err, "this libzmq was built without CURVE support");
    if (dir_make_all(dir, err) != 0) return -1;
    char spub[41], ssec[41], cpub[41], csec[41], path[4096];
    if (zmq_curve_keypair(spub, ssec) != 0 || zmq_curve_keypair(cpub, csec) != 0)
        return qerr_set(err, "zmq_curve_keypair: %s", zmq_strerror(errno));
    snprintf(path, sizeof path, "%s/server.key", dir);
    if (write_pair(path, spub, ssec, err) != 0) return -1;
    snprintf(path, sizeof path, "%s/client.key", dir);
    if (write_pair(path, cpub, csec, err) != 0) return -1;
    char line[64];
    snprintf(path, sizeof path, "%s/server.pub", dir);
    int np = snprintf(line, sizeof line, "%s\n", spub);
    if (file_write_all(path, line, (size_t)np, err) != 0) return -1;
    snprintf(path, sizeof path, "%s/authorized", dir);
    int n = snprintf(line, sizeof line, "%s\n", cpub);
    return file_write_all(path, line, (size_t)n, err);
}

/* Z85 keys are 40 printable characters. */
static int valid_z85_key(const char *s) {
    if (strlen(s) != 40) return 0;
    uint8_t bin[32];
    return zmq_z85_decode(bin, s) != NULL;
}

int curve_read_pair(const char *path, CurveKeyPair *kp, QErr *err) {
    char *txt;
    size_t len;
    if (file_read_all(path, &txt, &len, err) != 0) return -1;
    memset(kp, 0, sizeof *kp);
    int ok =
        sscanf(txt, "%40s %40s", kp->pub, kp->sec) == 2 && valid_z85_key(kp->pub) && valid_z85_key(kp->sec);
    free(txt);
    if (!ok)
        return qerr_set(err,
                        "%s: expected two lines, the public and the secret key (40 Z85 characters each; "
                        "quept keygen writes them)",
                        path);
    return 0;
}

int curve_read_public(const char *path, char pub[41], QErr *err) {
    char *txt;
    size_t len;
    if (file_read_all(path, &txt, &len, err) != 0) return -1;
    memset(pub, 0, 41);
    int ok = sscanf(txt, "%40s", pub) == 1 && valid_z85_key(pub);
    free(txt);
    if (!ok)
        return qerr_set(err, "%s: expected a public key (40 Z85 characters; quept keygen writes it)", path);
    return 0;
}

int curve_read_authorized(const char *path, CurveAuthorized *a, QErr *err) {
    char *txt;
    size_t len;
    memset(a, 0, sizeof *a);
    if (file_read_all(path, &txt, &len, err) != 0) return -1;
    int cap = 0, rc = 0, line = 0;
    for (char *save = NULL, *tok = strtok_r(txt, "\n", &save); tok && rc == 0;
         tok = strtok_r(NULL, "\n", &save)) {
        line++;
        while (*tok == ' ' || *tok == '\t' || *tok == '\r') tok++;
        size_t l = strlen(tok);
        while (l && (tok[l - 1] == ' ' || tok[l - 1] == '\r' || tok[l - 1] == '\t')) tok[--l] = 0;
        if (l == 0 || tok[0] == '#') continue;
        if (!valid_z85_key(tok)) {
            rc = qerr_set(err, "%s line %d: not a 40-character Z85 public key", path, line);
            break;
        }
        if (a->n == cap) {
            cap = cap ? cap * 2 : 8;
            void *nk = realloc(a->keys, sizeof *a->keys * (size_t)cap);
            if (!nk) {
                rc = qerr_set(err, "out of memory");
                break;
            }
            a->keys = nk;
        }
        memcpy(a->keys[a->n++], tok, 41);
    }
    free(txt);
    if (rc == 0 && a->n == 0) rc = qerr_set(err, "%s: no authorised worker keys", path);
    if (rc != 0) curve_authorized_free(a);
    return rc;
}

void curve_authorized_free(CurveAuthorized *a) {
    free(a->keys);
    memset(a, 0, sizeof *a);
}

int curve_setup_server(void *sock, const CurveKeyPair *server, QErr *err) {
    int one = 1;
    const char *domain = "quept";
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, server->sec, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0)
        return qerr_set(err, "CURVE server setup: %s", zmq_strerror(errno));
    return 0;
}

int curve_setup_client(void *sock, const char *server_pub, const CurveKeyPair *client, QErr *err) {
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pub, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, client->pub, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, client->sec, 40) != 0)
        return qerr_set(err, "CURVE client setup: %s", zmq_strerror(errno));
    return 0;
}

void *zap_open(void *ctx, QErr *err) {
    void *s = zmq_socket(ctx, ZMQ_REP);
    if (!s || zmq_bind(s, "inproc://zeromq.zap.01") != 0) {
        qerr_set(err, "ZAP handler: %s", zmq_strerror(errno));
        if (s) zmq_close(s);
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    return s;
}

int zap_handle(void *zap, const CurveAuthorized *a) {
    /* request: version, request id, domain, address, routing id, mechanism, credentials... */
    enum { MAXP = 8 };
    zmq_msg_t parts[MAXP];
    int n, dropped;
    QErr err;
    if (recv_parts(zap, parts, MAXP, &n, &dropped, 1, &err) != 0) return -1;
    const char *status = "500", *text = "malformed ZAP request";
    int verdict = -1;
    if (!dropped && n >= 7 && zmq_msg_size(&parts[0]) == 3 &&
        memcmp(zmq_msg_data(&parts[0]), "1.0", 3) == 0) {
        int curve = zmq_msg_size(&parts[5]) == 5 && memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) == 0;
        status = "400", text = "unauthorised key", verdict = 1;
        if (curve && zmq_msg_size(&parts[6]) == 32) {
            char z85[41];
            zmq_z85_encode(z85, zmq_msg_data(&parts[6]), 32);
            for (int i = 0; i < a->n; i++)
                if (memcmp(a->keys[i], z85, 40) == 0) status = "200", text = "OK", verdict = 0;
        }
    }
    /* reply: version, request id, status code, status text, user id, metadata */
    zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(zap, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), ZMQ_SNDMORE);
    else
        zmq_send(zap, "", 0, ZMQ_SNDMORE);
    zmq_send(zap, status, 3, ZMQ_SNDMORE);
    zmq_send(zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(zap, "", 0, ZMQ_SNDMORE);
    zmq_send(zap, "", 0, 0);
    for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
    return verdict;
}
