//! The embedded default store: one SQLite file (rusqlite, bundled SQLite).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hoopai_oauth::{GrantId, GrantRecord};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use hoopai_oauth::WriteOutcome;

use super::{GrantStore, Page, StoreError, check_write, decode, encode, page_limit};

const STORE: &str = "sqlite";

/// The schema migrations, in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/sqlite/0001_grants.sql")];

/// How [`SqliteStore::open_with`] opens the file.
#[derive(Debug, Clone)]
#[must_use]
pub struct SqliteOptions {
    busy_timeout: Duration,
    synchronous_full: bool,
}

impl Default for SqliteOptions {
    /// A 5 s busy timeout and `synchronous=FULL`.
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            synchronous_full: true,
        }
    }
}

impl SqliteOptions {
    /// How long a write waits for another connection's lock (another
    /// process on the same file) before failing with [`StoreError::Backend`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// `synchronous=FULL` (the default): every commit is on disk before the
    /// write returns, also across a power loss. `false` selects `NORMAL`:
    /// faster, and safe across a crash of the process, but the last commits
    /// may be lost on power loss; with single-use refresh tokens that loses
    /// installations. Turn it off only for tests and benchmarks.
    pub fn synchronous_full(mut self, full: bool) -> Self {
        self.synchronous_full = full;
        self
    }
}

/// A [`GrantStore`] in one SQLite file: the embedded default, no server.
///
/// - WAL journal, `synchronous=FULL` by default, a busy timeout (see
///   [`SqliteOptions`]); several processes may open the same file, and
///   compare-and-swap holds across them.
/// - The file is created with mode `0600`; SQLite creates its `-wal` and
///   `-shm` files with the same mode. An existing file readable by group or
///   others is reported with a `tracing` warning.
/// - Every call runs on tokio's blocking pool, never on the async runtime's
///   threads. One connection serves the process.
///
/// Cheap to clone (shared connection).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with the default
    /// [`SqliteOptions`], and brings its schema up to date.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the file cannot be created, opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens (or creates) the store at `path` with `options`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the file cannot be created, opened or migrated.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&p, &options))
            .await
            .map_err(|e| StoreError::backend(STORE, e))??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
        })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            .map_err(|e| StoreError::backend(STORE, e))?
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // Every write is one statement or one transaction: a panic elsewhere
    // while the lock was held leaves nothing half-written.
    conn.lock().unwrap_or_else(|e| e.into_inner())
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::backend(STORE, e)
}

fn open_blocking(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    create_private(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let mut conn = Connection::open_with_flags(path, flags).map_err(db)?;
    conn.busy_timeout(options.busy_timeout).map_err(db)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(db)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend(
            STORE,
            format!(
                "could not switch {} to WAL (journal mode {mode})",
                path.display()
            ),
        ));
    }
    let sync = if options.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.execute_batch(&format!("PRAGMA synchronous={sync};"))
        .map_err(db)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Creates the file with mode 0600 if it does not exist; warns if an
/// existing one is readable by others.
fn create_private(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Ok(meta) = std::fs::metadata(path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                        "the grant store holds refresh tokens and is readable by group or others; chmod 600 it"
                    );
                }
            }
            Err(e) => {
                return Err(StoreError::backend(
                    STORE,
                    format!("cannot create {}: {e}", path.display()),
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db)?;
    let applied: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    let applied = usize::try_from(applied).unwrap_or(0);
    StoreError::check_schema(STORE, applied, MIGRATIONS.len())?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(sql).map_err(db)?;
        tx.execute_batch(&format!("PRAGMA user_version={}", i + 1))
            .map_err(db)?;
    }
    tx.commit().map_err(db)
}

fn to_i64(grant: &GrantId, version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::InvalidWrite {
        grant: grant.clone(),
        reason: format!("version {version} does not fit a signed 64-bit column"),
    })
}

/// The stored row of `grant`, decoded.
fn current(conn: &Connection, grant: &str) -> Result<Option<GrantRecord>, StoreError> {
    let row: Option<(i64, String)> = conn
        .query_row(
            "SELECT version, record FROM hoopai_grants WHERE grant_id = ?1",
            [grant],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    row.map(|(v, text)| decode(grant, u64::try_from(v).ok(), &text).map_err(StoreError::Corrupt))
        .transpose()
}

impl GrantStore for SqliteStore {
    async fn load(&self, grant: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        let grant = grant.clone();
        self.with(move |conn| current(conn, grant.as_str())).await
    }

    async fn load_page(&self, after: Option<&GrantId>, limit: usize) -> Result<Page, StoreError> {
        let limit = page_limit(limit);
        let after = after.cloned();
        self.with(move |conn| {
            let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut stmt;
            let mut rows = match &after {
                Some(after) => {
                    stmt = conn
                        .prepare_cached(
                            "SELECT grant_id, version, record FROM hoopai_grants
                             WHERE grant_id > ?1 ORDER BY grant_id LIMIT ?2",
                        )
                        .map_err(db)?;
                    stmt.query(params![after.as_str(), limit_sql])
                }
                None => {
                    stmt = conn
                        .prepare_cached(
                            "SELECT grant_id, version, record FROM hoopai_grants
                             ORDER BY grant_id LIMIT ?1",
                        )
                        .map_err(db)?;
                    stmt.query(params![limit_sql])
                }
            }
            .map_err(db)?;
            let mut page = Page::default();
            let mut count = 0;
            let mut last = None;
            while let Some(row) = rows.next().map_err(db)? {
                let grant: String = row.get(0).map_err(db)?;
                let version: Option<u64> = row
                    .get::<_, i64>(1)
                    .ok()
                    .and_then(|v| u64::try_from(v).ok());
                match row.get_ref(2).map_err(db)?.as_str() {
                    Ok(text) => match decode(&grant, version, text) {
                        Ok(record) => page.records.push(record),
                        Err(corrupt) => page.corrupt.push(corrupt),
                    },
                    Err(_) => page.corrupt.push(super::CorruptRecord {
                        grant: GrantId::new(&grant),
                        version,
                        reason: "the record column is not UTF-8 text".to_owned(),
                    }),
                }
                count += 1;
                last = Some(grant);
            }
            if count == limit {
                page.next = last.map(GrantId::from);
            }
            Ok(page)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        record: &GrantRecord,
        replaces: Option<u64>,
    ) -> Result<WriteOutcome, StoreError> {
        check_write(record, replaces)?;
        let text = encode(record)?;
        let grant = record.grant.clone();
        let version = to_i64(&grant, record.version)?;
        let replaces = replaces.map(|v| to_i64(&grant, v)).transpose()?;
        self.with(move |conn| {
            // One IMMEDIATE transaction: the write and the read of what it
            // lost to see the same row, also with other processes on the file.
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db)?;
            let changed = match replaces {
                None => tx.execute(
                    "INSERT INTO hoopai_grants (grant_id, version, record) VALUES (?1, ?2, ?3)
                     ON CONFLICT (grant_id) DO NOTHING",
                    params![grant.as_str(), version, text],
                ),
                Some(old) => tx.execute(
                    "UPDATE hoopai_grants SET version = ?2, record = ?3, updated_at = unixepoch()
                     WHERE grant_id = ?1 AND version = ?4",
                    params![grant.as_str(), version, text, old],
                ),
            }
            .map_err(db)?;
            let outcome = if changed == 1 {
                WriteOutcome::Written
            } else {
                match current(&tx, grant.as_str())? {
                    Some(stored) => WriteOutcome::Conflict(Box::new(stored)),
                    None => WriteOutcome::NoRecord,
                }
            };
            tx.commit().map_err(db)?;
            Ok(outcome)
        })
        .await
    }

    async fn put(&self, record: &GrantRecord) -> Result<(), StoreError> {
        check_write(record, None)?;
        let text = encode(record)?;
        let grant = record.grant.clone();
        let version = to_i64(&grant, record.version)?;
        self.with(move |conn| {
            conn.prepare_cached(
                "INSERT INTO hoopai_grants (grant_id, version, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (grant_id) DO UPDATE SET version = excluded.version,
                     record = excluded.record, updated_at = unixepoch()",
            )
            .and_then(|mut s| s.execute(params![grant.as_str(), version, text]))
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, grant: &GrantId) -> Result<bool, StoreError> {
        let grant = grant.clone();
        self.with(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM hoopai_grants WHERE grant_id = ?1",
                    [grant.as_str()],
                )
                .map_err(db)?;
            Ok(n > 0)
        })
        .await
    }
}
