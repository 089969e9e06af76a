//! The `webhookId`s of the Postgres store's database, shared by every
//! process and machine that connects to it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hoopai_oauth::Recorded;
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::{
    Entry, ForgetFuture, PRUNE_BATCH, PruneTurns, RecordFuture, WEBHOOK_ID_CLOCK_SKEW, WebhookIds,
};
use crate::store::StoreError;

const STORE: &str = "postgres";

/// How the store connects (its `statement_timeout` set on each connection).
pub(crate) type Connect = dyn Fn() -> Pin<Box<dyn Future<Output = Result<Client, tokio_postgres::Error>> + Send>>
    + Send
    + Sync;

/// A connection and its prepared statements.
struct Conn {
    client: Client,
    insert: Statement,
    prune: Statement,
    forget: Statement,
    unclaim: Statement,
}

/// The [`WebhookIds`] of a [`PostgresStore`](crate::PostgresStore): the
/// `hoopai_webhook_ids` table of its database, so every process and
/// machine on it refuses a delivery any of them accepted. Get it with
/// [`PostgresStore::webhook_ids`](crate::PostgresStore::webhook_ids); a
/// [`TokenService`](crate::TokenService) on the store hands it to its
/// routes by itself.
///
/// - Recording is one `INSERT … ON CONFLICT DO NOTHING` (atomic in any
///   isolation level; its row count is the answer). Every [`PRUNE_EVERY`](super::PRUNE_EVERY)th
///   call pipelines with it the deletion of up to [`PRUNE_BATCH`] expired
///   rows (`FOR UPDATE SKIP LOCKED`: processes pruning at once never wait
///   for each other).
/// - It has a connection of its own, made as the store makes its own (same
///   settings and TLS), when first needed and again after it drops.
/// - Every statement is bounded by the server
///   ([`STATEMENT_TIMEOUT_MS`](crate::STATEMENT_TIMEOUT_MS)), and a whole
///   call, connecting included, by that plus 5 s. A call that failed in a
///   way that may have left its row (the connection dropped, the time ran
///   out) removes that row again, and only that row.
///
/// Cheap to clone (shared connection).
#[derive(Clone)]
pub struct PostgresWebhookIds {
    connect: Arc<Connect>,
    conn: Arc<Mutex<Option<Arc<Conn>>>>,
    call_timeout: Duration,
    skew: Duration,
    turns: PruneTurns,
}

impl std::fmt::Debug for PostgresWebhookIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresWebhookIds")
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

fn db(e: &tokio_postgres::Error) -> StoreError {
    // The server's message and SQLSTATE; its detail, which may quote the
    // id, is left out.
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

impl PostgresWebhookIds {
    /// Ids recorded through connections `connect` makes, each call bounded
    /// by `call_timeout`.
    pub(crate) fn new(connect: Arc<Connect>, call_timeout: Duration) -> Self {
        PostgresWebhookIds {
            connect,
            conn: Arc::new(Mutex::new(None)),
            call_timeout,
            skew: WEBHOOK_ID_CLOCK_SKEW,
            turns: PruneTurns::default(),
        }
    }

    /// How much the clocks of the processes on the database may disagree
    /// (default [`WEBHOOK_ID_CLOCK_SKEW`]): each id is kept this long past
    /// its delivery's window.
    #[must_use]
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
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
        let client = (self.connect)().await.map_err(|e| db(&e))?;
        let p = |sql: &'static str| {
            let client = &client;
            async move { client.prepare(sql).await.map_err(|e| db(&e)) }
        };
        let insert = p(
            "INSERT INTO hoopai_webhook_ids (webhook_id, expires_at, claim)
             VALUES ($1, $2, $3) ON CONFLICT (webhook_id) DO NOTHING",
        )
        .await?;
        // By `ctid`: a join on the key made the planner's work the
        // larger part of a prune.
        let prune = p("DELETE FROM hoopai_webhook_ids WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM hoopai_webhook_ids WHERE expires_at < $1
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))")
        .await?;
        let forget = p("DELETE FROM hoopai_webhook_ids WHERE webhook_id = $1").await?;
        let unclaim =
            p("DELETE FROM hoopai_webhook_ids WHERE webhook_id = $1 AND claim = $2").await?;
        let conn = Arc::new(Conn {
            client,
            insert,
            prune,
            forget,
            unclaim,
        });
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Inserts the entry if its id is absent, pipelined with a prune if it
    /// is its turn. `Err(true)` when the insert may have landed all the
    /// same.
    async fn insert(&self, entry: &Entry) -> Result<Recorded, (StoreError, bool)> {
        let conn = self.conn().await.map_err(|e| (e, false))?;
        let limit = i64::try_from(PRUNE_BATCH).unwrap_or(i64::MAX);
        let insert: [&(dyn ToSql + Sync); 3] = [&entry.id, &entry.expires_ms, &entry.claim];
        let prune: [&(dyn ToSql + Sync); 2] = [&entry.now_ms, &limit];
        let pruning = async {
            if entry.prune {
                conn.client.execute(&conn.prune, &prune).await.map(|_| ())
            } else {
                Ok(())
            }
        };
        let (inserted, pruned) = tokio::join!(conn.client.execute(&conn.insert, &insert), pruning);
        if let Err(e) = pruned {
            tracing::warn!(error = %db(&e), "pruning expired webhookIds failed");
        }
        // A statement the server refused was rolled back; any other failure
        // (the connection dropped) leaves its fate unknown.
        inserted
            .map(super::recorded)
            .map_err(|e| (db(&e), e.as_db_error().is_none()))
    }

    /// Removes the row `entry` inserted, if it is still its own.
    async fn unclaim(&self, entry: &Entry) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.client
            .execute(&conn.unclaim, &[&entry.id, &entry.claim])
            .await
            .map_err(|e| db(&e))?;
        Ok(())
    }
}

impl WebhookIds for PostgresWebhookIds {
    fn record<'a>(
        &'a self,
        webhook_id: &'a str,
        timestamp: SystemTime,
        now: SystemTime,
        window: Duration,
    ) -> RecordFuture<'a> {
        Box::pin(async move {
            let mut entry = match Entry::new(STORE, webhook_id, timestamp, now, window, self.skew)?
            {
                Ok(entry) => entry,
                Err(answer) => return Ok(answer),
            };
            entry.prune = self.turns.next();
            let (error, may_have_landed) =
                match tokio::time::timeout(self.call_timeout, self.insert(&entry)).await {
                    Ok(Ok(recorded)) => return Ok(recorded),
                    Ok(Err(failed)) => failed,
                    Err(_) => (
                        StoreError::backend(
                            STORE,
                            format!("recording a webhookId took over {:?}", self.call_timeout),
                        ),
                        true,
                    ),
                };
            if may_have_landed {
                let this = self.clone();
                tokio::spawn(async move {
                    let undo = this.unclaim(&entry);
                    if let Err(e) = tokio::time::timeout(this.call_timeout, undo)
                        .await
                        .unwrap_or_else(|_| Err(StoreError::backend(STORE, "timed out")))
                    {
                        tracing::warn!(error = %e, "a webhookId whose recording failed may stay recorded");
                    }
                });
            }
            Err(error)
        })
    }

    fn forget<'a>(&'a self, webhook_id: &'a str) -> ForgetFuture<'a> {
        Box::pin(async move {
            let call = async {
                let conn = self.conn().await?;
                conn.client
                    .execute(&conn.forget, &[&webhook_id.as_bytes()])
                    .await
                    .map_err(|e| db(&e))?;
                Ok(())
            };
            tokio::time::timeout(self.call_timeout, call)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::backend(
                        STORE,
                        "forgetting a webhookId timed out",
                    ))
                })
        })
    }
}
