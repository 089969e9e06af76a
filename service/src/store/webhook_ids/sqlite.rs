//! The `webhookId`s of the SQLite store's file, shared by every process
//! that opens it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hoopai_oauth::Recorded;
use rusqlite::{Connection, TransactionBehavior, params};

use super::{
    Entry, ForgetFuture, PRUNE_BATCH, PruneTurns, RecordFuture, WEBHOOK_ID_CLOCK_SKEW, WebhookIds,
};
use crate::store::StoreError;

const STORE: &str = "sqlite";

/// The [`WebhookIds`] of a [`SqliteStore`](crate::SqliteStore): the
/// `hoopai_webhook_ids` table of its file, so every process on the file
/// refuses a delivery any of them accepted. Get it with
/// [`SqliteStore::webhook_ids`](crate::SqliteStore::webhook_ids); a
/// [`TokenService`](crate::TokenService) on the store hands it to its
/// routes by itself.
///
/// - Recording is one `IMMEDIATE` transaction on the store's connection:
///   the insert (`ON CONFLICT DO NOTHING`, its row count the answer), and
///   every [`PRUNE_EVERY`](super::PRUNE_EVERY)th call the deletion of up to [`PRUNE_BATCH`]
///   expired rows.
/// - It runs on tokio's blocking pool. A call waits at most the store's
///   busy timeout for the connection and the file's lock, and fails
///   ([`StoreError::Backend`]) past that, before inserting; one that
///   inserted after its caller stopped waiting removes its row again.
///
/// Cheap to clone (the store's connection).
#[derive(Clone)]
pub struct SqliteWebhookIds {
    conn: Arc<Mutex<Connection>>,
    busy_timeout: Duration,
    skew: Duration,
    turns: PruneTurns,
}

impl std::fmt::Debug for SqliteWebhookIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWebhookIds")
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

impl SqliteWebhookIds {
    pub(crate) fn new(conn: Arc<Mutex<Connection>>, busy_timeout: Duration) -> Self {
        SqliteWebhookIds {
            conn,
            busy_timeout,
            skew: WEBHOOK_ID_CLOCK_SKEW,
            turns: PruneTurns::default(),
        }
    }

    /// How much the clocks of the processes on the file may disagree
    /// (default [`WEBHOOK_ID_CLOCK_SKEW`]): each id is kept this long past
    /// its delivery's window.
    #[must_use]
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Runs `f` on the connection on the blocking pool, unless the
    /// connection was not had within the busy timeout.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let deadline = Instant::now() + self.busy_timeout;
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            if Instant::now() > deadline {
                return Err(StoreError::backend(
                    STORE,
                    "the connection was busy past the busy timeout",
                ));
            }
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::backend(STORE, e))?
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::backend(STORE, e)
}

/// Inserts the entry if its id is absent, and prunes if it is its turn.
fn insert(conn: &mut Connection, entry: &Entry) -> Result<Recorded, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO hoopai_webhook_ids (webhook_id, expires_at, claim) VALUES (?1, ?2, ?3)
             ON CONFLICT (webhook_id) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![entry.id, entry.expires_ms, entry.claim]))
        .map_err(db)?;
    if entry.prune {
        tx.prepare_cached(
            "DELETE FROM hoopai_webhook_ids WHERE webhook_id IN (
                 SELECT webhook_id FROM hoopai_webhook_ids
                 WHERE expires_at < ?1 ORDER BY expires_at LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![entry.now_ms, PRUNE_BATCH as i64]))
        .map_err(db)?;
    }
    tx.commit().map_err(db)?;
    Ok(super::recorded(inserted as u64))
}

impl WebhookIds for SqliteWebhookIds {
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
            let call = {
                let entry = entry.clone();
                let this = self.clone();
                tokio::spawn(async move { this.with(move |conn| insert(conn, &entry)).await })
            };
            // The call waits at most the busy timeout for the connection,
            // then at most the busy timeout for the file's lock.
            let limit = self.busy_timeout * 2 + Duration::from_secs(1);
            let mut call = call;
            match tokio::time::timeout(limit, &mut call).await {
                Ok(joined) => joined.map_err(|e| StoreError::backend(STORE, e))?,
                Err(_) => {
                    // It may still insert: if it does, its row goes again.
                    let this = self.clone();
                    tokio::spawn(async move {
                        if let Ok(Ok(Recorded::New)) = call.await {
                            let _ = this.unclaim(entry).await;
                        }
                    });
                    Err(StoreError::backend(
                        STORE,
                        format!("recording a webhookId took over {limit:?}"),
                    ))
                }
            }
        })
    }

    fn forget<'a>(&'a self, webhook_id: &'a str) -> ForgetFuture<'a> {
        let id = webhook_id.as_bytes().to_vec();
        Box::pin(async move {
            self.with(move |conn| {
                conn.execute("DELETE FROM hoopai_webhook_ids WHERE webhook_id = ?1", [id])
                    .map_err(db)?;
                Ok(())
            })
            .await
        })
    }
}

impl SqliteWebhookIds {
    /// Removes the row `entry` inserted, if it is still its own.
    async fn unclaim(&self, entry: Entry) -> Result<(), StoreError> {
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM hoopai_webhook_ids WHERE webhook_id = ?1 AND claim = ?2",
                params![entry.id, entry.claim],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }
}
