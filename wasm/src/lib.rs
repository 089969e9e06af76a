//! hoopai-oauth's sans-IO core for JavaScript, through wasm-bindgen.
//!
//! The whole core crosses: the token lifecycle engine (`Engine`), install
//! webhook verification (`WebhookVerifier`, `SeenWebhooks`), the consent URL
//! and callback, Location tokens and installed locations, and the token
//! request builders and parsers (`OAuthClient`, `parseTokenResponse`).
//! JavaScript's `fetch` moves the bytes, `Date.now()` supplies the time and
//! `crypto.getRandomValues` the randomness (the consent state, the jitter
//! seed). Nothing here does I/O or reads a clock. The JavaScript driver
//! (`js/`, `TokenService`) runs the engine with a store and `fetch`.
//!
//! Features: `full` (the default) is everything; without it
//! (`--no-default-features`) the module builds token requests and parses
//! their answers only, for the smallest download.
//!
//! Secrets never sit in an enumerable property, so printing an object
//! (`console.log`, `JSON.stringify`) never shows one; records cross as their
//! JSON text, a secret too.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod engine_shape;
// The unsafe code in this module is the glue wasm-bindgen's macros generate;
// the module's own code has none.
#[allow(unsafe_code)]
pub mod js;
pub mod shape;
#[cfg(test)]
mod testing;
pub mod webhook_shape;
