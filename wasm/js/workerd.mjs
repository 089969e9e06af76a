// The package on Cloudflare Workers (workerd): the module comes in as a
// compiled WebAssembly.Module (a `.wasm` import), then the same exports as
// on Node, but no FileStore (DurableObjectStore instead).

import wasm from "../pkg/hoopai_oauth_wasm_bg.wasm";
import { initSync } from "../pkg/hoopai_oauth_wasm.js";

initSync({ module: wasm });

export * from "./exports.mjs";
