//! The command line. Every setting can also come from the config file
//! (`--config`); a flag wins over the file.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

/// A fake HighLevel OAuth server for testing apps in any language.
///
/// It serves the OAuth endpoints (`/oauth/token`, `/oauth/locationToken`,
/// `/oauth/installedLocations` and their v3 paths, the consent page), one
/// API call (`GET /locations/{locationId}`), and an admin API under
/// `/_fake/` on the same port. With no install given, it seeds one Location
/// install (`company-1/loc-1`).
#[derive(Debug, Parser)]
#[command(name = "hoopai-fake", version, about, long_about = None)]
pub struct Cli {
    /// A JSON config file (see docs/fake-server.md); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The TCP port; 0 (the default) lets the system choose one, which the
    /// handoff file and the `listening` line report.
    #[arg(long)]
    pub port: Option<u16>,

    /// The address to listen on (default 127.0.0.1). The admin API has no
    /// authentication: keep it on loopback.
    #[arg(long)]
    pub bind: Option<IpAddr>,

    /// Write the handoff JSON (base URL, credentials, codes, webhook key)
    /// here once listening: mode 0600, renamed into place when complete,
    /// removed at exit.
    #[arg(long, value_name = "FILE")]
    pub handoff: Option<PathBuf>,

    /// The app's client id (the app id is its part before the first `-`).
    #[arg(long)]
    pub client_id: Option<String>,

    /// The app's client secret.
    #[arg(long)]
    pub client_secret: Option<String>,

    /// The redirect URI the handoff reports and the consent page expects.
    #[arg(long)]
    pub redirect_uri: Option<String>,

    /// Seed a Location install, `COMPANY/LOCATION` (repeatable).
    #[arg(long, value_name = "COMPANY/LOCATION")]
    pub location: Vec<String>,

    /// Seed an agency (Company) install, `COMPANY:APPROVED[/TOTAL]`: TOTAL
    /// locations (default APPROVED), the first APPROVED of them approved.
    #[arg(long, value_name = "COMPANY:N[/TOTAL]")]
    pub agency: Vec<String>,

    /// Seed a bulk install, `COMPANY:N`: a Company install approving all N
    /// locations and the ones to come.
    #[arg(long, value_name = "COMPANY:N")]
    pub bulk: Vec<String>,

    /// Where webhooks go unless a request names a URL (plain `http://`).
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,

    /// The `expires_in` of new access tokens, in seconds (default 86399).
    #[arg(long, value_name = "SECS")]
    pub access_token_lifetime: Option<u64>,

    /// Enforce a rate limit from the start, `MAX/SECONDS` (e.g. `100/10`).
    #[arg(long, value_name = "MAX/SECONDS")]
    pub rate_limit: Option<String>,

    /// Mint Location tokens without a refresh token.
    #[arg(long)]
    pub no_location_refresh_tokens: bool,

    /// The largest request body accepted, in bytes (default 65536).
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// The most connections served at once (default 256); more wait.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// How many requests the log keeps, the oldest dropped first (default 10000).
    #[arg(long, value_name = "N")]
    pub log_capacity: Option<usize>,

    /// Stop when standard input closes (for a parent process that holds it).
    #[arg(long)]
    pub exit_on_stdin_close: bool,

    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout_secs: Option<u64>,

    /// Print no line per request on standard error.
    #[arg(long)]
    pub quiet: bool,
}
