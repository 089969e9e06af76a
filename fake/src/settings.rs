//! The settings of one run: the config file, then the flags over it, checked.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::Cli;
use crate::seed::Seed;

/// The largest config file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The credentials when none are given (placeholders the fake accepts).
pub const DEFAULT_CLIENT_ID: &str = "6578278e879ad2646715ba9c-fakeserver";
/// See [`DEFAULT_CLIENT_ID`].
pub const DEFAULT_CLIENT_SECRET: &str = "fake-server-client-secret-placeholder";
/// See [`DEFAULT_CLIENT_ID`].
pub const DEFAULT_REDIRECT_URI: &str = "https://myapp.example/oauth/callback";

/// A rate limit to enforce.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Requests accepted per interval.
    pub max: u64,
    /// The interval in milliseconds.
    pub interval_ms: u64,
    /// Whether a 429 carries `Retry-After`.
    #[serde(default)]
    pub retry_after: bool,
}

/// The config file, every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    port: Option<u16>,
    bind: Option<IpAddr>,
    handoff: Option<PathBuf>,
    client_id: Option<String>,
    client_secret: Option<String>,
    redirect_uri: Option<String>,
    webhook_url: Option<String>,
    access_token_lifetime_secs: Option<u64>,
    rate_limit: Option<RateLimit>,
    location_refresh_tokens: Option<bool>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    log_capacity: Option<usize>,
    #[serde(default)]
    installs: Vec<Seed>,
}

/// Everything a run needs.
#[derive(Debug)]
pub struct Settings {
    pub port: u16,
    pub bind: IpAddr,
    pub handoff: Option<PathBuf>,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub webhook_url: Option<String>,
    pub access_token_lifetime: Option<Duration>,
    pub rate_limit: Option<RateLimit>,
    pub location_refresh_tokens: bool,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub log_capacity: usize,
    pub installs: Vec<Seed>,
    pub exit_on_stdin_close: bool,
    pub timeout: Option<Duration>,
    pub quiet: bool,
}

impl Settings {
    /// The config file (if any) with the flags over it.
    pub fn from_cli(cli: Cli) -> Result<Self, String> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => File::default(),
        };
        let mut installs = file.installs;
        for spec in &cli.location {
            installs.push(Seed::parse_location(spec)?);
        }
        for spec in &cli.agency {
            installs.push(Seed::parse_agency(spec)?);
        }
        for spec in &cli.bulk {
            installs.push(Seed::parse_bulk(spec)?);
        }
        if installs.is_empty() {
            installs.push(Seed::default_location());
        }
        for seed in &installs {
            seed.check()?;
        }
        let rate_limit = match &cli.rate_limit {
            Some(spec) => Some(parse_rate_limit(spec)?),
            None => file.rate_limit,
        };
        if let Some(limit) = &rate_limit {
            check_rate_limit(limit)?;
        }
        let webhook_url = cli.webhook_url.or(file.webhook_url);
        if let Some(url) = &webhook_url {
            crate::webhook::check_url(url).map_err(|e| format!("webhook URL: {e}"))?;
        }
        let lifetime = cli
            .access_token_lifetime
            .or(file.access_token_lifetime_secs);
        if lifetime == Some(0) {
            return Err("the access token lifetime must be at least 1 second".into());
        }
        let settings = Settings {
            port: cli.port.or(file.port).unwrap_or(0),
            bind: cli
                .bind
                .or(file.bind)
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            handoff: cli.handoff.or(file.handoff),
            client_id: cli
                .client_id
                .or(file.client_id)
                .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned()),
            client_secret: cli
                .client_secret
                .or(file.client_secret)
                .unwrap_or_else(|| DEFAULT_CLIENT_SECRET.to_owned()),
            redirect_uri: cli
                .redirect_uri
                .or(file.redirect_uri)
                .unwrap_or_else(|| DEFAULT_REDIRECT_URI.to_owned()),
            webhook_url,
            access_token_lifetime: lifetime.map(Duration::from_secs),
            rate_limit,
            location_refresh_tokens: !cli.no_location_refresh_tokens
                && file.location_refresh_tokens.unwrap_or(true),
            max_body_bytes: cli
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(64 * 1024),
            max_connections: cli.max_connections.or(file.max_connections).unwrap_or(256),
            log_capacity: cli.log_capacity.or(file.log_capacity).unwrap_or(10_000),
            installs,
            exit_on_stdin_close: cli.exit_on_stdin_close,
            timeout: cli.timeout_secs.map(Duration::from_secs),
            quiet: cli.quiet,
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return Err("the client id and secret must not be empty".into());
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err("max body bytes must be from 1024 to 16777216".into());
        }
        if !(1..=65_536).contains(&self.max_connections) {
            return Err("max connections must be from 1 to 65536".into());
        }
        if !(1..=1_000_000).contains(&self.log_capacity) {
            return Err("the log capacity must be from 1 to 1000000".into());
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<File, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!("{} is over 1 MiB", path.display()));
    }
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `MAX/SECONDS`, e.g. `100/10`.
fn parse_rate_limit(spec: &str) -> Result<RateLimit, String> {
    let bad = || format!("--rate-limit {spec:?}: expected MAX/SECONDS, e.g. 100/10");
    let (max, secs) = spec.split_once('/').ok_or_else(bad)?;
    let max: u64 = max.trim().parse().map_err(|_| bad())?;
    let secs: u64 = secs.trim().parse().map_err(|_| bad())?;
    Ok(RateLimit {
        max,
        interval_ms: secs.saturating_mul(1000),
        retry_after: false,
    })
}

/// A limit of at least 1 request per at least 1 ms, and at most a day.
pub fn check_rate_limit(limit: &RateLimit) -> Result<(), String> {
    if limit.max == 0 || limit.interval_ms == 0 || limit.interval_ms > 86_400_000 {
        return Err("a rate limit needs max >= 1 and an interval from 1 ms to a day".into());
    }
    Ok(())
}
