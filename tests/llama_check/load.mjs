// load.mjs — the one way the llama_check scripts open a GGUF file in
// node-llama-cpp's prebuilt CPU build: no GPU, never a source build, errors
// only; returns { llama, model }; exits 1 with a message naming the file when llama.cpp cannot load it.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

export async function loadModelOrExit(gguf) {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  try {
    return { llama, model: await llama.loadModel({ modelPath: gguf, gpuLayers: 0 }) };
  } catch (e) {
    console.error(`llama.cpp could not load ${gguf}: ${e.message}`);
    process.exit(1);
  }
}
