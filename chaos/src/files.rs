//! The file names of a run, inside its folder.

/// The server's log.
pub const SERVER_LOG: &str = "server.log";
/// The server's private list of issued tokens.
pub const ISSUED: &str = "issued.secret";
/// The server's address.
pub const ADDR: &str = "server.addr";
/// The orchestrator's log.
pub const FLEET_LOG: &str = "fleet.log";
/// The shared store of the engine drivers; for the service driver, a
/// copy of its store made once every worker stopped (the checker reads it).
pub const STORE: &str = "store.sqlite";
/// The service driver's shared store when it is the service's SQLite store.
pub const SERVICE_STORE: &str = "store.service.sqlite3";
/// The server's newest refresh token of every grant, at the end.
pub const NEWEST: &str = "newest.json";
/// A worker instance's log is `worker-<instance>.log`.
pub const WORKER_PREFIX: &str = "worker-";
