//! A working HighLevel marketplace app: the token service on the embedded
//! SQLite store, the OAuth routes (install, callback, webhook) in an axum
//! app, and tokens kept fresh.
//!
//! ```sh
//! cargo run -p hoopai-oauth-service --features axum --example marketplace_app
//! ```
//!
//! Without the `HOOPAI_*` variables it runs against the crate's fake
//! HighLevel server, served over loopback HTTP, and walks the whole life of
//! an install by itself: consent → callback → tokens kept fresh (access
//! tokens that live 4 s, refreshed ahead of expiry) → a signed UNINSTALL
//! webhook (and a forged and a replayed one, refused) → a graceful shutdown
//! → a store that fails at shutdown, whose unwritten records are saved to a
//! file. It exits 0 when every step checked out, and non-zero at the first
//! one that did not. Tokens are shown as fingerprints, never in full.
//!
//! The app is served by `hoopai_oauth_service::routes::serve`, with its
//! default limits: 10 s to read a request's head (also the idle timeout of a
//! kept-alive connection), 10 s of silence in a body, 30 s per request, 1,024
//! connections. The routes throttle `/install` and `/callback`, and bind the
//! state to the browser with a cookie: the browser below keeps cookies.
//!
//! The SQLite file goes in `HOOPAI_DATA_DIR` (or the first argument) when
//! given, else in a temporary folder removed at exit.
//!
//! **Sealed records.** Every record is sealed (XChaCha20-Poly1305, see
//! `docs/encryption-at-rest.md`) with the keys of `HOOPAI_RECORD_KEYS`
//! (`k1:<base64 of 32 random bytes>`, newest first; e.g.
//! `HOOPAI_RECORD_KEYS="k1:$(openssl rand -base64 32)"`). Against the fake,
//! when it is unset, the app makes a key for this run only and warns that
//! no later run can read the records; against real HighLevel it refuses to
//! start without it (a lost key is every installation lost).
//!
//! **Logs and metrics.** Logs go to stderr through `tracing`; `RUST_LOG`
//! sets the filter (default `warn,hoopai_oauth_service=info,marketplace_app=info`;
//! `RUST_LOG=hoopai_oauth_service=debug` shows every refresh and store
//! write). Prometheus metrics (every one in `docs/metrics.md`) are served at
//! `http://<HOOPAI_METRICS_LISTEN>/metrics`: loopback by default, on a free
//! port against the fake and on `127.0.0.1:9464` against real HighLevel;
//! the address is printed. Liveness and readiness are at `/oauth/healthz`
//! and `/oauth/readyz`. With `HOOPAI_PAUSE_BEFORE_SHUTDOWN` set, the walk
//! waits for a line on stdin before it shuts down, so that the metrics can
//! be looked at.
//!
//! Against real HighLevel, set `HOOPAI_CLIENT_ID`, `HOOPAI_CLIENT_SECRET`
//! and `HOOPAI_REDIRECT_URI` (this app's `…/oauth/callback`, as registered
//! in the marketplace), optionally `HOOPAI_BASE_URL`, `HOOPAI_SCOPES`
//! (comma-separated), `HOOPAI_USER_TYPE` and `HOOPAI_LISTEN` (default: the
//! redirect URI's port on 127.0.0.1). The app then serves until Ctrl-C:
//! open `/oauth/install` in a browser to install it; point the app's
//! webhook URL at `/oauth/webhook`.
//!
//! **Records the store could not write.** If the store still fails when the
//! app stops, the records it could not write hold the only copy of live
//! refresh tokens ([`ShutdownReport::unwritten`]). The app writes them to
//! `unwritten-grants-<unix seconds>.json` in the data folder (a JSON array
//! of grant records, readable by the owner only: mode 0600 on Unix), prints
//! the path, and exits non-zero. Put them back with `TokenService::add`
//! (each record's `grant` and `tokens`) once the store works again; the file
//! holds secrets in full, so delete it after.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use std::sync::atomic::{AtomicBool, Ordering};

use hoopai_oauth::fake::{FakeServer, FakeWebhook, Install};
use hoopai_oauth::{
    Config, EngineEvent, EngineSettings, GrantId, GrantRecord, Scope, UserType, WebhookVerifier,
    WriteOutcome,
};
use hoopai_oauth_service::routes::{ServeLimits, serve};
use hoopai_oauth_service::{
    GrantStore, Keyring, KeyringError, OAuthRouter, Page, RECORD_KEYS_VAR, RecordKey,
    ReqwestClient, ServiceEvent, ServiceSettings, ShutdownReport, SqliteOptions, SqliteStore,
    StoreError, TokenService,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::broadcast;
use tracing_subscriber::EnvFilter;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The whole walk against the fake must end well within this.
const WALK_LIMIT: Duration = Duration::from_secs(60);
/// How many refreshes of the installed grant to show.
const REFRESHES: usize = 3;

fn main() -> std::process::ExitCode {
    init_logs();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: no tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let real = std::env::var_os("HOOPAI_CLIENT_ID").is_some();
    let outcome = runtime.block_on(async {
        if real {
            real_app().await
        } else {
            match tokio::time::timeout(WALK_LIMIT, local_walk()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("the walk took over {WALK_LIMIT:?}").into()),
            }
        }
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs through `tracing` to stderr, filtered by `RUST_LOG` (default: warnings,
/// and what the service and this app say at `info`).
fn init_logs() {
    const DEFAULT: &str = "warn,hoopai_oauth_service=info,marketplace_app=info";
    let filter = match std::env::var("RUST_LOG") {
        Ok(text) => EnvFilter::try_new(&text).unwrap_or_else(|e| {
            eprintln!("RUST_LOG={text:?} is not a filter ({e}); using {DEFAULT:?}");
            EnvFilter::new(DEFAULT)
        }),
        Err(_) => EnvFilter::new(DEFAULT),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The Prometheus recorder, installed for the whole process, with buckets
/// for the service's `_seconds` histograms.
fn install_metrics() -> Result<PrometheusHandle, Failure> {
    let buckets = [
        0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        30.0,
    ];
    Ok(PrometheusBuilder::new()
        .set_buckets(&buckets)?
        .install_recorder()?)
}

/// Serves the metrics at `/metrics` on `HOOPAI_METRICS_LISTEN` (else
/// `default`) until `stop` fires; returns the address it listens on.
async fn serve_metrics(
    handle: PrometheusHandle,
    default: SocketAddr,
    stop: broadcast::Receiver<()>,
) -> Result<SocketAddr, Failure> {
    let listen: SocketAddr = match std::env::var("HOOPAI_METRICS_LISTEN") {
        Ok(addr) => addr
            .parse()
            .map_err(|e| format!("HOOPAI_METRICS_LISTEN={addr:?}: {e}"))?,
        Err(_) => default,
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    // Histograms are summed up on scrape; upkeep keeps their memory bounded.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || std::future::ready(handle.render())),
    );
    spawn_server(listener, router, stop);
    Ok(addr)
}

/// The keys that seal the records: those of `HOOPAI_RECORD_KEYS`, or, when
/// it is unset and `throwaway` allows, a key made for this run only.
fn record_keys(throwaway: bool) -> Result<Keyring, Failure> {
    match Keyring::from_env() {
        Ok(keys) => Ok(keys),
        Err(KeyringError::Unset { .. }) if throwaway => {
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut *bytes).map_err(|e| format!("no randomness for a key: {e}"))?;
            let key = RecordKey::new("run", *bytes)?;
            eprintln!(
                "warning: {RECORD_KEYS_VAR} is not set: the records are sealed with a key made \
                 for this run only, and no later run can read them. To keep them, set a key of \
                 your own: {RECORD_KEYS_VAR}=\"k1:$(openssl rand -base64 32)\" (newest first; \
                 see docs/encryption-at-rest.md)"
            );
            Ok(Keyring::new([key])?)
        }
        Err(e @ KeyringError::Unset { .. }) => Err(format!(
            "{e}: the records hold every installation's refresh token and are sealed; set \
             {RECORD_KEYS_VAR}=\"k1:$(openssl rand -base64 32)\" and keep it (a lost key is \
             every installation lost)"
        )
        .into()),
        Err(e) => Err(format!("{RECORD_KEYS_VAR}: {e}").into()),
    }
}

/// The SQLite store at `path`, sealing with `keys`.
async fn sealed_store(path: &std::path::Path, keys: &Keyring) -> Result<SqliteStore, Failure> {
    Ok(SqliteStore::open_with(path, SqliteOptions::default().keys(keys.clone())).await?)
}

/// The data folder: `HOOPAI_DATA_DIR`, the first argument, or a temporary one.
fn data_dir() -> Result<(PathBuf, Option<tempfile::TempDir>), Failure> {
    let given = std::env::var_os("HOOPAI_DATA_DIR")
        .or_else(|| std::env::args_os().nth(1))
        .map(PathBuf::from);
    match given {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            Ok((dir, None))
        }
        None => {
            let temp = tempfile::tempdir()?;
            Ok((temp.path().to_owned(), Some(temp)))
        }
    }
}

fn check(ok: bool, what: &str) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

/// Serves `router` on `listener`, with the default time and connection
/// limits, until `stop` fires.
fn spawn_server(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stop: broadcast::Receiver<()>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        serve(listener, router, ServeLimits::default(), async move {
            let _ = stop.recv().await;
        })
        .await
    })
}

/// Writes the records a shutdown could not store to
/// `unwritten-grants-<unix seconds>.json` in `dir`, readable by the owner
/// only, synced to disk; returns the path.
fn save_unwritten(dir: &std::path::Path, records: &[GrantRecord]) -> Result<PathBuf, Failure> {
    use std::io::Write;
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let path = dir.join(format!("unwritten-grants-{stamp}.json"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    file.write_all(&serde_json::to_vec_pretty(records)?)?;
    file.sync_all()?;
    // The file's name in its folder is durable too.
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// Reports a shutdown; saves its unwritten records first, if any, and
/// fails then.
fn after_shutdown(dir: &std::path::Path, report: &ShutdownReport) -> Result<(), Failure> {
    if report.unwritten.is_empty() {
        return Ok(());
    }
    let path = save_unwritten(dir, &report.unwritten)?;
    eprintln!(
        "{} record(s) could not be stored; saved to {} (mode 0600): put them back with \
         TokenService::add once the store works, then delete the file",
        report.unwritten.len(),
        path.display()
    );
    Err(format!("records unwritten at shutdown, saved to {}", path.display()).into())
}

/// A store that can be made to fail, to show what a shutdown does with the
/// records it could not write.
struct Failable<S> {
    inner: S,
    down: Arc<AtomicBool>,
}

impl<S> Failable<S> {
    fn refuse(&self) -> Option<StoreError> {
        self.down
            .load(Ordering::SeqCst)
            .then(|| StoreError::Backend {
                store: "sqlite",
                message: "the disk is unplugged (on purpose)".to_owned(),
            })
    }
}

impl<S: GrantStore> GrantStore for Failable<S> {
    async fn load(&self, grant: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        self.inner.load(grant).await
    }
    async fn load_page(&self, after: Option<&GrantId>, limit: usize) -> Result<Page, StoreError> {
        self.inner.load_page(after, limit).await
    }
    async fn compare_and_swap(
        &self,
        record: &GrantRecord,
        replaces: Option<u64>,
    ) -> Result<WriteOutcome, StoreError> {
        match self.refuse() {
            Some(e) => Err(e),
            None => self.inner.compare_and_swap(record, replaces).await,
        }
    }
    async fn put(&self, record: &GrantRecord) -> Result<(), StoreError> {
        match self.refuse() {
            Some(e) => Err(e),
            None => self.inner.put(record).await,
        }
    }
    async fn delete(&self, grant: &GrantId) -> Result<bool, StoreError> {
        self.inner.delete(grant).await
    }
}

// ---- against the fake ---------------------------------------------------------

const CLIENT_ID: &str = "6578278e879ad2646715ba9c-lq3w8xd2";
const CLIENT_SECRET: &str = "example-client-secret";

/// The fake HighLevel server behind loopback HTTP.
async fn fake_route(State(fake): State<Arc<Mutex<FakeServer>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let request = http::Request::from_parts(parts, bytes.to_vec());
    let response = fake
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .handle(&request, SystemTime::now());
    response.map(Body::from)
}

/// Follows one redirect step: the `Location` of a `302`.
async fn redirected(http: &reqwest::Client, url: &str) -> Result<String, Failure> {
    let response = http.get(url).send().await?;
    check(response.status() == 302, &format!("302 from {url}"))?;
    Ok(response
        .headers()
        .get("location")
        .ok_or("a 302 without Location")?
        .to_str()?
        .to_owned())
}

/// POSTs a webhook delivery (headers and raw body) to the app.
async fn deliver(
    http: &reqwest::Client,
    url: &str,
    delivery: &http::Request<Vec<u8>>,
) -> Result<(u16, String), Failure> {
    let mut request = http.post(url).body(delivery.body().clone());
    for (name, value) in delivery.headers() {
        request = request.header(name.as_str(), value.as_bytes());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?.trim_end().to_owned()))
}

async fn next_refresh(
    events: &mut broadcast::Receiver<ServiceEvent>,
    grant: &str,
) -> Result<(), Failure> {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), events.recv()).await {
            Err(_) => return Err(format!("no refresh of {grant} within 15 s").into()),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(ServiceEvent::Engine(EngineEvent::Refreshed { grant: g, .. })))
                if g.as_str() == grant =>
            {
                return Ok(());
            }
            Ok(Ok(ServiceEvent::Engine(EngineEvent::ReauthorizationNeeded { .. }))) => {
                return Err("re-authorization needed".into());
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// Waits for the engine to say that a write of `grant`'s record failed.
async fn next_write_failure(
    events: &mut broadcast::Receiver<ServiceEvent>,
    grant: &str,
) -> Result<(), Failure> {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), events.recv()).await {
            Err(_) => return Err(format!("no failed write of {grant} within 15 s").into()),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(ServiceEvent::Engine(EngineEvent::WriteFailed { grant: g, .. })))
                if g.as_str() == grant =>
            {
                return Ok(());
            }
            Ok(Ok(_)) => {}
        }
    }
}

async fn local_walk() -> Result<(), Failure> {
    let (dir, _temp) = data_dir()?;
    let db = dir.join("grants.sqlite3");
    let keys = record_keys(true)?;
    let metrics = install_metrics()?;
    println!("marketplace app against the local fake HighLevel server");
    println!(
        "  store: SQLite at {}, records sealed with key {}",
        db.display(),
        keys.newest().id()
    );

    // The fake HighLevel, on a loopback port. Its access tokens live 4 s.
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    fake.set_access_lifetime(Duration::from_secs(4));
    let webhook_key = fake.webhook_key();
    let fake = Arc::new(Mutex::new(fake));
    let (stop, _) = broadcast::channel::<()>(1);
    let metrics_addr = serve_metrics(
        metrics,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        stop.subscribe(),
    )
    .await?;
    println!("  metrics: http://{metrics_addr}/metrics");
    let fake_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let fake_url = format!("http://{}", fake_listener.local_addr()?);
    let fake_task = spawn_server(
        fake_listener,
        axum::Router::new()
            .fallback(fake_route)
            .with_state(Arc::clone(&fake)),
        stop.subscribe(),
    );
    println!("  fake HighLevel: {fake_url}");

    // The app: the token service and its routes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_url = format!("http://{}", listener.local_addr()?);
    let config = Config::builder(CLIENT_ID, CLIENT_SECRET)
        .base_url(&fake_url)
        .consent_url(format!("{fake_url}/oauth/chooselocation"))
        .redirect_uri(format!("{app_url}/oauth/callback"))
        .build()?;
    let engine = EngineSettings::default()
        .refresh_margin(Duration::from_secs(2))
        .expiry_skew(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(5));
    let settings = ServiceSettings::new(engine);
    let http_client = ReqwestClient::new(settings.engine())?;
    let store = sealed_store(&db, &keys).await?;
    let service = TokenService::start(config.clone(), settings, store, http_client).await?;
    let verifier = WebhookVerifier::new(&config).add_key(webhook_key);
    let routes = OAuthRouter::new(service.clone(), [Scope::CONTACTS_READONLY])
        .user_type(UserType::Location)
        .webhook_verifier(verifier)
        .into_router();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "a marketplace app" }))
        .nest("/oauth", routes);
    let app_task = spawn_server(listener, app, stop.subscribe());
    println!("  app: {app_url}");
    let mut events = service.events();

    // 1. Two sub-accounts install the app: consent → callback, in a browser's place.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()?;
    for location in ["loc-1", "loc-2"] {
        fake.lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_consent_install(Install::location("company-1", location));
        let consent = redirected(&browser, &format!("{app_url}/oauth/install")).await?;
        check(
            consent.starts_with(&fake_url),
            "the install route sends to consent",
        )?;
        let callback = redirected(&browser, &consent).await?;
        check(
            callback.starts_with(&format!("{app_url}/oauth/callback?")),
            "consent redirects to the callback",
        )?;
        let response = browser.get(&callback).send().await?;
        let status = response.status();
        let body = response.text().await?;
        check(
            status == 200,
            &format!("the callback answered {status}: {body}"),
        )?;
        println!("1. consent → callback: {}", body.trim_end());
        let replay = browser.get(&callback).send().await?.status();
        check(replay == 400, "a replayed callback is refused")?;
    }
    println!("   the same callback again: 400 (the state cookie was cleared)");
    let ready = browser
        .get(format!("{app_url}/oauth/readyz"))
        .send()
        .await?;
    let status = ready.status();
    let body = ready.text().await?;
    check(status == 200, &format!("/oauth/readyz answered {status}"))?;
    println!("   readiness: {status} {}", body.trim_end());

    // 2. Tokens kept fresh: the engine refreshes ahead of expiry, writes the
    //    new refresh token to SQLite, then hands out the new access token.
    let store = sealed_store(&db, &keys).await?;
    let mut last = service.access_token("loc-1").await?.fingerprint();
    println!("2. loc-1 access token {last}; expires in 4 s, refreshed 2 s ahead");
    for n in 1..=REFRESHES {
        next_refresh(&mut events, "loc-1").await?;
        let token = service.access_token("loc-1").await?;
        let record = store
            .load(&GrantId::new("loc-1"))
            .await?
            .ok_or("loc-1 is not stored")?;
        let refresh = record.refresh_token().ok_or("no refresh token stored")?;
        let live = fake
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_live_refresh_token(refresh.secret());
        check(live, "the stored refresh token is the live one")?;
        check(token.fingerprint() != last, "a new access token")?;
        println!(
            "   refresh {n}: access token {} → {}, stored refresh token {} (live at the server)",
            last,
            token.fingerprint(),
            refresh.fingerprint()
        );
        last = token.fingerprint();
    }

    // 3. Webhooks: loc-2 uninstalls the app. A forged delivery first, then
    //    the signed one, then the signed one again.
    let hook_url = format!("{app_url}/oauth/webhook");
    let event = FakeWebhook::uninstall_location("loc-2");
    let mut forger = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    forger.set_webhook_signing_seed([7; 32]);
    let forged = forger.webhook(&event, SystemTime::now());
    let (status, body) = deliver(&browser, &hook_url, &forged).await?;
    check(
        status == 401,
        &format!("a forged webhook answered {status}"),
    )?;
    println!("3. forged UNINSTALL (signed with another key): {status} {body}");
    let signed = fake
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .uninstall(&event, SystemTime::now());
    let (status, body) = deliver(&browser, &hook_url, &signed).await?;
    check(
        status == 200,
        &format!("the signed webhook answered {status}: {body}"),
    )?;
    println!("   signed UNINSTALL of loc-2: {status} {body}");
    check(
        service.access_token("loc-2").await.is_err(),
        "loc-2 is no longer served",
    )?;
    check(
        store.load(&GrantId::new("loc-2")).await?.is_none(),
        "loc-2's record is deleted",
    )?;
    let (status, body) = deliver(&browser, &hook_url, &signed).await?;
    check(body.starts_with("duplicate"), "a replay is not acted on")?;
    println!("   the same delivery again: {status} {body}");
    let held: Vec<String> = service
        .list()
        .await?
        .into_iter()
        .map(|g| g.grant.to_string())
        .collect();
    check(held == ["loc-1"], "only loc-1 is held")?;
    println!("   grants held: {}", held.join(", "));
    if std::env::var_os("HOOPAI_PAUSE_BEFORE_SHUTDOWN").is_some() {
        println!("   paused before shutdown (HOOPAI_PAUSE_BEFORE_SHUTDOWN): press Enter to go on");
        tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await??;
    }

    // 4. A graceful shutdown: refreshes in flight finished and written.
    let report = service.shutdown().await;
    check(
        report.abandoned.is_empty() && report.unwritten.is_empty(),
        "nothing abandoned or unwritten at shutdown",
    )?;
    let _ = stop.send(());
    app_task.await??;
    fake_task.await??;
    let record = store
        .load(&GrantId::new("loc-1"))
        .await?
        .ok_or("loc-1 is not stored")?;
    let refresh = record.refresh_token().ok_or("no refresh token stored")?;
    check(
        fake.lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_live_refresh_token(refresh.secret()),
        "the stored refresh token is live after shutdown",
    )?;
    println!(
        "4. shut down: {} refresh(es) finished at shutdown, nothing abandoned, nothing unwritten; \
         stored refresh token {} is live",
        report.finished,
        refresh.fingerprint()
    );
    store_down_at_shutdown(&dir, &keys, &fake, &fake_url).await?;
    println!("ok");
    Ok(())
}

/// 5. A store that fails from some point on: the refresh it cannot write is
///    handed back at shutdown, and saved to a file (as the real-server mode
///    does), from which the live refresh token is read back.
async fn store_down_at_shutdown(
    dir: &std::path::Path,
    keys: &Keyring,
    fake: &Arc<Mutex<FakeServer>>,
    fake_url: &str,
) -> Result<(), Failure> {
    let (stop, _) = broadcast::channel::<()>(1);
    let fake_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", fake_listener.local_addr()?);
    let fake_task = spawn_server(
        fake_listener,
        axum::Router::new()
            .fallback(fake_route)
            .with_state(Arc::clone(fake)),
        stop.subscribe(),
    );
    let config = Config::builder(CLIENT_ID, CLIENT_SECRET)
        .base_url(&url)
        .consent_url(format!("{fake_url}/oauth/chooselocation"))
        .build()?;
    let engine = EngineSettings::default()
        .refresh_margin(Duration::from_secs(2))
        .expiry_skew(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(5));
    let settings = ServiceSettings::new(engine).shutdown_grace(Duration::from_secs(1));
    let down = Arc::new(AtomicBool::new(false));
    let store = Failable {
        inner: sealed_store(&dir.join("store-down.sqlite3"), keys).await?,
        down: Arc::clone(&down),
    };
    let http_client = ReqwestClient::new(settings.engine())?;
    let service = TokenService::start(config, settings, store, http_client).await?;
    let mut events = service.events();
    let code = fake
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .approve(&Install::location("company-1", "loc-3"));
    let grant = service
        .exchange_code(code, Some(UserType::Location))
        .await?;
    // The disk goes away; the next refresh spends the stored refresh token
    // at the server, and its successor cannot be written.
    down.store(true, Ordering::SeqCst);
    next_write_failure(&mut events, grant.as_str()).await?;
    let report = service.shutdown().await;
    let _ = stop.send(());
    fake_task.await??;
    check(
        report.unwritten.len() == 1,
        "the unwritten record is handed back at shutdown",
    )?;
    let path = save_unwritten(dir, &report.unwritten)?;
    let saved: Vec<GrantRecord> = serde_json::from_slice(&std::fs::read(&path)?)?;
    let refresh = saved
        .first()
        .and_then(GrantRecord::refresh_token)
        .ok_or("no refresh token saved")?;
    check(
        fake.lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_live_refresh_token(refresh.secret()),
        "the saved refresh token is the live one",
    )?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        check(mode == 0o600, &format!("the file's mode is {mode:o}"))?;
    }
    println!(
        "5. store down at shutdown: 1 record unwritten, saved to {} (mode 0600); \
         its refresh token {} is the live one",
        path.display(),
        refresh.fingerprint()
    );
    Ok(())
}

// ---- against real HighLevel -------------------------------------------------

async fn real_app() -> Result<(), Failure> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let optional = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let redirect_uri = var("HOOPAI_REDIRECT_URI")?;
    let mut builder = Config::builder(var("HOOPAI_CLIENT_ID")?, var("HOOPAI_CLIENT_SECRET")?)
        .redirect_uri(&redirect_uri);
    if let Some(base) = optional("HOOPAI_BASE_URL") {
        builder = builder.base_url(base);
    }
    let config = builder.build()?;
    let scopes = optional("HOOPAI_SCOPES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse::<Scope>)
        .collect::<Result<Vec<_>, _>>()?;
    let user_type = match optional("HOOPAI_USER_TYPE").as_deref() {
        None | Some("Location") => UserType::Location,
        Some("Company") => UserType::Company,
        Some(other) => return Err(format!("HOOPAI_USER_TYPE: {other:?}").into()),
    };
    let listen: SocketAddr = match optional("HOOPAI_LISTEN") {
        Some(addr) => addr.parse()?,
        None => {
            let port = http::Uri::try_from(redirect_uri.as_str())?
                .port_u16()
                .unwrap_or(3000);
            SocketAddr::from(([127, 0, 0, 1], port))
        }
    };
    let (dir, _temp) = data_dir()?;
    let db = dir.join("grants.sqlite3");
    let keys = record_keys(false)?;
    let metrics = install_metrics()?;
    let (stop, _) = broadcast::channel::<()>(1);
    let metrics_addr = serve_metrics(
        metrics,
        SocketAddr::from(([127, 0, 0, 1], 9464)),
        stop.subscribe(),
    )
    .await?;
    let settings = ServiceSettings::new(EngineSettings::default());
    let http_client = ReqwestClient::new(settings.engine())?;
    let store = sealed_store(&db, &keys).await?;
    let service = TokenService::start(config, settings, store, http_client).await?;
    println!(
        "marketplace app: {} grant(s) restored from {} (sealed with key {})",
        service.start_report().restored,
        db.display(),
        keys.newest().id()
    );
    println!("metrics: http://{metrics_addr}/metrics");
    let routes = OAuthRouter::new(service.clone(), scopes)
        .user_type(user_type)
        .into_router();
    let app = axum::Router::new().nest("/oauth", routes);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("install: http://{listen}/oauth/install   webhook: http://{listen}/oauth/webhook");
    println!("liveness: http://{listen}/oauth/healthz   readiness: http://{listen}/oauth/readyz");
    println!("serving until Ctrl-C");
    let mut events = service.events();
    let log = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => println!("event: {event:?}"),
                Err(broadcast::error::RecvError::Lagged(n)) => println!("({n} events missed)"),
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    serve(listener, app, ServeLimits::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    let report = service.shutdown().await;
    let _ = stop.send(());
    log.abort();
    println!(
        "stopped: {} finished, {} abandoned, {} unwritten",
        report.finished,
        report.abandoned.len(),
        report.unwritten.len()
    );
    // Their refresh tokens may be the only live ones: saved before exiting.
    after_shutdown(&dir, &report)
}
