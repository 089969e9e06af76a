//! The Postgres server of the tests: `HOOPAI_TEST_POSTGRES_URL`, or a
//! throwaway server started for this test process when PostgreSQL is
//! installed (`hoopai-test-postgres`).

use std::sync::atomic::{AtomicU32, Ordering};

use hoopai_oauth_service::PostgresStore;
use tokio_postgres::{Client, Config, NoTls};

/// The variable naming a server of your own.
pub const URL_VAR: &str = hoopai_test_postgres::URL_VAR;

/// A database for `test`, or `None` (with a printed line saying what is
/// missing) when there is no server. Under CI (`CI` set) no server fails
/// the test: CI must run these tests, not skip them.
pub fn config(test: &str) -> Option<Config> {
    Some(
        url(test)?
            .parse()
            .expect("HOOPAI_TEST_POSTGRES_URL is not a valid Postgres URL"),
    )
}

/// As [`config`], the URL (for another process).
pub fn url(test: &str) -> Option<String> {
    hoopai_test_postgres::database(test)
}

/// A client to the server, its connection driven on the runtime.
pub async fn client(config: &Config) -> Client {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(connection);
    client
}

/// A new, empty schema; the returned config connects with it as `search_path`.
pub async fn fresh_schema(config: &Config) -> Config {
    static N: AtomicU32 = AtomicU32::new(0);
    let schema = format!(
        "hoopai_test_{}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let admin = client(config).await;
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create a test schema");
    let mut scoped = config.clone();
    scoped.options(format!("-c search_path={schema}"));
    // Names the connections, so a test can kill only its own.
    scoped.application_name(&schema);
    scoped
}

/// A store in a fresh schema.
pub async fn store(config: &Config) -> (PostgresStore, Config) {
    let scoped = fresh_schema(config).await;
    let store = PostgresStore::connect_with(scoped.clone(), NoTls)
        .await
        .expect("connect the store");
    (store, scoped)
}
