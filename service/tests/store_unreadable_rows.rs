//! One unreadable row never stops a restore: rows whose key, version or
//! record the store cannot read as a grant record (written by hand, by a
//! tool, by a bug) are each reported once, naming what can be named, and
//! every other grant is restored, on SQLite and on Postgres, through
//! `load_page` and through `TokenService::start`.

mod common;

use std::collections::BTreeMap;
use std::time::SystemTime;

use common::pg;
use hoopai_oauth::{
    AccessToken, Config, EngineSettings, GrantId, GrantRecord, RefreshToken, TokenResponse,
    TokenSet,
};
use hoopai_oauth_service::{
    GrantStore, HttpClient, PostgresStore, ServiceSettings, SqliteOptions, SqliteStore, StoreError,
    TokenService, TransportError,
};

/// A record whose tokens are fresh (nothing is due while a test runs).
fn fresh(grant: &str, version: u64) -> GrantRecord {
    let mut token = TokenResponse::new(AccessToken::new(format!(
        "access-placeholder-{grant}-0000000000000000"
    )));
    token.refresh_token = Some(RefreshToken::new(format!(
        "refresh-placeholder-{grant}-0000000000000000"
    )));
    token.expires_in = Some(86_399);
    let mut record = GrantRecord::new(grant, TokenSet::new(token, SystemTime::now()));
    record.version = version;
    record
}

fn json(grant: &str) -> String {
    serde_json::to_string(&fresh(grant, 1)).unwrap()
}

/// Every page, `limit` rows at a time: the grants restored and the rows
/// reported (grant → reason). Fails on a grant seen twice or a page loop.
async fn load_all<S: GrantStore>(
    store: &S,
    limit: usize,
) -> (Vec<String>, BTreeMap<String, String>) {
    let mut records = Vec::new();
    let mut corrupt = BTreeMap::new();
    let mut after: Option<GrantId> = None;
    for _ in 0..10_000 {
        let page = store.load_page(after.as_ref(), limit).await.unwrap();
        for r in page.records {
            assert!(!records.contains(&r.grant.to_string()), "{} twice", r.grant);
            records.push(r.grant.to_string());
        }
        for c in page.corrupt {
            let shown = c.to_string();
            assert!(!shown.contains("placeholder-"), "a token in {shown}");
            let old = corrupt.insert(c.grant.to_string(), c.reason.clone());
            assert!(old.is_none(), "{} reported twice", c.grant);
        }
        match page.next {
            Some(next) => {
                assert_ne!(after.as_ref(), Some(&next), "the cursor did not move");
                after = Some(next);
            }
            None => return (records, corrupt),
        }
    }
    panic!("no last page after 10,000 pages");
}

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

async fn start<S: GrantStore>(store: S) -> TokenService {
    let config = Config::builder("test-client", "test-secret")
        .build()
        .unwrap();
    let settings = ServiceSettings::new(EngineSettings::default()).page_size(2);
    TokenService::start(config, settings, store, Unused)
        .await
        .expect("one unreadable row never stops the start")
}

fn expect_reasons(corrupt: &BTreeMap<String, String>, expected: &[(&str, &str)]) {
    let names: Vec<&str> = corrupt.keys().map(String::as_str).collect();
    let mut wanted: Vec<&str> = expected.iter().map(|e| e.0).collect();
    wanted.sort_unstable();
    assert_eq!(names, wanted);
    for (grant, why) in expected {
        let reason = &corrupt[*grant];
        assert!(reason.contains(why), "{grant}: {reason}");
    }
}

// ---- SQLite ---------------------------------------------------------------

/// A store with five good grants and every kind of bad row SQLite's loose
/// typing allows, written through a second connection.
async fn sqlite_with_bad_rows(dir: &tempfile::TempDir) -> SqliteStore {
    let path = dir.path().join("grants.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    for g in ["loc-a", "loc-b", "loc-c", "loc-d", "loc-e"] {
        store.put(&fresh(g, 1)).await.unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let truncated = &json("loc-trunc")[..100];
    let long = format!("refresh-{}", "z".repeat(300));
    conn.execute_batch(&format!(
        "INSERT INTO hoopai_grants (grant_id, version, record) VALUES
           (X'6c6f632d626c6f62', 1, '{blob}'),
           (CAST(X'6c6f632d62ff' AS TEXT), 1, '{utf8}'),
           (42, 1, '{int}'),
           ('loc-trunc', 1, '{truncated}'),
           ('loc-blob-record', 1, X'7b7d'),
           ('loc-bad-record', 1, CAST(X'7bff7d' AS TEXT)),
           ('loc-text-version', 'one', '{tv}'),
           ('{long}', 1, '{long_json}');",
        blob = json("loc-blob"),
        utf8 = json("loc-b\u{fffd}"),
        int = json("loc-int"),
        tv = json("loc-text-version"),
        long_json = json(&long),
    ))
    .unwrap();
    store
}

const SQLITE_BAD: &[(&str, &str)] = &[
    ("loc-blob", "the grant id is a BLOB, not text"),
    ("loc-b\u{fffd}", "the grant id is not UTF-8 text"),
    // TEXT affinity stores the integer as text: read, but not its record.
    ("42", "the record names grant"),
    ("loc-trunc", "not a grant record"),
    ("loc-blob-record", "the record column is a BLOB, not text"),
    ("loc-bad-record", "the record column is not UTF-8 text"),
    ("loc-text-version", "the version column is not an integer"),
    (
        "refresh-zzzzzzzz…(308 bytes)",
        "308 bytes, longer than the 256",
    ),
];

#[tokio::test]
async fn sqlite_bad_rows_are_reported_and_the_rest_restored() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_with_bad_rows(&dir).await;
    for limit in [1, 2, 3, 7, 1_000] {
        let (records, corrupt) = load_all(&store, limit).await;
        assert_eq!(
            records,
            ["loc-a", "loc-b", "loc-c", "loc-d", "loc-e"],
            "limit {limit}"
        );
        expect_reasons(&corrupt, SQLITE_BAD);
    }
    // `load` of a bad row is a typed error, not a database failure.
    for grant in [
        "loc-trunc",
        "loc-blob-record",
        "loc-bad-record",
        "loc-text-version",
    ] {
        match store.load(&GrantId::new(grant)).await {
            Err(StoreError::Corrupt(c)) => assert_eq!(c.grant.as_str(), grant),
            other => panic!("{grant}: expected Corrupt, got {other:?}"),
        }
    }
    // A write that loses to one says so, and leaves it.
    let mut r = fresh("loc-bad-record", 3);
    r.version = 3;
    assert!(matches!(
        store.compare_and_swap(&r, Some(2)).await,
        Err(StoreError::Corrupt(_))
    ));
    // The service starts, serves the good grants, and reports every bad row.
    let service = start(store).await;
    let report = service.start_report();
    assert_eq!(report.restored, 5);
    let reported: BTreeMap<String, String> = report
        .corrupt
        .iter()
        .map(|c| (c.grant.to_string(), c.reason.clone()))
        .collect();
    expect_reasons(&reported, SQLITE_BAD);
    let token = service.access_token("loc-c").await.unwrap();
    assert!(token.secret().starts_with("access-placeholder-loc-c-"));
    service.shutdown().await;
}

/// Runs of unreadable keys at the start, in the middle and at the end of
/// the key order (SQLite sorts BLOBs after all text) with every page size:
/// no page ends on one, none is skipped or read twice, and paging ends.
#[tokio::test]
async fn sqlite_pages_never_end_on_an_unreadable_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grants.sqlite3");
    let store = SqliteStore::open_with(&path, SqliteOptions::default().synchronous_full(false))
        .await
        .unwrap();
    let mut good = Vec::new();
    for i in 0..12 {
        let g = format!("loc-{i:02}");
        store.put(&fresh(&g, 1)).await.unwrap();
        good.push(g);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut bad = Vec::new();
    for i in 0..5 {
        // Non-UTF-8 text right after a good key, before the next one.
        conn.execute(
            "INSERT INTO hoopai_grants (grant_id, version, record)
             VALUES (CAST(?1 || X'ff' AS TEXT), 1, '{}')",
            [format!("loc-{:02}", i * 2)],
        )
        .unwrap();
        bad.push(format!("loc-{:02}\u{fffd}", i * 2));
        // Non-UTF-8 text sorting before every good key.
        conn.execute(
            "INSERT INTO hoopai_grants (grant_id, version, record)
             VALUES (CAST(X'01' || ?1 || X'ff' AS TEXT), 1, '{}')",
            [format!("a-{i}")],
        )
        .unwrap();
        bad.push(format!("\\u{{1}}a-{i}\u{fffd}"));
        // BLOBs sort after all text.
        conn.execute(
            "INSERT INTO hoopai_grants (grant_id, version, record) VALUES (?1, 1, '{}')",
            [format!("zz-blob-{i}").into_bytes()],
        )
        .unwrap();
        bad.push(format!("zz-blob-{i}"));
    }
    bad.sort();
    for limit in 1..=8 {
        let (records, corrupt) = load_all(&store, limit).await;
        assert_eq!(records, good, "limit {limit}");
        let reported: Vec<String> = corrupt.keys().cloned().collect();
        assert_eq!(reported, bad, "limit {limit}");
    }
}

// ---- Postgres -------------------------------------------------------------

#[tokio::test]
async fn postgres_bad_rows_are_reported_and_the_rest_restored() {
    let Some(config) = pg::config("postgres_bad_rows_are_reported_and_the_rest_restored") else {
        return;
    };
    let (store, scoped) = pg::store(&config).await;
    for g in ["loc-a", "loc-b", "loc-c"] {
        store.put(&fresh(g, 1)).await.unwrap();
    }
    let raw = pg::client(&scoped).await;
    let long = format!("refresh-{}", "z".repeat(300));
    // Postgres types its columns: no BLOB key, no text version, no NUL.
    raw.execute(
        "INSERT INTO hoopai_grants (grant_id, version, record) VALUES
           (42, 1, $1), ('loc-trunc', 1, $2), ($3, 1, $4), ('loc-schema', 1, $5)",
        &[
            &json("loc-int"),
            &&json("loc-trunc")[..100],
            &long,
            &json(&long),
            &json("loc-schema").replace("\"schema\":1", "\"schema\":9"),
        ],
    )
    .await
    .unwrap();
    let expected: &[(&str, &str)] = &[
        ("42", "the record names grant"),
        ("loc-trunc", "not a grant record"),
        (
            "refresh-zzzzzzzz…(308 bytes)",
            "308 bytes, longer than the 256",
        ),
        ("loc-schema", "schema 9"),
    ];
    for limit in [1, 2, 1_000] {
        let (records, corrupt) = load_all(&store, limit).await;
        assert_eq!(records, ["loc-a", "loc-b", "loc-c"], "limit {limit}");
        expect_reasons(&corrupt, expected);
    }
    let service = start(store).await;
    assert_eq!(service.start_report().restored, 3);
    assert_eq!(service.start_report().corrupt.len(), expected.len());
    service.shutdown().await;
}

/// A `SQL_ASCII` database takes any bytes as text. A key or record that is
/// not UTF-8 there would fail the whole query of a UTF-8 client; the store
/// reads bytes, and reports such rows like any other bad row.
#[tokio::test]
async fn postgres_sql_ascii_rows_that_are_not_utf8_are_reported() {
    let Some(config) = pg::config("postgres_sql_ascii_rows_that_are_not_utf8_are_reported") else {
        return;
    };
    let name = format!("hoopai_ascii_{}", std::process::id());
    let admin = pg::client(&config).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0
                 LC_COLLATE 'C' LC_CTYPE 'C'"
        ))
        .await
        .unwrap();
    let mut ascii = config.clone();
    ascii.dbname(&name);
    let store = PostgresStore::connect_with(ascii.clone(), tokio_postgres::NoTls)
        .await
        .unwrap();
    for g in ["loc-a", "loc-b", "loc-c", "loc-d"] {
        store.put(&fresh(g, 1)).await.unwrap();
    }
    let raw = pg::client(&ascii).await;
    raw.batch_execute(&format!(
        "INSERT INTO hoopai_grants (grant_id, version, record) VALUES
           (E'loc-a\\xff', 1, '{a}'),
           (E'loc-b\\xfe\\xff', 1, '{b}'),
           ('loc-bad-record', 1, E'{{\\xff}}')",
        a = json("loc-a-x"),
        b = json("loc-b-x"),
    ))
    .await
    .unwrap();
    let expected: &[(&str, &str)] = &[
        ("loc-a\u{fffd}", "the grant id is not UTF-8 text"),
        ("loc-b\u{fffd}\u{fffd}", "the grant id is not UTF-8 text"),
        ("loc-bad-record", "the record column is not UTF-8 text"),
    ];
    for limit in [1, 2, 3, 1_000] {
        let (records, corrupt) = load_all(&store, limit).await;
        assert_eq!(
            records,
            ["loc-a", "loc-b", "loc-c", "loc-d"],
            "limit {limit}"
        );
        expect_reasons(&corrupt, expected);
    }
    match store.load(&GrantId::new("loc-bad-record")).await {
        Err(StoreError::Corrupt(c)) => assert!(c.reason.contains("not UTF-8"), "{c}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let service = start(store).await;
    assert_eq!(service.start_report().restored, 4);
    assert_eq!(service.start_report().corrupt.len(), 3);
    service.shutdown().await;
    drop(raw);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}
