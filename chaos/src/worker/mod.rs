//! `chaos-worker`: one engine in shared-store mode over every grant of the
//! SQLite store, driven by a [`blocking`] or a [`concurrent`] driver, logging
//! every send, answer, write and event.
//!
//! - [`engine`] is the only module that speaks the engine's API;
//! - [`service`] runs the runtime package's `TokenService` instead, and logs
//!   the same lines from a store and an HTTP client that wrap the real ones;
//! - this module holds what both drivers share: the store writes, the
//!   HTTP client, the app's access-token asks, and the log.
//!
//! The worker stops when its standard input closes: it stops asking and
//! starting refreshes, finishes the requests in flight and the writes
//! queued (for at most `--drain-ms`), logs `stop` and exits.

pub mod app;
pub mod blocking;
pub mod concurrent;
pub mod engine;
pub mod service;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use engine::{Core, EngineSetup, Step, WriteStep};

use crate::journal::{Journal, WorkerLine, now_micros};
use crate::server::http::{REQUEST_HEADER, WORKER_HEADER};
use crate::store::{Cas, Store};

/// Which driver runs the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Driver {
    /// The README's run loop: one request at a time, in order.
    Blocking,
    /// Each send on its own thread; answers come back through a channel.
    Concurrent,
    /// The runtime package's `TokenService` (tokio, reqwest) over its
    /// Postgres or SQLite store, asked for tokens as an app would.
    Service,
    /// A marketplace app of a fleet ([`app`]): the token service on the
    /// shared Postgres store with the shared request budget, its webhook
    /// route and its Prometheus metrics each on a loopback port.
    App,
}

impl Driver {
    /// The driver's name, as on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Driver::Blocking => "blocking",
            Driver::Concurrent => "concurrent",
            Driver::Service => "service",
            Driver::App => "app",
        }
    }
}

/// The worker's settings (its command line).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "chaos-worker", about = "One engine over the shared store")]
pub struct WorkerSettings {
    /// The SQLite store: the harness's own file for the engine drivers, the
    /// service's `SqliteStore` file for `--driver service`.
    #[arg(long, required_unless_present = "postgres")]
    pub store: Option<PathBuf>,
    /// `--driver service` only: the service's `PostgresStore` at this URL
    /// instead of SQLite.
    #[arg(long, conflicts_with = "store")]
    pub postgres: Option<String>,
    /// With `--postgres`: the schema holding the tables (its `search_path`).
    #[arg(long, requires = "postgres")]
    pub postgres_schema: Option<String>,
    /// The token server, `http://127.0.0.1:port`.
    #[arg(long)]
    pub server: String,
    /// This process's name in the run (e.g. `w2.3`); also its lease holder.
    #[arg(long)]
    pub instance: String,
    /// The driver.
    #[arg(long, value_enum)]
    pub driver: Driver,
    /// The log (JSON lines).
    #[arg(long)]
    pub log: PathBuf,
    /// The app's client id.
    #[arg(long)]
    pub client_id: String,
    /// The app's client secret.
    #[arg(long)]
    pub client_secret: String,
    /// Seed of the engine's jitter and of the app's asks.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Request timeout of the engine and of the HTTP client, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub request_timeout_ms: u64,
    /// The lease asked for, in milliseconds.
    #[arg(long, default_value_t = 4000)]
    pub lease_ms: u64,
    /// How often the app asks for an access token, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub ask_every_ms: u64,
    /// How long a stopping worker waits for its requests and writes.
    #[arg(long, default_value_t = 5000)]
    pub drain_ms: u64,
    /// `--driver app`: requests allowed per budget interval (the server's
    /// rate limit), shared by every process on the store.
    #[arg(long, default_value_t = 100)]
    pub budget_max: u32,
    /// `--driver app`: the budget's interval, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub budget_interval_ms: u64,
    /// `--driver app`: how long after one interval a spent budget token
    /// comes back, in milliseconds (the margin for a request's way to the
    /// server; the engine's default when absent).
    #[arg(long)]
    pub budget_margin_ms: Option<u64>,
    /// `--driver app`: the key webhooks are signed with (SubjectPublicKeyInfo
    /// DER in base64, as HighLevel publishes its own).
    #[arg(long)]
    pub webhook_key: Option<String>,
    /// `--driver app`: where to write the addresses of the webhook route and
    /// of the metrics, once both listen (JSON, renamed into place).
    #[arg(long)]
    pub ports_file: Option<PathBuf>,
    /// `--driver app`: once started, reconcile the Location grants of this
    /// Company grant with the server's installed-locations list.
    #[arg(long)]
    pub sync_company: Option<String>,
}

/// What both drivers share.
#[derive(Debug)]
pub struct Worker {
    /// The engine.
    pub core: Core,
    /// The store.
    pub store: Store,
    /// The log.
    pub log: Journal,
    /// The settings.
    pub settings: WorkerSettings,
    /// The HTTP client.
    pub agent: ureq::Agent,
    grants: Vec<String>,
    rng: fastrand::Rng,
    next_ask: SystemTime,
    stop: Arc<AtomicBool>,
}

/// Starts the worker: restores every grant, then runs the driver until
/// standard input closes.
///
/// # Errors
/// The log, the store or the engine cannot be set up.
pub fn run(settings: WorkerSettings) -> Result<(), String> {
    let log = Journal::create(&settings.log).map_err(|e| format!("log: {e}"))?;
    match settings.driver {
        Driver::Service => return service::run(settings, log),
        Driver::App => return app::run(settings, log),
        Driver::Blocking | Driver::Concurrent => {}
    }
    let Some(path) = &settings.store else {
        return Err("the engine drivers run over a SQLite store (--store)".into());
    };
    let store = Store::open(path).map_err(|e| format!("store: {e}"))?;
    let mut core = Core::new(&EngineSetup {
        client_id: settings.client_id.clone(),
        client_secret: settings.client_secret.clone(),
        base_url: settings.server.clone(),
        holder: settings.instance.clone(),
        seed: settings.seed,
        request_timeout: Duration::from_millis(settings.request_timeout_ms),
        lease: Duration::from_millis(settings.lease_ms),
    })?;
    let now = SystemTime::now();
    let rows = store.all().map_err(|e| format!("store: {e}"))?;
    let mut grants = Vec::with_capacity(rows.len());
    for row in rows {
        match core.restore(&row.record, now) {
            Ok(()) => grants.push(row.grant),
            Err(e) => log.write(&WorkerLine::Failure {
                t: now_micros(),
                what: format!("restore {}: {e}", row.grant),
            }),
        }
    }
    log.write(&WorkerLine::Start {
        t: now_micros(),
        instance: settings.instance.clone(),
        driver: settings.driver.name().to_owned(),
        grants: grants.len(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            stop.store(true, Ordering::SeqCst);
        });
    }
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_millis(settings.request_timeout_ms)))
        .build()
        .into();
    let mut worker = Worker {
        core,
        store,
        log,
        agent,
        grants,
        rng: fastrand::Rng::with_seed(settings.seed ^ 0x00a5_4ed0),
        next_ask: now,
        stop,
        settings,
    };
    match worker.settings.driver {
        Driver::Blocking => blocking::run(&mut worker),
        Driver::Concurrent => concurrent::run(&mut worker),
        // Returned above.
        Driver::Service | Driver::App => {}
    }
    Ok(())
}

impl Worker {
    /// Whether standard input has closed.
    #[must_use]
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// How long a stopping worker waits.
    #[must_use]
    pub fn drain(&self) -> Duration {
        Duration::from_millis(self.settings.drain_ms)
    }

    /// Logs an engine or store failure.
    pub fn failure(&self, what: String) {
        self.log.write(&WorkerLine::Failure {
            t: now_micros(),
            what,
        });
    }

    /// The next thing the engine asks for at `now`; any disagreement of the
    /// engine's fingerprints is logged as a failure.
    pub fn next_step(&mut self, now: SystemTime) -> Option<Step> {
        let mut failures = Vec::new();
        let step = self.core.next_step(now, &mut failures);
        for f in failures {
            self.failure(f);
        }
        step
    }

    /// Acts on a step that is not a send: a write, a read or an event.
    pub fn act(&mut self, step: Step) {
        match step {
            Step::Write(write) => self.write(write),
            Step::Load { grant } => self.load(&grant),
            Step::Event {
                grant,
                kind,
                detail,
            } => self.log.write(&WorkerLine::Event {
                t: now_micros(),
                grant,
                kind: kind.to_owned(),
                detail,
            }),
            Step::Send(send) => self.failure(format!("send {} reached `act`", send.id)),
        }
    }

    /// Drops a send without dispatching it, logs why, and reports it: as
    /// expired if its `not_after` passed, else (the worker is stopping) as
    /// a request that got no answer, so that the engine counts it out of
    /// [`Core::in_flight`] without starting a new refresh.
    pub fn unsent(&mut self, send: &engine::SendStep, now: SystemTime) {
        let expired = now > send.not_after;
        self.log.write(&WorkerLine::Unsent {
            t: now_micros(),
            grant: send.grant.clone(),
            id: send.id,
            why: if expired { "expired" } else { "stopping" }.to_owned(),
        });
        let reported = if expired {
            self.core.send_expired(send.id, now)
        } else {
            self.core.transport_error(send.id, now)
        };
        if let Err(e) = reported {
            self.failure(format!("unsent {} reported: {e}", send.id));
        }
    }

    /// Reads a grant's record for the engine, logs it and hands it back.
    fn load(&mut self, grant: &str) {
        let row = match self.store.get(grant) {
            Ok(row) => row,
            Err(e) => {
                // The engine asks again on its re-read timer.
                self.failure(format!("read {grant}: {e}"));
                return;
            }
        };
        let fp = row
            .as_ref()
            .and_then(|r| engine::stored_state(&r.record).ok())
            .and_then(|(fp, _)| fp);
        self.log.write(&WorkerLine::Load {
            t: now_micros(),
            grant: grant.to_owned(),
            version: row.as_ref().map(|r| r.version),
            fp,
        });
        let stored = row.as_ref().map(|r| r.record.as_str());
        if let Err(e) = self.core.loaded(grant, stored, SystemTime::now()) {
            self.failure(format!("read {grant} reported: {e}"));
        }
    }

    /// Writes a record by compare-and-swap, logs the outcome and reports it
    /// to the engine. A store failure (the lock busy past its timeout) is
    /// reported as such: the engine writes again after a backoff.
    fn write(&mut self, w: WriteStep) {
        let cas = self
            .store
            .compare_and_swap(&w.grant, w.replaces, w.version, &w.record);
        let (won, stored, failed) = match &cas {
            Ok(Cas::Won) => (true, None, false),
            Ok(Cas::Lost(row)) => (false, row.as_ref().map(|r| r.version), false),
            Err(e) => {
                self.failure(format!("write {} v{}: {e}", w.grant, w.version));
                (false, None, true)
            }
        };
        self.log.write(&WorkerLine::Write {
            t: now_micros(),
            grant: w.grant.clone(),
            version: w.version,
            replaces: w.replaces,
            fp: w.fp,
            efp: w.efp,
            status: w.status.to_owned(),
            lease: w.lease,
            won,
            failed,
            stored,
        });
        let now = SystemTime::now();
        let reported = match cas {
            Ok(Cas::Won) => self.core.write_won(&w.grant, w.version, now),
            Ok(Cas::Lost(row)) => self.core.write_lost(
                &w.grant,
                w.version,
                row.as_ref().map(|r| r.record.as_str()),
                now,
            ),
            Err(_) => self.core.write_failed(&w.grant, w.version, now),
        };
        if let Err(e) = reported {
            self.failure(format!("write {} v{} reported: {e}", w.grant, w.version));
        }
    }

    /// Asks for the access token of a random grant, if one is due; returns
    /// when the next ask is due.
    pub fn ask_if_due(&mut self, now: SystemTime) -> SystemTime {
        if self.stopping() || self.grants.is_empty() {
            return now + Duration::from_secs(3600);
        }
        if now >= self.next_ask {
            let grant = self.grants[self.rng.usize(..self.grants.len())].clone();
            let status = self.core.ask(&grant, now);
            self.log.write(&WorkerLine::Ask {
                t: now_micros(),
                grant,
                status: status.to_owned(),
            });
            let every = Duration::from_millis(self.settings.ask_every_ms.max(1));
            self.next_ask = (self.next_ask + every).max(now);
        }
        self.next_ask
    }

    /// The instant to wake up at: the engine's deadline or the next ask,
    /// at most `cap` from now.
    #[must_use]
    pub fn wake_at(&self, now: SystemTime, next_ask: SystemTime, cap: Duration) -> SystemTime {
        let mut at = (now + cap).min(next_ask);
        if let Some(deadline) = self.core.deadline() {
            at = at.min(deadline);
        }
        at.max(now)
    }
}

/// Sends one request with `agent`, naming the worker instance and the
/// request id in headers for the server's log; returns the whole answer.
///
/// # Errors
/// The HTTP client's error (connection closed, timeout…), as text.
pub fn send(
    agent: &ureq::Agent,
    instance: &str,
    id: u64,
    mut request: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, String> {
    let headers = request.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(instance) {
        headers.insert(WORKER_HEADER, v);
    }
    headers.insert(REQUEST_HEADER, http::HeaderValue::from(id));
    let response = agent.run(request).map_err(|e| e.to_string())?;
    let (parts, mut body) = response.into_parts();
    let bytes = body
        .with_config()
        .limit(hoopai_oauth::MAX_BODY_BYTES as u64 + 1)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok(http::Response::from_parts(parts, bytes))
}

impl Worker {
    /// Logs a send.
    pub fn log_send(&self, send: &engine::SendStep) {
        self.log.write(&WorkerLine::Send {
            t: now_micros(),
            grant: send.grant.clone(),
            id: send.id,
            fp: send.fp.clone(),
            efp: send.efp.clone(),
        });
    }

    /// Hands the outcome of request `id` to the engine and logs it;
    /// `received` is when the answer (or the failure) came.
    pub fn finish(
        &mut self,
        id: u64,
        grant: String,
        result: Result<http::Response<Vec<u8>>, String>,
        received: SystemTime,
    ) {
        let t = crate::journal::micros(received);
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let answered = self.core.answer(id, &grant, response, SystemTime::now());
                self.log.write(&WorkerLine::Answer {
                    t,
                    grant,
                    id,
                    status,
                    new: answered.new,
                    error: answered.error,
                    refused: answered.refused,
                });
            }
            Err(why) => {
                self.log.write(&WorkerLine::Transport { t, grant, id, why });
                if let Err(e) = self.core.transport_error(id, SystemTime::now()) {
                    self.failure(format!("transport error of {id} reported: {e}"));
                }
            }
        }
    }
}
