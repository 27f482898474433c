// Runs and times TFLite models with LiteRT.js (@litertjs/core, XNNPACK compiled to
// WebAssembly). Shared by the Node runner and the browser page, so both time the same thing.
//
// jobs: [{model: Uint8Array, inputs: [{data: TypedArray, shape: [..]}]}]. With several jobs
// the runs are interleaved (A B A B ...), so they share the machine's slow and fast phases.
// The timed region is one compiledModel.run() with the input tensors already in wasm memory;
// it includes allocating the output tensors that LiteRT.js returns per call, not reading them.

export const COVERS =
  "one LiteRT.js compiledModel.run() (XNNPACK in WebAssembly) with inputs already in wasm " +
  "memory, timed with performance.now(); excludes load/compile and reading outputs";

export async function runJobs(litert, jobs, {warmup = 0, runs = 1, threads = null} = {}) {
  const {loadAndCompile, Tensor} = litert;
  const options = {accelerator: "wasm"};
  if (threads) options.cpuOptions = {numThreads: threads};
  const loaded = [];
  for (const job of jobs) {
    const model = await loadAndCompile(job.model, options);
    const tensors = job.inputs.map(({data, shape}) => new Tensor(data, shape));
    loaded.push({model, tensors});
  }
  const once = async ({model, tensors}) => {
    const t0 = performance.now();
    const outputs = await model.run(tensors);
    const ms = performance.now() - t0;
    return {ms, outputs};
  };
  const drop = (outputs) => outputs.forEach((t) => t.delete());
  for (let i = 0; i < warmup; i++) {
    for (const job of loaded) drop((await once(job)).outputs);
  }
  const samples = loaded.map(() => []);
  const last = loaded.map(() => null);
  for (let i = 0; i < Math.max(runs, 1); i++) {
    for (let j = 0; j < loaded.length; j++) {
      const {ms, outputs} = await once(loaded[j]);
      samples[j].push(ms);
      if (last[j]) drop(last[j]);
      last[j] = outputs;
    }
  }
  const results = loaded.map(({model, tensors}, j) => {
    const details = model.getOutputDetails();
    const outputs = last[j].map((t, k) => ({
      data: t.toTypedArray(),
      shape: Array.from(details[k].shape),
      dtype: details[k].dtype,
    }));
    drop(last[j]);
    tensors.forEach((t) => t.delete());
    model.delete();
    return {samples_ms: samples[j], outputs, covers: COVERS};
  });
  return results;
}
