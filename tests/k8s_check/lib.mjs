// lib.mjs — shared by validate.mjs and emulate.mjs: render a kustomization
// with `kubectl kustomize`, and check each object offline against the
// Kubernetes OpenAPI schemas as the kubernetes-models package compiles them,
// plus a strict pass that the schema validators do not make: every field
// must exist in the API type (what the API server's strict field validation
// refuses, e.g. a misspelt `podFailurePolicies`).
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const HERE = dirname(fileURLToPath(import.meta.url));
export const SKIP = 77;

export function skip(msg) {
  console.log(`SKIP: ${msg}`);
  process.exit(SKIP);
}

// The test's own npm packages (npm ci --prefix tests/k8s_check, as
// deploy/test.sh does); a clear failure when they are missing.
export async function loadYaml() {
  const dir = join(HERE, "node_modules", "yaml");
  if (!existsSync(dir)) {
    console.error("FAIL: tests/k8s_check/node_modules is missing: run `npm ci --prefix tests/k8s_check` (deploy/test.sh does)");
    process.exit(1);
  }
  return (await import("yaml")).default;
}

// kubectl with a kustomize of v4 or later (the `labels` and `patches`
// fields); null when there is none.
export function findKubectl() {
  const kubectl = process.env.KUBECTL || "kubectl";
  const r = spawnSync(kubectl, ["version", "--client", "-o", "json"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return null;
  let v;
  try {
    v = JSON.parse(r.stdout);
  } catch {
    return null;
  }
  const kz = v.kustomizeVersion || "";
  const major = Number((kz.match(/^v?(\d+)/) || [])[1] || 0);
  return { path: kubectl, version: v.clientVersion?.gitVersion, kustomize: kz, ok: major >= 4 };
}

export function kustomize(kubectl, dir, YAML) {
  const r = spawnSync(kubectl.path, ["kustomize", dir], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0)
    throw new Error(`kubectl kustomize ${dir} failed: ${r.error || r.stderr.trim()}`);
  return YAML.parseAllDocuments(r.stdout).map((d) => {
    if (d.errors.length) throw new Error(`${dir}: ${d.errors[0].message}`);
    return d.toJS();
  }).filter((o) => o);
}

// ---- schema validation ----

const require = createRequire(import.meta.url);
const MODELS = join(HERE, "node_modules", "kubernetes-models");

function modelPath(apiVersion, kind) {
  const group = apiVersion.includes("/") ? apiVersion : "v1";
  return join(MODELS, group, kind);
}

// Finds package `name` the way node does, from a file inside node_modules.
function packageDir(name, fromFile) {
  for (let d = dirname(fromFile); ; d = dirname(d)) {
    const c = join(d, "node_modules", name);
    if (existsSync(c)) return c;
    if (dirname(d) === d) return null;
  }
}

const dtsCache = new Map();

// Parses the `export interface` of a kubernetes-models .d.ts file: its
// properties (name -> type text) and the files its imported types live in.
function parseDts(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  let info = null;
  if (existsSync(file)) {
    const src = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    const imports = new Map();
    for (const m of src.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
      let target = null;
      if (m[2].startsWith(".")) target = resolve(dirname(file), m[2].replace(/\.js$/, "")) + ".d.ts";
      else {
        const parts = m[2].split("/");
        const pkg = m[2].startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
        const rest = parts.slice(m[2].startsWith("@") ? 2 : 1).join("/");
        const dir = packageDir(pkg, file);
        if (dir && rest) target = join(dir, rest.replace(/\.js$/, "")) + ".d.ts";
      }
      for (const n of m[1].split(",").map((s) => s.trim().replace(/^type\s+/, "")).filter(Boolean))
        imports.set(n.split(/\s+as\s+/).pop(), target);
    }
    const start = src.search(/export interface \w+(\s+extends\s+[\w, ]+)?\s*\{/);
    if (start >= 0) {
      const props = new Map();
      let i = src.indexOf("{", start) + 1;
      while (i < src.length) {
        while (i < src.length && /\s/.test(src[i])) i++;
        if (src[i] === "}") break;
        const m = /^"([^"]+)"\??:\s*/.exec(src.slice(i)) || /^(\w+)\??:\s*/.exec(src.slice(i));
        if (!m) break;
        i += m[0].length;
        let depth = 0, t = "";
        for (; i < src.length; i++) {
          const c = src[i];
          if (c === "{" || c === "<" || c === "(") depth++;
          if (c === "}" || c === ">" || c === ")") depth--;
          if (c === ";" && depth === 0) break;
          t += c;
        }
        i++;
        props.set(m[1], t.trim());
      }
      info = { props, imports };
    }
  }
  dtsCache.set(file, info);
  return info;
}

function walkType(v, type, ctx, path, errors) {
  if (v === null || v === undefined) return;
  const t = type.trim();
  let m;
  if ((m = /^Array<([\s\S]*)>$/.exec(t))) {
    if (Array.isArray(v)) v.forEach((e, k) => walkType(e, m[1], ctx, `${path}[${k}]`, errors));
    return;
  }
  if ((m = /^\{\s*\[key: string\]:\s*([\s\S]*?);?\s*\}$/.exec(t))) {
    if (typeof v === "object") for (const [k, e] of Object.entries(v)) walkType(e, m[1], ctx, `${path}.${k}`, errors);
    return;
  }
  if (/^\w+$/.test(t) && ctx.imports.has(t)) {
    const file = ctx.imports.get(t);
    const info = file && parseDts(file);
    if (info && typeof v === "object" && !Array.isArray(v)) walkObject(v, info, path, errors);
  }
}

function walkObject(obj, info, path, errors) {
  for (const [k, v] of Object.entries(obj)) {
    if (!info.props.has(k)) {
      errors.push(`${path ? path + "." : ""}${k}: unknown field`);
      continue;
    }
    walkType(v, info.props.get(k), info, path ? `${path}.${k}` : k, errors);
  }
}

// Returns the problems of one object: schema errors and unknown fields.
export function validateObject(obj) {
  const where = `${obj.kind}/${obj.metadata?.name}`;
  if (!obj.apiVersion || !obj.kind) return [`${where}: apiVersion and kind are required`];
  const base = modelPath(obj.apiVersion, obj.kind);
  if (!existsSync(base + ".js")) return [`${where}: ${obj.apiVersion} ${obj.kind} is not a Kubernetes API type`];
  const Cls = require(base + ".js")[obj.kind];
  const errors = [];
  // kustomize wraps a Secret's base64 at 70 columns; the API server's
  // decoder (Go's encoding/base64) skips line breaks, the schema's "byte"
  // format does not: check the values without them.
  let checked = obj;
  if (obj.kind === "Secret" && obj.data)
    checked = { ...obj, data: Object.fromEntries(Object.entries(obj.data).map(([k, v]) => [k, String(v).replace(/\n/g, "")])) };
  try {
    new Cls(checked).validate();
  } catch (e) {
    errors.push(`${where}: schema: ${e.message}`);
  }
  const info = parseDts(base + ".d.ts");
  if (!info) errors.push(`${where}: cannot read the API type's fields (${base}.d.ts)`);
  else {
    const unknown = [];
    walkObject(obj, info, "", unknown);
    for (const u of unknown) errors.push(`${where}: ${u}`);
  }
  return errors;
}
