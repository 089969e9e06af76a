//! What each database store promises beyond the shared contract: the SQLite
//! file's permissions, durability across reopening and sharing between
//! connections; the Postgres store's reconnection and migrations.

mod common;

use std::sync::Arc;

use common::{pg, record, refresh_of};
use hoopai_oauth::GrantId;
use hoopai_oauth::WriteOutcome;
use hoopai_oauth_service::{GrantStore, PostgresStore, SqliteStore};

#[cfg(unix)]
#[tokio::test]
async fn sqlite_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grants.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    store.put(&record("loc-1", 1, "a")).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("grants.sqlite3{suffix}"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
}

/// A file written by a later build (more migrations than this one knows) is
/// refused with a typed error, not read and rewritten.
#[tokio::test]
async fn sqlite_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grants.sqlite3");
    drop(SqliteStore::open(&path).await.unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version=99")
        .unwrap();
    let error = SqliteStore::open(&path).await.expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("schema 99, newer than this build's"),
        "{text}"
    );
}

#[tokio::test]
async fn sqlite_records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grants.sqlite3");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store
            .compare_and_swap(&record("loc-1", 1, "a"), None)
            .await
            .unwrap();
        store
            .compare_and_swap(&record("loc-1", 2, "b"), Some(1))
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let back = store.load(&GrantId::new("loc-1")).await.unwrap().unwrap();
    assert_eq!(back, record("loc-1", 2, "b"));
    // Opening again runs no migration twice.
    let again = SqliteStore::open(&path).await.unwrap();
    assert_eq!(again.load_page(None, 10).await.unwrap().records.len(), 1);
}

/// Two stores on one file (as two processes would be): one winner per version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_connections_race() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grants.sqlite3");
    let a = Arc::new(SqliteStore::open(&path).await.unwrap());
    let b = Arc::new(SqliteStore::open(&path).await.unwrap());
    a.compare_and_swap(&record("loc-1", 1, "start"), None)
        .await
        .unwrap();
    for round in 1..=30u64 {
        let ra = record("loc-1", round + 1, &format!("a{round}"));
        let rb = record("loc-1", round + 1, &format!("b{round}"));
        let (sa, sb) = (Arc::clone(&a), Arc::clone(&b));
        let (oa, ob) = tokio::join!(
            tokio::spawn(async move { sa.compare_and_swap(&ra, Some(round)).await.unwrap() }),
            tokio::spawn(async move { sb.compare_and_swap(&rb, Some(round)).await.unwrap() }),
        );
        let wins = [oa.unwrap(), ob.unwrap()]
            .iter()
            .filter(|o| **o == WriteOutcome::Written)
            .count();
        assert_eq!(wins, 1, "round {round}");
    }
    assert_eq!(
        b.load(&GrantId::new("loc-1"))
            .await
            .unwrap()
            .unwrap()
            .version,
        31
    );
}

#[tokio::test]
async fn sqlite_unopenable_path_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-folder").join("grants.sqlite3");
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(err.to_string().contains("sqlite store"), "{err}");
}

#[tokio::test]
async fn postgres_reconnects_after_the_connection_drops() {
    let Some(config) = pg::config("postgres_reconnects_after_the_connection_drops") else {
        return;
    };
    let (store, scoped) = pg::store(&config).await;
    store.put(&record("loc-1", 1, "a")).await.unwrap();
    // Kill the store's connection (named after its schema), as a restart
    // of the server or a network cut would.
    let admin = pg::client(&config).await;
    let name = scoped.get_application_name().unwrap().to_owned();
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1);
    // The first call may see the dead connection; the store connects again.
    let mut loaded = None;
    for _ in 0..3 {
        if let Ok(found) = store.load(&GrantId::new("loc-1")).await {
            loaded = found;
            break;
        }
    }
    assert_eq!(
        refresh_of(&loaded.expect("reconnected")),
        refresh_of(&record("loc-1", 1, "a"))
    );
}

#[tokio::test]
async fn postgres_migrations_run_once_with_concurrent_starts() {
    let Some(config) = pg::config("postgres_migrations_run_once_with_concurrent_starts") else {
        return;
    };
    let scoped = pg::fresh_schema(&config).await;
    let starts = (0..6).map(|_| {
        let scoped = scoped.clone();
        tokio::spawn(
            async move { PostgresStore::connect_with(scoped, tokio_postgres::NoTls).await },
        )
    });
    for start in starts {
        start.await.unwrap().unwrap();
    }
    let admin = pg::client(&scoped).await;
    let applied: i64 = admin
        .query_one("SELECT count(*) FROM hoopai_schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    // 0001 (grants), 0002 (webhook ids) and 0003 (request budget), once each.
    assert_eq!(applied, 3);
}
