//! Restoring 100,000 grants at start-up, from SQLite and from Postgres.
//!
//! Each record holds 1 KiB JWT-sized access and refresh tokens, as real
//! HighLevel tokens are. Two figures per store:
//! - `load_all`: every page read and decoded (`GrantStore::load_page`);
//! - `start`: `TokenService::start`, i.e. the above plus every record
//!   restored into the engine, until the service answers.
//!
//! Run: `cargo bench -p hoopai-oauth-service --bench restore`. The Postgres
//! benches use `HOOPAI_TEST_POSTGRES_URL`, or a throwaway server they start
//! when PostgreSQL is installed; without either they are skipped with a
//! notice.

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use hoopai_oauth::{
    AccessToken, Config, EngineSettings, GrantId, GrantRecord, RefreshToken, TokenResponse,
    TokenSet,
};
use hoopai_oauth_service::{
    GrantStore, HttpClient, PostgresStore, ServiceSettings, SqliteStore, TokenService,
    TransportError,
};

const GRANTS: usize = 100_000;

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

/// A JWT-sized token: 1 KiB, unique per grant.
fn token(kind: &str, i: usize) -> String {
    let head = format!("{kind}-{i:08}-");
    let mut s = head.clone();
    s.extend(std::iter::repeat_n('x', 1024 - head.len()));
    s
}

fn record(i: usize) -> (String, String) {
    let grant = format!("loc-{i:08}");
    let mut answer = TokenResponse::new(AccessToken::new(token("access", i)));
    answer.refresh_token = Some(RefreshToken::new(token("refresh", i)));
    answer.expires_in = Some(86_399);
    answer.location_id = Some(grant.clone());
    answer.company_id = Some("company-1".into());
    // Far in the future: nothing is due during the bench.
    let obtained = UNIX_EPOCH + Duration::from_secs(4_000_000_000);
    let mut record = GrantRecord::new(grant.as_str(), TokenSet::new(answer, obtained));
    record.version = 1;
    (grant, serde_json::to_string(&record).unwrap())
}

/// An HTTP client that is never called (nothing is due).
struct Unused;

impl HttpClient for Unused {
    async fn send(
        &self,
        _request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        Err(TransportError::Other("the benchmark sends nothing".into()))
    }
}

fn config() -> Config {
    Config::builder("bench-client", "bench-secret")
        .build()
        .unwrap()
}

async fn load_all<S: GrantStore>(store: &S) -> usize {
    let mut after: Option<GrantId> = None;
    let mut n = 0;
    loop {
        let page = store.load_page(after.as_ref(), 1_000).await.unwrap();
        n += page.records.len();
        match page.next {
            Some(next) => after = Some(next),
            None => return n,
        }
    }
}

async fn start<S: GrantStore>(store: S) -> TokenService {
    let settings = ServiceSettings::new(EngineSettings::default());
    let service = TokenService::start(config(), settings, store, Unused)
        .await
        .unwrap();
    assert_eq!(service.start_report().restored, GRANTS);
    service
}

// ---- SQLite ------------------------------------------------------------------

fn sqlite_file() -> &'static std::path::Path {
    static FILE: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    &FILE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("grants.sqlite3");
            // Create the schema through the store, then fill it in one transaction.
            runtime().block_on(async { SqliteStore::open(&path).await.unwrap() });
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            {
                let mut insert = tx
                    .prepare(
                        "INSERT INTO hoopai_grants (grant_id, version, record) VALUES (?1, 1, ?2)",
                    )
                    .unwrap();
                for i in 0..GRANTS {
                    let (grant, text) = record(i);
                    insert.execute(rusqlite::params![grant, text]).unwrap();
                }
            }
            tx.commit().unwrap();
            (dir, path)
        })
        .1
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn sqlite_load_all(bencher: divan::Bencher) {
    let path = sqlite_file();
    let rt = runtime();
    let store = rt.block_on(SqliteStore::open(path)).unwrap();
    bencher.bench_local(|| assert_eq!(rt.block_on(load_all(&store)), GRANTS));
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn sqlite_start(bencher: divan::Bencher) {
    let path = sqlite_file();
    let rt = runtime();
    bencher.bench_local(|| {
        rt.block_on(async {
            let store = SqliteStore::open(path).await.unwrap();
            start(store).await
        })
    });
}

// ---- Postgres -----------------------------------------------------------------

fn postgres_config() -> Option<&'static tokio_postgres::Config> {
    static CONFIG: OnceLock<Option<tokio_postgres::Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            // `HOOPAI_TEST_POSTGRES_URL`, or a server started for the benches.
            let url = hoopai_test_postgres::database("postgres benches")?;
            let config: tokio_postgres::Config = url.parse().unwrap();
            let mut scoped = config.clone();
            scoped.options("-c search_path=hoopai_bench");
            runtime().block_on(async {
                let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                client
                    .batch_execute(
                        "DROP SCHEMA IF EXISTS hoopai_bench CASCADE; CREATE SCHEMA hoopai_bench",
                    )
                    .await
                    .unwrap();
                drop(
                    PostgresStore::connect_with(scoped.clone(), tokio_postgres::NoTls)
                        .await
                        .unwrap(),
                );
                let (client, conn) = scoped.connect(tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                let insert = client
                    .prepare(
                        "INSERT INTO hoopai_grants (grant_id, version, record)
                         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[])",
                    )
                    .await
                    .unwrap();
                for chunk in (0..GRANTS).collect::<Vec<_>>().chunks(5_000) {
                    let (grants, texts): (Vec<String>, Vec<String>) =
                        chunk.iter().map(|&i| record(i)).unzip();
                    let versions = vec![1i64; grants.len()];
                    client
                        .execute(&insert, &[&grants, &versions, &texts])
                        .await
                        .unwrap();
                }
            });
            Some(scoped)
        })
        .as_ref()
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn postgres_load_all(bencher: divan::Bencher) {
    let Some(config) = postgres_config() else {
        return;
    };
    let rt = runtime();
    let store = rt
        .block_on(PostgresStore::connect_with(
            config.clone(),
            tokio_postgres::NoTls,
        ))
        .unwrap();
    bencher.bench_local(|| assert_eq!(rt.block_on(load_all(&store)), GRANTS));
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn postgres_start(bencher: divan::Bencher) {
    let Some(config) = postgres_config() else {
        return;
    };
    let rt = runtime();
    bencher.bench_local(|| {
        rt.block_on(async {
            let store = PostgresStore::connect_with(config.clone(), tokio_postgres::NoTls)
                .await
                .unwrap();
            start(store).await
        })
    });
}
