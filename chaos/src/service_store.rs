//! The stores of a run, as the orchestrator sees them: the harness's own
//! SQLite file for the engine drivers, or a store of the runtime package
//! (`PostgresStore`, `SqliteStore`) for the service driver.
//!
//! For a runtime store the orchestrator makes a fresh Postgres schema per
//! run (so that runs never see each other's rows), seeds it through the
//! store's own compare-and-swap, and, once every worker has stopped, copies
//! its rows into the run's `store.sqlite` for the checker; the schema is then
//! dropped.

use std::ffi::OsString;
use std::future::Future;
use std::path::Path;

use hoopai_oauth::WriteOutcome;
use hoopai_oauth::{GrantId, GrantRecord};
use hoopai_oauth_service::{GrantStore, SqliteStore};

use crate::files;
use crate::store::{Cas, Store};
use crate::worker::service::connect_postgres;

/// Where the workers of a scenario keep their grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// The harness's SQLite file (`store.sqlite`), for the engine drivers.
    Harness,
    /// The runtime package's `SqliteStore`, one file (`store.service.sqlite3`).
    ServiceSqlite,
    /// The runtime package's `PostgresStore` on the server at this URL, in a
    /// schema of the run's own.
    Postgres {
        /// `postgres://user@127.0.0.1:port/db`.
        url: String,
    },
}

/// The store of one run.
#[derive(Debug)]
pub struct RunStore {
    kind: StoreKind,
    /// The Postgres schema of the run.
    schema: Option<String>,
}

fn block_on<F: Future>(future: F) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    Ok(runtime.block_on(future))
}

/// A client on the Postgres server, its connection driven on the runtime.
async fn admin(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("postgres: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

impl RunStore {
    /// Sets up the store of a run named `name`: for Postgres, a new, empty
    /// schema `chaos_<name>_<pid>` (dropped first if a run before left it).
    ///
    /// # Errors
    /// The Postgres server is unreachable or refuses.
    pub fn prepare(kind: &StoreKind, name: &str) -> Result<Self, String> {
        let schema = match kind {
            StoreKind::Postgres { url } => {
                let schema = format!(
                    "chaos_{}_{}",
                    name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
                    std::process::id()
                );
                let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}");
                block_on(async {
                    admin(url)
                        .await?
                        .batch_execute(&sql)
                        .await
                        .map_err(|e| format!("postgres: {e}"))
                })??;
                Some(schema)
            }
            StoreKind::Harness | StoreKind::ServiceSqlite => None,
        };
        Ok(RunStore {
            kind: kind.clone(),
            schema,
        })
    }

    /// The Postgres schema of the run, if the store is a Postgres one.
    #[must_use]
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The worker's command-line arguments naming the store.
    #[must_use]
    pub fn worker_args(&self, dir: &Path) -> Vec<OsString> {
        match (&self.kind, &self.schema) {
            (StoreKind::Postgres { url }, Some(schema)) => vec![
                "--postgres".into(),
                url.into(),
                "--postgres-schema".into(),
                schema.into(),
            ],
            (StoreKind::ServiceSqlite, _) => {
                vec!["--store".into(), dir.join(files::SERVICE_STORE).into()]
            }
            _ => vec!["--store".into(), dir.join(files::STORE).into()],
        }
    }

    /// Writes the seed records (JSON), each create-only.
    ///
    /// # Errors
    /// A grant is already stored, or the store failed.
    pub fn seed(&self, dir: &Path, records: &[(String, String)]) -> Result<(), String> {
        if self.kind == StoreKind::Harness {
            let mut store =
                Store::open(&dir.join(files::STORE)).map_err(|e| format!("store: {e}"))?;
            for (grant, record) in records {
                let version = serde_json::from_str::<GrantRecord>(record)
                    .map_err(|e| e.to_string())?
                    .version;
                match store.compare_and_swap(grant, None, version, record) {
                    Ok(Cas::Won) => {}
                    Ok(Cas::Lost(_)) => return Err(format!("{grant} was already in the store")),
                    Err(e) => return Err(format!("store: {e}")),
                }
            }
            return Ok(());
        }
        block_on(async {
            match &self.kind {
                StoreKind::Postgres { url } => {
                    let store = connect_postgres(url, self.schema.as_deref()).await?;
                    seed_into(&store, records).await
                }
                _ => {
                    let store = SqliteStore::open(dir.join(files::SERVICE_STORE))
                        .await
                        .map_err(|e| format!("store: {e}"))?;
                    seed_into(&store, records).await
                }
            }
        })?
    }

    /// Once every worker stopped: copies a runtime store's rows into the
    /// run's `store.sqlite`, which the checker reads, then drops the
    /// Postgres schema. Nothing to do for the harness's own store.
    ///
    /// # Errors
    /// The store failed, or holds a row that is not a readable record.
    pub fn finish(&self, dir: &Path) -> Result<(), String> {
        if self.kind == StoreKind::Harness {
            return Ok(());
        }
        let records = block_on(async {
            match &self.kind {
                StoreKind::Postgres { url } => {
                    let store = connect_postgres(url, self.schema.as_deref()).await?;
                    read_all(&store).await
                }
                _ => {
                    let store = SqliteStore::open(dir.join(files::SERVICE_STORE))
                        .await
                        .map_err(|e| format!("store: {e}"))?;
                    read_all(&store).await
                }
            }
        })??;
        let mut copy = Store::open(&dir.join(files::STORE)).map_err(|e| format!("store: {e}"))?;
        for record in &records {
            let json = serde_json::to_string(record).map_err(|e| e.to_string())?;
            match copy.compare_and_swap(record.grant.as_str(), None, record.version, &json) {
                Ok(Cas::Won) => {}
                Ok(Cas::Lost(_)) => return Err(format!("{} copied twice", record.grant)),
                Err(e) => return Err(format!("store copy: {e}")),
            }
        }
        if let (StoreKind::Postgres { url }, Some(schema)) = (&self.kind, &self.schema) {
            let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            block_on(async {
                admin(url)
                    .await?
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| format!("postgres: {e}"))
            })??;
        }
        Ok(())
    }
}

async fn seed_into<S: GrantStore>(store: &S, records: &[(String, String)]) -> Result<(), String> {
    for (grant, record) in records {
        let record: GrantRecord = serde_json::from_str(record).map_err(|e| e.to_string())?;
        match store.compare_and_swap(&record, None).await {
            Ok(WriteOutcome::Written) => {}
            Ok(_) => return Err(format!("{grant} was already in the store")),
            Err(e) => return Err(format!("store: {e}")),
        }
    }
    Ok(())
}

async fn read_all<S: GrantStore>(store: &S) -> Result<Vec<GrantRecord>, String> {
    let mut records = Vec::new();
    let mut after: Option<GrantId> = None;
    loop {
        let page = store
            .load_page(after.as_ref(), 1000)
            .await
            .map_err(|e| format!("store: {e}"))?;
        if let Some(corrupt) = page.corrupt.first() {
            return Err(format!("the store holds an unreadable row: {corrupt}"));
        }
        records.extend(page.records);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(records),
        }
    }
}
