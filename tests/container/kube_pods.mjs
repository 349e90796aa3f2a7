// kube_pods.mjs — turns the manifests `quept submit` renders (after `kubectl
// kustomize`) into what `podman kube play` can run: the ConfigMap as it is, and each Job's pod template as Pods, the way the Job
// controller would create them — the coordinator Job's one pod under the
// Service's name (the workers connect to it by that name), and one pod per
// index of the Indexed worker Job with JOB_COMPLETION_INDEX set (Kubernetes
// injects it), and this environment's OPENBLAS_* variables the manifests do
// not set themselves (the same OpenBLAS kernels, so the bytes compare with a
// local run: the test's one liberty with the job). The Service and the NetworkPolicies have
// no podman counterpart and are left out (docs/kubernetes.md says so).
// podman 4.3 (Debian 12) crashes on a pod's secret volume (a nil secrets
// manager in its VolumeFromSecret), so each secret volume becomes a hostPath
// directory under SECRET_DIR holding exactly the Secret's items, with the
// volume's defaultMode and the pod's fsGroup, as the kubelet would write them.
//   node kube_pods.mjs RENDERED.yaml SECRET_DIR > PODS.yaml
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "../k8s_check/package.json"));
const YAML = require("yaml");

const docs = YAML.parseAllDocuments(readFileSync(process.argv[2], "utf8")).map((d) => d.toJS());
const out = [];
const fail = (msg) => { console.error(`kube_pods: ${msg}`); process.exit(1); };

const secretDir = process.argv[3];
if (!secretDir) fail("usage: node kube_pods.mjs RENDERED.yaml SECRET_DIR");

function secretToHostPath(podName, spec, vol) {
  const secret = docs.find((d) => d.kind === "Secret" && d.metadata.name === vol.secret.secretName);
  if (!secret) fail(`pod ${podName}: no Secret ${vol.secret.secretName}`);
  const dir = join(secretDir, `${podName}-${vol.name}`);
  mkdirSync(dir, { recursive: true });
  const gid = spec.securityContext?.fsGroup ?? 0;
  const items = vol.secret.items || Object.keys(secret.data).map((k) => ({ key: k, path: k }));
  for (const it of items) {
    if (!(it.key in secret.data)) fail(`pod ${podName}: Secret has no key ${it.key}`);
    const f = join(dir, it.path);
    writeFileSync(f, Buffer.from(secret.data[it.key], "base64"));
    chmodSync(f, it.mode ?? vol.secret.defaultMode ?? 0o644);
    chownSync(f, 0, gid);
  }
  chmodSync(dir, 0o750);
  chownSync(dir, 0, gid);
  return { name: vol.name, hostPath: { path: dir, type: "Directory" } };
}

function podOf(job, name, extraEnv) {
  const t = job.spec.template;
  const spec = structuredClone(t.spec);
  for (const c of spec.containers) {
    const env = [...(c.env || []), ...extraEnv];
    for (const [k, v] of Object.entries(process.env))
      if (k.startsWith("OPENBLAS_") && !env.some((e) => e.name === k)) env.push({ name: k, value: v });
    c.env = env;
  }
  spec.volumes = spec.volumes.map((v) => (v.secret ? secretToHostPath(name, spec, v) : v));
  return { apiVersion: "v1", kind: "Pod", metadata: { name, labels: t.metadata.labels }, spec };
}

for (const d of docs) {
  if (d.kind === "ConfigMap") out.push(d);
  else if (d.kind === "Job" && d.spec.completionMode === "Indexed") {
    for (let i = 0; i < d.spec.completions; i++)
      out.push(podOf(d, `${d.metadata.name}-${i}`, [{ name: "JOB_COMPLETION_INDEX", value: String(i) }]));
  } else if (d.kind === "Job") {
    const svc = docs.find((s) => s.kind === "Service" &&
      Object.entries(s.spec.selector || {}).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
    if (!svc) fail(`no Service selects the pods of Job ${d.metadata.name}`);
    out.push(podOf(d, svc.metadata.name, []));
  } else if (!["Service", "NetworkPolicy", "Secret"].includes(d.kind)) fail(`unexpected kind ${d.kind}`);
}
process.stdout.write(out.map((d) => YAML.stringify(d)).join("---\n"));
