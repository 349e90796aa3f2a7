/* cmd_submit.c — `quept submit`: one calibration job on Kubernetes.
 *
 * Renders a kustomize overlay for the job into a directory — the base
 * (k8s/base, embedded in the binary at build time), the job's config, its
 * CURVE keys, and patches for the worker count and resources — and applies
 * it with `kubectl apply -k`, or prints it (--dry-run). `--delete J` removes
 * a job's objects by label. Nothing here talks to a cluster but kubectl. */
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/bytebuf.h"
#include "base/log.h"
#include "base/mapfile.h"
#include "calib_flags.h"
#include "cli.h"
#include "coordinator/coord.h"
#include "proto/transport.h"

extern char **environ;

typedef struct {
    const char *name;
    const unsigned char *data;
    size_t len;
} EmbeddedFile;
extern const EmbeddedFile quept_k8s_base[]; /* generated: cmake/embed_files.cmake */
extern const int quept_k8s_base_count;

#define VOLUME_MOUNT "/data" /* where every pod mounts the data volume (k8s/base) */
#define NAME_MAX_LEN 40      /* "NAME-coordinator" must stay a DNS label (<= 63) */
#define MAX_CALIB    256

static const char *HELP =
    "usage: quept submit --name J --image IMG --model PATH --data PATH --workers N\n"
    "                    [--namespace NS] [--out-dir DIR] [--dry-run] [options]\n"
    "                    [calibration flags of quept calibrate]\n"
    "       quept submit --delete J [--namespace NS] [--dry-run]\n"
    "\n"
    "Runs one calibration job on Kubernetes: a coordinator Job (restarted on\n"
    "failure, resuming from its checkpoint), a headless Service for it, an\n"
    "Indexed Job of N workers, a NetworkPolicy that lets only the job's own pods\n"
    "reach the coordinator, a ConfigMap with the job config and a Secret with\n"
    "fresh CURVE keys. Renders a kustomize overlay into DIR (on top of the base\n"
    "in k8s/base, which quept carries and writes to DIR/base) and applies it with\n"
    "`kubectl apply -k DIR`; --dry-run prints it instead. Every pod mounts the\n"
    "data volume (k8s/volume, PersistentVolumeClaim quept-data) at " VOLUME_MOUNT ".\n"
    "\n"
    "  --name J               job name: 1-40 of a-z 0-9 '-', starting with a letter;\n"
    "                         prefixes every object (J-coordinator, J-workers, ...)\n"
    "  --image IMG            the quept container image (deploy/Dockerfile), e.g.\n"
    "                         registry.example.com/quept:0.1.0 or NAME@sha256:...\n"
    "  --model PATH           model on the data volume, e.g. " VOLUME_MOUNT "/models/llama-7b\n"
    "  --data PATH            QTOK calibration tokens on the data volume\n"
    "  --workers N            worker pods (1-1000)\n"
    "  --shards K             block ranges to plan (default: N, or on resume the\n"
    "                         journal's plan)\n"
    "  --out PATH             artifact on the data volume (default " VOLUME_MOUNT "/jobs/J/J.qept;\n"
    "                         the checkpoint directory is " VOLUME_MOUNT "/jobs/J/checkpoint)\n"
    "  --namespace NS         Kubernetes namespace (default: kubectl's current one)\n"
    "  --out-dir DIR          where to render the overlay (default ./quept-jobs/J);\n"
    "                         CURVE keys already in DIR/keys are kept\n"
    "  --dry-run              render and print, apply nothing\n"
    "  --no-curve             no CURVE on the job's sockets: the coordinator runs\n"
    "                         with --insecure, so any pod the NetworkPolicy admits\n"
    "                         can join the job or read its status\n"
    "  --pvc NAME             the data volume's claim (default quept-data)\n"
    "  --worker-cpu Q         CPUs per worker, request = limit (default 4); also its\n"
    "                         --threads and OPENBLAS_NUM_THREADS\n"
    "  --worker-memory Q      memory per worker (default 16Gi)\n"
    "  --coordinator-cpu Q    (default 2)\n"
    "  --coordinator-memory Q (default 8Gi)\n"
    "  --max-lost S           a worker gives up after S seconds without a\n"
    "                         coordinator (default 600)\n"
    "  --delete J             delete job J's objects (kubectl delete -l); the data\n"
    "                         volume, the checkpoint and the artifact stay\n"
    "\n"
    "Calibration flags are those of `quept coordinator` (--bits, --epochs, --seed,\n"
    "--batch, ...: quept coordinator --help), checked here as the coordinator\n"
    "checks them (--method quept only) and handed to it unchanged. kubectl is\n"
    "$KUBECTL when set, else kubectl on PATH.\n";

/* The calibration flags: those of `quept calibrate` and `quept coordinator`
 * (cli/calib_flags.c) and --quiet. Fills o; returns the count. */
static int calib_flag_table(CliOpt *o) {
    int n = calib_opts_add(o, 0);
    o[n++] = (CliOpt){"quiet", 0, 0};
    return n;
}

/* Checks the calibration flags as the coordinator will: values, and
 * --method quept (the only method it distributes). */
static int check_calib_flags(const char *const *words, int n_words, QErr *err) {
    CliOpt o[CALIB_MAX_OPTS + 1];
    int no = calib_flag_table(o), npos;
    QuantConfig qc;
    int max_seqs = 0;
    if (cli_parse(n_words, (char **)words, o, no, NULL, 0, &npos, err) != 0 ||
        calib_opts_config(o, no, &qc, &max_seqs, err) != 0)
        return qerr_wrap(err, "calibration flag");
    if (qc.method != METHOD_QUEPT)
        return qerr_set(err,
                        "--method %s: a distributed job runs quept only (rtn needs no "
                        "calibration data; run gptq with quept calibrate on one machine)",
                        quant_method_name(qc.method));
    return 0;
}

/* ---- rendered text, appended to a ByteBuf ---- */

static void buf_printf(ByteBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(ByteBuf *b, const char *fmt, ...) {
    char small[1024], *big = NULL;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    const char *text = small;
    if (n >= (int)sizeof small && (big = malloc((size_t)n + 1)) != NULL) {
        vsnprintf(big, (size_t)n + 1, fmt, ap2);
        text = big;
    }
    va_end(ap2);
    if (n < 0 || (n >= (int)sizeof small && !big))
        b->oom = 1; /* sticky, as an append's */
    else
        bytebuf_append(b, text, (size_t)n);
    free(big);
}

/* ---- validation ---- */

static int is_dns_label(const char *s, size_t max, int letter_first) {
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    if (letter_first ? !(s[0] >= 'a' && s[0] <= 'z')
                     : !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return 0;
    }
    return s[n - 1] != '-';
}

static int check_name(const char *flag, const char *s, QErr *err) {
    if (!is_dns_label(s, NAME_MAX_LEN, 1))
        return qerr_set(err,
                        "%s: '%s' is not a valid job name: expected 1-%d characters of a-z, 0-9 "
                        "and '-', starting with a letter and not ending with '-' (it prefixes "
                        "Kubernetes object and DNS names)",
                        flag, s, NAME_MAX_LEN);
    return 0;
}

/* An image reference: [registry/]repo[:tag][@digest]; no spaces or quotes. */
static int check_image(const char *s, QErr *err) {
    size_t n = strlen(s);
    if (n == 0 || n > 255 || s[0] == '-' || s[0] == '.' || s[0] == '/' || s[0] == ':' || s[0] == '@')
        goto bad;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-' || c == '/' || c == ':' || c == '@'))
            goto bad;
    }
    if (s[n - 1] == ':' || s[n - 1] == '@' || s[n - 1] == '/') goto bad;
    return 0;
bad:
    return qerr_set(err,
                    "--image: '%s' is not an image reference: expected [REGISTRY/]NAME[:TAG] or "
                    "NAME@sha256:DIGEST (letters, digits, . _ - / : @)",
                    s);
}

/* A path on the data volume: absolute, under VOLUME_MOUNT, no "." or ".."
 * components, no empty components, no control characters. */
static int check_volume_path(const char *flag, const char *p, QErr *err) {
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return qerr_set(err, "%s: the path holds a control character", flag);
    if (p[0] != '/')
        return qerr_set(err,
                        "%s: '%s' is not an absolute path: it must name a file on the data volume "
                        "that every pod mounts at " VOLUME_MOUNT ", e.g. " VOLUME_MOUNT "/models/NAME",
                        flag, p);
    size_t m = strlen(VOLUME_MOUNT);
    if (strncmp(p, VOLUME_MOUNT, m) != 0 || p[m] != '/' || p[m + 1] == '\0')
        return qerr_set(err,
                        "%s: '%s' is not inside the data volume: every pod mounts it at " VOLUME_MOUNT
                        ", so the path must start with " VOLUME_MOUNT "/ (copy the "
                        "file onto the volume first: docs/kubernetes.md, step 2)",
                        flag, p);
    const char *c = p + m + 1;
    while (*c) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return qerr_set(err,
                            "%s: '%s' has an empty, '.' or '..' component: give the plain path "
                            "inside " VOLUME_MOUNT,
                            flag, p);
        if (!e) break;
        c = e + 1;
        if (!*c) return qerr_set(err, "%s: '%s' ends with '/': expected a file", flag, p);
    }
    return 0;
}

/* Kubernetes quantities as we accept them: a decimal number with an
 * optional suffix (cpu: m; memory: Ki Mi Gi Ti k M G T). */
static int check_quantity(const char *flag, const char *s, int memory, QErr *err) {
    const char *c = s;
    int digits = 0;
    while (*c >= '0' && *c <= '9') c++, digits++;
    if (*c == '.') {
        c++;
        while (*c >= '0' && *c <= '9') c++, digits++;
    }
    static const char *mem_sfx[] = {"", "Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"};
    static const char *cpu_sfx[] = {"", "m"};
    const char **sfx = memory ? mem_sfx : cpu_sfx;
    int nsfx = memory ? 9 : 2, ok = 0;
    for (int i = 0; i < nsfx; i++)
        if (strcmp(c, sfx[i]) == 0) ok = 1;
    if (!digits || !ok || atof(s) <= 0)
        return qerr_set(err, "%s: expected a positive Kubernetes quantity, %s, got '%s'", flag,
                        memory ? "e.g. 16Gi, 512Mi" : "e.g. 4, 1.5, 500m", s);
    return 0;
}

/* ---- CURVE keys ---- */

/* The job's keys in dir, as `quept keygen` writes them (proto/transport.c):
 * kept when they are there and valid, made otherwise. dir is mode 0700. */
static int job_keys(const char *dir, int *made, QErr *err) {
    char sp[1400], cp[1400];
    snprintf(sp, sizeof sp, "%s/server.key", dir);
    snprintf(cp, sizeof cp, "%s/client.key", dir);
    *made = access(sp, F_OK) != 0 || access(cp, F_OK) != 0;
    if (*made) {
        if (curve_keygen_dir(dir, err) != 0) return qerr_wrap(err, "CURVE keys in %s", dir);
    } else {
        CurveKeyPair kp;
        if (curve_read_pair(sp, &kp, err) != 0 || curve_read_pair(cp, &kp, err) != 0) return -1;
    }
    if (chmod(dir, 0700) != 0) return qerr_set(err, "%s: chmod: %s", dir, strerror(errno));
    return 0;
}

/* ---- running kubectl ---- */

static const char *kubectl_path(void) {
    const char *k = getenv("KUBECTL");
    return k && *k ? k : "kubectl";
}

static void print_argv(FILE *f, char *const *argv) {
    for (int i = 0; argv[i]; i++) fprintf(f, "%s%s", i ? " " : "", argv[i]);
    fputc('\n', f);
}

static int run_argv(char *const *argv, QErr *err) {
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
    if (rc != 0)
        return qerr_set(err, "cannot run %s: %s (install kubectl >= 1.21, set $KUBECTL, or use --dry-run)",
                        argv[0], strerror(rc));
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return qerr_set(err, "waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return qerr_set(err, "%s failed (exit status %d)", argv[0],
                        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}

/* ---- rendering ---- */

typedef struct {
    const char *name, *image, *model, *data, *ns, *pvc;
    const char *worker_cpu, *worker_mem, *coord_cpu, *coord_mem;
    char out[1024], out_dir[1024];
    int workers, shards, max_lost, curve, dry_run; /* shards 0: the coordinator's choice */
    const char *calib[MAX_CALIB];                  /* calibration flags and values, in order */
    char flag_words[MAX_CALIB][32];
    int n_calib;
} Job;

/* 1 when volume path p is d or lies below it (both checked plain paths). */
static int volume_inside(const char *p, const char *d) {
    size_t n = strlen(d);
    return strncmp(p, d, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* Inputs are sacred on the volume too: --out is not --model or --data nor
 * inside them, and nothing of the job's lies in its checkpoint directory,
 * where only the journal writes. The paths are checked plain (no '.', '..'
 * or '//'), so comparing them as strings is exact. */
static int check_job_volume_paths(const Job *j, QErr *err) {
    char ckpt[1024];
    snprintf(ckpt, sizeof ckpt, VOLUME_MOUNT "/jobs/%s/checkpoint", j->name);
    const char *names[] = {"--model", "--data"}, *paths[] = {j->model, j->data};
    for (int i = 0; i < 2; i++) {
        if (volume_inside(j->out, paths[i]))
            return qerr_set(err, "--out %s is or lies inside %s %s: an output may never overwrite an input",
                            j->out, names[i], paths[i]);
        if (volume_inside(paths[i], ckpt))
            return qerr_set(err,
                            "%s %s lies inside the job's checkpoint directory %s, which only the journal "
                            "writes",
                            names[i], paths[i], ckpt);
    }
    if (volume_inside(j->out, ckpt))
        return qerr_set(err,
                        "--out %s lies inside the job's checkpoint directory %s, which only the journal "
                        "writes",
                        j->out, ckpt);
    return 0;
}

static int write_text(const char *dir, const char *name, const ByteBuf *b, QErr *err) {
    if (b->oom) return qerr_set(err, "out of memory rendering %s", name);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return file_write_all(path, b->data ? (const char *)b->data : "", b->len, err);
}

static void render_kustomization(const Job *j, ByteBuf *b) {
    buf_printf(b,
               "# Rendered by `quept submit` (quept %s) for the calibration job '%s'.\n"
               "#   apply:   kubectl apply -k .\n"
               "#   delete:  quept submit --delete %s%s%s\n"
               "# keys/ holds the job's CURVE secret keys: keep this directory private.\n"
               "apiVersion: kustomize.config.k8s.io/v1beta1\n"
               "kind: Kustomization\n",
               QUEPT_VERSION, j->name, j->name, j->ns ? " --namespace " : "", j->ns ? j->ns : "");
    if (j->ns) buf_printf(b, "namespace: %s\n", j->ns);
    buf_printf(b,
               "namePrefix: %s-\n"
               "resources:\n"
               "  - base\n"
               "labels:\n"
               "  - pairs:\n"
               "      app.kubernetes.io/name: quept\n"
               "      app.kubernetes.io/instance: %s\n"
               "    includeSelectors: true\n",
               j->name, j->name);
    /* image: NAME[:TAG] or NAME@DIGEST; a ':' after the last '/' starts the tag */
    const char *at = strchr(j->image, '@');
    const char *slash = strrchr(j->image, '/');
    const char *colon = strrchr(j->image, ':');
    if (colon && slash && colon < slash) colon = NULL;
    if (at) {
        buf_printf(b, "images:\n  - name: quept\n    newName: %.*s\n    digest: %s\n", (int)(at - j->image),
                   j->image, at + 1);
    } else if (colon) {
        buf_printf(b, "images:\n  - name: quept\n    newName: %.*s\n    newTag: \"%s\"\n",
                   (int)(colon - j->image), j->image, colon + 1);
    } else {
        buf_printf(b, "images:\n  - name: quept\n    newName: %s\n", j->image);
    }
    buf_printf(b, "configMapGenerator:\n"
                  "  - name: quept-config\n"
                  "    behavior: merge\n"
                  "    envs:\n"
                  "      - config.env\n"
                  "    files:\n"
                  "      - QUEPT_CALIB_ARGS=calibrate.args\n"
                  "secretGenerator:\n"
                  "  - name: quept-curve-keys\n"
                  "    files:\n"
                  "      - keys/server.key\n"
                  "      - keys/server.pub\n"
                  "      - keys/client.key\n"
                  "      - keys/authorized\n"
                  "patches:\n"
                  "  - path: patches/coordinator.yaml\n"
                  "  - path: patches/workers.yaml\n");
}

static void render_config(const Job *j, ByteBuf *b) {
    char shards[16] = ""; /* empty: the coordinator's default */
    if (j->shards > 0) snprintf(shards, sizeof shards, "%d", j->shards);
    buf_printf(b,
               "QUEPT_MODEL=%s\n"
               "QUEPT_DATA=%s\n"
               "QUEPT_OUT=%s\n"
               "QUEPT_CHECKPOINT=" VOLUME_MOUNT "/jobs/%s/checkpoint\n"
               "QUEPT_WORKERS=%d\n"
               "QUEPT_SHARDS=%s\n"
               "QUEPT_CONNECT=tcp://%s-coordinator:5555\n"
               "QUEPT_CURVE=%d\n"
               "QUEPT_MAX_LOST=%d\n",
               j->model, j->data, j->out, j->name, j->workers, shards, j->name, j->curve, j->max_lost);
}

static void render_resources(ByteBuf *b, const char *cpu, const char *mem) {
    buf_printf(b,
               "          resources:\n"
               "            requests:\n"
               "              cpu: \"%s\"\n"
               "              memory: \"%s\"\n"
               "            limits:\n"
               "              cpu: \"%s\"\n"
               "              memory: \"%s\"\n",
               cpu, mem, cpu, mem);
}

static void render_pvc(ByteBuf *b, const char *pvc) {
    buf_printf(b,
               "      volumes:\n"
               "        - name: data\n"
               "          persistentVolumeClaim:\n"
               "            claimName: %s\n",
               pvc);
}

static void render_coordinator_patch(const Job *j, ByteBuf *b) {
    buf_printf(b, "apiVersion: batch/v1\n"
                  "kind: Job\n"
                  "metadata:\n"
                  "  name: coordinator\n"
                  "spec:\n"
                  "  template:\n"
                  "    spec:\n"
                  "      containers:\n"
                  "        - name: coordinator\n");
    render_resources(b, j->coord_cpu, j->coord_mem);
    render_pvc(b, j->pvc);
}

static void render_workers_patch(const Job *j, ByteBuf *b) {
    int backoff = 2 * j->workers > 6 ? 2 * j->workers : 6;
    buf_printf(b,
               "apiVersion: batch/v1\n"
               "kind: Job\n"
               "metadata:\n"
               "  name: workers\n"
               "spec:\n"
               "  completions: %d\n"
               "  parallelism: %d\n"
               "  backoffLimit: %d\n"
               "  template:\n"
               "    spec:\n"
               "      containers:\n"
               "        - name: worker\n",
               j->workers, j->workers, backoff);
    render_resources(b, j->worker_cpu, j->worker_mem);
    render_pvc(b, j->pvc);
}

static int render(const Job *j, QErr *err) {
    char dir[1200];
    if (dir_make_all(j->out_dir, err) != 0) return -1;
    /* refuse to overwrite another job's overlay */
    snprintf(dir, sizeof dir, "%s/kustomization.yaml", j->out_dir);
    if (access(dir, F_OK) == 0) {
        char *text = NULL;
        if (file_read_all(dir, &text, NULL, err) != 0) return -1;
        char want[128];
        snprintf(want, sizeof want, "\nnamePrefix: %s-\n", j->name);
        int same = strstr(text, want) != NULL;
        free(text);
        if (!same) return qerr_set(err, "%s holds the overlay of another job: choose another --out-dir", dir);
    }
    snprintf(dir, sizeof dir, "%s/base", j->out_dir);
    if (dir_make_all(dir, err) != 0) return -1;
    for (int i = 0; i < quept_k8s_base_count; i++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, quept_k8s_base[i].name);
        if (file_write_all(path, quept_k8s_base[i].data, quept_k8s_base[i].len, err) != 0) return -1;
    }
    snprintf(dir, sizeof dir, "%s/patches", j->out_dir);
    if (dir_make_all(dir, err) != 0) return -1;

    ByteBuf kus = {0}, cfg = {0}, cal = {0}, pc = {0}, pw = {0};
    render_kustomization(j, &kus);
    render_config(j, &cfg);
    for (int i = 0; i < j->n_calib; i++) buf_printf(&cal, "%s\n", j->calib[i]);
    render_coordinator_patch(j, &pc);
    render_workers_patch(j, &pw);
    int rc = write_text(j->out_dir, "kustomization.yaml", &kus, err) ||
             write_text(j->out_dir, "config.env", &cfg, err) ||
             write_text(j->out_dir, "calibrate.args", &cal, err) ||
             write_text(j->out_dir, "patches/coordinator.yaml", &pc, err) ||
             write_text(j->out_dir, "patches/workers.yaml", &pw, err);
    bytebuf_free(&kus), bytebuf_free(&cfg), bytebuf_free(&cal), bytebuf_free(&pc), bytebuf_free(&pw);
    if (rc) return -1;

    snprintf(dir, sizeof dir, "%s/keys", j->out_dir);
    int made;
    if (job_keys(dir, &made, err) != 0) return -1;
    if (!made) log_info("submit: kept the CURVE keys already in %s", dir);
    return 0;
}

static void print_file(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = NULL;
    QErr err = {{0}};
    if (file_read_all(path, &text, NULL, &err) != 0) {
        printf("# %s: %s\n", name, err.msg);
        return;
    }
    printf("# ---- %s ----\n%s", name, text);
    if (text[0] && text[strlen(text) - 1] != '\n') putchar('\n');
    free(text);
}

static void print_overlay(const Job *j) {
    printf("# overlay for job '%s' in %s (base: %s/base, the k8s/base of this quept)\n", j->name, j->out_dir,
           j->out_dir);
    print_file(j->out_dir, "kustomization.yaml");
    print_file(j->out_dir, "config.env");
    print_file(j->out_dir, "calibrate.args");
    print_file(j->out_dir, "patches/coordinator.yaml");
    print_file(j->out_dir, "patches/workers.yaml");
    printf("# ---- keys/ ----\n"
           "# server.key, client.key (CURVE key pairs, secret: not shown), server.pub,\n"
           "# authorized; file mode 0600\n");
}

static void print_watch(const Job *j) {
    char nsf[128] = "";
    if (j->ns) snprintf(nsf, sizeof nsf, " -n %s", j->ns);
    printf("submitted job '%s': 1 coordinator, %d worker%s (overlay: %s)\n"
           "  pods:      kubectl%s get pods -l app.kubernetes.io/instance=%s -w\n"
           "  logs:      kubectl%s logs -f job/%s-coordinator\n"
           "  status:    kubectl%s port-forward service/%s-coordinator 5556:5556 &\n"
           "             quept status --connect tcp://127.0.0.1:5556 --watch%s%s%s\n"
           "             (or: kubectl%s exec job/%s-coordinator -- quept status --checkpoint " VOLUME_MOUNT
           "/jobs/%s/checkpoint)\n"
           "  done when: kubectl%s wait --for=condition=complete job/%s-coordinator --timeout=-1s\n"
           "  artifact:  %s on the data volume, e.g.\n"
           "             kubectl%s cp quept-data-shell:%s %s.qept\n"
           "  clean up:  quept submit --delete %s%s%s\n",
           j->name, j->workers, j->workers == 1 ? "" : "s", j->out_dir, nsf, j->name, nsf, j->name, nsf,
           j->name, j->curve ? " --curve-keys " : "", j->curve ? j->out_dir : "", j->curve ? "/keys" : "",
           nsf, j->name, j->name, nsf, j->name, j->out, nsf, j->out + 1, j->name, j->name,
           j->ns ? " --namespace " : "", j->ns ? j->ns : "");
}

/* ---- the command ---- */

/* Checks the job's options, first problem first; fills workers, shards, max_lost. */
static int validate_job(const CliOpt *o, int no, Job *j, QErr *err) {
    if (!j->name) return qerr_set(err, "--name is required: the job's name, e.g. --name llama7b-w4");
    if (check_name("--name", j->name, err) != 0) return -1;
    if (!j->image)
        return qerr_set(err, "--image is required: the quept container image built from "
                             "deploy/Dockerfile and pushed to a registry the cluster pulls from, "
                             "e.g. --image registry.example.com/quept:" QUEPT_VERSION);
    if (check_image(j->image, err) != 0) return -1;
    if (!j->model)
        return qerr_set(err, "--model is required: the model's path on the data volume, e.g. " VOLUME_MOUNT
                             "/models/NAME");
    if (check_volume_path("--model", j->model, err) != 0) return -1;
    if (!j->data)
        return qerr_set(err, "--data is required: the calibration tokens' path on the data "
                             "volume, e.g. " VOLUME_MOUNT "/data/calib.qtok");
    if (check_volume_path("--data", j->data, err) != 0) return -1;
    if (!cli_get(o, no, "workers"))
        return qerr_set(err, "--workers is required: the number of worker pods (1-1000)");
    if (cli_get_int(o, no, "workers", 0, 1, COORD_MAX_WORKERS, &j->workers, err) != 0 ||
        cli_get_int(o, no, "shards", 0, 1, 256, &j->shards, err) != 0 ||
        cli_get_int(o, no, "max-lost", 600, 1, 86400 * 7, &j->max_lost, err) != 0)
        return -1;
    if (j->ns && !is_dns_label(j->ns, 63, 0))
        return qerr_set(err,
                        "--namespace: '%s' is not a namespace name: expected 1-63 "
                        "characters of a-z, 0-9 and '-'",
                        j->ns);
    if (!is_dns_label(j->pvc, 253, 0))
        return qerr_set(err, "--pvc: '%s' is not a claim name (a-z, 0-9, '-')", j->pvc);
    if (check_quantity("--worker-cpu", j->worker_cpu, 0, err) != 0 ||
        check_quantity("--worker-memory", j->worker_mem, 1, err) != 0 ||
        check_quantity("--coordinator-cpu", j->coord_cpu, 0, err) != 0 ||
        check_quantity("--coordinator-memory", j->coord_mem, 1, err) != 0)
        return -1;
    return 0;
}

static int submit_delete(const char *name, const char *ns, int dry_run) {
    QErr err = {{0}};
    if (check_name("--delete", name, &err) != 0 ||
        (ns && !is_dns_label(ns, 63, 0) &&
         qerr_set(&err, "--namespace: '%s' is not a namespace name (a-z, 0-9, '-')", ns))) {
        log_error("submit: %s", err.msg);
        return 2;
    }
    char sel[160];
    snprintf(sel, sizeof sel, "app.kubernetes.io/name=quept,app.kubernetes.io/instance=%s", name);
    char *argv[12];
    int n = 0;
    argv[n++] = (char *)kubectl_path();
    if (ns) argv[n++] = "-n", argv[n++] = (char *)ns;
    argv[n++] = "delete";
    argv[n++] = "job,service,networkpolicy,configmap,secret";
    argv[n++] = "-l";
    argv[n++] = sel;
    argv[n++] = "--ignore-not-found";
    argv[n] = NULL;
    if (dry_run) {
        printf("# dry run: would run\n");
        print_argv(stdout, argv);
        return 0;
    }
    if (run_argv(argv, &err) != 0) {
        log_error("submit: %s", err.msg);
        return 1;
    }
    printf("deleted job '%s' (the data volume, its checkpoint and artifact stay: " VOLUME_MOUNT "/jobs/%s)\n",
           name, name);
    return 0;
}

int cmd_submit(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(HELP, stdout);
        return 0;
    }
    CliOpt o[] = {{"name", 1, 0},
                  {"image", 1, 0},
                  {"model", 1, 0},
                  {"data", 1, 0},
                  {"workers", 1, 0},
                  {"shards", 1, 0},
                  {"out", 1, 0},
                  {"namespace", 1, 0},
                  {"out-dir", 1, 0},
                  {"dry-run", 0, 0},
                  {"no-curve", 0, 0},
                  {"pvc", 1, 0},
                  {"worker-cpu", 1, 0},
                  {"worker-memory", 1, 0},
                  {"coordinator-cpu", 1, 0},
                  {"coordinator-memory", 1, 0},
                  {"max-lost", 1, 0},
                  {"delete", 1, 0}};
    int no = sizeof o / sizeof o[0];
    Job j;
    memset(&j, 0, sizeof j);
    QErr err = {{0}};

    /* submit's own options, and calibration flags kept in order */
    CliOpt cal[CALIB_MAX_OPTS + 1];
    int n_cal = calib_flag_table(cal);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            log_error("submit: unexpected argument '%s' (see --help)", a);
            return 2;
        }
        const char *nm = a + 2, *eq = strchr(nm, '=');
        size_t len = eq ? (size_t)(eq - nm) : strlen(nm);
        int k, found = 0;
        for (k = 0; k < no; k++)
            if (strlen(o[k].name) == len && strncmp(o[k].name, nm, len) == 0) break;
        if (k < no) {
            found = 1;
            if (o[k].takes_value) {
                if (!eq && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
                    log_error("submit: option --%s needs a value", o[k].name);
                    return 2;
                }
                o[k].value = eq ? eq + 1 : argv[++i];
            } else {
                if (eq) {
                    log_error("submit: option --%s takes no value", o[k].name);
                    return 2;
                }
                o[k].value = "1";
            }
            continue;
        }
        for (int c = 0; c < n_cal; c++) {
            if (strlen(cal[c].name) != len || strncmp(cal[c].name, nm, len) != 0) continue;
            found = 1;
            const char *val = NULL;
            if (cal[c].takes_value) {
                if (!eq && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
                    log_error("submit: calibration flag --%s needs a value", cal[c].name);
                    return 2;
                }
                val = eq ? eq + 1 : argv[++i];
                if (!*val || strpbrk(val, " \t\r\n")) {
                    log_error("submit: calibration flag --%s: the value '%s' is empty or holds "
                              "white space",
                              cal[c].name, val);
                    return 2;
                }
            } else if (eq) {
                log_error("submit: calibration flag --%s takes no value", cal[c].name);
                return 2;
            }
            if (j.n_calib + 2 > MAX_CALIB) {
                log_error("submit: too many calibration flags");
                return 2;
            }
            /* one word a line for the entrypoint: "--flag=value" becomes two */
            snprintf(j.flag_words[j.n_calib], sizeof j.flag_words[0], "--%s", cal[c].name);
            j.calib[j.n_calib] = j.flag_words[j.n_calib];
            j.n_calib++;
            if (val) j.calib[j.n_calib++] = val;
            break;
        }
        if (!found) {
            log_error("submit: unknown option '%s': neither a submit option nor a calibration "
                      "flag of `quept coordinator` (see quept submit --help, quept coordinator --help)",
                      a);
            return 2;
        }
    }

    const char *del = cli_get(o, no, "delete");
    j.ns = cli_get(o, no, "namespace");
    j.dry_run = cli_get(o, no, "dry-run") != NULL;
    if (del) {
        for (int k = 0; k < no; k++)
            if (o[k].value && strcmp(o[k].name, "delete") && strcmp(o[k].name, "namespace") &&
                strcmp(o[k].name, "dry-run")) {
                log_error("submit: --delete takes only --namespace and --dry-run, not --%s", o[k].name);
                return 2;
            }
        if (j.n_calib) {
            log_error("submit: --delete takes no calibration flags");
            return 2;
        }
        return submit_delete(del, j.ns, j.dry_run);
    }

    j.name = cli_get(o, no, "name");
    j.image = cli_get(o, no, "image");
    j.model = cli_get(o, no, "model");
    j.data = cli_get(o, no, "data");
    j.pvc = cli_get(o, no, "pvc");
    j.worker_cpu = cli_get(o, no, "worker-cpu");
    j.worker_mem = cli_get(o, no, "worker-memory");
    j.coord_cpu = cli_get(o, no, "coordinator-cpu");
    j.coord_mem = cli_get(o, no, "coordinator-memory");
    if (!j.pvc) j.pvc = "quept-data";
    if (!j.worker_cpu) j.worker_cpu = "4";
    if (!j.worker_mem) j.worker_mem = "16Gi";
    if (!j.coord_cpu) j.coord_cpu = "2";
    if (!j.coord_mem) j.coord_mem = "8Gi";
    j.curve = cli_get(o, no, "no-curve") == NULL;

    if (validate_job(o, no, &j, &err) != 0 || check_calib_flags(j.calib, j.n_calib, &err) != 0) {
        log_error("submit: %s", err.msg);
        return 2;
    }
    const char *out = cli_get(o, no, "out");
    if (out) {
        if (check_volume_path("--out", out, &err) != 0) {
            log_error("submit: %s", err.msg);
            return 2;
        }
        snprintf(j.out, sizeof j.out, "%s", out);
    } else {
        snprintf(j.out, sizeof j.out, VOLUME_MOUNT "/jobs/%s/%s.qept", j.name, j.name);
    }
    if (check_job_volume_paths(&j, &err) != 0) {
        log_error("submit: %s", err.msg);
        return 2;
    }
    const char *od = cli_get(o, no, "out-dir");
    if (od && !*od) {
        log_error("submit: --out-dir: empty path");
        return 2;
    }
    int w = od ? snprintf(j.out_dir, sizeof j.out_dir, "%s", od)
               : snprintf(j.out_dir, sizeof j.out_dir, "quept-jobs/%s", j.name);
    if (w < 0 || (size_t)w >= sizeof j.out_dir) {
        log_error("submit: --out-dir: path too long");
        return 2;
    }

    if (render(&j, &err) != 0) {
        log_error("submit: %s", err.msg);
        return 1;
    }
    if (j.dry_run) {
        print_overlay(&j);
        printf("# dry run: nothing applied. Apply with: kubectl apply -k %s\n", j.out_dir);
        return 0;
    }
    char *kargv[] = {(char *)kubectl_path(), "apply", "-k", j.out_dir, NULL};
    fprintf(stderr, "+ ");
    print_argv(stderr, kargv);
    if (run_argv(kargv, &err) != 0) {
        log_error("submit: %s", err.msg);
        return 1;
    }
    print_watch(&j);
    return 0;
}
