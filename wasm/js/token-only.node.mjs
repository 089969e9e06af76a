// The token-only module on Node: token requests and their answers, nothing
// else (the smallest download).

import { readFileSync } from "node:fs";

import { initSync } from "../pkg-token/hoopai_oauth_wasm.js";

initSync({ module: readFileSync(new URL("../pkg-token/hoopai_oauth_wasm_bg.wasm", import.meta.url)) });

export { OAuthClient, maxBodyBytes, parseTokenResponse, redact } from "../pkg-token/hoopai_oauth_wasm.js";
