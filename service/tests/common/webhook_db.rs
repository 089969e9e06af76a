//! A database holding webhook ids, for the webhook-id tests: a SQLite file
//! or a Postgres schema, opened as often as wanted (each time a connection
//! of its own, as another process would), its table read directly, and
//! named in an environment variable for child processes.

use std::path::PathBuf;
use std::sync::Arc;

use hoopai_oauth_service::{PostgresStore, SqliteOptions, SqliteStore, WebhookIds};

use super::pg;

pub enum IdsDb {
    Sqlite {
        _dir: Option<tempfile::TempDir>,
        path: PathBuf,
    },
    Postgres {
        url: String,
        schema: String,
    },
}

impl IdsDb {
    /// A new SQLite file in a temporary folder.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grants.sqlite3");
        IdsDb::Sqlite {
            _dir: Some(dir),
            path,
        }
    }

    /// A new schema on the tests' Postgres server, `None` when there is none.
    pub async fn postgres(test: &str) -> Option<Self> {
        let url = pg::url(test)?;
        let scoped = pg::fresh_schema(&url.parse().unwrap()).await;
        let schema = scoped.get_application_name().unwrap().to_owned();
        Some(IdsDb::Postgres { url, schema })
    }

    /// What [`from_env`](Self::from_env) reads back in a child process.
    pub fn to_env(&self) -> String {
        match self {
            IdsDb::Sqlite { path, .. } => format!("sqlite {}", path.display()),
            IdsDb::Postgres { url, schema } => format!("postgres {schema} {url}"),
        }
    }

    /// The database [`to_env`](Self::to_env) named.
    pub fn from_env(text: &str) -> Self {
        let mut parts = text.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("sqlite"), Some(path), None) => IdsDb::Sqlite {
                _dir: None,
                path: PathBuf::from(path),
            },
            (Some("postgres"), Some(schema), Some(url)) => IdsDb::Postgres {
                url: url.to_owned(),
                schema: schema.to_owned(),
            },
            _ => panic!("not a database: {text:?}"),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, IdsDb::Postgres { .. })
    }

    /// The config of the Postgres schema.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let IdsDb::Postgres { url, schema } = self else {
            panic!("not Postgres");
        };
        let mut config: tokio_postgres::Config = url.parse().unwrap();
        config.options(format!("-c search_path={schema}"));
        config.application_name(schema);
        config
    }

    /// The SQLite file.
    pub fn sqlite_path(&self) -> &std::path::Path {
        let IdsDb::Sqlite { path, .. } = self else {
            panic!("not SQLite");
        };
        path
    }

    /// A SQLite store on the file (`synchronous=NORMAL`: the contract does
    /// not depend on it, and it keeps the tests of thousands of ids quick).
    pub async fn sqlite_store(&self) -> SqliteStore {
        SqliteStore::open_with(
            self.sqlite_path(),
            SqliteOptions::default().synchronous_full(false),
        )
        .await
        .unwrap()
    }

    /// A Postgres store on the schema.
    pub async fn postgres_store(&self) -> PostgresStore {
        PostgresStore::connect_with(self.pg_config(), tokio_postgres::NoTls)
            .await
            .unwrap()
    }

    /// The store's webhook ids, through a connection of their own.
    pub async fn open(&self) -> Arc<dyn WebhookIds> {
        match self {
            IdsDb::Sqlite { .. } => Arc::new(self.sqlite_store().await.webhook_ids()),
            IdsDb::Postgres { .. } => Arc::new(self.postgres_store().await.webhook_ids()),
        }
    }

    /// Every row: the id's bytes and its expiry (Unix ms), by id.
    pub async fn rows(&self) -> Vec<(Vec<u8>, i64)> {
        match self {
            IdsDb::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut stmt = conn
                    .prepare(
                        "SELECT webhook_id, expires_at FROM hoopai_webhook_ids ORDER BY webhook_id",
                    )
                    .unwrap();
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            IdsDb::Postgres { .. } => pg::client(&self.pg_config())
                .await
                .query(
                    "SELECT webhook_id, expires_at FROM hoopai_webhook_ids ORDER BY webhook_id",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
        }
    }

    /// How many rows the table holds.
    pub async fn count(&self) -> i64 {
        match self {
            IdsDb::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .unwrap()
                .query_row("SELECT count(*) FROM hoopai_webhook_ids", [], |r| r.get(0))
                .unwrap(),
            IdsDb::Postgres { .. } => pg::client(&self.pg_config())
                .await
                .query_one("SELECT count(*) FROM hoopai_webhook_ids", &[])
                .await
                .unwrap()
                .get(0),
        }
    }
}
