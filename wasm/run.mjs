// hoopai-oauth's core under Node: the WASM module builds each token request
// and parses each answer; Node's global fetch moves the bytes.
//
// Against the fake HighLevel server on loopback (the hoopai-fake binary), it
// exchanges the fake's authorization code for a first refresh token, refreshes
// with it (the answer carries a rotated refresh token), then sends the same,
// now spent, refresh token again and shows the typed error: kind "invalid grant".
//
// Usage: node wasm/run.mjs HANDOFF.json
//   HANDOFF.json is the file the fake server writes (--handoff).
//
// Every token and secret is printed redacted; at the end the script checks
// that its own output holds none of them. The last line is machine-readable:
//   RESULT rotated=<true|false> reuse_kind=<kind>
// and the exit status is 0 only for a rotation followed by "invalid grant".

import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { inspect } from "node:util";

import { OAuthClient, maxBodyBytes, parseTokenResponse, redact } from "./js/node.mjs";

// ---- output, with a check that no secret was ever printed -------------------

const printed = [];
const secrets = new Set();
let step = 0;

function say(line) {
  printed.push(line);
  console.log(line);
}

function stepLine(line) {
  say(`${String(++step).padStart(2)}. ${line}`);
}

/** Remembers a secret, so that the final check looks for it. */
function secret(value) {
  if (typeof value === "string" && value.length > 0) secrets.add(value);
  return value;
}

// ---- the HTTP side: Node's fetch --------------------------------------------

/** Sends a request built by the module; returns the parsed token or throws. */
async function send(request) {
  const url = new URL(request.url);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (!(host === "localhost" || (isIP(host) && (host === "::1" || host.startsWith("127."))))) {
    throw new Error(`refusing to send to ${url.origin}: this example talks to loopback only`);
  }
  const sentAtMs = Date.now();
  const response = await fetch(request.url, {
    method: request.method,
    headers: request.headers,
    body: request.body, // non-enumerable: read by name
    redirect: request.redirect,
    signal: AbortSignal.timeout(30_000),
  });
  const body = await readCapped(response, maxBodyBytes());
  return parseTokenResponse(response.status, response.headers, body, sentAtMs);
}

/** The whole body, or its first `cap + 1` bytes (the parser refuses those). */
async function readCapped(response, cap) {
  if (!response.body) return new Uint8Array();
  const reader = response.body.getReader();
  const chunks = [];
  let total = 0;
  while (total <= cap) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
  }
  if (total > cap) await reader.cancel();
  const out = new Uint8Array(Math.min(total, cap + 1));
  let at = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, out.length - at);
    out.set(part, at);
    at += part.length;
    if (at === out.length) break;
  }
  return out;
}

function describe(token) {
  secret(token.accessToken);
  secret(token.refreshToken);
  return (
    `access ${token.accessTokenRedacted} · refresh ${token.refreshTokenRedacted ?? "(none)"}` +
    ` · ${token.userType ?? "unknown"} token for ${token.locationId ?? token.companyId ?? "?"}` +
    ` · expires in ${token.expiresIn} s`
  );
}

// ---- the walk ------------------------------------------------------------------

async function main() {
  const handoffPath = process.argv[2];
  if (!handoffPath) throw new Error("usage: node run.mjs HANDOFF.json");
  const fake = JSON.parse(readFileSync(handoffPath, "utf8"));
  secret(fake.clientSecret);
  secret(fake.code);

  const client = new OAuthClient(fake.clientId, fake.clientSecret, fake.baseUrl, fake.redirectUri);
  stepLine(
    `fake HighLevel server at ${client.baseUrl}; app ${client.clientId}, ` +
      `client secret ${redact(fake.clientSecret)}`,
  );

  // The code exchange gives the grant's first refresh token.
  const exchange = client.codeExchangeRequest(fake.code, "Location");
  stepLine(`code exchange built by the module: ${inspect(exchange, { breakLength: Infinity })}`);
  stepLine(
    `its body (${exchange.body.length} bytes) is a non-enumerable property: printing the request ` +
      `shows ${JSON.stringify(Object.keys(exchange))}`,
  );
  const first = await send(exchange);
  const spent = secret(first.refreshToken);
  stepLine(`code exchanged: ${describe(first)}`);
  stepLine(`parsed token as printed: ${JSON.stringify(first)}`);

  // Refresh: the answer carries a new refresh token; the old one is spent.
  const refreshed = await send(client.refreshRequest(spent, "Location"));
  const rotated =
    typeof refreshed.refreshToken === "string" &&
    refreshed.refreshToken.length > 0 &&
    refreshed.refreshToken !== spent;
  stepLine(
    `refreshed: ${describe(refreshed)} · refresh token ` +
      (rotated ? `rotated ${redact(spent)} → ${refreshed.refreshTokenRedacted}` : "NOT rotated"),
  );

  // The same refresh token again: spent, so the grant is refused.
  let reuseKind = "none";
  try {
    const again = await send(client.refreshRequest(spent, "Location"));
    stepLine(`the spent refresh token was accepted again: ${describe(again)}`);
  } catch (error) {
    if (error?.name !== "OAuthError") throw error;
    reuseKind = error.kind;
    stepLine(
      `the spent refresh token ${redact(spent)} again: OAuthError kind "${error.kind}" ` +
        `(class ${error.class}, HTTP ${error.status}, code ${error.code ?? "-"}, ` +
        `transient ${error.transient}): ${error.advice}`,
    );
    stepLine(`the error as printed: ${inspect(error, { breakLength: Infinity }).split("\n")[0]}`);
    stepLine(`its fields: ${JSON.stringify(Object.fromEntries(Object.entries(error)))}`);
  }

  const leaked = [...secrets].filter((s) => printed.some((line) => line.includes(s)));
  if (leaked.length > 0) {
    throw new Error(`${leaked.length} secret(s) appeared in the output in full`);
  }
  stepLine(`checked: none of the ${secrets.size} secrets seen appears in full in this output`);
  say(`RESULT rotated=${rotated} reuse_kind=${reuseKind}`);
  if (!rotated || reuseKind !== "invalid grant") process.exitCode = 1;
}

main().catch((error) => {
  // An OAuthError's message and enumerable fields carry no secret.
  console.error(`run.mjs failed: ${error?.message ?? error}`);
  process.exitCode = 1;
});
