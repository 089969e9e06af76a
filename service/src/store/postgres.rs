//! The store for several processes or machines: PostgreSQL (tokio-postgres).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hoopai_oauth::{BudgetClaim, ClaimOutcome, GrantId, GrantRecord, HOLDERS_WINDOWS};
use tokio::sync::Mutex;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, NoTls, Row, Socket, Statement};

use hoopai_oauth::WriteOutcome;

use super::keys::Keyring;
use super::reseal::{RawRows, ResealReport, Rewrite, Scan, reseal};
use super::rows::{PageBuilder, PageEnd, RawRow, RowKey, holds_page};
use super::seal::Codec;
use super::webhook_ids::postgres::Connect;
use super::webhook_ids::{PostgresWebhookIds, WebhookIds};
use super::{GrantStore, Page, StoreError, check_write, page_limit};

const STORE: &str = "postgres";

/// The schema migrations, in order; `hoopai_schema_migrations` lists those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_grants.sql"),
    include_str!("../../migrations/postgres/0002_webhook_ids.sql"),
    include_str!("../../migrations/postgres/0003_request_budget.sql"),
];

/// How long one statement may run before the server cancels it
/// (`statement_timeout`, set on every connection): a table locked by
/// another session, or a server that stalls, fails a call in bounded time,
/// with the server's own error, rather than holding it for good.
pub const STATEMENT_TIMEOUT_MS: u64 = 5_000;

/// The advisory lock that serializes migrations across processes ("hoopai").
const MIGRATION_LOCK: i64 = 0x686f_6f70_6169;

/// A connection and its prepared statements.
struct Conn {
    client: Client,
    load: Statement,
    first_page: Statement,
    page: Statement,
    insert: Statement,
    update: Statement,
    upsert: Statement,
    delete: Statement,
    rewrite: Statement,
}

/// A [`GrantStore`] in a PostgreSQL table, `hoopai_grants`, for several
/// processes or machines sharing grants (the engine's shared-store mode).
///
/// - Compare-and-swap is one conditional `INSERT … ON CONFLICT DO NOTHING`
///   or `UPDATE … WHERE version = $replaces`: atomic in any isolation level.
/// - The schema lives in the package's `migrations/postgres/`, applied at
///   connect under an advisory lock (several processes may start at once).
///   Tables are created in the connection's `search_path` schema.
/// - One connection, pipelined by all callers; if it drops, the next call
///   connects again. Every statement is bounded by the server
///   ([`STATEMENT_TIMEOUT_MS`]).
///
/// Tokens sit in the `record` column as JSON text, or sealed with
/// [`with_keys`](Self::with_keys) (recommended). Restrict the table to the
/// service's role, and connect with TLS off loopback
/// ([`connect_with`](Self::connect_with)).
///
/// Rows are read as bytes: a row that is not a readable record (a record
/// that is not JSON, a sealed record that does not open, text that is not
/// UTF-8 in a `SQL_ASCII` database) is reported by
/// [`load_page`](GrantStore::load_page), never fatal.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    connect: Arc<Connect>,
    conn: Arc<Mutex<Option<Arc<Conn>>>>,
    codec: Codec,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects without TLS to `url` (`postgres://user@127.0.0.1:5432/db`,
    /// or key-value form) and brings the schema up to date. Without TLS the
    /// tokens cross the network in clear: use it on loopback or a private
    /// socket only, else [`connect_with`](Self::connect_with).
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the URL is invalid, the server unreachable
    /// or the migration fails.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config: Config = url.parse().map_err(|e| StoreError::backend(STORE, e))?;
        Self::connect_with(config, NoTls).await
    }

    /// Connects with `config` through `tls` (any `tokio-postgres` TLS
    /// connector, e.g. from `tokio-postgres-rustls`), and brings the schema
    /// up to date.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the server is unreachable or the migration fails.
    pub async fn connect_with<T>(config: Config, tls: T) -> Result<Self, StoreError>
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let connect: Arc<Connect> = Arc::new(move || {
            let config = config.clone();
            let tls = tls.clone();
            Box::pin(async move {
                let (client, connection) = config.connect(tls).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "postgres connection closed");
                    }
                });
                client
                    .batch_execute(&format!("SET statement_timeout = {STATEMENT_TIMEOUT_MS}"))
                    .await?;
                Ok(client)
            })
        });
        let store = PostgresStore {
            connect,
            conn: Arc::new(Mutex::new(None)),
            codec: Codec::default(),
        };
        let mut client = (store.connect)().await.map_err(db)?;
        migrate(&mut client).await?;
        let conn = prepare(client).await?;
        *store.conn.lock().await = Some(Arc::new(conn));
        Ok(store)
    }

    /// This store, sealing every record written under the newest key of
    /// `keys` and opening records sealed under any of them (recommended;
    /// see [`Keyring`] and `docs/encryption-at-rest.md`). Plain records are
    /// still read, and sealed on their next write or by
    /// [`reseal`](Self::reseal). Handles cloned from it share the
    /// connection and the keys; earlier clones keep their own setting.
    #[must_use]
    pub fn with_keys(mut self, keys: Keyring) -> Self {
        self.codec = Codec::new(Some(keys), true);
        self
    }

    /// With [`with_keys`](Self::with_keys): `true` (the default) seals
    /// writes; `false` writes plain JSON while still opening sealed
    /// records, and [`reseal`](Self::reseal) then unseals every record (to
    /// go back to a build without sealing).
    #[must_use]
    pub fn seal_writes(mut self, seal: bool) -> Self {
        self.codec = self.codec.with_seal_writes(seal);
        self
    }

    /// Rewrites every readable record as the store writes now: sealed
    /// under the keyring's newest key (plain records of earlier versions,
    /// and records of older keys after a rotation), or plain with
    /// [`seal_writes`](Self::seal_writes)`(false)`.
    ///
    /// Safe while services serve, from any process: page by page (256
    /// rows, one `UPDATE` each), each row is rewritten only if it still
    /// holds the version and the exact text read; a row written in between
    /// is left alone and counted in [`ResealReport::changed`]. The record's
    /// version does not change, so no engine sees a conflict. Unreadable
    /// rows are left alone and listed. Run one reseal at a time. The old
    /// row versions stay in the table's files until `VACUUM` reclaims them
    /// (`VACUUM FULL` rewrites the table), and in earlier backups.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the database fails; the rows rewritten
    /// so far stay rewritten, and running it again goes on.
    pub async fn reseal(&self) -> Result<ResealReport, StoreError> {
        reseal(self, &self.codec).await
    }

    /// The `webhookId`s accepted by the webhook routes of every process on
    /// this database (the `hoopai_webhook_ids` table), through a connection
    /// of its own made as this store's are: see [`PostgresWebhookIds`]. A
    /// [`TokenService`](crate::TokenService) on this store gives it to its
    /// routes by itself.
    #[must_use]
    pub fn webhook_ids(&self) -> PostgresWebhookIds {
        PostgresWebhookIds::new(
            Arc::clone(&self.connect),
            Duration::from_millis(STATEMENT_TIMEOUT_MS) + Duration::from_secs(5),
        )
    }

    /// The rows after `after` in key order, at least a page's worth as
    /// [`PageEnd`] counts it (or up to the end of the table).
    async fn page_rows(
        &self,
        after: Option<&GrantId>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let conn = self.conn().await?;
        let mut asked = limit;
        loop {
            let asked_sql = i64::try_from(asked).unwrap_or(i64::MAX);
            let rows = match after {
                Some(after) => {
                    conn.client
                        .query(&conn.page, &[&after.as_str(), &asked_sql])
                        .await
                }
                None => conn.client.query(&conn.first_page, &[&asked_sql]).await,
            }
            .map_err(db)?;
            let cursors = rows.iter().map(|r| {
                r.try_get::<_, &[u8]>(0)
                    .is_ok_and(|k| std::str::from_utf8(k).is_ok())
            });
            if holds_page(cursors, limit, asked) {
                return Ok(rows);
            }
            // The page would end on a key that is not UTF-8 (a `SQL_ASCII`
            // database): read further.
            asked = asked.saturating_mul(2);
        }
    }

    /// The live connection, connecting again if it dropped.
    async fn conn(&self) -> Result<Arc<Conn>, StoreError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.client.is_closed()
        {
            return Ok(Arc::clone(conn));
        }
        *slot = None;
        let client = (self.connect)().await.map_err(db)?;
        let conn = Arc::new(prepare(client).await?);
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }
}

fn db(e: tokio_postgres::Error) -> StoreError {
    // The server's message and SQLSTATE; its detail, which may quote row
    // values, is left out.
    match e.as_db_error() {
        Some(d) => StoreError::backend(
            STORE,
            format!(
                "{}: {} (SQLSTATE {})",
                d.severity(),
                d.message(),
                d.code().code()
            ),
        ),
        None => StoreError::backend(STORE, e),
    }
}

async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS hoopai_schema_migrations (
             version    INTEGER     NOT NULL PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(db)?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM hoopai_schema_migrations",
            &[],
        )
        .await
        .map_err(db)?
        .get(0);
    let applied = usize::try_from(applied).unwrap_or(0);
    StoreError::check_schema(STORE, applied, MIGRATIONS.len())?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).await.map_err(db)?;
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO hoopai_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

async fn prepare(client: Client) -> Result<Conn, StoreError> {
    let p = |sql: &'static str| {
        let client = &client;
        async move { client.prepare(sql).await.map_err(db) }
    };
    // Keys and records are read as their bytes (`convert_to(…, 'SQL_ASCII')`
    // passes them through unchecked): text that is not UTF-8, possible in a
    // `SQL_ASCII` database, would otherwise fail the whole query.
    let load =
        p("SELECT version, convert_to(record, 'SQL_ASCII') FROM hoopai_grants WHERE grant_id = $1")
            .await?;
    let first_page = p(
        "SELECT convert_to(grant_id, 'SQL_ASCII'), version, convert_to(record, 'SQL_ASCII')
         FROM hoopai_grants ORDER BY grant_id LIMIT $1",
    )
    .await?;
    let page = p(
        "SELECT convert_to(grant_id, 'SQL_ASCII'), version, convert_to(record, 'SQL_ASCII')
         FROM hoopai_grants WHERE grant_id > $1 ORDER BY grant_id LIMIT $2",
    )
    .await?;
    let insert = p(
        "INSERT INTO hoopai_grants (grant_id, version, record) VALUES ($1, $2, $3)
                    ON CONFLICT (grant_id) DO NOTHING",
    )
    .await?;
    let update = p(
        "UPDATE hoopai_grants SET version = $2, record = $3, updated_at = now()
                    WHERE grant_id = $1 AND version = $4",
    )
    .await?;
    let upsert = p(
        "INSERT INTO hoopai_grants (grant_id, version, record) VALUES ($1, $2, $3)
                    ON CONFLICT (grant_id) DO UPDATE SET version = EXCLUDED.version,
                        record = EXCLUDED.record, updated_at = now()",
    )
    .await?;
    let delete = p("DELETE FROM hoopai_grants WHERE grant_id = $1").await?;
    let rewrite = p(
        "UPDATE hoopai_grants AS g SET record = w.new
         FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[]) AS w(grant_id, version, old, new)
         WHERE g.grant_id = w.grant_id AND g.version = w.version AND g.record = w.old",
    )
    .await?;
    Ok(Conn {
        client,
        load,
        first_page,
        page,
        insert,
        update,
        upsert,
        delete,
        rewrite,
    })
}

fn to_i64(grant: &GrantId, version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::InvalidWrite {
        grant: grant.clone(),
        reason: format!("version {version} does not fit a BIGINT"),
    })
}

/// A row of a page query (`grant_id`, `version`, `record` as bytes).
fn raw_row(row: &Row) -> Result<RawRow<'_>, StoreError> {
    let key: &[u8] = row.try_get(0).map_err(db)?;
    Ok(RawRow {
        key: RowKey::from_text_bytes(key),
        version: version_of(row, 1),
        text: text_of(row, 2),
    })
}

fn version_of(row: &Row, i: usize) -> Result<u64, &'static str> {
    row.try_get::<_, i64>(i)
        .map_err(|_| "the version column is not a BIGINT")
        .and_then(RawRow::version_from_i64)
}

fn text_of(row: &Row, i: usize) -> Result<&str, &'static str> {
    row.try_get::<_, &[u8]>(i)
        .map_err(|_| "the record column is not text")
        .and_then(RawRow::text_from_bytes)
}

async fn current(
    conn: &Conn,
    codec: &Codec,
    grant: &GrantId,
) -> Result<Option<GrantRecord>, StoreError> {
    let row = conn
        .client
        .query_opt(&conn.load, &[&grant.as_str()])
        .await
        .map_err(db)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let raw = RawRow {
        key: RowKey::Text(grant.as_str()),
        version: version_of(&row, 0),
        text: text_of(&row, 1),
    };
    raw.read(codec).map(Some).map_err(StoreError::from)
}

impl GrantStore for PostgresStore {
    async fn load(&self, grant: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        if grant.as_str().contains('\0') {
            // Postgres text cannot hold NUL: nothing is stored under it.
            return Ok(None);
        }
        let conn = self.conn().await?;
        current(&conn, &self.codec, grant).await
    }

    async fn load_page(&self, after: Option<&GrantId>, limit: usize) -> Result<Page, StoreError> {
        let limit = page_limit(limit);
        let rows = self.page_rows(after, limit).await?;
        let mut page = PageBuilder::new(&self.codec, limit);
        for row in &rows {
            if page.push(&raw_row(row)?) {
                break;
            }
        }
        Ok(page.finish())
    }

    async fn compare_and_swap(
        &self,
        record: &GrantRecord,
        replaces: Option<u64>,
    ) -> Result<WriteOutcome, StoreError> {
        check_write(record, replaces)?;
        let text = self.codec.encode(record)?;
        let grant = &record.grant;
        let version = to_i64(grant, record.version)?;
        let conn = self.conn().await?;
        // A row can change between a lost write and the read of what it
        // lost to: read until the answer is consistent with the loss.
        for _ in 0..8 {
            let changed = match replaces {
                None => {
                    conn.client
                        .execute(&conn.insert, &[&grant.as_str(), &version, &text])
                        .await
                }
                Some(old) => {
                    let old = to_i64(grant, old)?;
                    conn.client
                        .execute(&conn.update, &[&grant.as_str(), &version, &text, &old])
                        .await
                }
            }
            .map_err(db)?;
            if changed == 1 {
                return Ok(WriteOutcome::Written);
            }
            match (current(&conn, &self.codec, grant).await?, replaces) {
                (Some(stored), _) if Some(stored.version) != replaces => {
                    return Ok(WriteOutcome::Conflict(Box::new(stored)));
                }
                (None, Some(_)) => return Ok(WriteOutcome::NoRecord),
                // Deleted, or put back at the version replaced, in between: again.
                _ => {}
            }
        }
        Err(StoreError::backend(
            STORE,
            format!("grant {grant} kept changing during a compare-and-swap"),
        ))
    }

    async fn put(&self, record: &GrantRecord) -> Result<(), StoreError> {
        check_write(record, None)?;
        let text = self.codec.encode(record)?;
        let version = to_i64(&record.grant, record.version)?;
        let conn = self.conn().await?;
        conn.client
            .execute(&conn.upsert, &[&record.grant.as_str(), &version, &text])
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn delete(&self, grant: &GrantId) -> Result<bool, StoreError> {
        if grant.as_str().contains('\0') {
            return Ok(false);
        }
        let conn = self.conn().await?;
        let n = conn
            .client
            .execute(&conn.delete, &[&grant.as_str()])
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn claim_budget(&self, claim: &BudgetClaim) -> Result<ClaimOutcome, StoreError> {
        let whole = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        let window = i64::try_from(claim.window.as_millis()).unwrap_or(i64::MAX);
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_one(
                "SELECT sends, others, holders, next_free_ms \
                 FROM hoopai_claim_budget($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &claim.key,
                    &claim.holder,
                    &whole(claim.sends),
                    &whole(claim.others),
                    &whole(claim.max),
                    &whole(claim.others_max),
                    &window,
                    &whole(HOLDERS_WINDOWS),
                ],
            )
            .await
            .map_err(db)?;
        let count = |i: usize| -> u32 { u32::try_from(row.get::<_, i32>(i)).unwrap_or(0) };
        let next_free: i64 = row.get(3);
        Ok(ClaimOutcome::Granted {
            sends: count(0),
            others: count(1),
            holders: count(2),
            next_free_in: Duration::from_millis(u64::try_from(next_free).unwrap_or(0)),
        })
    }

    fn shared_webhook_ids(&self) -> Option<Arc<dyn WebhookIds>> {
        Some(Arc::new(self.webhook_ids()))
    }
}

impl RawRows for PostgresStore {
    async fn scan(&self, after: Option<GrantId>, limit: usize) -> Result<Scan, StoreError> {
        let rows = self.page_rows(after.as_ref(), limit).await?;
        let mut scan = Scan::default();
        let mut end = PageEnd::new(limit);
        for row in &rows {
            if scan.push(&raw_row(row)?, &mut end) {
                break;
            }
        }
        Ok(scan)
    }

    async fn rewrite(&self, rewrites: Vec<Rewrite>) -> Result<usize, StoreError> {
        let mut grants = Vec::with_capacity(rewrites.len());
        let mut versions = Vec::with_capacity(rewrites.len());
        let mut olds = Vec::with_capacity(rewrites.len());
        let mut news = Vec::with_capacity(rewrites.len());
        for w in rewrites {
            versions.push(to_i64(&GrantId::new(&w.grant), w.version)?);
            grants.push(w.grant);
            olds.push(w.old);
            news.push(w.new);
        }
        let conn = self.conn().await?;
        let n = conn
            .client
            .execute(&conn.rewrite, &[&grants, &versions, &olds, &news])
            .await
            .map_err(db)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
