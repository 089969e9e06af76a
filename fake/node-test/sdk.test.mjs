// The official HighLevel Node SDK, @gohighlevel/api-client (npm), against the
// hoopai-fake binary over loopback, with no setting beyond the base URL: the
// SDK sends what it sends by default (Version 2023-02-21, form bodies, the v2
// paths) and must get what HighLevel would answer.
//
// Run: cargo build -p hoopai-fake && npm ci && npm test (in this folder).
// No assertion message holds a token: a failure prints none.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { after, before, describe, test } from "node:test";

import { fingerprint, startFake } from "./fake.mjs";

const require = createRequire(import.meta.url);
const { HighLevel, GHLError } = require("@gohighlevel/api-client");

let fake;
let h; // the handoff

/** An SDK client as an app would make it: the base URL is the one setting. */
function sdk(extra = {}) {
  HighLevel.BASE_URL = h.baseUrl;
  return new HighLevel({ clientId: h.clientId, clientSecret: h.clientSecret, ...extra });
}

/** The error a promise rejects with. */
async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("the call succeeded");
}

/** A fresh install of the fake, and its code. */
async function install(body) {
  return fake.admin("POST", "installs", body);
}

before(async () => {
  fake = await startFake(["--agency", "agency-1:2/3"]);
  h = fake.handoff;
});

after(async () => {
  const stats = await fake.stop();
  assert.match(stats, / stopped_by=stdin_closed$/);
});

describe("the OAuth endpoints", () => {
  test("code exchange, refresh, and the spent refresh token refused", async () => {
    const ghl = sdk();
    const { code } = await install({ type: "location", companyId: "company-9", locationId: "loc-9" });
    const first = await ghl.oauth.getAccessToken({
      client_id: h.clientId,
      client_secret: h.clientSecret,
      grant_type: "authorization_code",
      code,
      user_type: "Location",
    });
    assert.equal(first.userType, "Location");
    assert.equal(first.locationId, "loc-9");
    assert.equal(first.expires_in, 86399);
    assert.equal(typeof first.refresh_token, "string");

    const second = await ghl.oauth.refreshToken(first.refresh_token, h.clientId, h.clientSecret, "refresh_token", "Location");
    assert.ok(second.refresh_token !== first.refresh_token, "the refresh token rotated");

    const error = await rejection(
      ghl.oauth.refreshToken(first.refresh_token, h.clientId, h.clientSecret, "refresh_token", "Location"),
    );
    assert.ok(error instanceof GHLError);
    assert.equal(error.statusCode, 400);
    assert.equal(error.message, "Invalid grant: refresh token is invalid");
    assert.deepEqual(error.response, { statusCode: 400, message: "Invalid grant: refresh token is invalid" });

    // The fake saw the SDK's default Version, and counted the reuse.
    const { entries } = await fake.admin("GET", "log?since=0&limit=10000");
    const [codeFp, refreshFp] = [await fingerprint(code), await fingerprint(first.refresh_token)];
    const mine = entries.filter((e) => e.code === codeFp || e.refreshToken === refreshFp);
    assert.deepEqual(
      mine.map((e) => [e.grantType, e.status, e.version]),
      [
        ["authorization_code", 200, "2023-02-21"],
        ["refresh_token", 200, "2023-02-21"],
        ["refresh_token", 400, "2023-02-21"],
      ],
    );
    const { fake: counters } = await fake.admin("GET", "stats");
    assert.ok(counters.spentRefreshTokenReuses >= 1);
    assert.equal(counters.unpublishedVersions, 0);
  });

  test("an agency: Company exchange, a Location token minted, installed locations", async () => {
    const ghl = sdk();
    const agency = h.installs.find((i) => i.type === "agency");
    const company = await ghl.oauth.getAccessToken({
      client_id: h.clientId,
      client_secret: h.clientSecret,
      grant_type: "authorization_code",
      code: agency.code,
      user_type: "Company",
    });
    assert.equal(company.userType, "Company");
    assert.deepEqual(company.approvedLocations, ["agency-1-loc-1", "agency-1-loc-2"]);
    // The SDK finds the agency token in its session storage by companyId.
    await ghl.getSessionStorage().setSession("agency-1", company);

    const minted = await ghl.oauth.getLocationAccessToken({ companyId: "agency-1", locationId: "agency-1-loc-2" });
    assert.equal(minted.locationId, "agency-1-loc-2");
    assert.equal(typeof minted.access_token, "string");

    const listed = await ghl.oauth.getInstalledLocation({ companyId: "agency-1", appId: h.appId });
    assert.equal(listed.count, 3);
    assert.deepEqual(
      listed.locations.map((l) => [l._id, l.isInstalled]),
      [
        ["agency-1-loc-1", true],
        ["agency-1-loc-2", true],
        ["agency-1-loc-3", false],
      ],
    );

    // Not approved for the app: 403, as the SDK's typed error.
    const error = await rejection(ghl.oauth.getLocationAccessToken({ companyId: "agency-1", locationId: "agency-1-loc-3" }));
    assert.equal(error.statusCode, 403);
    assert.equal(error.code, "FORBIDDEN");
  });
});

describe("the API", () => {
  test("a 401 on GET /locations/{id} makes the SDK refresh and retry", async () => {
    const ghl = sdk();
    const { code } = await install({ type: "location", companyId: "company-7", locationId: "loc-7" });
    const token = await ghl.oauth.getAccessToken({
      client_id: h.clientId,
      client_secret: h.clientSecret,
      grant_type: "authorization_code",
      code,
      user_type: "Location",
    });
    await ghl.getSessionStorage().setSession("loc-7", token);

    const before = await ghl.locations.getLocation({ locationId: "loc-7" });
    assert.deepEqual(before.location, { id: "loc-7", companyId: "company-7", name: "loc-7", address: "" });

    // The server expires the token early; the SDK does not know.
    assert.deepEqual(await fake.admin("POST", "expire", { accessToken: token.access_token }), { expired: 1 });
    const since = (await fake.admin("GET", "log?limit=10000")).next;
    const after = await ghl.locations.getLocation({ locationId: "loc-7" });
    assert.equal(after.location.id, "loc-7");

    const stored = await ghl.getSessionStorage().getSession("loc-7");
    assert.ok(stored.refresh_token !== token.refresh_token, "the SDK stored the rotated refresh token");
    const { entries } = await fake.admin("GET", `log?since=${since}`);
    assert.deepEqual(
      entries.map((e) => [e.method, e.path, e.status, e.message ?? null]),
      [
        ["GET", "/locations/loc-7", 401, "Invalid JWT"],
        ["POST", "/oauth/token", 200, null],
        ["GET", "/locations/loc-7", 200, null],
      ],
    );
    assert.equal(entries[0].bearer, await fingerprint(token.access_token));
    assert.equal(entries[1].refreshToken, await fingerprint(token.refresh_token));
    assert.equal(entries[2].bearer, await fingerprint(stored.access_token));
  });

  test("scripted faults reach the SDK as its typed errors", async () => {
    const ghl = sdk();
    const { code } = await install({ type: "location", companyId: "company-8", locationId: "loc-8" });
    const token = await ghl.oauth.getAccessToken({
      client_id: h.clientId,
      client_secret: h.clientSecret,
      grant_type: "authorization_code",
      code,
    });
    await ghl.getSessionStorage().setSession("loc-8", token);
    await fake.admin("POST", "faults", { fault: "rate-limited", retryAfterSecs: 7 });
    await fake.admin("POST", "faults", { fault: "drop-connection" });
    const limited = await rejection(ghl.locations.getLocation({ locationId: "loc-8" }));
    assert.equal(limited.code, "RATE_LIMIT");
    assert.equal(limited.rateLimit.remaining, 0);
    assert.equal(limited.rateLimit.scope, "burst");
    const dropped = await rejection(ghl.locations.getLocation({ locationId: "loc-8" }));
    assert.equal(dropped.code, "NETWORK");
    assert.equal((await ghl.locations.getLocation({ locationId: "loc-8" })).location.id, "loc-8");
  });
});

describe("webhooks", () => {
  let app;
  let url;
  const received = [];

  before(async () => {
    // The app's webhook route: the SDK's own middleware, given the raw body.
    app = createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", async () => {
        req.rawBody = Buffer.concat(chunks);
        req.body = JSON.parse(req.rawBody.toString("utf8"));
        const ghl = sdk({ webhookPublicKey: h.webhookPublicKey.spkiBase64 });
        await new Promise((next) => ghl.webhooks.subscribe()(req, res, next));
        received.push({ raw: req.rawBody, signature: req.headers["x-ghl-signature"], valid: req.isSignatureValid });
        res.writeHead(req.isSignatureValid ? 200 : 401).end();
      });
    });
    await new Promise((resolve) => app.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${app.address().port}/webhooks/highlevel`;
  });

  after(() => new Promise((resolve) => app.close(resolve)));

  test("an INSTALL verifies with the fake's key, in every form the SDK takes", async () => {
    const made = await install({ type: "location", companyId: "company-5", locationId: "loc-5", webhook: true, url });
    assert.equal(made.webhook.delivered, true);
    assert.equal(made.webhook.status, 200);
    const delivery = received.at(-1);
    assert.equal(delivery.valid, true);
    const body = JSON.parse(delivery.raw);
    assert.equal(body.type, "INSTALL");
    assert.equal(body.appId, h.appId);
    assert.equal(body.locationId, "loc-5");

    const ghl = sdk();
    for (const form of ["spkiBase64", "pem", "rawHex", "rawBase64"]) {
      const key = h.webhookPublicKey[form];
      assert.equal(ghl.webhooks.verifyEd25519Signature(delivery.raw, delivery.signature, key), true, form);
    }
    // The admin API hands out the same key.
    assert.deepEqual(await fake.admin("GET", "webhook-key"), h.webhookPublicKey);
  });

  test("an UNINSTALL verifies, and a tampered body is refused", async () => {
    const answer = await fake.admin("POST", "uninstall", { locationId: "loc-5", url });
    assert.equal(answer.webhook.delivered, true);
    const delivery = received.at(-1);
    assert.equal(JSON.parse(delivery.raw).type, "UNINSTALL");

    const ghl = sdk();
    const tampered = Buffer.from(delivery.raw.toString("utf8").replace("loc-5", "loc-6"));
    assert.equal(ghl.webhooks.verifyEd25519Signature(tampered, delivery.signature, h.webhookPublicKey.pem), false);

    // Through the SDK's middleware too: the app answers 401 to a forgery.
    const forged = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-ghl-signature": delivery.signature },
      body: tampered,
    });
    assert.equal(forged.status, 401);
    assert.equal(received.at(-1).valid, false);
  });
});
