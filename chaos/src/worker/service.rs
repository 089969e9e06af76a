//! `--driver service`: the runtime package's `TokenService` (a tokio task
//! owning the engine, reqwest for HTTP) over its `PostgresStore` or
//! `SqliteStore`, asked for access tokens as an app would.
//!
//! The service is used as it comes: the log lines the checker needs come
//! from wrappers around what an app hands the service, never from inside it.
//!
//! - [`LoggingClient`] wraps the `HttpClient`: it sees every refresh go out
//!   (`send`, with the fingerprint of the refresh token presented) and every
//!   answer or failure come back (`answer`, `transport`). It names the
//!   worker and a request number in headers for the server's log, as the
//!   other drivers do.
//! - [`LoggingStore`] wraps the `GrantStore`: it sees every compare-and-swap
//!   (`write`, won or lost) and every read the engine asks for (`load`).
//! - The service's event stream gives the `event` lines; its `tracing`
//!   output goes to standard error, which the checker searches for secrets
//!   like every other file of the run.
//!
//! The engine's own fingerprint of each send and write (`efp`) is not seen
//! from outside the service, so these lines leave it empty; the engine
//! drivers check it.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hoopai_oauth::{EngineEvent, GrantId, GrantRecord, WriteOutcome, parse_token_response};
use hoopai_oauth_service::{
    GrantStore, HttpClient, Page, PostgresStore, ReqwestClient, ServiceEvent, ServiceSettings,
    SqliteStore, StoreError, TokenError, TokenService, TransportError,
};
use tokio::task::JoinSet;

use super::WorkerSettings;
use super::engine::{EngineSetup, event_kind, status_name};
use crate::fingerprint::fingerprint;
use crate::journal::{Journal, WorkerLine, micros, now_micros};
use crate::server::http::{REQUEST_HEADER, WORKER_HEADER};

/// Which grant each refresh token (by fingerprint) belongs to, learnt from
/// every record read or written and every answer: a refresh request's body
/// names the token, not the grant.
#[derive(Debug, Default)]
pub struct TokenGrants {
    by_fp: Mutex<HashMap<String, String>>,
}

impl TokenGrants {
    fn note(&self, fp: &str, grant: &str) {
        let mut map = self.by_fp.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(fp.to_owned(), grant.to_owned());
    }

    fn note_record(&self, record: &GrantRecord) {
        if let Some(token) = record.refresh_token() {
            self.note(&fingerprint(token.secret()), record.grant.as_str());
        }
    }

    fn grant_of(&self, fp: &str) -> Option<String> {
        let map = self.by_fp.lock().unwrap_or_else(|p| p.into_inner());
        map.get(fp).cloned()
    }
}

/// A [`GrantStore`] that logs every compare-and-swap and every read.
#[derive(Debug)]
pub struct LoggingStore<S> {
    inner: S,
    log: Arc<Journal>,
    grants: Arc<TokenGrants>,
}

impl<S> LoggingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, log: Arc<Journal>, grants: Arc<TokenGrants>) -> Self {
        LoggingStore { inner, log, grants }
    }

    fn failure(&self, what: String) {
        self.log.write(&WorkerLine::Failure {
            t: now_micros(),
            what,
        });
    }

    fn log_write(&self, record: &GrantRecord, replaces: Option<u64>, outcome: Logged) {
        let fp = record
            .refresh_token()
            .map_or_else(|| "none".to_owned(), |t| fingerprint(t.secret()));
        let (won, failed, stored) = match outcome {
            Logged::Won => (true, false, None),
            Logged::Lost(stored) => (false, false, stored),
            Logged::Failed => (false, true, None),
        };
        self.log.write(&WorkerLine::Write {
            t: now_micros(),
            grant: record.grant.to_string(),
            version: record.version,
            replaces,
            fp,
            efp: String::new(),
            status: status_name(&record.status).to_owned(),
            lease: record.lease.is_some(),
            won,
            failed,
            stored,
        });
    }
}

enum Logged {
    Won,
    Lost(Option<u64>),
    Failed,
}

impl<S: GrantStore> GrantStore for LoggingStore<S> {
    async fn load(&self, grant: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        let loaded = self.inner.load(grant).await;
        match &loaded {
            Ok(record) => {
                if let Some(r) = record {
                    self.grants.note_record(r);
                }
                self.log.write(&WorkerLine::Load {
                    t: now_micros(),
                    grant: grant.to_string(),
                    version: record.as_ref().map(|r| r.version),
                    fp: record
                        .as_ref()
                        .and_then(|r| r.refresh_token())
                        .map(|t| fingerprint(t.secret())),
                });
            }
            Err(e) => self.failure(format!("read {grant}: {e}")),
        }
        loaded
    }

    async fn load_page(&self, after: Option<&GrantId>, limit: usize) -> Result<Page, StoreError> {
        let page = self.inner.load_page(after, limit).await?;
        for record in &page.records {
            self.grants.note_record(record);
        }
        Ok(page)
    }

    async fn compare_and_swap(
        &self,
        record: &GrantRecord,
        replaces: Option<u64>,
    ) -> Result<WriteOutcome, StoreError> {
        self.grants.note_record(record);
        let swapped = self.inner.compare_and_swap(record, replaces).await;
        let outcome = match &swapped {
            Ok(WriteOutcome::Written) => Logged::Won,
            Ok(WriteOutcome::Conflict(stored)) => {
                self.grants.note_record(stored);
                Logged::Lost(Some(stored.version))
            }
            Ok(_) => Logged::Lost(None),
            Err(e) => {
                self.failure(format!("write {} v{}: {e}", record.grant, record.version));
                Logged::Failed
            }
        };
        self.log_write(record, replaces, outcome);
        swapped
    }

    async fn put(&self, record: &GrantRecord) -> Result<(), StoreError> {
        self.grants.note_record(record);
        let put = self.inner.put(record).await;
        let outcome = match &put {
            Ok(()) => Logged::Won,
            Err(e) => {
                self.failure(format!("put {} v{}: {e}", record.grant, record.version));
                Logged::Failed
            }
        };
        self.log_write(record, None, outcome);
        put
    }

    async fn delete(&self, grant: &GrantId) -> Result<bool, StoreError> {
        self.inner.delete(grant).await
    }

    async fn claim_budget(
        &self,
        claim: &hoopai_oauth::BudgetClaim,
    ) -> Result<hoopai_oauth::ClaimOutcome, StoreError> {
        self.inner.claim_budget(claim).await
    }

    /// The inner store's `webhookId`s, so that every process on the store
    /// refuses a delivery any of them accepted, as without the wrapper.
    fn shared_webhook_ids(&self) -> Option<Arc<dyn hoopai_oauth_service::WebhookIds>> {
        self.inner.shared_webhook_ids()
    }
}

/// An [`HttpClient`] that logs every refresh request and its outcome, and
/// names the worker and the request in headers for the server's log.
/// Requests that carry no refresh token go through unlogged.
#[derive(Debug)]
pub struct LoggingClient<H> {
    inner: H,
    log: Arc<Journal>,
    grants: Arc<TokenGrants>,
    instance: String,
    next_id: AtomicU64,
}

impl<H> LoggingClient<H> {
    /// Wraps `inner`; `instance` names this worker in the server's log.
    pub fn new(inner: H, log: Arc<Journal>, grants: Arc<TokenGrants>, instance: String) -> Self {
        LoggingClient {
            inner,
            log,
            grants,
            instance,
            next_id: AtomicU64::new(0),
        }
    }
}

/// The fingerprint of the refresh token in a token request's form body.
fn presented(request: &http::Request<Vec<u8>>) -> Option<String> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(request.body()).ok()?;
    form.iter()
        .find(|(k, _)| k == "refresh_token" || k == "refreshToken")
        .map(|(_, v)| fingerprint(v))
}

/// Logs a `transport` line if the service drops the request's future
/// before it finished (its own timeout): the answer, if any, is never seen.
struct InFlight<'a> {
    log: &'a Journal,
    grant: String,
    id: u64,
    settled: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.log.write(&WorkerLine::Transport {
                t: now_micros(),
                grant: std::mem::take(&mut self.grant),
                id: self.id,
                why: "the service stopped waiting for the answer".to_owned(),
            });
        }
    }
}

impl<H: HttpClient> HttpClient for LoggingClient<H> {
    async fn send(
        &self,
        mut request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let Some(fp) = presented(&request) else {
            return self.inner.send(request).await;
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let grant = self.grants.grant_of(&fp).unwrap_or_else(|| {
            self.log.write(&WorkerLine::Failure {
                t: now_micros(),
                what: format!("refresh {id} presents a token of no known grant"),
            });
            "?".to_owned()
        });
        let headers = request.headers_mut();
        if let Ok(v) = http::HeaderValue::from_str(&self.instance) {
            headers.insert(WORKER_HEADER, v);
        }
        headers.insert(REQUEST_HEADER, http::HeaderValue::from(id));
        self.log.write(&WorkerLine::Send {
            t: now_micros(),
            grant: grant.clone(),
            id,
            fp,
            efp: String::new(),
        });
        let mut in_flight = InFlight {
            log: &self.log,
            grant: grant.clone(),
            id,
            settled: false,
        };
        let result = self.inner.send(request).await;
        let t = micros(SystemTime::now());
        in_flight.settled = true;
        match &result {
            Ok(response) => {
                let (new, error) = read_answer(response);
                if let Some(new) = &new {
                    self.grants.note(new, &grant);
                }
                self.log.write(&WorkerLine::Answer {
                    t,
                    grant,
                    id,
                    status: response.status().as_u16(),
                    new,
                    error,
                    refused: None,
                });
            }
            Err(e) => self.log.write(&WorkerLine::Transport {
                t,
                grant,
                id,
                why: e.to_string(),
            }),
        }
        result
    }
}

/// The fingerprint of the refresh token in an answer (also one a failure
/// rescues), and the classified error kind of a failure.
fn read_answer(response: &http::Response<Vec<u8>>) -> (Option<String>, Option<String>) {
    let mut copy = http::Response::new(response.body().clone());
    *copy.status_mut() = response.status();
    *copy.headers_mut() = response.headers().clone();
    match parse_token_response(copy) {
        Ok(token) => (
            token
                .refresh_token
                .as_ref()
                .map(|t| fingerprint(t.secret())),
            None,
        ),
        Err(e) => (
            e.rescued_refresh_token().map(|t| fingerprint(t.secret())),
            Some(format!("{:?}", e.kind())),
        ),
    }
}

/// Runs the service driver until standard input closes.
///
/// # Errors
/// The runtime, the HTTP client, the store or the service cannot start.
pub fn run(settings: WorkerSettings, log: Journal) -> Result<(), String> {
    // Its `tracing` output, to standard error (a file of the run, searched
    // for secrets by the checker).
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_ansi(false)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(serve(settings, Arc::new(log)))
}

async fn serve(settings: WorkerSettings, log: Arc<Journal>) -> Result<(), String> {
    let setup = EngineSetup {
        client_id: settings.client_id.clone(),
        client_secret: settings.client_secret.clone(),
        base_url: settings.server.clone(),
        holder: settings.instance.clone(),
        seed: settings.seed,
        request_timeout: Duration::from_millis(settings.request_timeout_ms),
        lease: Duration::from_millis(settings.lease_ms),
    };
    let service_settings = ServiceSettings::new(setup.settings());
    let grants = Arc::new(TokenGrants::default());
    let http = LoggingClient::new(
        ReqwestClient::new(service_settings.engine()).map_err(|e| format!("http: {e}"))?,
        Arc::clone(&log),
        Arc::clone(&grants),
        settings.instance.clone(),
    );
    let app = App {
        config: setup.config()?,
        service_settings,
        http,
        log: Arc::clone(&log),
        grants,
        settings,
    };
    if let Some(url) = app.settings.postgres.clone() {
        let store = connect_postgres(&url, app.settings.postgres_schema.as_deref())
            .await
            .map_err(|e| format!("store: {e}"))?;
        app.run(store).await
    } else if let Some(path) = app.settings.store.clone() {
        let store = SqliteStore::open(&path)
            .await
            .map_err(|e| format!("store: {e}"))?;
        app.run(store).await
    } else {
        Err("no store: --postgres or --store".into())
    }
}

/// The service's `PostgresStore` at `url`, its tables in `schema` if given.
///
/// # Errors
/// The URL is invalid, or the store cannot connect or migrate.
pub async fn connect_postgres(url: &str, schema: Option<&str>) -> Result<PostgresStore, String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    if let Some(schema) = schema {
        config.options(format!("-c search_path={schema}"));
        config.application_name(schema);
    }
    PostgresStore::connect_with(config, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())
}

struct App {
    config: hoopai_oauth::Config,
    service_settings: ServiceSettings,
    http: LoggingClient<ReqwestClient>,
    log: Arc<Journal>,
    grants: Arc<TokenGrants>,
    settings: WorkerSettings,
}

impl App {
    async fn run<S: GrantStore>(self, store: S) -> Result<(), String> {
        let log = self.log;
        let store = LoggingStore::new(store, Arc::clone(&log), self.grants);
        let service = TokenService::start(self.config, self.service_settings, store, self.http)
            .await
            .map_err(|e| format!("service: {e}"))?;
        let events = tokio::spawn(log_events(service.events(), Arc::clone(&log)));
        for corrupt in &service.start_report().corrupt {
            log.write(&WorkerLine::Failure {
                t: now_micros(),
                what: corrupt.to_string(),
            });
        }
        let grants: Vec<String> = service
            .list()
            .await
            .map_err(|e| format!("service: {e}"))?
            .into_iter()
            .map(|g| g.grant.to_string())
            .collect();
        log.write(&WorkerLine::Start {
            t: now_micros(),
            instance: self.settings.instance.clone(),
            driver: "service".to_owned(),
            grants: grants.len(),
        });
        let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            let _ = stop_tx.send(());
        });
        // The app: asks for the token of a random grant now and then, each
        // ask a task of its own (it may wait for a refresh).
        let mut rng = fastrand::Rng::with_seed(self.settings.seed ^ 0x00a5_4ed0);
        let mut every =
            tokio::time::interval(Duration::from_millis(self.settings.ask_every_ms.max(1)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut asks = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = every.tick() => {
                    while asks.try_join_next().is_some() {}
                    if grants.is_empty() {
                        continue;
                    }
                    let grant = grants[rng.usize(..grants.len())].clone();
                    let (service, log) = (service.clone(), Arc::clone(&log));
                    asks.spawn(async move {
                        let status = ask_status(service.access_token(&grant).await);
                        log.write(&WorkerLine::Ask {
                            t: now_micros(),
                            grant,
                            status: status.to_owned(),
                        });
                    });
                }
            }
        }
        // Stop: no new refresh, those in flight answered and written.
        let report = service.shutdown().await;
        for record in &report.unwritten {
            log.write(&WorkerLine::Failure {
                t: now_micros(),
                what: format!(
                    "the record of {} v{} was unwritten at shutdown",
                    record.grant, record.version
                ),
            });
        }
        while asks.join_next().await.is_some() {}
        drop(service);
        // The stream ends once the service's task and every handle are gone.
        let _ = tokio::time::timeout(Duration::from_secs(2), events).await;
        log.write(&WorkerLine::Stop {
            t: now_micros(),
            in_flight: report.abandoned.len(),
            queued: report.unwritten.len(),
        });
        Ok(())
    }
}

fn ask_status<T>(answer: Result<T, TokenError>) -> &'static str {
    match answer {
        Ok(_) => "ready",
        Err(TokenError::UnknownGrant(_)) => "unknown_grant",
        Err(TokenError::Suspended { .. }) => "suspended",
        Err(TokenError::ReauthorizationNeeded { .. }) => "reauthorization_needed",
        Err(TokenError::ConfigurationRejected { .. }) => "configuration_rejected",
        Err(TokenError::Unauthorized { .. }) => "unauthorized",
        Err(TokenError::StoreFailing { .. }) => "store_failing",
        Err(TokenError::TimedOut { .. }) => "timed_out",
        Err(TokenError::Stopped) => "stopped",
        Err(_) => "other",
    }
}

/// Writes the service's events as `event` lines, the webhooks its route
/// acted on as `webhook` lines; its store failures and unreadable records
/// as `failure` lines.
pub(crate) async fn log_events(
    mut events: tokio::sync::broadcast::Receiver<ServiceEvent>,
    log: Arc<Journal>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(n)) => {
                log.write(&WorkerLine::Failure {
                    t: now_micros(),
                    what: format!("{n} service events missed"),
                });
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let t = now_micros();
        let line = match event {
            ServiceEvent::Engine(e @ EngineEvent::WriteFailed { .. }) => WorkerLine::Failure {
                t,
                what: format!("{e}; the engine writes it again"),
            },
            ServiceEvent::Engine(e @ EngineEvent::AnswerAfterRemoval { .. }) => {
                WorkerLine::Failure {
                    t,
                    what: e.to_string(),
                }
            }
            ServiceEvent::Engine(e) => WorkerLine::Event {
                t,
                grant: e.grant().map(ToString::to_string).unwrap_or_default(),
                kind: event_kind(&e).to_owned(),
                detail: e.to_string(),
            },
            ServiceEvent::Webhook(received) => WorkerLine::Webhook {
                t,
                id: received
                    .event
                    .replay_key()
                    .map(|(id, _)| id.to_owned())
                    .unwrap_or_default(),
                added: received.added.len(),
                removed: received.removed.len(),
                needs_code_exchange: received.needs_code_exchange.len(),
            },
            other => WorkerLine::Failure {
                t,
                what: format!("service event {other:?}"),
            },
        };
        log.write(&line);
    }
}
