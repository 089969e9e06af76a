// The token-only module on Cloudflare Workers.

import wasm from "../pkg-token/hoopai_oauth_wasm_bg.wasm";
import { initSync } from "../pkg-token/hoopai_oauth_wasm.js";

initSync({ module: wasm });

export { OAuthClient, maxBodyBytes, parseTokenResponse, redact } from "../pkg-token/hoopai_oauth_wasm.js";
