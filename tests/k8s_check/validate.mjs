// validate.mjs — the ctest `k8s_manifests`: renders every kustomization
// offline and checks it.
//   node tests/k8s_check/validate.mjs QUEPT_BIN REPO_DIR
// Rendered: k8s/base, k8s/volume, and overlays that `quept submit --dry-run`
// writes for several jobs. Every object is checked against the Kubernetes
// OpenAPI schemas (kubernetes-models) with unknown fields refused; each
// job's objects are then checked for what the job needs: selectors that
// tie the pods to one job, the worker Indexed Job, the podFailurePolicy, the
// NetworkPolicy, the CURVE key split, config, volumes, resources, security.
// Also: deploy/Dockerfile installs the entrypoint the manifests run and a
// Debian package for every shared library build/quept loads.
// Exit 77 (skip) only when kubectl (with kustomize v4+) is not installed.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findKubectl, kustomize, loadYaml, skip, validateObject } from "./lib.mjs";

const [quept, repo] = process.argv.slice(2);
if (!quept || !repo) {
  console.error("usage: node validate.mjs QUEPT_BIN REPO_DIR");
  process.exit(2);
}
const YAML = await loadYaml();
const kubectl = findKubectl();
if (!kubectl) skip("kubectl not found: the manifests are rendered with `kubectl kustomize` (kubectl >= 1.21)");
if (!kubectl.ok) skip(`kubectl ${kubectl.version} has kustomize ${kubectl.kustomize}: v4 or later is needed`);
console.log(`kubectl ${kubectl.version}, kustomize ${kubectl.kustomize}`);

let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) passed++;
  else {
    failed++;
    console.log(`FAIL: ${what}`);
  }
}

const tmp = mkdtempSync(join(tmpdir(), "quept-k8s-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

function submit(args) {
  const r = spawnSync(quept, ["submit", "--dry-run", ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`quept submit ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

const matches = (sel, labels) => Object.entries(sel || {}).every(([k, v]) => labels?.[k] === v);
const b64 = (s) => Buffer.from(String(s).replace(/\n/g, ""), "base64").toString("utf8");

function schemaCheck(name, objs) {
  check(objs.length > 0, `${name}: renders no objects`);
  for (const o of objs) {
    const errs = validateObject(o);
    check(errs.length === 0, `${name}: ${errs.join("; ")}`);
  }
}

// ---- the Dockerfile ----
const dockerfile = readFileSync(join(repo, "deploy/Dockerfile"), "utf8");
const stages = dockerfile.split(/^FROM /m).slice(1);
const runtime = stages[stages.length - 1];
check(/^debian:12-slim\b/.test(runtime), "Dockerfile: the runtime stage is FROM debian:12-slim");
check(/COPY deploy\/entrypoint\.sh \/usr\/local\/bin\/quept-entrypoint/.test(runtime),
  "Dockerfile: the runtime stage installs deploy/entrypoint.sh as /usr/local/bin/quept-entrypoint");
check(/COPY --from=build \S+\/quept \/usr\/local\/bin\/quept\b/.test(runtime),
  "Dockerfile: the runtime stage installs the quept binary as /usr/local/bin/quept");
check(/^USER 10001/m.test(runtime), "Dockerfile: runs as the non-root user 10001");
// the build stage copies the tree: .dockerignore must not leave out a source directory
{
  const ignored = readFileSync(join(repo, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const cm = readFileSync(join(repo, "CMakeLists.txt"), "utf8");
  const srcDirs = [...new Set([...cm.matchAll(/\$\{CMAKE_SOURCE_DIR\}\/([A-Za-z0-9_]+)\//g)].map((m) => m[1]))];
  check(srcDirs.length >= 3, `CMakeLists.txt names source directories (${srcDirs})`);
  for (const d of [...srcDirs, "CMakeLists.txt"])
    check(!ignored.some((pat) => pat.replace(/^\/|\/$/g, "") === d || new RegExp("^" + pat.replace(/\*+/g, ".*").replace(/\/$/, "") + "$").test(d)),
      `.dockerignore leaves ${d} out of the image build`);
}
const aptLine = (runtime.match(/apt-get install[^&]*/) || [""])[0];
const runtimePkgs = new Set(aptLine.split(/\s+/).filter((w) => /^lib/.test(w)));
// the libraries quept itself links (DT_NEEDED); their own dependencies come
// with the packages through apt
const ldd = spawnSync("ldd", [quept], { encoding: "utf8" });
const needed = spawnSync("objdump", ["-p", quept], { encoding: "utf8" });
if (ldd.status === 0 && needed.status === 0 && spawnSync("dpkg", ["--version"]).status === 0) {
  const sonames = new Set([...needed.stdout.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1]));
  const libs = [...ldd.stdout.matchAll(/(\S+)\s+=>\s+(\/\S+)/g)].filter((m) => sonames.has(m[1])).map((m) => m[2]);
  check(libs.length === sonames.size, `ldd resolves ${libs.length} of quept's ${sonames.size} libraries`);
  for (const lib of libs) {
    const real = spawnSync("readlink", ["-f", lib], { encoding: "utf8" }).stdout.trim();
    let owner = null;
    for (const p of [real, real.replace(/^\/usr\/lib\//, "/lib/"), lib])
      if (!owner) {
        const r = spawnSync("dpkg", ["-S", p], { encoding: "utf8" });
        if (r.status === 0) owner = r.stdout.split(":")[0];
      }
    if (!owner) continue;
    if (["libc6", "libgcc-s1"].includes(owner)) continue; // in every Debian image
    if (/^lib(asan|ubsan|lsan|tsan)\d/.test(owner)) continue; // a sanitizer build's runtime, not the image's
    check(runtimePkgs.has(owner), `Dockerfile: the runtime stage lacks ${owner} (for ${lib})`);
  }
} else console.log("note: ldd, objdump or dpkg unavailable: the runtime library list is not checked");

// ---- the base and the data volume ----
const base = kustomize(kubectl, join(repo, "k8s/base"), YAML);
schemaCheck("k8s/base", base);
const volume = kustomize(kubectl, join(repo, "k8s/volume"), YAML);
schemaCheck("k8s/volume", volume);
const pvc = volume.find((o) => o.kind === "PersistentVolumeClaim");
check(pvc?.metadata.name === "quept-data" && pvc.spec.accessModes.includes("ReadWriteMany"),
  "k8s/volume: PersistentVolumeClaim quept-data, ReadWriteMany");

// ---- jobs rendered by quept submit ----
const jobs = [
  { name: "one", ns: null, workers: 1, image: "quept:test", imageOut: "quept:test",
    model: "/data/models/stories260K.bin", data: "/data/calib/calib.qtok",
    out: "/data/jobs/one/one.qept", curve: true, pvc: "quept-data", calib: [],
    cpu: ["4", "16Gi"], coord: ["2", "8Gi"] },
  { name: "big-job", ns: "ml-team", workers: 4, shards: 8,
    image: "registry.example.com:5000/team/quept@sha256:" + "ab".repeat(32),
    imageOut: "registry.example.com:5000/team/quept@sha256:" + "ab".repeat(32),
    model: "/data/models/llama-7b", data: "/data/calib/wiki.qtok", out: "/data/out/llama7b.qept",
    curve: false, pvc: "shared-fs", calib: ["--method", "quept", "--bits", "2,3,4", "--seed", "7", "--quiet"],
    cpu: ["8", "48Gi"], coord: ["1500m", "32Gi"],
    extra: ["--shards", "8", "--no-curve", "--pvc", "shared-fs", "--worker-cpu", "8", "--worker-memory", "48Gi",
      "--coordinator-cpu", "1500m", "--coordinator-memory", "32Gi", "--out", "/data/out/llama7b.qept",
      "--method", "quept", "--bits=2,3,4", "--seed", "7", "--quiet"] },
  { name: "other", ns: "ml-team", workers: 2, image: "quept:1", imageOut: "quept:1",
    model: "/data/models/m.bin", data: "/data/calib/c.qtok", out: "/data/jobs/other/other.qept",
    curve: true, pvc: "quept-data", calib: ["--epochs", "3"], cpu: ["4", "16Gi"], coord: ["2", "8Gi"],
    extra: ["--epochs", "3"] },
];

const rendered = {};
for (const j of jobs) {
  const dir = join(tmp, j.name);
  const args = ["--name", j.name, "--image", j.image, "--model", j.model, "--data", j.data,
    "--workers", String(j.workers), "--out-dir", dir, ...(j.ns ? ["--namespace", j.ns] : []), ...(j.extra || [])];
  const printed = submit(args);
  const secretLines = ["server.key", "client.key"].map((f) => readFileSync(join(dir, "keys", f), "utf8").split("\n")[1]);
  check(printed.includes("namePrefix: " + j.name + "-") && secretLines.every((k) => k.length === 40 && !printed.includes(k)),
    `${j.name}: --dry-run prints the overlay and no secret key`);
  const objs = kustomize(kubectl, dir, YAML);
  rendered[j.name] = objs;
  schemaCheck(`job ${j.name}`, objs);
  checkJob(j, objs);
}

// two jobs in one namespace: nothing of one selects the other's pods
{
  const a = rendered["big-job"], b = rendered["other"];
  const podsB = b.filter((o) => o.kind === "Job").map((o) => o.spec.template.metadata.labels);
  for (const o of a) {
    if (o.kind === "Service") check(!podsB.some((l) => matches(o.spec.selector, l)), "big-job's Service selects pods of job other");
    if (o.kind === "NetworkPolicy") {
      check(!podsB.some((l) => matches(o.spec.podSelector.matchLabels, l)), `big-job's ${o.metadata.name} NetworkPolicy applies to pods of job other`);
      for (const rule of o.spec.ingress || [])
        for (const from of rule.from || [])
          check(!podsB.some((l) => matches(from.podSelector?.matchLabels, l)) && from.podSelector?.matchLabels,
            "big-job's coordinator admits pods of job other");
    }
  }
}

function checkJob(j, objs) {
  const P = `${j.name}:`;
  const byKind = (k) => objs.filter((o) => o.kind === k);
  const kinds = objs.map((o) => o.kind).sort().join(",");
  check(kinds === "ConfigMap,Job,Job,NetworkPolicy,NetworkPolicy,Secret,Service", `${P} objects are ${kinds}`);
  for (const o of objs) {
    check(o.metadata.name.startsWith(`${j.name}-`), `${P} ${o.kind}/${o.metadata.name} is not prefixed with the job name`);
    check(o.metadata.labels?.["app.kubernetes.io/instance"] === j.name && o.metadata.labels?.["app.kubernetes.io/name"] === "quept",
      `${P} ${o.kind}/${o.metadata.name} lacks the job's labels`);
    check((o.metadata.namespace || null) === j.ns, `${P} ${o.kind}/${o.metadata.name} namespace ${o.metadata.namespace}`);
  }
  const cm = byKind("ConfigMap")[0], secret = byKind("Secret")[0], svc = byKind("Service")[0];
  const coord = objs.find((o) => o.kind === "Job" && o.metadata.name === `${j.name}-coordinator`);
  const workers = objs.find((o) => o.kind === "Job" && o.metadata.name === `${j.name}-workers`);
  if (!cm || !secret || !svc || !coord || !workers) {
    check(false, `${P} missing objects`);
    return;
  }
  const cfg = cm.data;
  check(cfg.QUEPT_MODEL === j.model && cfg.QUEPT_DATA === j.data && cfg.QUEPT_OUT === j.out,
    `${P} config paths ${cfg.QUEPT_MODEL} ${cfg.QUEPT_DATA} ${cfg.QUEPT_OUT}`);
  check(cfg.QUEPT_CHECKPOINT === `/data/jobs/${j.name}/checkpoint`, `${P} checkpoint ${cfg.QUEPT_CHECKPOINT}`);
  check(cfg.QUEPT_WORKERS === String(j.workers) && cfg.QUEPT_SHARDS === (j.shards ? String(j.shards) : ""),
    `${P} workers/shards ${cfg.QUEPT_WORKERS}/${cfg.QUEPT_SHARDS}`);
  check(cfg.QUEPT_CURVE === (j.curve ? "1" : "0"), `${P} QUEPT_CURVE ${cfg.QUEPT_CURVE}`);
  const calib = (cfg.QUEPT_CALIB_ARGS || "").split("\n").filter(Boolean);
  check(JSON.stringify(calib) === JSON.stringify(j.calib), `${P} calibration flags ${JSON.stringify(calib)}`);
  const workPort = svc.spec.ports.find((p) => p.name === "work");
  check(cfg.QUEPT_CONNECT === `tcp://${svc.metadata.name}:${workPort?.port}`, `${P} QUEPT_CONNECT ${cfg.QUEPT_CONNECT} is not the Service`);
  check(svc.spec.clusterIP === "None", `${P} the Service is not headless`);

  // the Jobs
  const cpod = coord.spec.template, wpod = workers.spec.template;
  check(!coord.spec.completionMode || coord.spec.completionMode === "NonIndexed", `${P} coordinator is not one plain pod`);
  check((coord.spec.completions ?? 1) === 1 && (coord.spec.parallelism ?? 1) === 1, `${P} coordinator completions/parallelism`);
  check(coord.spec.backoffLimit >= 3, `${P} coordinator backoffLimit ${coord.spec.backoffLimit}: too few restarts to resume`);
  check(workers.spec.completionMode === "Indexed", `${P} workers are not an Indexed Job`);
  check(workers.spec.parallelism === j.workers && workers.spec.completions === j.workers,
    `${P} workers parallelism ${workers.spec.parallelism} completions ${workers.spec.completions}, want ${j.workers}`);
  check(workers.spec.backoffLimit >= j.workers, `${P} workers backoffLimit ${workers.spec.backoffLimit}`);
  for (const [job, cname] of [[coord, "coordinator"], [workers, "worker"]]) {
    const spec = job.spec.template.spec;
    check(spec.restartPolicy === "Never", `${P} ${cname} restartPolicy ${spec.restartPolicy} (podFailurePolicy needs Never)`);
    const rules = job.spec.podFailurePolicy?.rules || [];
    check(rules.some((r) => r.action === "FailJob" && r.onExitCodes?.operator === "In" && r.onExitCodes.values.includes(2) && r.onExitCodes.containerName === cname),
      `${P} ${cname}: no FailJob rule for exit status 2 (usage error)`);
    check(rules.some((r) => r.action === "Ignore" && r.onPodConditions?.some((c) => c.type === "DisruptionTarget")),
      `${P} ${cname}: disruptions (DisruptionTarget) are not ignored`);
    check(spec.automountServiceAccountToken === false, `${P} ${cname}: mounts a service account token`);
    check(spec.securityContext?.runAsNonRoot === true && spec.securityContext.runAsUser === 10001, `${P} ${cname}: not non-root 10001`);
    check(spec.containers.length === 1, `${P} ${cname}: one container`);
    const c = spec.containers[0];
    check(c.name === cname, `${P} container name ${c.name}`);
    check(c.image === j.imageOut, `${P} ${cname} image ${c.image}, want ${j.imageOut}`);
    check(JSON.stringify(c.command) === '["/usr/local/bin/quept-entrypoint"]' && JSON.stringify(c.args) === JSON.stringify([cname]),
      `${P} ${cname} command ${c.command} ${c.args}`);
    check(c.envFrom?.some((e) => e.configMapRef?.name === cm.metadata.name), `${P} ${cname} does not read the ConfigMap ${cm.metadata.name}`);
    const [cpu, mem] = cname === "worker" ? j.cpu : j.coord;
    check(String(c.resources?.requests?.cpu) === cpu && String(c.resources?.limits?.cpu) === cpu &&
      c.resources?.requests?.memory === mem && c.resources?.limits?.memory === mem,
      `${P} ${cname} resources ${JSON.stringify(c.resources)}, want ${cpu}/${mem}`);
    const sc = c.securityContext || {};
    check(sc.allowPrivilegeEscalation === false && sc.readOnlyRootFilesystem === true && sc.capabilities?.drop?.includes("ALL"),
      `${P} ${cname} container securityContext`);
    const vols = Object.fromEntries(spec.volumes.map((v) => [v.name, v]));
    const dataMount = c.volumeMounts.find((m) => vols[m.name]?.persistentVolumeClaim);
    check(dataMount?.mountPath === "/data" && vols[dataMount.name].persistentVolumeClaim.claimName === j.pvc,
      `${P} ${cname}: the data volume (claim ${j.pvc}) is not mounted at /data`);
    for (const v of spec.volumes.filter((x) => x.secret)) {
      check(v.secret.secretName === secret.metadata.name, `${P} ${cname} secret ${v.secret.secretName}`);
      for (const it of v.secret.items || []) check(it.key in secret.data, `${P} ${cname}: secret item ${it.key} missing`);
    }
    for (const m of c.volumeMounts) check(vols[m.name], `${P} ${cname}: mount ${m.name} has no volume`);
    if (cname === "worker") {
      const keys = spec.volumes.find((x) => x.secret);
      const items = (keys?.secret.items || []).map((i) => `${i.key}->${i.path}`).sort().join(",");
      check(items === "client.key->client.key,server.pub->server.pub", `${P} worker key items ${items}: workers must not get the server's secret key`);
      check(dataMount?.readOnly === true, `${P} workers mount the data volume read-only`);
    } else {
      const keys = spec.volumes.find((x) => x.secret);
      const items = (keys?.secret.items || []).map((i) => `${i.key}->${i.path}`).sort().join(",");
      check(items === "authorized->authorized,server.key->server.key", `${P} coordinator key items ${items}`);
    }
  }
  // the keys: server.pub is server.key's public line, authorized the client's
  const sk = b64(secret.data["server.key"]).split("\n"), ck = b64(secret.data["client.key"]).split("\n");
  check(sk[0].length === 40 && sk[1].length === 40 && ck[0].length === 40 && ck[1].length === 40, `${P} key files are not two Z85 lines`);
  check(b64(secret.data["server.pub"]).trim() === sk[0], `${P} server.pub is not server.key's public key`);
  check(b64(secret.data["authorized"]).trim() === ck[0], `${P} authorized is not the client's public key`);
  check(sk[0] !== ck[0], `${P} server and client keys are the same`);

  // selectors: the Service and the coordinator NetworkPolicy pick the
  // coordinator pod only; its ingress admits this job's pods
  const cl = cpod.metadata.labels, wl = wpod.metadata.labels;
  check(matches(svc.spec.selector, cl) && !matches(svc.spec.selector, wl), `${P} the Service selector does not pick exactly the coordinator`);
  const port = (name) => cpod.spec.containers[0].ports?.find((p) => p.name === name);
  for (const p of svc.spec.ports) check(port(p.targetPort)?.containerPort === p.port, `${P} Service port ${p.name} -> ${p.targetPort}`);
  const npC = objs.find((o) => o.kind === "NetworkPolicy" && matches(o.spec.podSelector.matchLabels, cl));
  const npW = objs.find((o) => o.kind === "NetworkPolicy" && matches(o.spec.podSelector.matchLabels, wl));
  check(npC && !matches(npC.spec.podSelector.matchLabels, wl), `${P} no NetworkPolicy for the coordinator alone`);
  if (npC) {
    check(npC.spec.policyTypes.includes("Ingress"), `${P} coordinator policy is not an Ingress policy`);
    const froms = (npC.spec.ingress || []).flatMap((r) => r.from || []);
    check(froms.length > 0 && froms.every((f) => f.podSelector && !f.namespaceSelector && !f.ipBlock),
      `${P} coordinator ingress must come from pod selectors in the namespace only`);
    check(froms.some((f) => matches(f.podSelector.matchLabels, wl)), `${P} workers cannot reach the coordinator`);
    check(froms.every((f) => f.podSelector.matchLabels?.["app.kubernetes.io/instance"] === j.name),
      `${P} coordinator ingress is not limited to the job's pods`);
    const ports = (npC.spec.ingress || []).flatMap((r) => (r.ports || []).map((p) => p.port)).sort();
    check(JSON.stringify(ports) === "[5555,5556]", `${P} coordinator ingress ports ${ports}`);
  }
  check(npW && npW !== npC && (npW.spec.ingress || []).length === 0 && npW.spec.policyTypes.includes("Ingress"),
    `${P} workers are not closed to ingress`);
}

console.log(`k8s manifests: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
