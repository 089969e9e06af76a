// Compiled by `tsc --noEmit` (wasm/ci.sh): the declarations in js/*.d.ts
// describe what the package does, used as the README and the tests use it.
// A wrong name, a missing variant or a non-exhaustive switch fails the build.

import {
  DurableObjectStore,
  Engine,
  type EngineEvent,
  MemoryStore,
  OAuthClient,
  type Output,
  SeenWebhooks,
  TokenError,
  TokenService,
  type TokenStatus,
  WebhookVerifier,
  consentState,
  parseCallback,
  redact,
} from "hoopai-oauth";
import * as small from "hoopai-oauth/token-only";

function never(x: never): never {
  throw new Error(`unexpected ${JSON.stringify(x)}`);
}

/** Every token status has an answer: the switch is exhaustive. */
export function answer(status: TokenStatus): string | null {
  switch (status.type) {
    case "ready":
      return status.token;
    case "pending":
    case "store-failing":
      return null;
    case "suspended":
    case "unauthorized":
      return `later: ${status.untilMs}`;
    case "reauthorization-needed":
    case "configuration-rejected":
      return "never";
    default:
      return never(status);
  }
}

/** A driver's loop over outputs, exhaustive too. */
export function drain(engine: Engine, write: (json: string, replaces: number | null) => void): void {
  for (let out: Output | undefined; (out = engine.pollOutput(Date.now())) !== undefined; ) {
    switch (out.type) {
      case "persist":
        write(out.recordJson, out.replaces);
        engine.handleWrite(out.grant, out.version, { written: true }, Date.now());
        break;
      case "send":
        engine.handleSend(out.id, { notDispatched: true }, Date.now());
        break;
      case "load":
        engine.handleLoad(out.grant, null, Date.now());
        break;
      case "delete":
      case "other":
        break;
      case "claim":
        engine.handleClaim(out.key, { failed: "no shared budget here" }, Date.now());
        break;
      case "event":
        log(out.event);
        break;
      default:
        never(out);
    }
  }
}

function log(event: EngineEvent): void {
  if (event.type === "retry-scheduled" && event.failure.type === "answer") {
    console.log(event.grant, event.failure.error.kind, event.message);
  }
}

export async function app(): Promise<void> {
  const client = new OAuthClient({ clientId: "id", clientSecret: "secret" });
  const service = new TokenService({ config: client, store: new MemoryStore(), engine: { jitterSeed: 1n } });
  const { grant } = await service.exchangeCode("code");
  try {
    const token = await service.accessToken(grant, { waitMs: 5_000 });
    console.log(redact(await service.tokenAfter401(grant, token)));
  } catch (e) {
    if (e instanceof TokenError && e.kind === "reauthorization-needed") console.log(e.grant);
  }
  const state = consentState(crypto.getRandomValues(new Uint8Array(32)));
  const url: string = client.consentUrl({ scopes: ["contacts.readonly"], state });
  const { code } = parseCallback(url, state);
  await service.exchangeCode(code, { userType: "Location" });
  const verifier = new WebhookVerifier(client, { keys: ["MCowBQYDK2VwAyEA"], windowMs: 300_000 });
  const event = verifier.verify(new Headers(), new Uint8Array(), Date.now(), new SeenWebhooks());
  if (event.payload.kind === "install" && event.payload.target.type === "bulk") console.log(event.payload.target.locationIds);
  const response: Response = await service.webhookResponse(new Request("http://x/", { method: "POST" }));
  console.log(response.status, service.stats().inFlight, (await service.shutdown()).unwritten.map((u) => u.grant));
  const storage = {} as ConstructorParameters<typeof DurableObjectStore>[0];
  new DurableObjectStore(storage);
  const token = small.parseTokenResponse(200, [], new Uint8Array(), Date.now());
  console.log(token.accessTokenRedacted, new small.OAuthClient("id", "secret").refreshRequest("rt").url);
}
