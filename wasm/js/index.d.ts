// Types of the hoopai-oauth package: the core (WASM) and the driver.
// Times are milliseconds since the Unix epoch (`Date.now()`); durations are
// milliseconds. Properties marked "non-enumerable" are secrets: read by name,
// never printed by console.log or JSON.stringify.

// ---- errors ---------------------------------------------------------------------

/** The stable kinds of `hoopai_oauth::ErrorKind` (`ErrorKind::as_str`). */
export type ErrorKindName =
  | "invalid configuration"
  | "invalid input"
  | "state mismatch"
  | "malformed callback"
  | "unknown request"
  | "unknown grant"
  | "stale record"
  | "consent denied"
  | "invalid grant"
  | "location not active"
  | "invalid client"
  | "invalid parameter"
  | "unauthorized"
  | "grant unauthorized"
  | "forbidden"
  | "not found"
  | "rate limited"
  | "server error"
  | "rejected"
  | "unreadable response"
  | "unsigned webhook"
  | "webhook with a legacy signature only"
  | "malformed webhook signature"
  | "bad webhook signature"
  | "malformed webhook"
  | "webhook for another app"
  | "stale webhook"
  | "replayed webhook"
  | "webhook without replay protection"
  | (string & {});

export type ErrorClass = "caller" | "misuse" | "server" | "unreadable" | "webhook" | "other";

/** The fields of the crate's error. */
export interface ErrorFields {
  kind: ErrorKindName;
  class: ErrorClass;
  transient: boolean;
  advice: string;
  status?: number;
  code?: string;
  messages?: string[];
  traceId?: string;
  detail?: string;
  excerpt?: string;
  unreadableReason?: "Empty" | "NotJson" | "Truncated" | "TooLarge" | "UnexpectedShape" | "Other";
  rescuedRefreshTokenRedacted?: string;
}

/** What every function of the module throws (`error.name === "OAuthError"`). */
export interface OAuthError extends Error, ErrorFields {
  name: "OAuthError";
  /** Non-enumerable: a refresh token found in an otherwise unusable answer. Persist it. */
  readonly rescuedRefreshToken?: string;
}

/** An error inside an event: its fields and its message. */
export interface EventError extends ErrorFields {
  message: string;
}

// ---- requests and tokens ------------------------------------------------------------

/** A `fetch` init; send it with `fetch(request.url, request)`. */
export interface FetchInit {
  url: string;
  method: string;
  /** Non-enumerable for requests with a bearer (Location tokens, installed locations). */
  headers: [string, string][];
  redirect: "manual";
  /** Non-enumerable: holds the client secret or a token. */
  readonly body: Uint8Array;
}

/** A parsed token answer. */
export interface Token {
  tokenType?: string;
  expiresIn: number;
  obtainedAtMs: number;
  expiresAtMs: number;
  scope?: string;
  userType?: string;
  companyId?: string;
  locationId?: string;
  approvedLocations?: string[];
  userId?: string;
  planId?: string;
  appId?: string;
  versionId?: string;
  isBulkInstallation?: boolean;
  installToFutureLocations?: boolean;
  approveAllLocations?: boolean;
  extraFields?: string[];
  accessTokenRedacted: string;
  refreshTokenRedacted?: string;
  /** Non-enumerable. */
  readonly accessToken: string;
  /** Non-enumerable. */
  readonly refreshToken?: string;
  /** Non-enumerable: the token set as JSON, for `Engine.insert`. */
  readonly tokenSetJson: string;
}

/** What the module reads an answer's headers from. */
export type HeadersLike = Headers | Map<string, string> | [string, string][] | Record<string, string> | null | undefined;

export interface ClientOptions {
  clientId: string;
  clientSecret: string;
  /** Default `https://services.leadconnectorhq.com`. */
  baseUrl?: string;
  redirectUri?: string;
  /** The consent page (white-label hosts). */
  consentUrl?: string;
  apiVersion?: "v2" | "v3";
}

export interface ConsentOptions {
  scopes: string[];
  /** From `consentState`. */
  state?: string;
  redirectUri?: string;
  loginWindowSelf?: boolean;
  /** A version id, or `true` for the app id. */
  versionId?: string | true;
}

export interface InstalledLocationsQuery {
  companyId: string;
  appId?: string;
  pageSize?: number;
  skip?: number;
  pageToken?: string;
  search?: string;
  installed?: boolean;
  restrictToUserLocations?: boolean;
  versionId?: string;
  onTrial?: boolean;
  planId?: string;
  locationId?: string;
}

export interface InstalledLocationsPage {
  locations: { id: string; name?: string; address?: string; isInstalled?: boolean; versionId?: string; installedAt?: string }[];
  total?: number;
  installToFutureLocations?: boolean;
  /** The query of the next page; `null` after the last. */
  nextQuery: InstalledLocationsQuery | null;
}

export class OAuthClient {
  constructor(options: ClientOptions);
  constructor(clientId: string, clientSecret: string, baseUrl?: string | null, redirectUri?: string | null, apiVersion?: "v2" | "v3" | null);
  readonly baseUrl: string;
  readonly clientId: string;
  readonly appId: string;
  readonly redirectUri: string | undefined;
  readonly apiVersion: "v2" | "v3";
  toJSON(): { clientId: string; baseUrl: string; apiVersion: string; clientSecret: string };
  refreshRequest(refreshToken: string, userType?: "Company" | "Location" | null): FetchInit;
  codeExchangeRequest(code: string, userType?: "Company" | "Location" | null): FetchInit;
  consentUrl(options: ConsentOptions): string;
  locationTokenRequest(companyAccessToken: string, companyId: string, locationId: string): FetchInit;
  installedLocationsRequest(companyAccessToken: string, query: InstalledLocationsQuery): FetchInit;
  free(): void;
}

export function parseTokenResponse(status: number, headers: HeadersLike, body: Uint8Array, sentAtMs: number): Token;
export function parseLocationTokenResponse(status: number, headers: HeadersLike, body: Uint8Array, sentAtMs: number): Token;
export function parseInstalledLocations(query: InstalledLocationsQuery, status: number, headers: HeadersLike, body: Uint8Array): InstalledLocationsPage;
/** A consent `state` from 16 to 256 random bytes (`crypto.getRandomValues`). */
export function consentState(randomBytes: Uint8Array): string;
/** The redirect's code, the state checked; `code` is non-enumerable. */
export function parseCallback(redirect: string, expectedState?: string | null): { codeRedacted: string; readonly code: string };
export function redact(value: string): string;
export function maxBodyBytes(): number;

// ---- the engine -------------------------------------------------------------------------

export interface EngineSettings {
  refreshMarginMs?: number;
  expirySkewMs?: number;
  requestTimeoutMs?: number;
  backoff?: { baseMs: number; capMs: number };
  rateLimitWaitMs?: number;
  suspendedRetryMs?: number;
  unauthorizedRetry?: { firstMs: number; capMs: number };
  unauthorizedHaltAfter?: number;
  /** From `crypto.getRandomValues(new BigUint64Array(1))[0]`. */
  jitterSeed?: bigint | number;
  sharedStore?: { holder: string; leaseMs: number };
  rereadIntervalMs?: number;
  maxInFlight?: number;
  refreshSpreadMs?: number;
  dispatchWindowMs?: number;
  requestBudget?: { max: number; intervalMs: number };
  refreshAheadSpreadMs?: number;
  /** The share of the request budget (1–100 %) mints and counted requests may use; 50 by default. */
  countedSharePercent?: number;
  /** One request budget for every engine on the store (shared-store mode), claimed through `claim` outputs. */
  sharedBudget?: boolean;
  /** One budget for the app (default), or one per Company or Location. */
  budgetKeying?: "app" | "resource";
}

export type GrantStatus =
  | { state: "active" }
  | { state: "suspended"; untilMs: number }
  | { state: "unauthorized"; untilMs: number; reason?: string }
  | { state: "reauthorization-needed"; reason?: string }
  | { state: "other"; detail: string };

export type RefreshFailure =
  | { type: "timed-out"; message: string }
  | { type: "transport"; detail: string; message: string }
  | { type: "answer"; error: EventError; message: string }
  | { type: "store"; detail: string; message: string }
  | { type: "other"; message: string };

interface EventBase {
  grant: string;
  /** For logs; no secret in it. */
  message: string;
}

export type EngineEvent = EventBase &
  (
    | { type: "token-ready" | "refreshed" | "adopted"; expiresAtMs: number }
    | { type: "lease-held-elsewhere"; holder: string; untilMs: number }
    | { type: "suspended" | "unauthorized"; untilMs: number; error: EventError }
    | { type: "reauthorization-needed" | "configuration-rejected"; error: EventError }
    | { type: "retry-scheduled"; atMs: number; attempt: number; failure: RefreshFailure }
    | { type: "durable" | "write-recovered"; version: number }
    | { type: "removed-elsewhere" | "rescued-token-adopted" | "other" }
    | { type: "write-failed"; version: number; failure: string; retryAtMs: number }
    | { type: "answer-after-removal"; refreshTokenKept: boolean }
    | { type: "rate-limit-clamped"; retryAfter: boolean; interval: boolean }
    | { type: "shared-budget-fallback"; share: number; detail: string }
    | { type: "shared-budget-recovered" }
  );

export type Output =
  | { type: "send"; id: string; grant: string; request: FetchInit; notAfterMs: number; refresh: string }
  | {
      type: "persist";
      grant: string;
      version: number;
      replaces: number | null;
      refresh: string;
      status: GrantStatus;
      lease?: { holder: string; untilMs: number };
      expiresAtMs: number;
      mintedFrom?: string;
      /** Non-enumerable: the record to write (tokens inside). */
      readonly recordJson: string;
    }
  | { type: "load"; grant: string }
  | { type: "delete"; grant: string }
  | {
      type: "claim";
      /** The budget's key: "" for the app, else a Company or Location id. */
      key: string;
      holder: string;
      sends: number;
      others: number;
      max: number;
      othersMax: number;
      windowMs: number;
    }
  | { type: "event"; event: EngineEvent }
  | { type: "other"; detail: string };

export type TokenStatus =
  | { type: "ready"; tokenRedacted: string; /** Non-enumerable. */ readonly token: string }
  | { type: "pending" }
  | { type: "suspended"; untilMs: number }
  | { type: "unauthorized"; untilMs: number }
  | { type: "reauthorization-needed" }
  | { type: "configuration-rejected" }
  | { type: "store-failing"; failure: string };

export type SendOutcome =
  | { response: { status: number; headers: HeadersLike; body: Uint8Array } }
  | { transportError: string }
  | { notDispatched: true }
  /** The JSON of a token answer read elsewhere. */
  | { parsed: string };

export type WriteOutcome = { written: true } | { conflict: string } | { noRecord: true } | { failed: string };

/** A read: the record's JSON, `null` for none, or a failure. */
export type LoadOutcome = string | null | { failed: string };

export interface GrantView {
  id: string;
  status: GrantStatus;
  expiresAtMs: number;
  mintedFrom?: string;
  isWritten: boolean;
  requestOut: boolean;
  lastFailure?: RefreshFailure;
}

export interface EngineStats {
  grants: number;
  inFlight: number;
  waitingForBudget: number;
  waitedForBudget: number;
  writesFailing: number;
  unwritten: number;
  halted: boolean;
  budgetMax: number;
  budgetIntervalMs: number;
}

export interface InstallChanges {
  added: string[];
  removed: string[];
  needsCodeExchange: string[];
}

export type Removal = "uninstalled" | "deleted-elsewhere" | "released";

/** The store's answer to a `claim` output. */
export type ClaimOutcome =
  | { granted: { sends: number; others: number; holders: number; nextFreeInMs: number } }
  | { failed: string };

export class Engine {
  constructor(client: OAuthClient, settings?: EngineSettings);
  handleSend(id: string, outcome: SendOutcome, nowMs: number): void;
  handleWrite(grant: string, version: number, outcome: WriteOutcome, nowMs: number): void;
  handleLoad(grant: string, read: LoadOutcome, nowMs: number): void;
  handleTimeout(nowMs: number): void;
  insert(grant: string, tokens: Token | string, nowMs: number): void;
  restore(recordJson: string, nowMs: number): void;
  remove(grant: string, why: Removal, nowMs: number): string[];
  accessToken(grant: string, nowMs: number): TokenStatus;
  refreshNow(grant: string, rejected: string | null | undefined, nowMs: number): void;
  handleWebhook(event: WebhookEvent, nowMs: number): InstallChanges;
  addLocation(grant: string, companyGrant: string, companyId: string, locationId: string, nowMs: number): boolean;
  reconfigure(client: OAuthClient, nowMs: number): void;
  countRequest(resource: string | null | undefined, nowMs: number): number | null | undefined;
  handleCountedAnswer(
    resource: string | null | undefined,
    status: number,
    headers: HeadersLike,
    nowMs: number,
  ): { retryAfter: boolean; interval: boolean } | null;
  handleClaim(key: string, outcome: ClaimOutcome, nowMs: number): void;
  shutDown(nowMs: number): void;
  pollOutput(nowMs: number): Output | undefined;
  pollTimeout(): number | undefined;
  grant(grant: string): GrantView | undefined;
  grants(): GrantView[];
  recordJson(grant: string): string | undefined;
  stats(): EngineStats;
  free(): void;
}

// ---- webhooks ---------------------------------------------------------------------------

export type WebhookPayload =
  | {
      kind: "install";
      target:
        | { type: "location"; locationId: string }
        | { type: "company"; companyId: string }
        | { type: "bulk"; companyId: string; locationIds: string[] };
      installType?: string;
      companyId?: string;
      versionId?: string;
      userId?: string;
      planId?: string;
      companyName?: string;
      isWhitelabelCompany?: boolean;
      extra: Record<string, unknown>;
    }
  | {
      kind: "uninstall";
      target: { type: "location"; locationId: string } | { type: "company"; companyId: string };
      companyId?: string;
      extra: Record<string, unknown>;
    }
  | { kind: "other"; body: Record<string, unknown> };

export interface WebhookEventFields {
  type: string;
  appId?: string;
  webhookId?: string;
  timestampMs?: number;
  payload: WebhookPayload;
}

/** A verified delivery (made only by `WebhookVerifier`). */
export class WebhookEvent {
  private constructor();
  readonly type: string;
  readonly appId: string | undefined;
  readonly webhookId: string | undefined;
  readonly timestampMs: number | undefined;
  readonly payload: WebhookPayload;
  toJSON(): WebhookEventFields;
  free(): void;
}

export type Recorded = "new" | "duplicate" | "beyond-memory";

export class SeenWebhooks {
  constructor(capacity?: number, maxBytes?: number);
  readonly size: number;
  has(webhookId: string): boolean;
  record(webhookId: string, timestampMs: number, nowMs: number, windowMs: number): Recorded;
  free(): void;
}

export interface WebhookOptions {
  /** More keys to trust: SubjectPublicKeyInfo base64 or PEM, or the raw 32 bytes. */
  keys?: (string | Uint8Array)[];
  /** `false` drops HighLevel's published key. */
  trustHighLevel?: boolean;
  windowMs?: number;
  acceptUndated?: boolean;
}

export class WebhookVerifier {
  constructor(client: OAuthClient, options?: WebhookOptions);
  readonly windowMs: number;
  verify(headers: HeadersLike | Record<string, string | string[] | undefined>, body: Uint8Array, nowMs: number, seen: SeenWebhooks): WebhookEvent;
  verifyUnrecorded(headers: HeadersLike | Record<string, string | string[] | undefined>, body: Uint8Array, nowMs: number): WebhookEvent;
  accept(event: WebhookEvent, recorded: Recorded): WebhookEvent;
  free(): void;
}

// ---- the driver --------------------------------------------------------------------------

/** A grant store with compare-and-swap on the record version. */
export interface GrantStore {
  /** Writes `recordJson` if the stored version is `replaces` (`null`: only if nothing is stored). */
  compareAndSwap(recordJson: string, replaces: number | null): Promise<{ written: true } | { conflict: string } | { noRecord: true }>;
  /** The record's JSON, or `null`. */
  load(grant: string): Promise<string | null>;
  /** Whether there was a record. */
  delete(grant: string): Promise<boolean>;
  /** Every record's JSON. */
  loadAll(): Promise<string[]>;
  /**
   * Optional: claims tokens of the request budget that every process shares
   * (engine setting `sharedBudget`), atomically, as docs/engine.md ("The
   * request budget") describes. Without it, an engine with `sharedBudget`
   * keeps to a local share.
   */
  claimBudget?(claim: Extract<Output, { type: "claim" }>): Promise<{ sends: number; others: number; holders: number; nextFreeInMs: number }>;
}

export class MemoryStore implements GrantStore {
  compareAndSwap(recordJson: string, replaces: number | null): Promise<{ written: true } | { conflict: string } | { noRecord: true }>;
  load(grant: string): Promise<string | null>;
  delete(grant: string): Promise<boolean>;
  loadAll(): Promise<string[]>;
  readonly size: number;
}

/** Node only. */
export class FileStore implements GrantStore {
  constructor(dir: string, options?: { lockTimeoutMs?: number; staleLockMs?: number });
  compareAndSwap(recordJson: string, replaces: number | null): Promise<{ written: true } | { conflict: string } | { noRecord: true }>;
  load(grant: string): Promise<string | null>;
  delete(grant: string): Promise<boolean>;
  loadAll(): Promise<string[]>;
}

/** Cloudflare Workers: a Durable Object's `state.storage`. */
export interface DurableObjectStorageLike {
  get(key: string): Promise<unknown>;
  delete(key: string): Promise<boolean>;
  list(options: { prefix: string; limit: number; startAfter?: string }): Promise<Map<string, unknown>>;
  transaction<T>(f: (txn: { get(key: string): Promise<unknown>; put(key: string, value: string): Promise<void> }) => Promise<T>): Promise<T>;
}

export class DurableObjectStore implements GrantStore {
  constructor(storage: DurableObjectStorageLike, options?: { prefix?: string });
  compareAndSwap(recordJson: string, replaces: number | null): Promise<{ written: true } | { conflict: string } | { noRecord: true }>;
  load(grant: string): Promise<string | null>;
  delete(grant: string): Promise<boolean>;
  loadAll(): Promise<string[]>;
}

export function recordKey(recordJson: string): { grant: string; version: number };

export type TokenErrorKind =
  | "unknown-grant"
  | "timed-out"
  | "store-failing"
  | "suspended"
  | "unauthorized"
  | "reauthorization-needed"
  | "configuration-rejected"
  | "write-pending"
  | "stopped"
  | "unknown-status";

export class TokenError extends Error {
  name: "TokenError";
  kind: TokenErrorKind;
  grant: string | undefined;
  untilMs?: number;
  failure?: string;
  lastFailure?: string;
}

/** Events of the engine, and the driver's own. */
export type ServiceEvent =
  | EngineEvent
  | { type: "answer-refused" | "store-outcome-refused"; grant: string; kind?: string; message: string }
  | { type: "unknown-output"; grant?: string; message: string }
  /** Shared-store mode: a grant another process added, read from the store and restored. */
  | { type: "grant-discovered"; grant: string }
  | { type: "grant-not-restored"; grant: string; kind?: string; message: string }
  | { type: "store-read-failed"; grant: string; message: string };

export interface TokenServiceOptions {
  /** The app's configuration. */
  config: OAuthClient | ClientOptions;
  store: GrantStore;
  /** Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** The engine's settings (a jitter seed is drawn when absent). */
  engine?: EngineSettings;
  /** How long `accessToken` waits for a refresh (30 s). */
  waitMs?: number;
  /** Each store call's deadline (10 s). */
  storeTimeoutMs?: number;
  webhooks?: WebhookOptions;
  onEvent?: (event: ServiceEvent) => void;
  /** `false`: no timers; call `tick()` at `nextWakeMs()` yourself (a Durable Object alarm). */
  timers?: boolean;
}

export interface AddedGrant {
  grant: string;
  userType?: string;
  companyId?: string;
  locationId?: string;
}

export class TokenService {
  constructor(options: TokenServiceOptions);
  readonly ready: Promise<{ restored: number; corrupt: { kind?: string; reason: string }[] }>;
  readonly client: OAuthClient;
  onEvent(listener: (event: ServiceEvent) => void): () => void;
  accessToken(grant: string, options?: { waitMs?: number }): Promise<string>;
  tokenAfter401(grant: string, rejected: string, options?: { waitMs?: number }): Promise<string>;
  exchangeCode(code: string, options?: { userType?: "Company" | "Location"; grant?: string }): Promise<AddedGrant>;
  add(grant: string, tokens: Token | string): Promise<void>;
  remove(grant: string): Promise<string[]>;
  handleWebhook(delivery: { headers: HeadersLike | Record<string, string | string[] | undefined>; body: Uint8Array }): Promise<{ event: WebhookEventFields; changes: InstallChanges }>;
  webhookResponse(request: Request): Promise<Response>;
  nextWakeMs(): number | undefined;
  tick(): void;
  grants(): GrantView[];
  stats(): EngineStats;
  shutdown(options?: { graceMs?: number }): Promise<{ abandoned: string[]; unwritten: { grant: string; readonly recordJson: string }[] }>;
}

export const MAX_WEBHOOK_BYTES: number;
export function readCapped(response: { body: ReadableStream<Uint8Array> | null }, cap: number): Promise<Uint8Array>;
