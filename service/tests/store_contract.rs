//! One contract, three stores: every test of `common::contract` runs against
//! the in-memory, SQLite and Postgres stores, each plain and sealed (with a
//! keyring). The Postgres ones use `HOOPAI_TEST_POSTGRES_URL`, or a server
//! started for them when PostgreSQL is installed.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::contract::{self, Raw};
use common::pg;
use hoopai_oauth_service::{
    Keyring, MemoryStore, PostgresStore, RecordKey, SqliteOptions, SqliteStore,
};

/// Two keys, newest first: records are sealed under `k2`.
fn keys() -> Keyring {
    Keyring::new([
        RecordKey::new("k2", [2; 32]).unwrap(),
        RecordKey::new("k1", [1; 32]).unwrap(),
    ])
    .unwrap()
}

struct MemoryRaw(Arc<MemoryStore>);

impl Raw for MemoryRaw {
    async fn write_raw(&self, grant: &str, version: i64, text: &str) {
        self.0
            .insert_raw(grant, u64::try_from(version).unwrap(), text);
    }
}

async fn memory(_test: &str) -> Option<(Arc<MemoryStore>, MemoryRaw)> {
    let store = Arc::new(MemoryStore::new());
    Some((Arc::clone(&store), MemoryRaw(store)))
}

async fn sealed_memory(_test: &str) -> Option<(Arc<MemoryStore>, MemoryRaw)> {
    let store = Arc::new(MemoryStore::with_keys(keys()));
    Some((Arc::clone(&store), MemoryRaw(store)))
}

/// Writes through a second connection to the same file (as another process would).
struct SqliteRaw(PathBuf, #[allow(dead_code)] Arc<tempfile::TempDir>);

impl Raw for SqliteRaw {
    async fn write_raw(&self, grant: &str, version: i64, text: &str) {
        let conn = rusqlite::Connection::open(&self.0).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute(
            "INSERT INTO hoopai_grants (grant_id, version, record) VALUES (?1, ?2, ?3)
             ON CONFLICT (grant_id) DO UPDATE SET version = ?2, record = ?3",
            rusqlite::params![grant, version, text],
        )
        .unwrap();
    }
}

async fn sqlite(_test: &str) -> Option<(SqliteStore, SqliteRaw)> {
    sqlite_with(SqliteOptions::default()).await
}

async fn sealed_sqlite(_test: &str) -> Option<(SqliteStore, SqliteRaw)> {
    sqlite_with(SqliteOptions::default().keys(keys())).await
}

async fn sqlite_with(options: SqliteOptions) -> Option<(SqliteStore, SqliteRaw)> {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let path = dir.path().join("grants.sqlite3");
    // FULL sync is the default; the contract does not depend on it, and
    // NORMAL keeps the 2,500-row paging test quick.
    let store = SqliteStore::open_with(&path, options.synchronous_full(false))
        .await
        .unwrap();
    Some((store, SqliteRaw(path, dir)))
}

struct PostgresRaw(tokio_postgres::Config);

impl Raw for PostgresRaw {
    async fn write_raw(&self, grant: &str, version: i64, text: &str) {
        let client = pg::client(&self.0).await;
        client
            .execute(
                "INSERT INTO hoopai_grants (grant_id, version, record) VALUES ($1, $2, $3)
                 ON CONFLICT (grant_id) DO UPDATE SET version = $2, record = $3",
                &[&grant, &version, &text],
            )
            .await
            .unwrap();
    }
}

async fn postgres(test: &str) -> Option<(PostgresStore, PostgresRaw)> {
    let config = pg::config(test)?;
    let (store, scoped) = pg::store(&config).await;
    Some((store, PostgresRaw(scoped)))
}

async fn sealed_postgres(test: &str) -> Option<(PostgresStore, PostgresRaw)> {
    let (store, raw) = postgres(test).await?;
    Some((store.with_keys(keys()), raw))
}

macro_rules! contract_suite {
    ($store:ident) => {
        mod $store {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let Some((store, _raw)) =
                            super::$store(concat!(stringify!($store), "::", stringify!($name)))
                                .await
                        else {
                            return;
                        };
                        contract::$name(store).await;
                    }
                };
            }

            case!(empty_store);
            case!(create_only);
            case!(update_and_conflict);
            case!(missing);
            case!(invalid_writes);
            case!(put_and_delete);
            case!(round_trip);
            case!(paging);
            case!(racing_writers);
            case!(racing_create);
            case!(grant_id_limits);
            case!(budget_claims);
            case!(racing_budget_claims);

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn corrupt_rows() {
                let Some((store, raw)) =
                    super::$store(concat!(stringify!($store), "::corrupt_rows")).await
                else {
                    return;
                };
                contract::corrupt_rows(store, raw).await;
            }
        }
    };
}

contract_suite!(memory);
contract_suite!(sqlite);
contract_suite!(postgres);
contract_suite!(sealed_memory);
contract_suite!(sealed_sqlite);
contract_suite!(sealed_postgres);
