//! `/healthz` and `/readyz` over loopback: ready after start; not ready
//! while the store is locked by another connection (SQLite `BEGIN
//! EXCLUSIVE`, Postgres `LOCK TABLE`), ready again once it is released;
//! neither after shutdown; and a flood of `/readyz` makes at most one
//! store call a second.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::fake_http::FakeHttp;
use common::pg;
use hoopai_oauth::{EngineSettings, GrantId, GrantRecord, MAX_GRANT_ID_BYTES, WriteOutcome};
use hoopai_oauth_service::routes::{ServeLimits, serve};
use hoopai_oauth_service::{
    GrantStore, HEALTH_CACHE, OAuthRouter, Page, ReqwestClient, ServiceSettings, SqliteOptions,
    SqliteStore, StoreError, TokenService,
};

/// A store that counts the readiness probes it is asked (deletes of an id
/// longer than any grant id).
struct Counting<S> {
    inner: S,
    probes: Arc<AtomicU64>,
}

impl<S: GrantStore> GrantStore for Counting<S> {
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
        self.inner.compare_and_swap(record, replaces).await
    }
    async fn put(&self, record: &GrantRecord) -> Result<(), StoreError> {
        self.inner.put(record).await
    }
    async fn delete(&self, grant: &GrantId) -> Result<bool, StoreError> {
        if grant.as_str().len() > MAX_GRANT_ID_BYTES {
            self.probes.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.delete(grant).await
    }
}

struct Served {
    base: String,
    service: TokenService,
    probes: Arc<AtomicU64>,
    _fake: FakeHttp,
    _task: tokio::task::JoinHandle<()>,
}

fn settings() -> ServiceSettings {
    ServiceSettings::new(EngineSettings::default().request_timeout(Duration::from_secs(5)))
        .probe_timeout(Duration::from_secs(1))
}

/// The service on `store`, its routes at `/oauth` (the health routes at
/// `/oauth/live` and `/oauth/ready` when `paths` says so).
async fn serve_on<S: GrantStore>(store: S, paths: bool) -> Served {
    let fake = FakeHttp::start().await;
    let probes = Arc::new(AtomicU64::new(0));
    let store = Counting {
        inner: store,
        probes: Arc::clone(&probes),
    };
    let http = ReqwestClient::new(settings().engine()).unwrap();
    let service = TokenService::start(fake.config(), settings(), store, http)
        .await
        .unwrap();
    let mut routes = OAuthRouter::new(service.clone(), []);
    if paths {
        routes = routes.healthz_path("/live").readyz_path("/ready");
    }
    let app = axum::Router::new().nest("/oauth", routes.into_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/oauth", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = serve(
            listener,
            app,
            ServeLimits::default(),
            std::future::pending(),
        )
        .await;
    });
    Served {
        base,
        service,
        probes,
        _fake: fake,
        _task: task,
    }
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Asks `url` until it answers `status` (waiting out the kept answer), up
/// to `within`; returns the body.
async fn until(url: &str, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (got, body) = get(url).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url} still answers {got} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_after_start_and_not_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("grants.sqlite3"))
        .await
        .unwrap();
    let app = serve_on(store, false).await;
    let (status, body) = get(&format!("{}/readyz", app.base)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body.trim_end(),
        r#"{"ready":true,"engine":"running","restore":"done","store":"ok"}"#
    );
    let (status, body) = get(&format!("{}/healthz", app.base)).await;
    assert_eq!((status, body.trim_end()), (200, r#"{"alive":true}"#));

    app.service.shutdown().await;
    let body = until(&format!("{}/readyz", app.base), 503, Duration::from_secs(1)).await;
    assert_eq!(
        body.trim_end(),
        r#"{"ready":false,"failed":"engine","engine":"stopped","restore":"done","store":"not_asked"}"#
    );
    // Liveness is kept a second, then asks the task, which is gone.
    let body = until(
        &format!("{}/healthz", app.base),
        503,
        HEALTH_CACHE + Duration::from_secs(3),
    )
    .await;
    assert_eq!(body.trim_end(), r#"{"alive":false}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_while_another_sqlite_connection_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grants.sqlite3");
    let store = SqliteStore::open_with(
        &path,
        SqliteOptions::default().busy_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let app = serve_on(store, true).await;
    let ready = format!("{}/ready", app.base);
    assert_eq!(get(&ready).await.0, 200);

    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(Duration::from_secs(60));
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    let body = until(&ready, 503, HEALTH_CACHE + Duration::from_secs(5)).await;
    assert!(body.contains(r#""failed":"store""#), "{body}");
    // The store said "busy" past its busy timeout (or took longer than the
    // probe timeout): either way no detail of it is in the answer.
    assert!(
        body.contains(r#""store":"failed""#) || body.contains(r#""store":"timed_out""#),
        "{body}"
    );
    assert!(!body.contains("sqlite") && !body.contains("lock"), "{body}");
    // Liveness does not depend on the store.
    assert_eq!(get(&format!("{}/live", app.base)).await.0, 200);

    release_tx.send(()).unwrap();
    holder.join().unwrap();
    until(&ready, 200, HEALTH_CACHE + Duration::from_secs(5)).await;
    app.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_while_another_postgres_session_locks_the_table() {
    let Some(config) = pg::config("not_ready_while_another_postgres_session_locks_the_table")
    else {
        return;
    };
    let (store, scoped) = pg::store(&config).await;
    let app = serve_on(store, false).await;
    let ready = format!("{}/readyz", app.base);
    assert_eq!(get(&ready).await.0, 200);

    let mut locker = pg::client(&scoped).await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE hoopai_grants IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // The probe waits on the lock past its 1 s timeout.
    let body = until(&ready, 503, HEALTH_CACHE + Duration::from_secs(5)).await;
    assert!(body.contains(r#""store":"timed_out""#), "{body}");
    tx.rollback().await.unwrap();
    until(&ready, 200, HEALTH_CACHE + Duration::from_secs(8)).await;
    app.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_readiness_checks_makes_a_store_call_a_second_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("grants.sqlite3"))
        .await
        .unwrap();
    let app = serve_on(store, false).await;
    let url = format!("{}/readyz", app.base);
    let http = reqwest::Client::new();
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let http = http.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u32;
            for _ in 0..40 {
                let status = http.get(&url).send().await.unwrap().status();
                ok += u32::from(status == 200);
            }
            ok
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += task.await.unwrap();
    }
    let took = began.elapsed();
    let probes = app.probes.load(Ordering::SeqCst);
    eprintln!("2,000 /readyz in {took:?}: {probes} store probe(s)");
    assert_eq!(ok, 2_000);
    // One probe per second of the flood, at most (plus the one at its
    // start).
    let bound = took.as_secs() + 2;
    assert!(
        probes >= 1 && probes <= bound,
        "{probes} probes in {took:?}"
    );
    app.service.shutdown().await;
}
