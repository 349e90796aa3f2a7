// logits.mjs — real llama.cpp (node-llama-cpp's prebuilt CPU build) on a
// GGUF file: loads it and writes its logits for every position of every
// sequence of a QTOK file, the token ids fed as ids (nothing re-tokenised).
//   node logits.mjs MODEL.gguf DATA.qtok OUT.f32 [MAX_SEQS]
// OUT.f32: float32 little endian [n_seq][seq_len][n_vocab] — the logits after
// token t predict token t+1. Prints one JSON line: n_seq, seq_len, n_vocab,
// and what llama.cpp read from the file (type names of its tensors).
// Exit 2 with a message on bad input; 1 when llama.cpp cannot load the file.
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { loadModelOrExit } from "./load.mjs";

const [gguf, qtok, out, maxArg] = process.argv.slice(2);
if (!gguf || !qtok || !out) {
  console.error("usage: node logits.mjs MODEL.gguf DATA.qtok OUT.f32 [MAX_SEQS]");
  process.exit(2);
}
const buf = readFileSync(qtok);
if (buf.length < 24 || buf.toString("latin1", 0, 4) !== "QTOK" || buf.readUInt32LE(4) !== 1) {
  console.error(`${qtok}: not a QTOK v1 file`);
  process.exit(2);
}
let nSeq = buf.readUInt32LE(8);
const T = buf.readUInt32LE(12);
if (buf.length !== 24 + 4 * nSeq * T) {
  console.error(`${qtok}: ${buf.length} bytes, expected ${24 + 4 * nSeq * T}`);
  process.exit(2);
}
if (maxArg) nSeq = Math.min(nSeq, Number(maxArg));

const { llama, model } = await loadModelOrExit(gguf);
const nVocab = Number(model.fileInfo.metadata.llama?.vocab_size ?? model.fileInfo.metadata.tokenizer.ggml.tokens.length);
const types = [...new Set(model.fileInfo.tensorInfo.map((t) => t.ggmlType))].sort();
const context = await model.createContext({ contextSize: T, batchSize: T, sequences: 1, threads: 1 });
const seq = context.getSequence();
const fd = openSync(out, "w");
for (let s = 0; s < nSeq; s++) {
  await seq.clearHistory(); // each sequence from an empty KV cache
  const ids = [];
  for (let t = 0; t < T; t++) ids.push(buf.readUInt32LE(24 + 4 * (s * T + t)));
  const res = await seq.controlledEvaluate(ids.map((id) => [id, { generateNext: { logits: true } }]));
  const row = new Float32Array(T * nVocab);
  for (let t = 0; t < T; t++) {
    const lg = res[t]?.next?.logits;
    if (!lg || lg.size !== nVocab) {
      console.error(`sequence ${s} position ${t}: llama.cpp returned ${lg ? lg.size : 0} logits, expected ${nVocab}`);
      process.exit(1);
    }
    for (const [tok, v] of lg) row[t * nVocab + tok] = v;
  }
  writeSync(fd, Buffer.from(row.buffer));
}
seq.dispose();
closeSync(fd);
console.log(JSON.stringify({ n_seq: nSeq, seq_len: T, n_vocab: nVocab, tensor_types: types }));
await context.dispose();
await model.dispose();
await llama.dispose();
