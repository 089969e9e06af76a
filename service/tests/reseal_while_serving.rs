//! A key rotation at scale, while serving: a store holds 100,000 records
//! sealed under key A; the app gains key B (newest) and reseals every
//! record while a `TokenService` on the same store keeps answering
//! `access_token` for a sample of grants (every answer arrives and is the
//! right token; the latencies are measured) and keeps refreshing other
//! grants against the fake HighLevel over loopback. Afterwards every
//! record is sealed under B, none is lost, and each refreshed grant holds
//! its latest refresh token, the one the fake takes. On SQLite, and on
//! Postgres (`HOOPAI_TEST_POSTGRES_URL`, or a server started for the test
//! when PostgreSQL is installed).
//!
//! 100,000 records, unless `HOOPAI_RESEAL_RECORDS` says otherwise. The
//! debug build that `cargo test` makes compiles the sealing crates
//! optimized (the workspace's `[profile.dev.package.*]`), so a store takes
//! one to two minutes on a 2-core machine; the figures are in
//! `docs/encryption-at-rest.md`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::fake_http::FakeHttp;
use common::pg;
use hoopai_oauth::fake::Install;
use hoopai_oauth::{
    AccessToken, EngineSettings, GrantRecord, RefreshToken, TokenRequest, TokenResponse, TokenSet,
    UserType, parse_token_response, token_request,
};
use hoopai_oauth_service::{
    GrantStore, Keyring, PostgresStore, RecordKey, ReqwestClient, ServiceSettings, SqliteOptions,
    SqliteStore, TokenService,
};

/// How many grants answer `access_token` during the reseal.
const SAMPLE: usize = 200;
/// How many grants are refreshed again and again during the reseal.
const REFRESHED: usize = 20;

/// How many records the store holds: `HOOPAI_RESEAL_RECORDS`, or 100,000.
fn records() -> usize {
    let Ok(text) = std::env::var("HOOPAI_RESEAL_RECORDS") else {
        return 100_000;
    };
    match text.parse() {
        Ok(n) if n >= 1_000 => n,
        _ => panic!("HOOPAI_RESEAL_RECORDS is {text:?}: give a number of at least 1000"),
    }
}

fn keys(ids: &[&str]) -> Keyring {
    Keyring::new(
        ids.iter()
            .map(|id| RecordKey::new(*id, [id.as_bytes()[0]; 32]).unwrap()),
    )
    .unwrap()
}

fn grant(i: usize) -> String {
    format!("loc-{i:06}")
}

/// The database behind the store: rows written and read around the store.
trait Database: Sync {
    type Store: GrantStore + Clone;
    async fn open(&self, keys: Keyring) -> Self::Store;
    async fn reseal(&self, store: &Self::Store) -> hoopai_oauth_service::ResealReport;
    /// Inserts `(grant, version, text)` rows in one transaction.
    async fn seed(&self, rows: Vec<(String, i64, String)>);
    /// Every row's grant, version and text.
    async fn rows(&self) -> Vec<(String, i64, String)>;
}

struct Sqlite {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Database for Sqlite {
    type Store = SqliteStore;

    async fn open(&self, keys: Keyring) -> SqliteStore {
        SqliteStore::open_with(&self.path, SqliteOptions::default().keys(keys))
            .await
            .unwrap()
    }

    async fn reseal(&self, store: &SqliteStore) -> hoopai_oauth_service::ResealReport {
        store.reseal().await.unwrap()
    }

    async fn seed(&self, rows: Vec<(String, i64, String)>) {
        let mut conn = rusqlite::Connection::open(&self.path).unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO hoopai_grants (grant_id, version, record) VALUES (?1, ?2, ?3)",
                )
                .unwrap();
            for (grant, version, text) in rows {
                insert
                    .execute(rusqlite::params![grant, version, text])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }

    async fn rows(&self) -> Vec<(String, i64, String)> {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        let mut stmt = conn
            .prepare("SELECT grant_id, version, record FROM hoopai_grants ORDER BY grant_id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

struct Postgres {
    scoped: tokio_postgres::Config,
}

impl Database for Postgres {
    type Store = PostgresStore;

    async fn open(&self, keys: Keyring) -> PostgresStore {
        PostgresStore::connect_with(self.scoped.clone(), tokio_postgres::NoTls)
            .await
            .unwrap()
            .with_keys(keys)
    }

    async fn reseal(&self, store: &PostgresStore) -> hoopai_oauth_service::ResealReport {
        store.reseal().await.unwrap()
    }

    async fn seed(&self, rows: Vec<(String, i64, String)>) {
        let mut client = pg::client(&self.scoped).await;
        let tx = client.transaction().await.unwrap();
        for chunk in rows.chunks(5_000) {
            let grants: Vec<&str> = chunk.iter().map(|r| r.0.as_str()).collect();
            let versions: Vec<i64> = chunk.iter().map(|r| r.1).collect();
            let texts: Vec<&str> = chunk.iter().map(|r| r.2.as_str()).collect();
            tx.execute(
                "INSERT INTO hoopai_grants (grant_id, version, record)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[])",
                &[&grants, &versions, &texts],
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }

    async fn rows(&self) -> Vec<(String, i64, String)> {
        pg::client(&self.scoped)
            .await
            .query(
                "SELECT grant_id, version, record FROM hoopai_grants ORDER BY grant_id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }
}

/// Seals every record under `ring`'s newest key, on every core.
fn seal_all(ring: &Keyring, records: &[GrantRecord]) -> Vec<(String, i64, String)> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = records.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = records
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|r| {
                            let version = i64::try_from(r.version).unwrap();
                            (r.grant.to_string(), version, ring.seal_record(r).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|p| p.join().unwrap()).collect()
    })
}

/// The `q`-th quantile of `samples` (sorted in place).
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[i]
}

async fn reseal_while_serving<D: Database>(db: D, label: &str)
where
    D::Store: 'static,
{
    let n = records();
    let began = Instant::now();
    let server = FakeHttp::start().await;
    let ring_a = keys(&["A"]);

    // The grants refreshed during the reseal: installed at the fake, so
    // their refresh tokens are live there.
    let refreshed: Vec<usize> = (0..REFRESHED).map(|k| k * (n / REFRESHED) + 7).collect();
    let mut records = Vec::with_capacity(n);
    // One record's JSON, its grant id replaced per row: fresh for a day,
    // so nothing but the refreshes below goes to the fake.
    let template = {
        let mut token = TokenResponse::new(AccessToken::new(
            "access-placeholder-loc-000000-000000000000000000000000".to_owned(),
        ));
        token.refresh_token = Some(RefreshToken::new(
            "refresh-placeholder-loc-000000-00000000000000000000000".to_owned(),
        ));
        token.expires_in = Some(86_399);
        token.location_id = Some("loc-000000".to_owned());
        let mut record = GrantRecord::new("loc-000000", TokenSet::new(token, SystemTime::now()));
        record.version = 1;
        serde_json::to_string(&record).unwrap()
    };
    for i in 0..n {
        let g = grant(i);
        let record: GrantRecord = if refreshed.contains(&i) {
            let code = server.fake().approve(&Install::location("company-1", &g));
            let request = token_request(
                &server.config(),
                &TokenRequest::authorization_code(code).user_type(UserType::Location),
            )
            .unwrap();
            let token =
                parse_token_response(server.fake().handle(&request, SystemTime::now())).unwrap();
            let mut record = GrantRecord::new(g.as_str(), TokenSet::new(token, SystemTime::now()));
            record.version = 1;
            record
        } else {
            serde_json::from_str(&template.replace("loc-000000", &g)).unwrap()
        };
        records.push(record);
    }
    // The store's schema, then every record sealed under A in one transaction.
    drop(db.open(ring_a.clone()).await);
    db.seed(seal_all(&ring_a, &records)).await;
    let seeded = began.elapsed();

    // The app gains B: a service on the store with ring (B, A).
    let ring_ba = keys(&["B", "A"]);
    let store = db.open(ring_ba.clone()).await;
    let settings =
        ServiceSettings::new(EngineSettings::default().request_timeout(Duration::from_secs(10)))
            .wait(Duration::from_secs(30));
    let http = ReqwestClient::new(settings.engine()).unwrap();
    let service = TokenService::start(server.config(), settings, store.clone(), http)
        .await
        .unwrap();
    assert_eq!(service.start_report().restored, n);
    assert!(service.start_report().corrupt.is_empty());
    let started = began.elapsed();

    let sample: Vec<usize> = (0..SAMPLE)
        .map(|k| k * (n / SAMPLE) + 3)
        .filter(|i| !refreshed.contains(i))
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    // Two callers, each asking for the sample's tokens one after another,
    // about a thousand a second each.
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let service = service.clone();
            let sample = sample.clone();
            let done = Arc::clone(&done);
            let records: HashMap<usize, String> = sample
                .iter()
                .map(|&i| (i, records[i].access_token().secret().to_owned()))
                .collect();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut k = r;
                while !done.load(Ordering::Relaxed) {
                    let i = sample[k % sample.len()];
                    k += 1;
                    let asked = Instant::now();
                    let token = service.access_token(&grant(i)).await;
                    latencies.push(asked.elapsed());
                    let token = token.unwrap_or_else(|e| panic!("{}: {e}", grant(i)));
                    assert_eq!(token.secret(), records[&i], "{}", grant(i));
                    // An app's pace, not a spin that takes a core.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                latencies
            })
        })
        .collect();
    // Refreshes, one grant after another: each token reported rejected.
    let refresher = {
        let service = service.clone();
        let refreshed = refreshed.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut current: HashMap<usize, AccessToken> = HashMap::new();
            let mut count = 0usize;
            let mut k = 0;
            while !done.load(Ordering::Relaxed) {
                let i = refreshed[k % refreshed.len()];
                k += 1;
                let g = grant(i);
                let held = match current.get(&i) {
                    Some(token) => token.clone(),
                    None => service.access_token(&g).await.unwrap(),
                };
                let fresh = service.token_after_401(&g, &held).await.unwrap();
                assert_ne!(fresh.secret(), held.secret(), "{g} was refreshed");
                current.insert(i, fresh);
                count += 1;
            }
            (current, count)
        })
    };

    // The reseal, on the store the service uses.
    let resealing = Instant::now();
    let report = db.reseal(&store).await;
    let reseal_took = resealing.elapsed();
    done.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for reader in readers {
        latencies.extend(reader.await.unwrap());
    }
    let (current, refreshes) = refresher.await.unwrap();
    service.shutdown().await;

    assert!(report.unreadable.is_empty(), "{report:?}");
    assert_eq!(report.resealed + report.current + report.changed, n);
    assert!(report.resealed >= n - REFRESHED * 4, "{report:?}");
    assert!(refreshes >= REFRESHED, "refreshes went on ({refreshes})");
    let answers = latencies.len();
    assert!(answers >= 100, "callers were answered ({answers})");
    let p50 = quantile(&mut latencies, 0.50);
    let p99 = quantile(&mut latencies, 0.99);
    let max = *latencies.last().unwrap();

    // Every row is there, sealed under B, and opens with B alone.
    let rows = db.rows().await;
    assert_eq!(rows.len(), n, "no record lost");
    let ring_b = keys(&["B"]);
    for (k, (g, version, text)) in rows.iter().enumerate() {
        assert!(text.starts_with("hoopai-sealed:1:B:"), "{g} is not under B");
        assert_eq!(g, &grant(k));
        let i = k;
        if refreshed.contains(&i) || i % 97 == 0 {
            let record = ring_b
                .open_record(g, u64::try_from(*version).unwrap(), text)
                .unwrap();
            match current.get(&i) {
                // Its latest tokens: the refresh token the fake takes.
                Some(token) => {
                    assert_eq!(record.access_token().secret(), token.secret(), "{g}");
                    let live = record.refresh_token().unwrap().secret().to_owned();
                    assert!(server.fake().is_live_refresh_token(&live), "{g}");
                }
                None if refreshed.contains(&i) => panic!("{g} was never refreshed"),
                None => assert_eq!(record, records[i], "{g}"),
            }
        }
    }
    assert_eq!(server.fake().stats().spent_refresh_token_reuses, 0);
    eprintln!(
        "{label}: {n} records sealed under A, seeded in {:.1} s, the service restored them in {:.1} s; \
         reseal under B while serving: {:.1} s ({:.0} records/s; {report:?}); \
         {answers} access_token answers during it, p50 {p50:?}, p99 {p99:?}, max {max:?}; \
         {refreshes} refreshes against the fake; total {:.1} s",
        seeded.as_secs_f64(),
        (started - seeded).as_secs_f64(),
        reseal_took.as_secs_f64(),
        n as f64 / reseal_took.as_secs_f64(),
        began.elapsed().as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reseal_of_a_large_store_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grants.sqlite3");
    reseal_while_serving(Sqlite { _dir: dir, path }, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reseal_of_a_large_store_while_serving() {
    let Some(config) = pg::config("postgres_reseal_of_a_large_store_while_serving") else {
        return;
    };
    let scoped = pg::fresh_schema(&config).await;
    reseal_while_serving(Postgres { scoped }, "postgres").await;
}
