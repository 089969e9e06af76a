//! The embedded default store: one SQLite file (rusqlite, bundled SQLite).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use hoopai_oauth::{BudgetClaim, ClaimOutcome, GrantId, GrantRecord};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, params};

use hoopai_oauth::WriteOutcome;

use super::keys::Keyring;
use super::reseal::{RawRows, ResealReport, Rewrite, Scan, reseal};
use super::rows::{PageBuilder, PageEnd, RawRow, RowKey};
use super::seal::Codec;
use super::webhook_ids::{SqliteWebhookIds, WebhookIds};
use super::{GrantStore, Page, StoreError, check_write, page_limit};

const STORE: &str = "sqlite";

/// The schema migrations, in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_grants.sql"),
    include_str!("../../migrations/sqlite/0002_webhook_ids.sql"),
    include_str!("../../migrations/sqlite/0003_request_budget.sql"),
];

/// How [`SqliteStore::open_with`] opens the file.
///
/// `Debug` shows the key ids of the keyring, never the keys.
#[derive(Debug, Clone)]
#[must_use]
pub struct SqliteOptions {
    busy_timeout: Duration,
    synchronous_full: bool,
    keys: Option<Keyring>,
    seal_writes: bool,
}

impl Default for SqliteOptions {
    /// A 5 s busy timeout, `synchronous=FULL`, no keys (plain records).
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            synchronous_full: true,
            keys: None,
            seal_writes: true,
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

    /// Seals every record written under the newest key of `keys`, and
    /// opens records sealed under any of them (recommended; see
    /// [`Keyring`] and `docs/encryption-at-rest.md`). Plain records are
    /// still read, and sealed on their next write or by
    /// [`SqliteStore::reseal`].
    pub fn keys(mut self, keys: Keyring) -> Self {
        self.keys = Some(keys);
        self
    }

    /// With [`keys`](Self::keys): `true` (the default) seals writes;
    /// `false` writes plain JSON while still opening sealed records, and
    /// [`SqliteStore::reseal`] then unseals every record (to go back to a
    /// build without sealing).
    pub fn seal_writes(mut self, seal: bool) -> Self {
        self.seal_writes = seal;
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
/// - With [`SqliteOptions::keys`], records are sealed (the tokens never
///   reach the file or its WAL in clear); deleted and rewritten rows are
///   overwritten with zeros (`secure_delete`) either way.
/// - A row that is not a readable record (a key that is not UTF-8 text, a
///   record that is not JSON, a sealed record that does not open, …) is
///   reported by [`load_page`](GrantStore::load_page), never fatal.
///
/// Cheap to clone (shared connection).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    codec: Codec,
    busy_timeout: Duration,
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
        let codec = Codec::new(options.keys.clone(), options.seal_writes);
        let busy_timeout = options.busy_timeout;
        let conn = tokio::task::spawn_blocking(move || open_blocking(&p, &options))
            .await
            .map_err(|e| StoreError::backend(STORE, e))??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
            codec,
            busy_timeout,
        })
    }

    /// Rewrites every readable record as the store writes now: sealed
    /// under the keyring's newest key (plain records of earlier versions,
    /// and records of older keys after a rotation), or plain with
    /// [`SqliteOptions::seal_writes`]`(false)`. Then truncates the WAL, so
    /// no earlier copy of a rewritten row stays in it.
    ///
    /// Safe while the service serves, from this process or another: page
    /// by page (256 rows), each row is rewritten only if it still holds
    /// the version and the exact text read; a row written in between is
    /// left alone and counted in [`ResealReport::changed`]. The record's
    /// version does not change, so no engine sees a conflict. Unreadable
    /// rows are left alone and listed. Run one reseal at a time.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the database fails; the rows rewritten
    /// so far stay rewritten, and running it again goes on.
    pub async fn reseal(&self) -> Result<ResealReport, StoreError> {
        let report = reseal(self, &self.codec).await?;
        self.with(|conn| {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(db)
        })
        .await?;
        Ok(report)
    }

    /// The `webhookId`s accepted by the webhook routes of every process on
    /// this file (the `hoopai_webhook_ids` table), sharing this store's
    /// connection: see [`SqliteWebhookIds`]. A
    /// [`TokenService`](crate::TokenService) on this store gives it to its
    /// routes by itself.
    #[must_use]
    pub fn webhook_ids(&self) -> SqliteWebhookIds {
        SqliteWebhookIds::new(Arc::clone(&self.conn), self.busy_timeout)
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
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; PRAGMA secure_delete=ON;"
    ))
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

/// A row of `SELECT grant_id, version, record`, whatever its columns hold.
fn raw_row<'r>(row: &'r rusqlite::Row<'_>) -> Result<RawRow<'r>, StoreError> {
    let key = match row.get_ref(0).map_err(db)? {
        ValueRef::Text(bytes) => RowKey::from_text_bytes(bytes),
        ValueRef::Blob(bytes) => RowKey::Other {
            name: String::from_utf8_lossy(bytes).into_owned(),
            why: "the grant id is a BLOB, not text",
        },
        ValueRef::Integer(i) => RowKey::Other {
            name: i.to_string(),
            why: "the grant id is an integer, not text",
        },
        ValueRef::Real(r) => RowKey::Other {
            name: r.to_string(),
            why: "the grant id is a real number, not text",
        },
        ValueRef::Null => RowKey::Other {
            name: "NULL".to_owned(),
            why: "the grant id is NULL",
        },
    };
    Ok(RawRow {
        key,
        version: version_of(row.get_ref(1).map_err(db)?),
        text: text_of(row.get_ref(2).map_err(db)?),
    })
}

fn version_of(value: ValueRef<'_>) -> Result<u64, &'static str> {
    match value {
        ValueRef::Integer(v) => RawRow::version_from_i64(v),
        _ => Err("the version column is not an integer"),
    }
}

fn text_of(value: ValueRef<'_>) -> Result<&str, &'static str> {
    match value {
        ValueRef::Text(bytes) => RawRow::text_from_bytes(bytes),
        ValueRef::Blob(_) => Err("the record column is a BLOB, not text"),
        _ => Err("the record column is not text"),
    }
}

/// The stored row of `grant`, decoded.
fn current(
    conn: &Connection,
    codec: &Codec,
    grant: &str,
) -> Result<Option<GrantRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT version, record FROM hoopai_grants WHERE grant_id = ?1")
        .map_err(db)?;
    let mut rows = stmt.query([grant]).map_err(db)?;
    let Some(row) = rows.next().map_err(db)? else {
        return Ok(None);
    };
    let raw = RawRow {
        key: RowKey::Text(grant),
        version: version_of(row.get_ref(0).map_err(db)?),
        text: text_of(row.get_ref(1).map_err(db)?),
    };
    raw.read(codec).map(Some).map_err(StoreError::from)
}

/// Steps through the rows after `after` in key order (no SQL limit: the
/// caller stops when its page is full), handing each to `push` until it
/// answers `true`.
fn scan_rows(
    conn: &Connection,
    after: Option<&GrantId>,
    mut push: impl FnMut(&RawRow<'_>) -> bool,
) -> Result<(), StoreError> {
    let mut stmt;
    let mut rows = match after {
        Some(after) => {
            stmt = conn
                .prepare_cached(
                    "SELECT grant_id, version, record FROM hoopai_grants
                     WHERE grant_id > ?1 ORDER BY grant_id",
                )
                .map_err(db)?;
            stmt.query([after.as_str()])
        }
        None => {
            stmt = conn
                .prepare_cached(
                    "SELECT grant_id, version, record FROM hoopai_grants ORDER BY grant_id",
                )
                .map_err(db)?;
            stmt.query([])
        }
    }
    .map_err(db)?;
    while let Some(row) = rows.next().map_err(db)? {
        if push(&raw_row(row)?) {
            break;
        }
    }
    Ok(())
}

impl GrantStore for SqliteStore {
    async fn load(&self, grant: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        if grant.as_str().contains('\0') {
            // No write can store such an id (see `MAX_GRANT_ID_BYTES`).
            return Ok(None);
        }
        let grant = grant.clone();
        let codec = self.codec.clone();
        self.with(move |conn| current(conn, &codec, grant.as_str()))
            .await
    }

    async fn load_page(&self, after: Option<&GrantId>, limit: usize) -> Result<Page, StoreError> {
        let limit = page_limit(limit);
        let after = after.cloned();
        let codec = self.codec.clone();
        self.with(move |conn| {
            let mut page = PageBuilder::new(&codec, limit);
            scan_rows(conn, after.as_ref(), |row| page.push(row))?;
            Ok(page.finish())
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        record: &GrantRecord,
        replaces: Option<u64>,
    ) -> Result<WriteOutcome, StoreError> {
        check_write(record, replaces)?;
        let text = self.codec.encode(record)?;
        let grant = record.grant.clone();
        let version = to_i64(&grant, record.version)?;
        let replaces = replaces.map(|v| to_i64(&grant, v)).transpose()?;
        let codec = self.codec.clone();
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
                match current(&tx, &codec, grant.as_str())? {
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
        let text = self.codec.encode(record)?;
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
        if grant.as_str().contains('\0') {
            return Ok(false);
        }
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

    async fn claim_budget(&self, claim: &BudgetClaim) -> Result<ClaimOutcome, StoreError> {
        let claim = claim.clone();
        self.with(move |conn| {
            super::budget::claim_sqlite(conn, &claim, SystemTime::now()).map_err(db)
        })
        .await
    }

    fn shared_webhook_ids(&self) -> Option<Arc<dyn WebhookIds>> {
        Some(Arc::new(self.webhook_ids()))
    }
}

impl RawRows for SqliteStore {
    async fn scan(&self, after: Option<GrantId>, limit: usize) -> Result<Scan, StoreError> {
        self.with(move |conn| {
            let mut scan = Scan::default();
            let mut end = PageEnd::new(limit);
            scan_rows(conn, after.as_ref(), |row| scan.push(row, &mut end))?;
            Ok(scan)
        })
        .await
    }

    async fn rewrite(&self, rewrites: Vec<Rewrite>) -> Result<usize, StoreError> {
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db)?;
            let mut applied = 0;
            {
                let mut update = tx
                    .prepare_cached(
                        "UPDATE hoopai_grants SET record = ?4
                         WHERE grant_id = ?1 AND version = ?2 AND record = ?3",
                    )
                    .map_err(db)?;
                for w in &rewrites {
                    let grant = GrantId::new(&w.grant);
                    let version = to_i64(&grant, w.version)?;
                    applied += update
                        .execute(params![w.grant, version, w.old, w.new])
                        .map_err(db)?;
                }
            }
            tx.commit().map_err(db)?;
            Ok(applied)
        })
        .await
    }
}
