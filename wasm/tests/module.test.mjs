// The JavaScript layer of the module, without a network: what a request, a
// token and an error look like from JavaScript, where their secrets are, the
// typed errors for unusable arguments, and the engine's inputs refused when
// unusable. Run: node --test wasm/tests/module.test.mjs (after wasm/build.sh).

import assert from "node:assert/strict";
import { test } from "node:test";
import { inspect } from "node:util";

import { Engine, OAuthClient, maxBodyBytes, parseTokenResponse, redact } from "../js/node.mjs";
import * as tokenOnly from "../js/token-only.node.mjs";

const CLIENT_SECRET = "test-client-secret-placeholder-0001";
const REFRESH = "rt-test-placeholder-00000000000000000001";
const ACCESS = "at-test-placeholder-00000000000000000001";
const NEW_REFRESH = "rt-test-placeholder-00000000000000000002";
const client = new OAuthClient("6578278e879ad2646715ba9c-test", CLIENT_SECRET, "http://127.0.0.1:9");
const json = (value) => new TextEncoder().encode(JSON.stringify(value));

/** Calls `f`, which must throw an OAuthError; returns it. */
function oauthError(f) {
  try {
    f();
  } catch (error) {
    assert.equal(error.name, "OAuthError");
    assert.ok(error instanceof Error);
    return error;
  }
  assert.fail("no error thrown");
}

test("a refresh request is a fetch init whose body is read by name only", () => {
  const request = client.refreshRequest(REFRESH, "Location");
  assert.equal(request.url, "http://127.0.0.1:9/oauth/token");
  assert.equal(request.method, "POST");
  assert.equal(request.redirect, "manual");
  assert.deepEqual(new Headers(request.headers).get("content-type"), "application/x-www-form-urlencoded");
  const form = new URLSearchParams(new TextDecoder().decode(request.body));
  assert.equal(form.get("grant_type"), "refresh_token");
  assert.equal(form.get("refresh_token"), REFRESH);
  assert.equal(form.get("client_secret"), CLIENT_SECRET);
  assert.equal(form.get("user_type"), "Location");
  assert.deepEqual(Object.keys(request), ["url", "method", "headers", "redirect"]);
  for (const printed of [inspect(request, { depth: 9 }), JSON.stringify(request)]) {
    assert.ok(!printed.includes(REFRESH) && !printed.includes(CLIENT_SECRET), printed);
  }
});

test("a v3 client names the fields in camelCase and sends Version: v3", () => {
  const v3 = new OAuthClient("c-1", CLIENT_SECRET, undefined, null, "v3");
  assert.equal(v3.baseUrl, "https://services.leadconnectorhq.com");
  const request = v3.codeExchangeRequest("code-placeholder-0001");
  assert.equal(new Headers(request.headers).get("version"), "v3");
  const form = new URLSearchParams(new TextDecoder().decode(request.body));
  assert.equal(form.get("grantType"), "authorization_code");
  assert.equal(form.get("code"), "code-placeholder-0001");
});

test("a token's secrets are not enumerable; every header form is read", () => {
  const body = json({
    access_token: ACCESS,
    token_type: "Bearer",
    expires_in: 86399,
    refresh_token: NEW_REFRESH,
    userType: "Location",
    locationId: "loc-1",
  });
  const forms = [
    new Headers({ "content-type": "application/json" }),
    new Map([["content-type", "application/json"]]),
    [["content-type", "application/json"]],
    { "content-type": "application/json" },
    undefined,
  ];
  for (const headers of forms) {
    const token = parseTokenResponse(200, headers, body, 1_000);
    assert.equal(token.accessToken, ACCESS);
    assert.equal(token.refreshToken, NEW_REFRESH);
    assert.equal(token.accessTokenRedacted, redact(ACCESS));
    assert.equal(token.expiresAtMs, 1_000 + 86_399_000);
    assert.equal(token.locationId, "loc-1");
    for (const printed of [inspect(token), JSON.stringify(token), JSON.stringify({ ...token })]) {
      assert.ok(!printed.includes(ACCESS) && !printed.includes(NEW_REFRESH), printed);
    }
  }
});

test("a spent refresh token is the kind 'invalid grant'", () => {
  const body = json({ statusCode: 400, message: "Invalid grant: refresh token is invalid" });
  const error = oauthError(() => parseTokenResponse(400, new Headers(), body, Date.now()));
  assert.equal(error.kind, "invalid grant");
  assert.equal(error.class, "server");
  assert.equal(error.status, 400);
  assert.equal(error.transient, false);
  assert.match(error.message, /^invalid grant \(HTTP 400\)/);
});

test("a refresh token in an unusable answer is kept, not printed", () => {
  const body = json({ refresh_token: NEW_REFRESH });
  const error = oauthError(() => parseTokenResponse(200, [], body, Date.now()));
  assert.equal(error.kind, "unreadable response");
  assert.equal(error.rescuedRefreshToken, NEW_REFRESH);
  assert.equal(error.rescuedRefreshTokenRedacted, redact(NEW_REFRESH));
  for (const printed of [inspect(error), JSON.stringify(error), error.message, error.stack]) {
    assert.ok(!printed.includes(NEW_REFRESH), printed);
  }
});

test("a body past maxBodyBytes is refused unread", () => {
  const body = new Uint8Array(maxBodyBytes() + 1).fill(0x20);
  const error = oauthError(() => parseTokenResponse(200, [], body, Date.now()));
  assert.equal(error.kind, "unreadable response");
  assert.equal(error.unreadableReason, "TooLarge");
});

test("unusable arguments are typed errors, and no token is sent as 'undefined'", () => {
  const cases = [
    () => client.refreshRequest(undefined),
    () => client.refreshRequest(42),
    () => client.refreshRequest(""),
    () => client.refreshRequest(REFRESH, "Agency"),
    () => client.codeExchangeRequest(null),
    () => new OAuthClient("c-1", CLIENT_SECRET, "http://127.0.0.1:9", undefined, "v4"),
    () => parseTokenResponse(200, 7, json({}), 0),
    () => parseTokenResponse(200, [["content-type"]], json({}), 0),
    () => parseTokenResponse(200, [["content type", "x"]], json({}), 0),
    () => parseTokenResponse(200.5, [], json({}), 0),
    () => parseTokenResponse(200, [], json({}), Number.NaN),
    () => parseTokenResponse(200, [], json({}), -1),
  ];
  for (const f of cases) {
    const error = oauthError(f);
    assert.equal(error.kind, "invalid input", `${f}: ${error.message}`);
    assert.equal(error.class, "caller");
  }
  const config = oauthError(() => new OAuthClient("c-1", CLIENT_SECRET, "http://example.com"));
  assert.equal(config.kind, "invalid configuration");
  assert.ok(!config.message.includes(CLIENT_SECRET));
});

test("the engine refuses unusable inputs with typed errors, and loses nothing", () => {
  const engine = new Engine(client, { jitterSeed: 1n });
  const token = parseTokenResponse(
    200,
    [],
    json({ access_token: ACCESS, refresh_token: NEW_REFRESH, expires_in: 86399 }),
    1_767_225_600_000,
  );
  engine.insert("loc-1", token, 1_767_225_600_000);
  const persist = engine.pollOutput(1_767_225_600_000);
  assert.equal(persist.type, "persist");
  assert.deepEqual(Object.keys(persist), ["type", "grant", "version", "replaces", "refresh", "status", "expiresAtMs"]);
  for (const printed of [inspect(persist, { depth: 9 }), JSON.stringify(persist)]) {
    assert.ok(!printed.includes(ACCESS) && !printed.includes(NEW_REFRESH), printed);
  }
  const cases = [
    () => engine.handleWrite("loc-1", persist.version, undefined, 0),
    () => engine.handleWrite("loc-1", persist.version, { written: true, noRecord: true }, 0),
    () => engine.handleWrite("loc-1", persist.version, { written: 1 }, 0),
    () => engine.handleWrite("loc-1", 1.5, { written: true }, 0),
    () => engine.handleWrite("loc-1", persist.version, { conflict: "{not json" }, 0),
    // A store that forgot to return is not "no record": that would forget the grant.
    () => engine.handleLoad("loc-1", undefined, 0),
    () => engine.handleSend("not-an-id", { notDispatched: true }, 0),
    () => engine.handleSend("1", { response: { status: 200, headers: [] } }, 0),
    () => engine.remove("loc-1", "gone", 0),
    () => engine.restore(JSON.stringify({ schema: 1, grant: "g", version: 2 ** 60 }), 0),
    () => engine.insert("loc-2", "{}", 0),
    () => new Engine(client, { refreshMargin: 5 }),
    () => new Engine(client, { backoff: { baseMs: 1 } }),
    () => engine.accessToken("loc-1", Number.NaN),
  ];
  for (const f of cases) {
    const error = oauthError(f);
    assert.equal(error.kind, "invalid input", `${f}: ${error.message}`);
    for (const printed of [error.message, inspect(error), JSON.stringify(error)]) {
      assert.ok(!printed.includes(ACCESS) && !printed.includes(NEW_REFRESH), printed);
    }
  }
  // The grant is still there, its write still unconfirmed: the token is handed
  // out only once the write is reported.
  engine.handleWrite("loc-1", persist.version, { written: true }, 1_767_225_600_000);
  const ready = engine.accessToken("loc-1", 1_767_225_600_000);
  assert.equal(ready.type, "ready");
  assert.equal(ready.token, ACCESS);
  assert.deepEqual(Object.keys(ready), ["type", "tokenRedacted"]);
  assert.equal(oauthError(() => engine.accessToken("nobody", 0)).kind, "unknown grant");
});

test("the token-only module builds and parses the same", () => {
  const small = new tokenOnly.OAuthClient("6578278e879ad2646715ba9c-test", CLIENT_SECRET, "http://127.0.0.1:9");
  const request = small.refreshRequest(REFRESH, "Location");
  assert.equal(request.url, "http://127.0.0.1:9/oauth/token");
  const token = tokenOnly.parseTokenResponse(200, [], json({ access_token: ACCESS, expires_in: 10 }), 1_000);
  assert.equal(token.accessToken, ACCESS);
  assert.equal(token.expiresAtMs, 11_000);
  assert.equal(tokenOnly.Engine, undefined);
});
