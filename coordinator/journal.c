/* journal.c — the checkpoint directory of a distributed calibration. */
#include "journal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifact/elastic.h"
#include "base/bytebuf.h"
#include "base/log.h"
#include "base/mapfile.h"
#include "base/sha256.h"
#include "engine/recon_stats_codec.h"
#include "quant/qconfig_table.h"

#define JOURNAL_VERSION 1

void journal_path(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

int journal_plan_shards(JobSpec *spec, int n_shards, QErr *err) {
    int L = spec->n_layers;
    if (n_shards < 1 || n_shards > L || n_shards > JOURNAL_MAX_SHARDS)
        return qerr_set(err, "--shards %d: need 1 to %d shards for %d blocks", n_shards,
                        L < JOURNAL_MAX_SHARDS ? L : JOURNAL_MAX_SHARDS, L);
    spec->n_shards = n_shards;
    for (int k = 0; k < n_shards; k++) {
        spec->shard_begin[k] = (int)((long)k * L / n_shards);
        spec->shard_end[k] = (int)((long)(k + 1) * L / n_shards);
    }
    return 0;
}

static void pack_spec(msgpack_packer *pk, const JobSpec *s) {
    msgpack_pack_map(pk, 10);
    mp_pack_str(pk, "format");
    mp_pack_str(pk, "quept-checkpoint");
    mp_pack_kv_int(pk, "version", JOURNAL_VERSION);
    mp_pack_str(pk, "model_sha256");
    mp_pack_str(pk, s->model_sha256);
    mp_pack_str(pk, "data_sha256");
    mp_pack_str(pk, s->data_sha256);
    mp_pack_kv_int(pk, "n_layers", s->n_layers);
    mp_pack_kv_int(pk, "dim", s->dim);
    mp_pack_kv_int(pk, "n_seq", s->n_seq);
    mp_pack_kv_int(pk, "T", s->T);
    mp_pack_str(pk, "quant");
    qconfig_pack(pk, &s->qc);
    mp_pack_str(pk, "shards");
    msgpack_pack_array(pk, (size_t)s->n_shards);
    for (int k = 0; k < s->n_shards; k++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_int64(pk, s->shard_begin[k]);
        msgpack_pack_int64(pk, s->shard_end[k]);
    }
}

/* The job's fingerprint: SHA-256 of its packed spec. */
static void spec_fingerprint(const JobSpec *s, char hex[65]) {
    ByteBuf b = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, bytebuf_msgpack_write);
    pack_spec(&pk, s);
    Sha256 h;
    uint8_t d[32];
    sha256_init(&h);
    sha256_update(&h, b.data, b.len);
    sha256_final(&h, d);
    sha256_hex(d, hex);
    bytebuf_free(&b);
}

int journal_lock(const char *dir, int *fd, QErr *err) {
    *fd = -1;
    if (dir_make_all(dir, err) != 0) return -1;
    char path[4096];
    journal_path(path, sizeof path, dir, "lock");
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) return qerr_setc(err, QERR_IO, "%s: %s", path, strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char buf[32] = "";
        ssize_t n = pread(f, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        close(f);
        if (e == EWOULDBLOCK)
            return qerr_set(err,
                            "checkpoint %s is in use by another coordinator (pid %d): wait for it to end, "
                            "stop it, or use another --checkpoint",
                            dir, atoi(buf));
        return qerr_setc(err, QERR_IO, "%s: flock: %s", path, strerror(e));
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(f, 0) != 0 || pwrite(f, pid, (size_t)n, 0) != n) {
        int e = errno;
        close(f);
        return qerr_setc(err, QERR_IO, "%s: %s", path, strerror(e));
    }
    *fd = f;
    return 0;
}

void journal_unlock(int fd) {
    if (fd >= 0) close(fd);
}

/* Names the first field where the stored job differs from ours. */
static int compare_maps(const msgpack_object *old, const msgpack_object *new_, const char *prefix,
                        const char *dir, QErr *err) {
    for (uint32_t i = 0; i < new_->via.map.size; i++) {
        const msgpack_object_kv *kv = &new_->via.map.ptr[i];
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
        if (strcmp(key, "shards") == 0) continue; /* compared by the caller */
        const msgpack_object *o = mp_map_get(old, key);
        if (o && msgpack_object_equal(*o, kv->val)) continue;
        char a[256] = "(absent)", b[256];
        if (o) msgpack_object_print_buffer(a, sizeof a, *o);
        msgpack_object_print_buffer(b, sizeof b, kv->val);
        if (o && o->type == MSGPACK_OBJECT_MAP && kv->val.type == MSGPACK_OBJECT_MAP) {
            char p2[96];
            snprintf(p2, sizeof p2, "%s%s.", prefix, key);
            return compare_maps(o, &kv->val, p2, dir, err);
        }
        return qerr_set(err,
                        "checkpoint %s belongs to another job: %s%s is %s there, %s here "
                        "(use a new --checkpoint directory, or the original settings to resume)",
                        dir, prefix, key, a, b);
    }
    /* and the other way: an optional key (teq, format, bf16_activations)
     * that only the stored job has */
    for (uint32_t i = 0; i < old->via.map.size; i++) {
        const msgpack_object_kv *kv = &old->via.map.ptr[i];
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
        if (mp_map_get(new_, key)) continue;
        char a[256];
        msgpack_object_print_buffer(a, sizeof a, kv->val);
        return qerr_set(err,
                        "checkpoint %s belongs to another job: %s%s is %s there, (absent) here "
                        "(use a new --checkpoint directory, or the original settings to resume)",
                        dir, prefix, key, a);
    }
    return 0;
}

int journal_open(const char *dir, JobSpec *spec, int adopt_shards, QErr *err) {
    if (dir_make_all(dir, err) != 0) return -1;
    char path[4096];
    journal_path(path, sizeof path, dir, "job.qckp");
    ArtWriter *w = art_writer_new(err);
    if (!w) return -1;
    if (access(path, F_OK) != 0) {
        pack_spec(art_writer_meta(w), spec);
        int rc = art_writer_write(w, path, err);
        art_writer_free(w);
        spec_fingerprint(spec, spec->fingerprint);
        return rc;
    }
    ArtReader *r;
    if (art_open(&r, path, err) != 0) {
        art_writer_free(w);
        return qerr_wrap(err, "checkpoint job file (delete the directory %s to start over)", dir);
    }
    /* ours packed the same way, read back through a buffer for comparison */
    pack_spec(art_writer_meta(w), spec);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.probe.%d", path, (int)getpid());
    int rc = art_writer_write(w, tmp, err);
    art_writer_free(w);
    ArtReader *r2 = NULL;
    if (rc == 0) rc = art_open(&r2, tmp, err);
    unlink(tmp);
    const msgpack_object *old = art_meta(r), *cur = r2 ? art_meta(r2) : NULL;
    char fmt[32];
    if (rc == 0 &&
        (mp_map_str(old, "format", fmt, sizeof fmt, err) != 0 || strcmp(fmt, "quept-checkpoint") != 0))
        rc = qerr_set(err, "%s: not a quept checkpoint", path);
    if (rc == 0) rc = compare_maps(old, cur, "", dir, err);
    if (rc == 0) {
        const msgpack_object *sh;
        rc = mp_map_array(old, "shards", &sh, err);
        JobSpec stored = *spec;
        stored.n_shards = rc == 0 ? (int)sh->via.array.size : 0;
        if (rc == 0 && (stored.n_shards < 1 || stored.n_shards > JOURNAL_MAX_SHARDS))
            rc = qerr_set(err, "%s: bad shard plan", path);
        for (int k = 0; rc == 0 && k < stored.n_shards; k++) {
            const msgpack_object *p = &sh->via.array.ptr[k];
            int64_t a, b;
            if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
                mp_obj_int(&p->via.array.ptr[0], "shard", &a, err) ||
                mp_obj_int(&p->via.array.ptr[1], "shard", &b, err) || a < 0 || b <= a || b > spec->n_layers)
                rc = qerr_set(err, "%s: bad shard %d", path, k);
            else
                stored.shard_begin[k] = (int)a, stored.shard_end[k] = (int)b;
        }
        if (rc == 0 && !adopt_shards) {
            int same = stored.n_shards == spec->n_shards;
            for (int k = 0; same && k < spec->n_shards; k++)
                same = stored.shard_begin[k] == spec->shard_begin[k] &&
                       stored.shard_end[k] == spec->shard_end[k];
            if (!same)
                rc = qerr_set(err,
                              "checkpoint %s was planned as %d shards, this run asks for %d "
                              "(drop --shards to resume with the checkpoint's plan)",
                              dir, stored.n_shards, spec->n_shards);
        }
        if (rc == 0) *spec = stored;
    }
    art_close(r);
    art_close(r2);
    if (rc == 0) spec_fingerprint(spec, spec->fingerprint);
    return rc;
}

/* ---- inputs ---- */

int journal_write_input(const char *dir, int shard, const float *x, const JobSpec *spec, QErr *err) {
    char name[64], path[4096];
    snprintf(name, sizeof name, "input-%d.qckp", shard);
    journal_path(path, sizeof path, dir, name);
    ArtWriter *w = art_writer_new(err);
    if (!w) return -1;
    msgpack_packer *pk = art_writer_meta(w);
    msgpack_pack_map(pk, 3);
    mp_pack_kv_str(pk, "job", spec->fingerprint);
    mp_pack_kv_int(pk, "shard", shard);
    mp_pack_kv_int(pk, "block", spec->shard_begin[shard]);
    int64_t shape[3] = {spec->n_seq, spec->T, spec->dim};
    int rc = art_writer_add(w, "x", ART_F32, 3, shape, x, 0, err);
    if (rc == 0) rc = art_writer_write(w, path, err);
    art_writer_free(w);
    return rc;
}

static int drop_entry(const char *path, const char *what, QErr *err) {
    log_warn("journal: %s %s (%s): deleted, it will be recomputed", path, what, err->msg);
    unlink(path);
    return -1;
}

static int drop_corrupt(const char *path, QErr *err) { return drop_entry(path, "is corrupt", err); }

/* An entry that names another job (copied from another checkpoint, or
 * written by a coordinator of other settings) is never used. */
static int check_job(const msgpack_object *meta, const JobSpec *spec, QErr *err) {
    char job[80];
    if (mp_map_str(meta, "job", job, sizeof job, err) != 0)
        return qerr_set(err, "it carries no job fingerprint (written by another version or another job)");
    if (strcmp(job, spec->fingerprint) != 0)
        return qerr_set(err, "it belongs to another job (fingerprint %.12s..., this job %.12s...)", job,
                        spec->fingerprint);
    return 0;
}

int journal_open_input(const char *dir, int shard, const JobSpec *spec, ArtReader **r, const float **x,
                       QErr *err) {
    char name[64], path[4096];
    snprintf(name, sizeof name, "input-%d.qckp", shard);
    journal_path(path, sizeof path, dir, name);
    *r = NULL;
    if (access(path, F_OK) != 0) return 1;
    if (art_open(r, path, err) != 0) return drop_corrupt(path, err);
    if (check_job(art_meta(*r), spec, err) != 0) {
        art_close(*r);
        *r = NULL;
        return drop_entry(path, "is not this job's", err);
    }
    int i = art_find(*r, "x");
    const ArtTensorInfo *ti = art_tensor_info(*r, i);
    int ok = ti && ti->dtype == ART_F32 && ti->ndim == 3 && ti->shape[0] == spec->n_seq &&
             ti->shape[1] == spec->T && ti->shape[2] == spec->dim;
    if (!ok) qerr_set(err, "tensor x missing or of the wrong shape");
    if (ok && !(*x = art_view(*r, i, err))) ok = 0;
    if (!ok) {
        art_close(*r);
        *r = NULL;
        return drop_corrupt(path, err);
    }
    return 0;
}

/* ---- blocks ---- */

int journal_write_block(const char *dir, const JobSpec *spec, int block, const QBlockParams *p,
                        const ReconStats *st, QErr *err) {
    int n_bits = spec->qc.n_bits;
    char name[64], path[4096];
    snprintf(name, sizeof name, "block-%d.qckp", block);
    journal_path(path, sizeof path, dir, name);
    ArtWriter *w = art_writer_new(err);
    if (!w) return -1;
    msgpack_packer *pk = art_writer_meta(w);
    msgpack_pack_map(pk, 2 + RECON_STATS_ENTRIES);
    mp_pack_kv_str(pk, "job", spec->fingerprint);
    mp_pack_kv_int(pk, "block", block);
    recon_stats_pack(pk, st, n_bits);
    int64_t nl = (int64_t)p->n_lwc, na = (int64_t)p->n_adapter, nt = (int64_t)p->n_teq;
    int rc = art_writer_add(w, "lwc", ART_F32, 1, &nl, p->lwc, 0, err);
    if (rc == 0) rc = art_writer_add(w, "adapter", ART_F32, 1, &na, p->adapter, 0, err);
    if (rc == 0 && nt) rc = art_writer_add(w, "teq", ART_F32, 1, &nt, p->teq, 0, err);
    int64_t nc = (int64_t)p->n_flat_codes, ng = (int64_t)p->n_flat_grid;
    if (rc == 0 && nc) rc = art_writer_add(w, "rq_codes", ART_U8, 1, &nc, p->flat_codes, 1, err);
    if (rc == 0 && nc) rc = art_writer_add(w, "rq_grid", ART_F32, 1, &ng, p->flat_grid, 0, err);
    if (rc == 0) rc = art_writer_write(w, path, err);
    art_writer_free(w);
    return rc;
}

static int read_tensor(ArtReader *r, const char *name, ArtDtype dtype, void **out, size_t *n, QErr *err) {
    int i = art_find(r, name);
    const ArtTensorInfo *ti = art_tensor_info(r, i);
    if (!ti || ti->dtype != dtype || ti->ndim != 1)
        return qerr_set(err, "tensor %s missing or not %s[n]", name, dtype == ART_U8 ? "u8" : "f32");
    *n = (size_t)ti->numel;
    *out = malloc(ti->raw_bytes ? ti->raw_bytes : 1);
    if (!*out) return qerr_set(err, "out of memory");
    if (art_read(r, i, *out, ti->raw_bytes, err) != 0) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

static int read_f32_tensor(ArtReader *r, const char *name, float **out, size_t *n, QErr *err) {
    return read_tensor(r, name, ART_F32, (void **)out, n, err);
}

int journal_read_block(const char *dir, int block, const JobSpec *spec, QBlockParams *p, ReconStats *st,
                       QErr *err) {
    char name[64], path[4096];
    snprintf(name, sizeof name, "block-%d.qckp", block);
    journal_path(path, sizeof path, dir, name);
    memset(p, 0, sizeof *p);
    if (access(path, F_OK) != 0) return 1;
    ArtReader *r;
    if (art_open(&r, path, err) != 0) return drop_corrupt(path, err);
    const msgpack_object *m = art_meta(r);
    int n = spec->qc.n_bits, rc = 0;
    int64_t b;
    memset(st, 0, sizeof *st);
    if (check_job(m, spec, err) != 0) {
        art_close(r);
        return drop_entry(path, "is not this job's", err);
    }
    if (rc == 0 && (mp_map_int(m, "block", &b, err) != 0 || b != block))
        rc = b != block ? qerr_set(err, "holds block %lld", (long long)b) : -1;
    if (rc == 0) rc = recon_stats_parse(m, st, n, err);
    if (rc == 0) rc = read_f32_tensor(r, "lwc", &p->lwc, &p->n_lwc, err);
    if (rc == 0) rc = read_f32_tensor(r, "adapter", &p->adapter, &p->n_adapter, err);
    if (rc == 0 && art_find(r, "teq") >= 0) rc = read_f32_tensor(r, "teq", &p->teq, &p->n_teq, err);
    if (rc == 0 && art_find(r, "rq_codes") >= 0) {
        rc = read_tensor(r, "rq_codes", ART_U8, (void **)&p->flat_codes, &p->n_flat_codes, err);
        if (rc == 0) rc = read_f32_tensor(r, "rq_grid", &p->flat_grid, &p->n_flat_grid, err);
    }
    art_close(r);
    if (rc != 0) {
        qblock_params_free(p);
        return drop_corrupt(path, err);
    }
    return 0;
}

/* ---- completion ---- */

/* A small JSON file of the checkpoint, written atomically; cJSON escapes
 * whatever a path or host name holds. */
static int write_json(const char *dir, const char *name, cJSON *obj, QErr *err) {
    char path[4096];
    journal_path(path, sizeof path, dir, name);
    char *txt = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!txt) return qerr_set(err, "%s: out of memory", name);
    int rc = file_write_all(path, txt, strlen(txt), err);
    free(txt);
    return rc;
}

int journal_record_coordinator(const char *dir, const char *host, const char *status_ep, const char *work_ep,
                               QErr *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddStringToObject(o, "host", host);
    cJSON_AddStringToObject(o, "status", status_ep);
    cJSON_AddStringToObject(o, "work", work_ep);
    return write_json(dir, "coordinator.json", o, err);
}

int journal_mark_done(const char *dir, const char *artifact, const char *sha256, QErr *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "artifact", artifact);
    cJSON_AddStringToObject(o, "sha256", sha256);
    return write_json(dir, "done.json", o, err);
}

/* A small JSON file of the checkpoint, parsed; NULL when absent or unreadable. */
static cJSON *read_json(const char *dir, const char *name) {
    char path[4096], *txt;
    size_t len;
    QErr err;
    journal_path(path, sizeof path, dir, name);
    if (access(path, F_OK) != 0 || file_read_all(path, &txt, &len, &err) != 0) return NULL;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    return j;
}

int journal_coordinator_endpoint(const char *dir, char *ep, size_t n) {
    cJSON *j = read_json(dir, "coordinator.json");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
    int ok = cJSON_IsString(st) && strlen(st->valuestring) < n;
    if (ok) snprintf(ep, n, "%s", st->valuestring);
    cJSON_Delete(j);
    return ok;
}

int journal_is_done(const char *dir, char *artifact, size_t n, char sha256[65]) {
    cJSON *j = read_json(dir, "done.json");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "artifact");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "sha256");
    int ok = cJSON_IsString(a) && strlen(a->valuestring) < n;
    if (ok) snprintf(artifact, n, "%s", a->valuestring);
    if (sha256)
        snprintf(sha256, 65, "%s", cJSON_IsString(h) && strlen(h->valuestring) == 64 ? h->valuestring : "");
    cJSON_Delete(j);
    return ok;
}

void journal_clear_done(const char *dir) {
    char path[4096];
    journal_path(path, sizeof path, dir, "done.json");
    unlink(path);
}

void journal_cleanup(const char *dir) {
    /* what a finished job no longer needs: inputs and block entries (the
     * artifact holds them); job.qckp and done.json stay */
    char name[64], path[4096];
    for (int k = 0; k < JOURNAL_MAX_SHARDS; k++) {
        snprintf(name, sizeof name, "input-%d.qckp", k);
        journal_path(path, sizeof path, dir, name);
        unlink(path);
    }
    for (int j = 0;; j++) {
        snprintf(name, sizeof name, "block-%d.qckp", j);
        journal_path(path, sizeof path, dir, name);
        if (unlink(path) != 0 && j > 0) {
            /* stop at the first gap past the last block */
            snprintf(name, sizeof name, "block-%d.qckp", j + 1);
            journal_path(path, sizeof path, dir, name);
            if (access(path, F_OK) != 0) break;
        }
    }
}
