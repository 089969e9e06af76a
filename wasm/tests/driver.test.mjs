// The JavaScript driver (TokenService) against the hoopai-fake binary over
// loopback: code exchange, refresh-ahead with rotation, a 429 waited out, a
// spent refresh token refused, a signed INSTALL accepted and a forged one
// refused, the file store across a restart, a clean shutdown, and nothing
// secret in any object the driver hands out.
//
// Run: node --test wasm/tests/ (after wasm/build.sh and cargo build -p hoopai-fake)

import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { inspect } from "node:util";

import {
  FileStore,
  MemoryStore,
  OAuthClient,
  TokenError,
  TokenService,
  consentState,
  parseCallback,
  parseTokenResponse,
  recordKey,
} from "../js/node.mjs";
import { apiCall, fingerprint, startFake } from "./fake.mjs";

/** Everything the driver handed out, to look for secrets in at the end. */
const handedOut = [];
/** Every secret seen: client secret, codes, tokens. */
const secrets = new Set();

function keepSecretsOf(recordJson) {
  const { tokens } = JSON.parse(recordJson);
  secrets.add(tokens.token.access_token);
  if (tokens.token.refresh_token) secrets.add(tokens.token.refresh_token);
}

/** A store that remembers every record's secrets. */
class WatchedStore extends MemoryStore {
  async compareAndSwap(json, replaces) {
    keepSecretsOf(json);
    return super.compareAndSwap(json, replaces);
  }
}

let fake;
let client;
const clients = [];

before(async () => {
  fake = await startFake(["--location", "company-1/loc-1", "--location", "company-2/loc-2", "--location", "company-3/loc-3"]);
  const h = fake.handoff;
  secrets.add(h.clientSecret);
  for (const install of h.installs) secrets.add(install.code);
  client = new OAuthClient({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.baseUrl, redirectUri: h.redirectUri });
});

after(async () => {
  for (const c of clients) await c.shutdown({ graceMs: 1000 }).catch(() => {});
  await fake?.stop();
});

/** A service on `store`, its events kept. */
function service(store, options = {}) {
  const events = [];
  const s = new TokenService({ config: client, store, onEvent: (e) => events.push(e), ...options });
  s.events = events;
  handedOut.push(events);
  clients.push(s);
  return s;
}

function codeOf(locationId) {
  return fake.handoff.installs.find((i) => i.locationId === locationId).code;
}

test("a code exchange, then a token that the API takes", async () => {
  const store = new WatchedStore();
  const svc = service(store);
  const added = await svc.exchangeCode(codeOf("loc-1"));
  handedOut.push(added);
  assert.deepEqual(added, { grant: "loc-1", userType: "Location", companyId: "company-1", locationId: "loc-1" });
  assert.equal(store.size, 1, "written before the exchange resolves");
  const token = await svc.accessToken("loc-1");
  secrets.add(token);
  assert.equal(await apiCall(fake.handoff.baseUrl, "loc-1", token), 200);
  assert.ok(svc.events.some((e) => e.type === "durable" && e.grant === "loc-1"));
  handedOut.push(svc.grants(), svc.stats(), svc);
  await svc.shutdown();
});

test("refresh ahead of expiry, with a rotated refresh token written first", async () => {
  // A fake of its own whose access tokens live 4 s: refreshed at half life.
  const short = await startFake(["--location", "company-9/loc-9", "--access-token-lifetime", "4"]);
  try {
    const h = short.handoff;
    secrets.add(h.code);
    const c = new OAuthClient({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.baseUrl });
    const store = new WatchedStore();
    const events = [];
    // Tokens of 4 s: handed out until 0.5 s before expiry, refreshed 2 s ahead.
    const svc = new TokenService({
      config: c,
      store,
      onEvent: (e) => events.push(e),
      engine: { expirySkewMs: 500, refreshMarginMs: 2000 },
    });
    clients.push(svc);
    handedOut.push(events);
    await svc.exchangeCode(h.code);
    const first = JSON.parse(await store.load("loc-9"));
    const before = await svc.accessToken("loc-9");
    secrets.add(before);
    // Wait for the engine's own refresh (no caller asks meanwhile).
    const deadline = Date.now() + 10_000;
    while (!events.some((e) => e.type === "refreshed") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const refreshed = events.find((e) => e.type === "refreshed");
    assert.ok(refreshed, "refreshed ahead of expiry");
    const second = JSON.parse(await store.load("loc-9"));
    assert.ok(second.version > first.version);
    assert.notEqual(second.tokens.token.refresh_token, first.tokens.token.refresh_token, "rotated");
    // The new access token is handed out at once, and the old one is dead at the server.
    const after = await svc.accessToken("loc-9", { waitMs: 0 });
    secrets.add(after);
    assert.notEqual(after, before);
    assert.equal(await apiCall(h.baseUrl, "loc-9", after), 200);
    assert.ok(Date.now() < first.tokens.expires_at * 1000, "before the old token expired");
    const stats = await short.stats();
    assert.equal(stats.refreshes, 1);
    await svc.shutdown();
  } finally {
    await short.stop();
  }
});

test("a 429 is waited out, then the refresh goes through", async () => {
  const store = new WatchedStore();
  const svc = service(store);
  await svc.exchangeCode(codeOf("loc-2"));
  const token = await svc.accessToken("loc-2");
  secrets.add(token);
  await fake.admin("POST", "faults", { fault: "rate-limited", retryAfterSecs: 1, times: 1 });
  const started = Date.now();
  // As after an API's 401: the engine refreshes; the fake answers 429 first.
  const fresh = await svc.tokenAfter401("loc-2", token, { waitMs: 15_000 });
  secrets.add(fresh);
  assert.notEqual(fresh, token);
  assert.ok(Date.now() - started >= 900, "waited for Retry-After");
  const retry = svc.events.find((e) => e.type === "retry-scheduled");
  assert.ok(retry, "a retry was scheduled");
  assert.equal(retry.failure.type, "answer");
  assert.equal(retry.failure.error.kind, "rate limited");
  assert.equal(await apiCall(fake.handoff.baseUrl, "loc-2", fresh), 200);
  await svc.shutdown();
});

test("a spent refresh token is refused: the grant needs re-authorization", async () => {
  const store = new WatchedStore();
  const svc = service(store);
  await svc.exchangeCode(codeOf("loc-3"));
  const stale = await store.load("loc-3");
  // A refresh rotates the refresh token; the stale record still holds the spent one.
  const token = await svc.accessToken("loc-3");
  secrets.add(token);
  secrets.add(await svc.tokenAfter401("loc-3", token));
  await svc.shutdown();
  const spent = JSON.parse(stale).tokens.token.refresh_token;

  // Sent by hand: the typed error.
  const request = client.refreshRequest(spent, "Location");
  const response = await fetch(request.url, request);
  const body = new Uint8Array(await response.arrayBuffer());
  const error = (() => {
    try {
      parseTokenResponse(response.status, response.headers, body, Date.now());
    } catch (e) {
      return e;
    }
  })();
  handedOut.push(error);
  assert.equal(error.kind, "invalid grant");

  // Through a service restored from the stale record: re-authorization needed.
  const old = new WatchedStore();
  await old.compareAndSwap(stale, null);
  const restarted = service(old);
  assert.deepEqual(await restarted.ready, { restored: 1, corrupt: [] });
  const expired = await restarted.tokenAfter401("loc-3", JSON.parse(stale).tokens.token.access_token).catch((e) => e);
  handedOut.push(expired);
  assert.ok(expired instanceof TokenError);
  assert.equal(expired.kind, "reauthorization-needed");
  // The event follows the write of the new status.
  const lost = () => restarted.events.find((e) => e.type === "reauthorization-needed");
  for (let i = 0; i < 100 && !lost(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(lost()?.error.kind, "invalid grant");
  // The record keeps the core's own (snake_case) names.
  assert.equal(JSON.parse(await old.load("loc-3")).status.state, "reauthorization_needed");
  await restarted.shutdown();
});

test("a signed INSTALL is accepted; a forged or replayed one is refused", async () => {
  const key = fake.handoff.webhookPublicKey.spkiBase64;
  const svc = service(new WatchedStore(), { webhooks: { keys: [key] } });
  await svc.ready;
  const answers = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = new Uint8Array(Buffer.concat(chunks));
    try {
      const { event, changes } = await svc.handleWebhook({ headers: req.headers, body });
      answers.push({ event, changes });
      res.writeHead(200).end("ok");
    } catch (error) {
      answers.push({ error });
      res.writeHead(error.class === "webhook" ? 401 : 500).end(error.kind ?? "error");
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${server.address().port}/webhooks`;
  try {
    const delivery = await fake.admin("POST", "webhooks", { event: "install-location", companyId: "company-1", locationId: "loc-7", url });
    assert.equal(delivery.delivered, true);
    assert.equal(delivery.status, 200);
    const accepted = answers.at(-1);
    handedOut.push(accepted);
    assert.equal(accepted.event.type, "INSTALL");
    assert.equal(accepted.event.payload.target.locationId, "loc-7");
    assert.deepEqual(accepted.changes.needsCodeExchange, ["loc-7"], "a Location install comes with its code");

    // The same bytes again: a replay.
    const post = (headers, body) => fetch(url, { method: "POST", headers, body });
    const signed = { "content-type": "application/json", "x-ghl-signature": delivery.signature };
    assert.equal((await post(signed, delivery.body)).status, 401);
    assert.equal(answers.at(-1).error.kind, "replayed webhook");

    // A forgery: the body changed after signing.
    const forged = delivery.body.replace("loc-7", "loc-8");
    assert.equal((await post(signed, forged)).status, 401);
    assert.equal(answers.at(-1).error.kind, "bad webhook signature");
    // Unsigned.
    assert.equal((await post({ "content-type": "application/json" }, delivery.body)).status, 401);
    assert.equal(answers.at(-1).error.kind, "unsigned webhook");
    handedOut.push(answers);
  } finally {
    server.close();
  }
  await svc.shutdown();
});

test("the consent URL and its callback: the state must come back", async () => {
  const state = consentState(crypto.getRandomValues(new Uint8Array(32)));
  const url = client.consentUrl({ scopes: ["contacts.readonly"], state, redirectUri: fake.handoff.redirectUri });
  assert.ok(url.startsWith("https://marketplace.gohighlevel.com/v2/oauth/chooselocation?"));
  // The fake's consent page approves at once and redirects with a code.
  const page = new URL(url);
  const approved = await fetch(`${fake.handoff.baseUrl}/oauth/chooselocation${page.search}`, { redirect: "manual" });
  assert.equal(approved.status, 302);
  const back = approved.headers.get("location");
  const { code, codeRedacted } = parseCallback(back, state);
  secrets.add(code);
  assert.ok(codeRedacted.includes("…"));
  const forged = (() => {
    try {
      parseCallback(back, consentState(crypto.getRandomValues(new Uint8Array(32))));
    } catch (e) {
      return e;
    }
  })();
  assert.equal(forged.kind, "state mismatch");
  const svc = service(new WatchedStore());
  const added = await svc.exchangeCode(code);
  assert.equal(added.userType, "Location");
  secrets.add(await svc.accessToken(added.grant));
  await svc.shutdown();
});

test("the file store: compare-and-swap under a lock, and a restart that restores", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "hoopai-files-"));
  try {
    const a = new FileStore(dir);
    const b = new FileStore(dir);
    const record = (version, marker) => JSON.stringify({ schema: 1, grant: "g/1", version, marker });
    // Two writers race for the first version: exactly one wins.
    const outcomes = await Promise.all([a.compareAndSwap(record(1, "a"), null), b.compareAndSwap(record(1, "b"), null)]);
    assert.equal(outcomes.filter((o) => o.written).length, 1);
    const loser = outcomes.find((o) => !o.written);
    assert.equal(recordKey(loser.conflict).version, 1);
    assert.deepEqual(await a.compareAndSwap(record(2, "a"), 7), { conflict: await a.load("g/1") });
    assert.deepEqual(await a.compareAndSwap(record(2, "a"), 1), { written: true });
    assert.deepEqual(await b.compareAndSwap(record(1, "x"), null), { conflict: record(2, "a") });
    assert.equal(await a.delete("g/1"), true);
    assert.deepEqual(await a.compareAndSwap(record(3, "a"), 2), { noRecord: true });

    // A service on the folder, stopped and started again: the grant is still there.
    const h = await fake.admin("POST", "installs", { type: "location", companyId: "company-5", locationId: "loc-5" });
    secrets.add(h.code);
    const first = service(new FileStore(dir));
    await first.exchangeCode(h.code);
    const token = await first.accessToken("loc-5");
    secrets.add(token);
    assert.deepEqual(await first.shutdown(), { abandoned: [], unwritten: [] });
    const second = service(new FileStore(dir));
    assert.deepEqual(await second.ready, { restored: 1, corrupt: [] });
    assert.equal(await second.accessToken("loc-5"), token);
    for (const json of await new FileStore(dir).loadAll()) keepSecretsOf(json);
    await second.shutdown();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("two services on one file store (shared-store mode): one refresh for both, under a lease", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "hoopai-shared-"));
  try {
    const h = await fake.admin("POST", "installs", { type: "location", companyId: "company-6", locationId: "loc-6" });
    secrets.add(h.code);
    const shared = (holder) => ({
      engine: { sharedStore: { holder, leaseMs: 10_000 }, requestTimeoutMs: 5_000, rereadIntervalMs: 200 },
    });
    const a = service(new FileStore(dir), shared("process-a"));
    await a.exchangeCode(h.code);
    const b = service(new FileStore(dir), shared("process-b"));
    assert.deepEqual(await b.ready, { restored: 1, corrupt: [] });
    const token = await a.accessToken("loc-6");
    assert.equal(await b.accessToken("loc-6"), token);
    secrets.add(token);
    const before = await fake.stats();
    // Both are told the token was refused, at once: one of them leases and refreshes,
    // the other loses the compare-and-swap, waits, and adopts the new tokens from the store.
    const [fromA, fromB] = await Promise.all([a.tokenAfter401("loc-6", token), b.tokenAfter401("loc-6", token)]);
    secrets.add(fromA);
    assert.notEqual(fromA, token);
    assert.equal(fromB, fromA);
    assert.equal((await fake.stats()).refreshes - before.refreshes, 1, "one refresh");
    const events = [...a.events, ...b.events];
    assert.ok(events.some((e) => e.type === "lease-held-elsewhere" || e.type === "adopted"), "the loser waited for the winner");
    for (const json of await new FileStore(dir).loadAll()) keepSecretsOf(json);
    await a.shutdown();
    await b.shutdown();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("shared-store mode: a grant or a Company another process added is read from the store", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "hoopai-found-"));
  try {
    const key = fake.handoff.webhookPublicKey.spkiBase64;
    const shared = (holder) => ({
      engine: { sharedStore: { holder, leaseMs: 10_000 }, requestTimeoutMs: 5_000 },
      webhooks: { keys: [key] },
    });
    const a = service(new FileStore(dir), shared("process-a"));
    const b = service(new FileStore(dir), shared("process-b"));
    assert.deepEqual(await b.ready, { restored: 0, corrupt: [] });

    // A Location grant `a` adds after `b` started.
    const h = await fake.admin("POST", "installs", { type: "location", companyId: "company-8", locationId: "loc-8" });
    secrets.add(h.code);
    await a.exchangeCode(h.code);
    const token = await a.accessToken("loc-8");
    secrets.add(token);
    assert.equal(await b.accessToken("loc-8"), token);
    assert.ok(b.events.some((e) => e.type === "grant-discovered" && e.grant === "loc-8"));
    assert.equal((await b.accessToken("loc-nowhere").catch((e) => e)).kind, "unknown-grant");

    // An agency install: `a` exchanges the code, `b` gets the INSTALL webhook
    // (its delivery to a closed port fails; the signed bytes come back).
    const bulk = await fake.admin("POST", "installs", {
      type: "bulk", companyId: "company-9", locations: 3, webhook: true, url: "http://127.0.0.1:9/webhooks",
    });
    secrets.add(bulk.code);
    assert.equal((await a.exchangeCode(bulk.code, { userType: "Company" })).grant, "company-9");
    const headers = { "content-type": "application/json", "x-ghl-signature": bulk.webhook.signature };
    const { changes } = await b.handleWebhook({ headers, body: new TextEncoder().encode(bulk.webhook.body) });
    assert.deepEqual(changes.needsCodeExchange, []);
    assert.equal(changes.added.length, 3);
    for (const grant of changes.added) secrets.add(await b.accessToken(grant));
    for (const json of await new FileStore(dir).loadAll()) keepSecretsOf(json);
    await a.shutdown();
    await b.shutdown();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("after shutdown nothing starts, and callers are told so", async () => {
  const svc = service(new WatchedStore());
  await svc.ready;
  const report = await svc.shutdown();
  handedOut.push(report);
  const error = await svc.accessToken("loc-1").catch((e) => e);
  assert.equal(error.kind, "stopped");
  const code = await svc.exchangeCode("code-placeholder").catch((e) => e);
  assert.equal(code.kind, "stopped");
});

test("nothing secret in any object handed out", () => {
  assert.ok(secrets.size >= 8, `secrets collected: ${secrets.size}`);
  for (const value of handedOut) {
    for (const printed of [inspect(value, { depth: 12, showHidden: false }), JSON.stringify(value) ?? ""]) {
      for (const secret of secrets) {
        assert.ok(!printed.includes(secret), `a secret in ${printed.slice(0, 200)}`);
      }
    }
  }
});

test("the fake saw what the tests did", async () => {
  const stats = await fake.stats();
  assert.ok(stats.codeExchanges >= 5);
  assert.ok(stats.spentRefreshTokenReuses >= 2, "the spent token was refused (by hand and through the engine)");
  assert.ok(stats.rateLimited + stats.faultsServed >= 1);
  const fp = fingerprint([...secrets][1]);
  assert.match(fp, /^fp:[0-9a-f]{12}$/);
});
