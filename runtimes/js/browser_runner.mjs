// Browser entry of the wasm runtime: `node browser_runner.mjs REQUEST.json`.
//
// Same request and reply as node_runner.mjs, plus "chromium": the browser executable. It
// serves LiteRT.js, litert_bench.mjs and the request's files from a loopback HTTP server
// (127.0.0.1, a free port), opens a page in headless Chromium driven by playwright-core,
// and runs the jobs there. The page is cross-origin isolated (COOP/COEP headers), which is
// what gives it SharedArrayBuffer and so LiteRT.js's threaded wasm build ("threads" > 1).
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import {fileURLToPath} from "node:url";

const request = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = path.resolve(request.wasm_dir, "..", "..", "..");
const {chromium} = await import(path.join(nodeModules, "playwright-core", "index.mjs"));

const files = [];  // request files, served as /files/<index>
const fileUrl = (p) => { files.push(p); return `/files/${files.length - 1}`; };
const jobs = request.jobs.map((job) => ({
  model: fileUrl(job.model),
  inputs: job.inputs.map((t) => ({url: fileUrl(t.path), shape: t.shape, dtype: t.dtype})),
}));

const TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
               ".html": "text/html", ".json": "application/json"};
const PAGE = `<!doctype html><html><head><script type="importmap">
{"imports": {"@litertjs/wasm-utils": "/node_modules/@litertjs/wasm-utils/dist/index.js"}}
</script></head><body></body></html>`;

function resolve(urlPath) {
  if (urlPath === "/") return {body: PAGE, type: "text/html"};
  if (urlPath.startsWith("/files/")) return {file: files[Number(urlPath.slice(7))]};
  if (urlPath.startsWith("/runner/")) return {file: path.join(here, path.basename(urlPath))};
  if (urlPath.startsWith("/node_modules/")) {
    const file = path.normalize(path.join(nodeModules, urlPath.slice("/node_modules/".length)));
    if (file.startsWith(nodeModules + path.sep)) return {file};
  }
  return null;
}

const server = http.createServer((req, res) => {
  const found = resolve(decodeURIComponent(new URL(req.url, "http://x").pathname));
  const headers = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                   "Cross-Origin-Resource-Policy": "same-origin"};
  if (!found || (found.file && !fs.existsSync(found.file))) { res.writeHead(404, headers); res.end(); return; }
  const type = found.type || TYPES[path.extname(found.file)] || "application/octet-stream";
  res.writeHead(200, {...headers, "Content-Type": type});
  res.end(found.body ?? fs.readFileSync(found.file));
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: request.chromium,
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
         "--disable-extensions", "--no-first-run", "--enable-features=SharedArrayBuffer"],
});
let exitCode = 0;
try {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  await page.goto(origin + "/");
  const reply = await page.evaluate(async ({jobs, warmup, runs, threads}) => {
    const TYPED = {float32: Float32Array, int8: Int8Array, uint8: Uint8Array, int32: Int32Array,
                   int16: Int16Array, int64: BigInt64Array, bool: Uint8Array};
    const litert = await import("/node_modules/@litertjs/core/dist/index.js");
    const {runJobs} = await import("/runner/litert_bench.mjs");
    const threaded = !!threads && threads > 1;
    await litert.loadLiteRt("/node_modules/@litertjs/core/wasm/", {threads: threaded});
    const bytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
    const loaded = [];
    for (const job of jobs) {
      loaded.push({model: await bytes(job.model), inputs: await Promise.all(job.inputs.map(
        async (t) => ({data: new TYPED[t.dtype]((await bytes(t.url)).buffer), shape: t.shape})))});
    }
    const results = await runJobs(litert, loaded, {warmup, runs, threads});
    const b64 = (a) => { let s = ""; const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000));
      return btoa(s); };
    return {threads: threaded ? threads : 1, isolated: self.crossOriginIsolated,
            userAgent: navigator.userAgent,
            results: results.map((r) => ({...r, outputs: r.outputs.map((o) => ({...o, data: b64(o.data)}))}))};
  }, {jobs, warmup: request.warmup ?? 0, runs: request.runs ?? 1, threads: request.threads ?? null});
  const results = reply.results.map((result, i) => ({
    ...result,
    outputs: result.outputs.map((o, k) => {
      const p = path.join(request.outputs_dir, `a${i}_out${k}.bin`);
      fs.writeFileSync(p, Buffer.from(o.data, "base64"));
      return {path: p, shape: o.shape, dtype: o.dtype};
    }),
  }));
  const pkg = JSON.parse(fs.readFileSync(path.join(request.wasm_dir, "..", "package.json"), "utf8"));
  console.log(JSON.stringify({engine: "chromium", threads: reply.threads, isolated: reply.isolated,
    versions: {chromium: browser.version(), "@litertjs/core": pkg.version}, results}));
} catch (err) {
  console.error(String(err && err.stack || err));
  exitCode = 1;
} finally {
  await browser.close();
  server.close();
}
process.exit(exitCode);
