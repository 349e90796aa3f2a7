/* test_submit.c — `quept submit` without a cluster:
 *  - bad input is refused with exit status 2 and a message naming the flag
 *    and what was expected: workers < 1, no image, a model outside the data
 *    volume, an unknown calibration flag, a bad calibration value or a
 *    method the coordinator does not distribute, and more;
 *  - --dry-run writes the overlay (base, config, calibration flags in order,
 *    patches, CURVE keys mode 0600), prints it without the secret keys, and
 *    keeps the keys when the same job is rendered again;
 *  - without --dry-run it runs `kubectl apply -k DIR` ($KUBECTL: a fake
 *    that records its arguments) and prints how to watch the job; a failing
 *    kubectl is an error; --delete runs `kubectl delete` by the job's labels.
 * The rendered manifests themselves are checked by the k8s_manifests test. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "check.h"

static char tmp[256];
static char out[65536], errtxt[65536];

/* Runs `quept submit ARGS` (a shell word list), capturing stdout and stderr. */
static int submit(const char *env, const char *args) {
    char cmd[4096], of[300], ef[300];
    snprintf(of, sizeof of, "%s/stdout", tmp);
    snprintf(ef, sizeof ef, "%s/stderr", tmp);
    snprintf(cmd, sizeof cmd, "%s %s submit %s > %s 2> %s", env ? env : "", QUEPT_BIN, args, of, ef);
    int st = system(cmd);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    FILE *f = fopen(of, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    f = fopen(ef, "r");
    n = f ? fread(errtxt, 1, sizeof errtxt - 1, f) : 0;
    errtxt[n] = 0;
    if (f) fclose(f);
    return rc;
}

static char *slurp(const char *path) {
    static char buf[65536];
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

#define GOOD                                                                    \
    "--name t1 --image reg.example.com/quept:0.1.0 --model /data/models/m.bin " \
    "--data /data/calib/c.qtok --workers 2"

/* A bad command line: exit 2, and stderr names every needle. */
static void refuse(const char *args, const char *needle1, const char *needle2) {
    int rc = submit(NULL, args);
    CHECK_MSG(rc == 2, "exit %d for: %s", rc, args);
    CHECK_MSG(strstr(errtxt, needle1) != NULL, "'%s' not in: %s", needle1, errtxt);
    if (needle2) CHECK_MSG(strstr(errtxt, needle2) != NULL, "'%s' not in: %s", needle2, errtxt);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/quept-submit-XXXXXX");
    if (!mkdtemp(tmp)) SKIP("cannot make a temp dir");
    char args[2048], path[512];

    /* ---- refused input ---- */
    refuse("--name t1 --image q:1 --model /data/m --data /data/d --workers 0", "--workers", "[1, 256]");
    /* more workers than one coordinator admits (it would refuse the rest unanswered) */
    refuse("--name t1 --image q:1 --model /data/m --data /data/d --workers 257", "--workers", "[1, 256]");
    refuse("--name t1 --image q:1 --model /data/m --data /data/d --workers -3", "--workers", NULL);
    refuse("--name t1 --image q:1 --model /data/m --data /data/d", "--workers is required", NULL);
    refuse("--name t1 --model /data/m --data /data/d --workers 1", "--image is required",
           "deploy/Dockerfile");
    refuse("--name t1 --image 'bad image' --model /data/m --data /data/d --workers 1", "--image",
           "not an image reference");
    refuse("--name t1 --image q:1 --model /home/me/m.bin --data /data/d --workers 1",
           "--model: '/home/me/m.bin' is not inside the data volume", "/data");
    refuse("--name t1 --image q:1 --model models/m.bin --data /data/d --workers 1", "--model",
           "not an absolute path");
    refuse("--name t1 --image q:1 --model /data/../etc/passwd --data /data/d --workers 1", "--model", "'..'");
    refuse("--name t1 --image q:1 --model /data --data /data/d --workers 1", "--model",
           "not inside the data volume");
    refuse("--name t1 --image q:1 --model /datafoo/m --data /data/d --workers 1", "--model",
           "not inside the data volume");
    refuse("--name t1 --image q:1 --model /data/m --data /tmp/c.qtok --workers 1", "--data",
           "not inside the data volume");
    refuse("--name t1 --image q:1 --model /data/m --data /data/d --workers 1 --out /x.qept", "--out",
           "not inside the data volume");
    refuse(GOOD " --epochz 3", "unknown option '--epochz'", "calibration flag");
    refuse(GOOD " --bits", "--bits needs a value", NULL);
    refuse(GOOD " --bits 2,9", "--bits", NULL);
    refuse(GOOD " --epochs many", "--epochs: expected an integer", NULL);
    refuse(GOOD " --method gptq", "--method gptq", "quept only");
    refuse(GOOD " --stream sideways", "--stream", NULL);
    refuse(GOOD " --no-lwc=1", "--no-lwc takes no value", NULL);
    refuse("--name My_Job --image q:1 --model /data/m --data /data/d --workers 1", "--name",
           "not a valid job name");
    refuse("--name a-very-long-job-name-that-is-longer-than-forty --image q:1 --model /data/m "
           "--data /data/d --workers 1",
           "--name", "1-40");
    refuse("--image q:1 --model /data/m --data /data/d --workers 1", "--name is required", NULL);
    refuse(GOOD " --namespace Bad_NS", "--namespace", NULL);
    refuse(GOOD " --worker-memory 16GB", "--worker-memory", "16Gi");
    refuse(GOOD " --worker-cpu 0", "--worker-cpu", NULL);
    refuse(GOOD " stray", "unexpected argument 'stray'", NULL);
    refuse("--delete t1 --workers 2", "--delete takes only", NULL);

    /* ---- --dry-run renders and prints ---- */
    char dir[400];
    snprintf(dir, sizeof dir, "%s/overlay", tmp);
    snprintf(args, sizeof args,
             GOOD " --dry-run --out-dir %s --namespace ml --method quept "
                  "--bits=2,3,4 --seed 7 --quiet --max-lost 120",
             dir);
    int rc = submit("KUBECTL=/bin/false", args);
    CHECK_MSG(rc == 0, "dry run exit %d: %s", rc, errtxt);
    CHECK(strstr(out, "namePrefix: t1-") != NULL);
    CHECK(strstr(out, "namespace: ml") != NULL);
    CHECK(strstr(out, "newName: reg.example.com/quept") != NULL);
    CHECK(strstr(out, "newTag: \"0.1.0\"") != NULL);
    CHECK(strstr(out, "QUEPT_MODEL=/data/models/m.bin") != NULL);
    CHECK(strstr(out, "QUEPT_CONNECT=tcp://t1-coordinator:5555") != NULL);
    CHECK(strstr(out, "QUEPT_OUT=/data/jobs/t1/t1.qept") != NULL);
    CHECK(strstr(out, "QUEPT_MAX_LOST=120") != NULL);
    CHECK(strstr(out, "dry run: nothing applied") != NULL);
    snprintf(path, sizeof path, "%s/calibrate.args", dir);
    char *cal = slurp(path);
    CHECK_MSG(cal && strcmp(cal, "--method\nquept\n--bits\n2,3,4\n--seed\n7\n--quiet\n") == 0,
              "calibrate.args: %s", cal ? cal : "(missing)");
    snprintf(path, sizeof path, "%s/patches/workers.yaml", dir);
    char *pw = slurp(path);
    CHECK(pw && strstr(pw, "completions: 2") && strstr(pw, "parallelism: 2"));
    snprintf(path, sizeof path, "%s/base/worker-job.yaml", dir);
    char *wb = slurp(path);
    CHECK(wb && strstr(wb, "completionMode: Indexed"));
    /* keys: two Z85 lines each, 0600, not printed */
    char server[200] = "", line1[64] = "", line2[64] = "";
    snprintf(path, sizeof path, "%s/keys/server.key", dir);
    char *sk = slurp(path);
    CHECK(sk != NULL);
    if (sk) {
        snprintf(server, sizeof server, "%s", sk);
        CHECK(sscanf(server, "%63s %63s", line1, line2) == 2 && strlen(line1) == 40 && strlen(line2) == 40);
        CHECK_MSG(strstr(out, line2) == NULL, "the dry run printed the server's secret key");
    }
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    snprintf(path, sizeof path, "%s/keys", dir);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700);
    snprintf(path, sizeof path, "%s/keys/server.pub", dir);
    char *pub = slurp(path);
    CHECK(pub && strncmp(pub, line1, 40) == 0 && pub[40] == '\n' && pub[41] == 0);
    /* rendering the same job again keeps its keys (a new Secret would change the Jobs) */
    rc = submit(NULL, args);
    CHECK(rc == 0);
    snprintf(path, sizeof path, "%s/keys/server.key", dir);
    sk = slurp(path);
    CHECK_MSG(sk && strcmp(sk, server) == 0, "keys changed on re-render");
    CHECK(strstr(errtxt, "kept the CURVE keys") != NULL);
    /* another job into the same directory is refused */
    snprintf(args, sizeof args,
             "--name t2 --image q:1 --model /data/m --data /data/d --workers 1 --dry-run "
             "--out-dir %s",
             dir);
    rc = submit(NULL, args);
    CHECK_MSG(rc == 1 && strstr(errtxt, "another job"), "exit %d: %s", rc, errtxt);

    /* ---- apply and delete through a fake kubectl ---- */
    char fake[400], log[400], env[900];
    snprintf(fake, sizeof fake, "%s/kubectl", tmp);
    snprintf(log, sizeof log, "%s/kubectl.log", tmp);
    FILE *f = fopen(fake, "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f, "#!/bin/sh\necho \"$*\" >> '%s'\nexit ${FAKE_KUBECTL_RC:-0}\n", log);
        fclose(f);
        chmod(fake, 0755);
    }
    snprintf(env, sizeof env, "KUBECTL=%s", fake);
    snprintf(dir, sizeof dir, "%s/applied", tmp);
    snprintf(args, sizeof args, GOOD " --out-dir %s", dir);
    rc = submit(env, args);
    CHECK_MSG(rc == 0, "apply exit %d: %s", rc, errtxt);
    char *kl = slurp(log);
    char want[600];
    snprintf(want, sizeof want, "apply -k %s\n", dir);
    CHECK_MSG(kl && strcmp(kl, want) == 0, "kubectl got: %s", kl ? kl : "(nothing)");
    CHECK(strstr(out, "kubectl get pods -l app.kubernetes.io/instance=t1 -w") != NULL);
    CHECK(strstr(out, "quept status --connect") != NULL);
    CHECK(strstr(out, "port-forward service/t1-coordinator 5556:5556") != NULL);
    CHECK(strstr(out, "quept submit --delete t1") != NULL);
    snprintf(env, sizeof env, "KUBECTL=%s FAKE_KUBECTL_RC=1", fake);
    rc = submit(env, args);
    CHECK_MSG(rc == 1 && strstr(errtxt, "failed"), "failing kubectl: exit %d: %s", rc, errtxt);
    rc = submit("KUBECTL=/nonexistent/kubectl", args);
    CHECK_MSG(rc == 1 && strstr(errtxt, "cannot run"), "missing kubectl: exit %d: %s", rc, errtxt);

    remove(log);
    snprintf(env, sizeof env, "KUBECTL=%s", fake);
    rc = submit(env, "--delete t1 --namespace ml");
    CHECK_MSG(rc == 0, "delete exit %d: %s", rc, errtxt);
    kl = slurp(log);
    CHECK_MSG(kl && strcmp(kl, "-n ml delete job,service,networkpolicy,configmap,secret -l "
                               "app.kubernetes.io/name=quept,app.kubernetes.io/instance=t1 "
                               "--ignore-not-found\n") == 0,
              "kubectl got: %s", kl ? kl : "(nothing)");
    rc = submit(env, "--delete t1 --dry-run");
    CHECK(rc == 0 && strstr(out, "would run"));
    refuse("--delete Bad_Name", "--delete", "not a valid job name");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    CHECK_DONE();
}
