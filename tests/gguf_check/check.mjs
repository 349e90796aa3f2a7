// check.mjs — parses a GGUF file with an independent reader (@huggingface/gguf)
// and prints its header, metadata (values, and the GGUF value type of every
// key: "types": {key: [type, subType]}, subType for arrays only) and tensor
// infos as one JSON object:
//   node tests/gguf_check/check.mjs FILE.gguf
// Used by tests/test_export.c. Install: npm install --prefix tests/gguf_check
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { gguf, GGMLQuantizationType, GGUFValueType } from "@huggingface/gguf";

const file = process.argv[2];
if (!file) {
  console.error("usage: node check.mjs FILE.gguf");
  process.exit(2);
}
const big = (_k, v) => (typeof v === "bigint" ? Number(v) : v);
try {
  const { metadata, typedMetadata, tensorInfos, tensorDataOffset } = await gguf(resolve(file), {
    allowLocalFile: true,
    typedMetadata: true,
  });
  const types = {};
  for (const [k, v] of Object.entries(typedMetadata)) {
    types[k] = v.subType === undefined ? [GGUFValueType[v.type]] : [GGUFValueType[v.type], GGUFValueType[v.subType]];
  }
  const out = {
    file_size: statSync(file).size,
    tensor_data_offset: Number(tensorDataOffset),
    metadata,
    types,
    tensors: tensorInfos.map((t) => ({
      name: t.name,
      type: GGMLQuantizationType[t.dtype],
      type_id: t.dtype,
      shape: t.shape.map(Number),
      offset: Number(t.offset),
    })),
  };
  console.log(JSON.stringify(out, big));
} catch (e) {
  console.error(`check.mjs: ${file}: ${e.message}`);
  process.exit(1);
}
