//! Three token services on one store (as three processes would), each told
//! HighLevel's budget, refreshing 60 grants that all come due at once
//! against the fake with its rate limit on (15 per 5 s). With the budget shared through
//! the store (`EngineSettings::shared_budget`) no request is refused; each
//! engine on its own would send three times the limit and collect 429s,
//! which the control run shows. On SQLite (one file, three connections)
//! and on Postgres.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::fake_http::FakeHttp;
use common::pg;
use hoopai_oauth::fake::FakeRateLimit;
use hoopai_oauth::{AccessToken, EngineSettings, GrantRecord, TokenResponse, TokenSet};
use hoopai_oauth_service::{GrantStore, ReqwestClient, ServiceSettings, SqliteStore, TokenService};

const GRANTS: usize = 60;
const MAX: u32 = 15;
// Long enough that the budget's margin (2.5% of it, 125 ms) covers a
// request delayed by a busy machine: with a 1 s window (25 ms) a refresh
// slowed on its way to the fake could land in a window the fake still saw
// as full.
const WINDOW: Duration = Duration::from_secs(5);

fn settings(holder: &str, shared_budget: bool) -> ServiceSettings {
    ServiceSettings::new(
        EngineSettings::default()
            .expiry_skew(Duration::from_secs(1))
            .request_timeout(Duration::from_secs(5))
            .request_budget(MAX, WINDOW)
            .shared_store(holder, Duration::from_secs(30))
            .shared_budget(shared_budget),
    )
    .wait(Duration::from_secs(60))
}

/// What one run saw: 429s at the fake, refreshes, and how long until every
/// grant had a fresh token.
struct Run {
    rate_limited: u64,
    refreshes: u64,
    took: Duration,
}

async fn three_services<S, F, Fut>(open: F, shared_budget: bool) -> Run
where
    S: GrantStore,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let server = FakeHttp::start().await;
    let store = open().await;
    for i in 0..GRANTS {
        let grant = format!("loc-{i}");
        let answer = server.location_tokens(grant.as_str());
        // Installed two days ago: the access token has expired.
        let mut token = TokenResponse::new(AccessToken::new(format!(
            "access-expired-{grant}-000000000000000000"
        )));
        token.refresh_token = answer.refresh_token;
        token.expires_in = Some(86_399);
        let tokens = TokenSet::new(token, SystemTime::now() - Duration::from_secs(2 * 86_400));
        let mut record = GrantRecord::new(grant.as_str(), tokens);
        record.version = 1;
        store.put(&record).await.unwrap();
    }
    server
        .fake()
        .set_rate_limit(Some(FakeRateLimit::new(u64::from(MAX), WINDOW)));
    let calls = || {
        server
            .shared
            .token_calls
            .load(std::sync::atomic::Ordering::SeqCst) as u64
    };
    let before = calls();
    let began = Instant::now();
    let mut services = Vec::new();
    for holder in ["app-a", "app-b", "app-c"] {
        let settings = settings(holder, shared_budget);
        let http = ReqwestClient::new(settings.engine()).unwrap();
        services.push(
            TokenService::start(server.config(), settings, open().await, http)
                .await
                .unwrap(),
        );
    }
    // Every grant asked of a service in turn; each answer a fresh token.
    let mut asks = Vec::new();
    for i in 0..GRANTS {
        let service = services[i % services.len()].clone();
        asks.push(tokio::spawn(async move {
            service.access_token(&format!("loc-{i}")).await
        }));
    }
    for (i, ask) in asks.into_iter().enumerate() {
        let token = ask
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("loc-{i}: {e}"));
        assert!(!token.secret().starts_with("access-expired"), "loc-{i}");
    }
    let took = began.elapsed();
    for service in services {
        service.shutdown().await;
    }
    assert_eq!(server.fake().stats().spent_refresh_token_reuses, 0);
    Run {
        rate_limited: server.fake().stats().rate_limited,
        refreshes: calls() - before,
        took,
    }
}

fn check(shared: &Run, control: &Run) {
    let floor = WINDOW * (GRANTS as u32 / MAX - 1);
    eprintln!(
        "shared budget: {} refreshes, {} refused with 429, {:?} (floor {floor:?}); \
         each engine on its own: {} refreshes, {} refused with 429, {:?}",
        shared.refreshes,
        shared.rate_limited,
        shared.took,
        control.refreshes,
        control.rate_limited,
        control.took
    );
    assert_eq!(shared.rate_limited, 0, "no 429 with one budget");
    assert_eq!(shared.refreshes, GRANTS as u64, "one refresh per grant");
    assert!(
        control.rate_limited > 0,
        "the control run (three budgets) collects 429s, or the test proves nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_three_services_draw_from_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &'static str| {
        let path = dir.path().join(name);
        move || {
            let path = path.clone();
            async move { SqliteStore::open(path).await.unwrap() }
        }
    };
    let shared = three_services(open("shared.sqlite3"), true).await;
    let control = three_services(open("control.sqlite3"), false).await;
    check(&shared, &control);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_three_services_draw_from_one_budget() {
    let Some(config) = pg::config("postgres_three_services_draw_from_one_budget") else {
        return;
    };
    let mut runs = Vec::new();
    for shared_budget in [true, false] {
        let scoped = pg::fresh_schema(&config).await;
        let open = || {
            let scoped = scoped.clone();
            async move {
                hoopai_oauth_service::PostgresStore::connect_with(scoped, tokio_postgres::NoTls)
                    .await
                    .unwrap()
            }
        };
        runs.push(three_services(open, shared_budget).await);
    }
    check(&runs[0], &runs[1]);
}
