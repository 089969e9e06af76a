//! The whole OAuth flow with a real blocking HTTP client (ureq) over real sockets.
//!
//! With no environment set, it starts the crate's fake HighLevel server on a
//! loopback port (served by tiny_http) and walks:
//! consent → code exchange → a refresh driven by the engine, which first meets
//! a scripted `429` and waits it out → an agency install, its Location tokens
//! and its installed locations, page by page.
//!
//! Against a real server, set `HOOPAI_CLIENT_ID`, `HOOPAI_CLIENT_SECRET` and
//! `HOOPAI_REDIRECT_URI`, then either `HOOPAI_CODE` (a code to exchange) or
//! `HOOPAI_SCOPES` (go through the consent page first; see `real.rs`).
//! Optional: `HOOPAI_USER_TYPE`, `HOOPAI_BASE_URL`, `HOOPAI_CONSENT_URL`,
//! `HOOPAI_TOKEN_FILE`.
//!
//! Every token is printed as a redaction (`rt-0…(33 chars)`) and a short
//! fingerprint (`#1a2b3c4d`), so a rotated refresh token is visible without
//! being shown.
//!
//! Run: `cargo run --example quickstart`.

mod loopback;
mod real;

use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use hoopai_oauth::fake::{FakeServer, Fault, Install};
use hoopai_oauth::{
    AuthorizationCode, Config, ConsentRequest, ConsentState, Engine, EngineEvent, EngineSettings,
    Error, GrantRecord, InstalledLocationsQuery, LocationTokenRequest, Output, RefreshToken, Scope,
    SendOutcome, TokenRequest, TokenResponse, TokenSet, TokenStatus, UserType, WriteOutcome,
    consent_url, installed_locations_request, location_token_request, parse_callback,
    parse_installed_locations, parse_location_token_response, parse_token_response, token_request,
};

pub use loopback::{LocalFake, agent, send};
pub use real::{RealSettings, loopback_listen_address, run_from_env, run_real};

fn main() -> ExitCode {
    let result = if std::env::var_os("HOOPAI_CLIENT_ID").is_some() {
        run_from_env()
    } else {
        run_local()
    };
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("quickstart failed: {failure}");
            ExitCode::FAILURE
        }
    }
}

// ---- what can go wrong ---------------------------------------------------------

/// Why the quickstart stopped.
#[derive(Debug)]
pub enum Failure {
    /// The crate classified an error (from the server or from our input).
    OAuth(Error),
    /// The HTTP client could not complete the exchange.
    Transport(String),
    /// The environment or the local setup is wrong.
    Setup(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::OAuth(e) => write!(f, "[{:?}] {e}", e.kind()),
            Failure::Transport(e) => write!(f, "transport error: {e}"),
            Failure::Setup(e) => write!(f, "setup error: {e}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::OAuth(e)
    }
}

// ---- the summary that is printed --------------------------------------------------

/// What the run did, with every token redacted.
#[derive(Debug, Default)]
pub struct Summary {
    /// One line per step.
    pub steps: Vec<String>,
}

impl Summary {
    fn step(&mut self, line: impl Into<String>) {
        let line = line.into();
        println!("{:>2}. {line}", self.steps.len() + 1);
        self.steps.push(line);
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "✓ all {} steps succeeded", self.steps.len())
    }
}

/// Whose token it is: its class, the sub-account or agency, and the user who
/// installed the app.
fn whose(t: &TokenResponse) -> String {
    let mut parts = vec![t.user_type.as_ref().map_or_else(
        || "token of unknown class".to_owned(),
        |u| format!("{u} token"),
    )];
    if let Some(location) = &t.location_id {
        parts.push(format!("locationId {location}"));
    }
    if let Some(company) = &t.company_id {
        parts.push(format!("companyId {company}"));
    }
    parts.push(format!(
        "userId {}",
        t.user_id.as_deref().unwrap_or("(not sent)")
    ));
    parts.join(" · ")
}

/// A refresh token as printed: its redaction and its fingerprint.
fn shown(token: Option<&RefreshToken>) -> String {
    token.map_or_else(
        || "(none)".to_owned(),
        |t| format!("{t} #{}", t.fingerprint()),
    )
}

fn describe(token: &TokenSet) -> String {
    let t = token.token();
    format!(
        "{} · access {} #{} · refresh {} · expires in {} s · scopes {}",
        whose(t),
        t.access_token,
        t.access_token.fingerprint(),
        shown(t.refresh_token.as_ref()),
        t.lifetime().as_secs(),
        t.scope.as_ref().map_or("(none)", |s| s.as_str()),
    )
}

/// 32 random bytes from the operating system, through the standard library's
/// randomly seeded hasher. The crate never draws randomness itself.
pub fn random_bytes() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut out = Vec::with_capacity(32);
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        out.extend_from_slice(&h.finish().to_le_bytes());
    }
    out
}

// ---- exchange, then refresh through the engine ---------------------------------------

/// Exchanges a code, then refreshes once through the engine, which persists
/// each new record (to `token_file`, when given) before it reports the token.
fn exchange_and_refresh(
    agent: &ureq::Agent,
    config: &Config,
    code: &AuthorizationCode,
    user_type: Option<UserType>,
    token_file: Option<&std::path::Path>,
    summary: &mut Summary,
) -> Result<GrantRecord, Failure> {
    let mut exchange = TokenRequest::authorization_code(code.secret());
    if let Some(t) = user_type {
        exchange = exchange.user_type(t);
    }
    let sent_at = SystemTime::now();
    let token = parse_token_response(send(agent, token_request(config, &exchange)?)?)?;
    let first = TokenSet::new(token, sent_at);
    summary.step(format!("code exchanged: {}", describe(&first)));
    // The grant key: the sub-account of a Location token, the agency of a
    // Company token.
    let grant = first
        .token()
        .location_id
        .clone()
        .or_else(|| first.token().company_id.clone())
        .unwrap_or_else(|| "grant".to_owned());
    refresh_once(agent, config, &grant, first, token_file, summary)
}

/// Hands the token set to the engine, asks it to refresh now, and drives it
/// until the new token is ready: the run loop of the crate docs, with ureq.
/// Retries (a `429`, a `5xx`, a transport error) are the engine's to schedule;
/// this loop only sleeps until the deadline it gives.
fn refresh_once(
    agent: &ureq::Agent,
    config: &Config,
    grant: &str,
    tokens: TokenSet,
    token_file: Option<&std::path::Path>,
    summary: &mut Summary,
) -> Result<GrantRecord, Failure> {
    let old_refresh = tokens.refresh_token().cloned();
    let seed = random_bytes()
        .iter()
        .fold(0u64, |a, b| a.rotate_left(8) ^ u64::from(*b));
    let mut engine = Engine::new(config.clone(), EngineSettings::default().jitter_seed(seed));
    let start = SystemTime::now();
    engine.insert(grant, tokens, start)?;
    engine.refresh_now(grant, None, start)?;
    let give_up = start + Duration::from_secs(120);
    let mut latest: Option<GrantRecord> = None;
    let mut refreshed = false;
    let mut retries = 0;
    loop {
        while let Some(output) = engine.poll_output(SystemTime::now()) {
            match output {
                Output::Persist { record, .. } => {
                    // It may hold the only live refresh token: written, then
                    // reported, before the engine relies on it.
                    if let Some(path) = token_file {
                        real::write_private(path, &record)?;
                    }
                    let (version, now) = (record.version, SystemTime::now());
                    engine.handle_write(grant, version, WriteOutcome::Written, now)?;
                    latest = Some(record);
                }
                Output::Send { id, request, .. } => {
                    let outcome = match send(agent, request) {
                        Ok(response) => SendOutcome::Response(response),
                        Err(Failure::Transport(why)) => {
                            println!("    transport error, the engine will retry: {why}");
                            SendOutcome::TransportError(why)
                        }
                        Err(other) => return Err(other),
                    };
                    engine.handle_send(id, outcome, SystemTime::now())?;
                }
                Output::Event(event) => match event {
                    EngineEvent::Refreshed { .. } => refreshed = true,
                    EngineEvent::RetryScheduled { at, failure, .. } => {
                        retries += 1;
                        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                        summary.step(format!(
                            "refresh refused ({failure}); the engine waits {:.1} s, then \
                             retries with the same refresh token {}",
                            wait.as_secs_f64(),
                            shown(old_refresh.as_ref())
                        ));
                    }
                    EngineEvent::ReauthorizationNeeded { error, .. }
                    | EngineEvent::ConfigurationRejected { error, .. }
                    | EngineEvent::Suspended { error, .. } => return Err(Failure::OAuth(error)),
                    EngineEvent::TokenReady { .. } => {}
                    other => println!("    engine: {other}"),
                },
                _ => {}
            }
        }
        if refreshed
            && let TokenStatus::Ready(_) = engine.access_token(grant, SystemTime::now())?
            && let Some(record) = latest.take()
        {
            let new_refresh = record.tokens.refresh_token();
            let rotation = if new_refresh == old_refresh.as_ref() {
                format!("refresh token kept {}", shown(new_refresh))
            } else {
                format!(
                    "refresh token rotated {} → {}",
                    shown(old_refresh.as_ref()),
                    shown(new_refresh)
                )
            };
            summary.step(format!(
                "refreshed by the engine after {retries} retr{}: {rotation}; record v{} \
                 persisted before the token was handed out: {}",
                if retries == 1 { "y" } else { "ies" },
                record.version,
                describe(&record.tokens)
            ));
            return Ok(record);
        }
        let Some(next) = engine.poll_timeout() else {
            return Err(Failure::Setup("the engine has nothing left to do".into()));
        };
        if next > give_up {
            return Err(Failure::Setup("no refresh within two minutes".into()));
        }
        std::thread::sleep(next.duration_since(SystemTime::now()).unwrap_or_default());
        engine.handle_timeout(SystemTime::now()).unwrap();
    }
}

// ---- against the local fake ----------------------------------------------------------------

/// The local demo's app credentials (placeholders; the fake accepts them).
const DEMO_CLIENT_ID: &str = "6578278e879ad2646715ba9c-quickstart";
const DEMO_CLIENT_SECRET: &str = "demo-client-secret-not-a-real-one";
const DEMO_REDIRECT: &str = "https://myapp.example/oauth/callback";
const COMPANY: &str = "company-1";

/// Sends the user to consent (the fake approves at once), follows nothing, and
/// reads the code off the redirect, checking the state.
fn consent(
    agent: &ureq::Agent,
    config: &Config,
    scopes: &[Scope],
    summary: &mut Summary,
) -> Result<AuthorizationCode, Failure> {
    let state = ConsentState::from_random_bytes(&random_bytes())?;
    let url = consent_url(
        config,
        &ConsentRequest::new(scopes.iter().cloned()).state(state.clone()),
    )?;
    summary.step(format!("consent URL followed: {url}"));
    let request = http::Request::get(url.as_str())
        .body(Vec::new())
        .map_err(|e| Failure::Setup(e.to_string()))?;
    let answer = send(agent, request)?;
    let location = answer
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Failure::Setup(format!(
                "consent answered {} without a redirect",
                answer.status()
            ))
        })?;
    let code = parse_callback(location, Some(&state))?;
    summary.step(format!(
        "consent approved, redirect checked (state matches): code {code}"
    ));
    Ok(code)
}

/// Starts the fake on loopback and walks the whole flow against it.
pub fn run_local() -> Result<Summary, Failure> {
    let mut fake = FakeServer::new(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET);
    let sub_accounts = [
        ("loc-1", "Downtown Dental", "1 Main St, Springfield"),
        ("loc-2", "Uptown Dental", "2 High St, Springfield"),
        ("loc-3", "Lakeside Clinic", "3 Lake Rd, Shelbyville"),
        ("loc-4", "Hilltop Physio", "4 Hill Ave, Shelbyville"),
        ("loc-5", "Riverside Vets", "5 River Way, Ogdenville"),
    ];
    for (id, name, address) in sub_accounts {
        fake.add_location(COMPANY, id, name, address);
    }
    let local = LocalFake::start(fake)?;
    let config = Config::builder(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        .redirect_uri(DEMO_REDIRECT)
        .base_url(local.base_url.clone())
        .consent_url(format!("{}/v2/oauth/chooselocation", local.base_url))
        .build()?;
    let agent = agent();
    let mut summary = Summary::default();
    summary.step(format!(
        "fake HighLevel server listening on {}",
        local.base_url
    ));

    // A sub-account (Location) install: consent, exchange, and a refresh whose
    // first try the fake answers with a 429 that the engine waits out.
    local.with(|f| {
        f.set_consent_install(Install::location(COMPANY, "loc-1"));
    })?;
    let code = consent(
        &agent,
        &config,
        &[Scope::CONTACTS_READONLY, Scope::CONTACTS_WRITE],
        &mut summary,
    )?;
    let exchange = TokenRequest::authorization_code(code.secret()).user_type(UserType::Location);
    let sent_at = SystemTime::now();
    let token = parse_token_response(send(&agent, token_request(&config, &exchange)?)?)?;
    let first = TokenSet::new(token, sent_at);
    summary.step(format!("code exchanged: {}", describe(&first)));
    local.with(|f| {
        f.fail_next(
            Fault::RateLimited {
                retry_after_secs: Some(1),
            },
            1,
        );
    })?;
    summary
        .step("the fake will answer the next request with 429 Too Many Requests, Retry-After: 1");
    let grant = first.token().location_id.clone().unwrap_or_default();
    refresh_once(&agent, &config, &grant, first, None, &mut summary)?;

    // An agency (Company) install with three approved sub-accounts.
    local.with(|f| {
        f.set_consent_install(Install::company(COMPANY, &["loc-1", "loc-2", "loc-3"]));
    })?;
    let code = consent(
        &agent,
        &config,
        &[
            Scope::OAUTH_READONLY,
            Scope::OAUTH_WRITE,
            Scope::LOCATIONS_READONLY,
        ],
        &mut summary,
    )?;
    let sent_at = SystemTime::now();
    let request = token_request(
        &config,
        &TokenRequest::authorization_code(code.secret()).user_type(UserType::Company),
    )?;
    let company = TokenSet::new(parse_token_response(send(&agent, request)?)?, sent_at);
    let approved = company
        .token()
        .approved_locations
        .clone()
        .unwrap_or_default();
    summary.step(format!(
        "agency install exchanged: {} · approved locations {approved:?}",
        describe(&company)
    ));

    // A Location token minted for each approved sub-account.
    for location in &approved {
        let request = location_token_request(
            &config,
            &company,
            &LocationTokenRequest::new(COMPANY, location.as_str()),
        )?;
        let sent_at = SystemTime::now();
        let minted = TokenSet::new(
            parse_location_token_response(send(&agent, request)?)?,
            sent_at,
        );
        summary.step(format!(
            "location token for {location}: {}",
            describe(&minted)
        ));
    }

    // Every installed location, page by page (2 a page to show the paging).
    let mut query = Some(InstalledLocationsQuery::new(COMPANY).page_size(2));
    let mut page_number = 0;
    while let Some(q) = query {
        let request = installed_locations_request(&config, &company, &q)?;
        let page = parse_installed_locations(send(&agent, request)?)?;
        page_number += 1;
        let names: Vec<String> = page
            .locations
            .iter()
            .map(|l| {
                format!(
                    "{} {} ({})",
                    l.id,
                    l.name.as_deref().unwrap_or("?"),
                    if l.is_installed == Some(true) {
                        "installed"
                    } else {
                        "not installed"
                    }
                )
            })
            .collect();
        summary.step(format!(
            "installed locations page {page_number} (of {} in all): {}",
            page.total.map_or_else(|| "?".to_owned(), |t| t.to_string()),
            names.join(", ")
        ));
        query = q.next_page(&page);
    }
    Ok(summary)
}
