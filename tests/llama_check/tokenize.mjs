// tokenize.mjs — llama.cpp's own tokenizer (node-llama-cpp's prebuilt CPU
// build) on the vocabulary of a GGUF file: loads the whole model (so the
// file must run, not just parse), tokenizes a UTF-8 text file with special
// tokens parsed (as a Hugging Face tokenizer matches added tokens in raw
// text), no BOS added, and evaluates the first ids to show the model runs.
//   node tokenize.mjs MODEL.gguf TEXT OUT.i32
// OUT.i32: the ids, int32 little endian. Prints one JSON line: n_ids, the
// tokenizer keys llama.cpp read (model, pre, add_bos), and the vocab size.
// Exit 2 on bad usage; 1 when llama.cpp cannot load or run the file.
import { readFileSync, writeFileSync } from "node:fs";
import { loadModelOrExit } from "./load.mjs";

const [gguf, textPath, out] = process.argv.slice(2);
if (!gguf || !textPath || !out) {
  console.error("usage: node tokenize.mjs MODEL.gguf TEXT OUT.i32");
  process.exit(2);
}
const text = readFileSync(textPath, "utf8");
const { llama, model } = await loadModelOrExit(gguf);
const ids = model.tokenize(text, true);
writeFileSync(out, Buffer.from(Int32Array.from(ids).buffer));

// the model runs: a few of the ids through a context
const n = Math.min(16, ids.length);
const context = await model.createContext({ contextSize: 32, batchSize: 32, sequences: 1, threads: 1 });
const seq = context.getSequence();
const res = await seq.controlledEvaluate(ids.slice(0, n).map((id) => [id, { generateNext: { logits: true } }]));
const last = res[n - 1]?.next?.logits;
if (n > 0 && (!last || last.size === 0)) {
  console.error(`${gguf}: llama.cpp returned no logits`);
  process.exit(1);
}
const tk = model.fileInfo.metadata.tokenizer.ggml;
console.log(JSON.stringify({
  n_ids: ids.length,
  model: tk.model,
  pre: tk.pre ?? null,
  add_bos: tk.add_bos_token ?? null,
  n_vocab: tk.tokens.length,
  evaluated: n,
}));
seq.dispose();
await context.dispose();
await model.dispose();
await llama.dispose();
