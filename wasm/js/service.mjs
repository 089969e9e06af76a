// TokenService: drives the engine (WASM) with a store and `fetch`. It adds no
// protocol logic: every decision (what to refresh, when, what to write, what
// a caller gets) is the engine's; this file moves bytes and reports outcomes.
//
// - Outputs are drained after every input, with no I/O awaited while
//   draining: a `persist`, `load` or `delete` goes to the store lanes (in
//   order per grant, each call with a deadline, see store-lanes.mjs); a
//   `send` is fetched with the engine's request timeout, or handed back as
//   not dispatched when found past its `notAfterMs`; an `event` goes to the
//   listeners and wakes the grant's callers.
// - Callers are answered from the engine: `accessToken` asks
//   `Engine.accessToken` and, while the answer is `pending`, waits for the
//   engine's next word about that grant, up to `waitMs`.
// - Shutdown is the engine's `shutDown`: nothing new starts, and the service
//   waits for requests out and unwritten records within a grace period.

import {
  Engine,
  OAuthClient,
  SeenWebhooks,
  WebhookVerifier,
  maxBodyBytes,
  parseTokenResponse,
} from "../pkg/hoopai_oauth_wasm.js";
import { StoreLanes } from "./store-lanes.mjs";

/** Why `accessToken` (or another call) gave no token: `kind` says what to do. */
export class TokenError extends Error {
  constructor(kind, grant, message, details = {}) {
    super(message);
    this.name = "TokenError";
    /** `unknown-grant`, `timed-out`, `store-failing`, `suspended`, `unauthorized`,
     * `reauthorization-needed`, `configuration-rejected`, `write-pending`, `stopped`. */
    this.kind = kind;
    this.grant = grant;
    Object.assign(this, details);
  }
}

/** The largest webhook body read, in bytes (hoopai_oauth::MAX_WEBHOOK_BYTES). */
export const MAX_WEBHOOK_BYTES = 1024 * 1024;

const DEFAULTS = {
  waitMs: 30_000,
  storeTimeoutMs: 10_000,
  shutdownGraceMs: 10_000,
  requestTimeoutMs: 60_000,
};

const OPTIONS = [
  "config",
  "store",
  "fetch",
  "engine",
  "waitMs",
  "storeTimeoutMs",
  "webhooks",
  "onEvent",
  "timers",
];

/** A jitter seed from `crypto.getRandomValues`: each process its own. */
function randomSeed() {
  return crypto.getRandomValues(new BigUint64Array(1))[0];
}

/** The body of a `fetch` answer, or its first `cap + 1` bytes (the parsers refuse those). */
export async function readCapped(response, cap) {
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
  if (total > cap) await reader.cancel().catch(() => {});
  const body = new Uint8Array(Math.min(total, cap + 1));
  let at = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, body.length - at);
    body.set(part, at);
    at += part.length;
    if (at === body.length) break;
  }
  return body;
}

/** What a failed fetch says, for the engine's events (no secret in it). */
function transportMessage(error) {
  const name = error?.name ?? "Error";
  if (name === "TimeoutError" || name === "AbortError") return "no answer within the request timeout";
  const cause = error?.cause?.code ?? error?.cause?.message;
  return cause ? `${error.message} (${cause})` : String(error?.message ?? error);
}

export class TokenService {
  #client;
  #engine;
  #fetch;
  #lanes;
  #store;
  #storeTimeoutMs;
  #waitMs;
  #requestTimeoutMs;
  #timers;
  #timer = null;
  #wakeAt = undefined;
  #pumping = false;
  #stopping = false;
  #ready;
  #verifier;
  #seen = new SeenWebhooks();
  #listeners = new Set();
  /** grant -> Set of callers waiting for news */
  #waiters = new Map();
  /** grant -> callers of `add` waiting for the record to be written */
  #adds = new Map();
  /** grant -> callers waiting for the record to be deleted */
  #deletes = new Map();
  /** Callers waiting for any progress (shutdown). */
  #progress = new Set();
  #sendsOut = 0;
  /** Shared-store mode: grants another process added are read from the store. */
  #shared = false;
  /** grant -> the read of its record, while one is out */
  #discoveries = new Map();

  /**
   * @param options `{ config, store, fetch?, engine?, waitMs?, storeTimeoutMs?,
   *   webhooks?, onEvent?, timers? }`; see index.d.ts.
   */
  constructor(options) {
    if (options === null || typeof options !== "object") throw new TypeError("TokenService needs options");
    for (const key of Object.keys(options)) {
      if (!OPTIONS.includes(key)) throw new TypeError(`TokenService has no option ${JSON.stringify(key)}`);
    }
    const { config, store, fetch, engine = {}, waitMs, storeTimeoutMs, webhooks, onEvent, timers } = options;
    if (!store) throw new TypeError("TokenService needs a store");
    this.#client = config instanceof OAuthClient ? config : new OAuthClient(config);
    this.#fetch = fetch ?? globalThis.fetch.bind(globalThis);
    const settings = { ...engine };
    if (settings.jitterSeed === undefined) settings.jitterSeed = randomSeed();
    this.#engine = new Engine(this.#client, settings);
    this.#shared = settings.sharedStore !== undefined;
    this.#requestTimeoutMs = settings.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.#waitMs = waitMs ?? DEFAULTS.waitMs;
    this.#timers = timers !== false;
    this.#verifier = new WebhookVerifier(this.#client, webhooks ?? {});
    if (onEvent) this.#listeners.add(onEvent);
    this.#store = store;
    this.#storeTimeoutMs = storeTimeoutMs ?? DEFAULTS.storeTimeoutMs;
    this.#lanes = new StoreLanes(store, storeTimeoutMs ?? DEFAULTS.storeTimeoutMs, (r) => this.#stored(r));
    this.#ready = this.#restore(store, storeTimeoutMs ?? DEFAULTS.storeTimeoutMs);
    // Surfaced by the first call that awaits it.
    this.#ready.catch(() => {});
  }

  /** Resolves once the store's records are restored: `{ restored, corrupt }`. */
  get ready() {
    return this.#ready;
  }

  /** The app's configuration (consent URL, requests). */
  get client() {
    return this.#client;
  }

  /** Listens to the engine's events; returns a function that stops listening. */
  onEvent(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #restore(store, timeoutMs) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`reading the grants did not complete within ${timeoutMs} ms`)), timeoutMs);
    });
    let records;
    try {
      records = await Promise.race([store.loadAll(), timeout]);
    } finally {
      clearTimeout(timer);
    }
    const report = { restored: 0, corrupt: [] };
    for (const json of records) {
      try {
        this.#engine.restore(json, Date.now());
        report.restored += 1;
      } catch (error) {
        report.corrupt.push({ kind: error.kind, reason: error.message });
      }
    }
    this.#pump();
    return report;
  }

  // ---- callers ----------------------------------------------------------------

  /**
   * A usable access token of `grant` (a string): at once when the engine holds
   * one, else after the refresh the engine runs, up to `waitMs`.
   */
  async accessToken(grant, { waitMs } = {}) {
    await this.#ready;
    const deadline = Date.now() + (waitMs ?? this.#waitMs);
    let discovered = false;
    for (;;) {
      if (this.#stopping) throw new TokenError("stopped", grant, `${grant}: the token service is shutting down`);
      const expired = Date.now() >= deadline;
      const answer = this.#decide(grant, expired);
      if (answer?.error?.kind === "unknown-grant" && !discovered) {
        // Shared-store mode: another process may have added it since.
        discovered = true;
        const found = await this.#discover(grant);
        if (typeof found === "string") throw new TokenError("store-failing", grant, `${grant}: ${found}`, { failure: found });
        if (found) continue;
      }
      if (answer) {
        if (answer.error) throw answer.error;
        return answer.token;
      }
      if (expired) {
        const view = this.#engine.grant(grant);
        const lastFailure = view?.lastFailure?.message;
        throw new TokenError("timed-out", grant, `${grant}: no access token within the wait${lastFailure ? `; last failure: ${lastFailure}` : ""}`, { lastFailure });
      }
      await this.#news(grant, deadline);
    }
  }

  /**
   * After an API answered 401 to `rejected` (the access token it was given):
   * starts one refresh (however many callers report the same token), and
   * answers as `accessToken`. The rejected token is never handed out again.
   */
  async tokenAfter401(grant, rejected, options) {
    await this.#ready;
    if (typeof rejected !== "string") throw new TypeError("tokenAfter401 needs the rejected access token");
    if (!this.#stopping) {
      try {
        this.#engine.refreshNow(grant, rejected, Date.now());
      } catch (error) {
        if (error.kind !== "unknown grant") throw error;
      }
      this.#pump();
    }
    return this.accessToken(grant, options);
  }

  /**
   * The answer for a caller of `grant` now: `{ token }`, `{ error }`, or
   * `null` to keep waiting. Every status the engine gives has its answer:
   * the switch ends in an error, not in waiting.
   */
  #decide(grant, expired) {
    let status;
    try {
      status = this.#engine.accessToken(grant, Date.now());
    } catch (error) {
      if (error.kind === "unknown grant") {
        return { error: new TokenError("unknown-grant", grant, `${grant}: no such grant`) };
      }
      throw error;
    } finally {
      this.#pump();
    }
    switch (status.type) {
      case "ready":
        return { token: status.token };
      case "pending":
        return null;
      case "store-failing":
        if (!expired) return null;
        return { error: new TokenError("store-failing", grant, `${grant}: the store is failing: ${status.failure}`, { failure: status.failure }) };
      case "suspended":
        return { error: new TokenError("suspended", grant, `${grant}: the location is not active; tried again at ${new Date(status.untilMs).toISOString()}`, { untilMs: status.untilMs }) };
      case "unauthorized":
        return { error: new TokenError("unauthorized", grant, `${grant}: the refresh was refused (401); tried again at ${new Date(status.untilMs).toISOString()}`, { untilMs: status.untilMs }) };
      case "reauthorization-needed":
        return { error: new TokenError("reauthorization-needed", grant, `${grant}: the grant is gone; the app must be re-installed`) };
      case "configuration-rejected":
        return { error: new TokenError("configuration-rejected", grant, `${grant}: the client id or secret was rejected`) };
      default:
        return { error: new TokenError("unknown-status", grant, `${grant}: a token status this driver does not know: ${status.type}`) };
    }
  }

  /** Resolves at the engine's next word about `grant`, or at `deadline`. */
  #news(grant, deadline) {
    return new Promise((resolve) => {
      const waiter = { resolve, timer: null };
      let set = this.#waiters.get(grant);
      if (!set) this.#waiters.set(grant, (set = new Set()));
      set.add(waiter);
      waiter.timer = setTimeout(() => {
        set.delete(waiter);
        resolve();
      }, Math.max(0, deadline - Date.now()));
    });
  }

  #wake(grant) {
    const set = this.#waiters.get(grant);
    if (!set) return;
    this.#waiters.delete(grant);
    for (const w of set) {
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  #wakeAll() {
    for (const grant of [...this.#waiters.keys()]) this.#wake(grant);
  }

  // ---- new grants ---------------------------------------------------------------

  /**
   * Exchanges an authorization code (from `parseCallback`) for tokens and adds
   * the grant: keyed by its Location id for a Location token, its Company id
   * for a Company token (or `grant`). Resolves once the record is written:
   * `{ grant, userType, companyId, locationId }`.
   */
  async exchangeCode(code, { userType, grant } = {}) {
    await this.#ready;
    this.#running();
    const request = this.#client.codeExchangeRequest(code, userType);
    const sentAtMs = Date.now();
    const answer = await this.#counted(request);
    const token = parseTokenResponse(answer.status, answer.headers, answer.body, sentAtMs);
    const id = grant ?? (token.userType === "Company" ? token.companyId : (token.locationId ?? token.companyId));
    if (typeof id !== "string" || id === "") {
      throw new TokenError("unknown-grant", id, "the token names neither a location nor a company: pass { grant }");
    }
    await this.add(id, token);
    return { grant: id, userType: token.userType, companyId: token.companyId, locationId: token.locationId };
  }

  /**
   * Adds `grant` from a new authorization (`tokens`: what `parseTokenResponse`
   * returned, or a token set's JSON). Resolves once its record is written.
   */
  async add(grant, tokens) {
    await this.#ready;
    this.#running();
    const written = new Promise((resolve, reject) => {
      let list = this.#adds.get(grant);
      if (!list) this.#adds.set(grant, (list = []));
      list.push({ resolve, reject });
    });
    try {
      this.#engine.insert(grant, tokens, Date.now());
    } catch (error) {
      this.#settleAdds(grant, error);
      throw error;
    } finally {
      this.#pump();
    }
    return written;
  }

  #settleAdds(grant, error) {
    const list = this.#adds.get(grant);
    if (!list) return;
    this.#adds.delete(grant);
    for (const a of list) (error ? a.reject(error) : a.resolve());
  }

  /** Removes `grant` (uninstalled): its record and those of the Location grants minted from it are deleted. */
  async remove(grant) {
    await this.#ready;
    const removed = this.#engine.remove(grant, "uninstalled", Date.now());
    this.#pump();
    await this.#deleted(removed);
    return removed;
  }

  /**
   * Sends a request of the app's own within the engine's request budget:
   * waits for room (`countRequest`), sends, and hands the answer's status and
   * headers back (`handleCountedAnswer`), so that its rate-limit headers, or
   * its 429, steer the budget.
   */
  async #counted(request) {
    for (;;) {
      const at = this.#engine.countRequest(null, Date.now());
      if (at === null || at === undefined) break;
      await new Promise((r) => setTimeout(r, Math.max(1, at - Date.now())));
    }
    const answer = await this.#http(request);
    try {
      this.#engine.handleCountedAnswer(null, answer.status, answer.headers, Date.now());
    } catch (error) {
      // The answer is the caller's whatever the budget makes of it (it may
      // hold a new refresh token).
      this.#emit({ type: "answer-refused", grant: "", kind: error.kind, message: error.message });
    } finally {
      this.#pump();
    }
    return answer;
  }

  /**
   * Shared-store mode: reads the record of a grant this process does not
   * hold (another process added it after this one started) and restores it.
   * Resolves whether the grant is held then, or the store's failure (a string).
   */
  async #discover(grant) {
    if (this.#engine.grant(grant)) return true;
    if (!this.#shared || this.#stopping) return false;
    let read = this.#discoveries.get(grant);
    if (!read) {
      read = this.#readAndRestore(grant).finally(() => this.#discoveries.delete(grant));
      this.#discoveries.set(grant, read);
    }
    const failure = await read;
    if (this.#engine.grant(grant) !== undefined) return true;
    return failure ?? false;
  }

  async #readAndRestore(grant) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`reading ${grant} did not complete within ${this.#storeTimeoutMs} ms`)), this.#storeTimeoutMs);
    });
    let json;
    try {
      json = await Promise.race([Promise.resolve().then(() => this.#store.load(grant)), timeout]);
    } catch (error) {
      const message = String(error?.message ?? error);
      this.#emit({ type: "store-read-failed", grant, message });
      return message;
    } finally {
      clearTimeout(timer);
    }
    if (json === null || json === undefined || this.#engine.grant(grant)) return;
    try {
      this.#engine.restore(json, Date.now());
      this.#emit({ type: "grant-discovered", grant });
    } catch (error) {
      this.#emit({ type: "grant-not-restored", grant, kind: error.kind, message: error.message });
    } finally {
      this.#pump();
    }
  }

  #running() {
    if (this.#stopping) throw new TokenError("stopped", undefined, "the token service is shutting down");
  }

  // ---- webhooks -------------------------------------------------------------------

  /**
   * Verifies an install webhook (`headers` as received, `body` the raw bytes)
   * and hands it to the engine. Throws an `OAuthError` of class `webhook` for
   * a delivery that must not be acted on (unsigned, forged, stale, replayed,
   * for another app). Resolves once the records of removed grants are deleted:
   * `{ event, changes: { added, removed, needsCodeExchange } }`.
   */
  async handleWebhook({ headers, body }) {
    await this.#ready;
    this.#running();
    // Shared-store mode: the grants the event acts through may have been
    // added by another process (the consent callback often reaches another
    // instance than the webhook). Read before the id is recorded: a delivery
    // not applied must not be refused as a replay when it comes again.
    if (this.#shared) {
      const unrecorded = this.#verifier.verifyUnrecorded(headers, body, Date.now());
      for (const grant of namedGrants(unrecorded.payload)) {
        const found = await this.#discover(grant);
        if (typeof found === "string") throw new TokenError("store-failing", grant, `${grant}: ${found}`, { failure: found });
      }
      this.#running();
    }
    const event = this.#verifier.verify(headers, body, Date.now(), this.#seen);
    let changes;
    try {
      changes = this.#engine.handleWebhook(event, Date.now());
    } finally {
      this.#pump();
    }
    await this.#deleted(changes.removed);
    return { event: event.toJSON(), changes };
  }

  /**
   * A fetch-style handler for the webhook route: `Request` in, `Response`
   * out (200 when applied; 401 for a refused delivery, 400 for unusable
   * input, 413 for a body over 1 MiB).
   */
  async webhookResponse(request) {
    const json = (status, value) =>
      new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });
    if (request.method !== "POST") return json(405, { error: "POST only" });
    const body = await readCapped(request, MAX_WEBHOOK_BYTES);
    if (body.length > MAX_WEBHOOK_BYTES) return json(413, { error: "body too large" });
    try {
      const { event, changes } = await this.handleWebhook({ headers: request.headers, body });
      return json(200, { type: event.type, changes });
    } catch (error) {
      if (error?.class === "webhook") return json(401, { error: error.kind });
      if (error?.class === "caller") return json(400, { error: error.kind });
      return json(500, { error: "not applied" });
    }
  }

  // ---- the engine's outputs -----------------------------------------------------------

  /** Drains the engine's outputs; awaits nothing. */
  #pump() {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (;;) {
        const out = this.#engine.pollOutput(Date.now());
        if (out === undefined) break;
        switch (out.type) {
          case "persist":
            this.#lanes.ask(out.grant, { op: "write", recordJson: out.recordJson, replaces: out.replaces, version: out.version });
            break;
          case "load":
            this.#lanes.ask(out.grant, { op: "load" });
            break;
          case "delete":
            this.#lanes.ask(out.grant, { op: "delete" });
            break;
          case "send":
            this.#send(out);
            break;
          case "event":
            this.#event(out.event);
            break;
          case "claim":
            this.#claim(out);
            break;
          default:
            this.#emit({ type: "unknown-output", grant: out.grant, message: `an output this driver does not know: ${out.type}` });
        }
      }
    } finally {
      this.#pumping = false;
    }
    this.#schedule();
    for (const resolve of this.#progress) resolve();
    this.#progress.clear();
  }

  /** A claim on the request budget shared through the store (setting `sharedBudget`). */
  #claim(out) {
    const answer = (outcome) => {
      this.#engine.handleClaim(out.key, outcome, Date.now());
      this.#pump();
    };
    if (typeof this.#store.claimBudget !== "function") {
      // The engine then keeps to a local share of the budget.
      answer({ failed: "this store keeps no shared request budget" });
      return;
    }
    let timer;
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the store did not answer a budget claim within ${this.#storeTimeoutMs} ms`)),
        this.#storeTimeoutMs,
      );
    });
    Promise.race([Promise.resolve().then(() => this.#store.claimBudget(out)), deadline])
      .finally(() => clearTimeout(timer))
      .then(
        (granted) => answer({ granted }),
        (error) => answer({ failed: String(error?.message ?? error) }),
      );
  }

  #send(out) {
    if (Date.now() > out.notAfterMs) {
      // Too late for the lease that covers it: never sent, so not spent.
      this.#engine.handleSend(out.id, { notDispatched: true }, Date.now());
      return;
    }
    this.#sendsOut += 1;
    this.#http(out.request).then(
      (response) => this.#answered(out, { response }),
      (error) => this.#answered(out, { transportError: transportMessage(error) }),
    );
  }

  #answered(out, outcome) {
    this.#sendsOut -= 1;
    try {
      this.#engine.handleSend(out.id, outcome, Date.now());
    } catch (error) {
      // An answer the engine could not take (say, for a request long given up on).
      this.#emit({ type: "answer-refused", grant: out.grant, kind: error.kind, message: error.message });
    }
    this.#wake(out.grant);
    this.#pump();
  }

  /** Sends a request built by the module: `{ status, headers, body }`. */
  async #http(request) {
    const response = await this.#fetch(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      redirect: "manual",
      signal: AbortSignal.timeout(this.#requestTimeoutMs),
    });
    const body = await readCapped(response, maxBodyBytes());
    return { status: response.status, headers: response.headers, body };
  }

  #stored({ grant, op, outcome }) {
    const now = Date.now();
    try {
      if (op.op === "write") this.#engine.handleWrite(grant, op.version, outcome, now);
      else if (op.op === "load") this.#engine.handleLoad(grant, outcome, now);
    } catch (error) {
      // A late outcome of an older write, or a record the engine refuses.
      this.#emit({ type: "store-outcome-refused", grant, kind: error.kind, message: error.message });
    }
    if (op.op === "delete") {
      const list = this.#deletes.get(grant);
      this.#deletes.delete(grant);
      for (const resolve of list ?? []) resolve();
    }
    this.#wake(grant);
    this.#pump();
  }

  /** Resolves once the records of `grants` are deleted (or their deletes failed). */
  #deleted(grants) {
    return Promise.all(
      grants
        .filter((g) => this.#lanes.busy(g))
        .map((g) => new Promise((resolve) => {
          let list = this.#deletes.get(g);
          if (!list) this.#deletes.set(g, (list = []));
          list.push(resolve);
        })),
    );
  }

  #event(event) {
    switch (event.type) {
      case "durable":
        this.#settleAdds(event.grant, null);
        break;
      case "write-failed":
        this.#settleAdds(event.grant, new TokenError("write-pending", event.grant, `${event.grant}: the record is not written yet (the engine writes again): ${event.failure}`, { failure: event.failure }));
        break;
      case "removed-elsewhere":
        this.#settleAdds(event.grant, new TokenError("unknown-grant", event.grant, `${event.grant}: removed elsewhere`));
        break;
      default:
        break;
    }
    this.#emit(event);
    this.#wake(event.grant);
  }

  #emit(event) {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  // ---- time -------------------------------------------------------------------------

  /** When the engine next needs `tick()`, in ms (for a Durable Object alarm), or `undefined`. */
  nextWakeMs() {
    return this.#engine.pollTimeout();
  }

  /** Handles every deadline due now (the timer calls it; a Durable Object alarm may). */
  tick() {
    this.#engine.handleTimeout(Date.now());
    this.#pump();
  }

  #schedule() {
    if (!this.#timers) return;
    const at = this.#engine.pollTimeout();
    if (at === this.#wakeAt && this.#timer !== null) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#wakeAt = at;
    if (at === undefined) return;
    const delay = Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#wakeAt = undefined;
      this.tick();
    }, delay);
  }

  // ---- looking and stopping ---------------------------------------------------------

  /** Every grant held: `{ id, status, expiresAtMs, mintedFrom?, isWritten, requestOut, lastFailure? }`. */
  grants() {
    return this.#engine.grants();
  }

  /** The engine's figures (`inFlight`, `unwritten`, …). */
  stats() {
    return this.#engine.stats();
  }

  /**
   * A clean stop: the engine's `shutDown` (nothing new starts), then waits up
   * to `graceMs` for requests out and unwritten records. Resolves to
   * `{ abandoned, unwritten }`: grants whose refresh was still out, and the
   * records not written (`{ grant }` with the record's JSON in the
   * non-enumerable `recordJson`: it holds tokens the store does not have).
   */
  async shutdown({ graceMs = DEFAULTS.shutdownGraceMs } = {}) {
    await this.#ready.catch(() => {});
    if (!this.#stopping) {
      this.#stopping = true;
      this.#engine.shutDown(Date.now());
      this.#pump();
      this.#wakeAll();
      for (const grant of [...this.#adds.keys()]) {
        this.#settleAdds(grant, new TokenError("stopped", grant, `${grant}: the token service is shutting down`));
      }
    }
    const deadline = Date.now() + graceMs;
    for (;;) {
      const stats = this.#engine.stats();
      if ((stats.inFlight === 0 && stats.unwritten === 0 && this.#lanes.idle) || Date.now() >= deadline) break;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.#progress.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timers = false;
    this.#lanes.abort();
    const grants = this.#engine.grants();
    const unwritten = grants
      .filter((g) => !g.isWritten)
      .map((g) => {
        const item = { grant: g.id };
        Object.defineProperty(item, "recordJson", { value: this.#engine.recordJson(g.id), enumerable: false });
        return item;
      });
    return { abandoned: grants.filter((g) => g.requestOut).map((g) => g.id), unwritten };
  }
}

/**
 * The grants an install or uninstall acts through, other than the Location
 * grants a bulk install lists: the Company grant that mints (or is
 * uninstalled), and the Location grant of a one-location event.
 */
function namedGrants(payload) {
  const named = new Set();
  if (payload?.kind === "install" && payload.companyId) named.add(payload.companyId);
  if (payload?.kind === "install" || payload?.kind === "uninstall") {
    const target = payload.target ?? {};
    if (target.type === "location") named.add(target.locationId);
    if (target.type === "company" || target.type === "bulk") named.add(target.companyId);
  }
  return [...named].filter((g) => typeof g === "string" && g !== "");
}
