// emulate.mjs — the ctest `k8s_emulate`: a quept job on Kubernetes, without
// Kubernetes.
//   node tests/k8s_check/emulate.mjs QUEPT_BIN REPO_DIR SHARED_DIR
//
// Renders a job with `quept submit --dry-run` and `kubectl kustomize`, then
// plays kubelet and Job controller with local processes:
//  - every container runs its own command, args and environment from the
//    rendered manifests (envFrom the ConfigMap, env values, resourceFieldRef,
//    fieldRef, JOB_COMPLETION_INDEX per worker index), the command mapped to
//    the file the Dockerfile installs there (deploy/entrypoint.sh), with the
//    image's /usr/local/bin (quept -> QUEPT_BIN) first on PATH;
//  - volumes map to directories of a temp dir: the PersistentVolumeClaim to
//    a shared "volume" (model and calibration data copied in), the Secret and
//    ConfigMap volumes to their items (modes as rendered), emptyDir to a
//    fresh dir; a path under a mount point in args or env is rewritten to
//    the mapped directory (the one liberty taken with the manifests);
//  - each Service name resolves to loopback: in a private user, mount and
//    network namespace (unshare -rmn) a bind-mounted /etc/hosts lists it, so
//    the ports are exactly the rendered ones; where unshare is unavailable the
//    host name in env values is rewritten to 127.0.0.1 instead;
//  - a failed pod is replaced as the Job controller does it: its
//    podFailurePolicy (FailJob / Ignore / Count on exit codes), then
//    backoffLimit.
// Scenario 1: the job runs to completion; the artifact passes `quept
// inspect` (checksums ok, the bit list asked for); while it runs, `quept
// status` answers through the Service name and a worker with the job's
// server key but a key pair of its own is refused (CURVE is on); a worker
// pod started after the job is done exits 0 at once. Scenario 2: the same job
// from scratch, the coordinator process SIGKILLed once after its first
// journaled block (exit 137, counted, replaced): the new coordinator pod
// must resume (its log names the blocks already journaled and it does not
// compute them again), the workers reconnect, and the artifact is
// byte-identical to scenario 1's.
//
// Exit 77 (skip) with a message when `quept coordinator` is missing from the
// build, when kubectl is missing, or when ../shared's model is absent.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync,
  symlinkSync, writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { findKubectl, kustomize, loadYaml, skip } from "./lib.mjs";

const [queptArg, repoArg, sharedArg] = process.argv.slice(2);
if (!queptArg || !repoArg || !sharedArg) {
  console.error("usage: node emulate.mjs QUEPT_BIN REPO_DIR SHARED_DIR");
  process.exit(2);
}
const quept = resolve(queptArg), repo = resolve(repoArg), shared = resolve(sharedArg);
const INNER = process.env.QUEPT_EMU_INNER === "1";
const T0 = Date.now();
const elapsed = () => ((Date.now() - T0) / 1000).toFixed(1) + "s";
const say = (msg) => console.log(`[${elapsed()}] ${msg}`);

function fail(msg) {
  console.log(`FAIL: ${msg}`);
  process.exit(1);
}

// ---- prerequisites ----
for (const role of ["coordinator", "worker"]) {
  const r = spawnSync(quept, [role, "--help"], { encoding: "utf8" });
  if (r.status !== 0) {
    if (/unknown command/.test(r.stderr))
      skip(`\`quept ${role}\` is missing from this build (the distributed coordinator and worker, issue 5): the job cannot be emulated`);
    fail(`quept ${role} --help: exit ${r.status}: ${r.stderr}`);
  }
}
const model = join(shared, "models/stories260K.bin");
if (!existsSync(model)) skip(`${model} not found (../shared is not beside the repository)`);
const YAML = await loadYaml();
const kubectl = findKubectl();
if (!kubectl || !kubectl.ok) skip("kubectl with kustomize v4+ not found: the manifests are rendered with `kubectl kustomize`");

// ---- a private network and mount namespace, when we can have one ----
if (!INNER && process.env.QUEPT_EMU_NO_UNSHARE !== "1") {
  const t = spawnSync("unshare", ["-rmn", "sh", "-c", "ip link set lo up && mount --bind /etc/hosts /etc/hosts"]);
  if (t.status === 0) {
    const r = spawnSync("unshare", ["-rmn", process.execPath, ...process.argv.slice(1)],
      { stdio: "inherit", env: { ...process.env, QUEPT_EMU_INNER: "1" } });
    process.exit(r.status ?? 1);
  }
  console.log("note: no private namespace (unshare -rmn, ip): Service names are rewritten to 127.0.0.1 and the host's ports are used");
}
if (INNER && spawnSync("ip", ["link", "set", "lo", "up"]).status !== 0) fail("cannot bring up loopback in the namespace");

const tmp = mkdtempSync(join(tmpdir(), "quept-emu-"));
const procs = new Set();
function cleanup() {
  for (const p of procs) try { process.kill(-p.pid, "SIGKILL"); } catch { /* gone */ }
  if (process.env.QUEPT_EMU_KEEP !== "1") rmSync(tmp, { recursive: true, force: true });
  else console.log(`kept ${tmp}`);
}
process.on("exit", cleanup);
for (const s of ["SIGINT", "SIGTERM"]) process.on(s, () => process.exit(1));

// ---- the job, rendered as a user would submit it ----
const NAME = "emu", BITS = "2,4,8";
const CALIB = ["--epochs", "4", "--bits", BITS, "--seed", "3", "--batch", "2", "--quiet"];
const overlay = join(tmp, "overlay");
{
  const r = spawnSync(quept, ["submit", "--dry-run", "--name", NAME, "--image", "quept:emulated",
    "--model", "/data/models/stories260K.bin", "--data", "/data/calib/calib.qtok", "--workers", "2",
    "--worker-cpu", "1", "--worker-memory", "1Gi", "--coordinator-cpu", "1", "--coordinator-memory", "1Gi",
    "--max-lost", "60", "--out-dir", overlay, ...CALIB], { encoding: "utf8" });
  if (r.status !== 0) fail(`quept submit --dry-run: ${r.stderr}`);
}
const objs = kustomize(kubectl, overlay, YAML);
const volumeObjs = kustomize(kubectl, join(repo, "k8s/volume"), YAML);
const byKind = (k) => objs.filter((o) => o.kind === k);
const configMaps = new Map(byKind("ConfigMap").map((o) => [o.metadata.name, o.data || {}]));
const secrets = new Map(byKind("Secret").map((o) => [o.metadata.name,
  Object.fromEntries(Object.entries(o.data || {}).map(([k, v]) => [k, Buffer.from(String(v).replace(/\n/g, ""), "base64")]))]));
const claims = volumeObjs.filter((o) => o.kind === "PersistentVolumeClaim").map((o) => o.metadata.name);
const services = byKind("Service");
const jobs = byKind("Job");
if (jobs.length !== 2) fail(`expected 2 Jobs, rendered ${jobs.length}`);
const namespace = objs[0].metadata.namespace || "default";

// ---- the image, as deploy/Dockerfile builds it ----
const bin = join(tmp, "image-bin");
mkdirSync(bin);
const imageFiles = new Map(); // path in the image -> file here
{
  const stages = readFileSync(join(repo, "deploy/Dockerfile"), "utf8").split(/^FROM /m);
  const runtime = stages[stages.length - 1];
  for (const m of runtime.matchAll(/^COPY\s+((?:--\S+\s+)*)(\S+)\s+(\S+)\s*$/gm)) {
    const [, flags, src, dst] = m;
    const local = /--from=/.test(flags) ? (basename(src) === "quept" ? quept : null) : join(repo, src);
    if (!local || !existsSync(local)) fail(`Dockerfile: cannot map COPY ${flags}${src} ${dst} to a file here`);
    imageFiles.set(dst, local);
    if (dst.startsWith("/usr/local/bin/")) symlinkSync(local, join(bin, basename(dst)));
  }
  if (!imageFiles.has("/usr/local/bin/quept")) fail("Dockerfile: the runtime stage does not install /usr/local/bin/quept");
}
const IMAGE_PATH = `${bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

// the Service names, resolving to loopback
const hostNames = services.flatMap((s) => {
  const n = s.metadata.name;
  return [n, `${n}.${namespace}`, `${n}.${namespace}.svc`, `${n}.${namespace}.svc.cluster.local`];
});
if (INNER) {
  const hosts = join(tmp, "hosts");
  writeFileSync(hosts, `127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.0.1\t${hostNames.join(" ")}\n`);
  if (spawnSync("mount", ["--bind", hosts, "/etc/hosts"]).status !== 0) fail("cannot bind-mount /etc/hosts in the namespace");
  const g = spawnSync("getent", ["hosts", services[0].metadata.name], { encoding: "utf8" });
  if (!/^127\.0\.0\.1\s/.test(g.stdout)) fail(`${services[0].metadata.name} does not resolve to loopback: ${g.stdout}`);
}

// ---- quantities ----
function cpuCores(q) {
  const s = String(q);
  return s.endsWith("m") ? Number(s.slice(0, -1)) / 1000 : Number(s);
}
function memBytes(q) {
  const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  const mul = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Math.round(Number(m[1]) * (m[2] ? mul[m[2]] : 1));
}

// ---- kubelet: one pod, one process per container ----
let podSeq = 0;
function startPod(job, index, root, state) {
  const tpl = job.spec.template;
  const podName = `${job.metadata.name}-${index ?? ""}${index === null ? "" : "-"}${(++podSeq).toString(36).padStart(5, "x")}`;
  const podDir = join(root, "pods", podName);
  mkdirSync(podDir, { recursive: true });
  if (tpl.spec.containers.length !== 1) fail(`${job.metadata.name}: one container per pod expected`);
  const c = tpl.spec.containers[0];
  if (tpl.spec.initContainers?.length) fail(`${job.metadata.name}: init containers are not emulated`);

  // volumes
  const volDirs = new Map();
  for (const v of tpl.spec.volumes || []) {
    let dir;
    if (v.persistentVolumeClaim) {
      if (!claims.includes(v.persistentVolumeClaim.claimName))
        fail(`${podName}: claim ${v.persistentVolumeClaim.claimName} is not in k8s/volume: the pod would stay Pending`);
      dir = join(root, "pv", v.persistentVolumeClaim.claimName);
    } else if (v.secret || v.configMap) {
      const src = v.secret ? secrets.get(v.secret.secretName) : configMaps.get(v.configMap.name);
      const what = v.secret ? `Secret ${v.secret.secretName}` : `ConfigMap ${v.configMap.name}`;
      if (!src) fail(`${podName}: ${what} does not exist: the pod would not start`);
      dir = join(podDir, "volumes", v.name);
      mkdirSync(dir, { recursive: true });
      const items = (v.secret || v.configMap).items || Object.keys(src).map((k) => ({ key: k, path: k }));
      const mode = (v.secret || v.configMap).defaultMode ?? 0o644;
      for (const it of items) {
        if (!(it.key in src)) fail(`${podName}: ${what} has no key ${it.key}`);
        const f = join(dir, it.path);
        writeFileSync(f, src[it.key]);
        chmodSync(f, it.mode ?? mode);
      }
    } else if (v.emptyDir) {
      dir = join(podDir, "volumes", v.name);
      mkdirSync(dir, { recursive: true });
    } else fail(`${podName}: volume ${v.name}: kind not emulated`);
    volDirs.set(v.name, dir);
  }
  const mounts = (c.volumeMounts || []).map((m) => {
    if (m.subPath) fail(`${podName}: subPath mounts are not emulated`);
    if (!volDirs.has(m.name)) fail(`${podName}: mount ${m.name} has no volume`);
    return { path: m.mountPath.replace(/\/$/, ""), dir: volDirs.get(m.name), readOnly: !!m.readOnly };
  }).sort((a, b) => b.path.length - a.path.length);
  const mapPath = (s) => {
    for (const m of mounts) if (s === m.path || s.startsWith(m.path + "/")) return m.dir + s.slice(m.path.length);
    return s;
  };

  // environment: the image's, Kubernetes', envFrom, then env
  const env = { PATH: IMAGE_PATH, HOSTNAME: podName };
  for (const k of ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"]) if (process.env[k]) env[k] = process.env[k]; // this machine's OpenBLAS quirks
  if (index !== null) env.JOB_COMPLETION_INDEX = String(index);
  for (const ef of c.envFrom || []) {
    const src = ef.configMapRef ? configMaps.get(ef.configMapRef.name) : ef.secretRef ? secrets.get(ef.secretRef.name) : null;
    if (!src) fail(`${podName}: envFrom ${JSON.stringify(ef)} names nothing rendered`);
    for (const [k, v] of Object.entries(src)) env[(ef.prefix || "") + k] = String(v);
  }
  const expand = (s) => String(s).replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n) => (m === "$$" ? "$" : n in env ? env[n] : m));
  for (const e of c.env || []) {
    if ("value" in e) env[e.name] = expand(e.value);
    else if (e.valueFrom?.configMapKeyRef) env[e.name] = String(configMaps.get(e.valueFrom.configMapKeyRef.name)?.[e.valueFrom.configMapKeyRef.key] ?? fail(`${podName}: ${e.name}: no such ConfigMap key`));
    else if (e.valueFrom?.secretKeyRef) env[e.name] = String(secrets.get(e.valueFrom.secretKeyRef.name)?.[e.valueFrom.secretKeyRef.key] ?? fail(`${podName}: ${e.name}: no such Secret key`));
    else if (e.valueFrom?.resourceFieldRef) {
      const rf = e.valueFrom.resourceFieldRef;
      const [kind, res] = rf.resource.split(".");
      const q = c.resources?.[kind]?.[res];
      if (q === undefined) fail(`${podName}: ${e.name}: ${rf.resource} is not set`);
      env[e.name] = String(res === "cpu" ? Math.ceil(cpuCores(q) / cpuCores(rf.divisor ?? 1)) : Math.ceil(memBytes(q) / memBytes(rf.divisor ?? 1)));
    } else if (e.valueFrom?.fieldRef) {
      const f = e.valueFrom.fieldRef.fieldPath;
      const labels = { ...tpl.metadata.labels, ...(index !== null ? { "batch.kubernetes.io/job-completion-index": String(index) } : {}) };
      const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(f);
      env[e.name] = f === "metadata.name" ? podName : f === "metadata.namespace" ? namespace
        : f === "status.podIP" ? "127.0.0.1" : m ? labels[m[2]] ?? "" : fail(`${podName}: fieldRef ${f} not emulated`);
    } else fail(`${podName}: env ${e.name}: source not emulated`);
  }
  for (const k of Object.keys(env)) {
    if (k === "PATH") continue;
    env[k] = mapPath(env[k]);
    if (!INNER) for (const h of hostNames) env[k] = env[k].split(`//${h}:`).join("//127.0.0.1:");
  }

  // command and args, $(VAR) expanded as the kubelet does
  const command = (c.command || []).map(expand), args = (c.args || []).map(expand);
  if (!command.length) fail(`${podName}: no command (the image's ENTRYPOINT is not emulated)`);
  const exe = imageFiles.get(command[0]);
  if (!exe) fail(`${podName}: ${command[0]} is not a file the Dockerfile installs`);
  const argv = [...command.slice(1), ...args].map(mapPath);
  say(`start ${podName}: ${command[0]} ${argv.join(" ")}${index !== null ? ` (JOB_COMPLETION_INDEX=${index})` : ""}`);
  const logFile = join(podDir, "log");
  const out = [];
  const p = spawn(exe, argv, { env, cwd: volDirs.get("tmp") || podDir, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  procs.add(p);
  p.stdout.on("data", (d) => out.push(d));
  p.stderr.on("data", (d) => out.push(d));
  const pod = { name: podName, job: job.metadata.name, index, proc: p, env, log: () => Buffer.concat(out).toString() };
  pod.exited = new Promise((res) => p.on("exit", (code, sig) => {
    procs.delete(p);
    writeFileSync(logFile, pod.log());
    res(code ?? 128 + ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 }[sig] || 1));
  }));
  state.pods.push(pod);
  return pod;
}

// ---- the Job controller ----
function podFailureAction(job, cname, code) {
  for (const r of job.spec.podFailurePolicy?.rules || []) {
    const oc = r.onExitCodes;
    if (oc && (!oc.containerName || oc.containerName === cname)) {
      const hit = oc.values.includes(code);
      if (oc.operator === "In" ? hit : !hit) return r.action;
    }
    // onPodConditions (DisruptionTarget): no node drains or preemption here
  }
  return "Count";
}

function runJob(job, root, state) {
  const name = job.metadata.name, spec = job.spec;
  const indexed = spec.completionMode === "Indexed";
  const completions = spec.completions ?? 1, parallelism = spec.parallelism ?? 1, backoff = spec.backoffLimit ?? 6;
  if (!indexed && completions !== 1) fail(`${name}: only one-pod NonIndexed Jobs are emulated`);
  if (parallelism < completions) fail(`${name}: parallelism ${parallelism} < completions ${completions}: not emulated`);
  const cname = spec.template.spec.containers[0].name;
  let failures = 0;
  const record = state.jobs[name] = { failures: 0, podsStarted: 0 };
  return new Promise((res) => {
    let finished = false, done = 0;
    const finish = (result) => {
      if (finished) return;
      finished = true;
      record.result = result;
      if (result !== "Complete") for (const p of state.pods) if (p.job === name) try { process.kill(-p.proc.pid, "SIGKILL"); } catch { /* gone */ }
      res(result);
    };
    const run = (index) => {
      if (finished || state.stopped) return;
      const pod = startPod(job, indexed ? index : null, root, state);
      record.podsStarted++;
      pod.exited.then((code) => {
        pod.code = code;
        if (finished) return;
        if (code === 0) {
          if (++done === completions) finish("Complete");
          return;
        }
        const action = podFailureAction(job, cname, code);
        say(`${pod.name} exited ${code}: podFailurePolicy ${action}`);
        if (action === "FailJob") return finish(`Failed (podFailurePolicy: exit ${code})`);
        if (action !== "Ignore") record.failures = ++failures;
        if (failures > backoff) return finish(`Failed (backoffLimit ${backoff})`);
        setTimeout(() => run(index), 200); // the controller's back-off, shortened
      });
    };
    for (let i = 0; i < completions; i++) run(i);
  });
}

// ---- one run of the whole job on a fresh volume ----
// A process run beside the pods (not from the manifests), resolving the
// Service the way the pods do; resolves to { code, out }.
function sideProcess(args, env = {}) {
  return new Promise((res) => {
    const p = spawn(quept, args, { env: { ...process.env, ...env }, detached: true });
    procs.add(p);
    const out = [];
    p.stdout.on("data", (d) => out.push(d));
    p.stderr.on("data", (d) => out.push(d));
    p.on("exit", (code) => {
      procs.delete(p);
      res({ code, out: Buffer.concat(out).toString() });
    });
    res.proc = p;
  });
}
const svcHost = (port) => {
  const s = services[0];
  const p = s.spec.ports.find((x) => x.name === port);
  return `tcp://${INNER ? s.metadata.name : "127.0.0.1"}:${p.port}`;
};

async function scenario(label, { killCoordinatorAfterBlocks = 0, timeoutS = 150, probes = false } = {}) {
  const root = join(tmp, label);
  const pv = join(root, "pv");
  for (const c of claims) mkdirSync(join(pv, c), { recursive: true });
  mkdirSync(join(pv, "quept-data/models"), { recursive: true });
  mkdirSync(join(pv, "quept-data/calib"), { recursive: true });
  copyFileSync(model, join(pv, "quept-data/models/stories260K.bin"));
  copyFileSync(join(tmp, "calib.qtok"), join(pv, "quept-data/calib/calib.qtok"));
  const state = { pods: [], jobs: {} };
  say(`${label}: applying ${jobs.map((j) => j.metadata.name).join(", ")}`);
  const cm = configMaps.get([...configMaps.keys()][0]);
  const ckpt = join(pv, "quept-data", cm.QUEPT_CHECKPOINT.replace(/^\/data\//, ""));
  const coordJob = jobs.find((j) => j.spec.completionMode !== "Indexed");
  let killed = null;
  const watcher = killCoordinatorAfterBlocks > 0 && setInterval(() => {
    if (killed) return;
    let files = [];
    try { files = readdirSync(ckpt); } catch { return; }
    const blocks = files.filter((f) => /^block-\d+\.qckp$/.test(f));
    if (blocks.length >= killCoordinatorAfterBlocks && !files.includes("done.json")) {
      const pod = state.pods.find((p) => p.job === coordJob.metadata.name && p.code === undefined);
      if (!pod) return;
      killed = { pod, blocks: blocks.map((b) => Number(b.match(/\d+/)[0])).sort((a, b) => a - b) };
      say(`${label}: SIGKILL ${pod.name} (journaled: blocks ${killed.blocks.join(", ")})`);
      process.kill(-pod.proc.pid, "SIGKILL");
    }
  }, 20);
  const timer = new Promise((res) => setTimeout(() => res("timeout"), timeoutS * 1000));
  const running = Promise.all(jobs.map((j) => runJob(j, root, state)));
  let statusProbe = null, intruder = null;
  if (probes) {
    // once the coordinator listens: `quept status` through the Service, and
    // a worker with the job's server key but a key pair of its own (CURVE
    // must refuse it: only the Secret's client key is authorised)
    while (!existsSync(join(ckpt, "coordinator.json")) && Date.now() - T0 < timeoutS * 1000) await new Promise((r) => setTimeout(r, 20));
    // the status socket is CURVE-authenticated too: the client uses the Secret's worker keys
    const sk = join(root, "status-keys"), secret = secrets.values().next().value;
    mkdirSync(sk, { recursive: true });
    for (const f of ["server.pub", "client.key"]) writeFileSync(join(sk, f), secret[f], { mode: 0o600 });
    statusProbe = await sideProcess(["status", "--connect", svcHost("status"), "--json", "--timeout", "10", "--curve-keys", sk]);
    const keys = join(root, "intruder-keys");
    spawnSync(quept, ["keygen", keys]);
    writeFileSync(join(keys, "server.pub"), secrets.values().next().value["server.pub"]);
    intruder = sideProcess(["worker", "--connect", svcHost("work"), "--name", "intruder", "--curve-keys", keys, "--max-lost", "30"]);
  }
  const results = await Promise.race([running, timer]);
  let intruderOut = null;
  if (intruder) {
    for (const p of procs) if (p.spawnargs.includes("intruder")) try { process.kill(-p.pid, "SIGKILL"); } catch { /* gone */ }
    intruderOut = (await intruder).out;
  }
  if (watcher) clearInterval(watcher);
  state.stopped = true;
  const dump = () => {
    for (const p of state.pods) console.log(`---- ${p.name} (exit ${p.code ?? "running"}) ----\n${p.log().slice(-3000)}`);
  };
  if (results === "timeout") {
    dump();
    fail(`${label}: the job did not finish in ${timeoutS}s`);
  }
  for (const [i, r] of results.entries()) if (r !== "Complete") {
    dump();
    fail(`${label}: Job ${jobs[i].metadata.name}: ${r}`);
  }
  say(`${label}: both Jobs Complete (${state.pods.length} pods)`);
  const art = join(pv, "quept-data", cm.QUEPT_OUT.replace(/^\/data\//, ""));
  if (!existsSync(art)) fail(`${label}: no artifact at ${cm.QUEPT_OUT}`);
  const insp = spawnSync(quept, ["inspect", art, "--json"], { encoding: "utf8" });
  let info = null;
  try { info = JSON.parse(insp.stdout); } catch { /* reported below */ }
  if (insp.status !== 0 || info?.checksums?.ok !== true)
    fail(`${label}: quept inspect ${cm.QUEPT_OUT}: exit ${insp.status}, checksums ${JSON.stringify(info?.checksums)}: ${insp.stderr}`);
  if (JSON.stringify(info.bits) !== JSON.stringify(BITS.split(",").map(Number)))
    fail(`${label}: artifact bits ${JSON.stringify(info.bits)}, submitted --bits ${BITS}`);
  return { state, root, killed, statusProbe, intruderOut, sha: createHash("sha256").update(readFileSync(art)).digest("hex"), coordJob };
}

// calibration data: sampled from the model itself (its tokenizer is not available)
{
  const r = spawnSync(quept, ["sample", "--model", model, "--n", "16", "--len", "64", "--seed", "1", "--out", join(tmp, "calib.qtok")],
    { encoding: "utf8", env: { ...process.env, OPENBLAS_NUM_THREADS: "1" } });
  if (r.status !== 0) fail(`quept sample: ${r.stderr}`);
}

let passed = 0;
const ok = (msg) => {
  passed++;
  say(`ok: ${msg}`);
};

const one = await scenario("run", { probes: true });
ok(`job ran to completion: artifact ${one.sha.slice(0, 12)}, checksums ok, bits ${BITS}`);
{
  let st = null;
  try { st = JSON.parse(one.statusProbe.out.trim().split("\n").find((l) => l.startsWith("{"))); } catch { /* below */ }
  if (one.statusProbe.code !== 0 || !st || st.blocks_total !== 5)
    fail(`quept status --connect ${svcHost("status")}: exit ${one.statusProbe.code}: ${one.statusProbe.out}`);
  ok(`quept status through the Service (${svcHost("status")}): state ${st.state}, ${st.blocks_done}/${st.blocks_total} blocks`);
  const coordLog = one.state.pods.find((p) => p.index === null).log();
  if (!/unauthori[sz]ed CURVE key was refused/.test(coordLog) || /worker intruder registered/.test(coordLog))
    fail(`a worker with an unauthorised CURVE key was not refused:\n${coordLog.slice(0, 3000)}\n---- intruder ----\n${one.intruderOut}`);
  ok("CURVE is on: a worker with the server's public key but its own key pair was refused");
}
{
  const idx = one.state.pods.filter((p) => p.index !== null).map((p) => p.env.JOB_COMPLETION_INDEX).sort().join(",");
  if (idx !== "0,1") fail(`run: worker pods ran with JOB_COMPLETION_INDEX ${idx}, expected 0,1`);
  ok("each worker pod ran with its own JOB_COMPLETION_INDEX (0, 1)");
}

{
  // a worker pod that comes up after the job is done (a late replacement)
  const late = startPod(jobs.find((j) => j.spec.completionMode === "Indexed"), 0, one.root, one.state);
  const t = Date.now();
  const code = await Promise.race([late.exited, new Promise((r) => setTimeout(() => r("timeout"), 20000))]);
  if (code !== 0) fail(`a worker pod started after the job was done: exit ${code}: ${late.log()}`);
  ok(`a worker pod started after the job was done exits 0 at once (${Date.now() - t} ms)`);
}

const two = await scenario("kill", { killCoordinatorAfterBlocks: 1 });
if (!two.killed) fail("kill: the job finished before the coordinator could be killed (no journaled block seen)");
const coordPods = two.state.pods.filter((p) => p.job === two.coordJob.metadata.name);
if (coordPods.length !== 2 || coordPods[0].code !== 137 || coordPods[1].code !== 0)
  fail(`kill: coordinator pods ${coordPods.map((p) => `${p.name}:${p.code}`).join(", ")}: expected one killed (137) and one replacement (0)`);
if (two.state.jobs[two.coordJob.metadata.name].failures !== 1) fail("kill: the killed pod was not counted against backoffLimit");
ok(`coordinator killed (exit 137, counted against backoffLimit ${two.coordJob.spec.backoffLimit}) and replaced by the Job controller`);
const second = coordPods[1].log();
const m = /(\d+) journaled already/.exec(second);
if (!m || Number(m[1]) < two.killed.blocks.length)
  fail(`kill: the new coordinator did not resume from the journal (expected "N journaled already" with N >= ${two.killed.blocks.length}):\n${second.slice(0, 2000)}`);
const redone = [...second.matchAll(/block (\d+) journaled/g)].map((x) => Number(x[1])).filter((b) => two.killed.blocks.includes(b));
if (redone.length) fail(`kill: the new coordinator computed block(s) ${redone.join(", ")} again`);
ok(`the new coordinator resumed: ${m[1]} block(s) journaled already, none computed again`);
const workerPods = two.state.pods.filter((p) => p.job !== two.coordJob.metadata.name);
if (workerPods.some((p) => p.code !== 0)) fail(`kill: worker pods ${workerPods.map((p) => `${p.name}:${p.code}`).join(", ")}`);
ok(`the workers reconnected and finished (${workerPods.length} pods, all exit 0)`);
if (two.sha !== one.sha) fail(`kill: the resumed artifact differs from the uninterrupted one (${two.sha} vs ${one.sha})`);
ok("the resumed job's artifact is byte-identical to the uninterrupted one");

console.log(`k8s emulation: ${passed} passed, 0 failed`);
process.exit(0);
