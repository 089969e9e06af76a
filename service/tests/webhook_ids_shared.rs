//! Webhook ids shared by processes through the store: several OS processes
//! (this test binary, started again as children) record the same ids at
//! the same moment on one SQLite file and on one Postgres database, and
//! each id is new to exactly one of them; and over loopback, the same
//! signed delivery POSTed to two apps (two token services on one store,
//! each serving its routes on a port of its own, with no setting for
//! webhook ids) is acted on once, while a delivery one app could not act
//! on (it was stopping) is acted on by the other.
//!
//! The Postgres tests use `HOOPAI_TEST_POSTGRES_URL`, or a server started
//! for them when PostgreSQL is installed.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::fake_http::{CLIENT_ID, CLIENT_SECRET, FakeHttp};
use common::t0;
use common::webhook_db::IdsDb;
use hoopai_oauth::fake::FakeWebhook;
use hoopai_oauth::{Config, EngineSettings, Recorded, WebhookVerifier};
use hoopai_oauth_service::routes::{ServeLimits, serve};
use hoopai_oauth_service::{
    GrantStore, MemoryStore, OAuthRouter, ReqwestClient, ServiceEvent, ServiceSettings,
    TokenService,
};

/// Names the database of a child process (see `IdsDb::to_env`).
const CHILD_DB: &str = "HOOPAI_WEBHOOK_IDS_CHILD_DB";
/// When the children start recording, in Unix milliseconds.
const CHILD_START: &str = "HOOPAI_WEBHOOK_IDS_CHILD_START";
/// How many ids each child records.
const CHILD_IDS: &str = "HOOPAI_WEBHOOK_IDS_CHILD_IDS";
/// Where a child writes the ids that were new to it, one a line.
const CHILD_OUT: &str = "HOOPAI_WEBHOOK_IDS_CHILD_OUT";

const WINDOW: Duration = Duration::from_secs(300);

fn unix_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Every process tries id `i` at `start + i × SLOT`: all at once.
const SLOT: Duration = Duration::from_millis(3);

/// A child process of the race tests: opens the database, records
/// `wh-race-0000`… in order, each at its slot after the common start, and
/// writes down those that were new to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the race tests, which run it with its variables set"]
async fn child_records_ids() {
    let Ok(db) = std::env::var(CHILD_DB) else {
        eprintln!("nothing to do: the race tests run this with {CHILD_DB} set");
        return;
    };
    let db = IdsDb::from_env(&db);
    let start: u64 = std::env::var(CHILD_START).unwrap().parse().unwrap();
    let n: usize = std::env::var(CHILD_IDS).unwrap().parse().unwrap();
    let out = std::env::var(CHILD_OUT).unwrap();
    let ids = db.open().await;
    // Connected before the start: the race is on the inserts alone.
    ids.record("wh-warm-up", t0(), t0(), WINDOW).await.unwrap();
    let start = Instant::now() + Duration::from_millis(start.saturating_sub(unix_ms()));
    let mut new = String::new();
    for i in 0..n {
        tokio::time::sleep_until((start + SLOT * u32::try_from(i).unwrap()).into()).await;
        let id = format!("wh-race-{i:04}");
        match ids.record(&id, t0(), t0(), WINDOW).await.unwrap() {
            Recorded::New => {
                new.push_str(&id);
                new.push('\n');
            }
            Recorded::Duplicate => {}
            other => panic!("{id}: {other:?}"),
        }
    }
    std::fs::write(out, new).unwrap();
}

/// `processes` children record the same `n` ids at once on `db`: each id
/// is new to exactly one of them.
async fn processes_race(db: IdsDb, processes: usize, n: usize) {
    drop(db.open().await); // the schema, before the children start
    let outs = tempfile::tempdir().unwrap();
    let start = unix_ms() + 2_000;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..processes)
        .map(|k| {
            let out = outs.path().join(format!("child-{k}"));
            let child = Command::new(&exe)
                .args(["child_records_ids", "--exact", "--ignored", "--nocapture"])
                .env(CHILD_DB, db.to_env())
                .env(CHILD_START, start.to_string())
                .env(CHILD_IDS, n.to_string())
                .env(CHILD_OUT, &out)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let began = Instant::now();
    let mut wins = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (child, out) in children {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            output.status.success(),
            "a child failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let new = std::fs::read_to_string(&out).unwrap();
        wins.push(new.lines().count());
        for id in new.lines() {
            *counts.entry(id.to_owned()).or_default() += 1;
        }
    }
    let took = began.elapsed();
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "new to more than one process: {twice:?}");
    assert_eq!(counts.len(), n, "every id was new to one process");
    assert!(
        wins.iter().filter(|w| **w > 0).count() > 1,
        "the processes raced (wins {wins:?})"
    );
    let table = db.count().await;
    assert_eq!(table, i64::try_from(n).unwrap() + 1);
    eprintln!(
        "{}: {processes} processes × {n} ids at once: each id new exactly once (wins per process {wins:?}), {:.1} s",
        if db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        },
        took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_race_on_one_sqlite_file() {
    processes_race(IdsDb::sqlite(), 4, 1_500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_race_on_one_postgres_database() {
    if let Some(db) = IdsDb::postgres("processes_race_on_one_postgres_database").await {
        processes_race(db, 4, 1_500).await;
    }
}

// ---- two apps on one store, over loopback -----------------------------------

/// An app: a token service on `store` and its routes on a loopback port,
/// with HighLevel's key replaced by the fake's and nothing else set.
struct App {
    base: String,
    service: TokenService,
    events: tokio::sync::broadcast::Receiver<ServiceEvent>,
    _task: tokio::task::JoinHandle<()>,
}

impl App {
    async fn start<S: GrantStore>(fake: &FakeHttp, holder: &str, store: S) -> App {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = Config::builder(CLIENT_ID, CLIENT_SECRET)
            .base_url(fake.base_url())
            .redirect_uri(format!("{base}/oauth/callback"))
            .build()
            .unwrap();
        let settings = ServiceSettings::new(
            EngineSettings::default().shared_store(holder, Duration::from_secs(5)),
        );
        let http = ReqwestClient::new(settings.engine()).unwrap();
        let service = TokenService::start(config.clone(), settings, store, http)
            .await
            .unwrap();
        let verifier = WebhookVerifier::new(&config).add_key(fake.fake().webhook_key());
        let routes = OAuthRouter::new(service.clone(), []).webhook_verifier(verifier);
        let app = axum::Router::new().nest("/oauth", routes.into_router());
        let task = tokio::spawn(async move {
            let _ = serve(
                listener,
                app,
                ServeLimits::default(),
                std::future::pending(),
            )
            .await;
        });
        App {
            base,
            events: service.events(),
            service,
            _task: task,
        }
    }

    /// POSTs a delivery as the fake built it: status and body.
    async fn deliver(&self, delivery: &http::Request<Vec<u8>>) -> (u16, String) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/oauth/webhook", self.base))
            .body(delivery.body().clone());
        for (name, value) in delivery.headers() {
            request = request.header(name.as_str(), value.as_bytes());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// How many deliveries this app acted on since the last call.
    async fn acted(&mut self) -> usize {
        let mut n = 0;
        while let Ok(Ok(event)) =
            tokio::time::timeout(Duration::from_millis(300), self.events.recv()).await
        {
            if matches!(event, ServiceEvent::Webhook(_)) {
                n += 1;
            }
        }
        n
    }
}

/// The same delivery to both apps at once, then again to each: `acted`
/// times acted on in all. Then, when the store is shared, a delivery the
/// stopping app could not act on is acted on by the other.
async fn one_delivery_two_apps<S: GrantStore>(a: S, b: S, shared: bool) {
    let fake = FakeHttp::start().await;
    let mut a = App::start(&fake, "app-a", a).await;
    let mut b = App::start(&fake, "app-b", b).await;
    let delivery = fake.fake().webhook(
        &FakeWebhook::install_location("company-1", "loc-1"),
        SystemTime::now(),
    );
    let (at_a, at_b) = tokio::join!(a.deliver(&delivery), b.deliver(&delivery));
    assert_eq!((at_a.0, at_b.0), (200, 200), "{at_a:?} {at_b:?}");
    // HighLevel's retries, one to each.
    let (again_a, again_b) = (a.deliver(&delivery).await, b.deliver(&delivery).await);
    assert_eq!((again_a.0, again_b.0), (200, 200));
    assert!(again_a.1.starts_with("duplicate") && again_b.1.starts_with("duplicate"));
    let acted = a.acted().await + b.acted().await;
    let accepted = [&at_a, &at_b]
        .iter()
        .filter(|(_, body)| body.starts_with("accepted"))
        .count();
    if !shared {
        // Each process remembers only its own: both act.
        assert_eq!((acted, accepted), (2, 2), "{at_a:?} {at_b:?}");
        return;
    }
    assert_eq!((acted, accepted), (1, 1), "{at_a:?} {at_b:?}");

    // B stops; a delivery reaching it is not acted on (503), so its id is
    // forgotten and HighLevel's retry, reaching A, is acted on there.
    b.service.shutdown().await;
    let second = fake.fake().webhook(
        &FakeWebhook::install_location("company-1", "loc-2"),
        SystemTime::now(),
    );
    let refused = b.deliver(&second).await;
    assert_eq!(refused.0, 503, "{refused:?}");
    let retried = a.deliver(&second).await;
    assert_eq!(retried.0, 200, "{retried:?}");
    assert!(retried.1.starts_with("accepted"), "{retried:?}");
    assert_eq!(a.acted().await, 1);
    assert!(a.deliver(&second).await.1.starts_with("duplicate"));
    a.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_delivery_to_two_apps_is_acted_on_once() {
    let db = IdsDb::sqlite();
    one_delivery_two_apps(db.sqlite_store().await, db.sqlite_store().await, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_delivery_to_two_apps_is_acted_on_once() {
    let Some(db) = IdsDb::postgres("postgres_one_delivery_to_two_apps_is_acted_on_once").await
    else {
        return;
    };
    one_delivery_two_apps(db.postgres_store().await, db.postgres_store().await, true).await;
}

/// The control: the memory store keeps no ids, so each app keeps its own
/// and both act on the delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_apps_each_keep_their_own_ids() {
    let store = Arc::new(MemoryStore::new());
    one_delivery_two_apps(Arc::clone(&store), store, false).await;
}
