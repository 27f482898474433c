// Node entry of the wasm runtime: `node node_runner.mjs REQUEST.json` (see runtimes/wasm.py).
//
// request: {"wasm_dir": ".../@litertjs/core/wasm", "core": ".../@litertjs/core/dist/index.js",
//           "jobs": [{"model": "m.tflite", "inputs": [{"path": "x0.bin", "shape": [..], "dtype": "float32"}]}],
//           "warmup": 10, "runs": 50, "threads": null, "outputs_dir": "out/"}
// Prints one JSON line: {"engine": "node", "versions": {...}, "results": [{"samples_ms": [..],
//   "outputs": [{"path": "out/a0_out0.bin", "shape": [..], "dtype": "float32"}], "covers": ".."}]}
//
// LiteRT.js is written for browsers and workers; three shims let its emscripten loader run
// in Node: `self` (it reads self.ModuleFactory), `importScripts` (it loads the wasm glue
// script with it; here vm.runInThisContext so the script's globals land on globalThis), and
// `require`/`__dirname` (the glue's Node branch reads the .wasm with fs from its folder).
import fs from "node:fs";
import path from "node:path";
import vm from "node:vm";
import {createRequire} from "node:module";
import {pathToFileURL} from "node:url";
import {runJobs} from "./litert_bench.mjs";

const TYPED = {float32: Float32Array, int8: Int8Array, uint8: Uint8Array, int32: Int32Array,
               int16: Int16Array, float16: Uint16Array, int64: BigInt64Array, bool: Uint8Array};

function installShims(wasmDir) {
  globalThis.self = globalThis;
  globalThis.require = createRequire(path.join(wasmDir, "index.js"));
  globalThis.__dirname = wasmDir;
  globalThis.importScripts = (url) => {
    const file = url.startsWith("file:") ? new URL(url) : url;
    vm.runInThisContext(fs.readFileSync(file, "utf8"), {filename: String(file)});
  };
}

function readTensor({path: p, shape, dtype}) {
  const bytes = fs.readFileSync(p);
  const Ctor = TYPED[dtype];
  if (!Ctor) throw new Error(`unsupported input dtype ${dtype}`);
  const copy = new Uint8Array(bytes.byteLength);  // aligned copy of the file's bytes
  copy.set(bytes);
  return {data: new Ctor(copy.buffer), shape};
}

const request = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
installShims(request.wasm_dir);
const litert = await import(pathToFileURL(request.core).href);
// Only the single-threaded build runs in Node: the threaded one needs a browser's workers.
await litert.loadLiteRt(request.wasm_dir + "/");
const jobs = request.jobs.map((job) => ({
  model: new Uint8Array(fs.readFileSync(job.model)),
  inputs: job.inputs.map(readTensor),
}));
const results = await runJobs(litert, jobs, request);
const reply = results.map((result, i) => ({
  ...result,
  outputs: result.outputs.map((o, k) => {
    const p = path.join(request.outputs_dir, `a${i}_out${k}.bin`);
    fs.writeFileSync(p, Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength));
    return {path: p, shape: o.shape, dtype: o.dtype};
  }),
}));
const pkg = JSON.parse(fs.readFileSync(path.join(request.wasm_dir, "..", "package.json"), "utf8"));
console.log(JSON.stringify({engine: "node", versions: {node: process.versions.node, v8: process.versions.v8,
  "@litertjs/core": pkg.version}, threads: 1, results: reply}));
