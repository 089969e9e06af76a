//! Records sealed at rest, on SQLite and Postgres: no token reaches the
//! file, rotation reads old keys and reseals under the new one, a reseal
//! under concurrent writes loses none of them, records under an unknown
//! key or tampered with are refused with a typed error and reported while
//! the others are restored, and plain rows of earlier versions are read.
//! The Postgres tests use `HOOPAI_TEST_POSTGRES_URL`, or a server started
//! for them when PostgreSQL is installed.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use common::pg;
use hoopai_oauth::WriteOutcome;
use hoopai_oauth::{
    AccessToken, Config, EngineSettings, GrantId, GrantRecord, RefreshToken, TokenResponse,
    TokenSet,
};
use hoopai_oauth_service::{
    GrantStore, HttpClient, Keyring, KeyringError, MemoryStore, PostgresStore, RecordKey,
    ResealReport, SealError, SealErrorKind, ServiceSettings, SqliteOptions, SqliteStore,
    StoreError, TokenService, TransportError,
};

fn key(id: &str, byte: u8) -> RecordKey {
    RecordKey::new(id, [byte; 32]).unwrap()
}

fn ring(ids: &[&str]) -> Keyring {
    Keyring::new(ids.iter().map(|id| {
        let byte = id.as_bytes()[1];
        key(id, byte)
    }))
    .unwrap()
}

/// A record with fresh tokens ending in `tag`, recognisable in raw bytes.
fn record(grant: &str, version: u64, tag: &str) -> GrantRecord {
    let mut token = TokenResponse::new(AccessToken::new(format!(
        "access-placeholder-{grant}-{tag}-0000000000000000"
    )));
    token.refresh_token = Some(RefreshToken::new(format!(
        "refresh-placeholder-{grant}-{tag}-0000000000000000"
    )));
    token.expires_in = Some(86_399);
    let mut record = GrantRecord::new(grant, TokenSet::new(token, SystemTime::now()));
    record.version = version;
    record
}

fn sealed_under(text: &str, key: &str) -> bool {
    text.starts_with(&format!("hoopai-sealed:1:{key}:"))
}

/// The database behind a store, opened with any keyring, and its raw rows.
trait Backend: Sync {
    type Store: GrantStore + Clone;
    /// A store on this database; `seal_writes(false)` with `unsealing`.
    async fn open_with(&self, keys: Option<Keyring>, unsealing: bool) -> Self::Store;
    async fn open(&self, keys: Option<Keyring>) -> Self::Store {
        self.open_with(keys, false).await
    }
    async fn reseal(&self, store: &Self::Store) -> ResealReport;
    async fn raw(&self, grant: &str) -> (i64, String);
    async fn write_raw(&self, grant: &str, version: i64, text: &str);
    /// Every row's grant and text, in grant order.
    async fn raw_all(&self) -> Vec<(String, String)>;
    async fn insert_many(&self, rows: Vec<(String, i64, String)>);
}

struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grants.sqlite3");
        Sqlite { _dir: dir, path }
    }

    fn conn(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn
    }
}

impl Backend for Sqlite {
    type Store = SqliteStore;

    async fn open_with(&self, keys: Option<Keyring>, unsealing: bool) -> SqliteStore {
        let mut options = SqliteOptions::default()
            .synchronous_full(false)
            .seal_writes(!unsealing);
        if let Some(keys) = keys {
            options = options.keys(keys);
        }
        SqliteStore::open_with(&self.path, options).await.unwrap()
    }

    async fn reseal(&self, store: &SqliteStore) -> ResealReport {
        store.reseal().await.unwrap()
    }

    async fn raw(&self, grant: &str) -> (i64, String) {
        self.conn()
            .query_row(
                "SELECT version, record FROM hoopai_grants WHERE grant_id = ?1",
                [grant],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    async fn write_raw(&self, grant: &str, version: i64, text: &str) {
        self.conn()
            .execute(
                "INSERT INTO hoopai_grants (grant_id, version, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (grant_id) DO UPDATE SET version = ?2, record = ?3",
                rusqlite::params![grant, version, text],
            )
            .unwrap();
    }

    async fn raw_all(&self) -> Vec<(String, String)> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT grant_id, record FROM hoopai_grants ORDER BY grant_id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    async fn insert_many(&self, rows: Vec<(String, i64, String)>) {
        let mut conn = self.conn();
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
}

struct Postgres {
    scoped: tokio_postgres::Config,
}

impl Postgres {
    async fn new(test: &str) -> Option<Self> {
        let config = pg::config(test)?;
        let scoped = pg::fresh_schema(&config).await;
        Some(Postgres { scoped })
    }
}

impl Backend for Postgres {
    type Store = PostgresStore;

    async fn open_with(&self, keys: Option<Keyring>, unsealing: bool) -> PostgresStore {
        let store = PostgresStore::connect_with(self.scoped.clone(), tokio_postgres::NoTls)
            .await
            .unwrap();
        match keys {
            Some(keys) => store.with_keys(keys).seal_writes(!unsealing),
            None => store,
        }
    }

    async fn reseal(&self, store: &PostgresStore) -> ResealReport {
        store.reseal().await.unwrap()
    }

    async fn raw(&self, grant: &str) -> (i64, String) {
        let row = pg::client(&self.scoped)
            .await
            .query_one(
                "SELECT version, record FROM hoopai_grants WHERE grant_id = $1",
                &[&grant],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    async fn write_raw(&self, grant: &str, version: i64, text: &str) {
        pg::client(&self.scoped)
            .await
            .execute(
                "INSERT INTO hoopai_grants (grant_id, version, record) VALUES ($1, $2, $3)
                 ON CONFLICT (grant_id) DO UPDATE SET version = $2, record = $3",
                &[&grant, &version, &text],
            )
            .await
            .unwrap();
    }

    async fn raw_all(&self) -> Vec<(String, String)> {
        pg::client(&self.scoped)
            .await
            .query(
                "SELECT grant_id, record FROM hoopai_grants ORDER BY grant_id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    async fn insert_many(&self, rows: Vec<(String, i64, String)>) {
        let client = pg::client(&self.scoped).await;
        for chunk in rows.chunks(5_000) {
            let grants: Vec<&str> = chunk.iter().map(|r| r.0.as_str()).collect();
            let versions: Vec<i64> = chunk.iter().map(|r| r.1).collect();
            let texts: Vec<&str> = chunk.iter().map(|r| r.2.as_str()).collect();
            client
                .execute(
                    "INSERT INTO hoopai_grants (grant_id, version, record)
                     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[])",
                    &[&grants, &versions, &texts],
                )
                .await
                .unwrap();
        }
    }
}

/// Every record of every page, and every reported row (grant → reason).
async fn load_all<S: GrantStore>(store: &S) -> (Vec<GrantRecord>, BTreeMap<String, String>) {
    let mut records = Vec::new();
    let mut corrupt = BTreeMap::new();
    let mut after: Option<GrantId> = None;
    loop {
        let page = store.load_page(after.as_ref(), 7).await.unwrap();
        records.extend(page.records);
        for c in page.corrupt {
            corrupt.insert(c.grant.to_string(), c.reason);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return (records, corrupt),
        }
    }
}

fn sealed_error(result: Result<Option<GrantRecord>, StoreError>) -> SealError {
    match result {
        Err(StoreError::Sealed(e)) => e,
        other => panic!("expected a seal error, got {other:?}"),
    }
}

// ---- rotation -------------------------------------------------------------

async fn rotation<B: Backend>(db: B) {
    let s1 = db.open(Some(ring(&["k1"]))).await;
    let mut expected = Vec::new();
    for i in 0..30 {
        let g = format!("loc-{i:02}");
        let v1 = record(&g, 1, "one");
        assert_eq!(
            s1.compare_and_swap(&v1, None).await.unwrap(),
            WriteOutcome::Written
        );
        if i < 10 {
            let v2 = record(&g, 2, "two");
            assert_eq!(
                s1.compare_and_swap(&v2, Some(1)).await.unwrap(),
                WriteOutcome::Written
            );
            expected.push(v2);
        } else {
            expected.push(v1);
        }
    }
    for (grant, text) in db.raw_all().await {
        assert!(sealed_under(&text, "k1"), "{grant}: {text}");
        assert!(!text.contains("placeholder"), "{grant}: a token in clear");
    }
    // k2 in front: the k1 records still read; new writes are sealed under k2.
    let s21 = db.open(Some(ring(&["k2", "k1"]))).await;
    assert_eq!(load_all(&s21).await, (expected.clone(), BTreeMap::new()));
    let v2 = record("loc-10", 2, "two");
    assert_eq!(
        s21.compare_and_swap(&v2, Some(1)).await.unwrap(),
        WriteOutcome::Written
    );
    expected[10] = v2;
    assert!(sealed_under(&db.raw("loc-10").await.1, "k2"));
    assert!(sealed_under(&db.raw("loc-11").await.1, "k1"));
    // Reseal: every other row goes to k2, versions unchanged.
    let report = db.reseal(&s21).await;
    assert_eq!(
        (report.resealed, report.current, report.changed),
        (29, 1, 0),
        "{report:?}"
    );
    assert!(report.unreadable.is_empty());
    for (grant, text) in db.raw_all().await {
        assert!(sealed_under(&text, "k2"), "{grant}: {text}");
    }
    assert_eq!(db.raw("loc-03").await.0, 2);
    let again = db.reseal(&s21).await;
    assert_eq!((again.resealed, again.current), (0, 30));
    // k1 can go now; a store holding only k1 can read none of them.
    let s2 = db.open(Some(ring(&["k2"]))).await;
    assert_eq!(load_all(&s2).await, (expected, BTreeMap::new()));
    let (records, corrupt) = load_all(&db.open(Some(ring(&["k1"]))).await).await;
    assert!(records.is_empty());
    assert_eq!(corrupt.len(), 30);
    assert!(
        corrupt.values().all(|r| r.contains("key k2")),
        "{corrupt:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rotation() {
    rotation(Sqlite::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotation() {
    if let Some(db) = Postgres::new("postgres_rotation").await {
        rotation(db).await;
    }
}

// ---- unknown keys and tampering -------------------------------------------

/// An HTTP client that is never called: every token is fresh.
struct Unused;

impl HttpClient for Unused {
    async fn send(
        &self,
        _request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        Err(TransportError::Other("this test sends nothing".into()))
    }
}

async fn unopenable_rows<B: Backend>(db: B) {
    let s1 = db.open(Some(ring(&["k1"]))).await;
    for g in ["loc-a", "loc-b", "loc-c", "loc-d", "loc-f", "loc-g"] {
        s1.put(&record(g, 1, "x")).await.unwrap();
    }
    db.open(Some(ring(&["k9"])))
        .await
        .put(&record("loc-e", 1, "x"))
        .await
        .unwrap();
    // loc-b: one character of the body changed.
    let b = db.raw("loc-b").await.1;
    let at = b.len() - 12;
    let c = if &b[at..=at] == "A" { "B" } else { "A" };
    db.write_raw("loc-b", 1, &format!("{}{c}{}", &b[..at], &b[at + 1..]))
        .await;
    // loc-d: loc-c's sealed record moved onto it.
    db.write_raw("loc-d", 1, &db.raw("loc-c").await.1).await;
    // loc-a: its version column changed.
    db.write_raw("loc-a", 4, &db.raw("loc-a").await.1).await;

    let e = sealed_error(s1.load(&GrantId::new("loc-e")).await);
    assert_eq!(
        (e.grant.as_str(), e.key_id.as_deref(), e.kind),
        ("loc-e", Some("k9"), SealErrorKind::UnknownKey)
    );
    let shown = StoreError::Sealed(e).to_string();
    assert!(
        shown.contains("loc-e") && shown.contains("key k9"),
        "{shown}"
    );
    for g in ["loc-a", "loc-b", "loc-d"] {
        let e = sealed_error(s1.load(&GrantId::new(g)).await);
        assert_eq!(
            (e.grant.as_str(), e.key_id.as_deref(), e.kind),
            (g, Some("k1"), SealErrorKind::Tampered)
        );
    }
    let (records, corrupt) = load_all(&s1).await;
    let restored: Vec<&str> = records.iter().map(|r| r.grant.as_str()).collect();
    assert_eq!(restored, ["loc-c", "loc-f", "loc-g"]);
    assert_eq!(
        corrupt.keys().map(String::as_str).collect::<Vec<_>>(),
        ["loc-a", "loc-b", "loc-d", "loc-e"]
    );
    assert!(corrupt["loc-e"].contains("key k9"), "{corrupt:?}");
    assert!(corrupt["loc-b"].contains("key k1"), "{corrupt:?}");

    // Never silently replaced: a create or a stale compare-and-swap is
    // refused with the typed error, and the row stays as it was.
    let before = db.raw_all().await;
    for replaces in [None, Some(7)] {
        let attempt = s1
            .compare_and_swap(&record("loc-e", 8, "new"), replaces)
            .await;
        assert!(
            matches!(&attempt, Err(StoreError::Sealed(e)) if e.kind == SealErrorKind::UnknownKey),
            "{attempt:?}"
        );
    }
    let report = db.reseal(&s1).await;
    assert_eq!(report.unreadable.len(), 4, "{report:?}");
    assert_eq!(db.raw_all().await, before, "nothing rewritten");

    // The service serves the others and reports the four.
    let config = Config::builder("test-client", "test-secret")
        .build()
        .unwrap();
    let settings = ServiceSettings::new(EngineSettings::default()).page_size(2);
    let service = TokenService::start(config, settings, s1, Unused)
        .await
        .unwrap();
    let report = service.start_report();
    assert_eq!(report.restored, 3);
    let mut reported: Vec<&str> = report.corrupt.iter().map(|c| c.grant.as_str()).collect();
    reported.sort_unstable();
    assert_eq!(reported, ["loc-a", "loc-b", "loc-d", "loc-e"]);
    let token = service.access_token("loc-f").await.unwrap();
    assert!(token.secret().starts_with("access-placeholder-loc-f-x"));
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unknown_keys_and_tampered_records() {
    unopenable_rows(Sqlite::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unknown_keys_and_tampered_records() {
    if let Some(db) = Postgres::new("postgres_unknown_keys_and_tampered_records").await {
        unopenable_rows(db).await;
    }
}

// ---- plain rows of earlier versions ---------------------------------------

async fn legacy_plain_rows<B: Backend>(db: B) {
    let plain = db.open(None).await;
    let mut expected: Vec<GrantRecord> = (0..20)
        .map(|i| record(&format!("loc-{i:02}"), 3, "old"))
        .collect();
    for r in &expected {
        plain.put(r).await.unwrap();
    }
    assert!(db.raw("loc-00").await.1.starts_with('{'));
    let sealed = db.open(Some(ring(&["k1"]))).await;
    assert_eq!(load_all(&sealed).await, (expected.clone(), BTreeMap::new()));
    // The next write of a record seals it.
    expected[5] = record("loc-05", 4, "new");
    assert_eq!(
        sealed
            .compare_and_swap(&expected[5], Some(3))
            .await
            .unwrap(),
        WriteOutcome::Written
    );
    expected[6] = record("loc-06", 4, "new");
    sealed.put(&expected[6]).await.unwrap();
    assert!(sealed_under(&db.raw("loc-05").await.1, "k1"));
    assert!(sealed_under(&db.raw("loc-06").await.1, "k1"));
    assert!(db.raw("loc-07").await.1.starts_with('{'));
    // Reseal seals the rest.
    let report = db.reseal(&sealed).await;
    assert_eq!((report.resealed, report.current), (18, 2), "{report:?}");
    for (grant, text) in db.raw_all().await {
        assert!(sealed_under(&text, "k1"), "{grant}");
        assert!(!text.contains("placeholder"), "{grant}");
    }
    assert_eq!(load_all(&sealed).await, (expected.clone(), BTreeMap::new()));
    // And back: writes kept plain, a reseal unseals every row, and a store
    // without keys (an earlier build) reads them all.
    let unsealing = db.open_with(Some(ring(&["k1"])), true).await;
    let report = db.reseal(&unsealing).await;
    assert_eq!((report.resealed, report.current), (20, 0), "{report:?}");
    assert!(db.raw_all().await.iter().all(|(_, t)| t.starts_with('{')));
    assert_eq!(load_all(&plain).await, (expected, BTreeMap::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_legacy_plain_rows() {
    legacy_plain_rows(Sqlite::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_legacy_plain_rows() {
    if let Some(db) = Postgres::new("postgres_legacy_plain_rows").await {
        legacy_plain_rows(db).await;
    }
}

// ---- reseal while another task writes -------------------------------------

/// `n` records, one in fifty sealed under k1 and the others plain (as an
/// earlier version wrote them), are resealed under k2 while another task
/// keeps updating random grants with compare-and-swap: every one of its
/// writes survives, none of them sees a conflict, and every row ends under
/// k2 holding its newest record.
async fn reseal_under_writes<B: Backend>(db: B, n: usize)
where
    B::Store: 'static,
{
    let started = std::time::Instant::now();
    // One record's JSON, its grant id replaced per row: quick in a debug build.
    let template = serde_json::to_string(&record("loc-000000", 1, "start")).unwrap();
    let json = |g: &str| template.replace("loc-000000", g);
    let sealer = MemoryStore::with_keys(ring(&["k1"]));
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let g = format!("loc-{i:06}");
        let text = if i % 50 == 0 {
            sealer
                .put(&serde_json::from_str(&json(&g)).unwrap())
                .await
                .unwrap();
            sealer.raw(&g).unwrap().1
        } else {
            json(&g)
        };
        rows.push((g, 1, text));
    }
    drop(sealer);
    let store = db.open(Some(ring(&["k2", "k1"]))).await;
    db.insert_many(rows).await;

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = store.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut written: HashMap<String, GrantRecord> = HashMap::new();
            let mut state = 0x9E37_79B9_7F4A_7C15_u64;
            let mut writes = 0usize;
            while !done.load(Ordering::Relaxed) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let g = format!("loc-{:06}", state % n as u64);
                let current = store.load(&GrantId::new(&g)).await.unwrap().unwrap();
                let next = record(&g, current.version + 1, &format!("w{writes}"));
                match store
                    .compare_and_swap(&next, Some(current.version))
                    .await
                    .unwrap()
                {
                    WriteOutcome::Written => {
                        written.insert(g, next);
                        writes += 1;
                    }
                    other => panic!("{g}: a reseal must never conflict with a write: {other:?}"),
                }
                // Leave the reseal most of the two cores.
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            (written, writes)
        })
    };
    let report = db.reseal(&store).await;
    done.store(true, Ordering::Relaxed);
    let (written, writes) = writer.await.unwrap();
    eprintln!(
        "reseal of {n} rows with {writes} concurrent writes, {:?}: {report:?}",
        started.elapsed()
    );
    assert!(
        writes >= 20,
        "the writer ran during the reseal ({writes} writes)"
    );
    assert!(report.unreadable.is_empty());
    assert_eq!(report.resealed + report.current + report.changed, n);
    assert!(report.resealed > n / 2, "{report:?}");
    // Every row is under k2.
    let raw = db.raw_all().await;
    assert_eq!(raw.len(), n);
    for (grant, text) in &raw {
        assert!(sealed_under(text, "k2"), "{grant}");
    }
    // Every write of the writer is there, and one row in a hundred of the
    // others (opening every row takes a while in a debug build).
    let reader = db.open(Some(ring(&["k2"]))).await;
    let mut checked = 0;
    for i in 0..n {
        let g = format!("loc-{i:06}");
        let expected = match written.get(&g) {
            Some(record) => record.clone(),
            None if i % 100 == 37 || i % 50 == 0 => serde_json::from_str(&json(&g)).unwrap(),
            None => continue,
        };
        let stored = reader.load(&GrantId::new(&g)).await.unwrap().unwrap();
        assert_eq!(stored, expected, "{g}");
        checked += 1;
    }
    assert!(checked >= written.len() + n / 100);
    eprintln!("checked {checked} rows at {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reseal_of_100_000_records_loses_no_concurrent_write() {
    reseal_under_writes(Sqlite::new(), 100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reseal_of_100_000_records_loses_no_concurrent_write() {
    if let Some(db) =
        Postgres::new("postgres_reseal_of_100_000_records_loses_no_concurrent_write").await
    {
        reseal_under_writes(db, 100_000).await;
    }
}

// ---- the SQLite file ------------------------------------------------------

/// The bytes of the database file and its WAL.
fn file_bytes(db: &Sqlite) -> Vec<u8> {
    let mut bytes = std::fs::read(&db.path).unwrap();
    let wal = db.path.with_file_name("grants.sqlite3-wal");
    bytes.extend(std::fs::read(wal).unwrap_or_default());
    bytes
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn write_some<S: GrantStore>(store: &S) -> Vec<GrantRecord> {
    let mut records = Vec::new();
    for i in 0..40 {
        let g = format!("loc-{i:02}");
        let v1 = record(&g, 1, "one");
        store.compare_and_swap(&v1, None).await.unwrap();
        let v2 = record(&g, 2, "two");
        store.compare_and_swap(&v2, Some(1)).await.unwrap();
        records.push(v1);
        records.push(v2);
    }
    records
}

fn tokens(records: &[GrantRecord]) -> Vec<String> {
    records
        .iter()
        .flat_map(|r| {
            [
                r.access_token().secret().to_owned(),
                r.refresh_token().unwrap().secret().to_owned(),
            ]
        })
        .collect()
}

#[tokio::test]
async fn sqlite_sealed_file_and_wal_hold_no_token_bytes() {
    // Control: without keys the tokens are in the file (the search works).
    let plain = Sqlite::new();
    let store = plain.open(None).await;
    let written = write_some(&store).await;
    let bytes = file_bytes(&plain);
    assert!(tokens(&written[78..]).iter().all(|t| holds(&bytes, t)));

    let sealed = Sqlite::new();
    let store = sealed.open(Some(ring(&["k1"]))).await;
    let written = write_some(&store).await;
    assert!(sealed.path.with_file_name("grants.sqlite3-wal").exists());
    let bytes = file_bytes(&sealed);
    for token in tokens(&written) {
        assert!(!holds(&bytes, &token), "{token} is in the file");
    }
    assert!(!holds(&bytes, "placeholder"));
    // Grant ids stay in clear: they are the key.
    assert!(holds(&bytes, "loc-39"));
    drop(store);
}

/// Plain rows of an earlier version, resealed: neither the file (deleted
/// content is zeroed) nor the WAL (truncated) keeps their tokens.
#[tokio::test]
async fn sqlite_reseal_of_plain_rows_leaves_no_token_bytes() {
    let db = Sqlite::new();
    let plain = db.open(None).await;
    let written = write_some(&plain).await;
    assert!(holds(&file_bytes(&db), "refresh-placeholder-loc-00-two"));
    let sealed = db.open(Some(ring(&["k1"]))).await;
    let report = sealed.reseal().await.unwrap();
    assert_eq!(report.resealed, 40);
    let bytes = file_bytes(&db);
    for token in tokens(&written) {
        assert!(!holds(&bytes, &token), "{token} is left in the file");
    }
    assert!(!holds(&bytes, "placeholder"));
    drop((plain, sealed));
}

// ---- keys from the environment --------------------------------------------

#[test]
fn keyring_from_an_unset_variable_is_a_typed_error() {
    let var = "HOOPAI_TEST_RECORD_KEYS_NEVER_SET";
    assert_eq!(
        Keyring::from_env_var(var).unwrap_err(),
        KeyringError::Unset { var: var.into() }
    );
    let ring: Keyring = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=,k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"
        .parse()
        .unwrap();
    assert_eq!(ring.ids().collect::<Vec<_>>(), ["k2", "k1"]);
    assert_eq!(format!("{ring:?}"), r#"Keyring { keys: ["k2", "k1"] }"#);
}
