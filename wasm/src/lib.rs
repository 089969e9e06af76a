//! hoopai-oauth's sans-IO core for JavaScript, through wasm-bindgen.
//!
//! The module builds token requests and parses their answers; JavaScript's
//! `fetch` moves the bytes and `Date.now()` supplies the time. Nothing here
//! does I/O or reads a clock.
//!
//! JavaScript API (see `README.md` next to this crate and `run.mjs`):
//!
//! - `new OAuthClient(clientId, clientSecret, baseUrl?, redirectUri?, apiVersion?)`
//! - `client.refreshRequest(refreshToken, userType?)` and
//!   `client.codeExchangeRequest(code, userType?)`: a `fetch` init
//!   `{ url, method, headers, redirect: "manual" }` with a non-enumerable `body`;
//! - `parseTokenResponse(status, headers, bodyBytes, sentAtMs)`: the token's
//!   non-secret fields, with the tokens as non-enumerable properties, or a
//!   thrown `OAuthError` whose `kind` is the stable `ErrorKind::as_str` name;
//! - `redact(value)` and `maxBodyBytes()`.
//!
//! Secrets never sit in an enumerable property, so printing a request, a
//! token or an error (`console.log`, `JSON.stringify`) never shows one.
#![deny(unsafe_code)]
#![warn(missing_docs)]

// The unsafe code in this module is the glue wasm-bindgen's macros generate;
// the module's own code has none.
#[allow(unsafe_code)]
pub mod js;
pub mod shape;
