// The package on Node: instantiates the module from its file, then exports
// the core, the driver and the stores (FileStore too).

import { readFileSync } from "node:fs";

import { initSync } from "../pkg/hoopai_oauth_wasm.js";

initSync({ module: readFileSync(new URL("../pkg/hoopai_oauth_wasm_bg.wasm", import.meta.url)) });

export * from "./exports.mjs";
export { FileStore } from "./stores/file.mjs";
