//! The webhook ids of the SQLite and Postgres stores (`hoopai_webhook_ids`):
//! the `WebhookIds` contract on each backend (new once, then a duplicate,
//! also through another connection; older than the window → beyond
//! memory; kept until timestamp + window + skew, then pruned; the table
//! bounded under a steady flow and after a burst; ids at the length limit
//! and in any script; forgetting), tasks racing on one id, and the schema:
//! upgraded from the schema before the table, refused when newer.
//!
//! The Postgres tests use `HOOPAI_TEST_POSTGRES_URL`, or a server started
//! for them when PostgreSQL is installed.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::webhook_db::IdsDb;
use common::{pg, t0};
use hoopai_oauth::{GrantId, MAX_WEBHOOK_ID_BYTES, Recorded};
use hoopai_oauth_service::{
    GrantStore, PRUNE_BATCH, PRUNE_EVERY, PostgresStore, SqliteStore, StoreError,
    WEBHOOK_ID_CLOCK_SKEW,
};

/// HighLevel's window as the verifier applies it by default.
const WINDOW: Duration = Duration::from_secs(300);

fn ms(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

async fn new_then_duplicate_also_through_another_connection(db: IdsDb) {
    let a = db.open().await;
    let b = db.open().await;
    let now = t0();
    assert_eq!(
        a.record("wh-1", now, now, WINDOW).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        a.record("wh-1", now, now, WINDOW).await.unwrap(),
        Recorded::Duplicate
    );
    // Another process's connection, a minute later, with the same payload.
    let later = now + Duration::from_secs(60);
    assert_eq!(
        b.record("wh-1", now, later, WINDOW).await.unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(
        b.record("wh-2", now, later, WINDOW).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        a.record("wh-2", now, later, WINDOW).await.unwrap(),
        Recorded::Duplicate
    );
    let rows = db.rows().await;
    assert_eq!(rows.len(), 2);
    let kept_until = ms(now + WINDOW + WEBHOOK_ID_CLOCK_SKEW);
    assert_eq!(rows[0], (b"wh-1".to_vec(), kept_until));
}

async fn older_than_the_window_is_beyond_memory(db: IdsDb) {
    let ids = db.open().await;
    let now = t0();
    let old = now - WINDOW - Duration::from_millis(1);
    assert_eq!(
        ids.record("wh-old", old, now, WINDOW).await.unwrap(),
        Recorded::BeyondMemory
    );
    // Refused without a row, again and again.
    assert_eq!(
        ids.record("wh-old", old, now, WINDOW).await.unwrap(),
        Recorded::BeyondMemory
    );
    assert_eq!(db.count().await, 0);
    // At the window's edge it is still judged by the table.
    let edge = now - WINDOW;
    assert_eq!(
        ids.record("wh-edge", edge, now, WINDOW).await.unwrap(),
        Recorded::New
    );
    // Once recorded, the same delivery later is beyond memory (the
    // verifier refuses it as stale anyway), never new.
    assert_eq!(
        ids.record("wh-edge", edge, now + Duration::from_secs(1), WINDOW)
            .await
            .unwrap(),
        Recorded::BeyondMemory
    );
}

async fn kept_until_window_and_skew_then_pruned(db: IdsDb) {
    let ids = db.open().await;
    let sent = t0();
    assert_eq!(
        ids.record("wh-kept", sent, sent, WINDOW).await.unwrap(),
        Recorded::New
    );
    // A process whose clock is behind by the skew still holds the delivery
    // within its window: the row must be there for it, whatever the
    // others prune with their clocks up to the skew ahead.
    let keep = WINDOW + WEBHOOK_ID_CLOCK_SKEW;
    for (i, at) in [
        sent + WINDOW,
        sent + keep - Duration::from_millis(1),
        sent + keep,
    ]
    .into_iter()
    .enumerate()
    {
        // The first call of a handle prunes what expired by `at`.
        let other = db.open().await;
        assert_eq!(
            other
                .record(&format!("wh-then-{i}"), at, at, WINDOW)
                .await
                .unwrap(),
            Recorded::New
        );
        let behind = at - WEBHOOK_ID_CLOCK_SKEW;
        let seen = ids.record("wh-kept", sent, behind, WINDOW).await.unwrap();
        assert_eq!(
            seen,
            Recorded::Duplicate,
            "at +{:?}",
            at.duration_since(sent)
        );
    }
    assert!(db.rows().await.iter().any(|(id, _)| id == b"wh-kept"));
    // A millisecond past it, a prune drops it.
    let past = sent + keep + Duration::from_millis(1);
    let other = db.open().await;
    assert_eq!(
        other.record("wh-last", past, past, WINDOW).await.unwrap(),
        Recorded::New
    );
    assert!(!db.rows().await.iter().any(|(id, _)| id == b"wh-kept"));
}

/// 20 deliveries a second for 10 minutes (12,000 ids), then an hour of
/// nothing and 1,000 more: the table holds what the window and skew ask
/// (and at most a prune's turn of expired rows), and the backlog left by
/// the quiet hour goes at eight rows a call.
async fn pruning_keeps_the_table_bounded(db: IdsDb) {
    let ids = db.open().await;
    let step = Duration::from_millis(50);
    let live = (WINDOW + WEBHOOK_ID_CLOCK_SKEW).as_millis() / step.as_millis() + 1;
    let live = i64::try_from(live).unwrap();
    let start = t0();
    let mut filling = Duration::ZERO;
    let mut steady = Duration::ZERO;
    let n = 12_000u32;
    for i in 0..n {
        let at = start + step * i;
        let began = Instant::now();
        let recorded = ids.record(&format!("wh-{i:05}"), at, at, WINDOW).await;
        let took = began.elapsed();
        assert_eq!(recorded.unwrap(), Recorded::New);
        if i64::from(i) < live {
            filling += took;
        } else {
            steady += took;
        }
        if i % 1_000 == 999 {
            let rows = db.count().await;
            let turn = i64::try_from(PRUNE_EVERY).unwrap();
            assert!(rows <= live + turn, "{rows} rows after {i} ids");
        }
    }
    let rows = db.count().await;
    let turn = i64::try_from(PRUNE_EVERY).unwrap();
    assert!(
        (live..=live + turn).contains(&rows),
        "{rows} rows: the ids of the last 6 minutes, and at most {turn} expired"
    );
    // An hour later: every row has expired; each call prunes eight.
    let later = start + step * n + Duration::from_secs(3600);
    let mut burst = Duration::ZERO;
    let peak = rows;
    for i in 0..1_000u32 {
        let at = later + step * i;
        let began = Instant::now();
        let recorded = ids.record(&format!("wh-late-{i:04}"), at, at, WINDOW).await;
        burst += began.elapsed();
        assert_eq!(recorded.unwrap(), Recorded::New);
        if i % 100 == 99 {
            let rows = db.count().await;
            assert!(rows <= peak, "{rows} rows, over the {peak} before");
        }
    }
    // Sixteen prunes of up to 512 rows took the 7,201 expired ones.
    assert_eq!(db.count().await, 1_000);
    let per = |total: Duration, count: i64| total.as_secs_f64() * 1e6 / count as f64;
    eprintln!(
        "{}: record, µs per call: {:.0} with nothing expired ({live} calls), {:.0} with one row expiring per call ({} calls), {:.0} shedding a backlog of 7,201 rows, {PRUNE_BATCH} a turn (1,000 calls)",
        if db.is_postgres() {
            "postgres"
        } else {
            "sqlite, synchronous=NORMAL"
        },
        per(filling, live),
        per(steady, i64::from(n) - live),
        i64::from(n) - live,
        per(burst, 1_000),
    );
}

async fn ids_at_the_length_limit_and_in_any_script(db: IdsDb) {
    let ids = db.open().await;
    let now = t0();
    let limit = MAX_WEBHOOK_ID_BYTES;
    let ascii = "a".repeat(limit);
    let two_byte = "é".repeat(limit / 2);
    let four_byte = "🦀".repeat(limit / 4);
    let accepted = [
        ascii.clone(),
        two_byte.clone(),
        four_byte.clone(),
        // The same text under two Unicode normalizations: two ids.
        "caf\u{e9}".to_owned(),
        "cafe\u{301}".to_owned(),
        "ид-日本語-🦀-عربي".to_owned(),
        "a\u{0}b".to_owned(),
        String::new(),
        // A prefix of another id.
        "a".repeat(limit - 1),
    ];
    for id in &accepted {
        assert_eq!(
            ids.record(id, now, now, WINDOW).await.unwrap(),
            Recorded::New,
            "{id:?}"
        );
    }
    for id in &accepted {
        assert_eq!(
            ids.record(id, now, now, WINDOW).await.unwrap(),
            Recorded::Duplicate,
            "{id:?}"
        );
    }
    // Kept byte for byte.
    let mut stored: Vec<Vec<u8>> = db.rows().await.into_iter().map(|(id, _)| id).collect();
    let mut expected: Vec<Vec<u8>> = accepted.iter().map(|id| id.as_bytes().to_vec()).collect();
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected);
    // One byte over the limit, however it is made: a typed refusal.
    for over in [
        format!("{ascii}b"),
        format!("{}é", "a".repeat(limit - 1)),
        format!("{four_byte}x"),
    ] {
        let e = ids.record(&over, now, now, WINDOW).await.unwrap_err();
        assert!(matches!(e, StoreError::InvalidWebhookId { .. }), "{e}");
        assert!(e.to_string().contains("over the 256-byte limit"), "{e}");
    }
    assert_eq!(db.count().await, i64::try_from(accepted.len()).unwrap());
}

async fn a_forgotten_id_is_new_again(db: IdsDb) {
    let ids = db.open().await;
    let other = db.open().await;
    let now = t0();
    assert_eq!(
        ids.record("wh-f", now, now, WINDOW).await.unwrap(),
        Recorded::New
    );
    ids.forget("wh-f").await.unwrap();
    // Forgetting what is not there is no error.
    ids.forget("wh-never").await.unwrap();
    assert_eq!(
        other.record("wh-f", now, now, WINDOW).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        ids.record("wh-f", now, now, WINDOW).await.unwrap(),
        Recorded::Duplicate
    );
}

/// Eight connections record the same 200 ids at once: each id is new to
/// exactly one of them.
async fn racing_connections(db: IdsDb) {
    let mut handles = Vec::new();
    let start = Arc::new(tokio::sync::Barrier::new(8));
    for _ in 0..8 {
        let ids = db.open().await;
        let start = Arc::clone(&start);
        handles.push(tokio::spawn(async move {
            start.wait().await;
            let mut new = Vec::new();
            for i in 0..200 {
                let id = format!("wh-race-{i:03}");
                if ids.record(&id, t0(), t0(), WINDOW).await.unwrap() == Recorded::New {
                    new.push(id);
                }
            }
            new
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.unwrap());
    }
    all.sort();
    let mut unique = all.clone();
    unique.dedup();
    assert_eq!(all.len(), 200, "every id was new exactly once");
    assert_eq!(unique.len(), 200);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(IdsDb::sqlite()).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = IdsDb::postgres(concat!("webhook_ids::", stringify!($name))).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

contract!(
    new_then_duplicate_also_through_another_connection,
    older_than_the_window_is_beyond_memory,
    kept_until_window_and_skew_then_pruned,
    pruning_keeps_the_table_bounded,
    ids_at_the_length_limit_and_in_any_script,
    a_forgotten_id_is_new_again,
    racing_connections,
);

// ---- the schema -------------------------------------------------------------

/// A file of the build before the table (schema 1, one grant) is brought
/// to the current schema: the grant is kept and the ids work.
#[tokio::test]
async fn sqlite_upgrades_from_the_schema_before_webhook_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grants.sqlite3");
    let record = common::record("loc-1", 3, "kept");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../migrations/sqlite/0001_grants.sql"))
            .unwrap();
        conn.execute_batch("PRAGMA user_version=1").unwrap();
        conn.execute(
            "INSERT INTO hoopai_grants (grant_id, version, record) VALUES (?1, ?2, ?3)",
            rusqlite::params!["loc-1", 3, serde_json::to_string(&record).unwrap()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    assert_eq!(
        store.load(&GrantId::new("loc-1")).await.unwrap(),
        Some(record)
    );
    let ids = store.webhook_ids();
    use hoopai_oauth_service::WebhookIds;
    assert_eq!(
        ids.record("wh-1", t0(), t0(), WINDOW).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        ids.record("wh-1", t0(), t0(), WINDOW).await.unwrap(),
        Recorded::Duplicate
    );
    // Opening it again changes nothing.
    drop(SqliteStore::open(&path).await.unwrap());
    let again: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM hoopai_webhook_ids", [], |r| r.get(0))
        .unwrap();
    assert_eq!(again, 1);
}

/// The same on Postgres, and a database of a later build is refused.
#[tokio::test]
async fn postgres_upgrades_from_the_schema_before_webhook_ids_and_refuses_a_newer_one() {
    let Some(config) =
        pg::config("postgres_upgrades_from_the_schema_before_webhook_ids_and_refuses_a_newer_one")
    else {
        return;
    };
    let scoped = pg::fresh_schema(&config).await;
    let record = common::record("loc-1", 3, "kept");
    let admin = pg::client(&scoped).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE hoopai_schema_migrations (
                 version    INTEGER     NOT NULL PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
             INSERT INTO hoopai_schema_migrations (version) VALUES (1);
             {}",
            include_str!("../migrations/postgres/0001_grants.sql")
        ))
        .await
        .unwrap();
    admin
        .execute(
            "INSERT INTO hoopai_grants (grant_id, version, record) VALUES ($1, $2, $3)",
            &[&"loc-1", &3i64, &serde_json::to_string(&record).unwrap()],
        )
        .await
        .unwrap();
    let store = PostgresStore::connect_with(scoped.clone(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let versions: Vec<i32> = admin
        .query(
            "SELECT version FROM hoopai_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(
        store.load(&GrantId::new("loc-1")).await.unwrap(),
        Some(record)
    );
    use hoopai_oauth_service::WebhookIds;
    let ids = store.webhook_ids();
    assert_eq!(
        ids.record("wh-1", t0(), t0(), WINDOW).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        ids.record("wh-1", t0(), t0(), WINDOW).await.unwrap(),
        Recorded::Duplicate
    );
    // A later build's migration 4: this build refuses the database.
    admin
        .execute(
            "INSERT INTO hoopai_schema_migrations (version) VALUES (4)",
            &[],
        )
        .await
        .unwrap();
    let error = PostgresStore::connect_with(scoped, tokio_postgres::NoTls)
        .await
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("schema 4, newer than this build's 3"),
        "{error}"
    );
}
