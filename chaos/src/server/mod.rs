//! `chaos-server`: the crate's sans-IO fake behind a loopback HTTP server,
//! with seeded latency and faults, logging every refresh.
//!
//! - [`ledger`]: the fake, the seeded dice, the record of every token issued
//!   (who it belongs to, which is newest) and the logs;
//! - [`http`]: the HTTP server (hyper on tokio), which can hold an answer and
//!   close a connection without answering.
//!
//! Admin endpoints, for the orchestrator:
//! - `POST /admin/approve?location=ID` approves a Location install of `ID`
//!   and answers its authorization code (to exchange at `/oauth/token`);
//! - `GET /admin/newest` answers `{"grant": "fingerprint", …}`: the newest
//!   refresh token issued for every grant.

pub mod http;
pub mod ledger;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The server's settings (its command line).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chaos-server",
    about = "A faulty loopback HighLevel token server"
)]
pub struct ServerSettings {
    /// Where to listen; loopback only.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// A file to write the bound address into, once listening.
    #[arg(long)]
    pub addr_file: PathBuf,
    /// The log (JSON lines).
    #[arg(long)]
    pub log: PathBuf,
    /// The private list of every token issued (mode 0600), for the checker's
    /// scan of the other logs.
    #[arg(long)]
    pub issued: PathBuf,
    /// The client id the fake accepts.
    #[arg(long)]
    pub client_id: String,
    /// The client secret the fake accepts.
    #[arg(long)]
    pub client_secret: String,
    /// Seed of the latency and fault dice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `expires_in` of every access token, in seconds.
    #[arg(long, default_value_t = 5)]
    pub expires_in: u64,
    /// Smallest latency of a refresh, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub latency_min_ms: u64,
    /// Largest latency of a refresh, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub latency_max_ms: u64,
    /// The clients' request timeout, in milliseconds: a held answer is held
    /// this long and a bit more.
    #[arg(long, default_value_t = 2000)]
    pub client_timeout_ms: u64,
    /// Chance of a `500`, in percent of refreshes.
    #[arg(long, default_value_t = 2.0)]
    pub p_server_error: f64,
    /// Chance of a `429` with `Retry-After: 1`, in percent.
    #[arg(long, default_value_t = 2.0)]
    pub p_rate_limited: f64,
    /// Chance of an HTML `502`, in percent.
    #[arg(long, default_value_t = 2.0)]
    pub p_bad_gateway: f64,
    /// Chance of closing the connection before spending the token, in percent.
    #[arg(long, default_value_t = 2.0)]
    pub p_drop_before: f64,
    /// Chance of spending the token and then closing the connection
    /// unanswered, in percent.
    #[arg(long, default_value_t = 0.3)]
    pub p_drop_after: f64,
    /// Chance of spending the token and holding the answer past the client's
    /// timeout, in percent.
    #[arg(long, default_value_t = 0.3)]
    pub p_hold: f64,
}

impl ServerSettings {
    /// The clients' request timeout.
    #[must_use]
    pub fn client_timeout(&self) -> Duration {
        Duration::from_millis(self.client_timeout_ms)
    }
}
