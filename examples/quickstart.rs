//! The whole OAuth flow with a real blocking HTTP client (ureq) over real sockets.
//!
//! With no environment set, it starts the crate's fake HighLevel server on a
//! loopback port (served by tiny_http) and walks consent → code exchange →
//! refresh. With `HOOPAI_CLIENT_ID`, `HOOPAI_CLIENT_SECRET`, `HOOPAI_REDIRECT_URI`
//! and `HOOPAI_CODE` set (and optionally `HOOPAI_BASE_URL`, `HOOPAI_USER_TYPE`,
//! `HOOPAI_TOKEN_FILE`), it exchanges that code at that server instead.
//!
//! Run: `cargo run --example quickstart`.

use std::fmt;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use hoopai_oauth::fake::{FakeServer, Install};
use hoopai_oauth::{
    AuthorizationCode, Config, ConsentRequest, Engine, EngineSettings, Error, Event, GrantRecord,
    InstalledLocationsQuery, LocationTokenRequest, Output, Scope, State, TokenRequest, TokenSet,
    TokenStatus, UserType, installed_locations_request, location_token_request, parse_callback,
    parse_installed_locations, parse_location_token_response, parse_token_response, token_request,
};

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

fn describe(token: &TokenSet) -> String {
    let t = token.token();
    format!(
        "access {} · refresh {} · {} · expires in {}s · scopes {}",
        t.access_token,
        t.refresh_token
            .as_ref()
            .map_or_else(|| "(none)".to_owned(), ToString::to_string),
        t.user_type
            .as_ref()
            .map_or_else(|| "unknown class".to_owned(), |u| format!("{u} token")),
        t.lifetime().as_secs(),
        t.scope.as_ref().map_or("(none)", |s| s.as_str()),
    )
}

// ---- the HTTP client ------------------------------------------------------------------

/// Sends one request with ureq and returns the whole response, body capped.
fn send(
    agent: &ureq::Agent,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, Failure> {
    let response = agent
        .run(request)
        .map_err(|e| Failure::Transport(e.to_string()))?;
    let (parts, mut body) = response.into_parts();
    let bytes = body
        .with_config()
        .limit(hoopai_oauth::MAX_BODY_BYTES as u64 + 1)
        .read_to_vec()
        .map_err(|e| Failure::Transport(e.to_string()))?;
    Ok(http::Response::from_parts(parts, bytes))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Exchanges a code, then refreshes once through the engine, which persists
/// each new record (to `token_file`, when given) before it reports the token.
fn exchange_and_refresh(
    agent: &ureq::Agent,
    config: &Config,
    code: &str,
    user_type: Option<UserType>,
    token_file: Option<&std::path::Path>,
    summary: &mut Summary,
) -> Result<GrantRecord, Failure> {
    let mut exchange = TokenRequest::authorization_code(code);
    if let Some(t) = user_type {
        exchange = exchange.user_type(t);
    }
    let sent_at = SystemTime::now();
    let token = parse_token_response(send(agent, token_request(config, &exchange)?)?)?;
    let first = TokenSet::new(token, sent_at);
    summary.step(format!("code exchanged: {}", describe(&first)));
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
    engine.refresh_now(grant, start)?;
    let give_up = start + Duration::from_secs(120);
    let mut latest: Option<GrantRecord> = None;
    let mut refreshed = false;
    loop {
        while let Some(output) = engine.poll_output(SystemTime::now()) {
            match output {
                Output::Persist { record, .. } => {
                    // Durable before going on: it may hold the only live refresh token.
                    if let Some(path) = token_file {
                        write_private(path, &record)?;
                    }
                    latest = Some(record);
                }
                Output::Send { id, request, .. } => match send(agent, request) {
                    Ok(response) => engine.handle_response(id, response, SystemTime::now())?,
                    Err(Failure::Transport(why)) => {
                        println!("    transport error, the engine will retry: {why}");
                        engine.handle_transport_error(id, SystemTime::now())?;
                    }
                    Err(other) => return Err(other),
                },
                Output::Event(event) => match event {
                    Event::Refreshed { .. } => refreshed = true,
                    Event::ReauthorizationNeeded { error, .. }
                    | Event::ConfigurationRejected { error, .. }
                    | Event::Suspended { error, .. } => return Err(Failure::OAuth(error)),
                    Event::TokenReady { .. } => {}
                    other => println!("    engine: {other}"),
                },
                _ => {}
            }
        }
        if refreshed
            && let TokenStatus::Ready(_) = engine.access_token(grant, SystemTime::now())?
            && let Some(record) = latest.take()
        {
            let rotated = record.tokens.refresh_token() != old_refresh.as_ref();
            summary.step(format!(
                "refreshed by the engine ({}), record v{} persisted first: {}",
                if rotated {
                    "refresh token rotated"
                } else {
                    "refresh token kept"
                },
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
        engine.handle_timeout(SystemTime::now());
    }
}

// ---- against a real server ----------------------------------------------------------------

fn env(name: &str) -> Result<String, Failure> {
    std::env::var(name).map_err(|_| Failure::Setup(format!("{name} is not set")))
}

/// What a run against a real server needs.
#[derive(Debug, Clone)]
pub struct RealSettings {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: String,
    /// The redirect URI the code was issued for.
    pub redirect_uri: String,
    /// The code from the consent redirect.
    pub code: String,
    /// The API base URL; the real API when `None`.
    pub base_url: Option<String>,
    /// `Company` or `Location`, when asked for.
    pub user_type: Option<UserType>,
    /// Where to write the token set (mode 0600).
    pub token_file: Option<std::path::PathBuf>,
}

impl RealSettings {
    /// Reads the `HOOPAI_*` variables.
    pub fn from_env() -> Result<Self, Failure> {
        let optional = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
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
        Ok(RealSettings {
            client_id: env("HOOPAI_CLIENT_ID")?,
            client_secret: env("HOOPAI_CLIENT_SECRET")?,
            redirect_uri: env("HOOPAI_REDIRECT_URI")?,
            code: env("HOOPAI_CODE")?,
            base_url: optional("HOOPAI_BASE_URL"),
            user_type,
            token_file: optional("HOOPAI_TOKEN_FILE").map(Into::into),
        })
    }
}

/// Exchanges `HOOPAI_CODE` at `HOOPAI_BASE_URL` (the real API by default).
pub fn run_from_env() -> Result<Summary, Failure> {
    run_real(&RealSettings::from_env()?)
}

/// Exchanges the code at the server, refreshes once, and writes the token file.
pub fn run_real(settings: &RealSettings) -> Result<Summary, Failure> {
    let mut builder = Config::builder(settings.client_id.as_str(), settings.client_secret.as_str())
        .redirect_uri(settings.redirect_uri.as_str());
    if let Some(base) = &settings.base_url {
        builder = builder.base_url(base.as_str());
    }
    let config = builder.build()?;
    let mut summary = Summary::default();
    summary.step(format!("server {}", config.base_url()));
    exchange_and_refresh(
        &agent(),
        &config,
        &settings.code,
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

/// Writes the grant record as JSON, readable by the owner only.
fn write_private(path: &std::path::Path, record: &GrantRecord) -> Result<(), Failure> {
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

// ---- against the local fake ----------------------------------------------------------------

/// The fake server on a loopback port, served by tiny_http.
pub struct LocalFake {
    /// The fake itself, for setting it up.
    pub fake: Arc<Mutex<FakeServer>>,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl LocalFake {
    /// Starts serving `fake` on an ephemeral loopback port.
    pub fn start(fake: FakeServer) -> Result<Self, Failure> {
        let server = tiny_http::Server::http("127.0.0.1:0")
            .map_err(|e| Failure::Setup(format!("cannot listen on loopback: {e}")))?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or_else(|| Failure::Setup("no loopback port".into()))?;
        let server = Arc::new(server);
        let fake = Arc::new(Mutex::new(fake));
        let thread = {
            let (server, fake) = (Arc::clone(&server), Arc::clone(&fake));
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    serve(&fake, request);
                }
            })
        };
        Ok(LocalFake {
            fake,
            base_url: format!("http://127.0.0.1:{port}"),
            server,
            thread: Some(thread),
        })
    }
}

impl Drop for LocalFake {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Converts one tiny_http request to `http::Request`, lets the fake answer, and
/// writes the answer back.
fn serve(fake: &Mutex<FakeServer>, mut request: tiny_http::Request) {
    let mut body = Vec::new();
    if request.as_reader().read_to_end(&mut body).is_err() {
        let _ = request.respond(tiny_http::Response::empty(400));
        return;
    }
    let mut builder = http::Request::builder()
        .method(request.method().as_str())
        .uri(request.url());
    for h in request.headers() {
        builder = builder.header(h.field.as_str().as_str(), h.value.as_str());
    }
    let Ok(http_request) = builder.body(body) else {
        let _ = request.respond(tiny_http::Response::empty(400));
        return;
    };
    let answer = match fake.lock() {
        Ok(mut fake) => fake.handle(&http_request, SystemTime::now()),
        Err(_) => {
            let _ = request.respond(tiny_http::Response::empty(500));
            return;
        }
    };
    let (parts, body) = answer.into_parts();
    let mut response = tiny_http::Response::from_data(body).with_status_code(parts.status.as_u16());
    for (name, value) in &parts.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_str().as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    let _ = request.respond(response);
}

/// The local demo's app credentials (placeholders; the fake accepts them).
const DEMO_CLIENT_ID: &str = "6578278e879ad2646715ba9c-quickstart";
const DEMO_CLIENT_SECRET: &str = "demo-client-secret-not-a-real-one";
const DEMO_REDIRECT: &str = "https://myapp.example/oauth/callback";
const COMPANY: &str = "company-1";

/// 32 random bytes from the operating system, through the standard library's
/// randomly seeded hasher. The crate never draws randomness itself.
fn random_bytes() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut out = Vec::with_capacity(32);
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        out.extend_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// Sends the user to consent (the fake approves at once), follows nothing, and
/// reads the code off the redirect, checking the state.
fn consent(
    agent: &ureq::Agent,
    config: &Config,
    scopes: &[Scope],
    summary: &mut Summary,
) -> Result<AuthorizationCode, Failure> {
    let state = State::from_random_bytes(&random_bytes())?;
    let url = ConsentRequest::new(scopes.iter().cloned())
        .state(state.clone())
        .build(config)?;
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
    let set_consent = |install: Install| -> Result<(), Failure> {
        local
            .fake
            .lock()
            .map_err(|_| Failure::Setup("fake server lock poisoned".into()))?
            .set_consent_install(install);
        Ok(())
    };
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

    // A sub-account (Location) install: consent, exchange, refresh.
    set_consent(Install::location(COMPANY, "loc-1"))?;
    let code = consent(
        &agent,
        &config,
        &[Scope::CONTACTS_READONLY, Scope::CONTACTS_WRITE],
        &mut summary,
    )?;
    exchange_and_refresh(
        &agent,
        &config,
        code.secret(),
        Some(UserType::Location),
        None,
        &mut summary,
    )?;

    // An agency (Company) install with three approved sub-accounts.
    set_consent(Install::company(COMPANY, &["loc-1", "loc-2", "loc-3"]))?;
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
