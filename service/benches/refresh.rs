//! Refreshes per second through the token service against the core's fake
//! HighLevel server served over loopback HTTP (axum), with each store, and
//! where the time goes.
//!
//! - `refresh_one`: one refresh, start to end: `token_after_401` → the
//!   engine's request → HTTP to the fake → parse → the store write → the
//!   new token handed out. Its inverse is the refreshes per second of one
//!   caller.
//! - `refresh_64_at_once`: 64 grants refreshed concurrently; 64 / time is
//!   the throughput of one service.
//! - `http_round_trip`: the HTTP part alone: the same refresh request built,
//!   sent through `ReqwestClient` to the fake, and parsed (no service, no
//!   store).
//! - `store_put`: the store part alone: one record written.
//!
//! Run: `cargo bench -p hoopai-oauth-service --bench refresh`. The Postgres
//! benches use `HOOPAI_TEST_POSTGRES_URL`, or a throwaway server they start
//! when PostgreSQL is installed; without either they are skipped with a
//! notice.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use hoopai_oauth::fake::{FakeServer, Install};
use hoopai_oauth::{
    Config, EngineSettings, GrantId, RefreshToken, TokenRequest, UserType, parse_token_response,
    token_request,
};
use hoopai_oauth_service::{
    GrantStore, HttpClient, MemoryStore, PostgresStore, ReqwestClient, ServiceSettings,
    SqliteStore, TokenService,
};

const CLIENT_ID: &str = "6578278e879ad2646715ba9c-lq3w8xd2";
const CLIENT_SECRET: &str = "bench-client-secret";
const GRANTS: usize = 64;

fn main() {
    divan::main();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn fake_route(State(fake): State<Arc<Mutex<FakeServer>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let request = http::Request::from_parts(parts, bytes.to_vec());
    let mut response = fake.lock().unwrap().handle(&request, SystemTime::now());
    // The bench measures the refresh path, not the pacing: without these
    // the engine follows the fake's 100 a window and the 64-at-once bench
    // waits for the budget (10 s a sample).
    for name in [
        "x-ratelimit-max",
        "x-ratelimit-remaining",
        "x-ratelimit-interval-milliseconds",
        "x-ratelimit-limit-daily",
        "x-ratelimit-daily-remaining",
    ] {
        response.headers_mut().remove(name);
    }
    response.map(Body::from)
}

/// The fake on a loopback port, and a config pointed at it.
async fn fake() -> (Arc<Mutex<FakeServer>>, Config) {
    let fake = Arc::new(Mutex::new(FakeServer::new(CLIENT_ID, CLIENT_SECRET)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .fallback(fake_route)
        .with_state(Arc::clone(&fake));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let config = Config::builder(CLIENT_ID, CLIENT_SECRET)
        .base_url(url)
        .build()
        .unwrap();
    (fake, config)
}

/// A service on `store` holding `GRANTS` installed grants.
async fn service<S: GrantStore>(store: S, tag: &str) -> (TokenService, Vec<String>) {
    let (fake, config) = fake().await;
    let settings = ServiceSettings::new(
        EngineSettings::default()
            .max_in_flight(GRANTS * 2)
            // Room for every sample's refreshes: see `fake_route`.
            .request_budget(100_000, std::time::Duration::from_secs(10)),
    );
    let http = ReqwestClient::new(settings.engine()).unwrap();
    let service = TokenService::start(config, settings, store, http)
        .await
        .unwrap();
    let mut grants = Vec::new();
    for i in 0..GRANTS {
        let location = format!("bench-{tag}-{}-{i}", std::process::id());
        let code = fake
            .lock()
            .unwrap()
            .approve(&Install::location("company-1", &location));
        let grant = service
            .exchange_code(code, Some(UserType::Location))
            .await
            .unwrap();
        grants.push(grant.to_string());
    }
    (service, grants)
}

async fn refresh(service: &TokenService, grant: &str) {
    let current = service.access_token(grant).await.unwrap();
    let fresh = service.token_after_401(grant, &current).await.unwrap();
    assert_ne!(fresh.secret(), current.secret());
}

fn bench_store<S: GrantStore>(
    bencher: divan::Bencher,
    make: impl FnOnce() -> S,
    tag: &str,
    all: bool,
) {
    let rt = runtime();
    let (service, grants) = rt.block_on(async { service(make(), tag).await });
    let mut next = 0;
    bencher.bench_local(|| {
        rt.block_on(async {
            if all {
                let tasks: Vec<_> = grants
                    .iter()
                    .map(|g| {
                        let (service, g) = (service.clone(), g.clone());
                        tokio::spawn(async move { refresh(&service, &g).await })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            } else {
                next = (next + 1) % grants.len();
                refresh(&service, &grants[next]).await;
            }
        })
    });
    rt.block_on(service.shutdown());
}

fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = runtime()
        .block_on(SqliteStore::open(dir.path().join("grants.sqlite3")))
        .unwrap();
    (store, dir)
}

fn postgres() -> Option<PostgresStore> {
    // `HOOPAI_TEST_POSTGRES_URL`, or a server started for the benches.
    let url = hoopai_test_postgres::database("postgres benches")?;
    Some(runtime().block_on(PostgresStore::connect(&url)).unwrap())
}

#[divan::bench_group(sample_count = 20, sample_size = 1)]
mod refresh_one {
    use super::*;

    #[divan::bench]
    fn memory(bencher: divan::Bencher) {
        bench_store(bencher, MemoryStore::new, "m1", false);
    }

    #[divan::bench]
    fn sqlite(bencher: divan::Bencher) {
        let (store, _dir) = super::sqlite();
        bench_store(bencher, || store, "s1", false);
    }

    #[divan::bench]
    fn postgres(bencher: divan::Bencher) {
        if let Some(store) = super::postgres() {
            bench_store(bencher, || store, "p1", false);
        }
    }
}

#[divan::bench_group(sample_count = 10, sample_size = 1)]
mod refresh_64_at_once {
    use super::*;

    #[divan::bench]
    fn memory(bencher: divan::Bencher) {
        bench_store(bencher, MemoryStore::new, "m64", true);
    }

    #[divan::bench]
    fn sqlite(bencher: divan::Bencher) {
        let (store, _dir) = super::sqlite();
        bench_store(bencher, || store, "s64", true);
    }

    #[divan::bench]
    fn postgres(bencher: divan::Bencher) {
        if let Some(store) = super::postgres() {
            bench_store(bencher, || store, "p64", true);
        }
    }
}

/// The HTTP part alone: a refresh built, sent to the fake, parsed.
#[divan::bench(sample_count = 50, sample_size = 1)]
fn http_round_trip(bencher: divan::Bencher) {
    let rt = runtime();
    let (fake, config) = rt.block_on(fake());
    let http = ReqwestClient::new(&EngineSettings::default()).unwrap();
    let code = fake
        .lock()
        .unwrap()
        .approve(&Install::location("company-1", "loc-http"));
    let request = token_request(
        &config,
        &TokenRequest::authorization_code(code).user_type(UserType::Location),
    )
    .unwrap();
    let first = rt.block_on(http.send(request)).unwrap();
    let mut refresh: RefreshToken = parse_token_response(first).unwrap().refresh_token.unwrap();
    bencher.bench_local(|| {
        let request = token_request(
            &config,
            &TokenRequest::refresh_token(refresh.clone()).user_type(UserType::Location),
        )
        .unwrap();
        let answer = rt.block_on(http.send(request)).unwrap();
        refresh = parse_token_response(answer).unwrap().refresh_token.unwrap();
    });
}

/// The store part alone: one record written (a plain overwrite).
#[divan::bench_group(sample_count = 50, sample_size = 1)]
mod store_put {
    use super::*;

    fn record() -> hoopai_oauth::GrantRecord {
        let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
        let config = Config::builder(CLIENT_ID, CLIENT_SECRET).build().unwrap();
        let code = fake.approve(&Install::location("company-1", "loc-put"));
        let request = token_request(&config, &TokenRequest::authorization_code(code)).unwrap();
        let token = parse_token_response(fake.handle(&request, SystemTime::now())).unwrap();
        let id = format!("bench-put-{}", std::process::id());
        hoopai_oauth::GrantRecord::new(
            GrantId::new(id),
            hoopai_oauth::TokenSet::new(token, SystemTime::now()),
        )
    }

    fn put<S: GrantStore>(bencher: divan::Bencher, store: S) {
        let rt = runtime();
        let mut record = record();
        bencher.bench_local(|| {
            record.version += 1;
            rt.block_on(store.put(&record)).unwrap();
        });
        let _ = rt.block_on(store.delete(&record.grant));
    }

    #[divan::bench]
    fn memory(bencher: divan::Bencher) {
        put(bencher, MemoryStore::new());
    }

    #[divan::bench]
    fn sqlite(bencher: divan::Bencher) {
        let (store, _dir) = super::sqlite();
        put(bencher, store);
    }

    #[divan::bench]
    fn postgres(bencher: divan::Bencher) {
        if let Some(store) = super::postgres() {
            put(bencher, store);
        }
    }
}
