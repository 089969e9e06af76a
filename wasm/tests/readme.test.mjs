// Runs exactly the Node sample of the package README (the ```js block after
// `<!-- sample: node -->`) against the hoopai-fake binary: at most 15 lines,
// it exchanges a code, prints a fresh token redacted, writes the grant to its
// file store, and prints nothing secret.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { startFake } from "./fake.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const readme = readFileSync(path.join(here, "..", "README.md"), "utf8");

function sample(marker) {
  const at = readme.indexOf(`<!-- sample: ${marker} -->`);
  assert.ok(at >= 0, `no sample ${marker} in the README`);
  const block = readme.slice(at).match(/```js\n([\s\S]*?)```/);
  assert.ok(block, "no js block after the marker");
  return block[1];
}

test("the README's Node sample: a fresh token in at most 15 lines", async () => {
  const code = sample("node");
  const lines = code.trimEnd().split("\n");
  assert.ok(lines.length <= 15, `${lines.length} lines`);
  const fake = await startFake(["--location", "company-1/loc-1"]);
  // Inside the package, so that `import "hoopai-oauth"` resolves to it (self-reference).
  const dir = mkdtempSync(path.join(here, "readme-"));
  try {
    writeFileSync(path.join(dir, "sample.mjs"), code);
    const h = fake.handoff;
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["sample.mjs"], {
      cwd: dir,
      env: {
        ...process.env,
        HIGHLEVEL_CLIENT_ID: h.clientId,
        HIGHLEVEL_CLIENT_SECRET: h.clientSecret,
        HIGHLEVEL_BASE_URL: h.baseUrl,
        HIGHLEVEL_CODE: h.code,
      },
      timeout: 60_000,
    });
    assert.match(stdout, /^loc-1: \S{4}…\(\d+ chars\)\n$/);
    assert.equal(stderr, "");
    const files = readdirSync(path.join(dir, "grants")).filter((f) => f.endsWith(".json"));
    assert.equal(files.length, 1);
    const record = JSON.parse(readFileSync(path.join(dir, "grants", files[0]), "utf8"));
    assert.equal(record.grant, "loc-1");
    for (const secret of [h.clientSecret, h.code, record.tokens.token.access_token, record.tokens.token.refresh_token]) {
      assert.ok(!stdout.includes(secret) && !stderr.includes(secret));
    }
    const stats = await fake.stats();
    assert.equal(stats.codeExchanges, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await fake.stop();
  }
});
