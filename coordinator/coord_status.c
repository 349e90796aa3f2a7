/* coord_status.c — the status report (JSON) the coordinator serves, and the
 * same report read from a journal when no coordinator runs. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/numeric.h"
#include "coord_internal.h"

static const char *const STATE_NAMES[] = {"starting", "running", "merging", "done", "failed"};
static const char *const GROUP_NAMES[QN_GROUPS] = {"7-8", "5-6", "3-4", "2"};

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

char *coord_status_json(const Coord *c) {
    double now = now_seconds();
    const JobSpec *s = &c->spec;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "state", STATE_NAMES[c->state]);
    cJSON_AddBoolToObject(root, "coordinator_running", 1);
    cJSON_AddNumberToObject(root, "pid", (double)getpid());
    cJSON_AddStringToObject(root, "checkpoint", c->o->ckpt_dir);
    cJSON_AddStringToObject(root, "artifact", c->o->out_path);
    cJSON_AddNumberToObject(root, "elapsed_s", now - c->t_start);
    if (c->fail_msg[0]) cJSON_AddStringToObject(root, "error", c->fail_msg);
    int done = 0;
    double frac = 0, tps = 0;
    for (int j = 0; j < s->n_layers; j++) {
        const BlockRec *b = &c->blocks[j];
        if (b->done)
            done++;
        else if (b->epochs > 0)
            frac += (double)b->epoch / b->epochs;
    }
    for (int k = 0; k < s->n_shards; k++)
        if (c->shards[k].worker >= 0) {
            int j = c->shards[k].next;
            if (j < c->shards[k].end && c->blocks[j].epochs > 0) tps += c->blocks[j].tokens_per_s;
        }
    cJSON_AddNumberToObject(root, "blocks_total", s->n_layers);
    cJSON_AddNumberToObject(root, "blocks_done", done);
    cJSON_AddNumberToObject(root, "tokens_per_s", tps);
    /* ETA: the work left at the pace of this run so far (blocks journaled by
     * this run plus the epochs of blocks in training, per second) */
    double progressed = (done - c->blocks_done_at_start) + frac, left = s->n_layers - done - frac;
    double elapsed = now - c->t_start;
    if (progressed > 0.05 && left >= 0)
        cJSON_AddNumberToObject(root, "eta_s", elapsed * left / progressed);
    else
        cJSON_AddNullToObject(root, "eta_s");
    cJSON *shards = cJSON_AddArrayToObject(root, "shards");
    for (int k = 0; k < s->n_shards; k++) {
        const ShardRec *sh = &c->shards[k];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", k);
        cJSON_AddNumberToObject(o, "begin", sh->begin);
        cJSON_AddNumberToObject(o, "end", sh->end);
        cJSON_AddNumberToObject(o, "blocks_done", sh->next - sh->begin);
        cJSON_AddBoolToObject(o, "input_ready", sh->input_ready);
        cJSON_AddStringToObject(o, "worker", sh->worker >= 0 ? c->workers[sh->worker].name : "");
        cJSON_AddItemToArray(shards, o);
    }
    cJSON *blocks = cJSON_AddArrayToObject(root, "blocks");
    for (int j = 0; j < s->n_layers; j++) {
        const BlockRec *b = &c->blocks[j];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", j);
        cJSON_AddStringToObject(o, "state", b->done ? "journaled" : b->epochs > 0 ? "training" : "pending");
        cJSON_AddNumberToObject(o, "epoch", b->done ? (b->epochs ? b->epochs : s->qc.epochs) : b->epoch);
        cJSON_AddNumberToObject(o, "epochs", b->epochs > 0 ? b->epochs : s->qc.epochs);
        if (!b->done && b->epochs > 0) {
            cJSON *gl = cJSON_AddObjectToObject(o, "group_loss");
            for (int g = 0; g < QN_GROUPS; g++)
                if (isfinite(b->group_loss[g]))
                    cJSON_AddItemToObject(gl, GROUP_NAMES[g], num_or_null(b->group_loss[g]));
            cJSON_AddNumberToObject(o, "tokens_per_s", b->tokens_per_s);
        }
        if (b->done) {
            cJSON_AddNumberToObject(o, "seconds", b->seconds);
            cJSON *lf = cJSON_AddObjectToObject(o, "loss_final");
            for (int bi = 0; bi < s->qc.n_bits; bi++) {
                char k[8];
                snprintf(k, sizeof k, "%d", s->qc.bits[bi]);
                cJSON_AddItemToObject(lf, k, num_or_null(b->loss_final[bi]));
            }
        }
        cJSON_AddItemToArray(blocks, o);
    }
    cJSON *workers = cJSON_AddArrayToObject(root, "workers");
    for (int i = 0; i < COORD_MAX_WORKERS; i++) {
        const WorkerRec *w = &c->workers[i];
        if (!w->used) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", w->name);
        cJSON_AddNumberToObject(o, "threads", w->threads);
        cJSON_AddNumberToObject(o, "shard", w->shard);
        cJSON_AddNumberToObject(o, "last_heartbeat_s", now - w->last_seen);
        cJSON_AddBoolToObject(o, "alive", now - w->last_seen <= c->o->liveness * c->o->heartbeat_s);
        cJSON_AddItemToArray(workers, o);
    }
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

char *journal_status_json(const char *dir, QErr *err) {
    char path[4096];
    journal_path(path, sizeof path, dir, "job.qckp");
    ArtReader *r;
    if (art_open(&r, path, err) != 0) return qerr_wrap(err, "no readable checkpoint in %s", dir), NULL;
    const msgpack_object *m = art_meta(r);
    int64_t L = 0;
    const msgpack_object *sh = NULL, *q = NULL;
    if (mp_map_int(m, "n_layers", &L, err) || mp_map_array(m, "shards", &sh, err) ||
        mp_map_map(m, "quant", &q, err) || L < 1 || L > 1 << 16) {
        art_close(r);
        qerr_wrap(err, "%s", path);
        return NULL;
    }
    int64_t epochs = 0;
    mp_map_int(q, "epochs", &epochs, err);
    char artifact[4096];
    int done = journal_is_done(dir, artifact, sizeof artifact, NULL);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "state", done ? "done" : "stopped");
    cJSON_AddBoolToObject(root, "coordinator_running", 0);
    cJSON_AddStringToObject(root, "checkpoint", dir);
    if (done) cJSON_AddStringToObject(root, "artifact", artifact);
    cJSON_AddNumberToObject(root, "blocks_total", (double)L);
    cJSON *blocks = cJSON_AddArrayToObject(root, "blocks");
    int n_done = 0;
    for (int j = 0; j < L; j++) {
        char name[64];
        snprintf(name, sizeof name, "block-%d.qckp", j);
        journal_path(path, sizeof path, dir, name);
        int have = access(path, F_OK) == 0;
        n_done += have;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", j);
        cJSON_AddStringToObject(o, "state", done || have ? "journaled" : "pending");
        cJSON_AddNumberToObject(o, "epochs", (double)epochs);
        cJSON_AddItemToArray(blocks, o);
    }
    cJSON_AddNumberToObject(root, "blocks_done", done ? (double)L : n_done);
    cJSON *shards = cJSON_AddArrayToObject(root, "shards");
    for (uint32_t k = 0; k < sh->via.array.size; k++) {
        const msgpack_object *p = &sh->via.array.ptr[k];
        int64_t a = 0, b = 0;
        if (p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 2) {
            mp_obj_int(&p->via.array.ptr[0], "shard", &a, err);
            mp_obj_int(&p->via.array.ptr[1], "shard", &b, err);
        }
        int nd = 0;
        for (int64_t j = a; j < b && j < L; j++) {
            char name[64];
            snprintf(name, sizeof name, "block-%lld.qckp", (long long)j);
            journal_path(path, sizeof path, dir, name);
            if (access(path, F_OK) == 0 || done)
                nd++;
            else
                break;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", k);
        cJSON_AddNumberToObject(o, "begin", (double)a);
        cJSON_AddNumberToObject(o, "end", (double)b);
        cJSON_AddNumberToObject(o, "blocks_done", nd);
        cJSON_AddStringToObject(o, "worker", "");
        cJSON_AddItemToArray(shards, o);
    }
    cJSON_AddArrayToObject(root, "workers");
    art_close(r);
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}
