// Everything both entries (node.mjs, workerd.mjs) export, once the module
// is instantiated.

export {
  Engine,
  OAuthClient,
  SeenWebhooks,
  WebhookEvent,
  WebhookVerifier,
  consentState,
  maxBodyBytes,
  parseCallback,
  parseInstalledLocations,
  parseLocationTokenResponse,
  parseTokenResponse,
  redact,
} from "../pkg/hoopai_oauth_wasm.js";
export { MAX_WEBHOOK_BYTES, TokenError, TokenService, readCapped } from "./service.mjs";
export { MemoryStore, recordKey } from "./stores/memory.mjs";
export { DurableObjectStore } from "./stores/durable-object.mjs";
