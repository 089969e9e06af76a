// The engine under workerd (Cloudflare's runtime, through miniflare): a
// Worker whose Durable Object runs the TokenService with its records in the
// object's storage, against the hoopai-fake binary over loopback. A signed
// INSTALL webhook is accepted and a forged one refused; the consent flow adds
// the grant; the API gets a fresh token, and one refresh after a 401; after a
// cold start on an expired record, two concurrent requests cause one refresh.
//
// Run: node --test wasm/tests/workerd.test.mjs (after wasm/build.sh and
// cargo build -p hoopai-fake)

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { Miniflare } from "miniflare";

import { startFake } from "./fake.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

/** A Miniflare running the Worker against the fake `h`; `persist`: a folder for Durable Object storage. */
async function startWorker(h, { persist, engine } = {}) {
  const mf = new Miniflare({
    modules: true,
    scriptPath: path.join(here, "worker", "worker.mjs"),
    modulesRoot: path.join(here, ".."),
    modulesRules: [
      // The glue wasm-bindgen writes is an ES module named .js.
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2025-01-01",
    durableObjects: { TOKENS: "Tokens" },
    durableObjectsPersist: persist ?? false,
    bindings: {
      CLIENT_ID: h.clientId,
      CLIENT_SECRET: h.clientSecret,
      BASE_URL: h.baseUrl,
      REDIRECT_URI: h.redirectUri,
      WEBHOOK_KEY: h.webhookPublicKey.spkiBase64,
      ENGINE_SETTINGS: JSON.stringify(engine ?? {}),
    },
    host: "127.0.0.1",
    port: 0,
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  return { mf, url };
}

/** The consent flow through the Worker: the grant it added. */
async function install(worker) {
  const { url } = await (await fetch(`${worker}/install`)).json();
  const approved = await fetch(url, { redirect: "manual" });
  assert.equal(approved.status, 302);
  const back = new URL(approved.headers.get("location"));
  const added = await fetch(`${worker}/oauth/callback${back.search}`);
  assert.equal(added.status, 200);
  return { added: await added.json(), back };
}

let fake;
let mf;
let worker;

before(async () => {
  fake = await startFake(["--location", "company-1/loc-1"]);
  ({ mf, url: worker } = await startWorker(fake.handoff));
});

after(async () => {
  await mf?.dispose();
  await fake?.stop();
});

test("a signed INSTALL webhook is accepted; a forged one is refused", async () => {
  const delivery = await fake.admin("POST", "webhooks", {
    event: "install-location",
    companyId: "company-1",
    locationId: "loc-1",
    url: `${worker}/webhooks/highlevel`,
  });
  assert.equal(delivery.delivered, true, JSON.stringify(delivery));
  const forged = await fetch(`${worker}/webhooks/highlevel`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-ghl-signature": delivery.signature },
    body: delivery.body.replace("company-1", "company-x"),
  });
  assert.equal(forged.status, 401);
  assert.deepEqual(await forged.json(), { error: "bad webhook signature" });
});

test("the consent flow adds the grant; its record is in Durable Object storage", async () => {
  const { added, back } = await install(worker);
  assert.deepEqual(added, { grant: "loc-1", userType: "Location", companyId: "company-1", locationId: "loc-1" });
  // The same redirect again: its state was used up.
  assert.equal((await fetch(`${worker}/oauth/callback${back.search}`)).status, 400);
  const records = await (await fetch(`${worker}/records`)).json();
  assert.deepEqual(records, [{ grant: "loc-1", version: 1, state: "active" }]);
});

test("a fresh token for the API, and one refresh after the server's 401", async () => {
  const first = await fetch(`${worker}/locations/loc-1`);
  assert.equal(first.status, 200);
  assert.equal((await first.json()).location.id, "loc-1");
  const before = await fake.stats();
  assert.equal((await fake.admin("POST", "expire", { id: "loc-1" })).expired, 1);
  const again = await fetch(`${worker}/locations/loc-1`);
  assert.equal(again.status, 200);
  assert.equal(again.headers.get("x-after-401"), "true");
  await again.text();
  assert.equal((await fake.stats()).refreshes - before.refreshes, 1);
  const records = await (await fetch(`${worker}/records`)).json();
  assert.equal(records[0].version, 2, "the rotated refresh token is written");
});

test("a cold start on an expired record: two concurrent requests, one refresh", async () => {
  // Access tokens of 2 s; the Worker stops, the token expires, the Worker
  // starts again from its Durable Object storage and gets two requests at once.
  const short = await startFake(["--location", "company-2/loc-2", "--access-token-lifetime", "2"]);
  const persist = mkdtempSync(path.join(tmpdir(), "hoopai-do-"));
  const engine = { expirySkewMs: 200, refreshMarginMs: 1000 };
  try {
    const one = await startWorker(short.handoff, { persist, engine });
    const { added } = await install(one.url);
    assert.equal(added.grant, "loc-2");
    await one.mf.dispose();
    await new Promise((r) => setTimeout(r, 2300));
    const before = await short.stats();
    const two = await startWorker(short.handoff, { persist, engine });
    try {
      const answers = await Promise.all([fetch(`${two.url}/locations/loc-2`), fetch(`${two.url}/locations/loc-2`)]);
      for (const a of answers) {
        assert.equal(a.status, 200, await a.clone().text());
        assert.equal(a.headers.get("x-after-401"), "false", "no expired token was handed out");
        await a.text();
      }
      const afterStats = await short.stats();
      assert.equal(afterStats.refreshes - before.refreshes, 1, "one refresh");
      assert.equal(afterStats.invalidBearers - before.invalidBearers, 0);
      const records = await (await fetch(`${two.url}/records`)).json();
      assert.deepEqual(records, [{ grant: "loc-2", version: 2, state: "active" }]);
    } finally {
      await two.mf.dispose();
    }
  } finally {
    rmSync(persist, { recursive: true, force: true });
    await short.stop();
  }
});
