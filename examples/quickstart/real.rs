//! Against a real server: from an app's client id, secret and redirect URI to
//! a refreshed token, with one command.
//!
//! - With `HOOPAI_CODE`, that code is exchanged.
//! - Without it, the consent URL for `HOOPAI_SCOPES` is printed. A loopback
//!   `http` redirect URI (`http://127.0.0.1:8910/callback`, `http://localhost:…`)
//!   is listened on, and the code caught from the browser's redirect; any other
//!   redirect URI is read back from standard input, pasted from the browser's
//!   address bar.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hoopai_oauth::{
    AuthorizationCode, Config, ConsentRequest, ConsentState, Scope, UserType, consent_url,
    parse_callback,
};

use super::{Failure, Summary, exchange_and_refresh, loopback::agent, random_bytes};

/// How long the loopback listener waits for the browser's redirect.
const CONSENT_WAIT: Duration = Duration::from_secs(600);

/// What a run against a real server needs.
#[derive(Debug, Clone, Default)]
pub struct RealSettings {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: String,
    /// The app's redirect URI, as registered in the marketplace.
    pub redirect_uri: String,
    /// A code from a consent redirect; when `None`, the consent runs first.
    pub code: Option<String>,
    /// The scopes to ask for on the consent page (needed without `code`).
    pub scopes: Vec<String>,
    /// The consent page; HighLevel's standard one when `None`.
    pub consent_url: Option<String>,
    /// The API base URL; the real API when `None`.
    pub base_url: Option<String>,
    /// `Company` or `Location`, when asked for.
    pub user_type: Option<UserType>,
    /// Where to write the grant record (mode 0600).
    pub token_file: Option<PathBuf>,
}

fn env(name: &str) -> Result<String, Failure> {
    std::env::var(name).map_err(|_| Failure::Setup(format!("{name} is not set")))
}

impl RealSettings {
    /// Reads the `HOOPAI_*` variables.
    pub fn from_env() -> Result<Self, Failure> {
        let optional = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let user_type = match optional("HOOPAI_USER_TYPE").as_deref() {
            None => None,
            Some("Company") => Some(UserType::Company),
            Some("Location") => Some(UserType::Location),
            Some(other) => {
                return Err(Failure::Setup(format!(
                    "HOOPAI_USER_TYPE must be Company or Location, not {other:?}"
                )));
            }
        };
        let scopes = optional("HOOPAI_SCOPES")
            .map(|s| {
                s.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(RealSettings {
            client_id: env("HOOPAI_CLIENT_ID")?,
            client_secret: env("HOOPAI_CLIENT_SECRET")?,
            redirect_uri: env("HOOPAI_REDIRECT_URI")?,
            code: optional("HOOPAI_CODE"),
            scopes,
            consent_url: optional("HOOPAI_CONSENT_URL"),
            base_url: optional("HOOPAI_BASE_URL"),
            user_type,
            token_file: optional("HOOPAI_TOKEN_FILE").map(Into::into),
        })
    }
}

/// Runs against the server the `HOOPAI_*` variables name (the real API by default).
pub fn run_from_env() -> Result<Summary, Failure> {
    run_real(&RealSettings::from_env()?, &mut std::io::stdin().lock())
}

/// Gets a code (the given one, or through the consent page), exchanges it,
/// refreshes once, and writes the token file. A pasted redirect URL is read
/// from `input`.
pub fn run_real(settings: &RealSettings, input: &mut dyn BufRead) -> Result<Summary, Failure> {
    let mut builder = Config::builder(settings.client_id.as_str(), settings.client_secret.as_str())
        .redirect_uri(settings.redirect_uri.as_str());
    if let Some(base) = &settings.base_url {
        builder = builder.base_url(base.as_str());
    }
    if let Some(consent) = &settings.consent_url {
        builder = builder.consent_url(consent.as_str());
    }
    let config = builder.build()?;
    let mut summary = Summary::default();
    summary.step(format!("server {}", config.base_url()));
    let code = match &settings.code {
        Some(code) => AuthorizationCode::new(code.as_str()),
        None => consent(&config, &settings.scopes, input, &mut summary)?,
    };
    exchange_and_refresh(
        &agent(),
        &config,
        &code,
        settings.user_type.clone(),
        settings.token_file.as_deref(),
        &mut summary,
    )?;
    if let Some(path) = &settings.token_file {
        summary.step(format!(
            "grant record written to {} (mode 0600)",
            path.display()
        ));
    }
    Ok(summary)
}

/// Prints the consent URL, then catches the redirect on loopback or reads it
/// from `input`, and checks its state.
fn consent(
    config: &Config,
    scopes: &[String],
    input: &mut dyn BufRead,
    summary: &mut Summary,
) -> Result<AuthorizationCode, Failure> {
    if scopes.is_empty() {
        return Err(Failure::Setup(
            "set HOOPAI_CODE to exchange a code, or HOOPAI_SCOPES (the app's scopes, \
             space-separated) to go through the consent page first"
                .into(),
        ));
    }
    let scopes = scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()?;
    let state = ConsentState::from_random_bytes(&random_bytes())?;
    let url = consent_url(config, &ConsentRequest::new(scopes).state(state.clone()))?;
    let redirect = config.redirect_uri().unwrap_or_default();
    let redirected = match loopback_listen_address(redirect) {
        Some((address, path)) => {
            // Listen before sending anyone to the consent page.
            let server = tiny_http::Server::http(address.as_str()).map_err(|e| {
                Failure::Setup(format!("cannot listen on {address} for the redirect: {e}"))
            })?;
            summary.step(format!(
                "consent URL, open it in a browser and approve: {url}"
            ));
            summary.step(format!(
                "listening on http://{address}{path} for the redirect (up to {} minutes)",
                CONSENT_WAIT.as_secs() / 60
            ));
            catch_redirect(&server, &path)?
        }
        None => {
            summary.step(format!(
                "consent URL, open it in a browser and approve: {url}"
            ));
            summary.step(format!(
                "then paste here the whole URL the browser was sent to (it starts with {redirect}):"
            ));
            let mut line = String::new();
            input
                .read_line(&mut line)
                .map_err(|e| Failure::Setup(format!("cannot read standard input: {e}")))?;
            if line.trim().is_empty() {
                return Err(Failure::Setup("no redirect URL on standard input".into()));
            }
            line
        }
    };
    let code = parse_callback(&redirected, Some(&state))?;
    summary.step(format!(
        "consent approved, redirect checked (state matches): code {code}"
    ));
    Ok(code)
}

/// `host:port` to listen on and the path to expect, when `redirect` is a
/// loopback `http` URL.
pub fn loopback_listen_address(redirect: &str) -> Option<(String, String)> {
    let uri: http::Uri = redirect.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = match uri.host()? {
        "localhost" | "127.0.0.1" => "127.0.0.1",
        "[::1]" | "::1" => "[::1]",
        _ => return None,
    };
    let port = uri.port_u16().unwrap_or(80);
    let path = match uri.path() {
        "" => "/".to_owned(),
        p => p.to_owned(),
    };
    Some((format!("{host}:{port}"), path))
}

/// Answers requests on the listener until one comes to `path`; returns its
/// path and query. Other paths (a browser's `/favicon.ico`) get a 404.
fn catch_redirect(server: &tiny_http::Server, path: &str) -> Result<String, Failure> {
    let give_up = Instant::now() + CONSENT_WAIT;
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        let request = server
            .recv_timeout(left)
            .map_err(|e| Failure::Setup(format!("listening for the redirect: {e}")))?
            .ok_or_else(|| Failure::Setup("no redirect came back within the wait".into()))?;
        let url = request.url().to_owned();
        let request_path = url.split(['?', '#']).next().unwrap_or_default();
        if request_path != path {
            let _ = request.respond(tiny_http::Response::empty(404));
            continue;
        }
        let page = tiny_http::Response::from_string(
            "hoopai-oauth quickstart: redirect received. You can close this tab; the terminal shows the rest.\n",
        );
        let _ = request.respond(page);
        return Ok(url);
    }
}

/// Writes the grant record as JSON, readable by the owner only.
pub fn write_private(path: &Path, record: &hoopai_oauth::GrantRecord) -> Result<(), Failure> {
    use std::io::Write;
    let json = serde_json::to_vec_pretty(record).map_err(|e| Failure::Setup(e.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| Failure::Setup(format!("cannot write {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // An existing file keeps its mode on open; tighten it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Failure::Setup(format!("cannot chmod {}: {e}", path.display())))?;
    }
    file.write_all(&json)
        .map_err(|e| Failure::Setup(format!("cannot write {}: {e}", path.display())))
}
