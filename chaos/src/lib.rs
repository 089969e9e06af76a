//! A multi-process chaos test of the hoopai-oauth engine's rotation safety.
//!
//! - `chaos-server` (module [`server`]): the crate's sans-IO fake behind a
//!   loopback HTTP server, with strict single-use rotation, short
//!   `expires_in`, seeded latency and faults (500, 429 with `Retry-After`, an
//!   HTML 502, dropped connections before and after spending the refresh
//!   token, answers held past the client's timeout). It logs every refresh.
//! - `chaos-worker` (module [`worker`]): one engine in shared-store mode over
//!   every grant of a SQLite store ([`store`]) with compare-and-swap, driven
//!   by a blocking or a concurrent driver; or (`--driver service`) the
//!   runtime package's token service over its Postgres or SQLite store. It
//!   logs sends, answers, writes and events.
//! - [`fleet`] starts the server and the workers, kills and restarts workers
//!   at random, and stops everyone; [`check`] reads every log and the store
//!   and checks the invariants.
//!
//! Every log is JSON, one line per fact ([`journal`]), and names refresh
//! tokens only by [`fingerprint`]: no token is ever written anywhere but the
//! store and the server's private list of issued tokens.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bulk;
pub mod check;
pub mod files;
pub mod fingerprint;
pub mod fleet;
pub mod journal;
pub mod server;
pub mod service_store;
pub mod store;
pub mod worker;
