//! `--driver app`: one marketplace app of a fleet, as an app would run it
//! behind a load balancer.
//!
//! - the runtime package's `TokenService` on the shared `PostgresStore`
//!   (shared-store mode, the request budget shared through the store:
//!   `EngineSettings::shared_budget`), wrapped in the [`LoggingStore`] that
//!   journals every write;
//! - its webhook route (`OAuthRouter`, the deliveries verified with the
//!   fake's key and deduplicated through the store's shared `webhookId`s)
//!   served with `routes::serve` on a loopback port;
//! - its metrics, every one of docs/metrics.md, in Prometheus text at
//!   `GET /metrics` on a loopback port of its own
//!   (`metrics-exporter-prometheus`, as the marketplace example does).
//!
//! The addresses of both go to `--ports-file` once they listen. Each
//! delivery the service acts on is a `webhook` line of the log (from
//! `ServiceEvent::Webhook`), each record written a `write` line. With
//! `--sync-company` the app reconciles that Company's Location grants with
//! the installed-locations list once started (`synced` line), as an app does
//! after missing deliveries. It stops when its standard input closes.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hoopai_oauth::{EngineSettings, Scope, UserType, WebhookKey, WebhookVerifier};
use hoopai_oauth_service::routes::{ServeLimits, serve};
use hoopai_oauth_service::{OAuthRouter, ReqwestClient, ServiceSettings, TokenService};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::net::TcpListener;

use super::WorkerSettings;
use super::engine::EngineSetup;
use super::service::{LoggingClient, LoggingStore, TokenGrants, connect_postgres, log_events};
use crate::journal::{Journal, WorkerLine, now_micros};

/// The addresses an app listens on, as written to `--ports-file`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ports {
    /// The app's routes: `POST /webhook`, `/healthz`, `/readyz`.
    pub app: SocketAddr,
    /// `GET /metrics`.
    pub metrics: SocketAddr,
}

/// Runs the app until standard input closes.
///
/// # Errors
/// The recorder, the runtime, the store, the service or a listener cannot
/// start.
pub fn run(settings: WorkerSettings, log: Journal) -> Result<(), String> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_ansi(false)
        .try_init();
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(app(settings, Arc::new(log), metrics))
}

/// The engine's settings of every app of the fleet: shared-store mode with
/// the request budget of `--budget-max` per `--budget-interval-ms`, shared
/// through the store.
fn engine_settings(settings: &WorkerSettings) -> EngineSettings {
    let engine = EngineSettings::default();
    let engine = match settings.budget_margin_ms {
        Some(ms) => engine.budget_margin(Duration::from_millis(ms)),
        None => engine,
    };
    engine
        .jitter_seed(settings.seed)
        .request_timeout(Duration::from_millis(settings.request_timeout_ms))
        .request_budget(
            settings.budget_max,
            Duration::from_millis(settings.budget_interval_ms),
        )
        .shared_store(
            settings.instance.clone(),
            Duration::from_millis(settings.lease_ms),
        )
        .shared_budget(true)
}

async fn app(
    settings: WorkerSettings,
    log: Arc<Journal>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Result<(), String> {
    let Some(url) = settings.postgres.clone() else {
        return Err("--driver app runs on Postgres (--postgres)".into());
    };
    let setup = EngineSetup {
        client_id: settings.client_id.clone(),
        client_secret: settings.client_secret.clone(),
        base_url: settings.server.clone(),
        holder: settings.instance.clone(),
        seed: settings.seed,
        request_timeout: Duration::from_millis(settings.request_timeout_ms),
        lease: Duration::from_millis(settings.lease_ms),
    };
    let config = setup.config()?;
    let service_settings = ServiceSettings::new(engine_settings(&settings));
    let grants = Arc::new(TokenGrants::default());
    let http = LoggingClient::new(
        ReqwestClient::new(service_settings.engine()).map_err(|e| format!("http: {e}"))?,
        Arc::clone(&log),
        Arc::clone(&grants),
        settings.instance.clone(),
    );
    let store = connect_postgres(&url, settings.postgres_schema.as_deref())
        .await
        .map_err(|e| format!("store: {e}"))?;
    let store = LoggingStore::new(store, Arc::clone(&log), grants);
    let service = TokenService::start(config.clone(), service_settings, store, http)
        .await
        .map_err(|e| format!("service: {e}"))?;
    let events = tokio::spawn(log_events(service.events(), Arc::clone(&log)));
    let held = service.list().await.map_err(|e| format!("service: {e}"))?;
    log.write(&WorkerLine::Start {
        t: now_micros(),
        instance: settings.instance.clone(),
        driver: "app".to_owned(),
        grants: held.len(),
    });

    let mut verifier = WebhookVerifier::new(&config);
    if let Some(key) = &settings.webhook_key {
        verifier = verifier
            .add_key(WebhookKey::from_spki(key).map_err(|e| format!("--webhook-key: {e}"))?);
    }
    let scopes = [
        Scope::OAUTH_READONLY,
        Scope::OAUTH_WRITE,
        Scope::LOCATIONS_READONLY,
    ];
    let routes = OAuthRouter::new(service.clone(), scopes)
        .user_type(UserType::Company)
        .webhook_verifier(verifier)
        .into_router();
    let metrics_routes = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { metrics.render() }
        }),
    );
    let app_listener = listen().await?;
    let metrics_listener = listen().await?;
    let ports = Ports {
        app: app_listener.local_addr().map_err(|e| e.to_string())?,
        metrics: metrics_listener.local_addr().map_err(|e| e.to_string())?,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let app_server = tokio::spawn(serve(
        app_listener,
        routes,
        ServeLimits::default(),
        stopped(stop_rx.clone()),
    ));
    let metrics_server = tokio::spawn(serve(
        metrics_listener,
        metrics_routes,
        ServeLimits::default(),
        stopped(stop_rx),
    ));
    if let Some(path) = &settings.ports_file {
        write_ports(path, &ports)?;
    }

    let (stdin_tx, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = stdin_tx.send(());
    });
    if let Some(company) = &settings.sync_company {
        let synced = service.sync_installed_locations(company).await;
        log.write(&match synced {
            Ok(changes) => WorkerLine::Synced {
                t: now_micros(),
                company: company.clone(),
                added: changes.added.len(),
                removed: changes.removed.len(),
                error: None,
            },
            Err(e) => WorkerLine::Synced {
                t: now_micros(),
                company: company.clone(),
                added: 0,
                removed: 0,
                error: Some(e.to_string()),
            },
        });
    }
    let _ = stdin_closed.await;

    // Stop: no new delivery, no new mint; those in flight answered and
    // written.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), app_server).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), metrics_server).await;
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
    drop(service);
    let _ = tokio::time::timeout(Duration::from_secs(2), events).await;
    log.write(&WorkerLine::Stop {
        t: now_micros(),
        in_flight: report.abandoned.len(),
        queued: report.unwritten.len(),
    });
    Ok(())
}

async fn listen() -> Result<TcpListener, String> {
    TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("listen: {e}"))
}

/// Writes `ports` to `path` whole: a file beside it, renamed into place.
fn write_ports(path: &Path, ports: &Ports) -> Result<(), String> {
    let text = serde_json::to_vec(ports).map_err(|e| e.to_string())?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, path).map_err(|e| format!("{}: {e}", path.display()))
}
