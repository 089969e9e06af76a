// Size and speed of the JavaScript package (after wasm/build.sh and
// cargo build -p hoopai-fake). Prints one line per figure:
//
// - cold instantiation in Node: a fresh process reads the module and
//   instantiates it (compile + instantiate + the glue), median of runs;
// - cold start in workerd (miniflare): from `new Miniflare` to the first
//   answer of a Worker that imports the package, against the same Worker
//   without it; the difference is the module's share;
// - one refresh cycle through the driver (TokenService with a MemoryStore):
//   `tokenAfter401` → the request → the answer parsed by the engine → the
//   record written → the new token handed out; against hoopai-fake over
//   loopback, and with a fetch that answers in memory (the driver and the
//   engine alone). Wall time and this process's CPU time per cycle; and the
//   pacing past HighLevel's rate limit, which the engine follows.
//
// Usage: node wasm/bench/bench.mjs [cycles]

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { Miniflare } from "miniflare";

import { MemoryStore, OAuthClient, TokenService } from "../js/node.mjs";
import { startFake } from "../tests/fake.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, "..");
const cycles = Number(process.argv[2] ?? 300);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => `${x.toFixed(2)} ms`;

// ---- Node: cold instantiation, each in a fresh process -------------------------------

function nodeCold(pkg) {
  const script = `
    const t0 = performance.now();
    const { readFileSync } = await import("node:fs");
    const glue = await import(${JSON.stringify(path.join(root, pkg, "hoopai_oauth_wasm.js"))});
    const t1 = performance.now();
    glue.initSync({ module: readFileSync(${JSON.stringify(path.join(root, pkg, "hoopai_oauth_wasm_bg.wasm"))}) });
    const t2 = performance.now();
    console.log(JSON.stringify({ glue: t1 - t0, instantiate: t2 - t1 }));`;
  const runs = [];
  for (let i = 0; i < 9; i++) {
    runs.push(JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" })));
  }
  return { glue: median(runs.map((r) => r.glue)), instantiate: median(runs.map((r) => r.instantiate)) };
}

for (const pkg of ["pkg", "pkg-token"]) {
  const { glue, instantiate } = nodeCold(pkg);
  const bytes = readFileSync(path.join(root, pkg, "hoopai_oauth_wasm_bg.wasm")).length;
  console.log(`node ${process.version} cold ${pkg} (${bytes} bytes): glue import ${ms(glue)}, compile+instantiate ${ms(instantiate)} (median of 9 processes)`);
}

// ---- workerd: cold start with and without the module -----------------------------------

async function workerdCold(script) {
  const dir = mkdtempSync(path.join(root, "bench", "w-"));
  try {
    writeFileSync(path.join(dir, "worker.mjs"), script);
    const t0 = performance.now();
    const mf = new Miniflare({
      modules: true,
      scriptPath: path.join(dir, "worker.mjs"),
      modulesRoot: root,
      modulesRules: [
        { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
        { type: "CompiledWasm", include: ["**/*.wasm"] },
      ],
      compatibilityDate: "2025-01-01",
    });
    const answer = await mf.dispatchFetch("http://localhost/");
    const text = await answer.text();
    const t1 = performance.now();
    await mf.dispose();
    if (!text.startsWith("ok")) throw new Error(`worker answered ${text}`);
    return t1 - t0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const withModule = `import { OAuthClient } from "../../js/workerd.mjs";
export default { fetch() { return new Response("ok " + new OAuthClient("a-b", "s").clientId); } };`;
const without = `export default { fetch() { return new Response("ok"); } };`;
const a = [];
const b = [];
for (let i = 0; i < 5; i++) {
  b.push(await workerdCold(without));
  a.push(await workerdCold(withModule));
}
console.log(`workerd cold start to first answer: ${ms(median(a))} with the package, ${ms(median(b))} without: the module's share ${ms(median(a) - median(b))} (median of 5)`);

// ---- one refresh cycle through the driver ------------------------------------------------

async function refreshCycles(service, grant, n) {
  let token = await service.accessToken(grant);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) token = await service.tokenAfter401(grant, token);
  const wall = (performance.now() - t0) / n;
  const cpu = process.cpuUsage(cpu0);
  return { wall, cpu: (cpu.user + cpu.system) / 1000 / n };
}

const engine = { requestBudget: { max: 1_000_000, intervalMs: 1000 }, jitterSeed: 1n };
const fake = await startFake(["--location", "company-1/loc-1"]);
try {
  const h = fake.handoff;
  const client = new OAuthClient({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.baseUrl });
  const service = new TokenService({ config: client, store: new MemoryStore(), engine });
  await service.exchangeCode(h.code);
  // The engine follows the fake's X-RateLimit-* headers (HighLevel's 100
  // requests per 10 s): past them it paces its sends. Stay within one window.
  const n = Math.min(cycles, 80);
  await refreshCycles(service, "loc-1", 10); // warm-up
  const { wall, cpu } = await refreshCycles(service, "loc-1", n);
  console.log(`refresh cycle through the driver against hoopai-fake (loopback, debug build): ${ms(wall)} wall, ${ms(cpu)} CPU of this process (mean of ${n}, within the rate-limit window)`);
  const t0 = performance.now();
  await refreshCycles(service, "loc-1", 20);
  console.log(`20 more cycles, past HighLevel's budget (100 per 10 s, from the answers' headers): ${((performance.now() - t0) / 1000).toFixed(1)} s: the engine waits for the window`);
  await service.shutdown();
} finally {
  await fake.stop();
}

// The same with a fetch that answers from memory: the driver and the engine alone.
let issued = 0;
const memoryFetch = async () => {
  issued += 1;
  const n = String(issued).padStart(32, "0");
  return new Response(
    JSON.stringify({ access_token: `at-${n}`, token_type: "Bearer", expires_in: 86399, refresh_token: `rt-${n}`, userType: "Location", locationId: "loc-1" }),
    { status: 200, headers: { "content-type": "application/json" } },
  );
};
const inMemory = new TokenService({
  config: { clientId: "6578278e879ad2646715ba9c-bench", clientSecret: "bench-secret-placeholder", baseUrl: "http://127.0.0.1:9" },
  store: new MemoryStore(),
  fetch: memoryFetch,
  engine,
});
await inMemory.exchangeCode("code-placeholder");
await refreshCycles(inMemory, "loc-1", 20);
const mem = await refreshCycles(inMemory, "loc-1", cycles);
console.log(`refresh cycle through the driver with an in-memory fetch: ${ms(mem.wall)} wall, ${ms(mem.cpu)} CPU (mean of ${cycles})`);
await inMemory.shutdown();
