//! Where grant records live: the [`GrantStore`] trait and its implementations.
//!
//! A grant's record ([`GrantRecord`], JSON) holds its refresh token, which
//! *is* the installation: refresh tokens are single-use (the crate README,
//! *Keeping tokens fresh: the engine*), and losing the newest one means the
//! customer must re-install the app. Every store here therefore writes
//! durably before it answers, and offers compare-and-swap on
//! [`GrantRecord::version`] so that several engines can share it (the
//! engine's shared-store mode).
//!
//! | Store | For | Where tokens sit at rest |
//! |---|---|---|
//! | [`SqliteStore`] (feature `sqlite`, default) | one process, embedded, one file | the database file and its `-wal` file, created with mode `0600`; sealed with a [`Keyring`] |
//! | [`PostgresStore`] (feature `postgres`, default) | several processes or machines | the `hoopai_grants` table of your database; sealed with a [`Keyring`] |
//! | [`MemoryStore`] | tests | process memory only; lost on exit |
//!
//! # Protecting tokens at rest
//!
//! Give the store a [`Keyring`] and it seals every record it writes:
//! XChaCha20-Poly1305 under the keyring's newest key, bound to the row's
//! grant id and version (see [`SealError`] and `docs/encryption-at-rest.md`).
//! The refresh and access tokens then never reach the database file, its
//! WAL, the Postgres table or their backups in clear. **Recommended for
//! every deployment.**
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use hoopai_oauth_service::{Keyring, PostgresStore, SqliteOptions, SqliteStore};
//! // HOOPAI_RECORD_KEYS="k2:<base64 of 32 bytes>,k1:<…>", newest first.
//! let keys = Keyring::from_env()?;
//! let sqlite = SqliteStore::open_with("grants.sqlite3", SqliteOptions::default().keys(keys.clone())).await?;
//! let postgres = PostgresStore::connect("postgres://app@127.0.0.1/app").await?.with_keys(keys);
//! # Ok(()) }
//! ```
//!
//! - Plain records (written without keys, or by earlier versions) are still
//!   read, and sealed on their next write; `reseal` (e.g.
//!   [`SqliteStore::reseal`]) seals them all at once while the service
//!   serves, and re-seals records of older keys after a rotation.
//! - A sealed record that does not open (its key is not in the keyring, or
//!   it was changed) is reported like a corrupt row, below.
//! - Grant ids, versions and timestamps stay in clear: they are the keys
//!   the stores compare on.
//!
//! Sealing or not, treat the store as you treat the client secret:
//!
//! - SQLite: [`SqliteStore::open`] creates the file with mode `0600` (owner
//!   read/write only; SQLite gives its `-wal` and `-shm` files the same mode)
//!   and warns through `tracing` when an existing file is readable by others.
//!   Deleted and rewritten rows are overwritten with zeros
//!   (`secure_delete`).
//! - Postgres: give the service its own role that owns only the
//!   `hoopai_grants` table (`GRANT`s for nobody else), connect with TLS
//!   ([`PostgresStore::connect_with`] takes any `tokio-postgres` TLS
//!   connector), and keep database backups as secret as the database.
//! - Never log a record: its `Debug` redacts tokens, but its JSON does not.
//!
//! # Errors and corrupted records
//!
//! Every operation returns a [`StoreError`]. A stored row that cannot be read
//! back as a record of this grant (not JSON, another schema, another grant's
//! id, a version that disagrees with the row's, a key that is not UTF-8
//! text, a record column that is not text) is a [`StoreError::Corrupt`]
//! naming the grant (a key that is no grant id is shown as lossy text,
//! shortened past [`MAX_GRANT_ID_BYTES`](hoopai_oauth::MAX_GRANT_ID_BYTES)), never a panic; a sealed record
//! that does not open is a [`StoreError::Sealed`] naming the grant and the
//! key id:
//!
//! - [`GrantStore::load`] returns it as the error;
//! - [`GrantStore::load_page`] puts it in [`Page::corrupt`] and goes on with the
//!   other rows, so one bad row never stops a restore;
//! - [`GrantStore::compare_and_swap`] returns it when the write lost and the
//!   stored row it lost to is corrupt. The row is left as it is for a human
//!   to look at: nothing is ever overwritten without compare-and-swap.
//!   (A compare-and-swap naming the row's exact version replaces it: that
//!   is how one repairs it.)
//!
//! # Grant ids
//!
//! A grant id is at most [`MAX_GRANT_ID_BYTES`](hoopai_oauth::MAX_GRANT_ID_BYTES) bytes of UTF-8 without a NUL
//! byte (Postgres text cannot hold NUL; a btree key must stay small). A
//! write of another id is refused with [`StoreError::InvalidWrite`], which
//! is not worth retrying; `load` of an id holding NUL finds nothing, and a
//! stored row whose id is longer (written by hand, or before the limit) is
//! reported as corrupt, never restored: a grant whose record cannot be
//! written back must not be refreshed.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use hoopai_oauth::{
    GrantId, GrantRecord, MAX_RECORD_VERSION, RECORD_SCHEMA, StoreFailure, WriteOutcome,
};
use serde_json::Value;

mod budget;
mod keys;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod reseal;
mod rows;
mod seal;
#[cfg(feature = "sqlite")]
mod sqlite;
mod webhook_ids;

pub use keys::{Keyring, KeyringError, MAX_KEY_ID_LEN, RECORD_KEYS_VAR, RecordKey};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, STATEMENT_TIMEOUT_MS};
pub use reseal::ResealReport;
pub use seal::{SEALED_PREFIX, SealError, SealErrorKind};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore};
#[cfg(feature = "postgres")]
pub use webhook_ids::PostgresWebhookIds;
#[cfg(feature = "sqlite")]
pub use webhook_ids::SqliteWebhookIds;
pub use webhook_ids::{
    ForgetFuture, PRUNE_BATCH, PRUNE_EVERY, RecordFuture, WEBHOOK_ID_CLOCK_SKEW, WebhookIds,
};

/// How many records [`GrantStore::load_page`] returns at most when the
/// caller asks for more, and what the service asks for at start-up.
pub const DEFAULT_PAGE_SIZE: usize = 1_000;

// The longest grant id a store keeps: the engine's limit (Location and
// Company ids are about 20 bytes; the limit keeps Postgres index keys small).
pub(crate) use hoopai_oauth::MAX_GRANT_ID_BYTES;

/// A stored row that cannot be read back as the record of its grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRecord {
    /// The grant (the row's key).
    pub grant: GrantId,
    /// The version column of the row, if the store has one and it was readable.
    pub version: Option<u64>,
    /// What is wrong, for humans. Quoted values longer than 16 characters are
    /// redacted, so no token reaches it.
    pub reason: String,
}

impl fmt::Display for CorruptRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the stored record of grant {} is unreadable: {}",
            GrantName(self.grant.as_str()),
            self.reason
        )
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stored row is not a readable record of its grant; see [`CorruptRecord`].
    #[error("{0}")]
    Corrupt(CorruptRecord),
    /// A stored row is a sealed record that does not open: its key is not
    /// in the store's [`Keyring`], or it was changed; see [`SealError`].
    #[error("{0}")]
    Sealed(SealError),
    /// The write was refused before reaching the database: the record's
    /// version does not go up from the one it replaces, or is above
    /// [`MAX_RECORD_VERSION`], or its grant id is not one a store can keep
    /// (see [`MAX_GRANT_ID_BYTES`](hoopai_oauth::MAX_GRANT_ID_BYTES)). Retrying cannot help.
    #[error("write of grant {} refused: {reason}", GrantName(grant.as_str()))]
    InvalidWrite {
        /// The grant.
        grant: GrantId,
        /// Why.
        reason: String,
    },
    /// A `webhookId` no store keeps: over
    /// [`MAX_WEBHOOK_ID_BYTES`](hoopai_oauth::MAX_WEBHOOK_ID_BYTES) (the
    /// webhook parser refuses those first). Retrying cannot help.
    #[error("webhookId refused: {reason}")]
    InvalidWebhookId {
        /// Why.
        reason: String,
    },
    /// The database failed (I/O, connection lost, locked past the busy
    /// timeout, migration failed, …). The operation may be retried.
    #[error("{store} store: {message}")]
    Backend {
        /// Which store (`"sqlite"`, `"postgres"`, `"memory"`).
        store: &'static str,
        /// The database's message (it holds no record data).
        message: String,
    },
}

impl StoreError {
    pub(crate) fn backend(store: &'static str, error: impl fmt::Display) -> Self {
        StoreError::Backend {
            store,
            message: error.to_string(),
        }
    }

    /// Refuses a database whose schema (`applied` migrations) is newer than
    /// the `known` migrations of this build: it was written by a later
    /// version, and reading it could drop what it added.
    pub(crate) fn check_schema(
        store: &'static str,
        applied: usize,
        known: usize,
    ) -> Result<(), Self> {
        if applied > known {
            return Err(StoreError::backend(
                store,
                format!("the database is at schema {applied}, newer than this build's {known}"),
            ));
        }
        Ok(())
    }
}

impl From<StoreError> for StoreFailure {
    fn from(e: StoreError) -> Self {
        StoreFailure::new(e)
    }
}

/// One page of [`GrantStore::load_page`], in grant id order (byte order).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Page {
    /// The readable records.
    pub records: Vec<GrantRecord>,
    /// The rows that could not be read (they count toward the page size),
    /// sealed records that do not open among them (see [`SealError`]).
    pub corrupt: Vec<CorruptRecord>,
    /// Where the next page starts (pass it as `after`); `None` on the last page.
    pub next: Option<GrantId>,
}

/// A durable home for grant records, with compare-and-swap on
/// [`GrantRecord::version`].
///
/// Implementations must be safe to call from many tasks at once: two
/// concurrent compare-and-swaps replacing the same version never both win.
/// Every method is async; blocking work runs off the async runtime.
pub trait GrantStore: Send + Sync + 'static {
    /// The stored record of `grant`, if any.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the row is unreadable; [`StoreError::Backend`].
    fn load(
        &self,
        grant: &GrantId,
    ) -> impl Future<Output = Result<Option<GrantRecord>, StoreError>> + Send;

    /// Up to `limit` rows (at least 1, at most [`DEFAULT_PAGE_SIZE`]·10)
    /// with a grant id greater than `after`, in grant id order. Restoring
    /// 100,000 grants page by page needs memory for one page beyond the
    /// records themselves.
    ///
    /// A page never ends on a row whose key cannot be handed back as
    /// `after` (not UTF-8 text, possible in SQLite or a `SQL_ASCII` Postgres
    /// database): it goes on to the next row that can, so a run of such rows
    /// makes it longer than `limit`. Every row is in exactly one page.
    ///
    /// # Errors
    /// [`StoreError::Backend`]. Unreadable rows are not errors: they are in
    /// [`Page::corrupt`].
    fn load_page(
        &self,
        after: Option<&GrantId>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Writes `record` (keyed by `record.grant`) only if the stored version
    /// is `replaces`; `replaces: None` writes only if nothing is stored
    /// (create-only). Answers, as the engine takes it
    /// ([`Engine::handle_write`](hoopai_oauth::Engine::handle_write)),
    /// [`WriteOutcome::Written`], [`WriteOutcome::Conflict`] with the stored
    /// record, or [`WriteOutcome::NoRecord`] when `replaces` is `Some` and
    /// nothing is stored; never [`WriteOutcome::Failed`] (that is the
    /// error, which a driver hands on as `Failed`).
    ///
    /// # Errors
    /// [`StoreError::InvalidWrite`] if `record.version` is not above
    /// `replaces` or above [`MAX_RECORD_VERSION`]; [`StoreError::Corrupt`] if
    /// the write lost to an unreadable row; [`StoreError::Backend`].
    fn compare_and_swap(
        &self,
        record: &GrantRecord,
        replaces: Option<u64>,
    ) -> impl Future<Output = Result<WriteOutcome, StoreError>> + Send;

    /// Writes `record` whatever is stored (the engine's single-process mode,
    /// where this process is the only writer).
    ///
    /// # Errors
    /// [`StoreError::InvalidWrite`] if the version is above
    /// [`MAX_RECORD_VERSION`]; [`StoreError::Backend`].
    fn put(&self, record: &GrantRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the record of `grant`; `true` if there was one.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    fn delete(&self, grant: &GrantId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Claims tokens of the request budget that every process on this
    /// store shares ([`EngineSettings::shared_budget`](hoopai_oauth::EngineSettings::shared_budget)),
    /// atomically, by the rules of [`BudgetClaim`](hoopai_oauth::BudgetClaim):
    /// the SQLite store in an `IMMEDIATE` transaction on its file, the
    /// Postgres store in one call of `hoopai_claim_budget` (serialized per
    /// key, timed by the server's clock), [`MemoryStore`] in its memory.
    ///
    /// # Errors
    /// [`StoreError::Backend`]; the default (a store of your own that keeps
    /// no budget) always fails, and engines on it keep to a local share.
    fn claim_budget(
        &self,
        claim: &hoopai_oauth::BudgetClaim,
    ) -> impl Future<Output = Result<hoopai_oauth::ClaimOutcome, StoreError>> + Send {
        let _ = claim;
        std::future::ready(Err(StoreError::backend(
            "store",
            "this store keeps no shared request budget",
        )))
    }

    /// Where the webhook routes of a [`TokenService`](crate::TokenService)
    /// on this store remember the `webhookId`s they accepted, if the store
    /// can hold them for every process that shares it: the SQLite and
    /// Postgres stores answer their `hoopai_webhook_ids` table. `None` (the
    /// default, and [`MemoryStore`]'s answer) leaves the routes an
    /// in-memory set of their own.
    fn shared_webhook_ids(&self) -> Option<Arc<dyn WebhookIds>> {
        None
    }
}

/// The page size actually used for a requested `limit`.
pub(crate) fn page_limit(limit: usize) -> usize {
    limit.clamp(1, DEFAULT_PAGE_SIZE * 10)
}

/// Checks a write before it reaches the database.
pub(crate) fn check_write(record: &GrantRecord, replaces: Option<u64>) -> Result<(), StoreError> {
    let refuse = |reason: String| {
        Err(StoreError::InvalidWrite {
            grant: record.grant.clone(),
            reason,
        })
    };
    if let Err(reason) = rows::storable(record.grant.as_str()) {
        return refuse(reason);
    }
    if record.version > MAX_RECORD_VERSION {
        return refuse(format!(
            "version {} is above the highest a store keeps ({MAX_RECORD_VERSION})",
            record.version
        ));
    }
    if let Some(old) = replaces
        && record.version <= old
    {
        return refuse(format!(
            "version {} does not go up from version {old} it replaces",
            record.version
        ));
    }
    Ok(())
}

/// The record as JSON text (what a store without keys writes).
pub(crate) fn encode_json(record: &GrantRecord) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|e| StoreError::InvalidWrite {
        grant: record.grant.clone(),
        reason: format!("not serializable: {e}"),
    })
}

/// Reads a plain JSON row back: it must be a record of this schema, of
/// this grant, at the row's version.
pub(crate) fn decode_json(
    grant: &str,
    version: Option<u64>,
    text: &str,
) -> Result<GrantRecord, CorruptRecord> {
    let corrupt = |reason: String| CorruptRecord {
        grant: GrantId::new(grant),
        version,
        reason,
    };
    let record: GrantRecord = match serde_json::from_str(text) {
        Ok(record) => record,
        Err(e) => {
            // Say "another schema" rather than a field error when that is why.
            let schema = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("schema").and_then(Value::as_u64));
            return Err(corrupt(match schema {
                Some(s) if s != u64::from(RECORD_SCHEMA) => {
                    format!("record of schema {s}; this build reads schema {RECORD_SCHEMA}")
                }
                _ => format!("not a grant record: {}", redact_quoted(&e.to_string())),
            }));
        }
    };
    if record.schema != RECORD_SCHEMA {
        return Err(corrupt(format!(
            "record of schema {}; this build reads schema {RECORD_SCHEMA}",
            record.schema
        )));
    }
    if record.grant.as_str() != grant {
        return Err(corrupt(format!(
            "the record names grant {}",
            redact_quoted(&format!("\"{}\"", record.grant))
        )));
    }
    if let Some(v) = version
        && v != record.version
    {
        return Err(corrupt(format!(
            "the row's version is {v} but the record's is {}",
            record.version
        )));
    }
    Ok(record)
}

/// A grant id (or any stored key) in a message: control characters
/// escaped, and past [`MAX_GRANT_ID_BYTES`](hoopai_oauth::MAX_GRANT_ID_BYTES) only its first 16 characters
/// and its length, so a token stored as a key is never printed.
pub(crate) struct GrantName<'a>(pub(crate) &'a str);

impl fmt::Display for GrantName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let escaped = |f: &mut fmt::Formatter<'_>, s: &mut dyn Iterator<Item = char>| {
            for c in s {
                if c.is_control() {
                    write!(f, "{}", c.escape_debug())?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            Ok(())
        };
        if self.0.len() > MAX_GRANT_ID_BYTES {
            escaped(f, &mut self.0.chars().take(16))?;
            write!(f, "…({} bytes)", self.0.len())
        } else {
            escaped(f, &mut self.0.chars())
        }
    }
}

/// Replaces the inside of every quoted (`"…"` or `` `…` ``) run longer than
/// 16 characters by its length: serde messages quote the values they refuse.
pub(crate) fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=start]);
        rest = &rest[start + 1..];
        let Some(end) = rest.find(quote) else {
            break;
        };
        let inner = &rest[..end];
        let chars = inner.chars().count();
        if chars > 16 {
            let head: String = inner.chars().take(4).collect();
            out.push_str(&format!("{head}…({chars} chars)"));
        } else {
            out.push_str(inner);
        }
        out.push(quote);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

impl<S: GrantStore> GrantStore for Arc<S> {
    fn load(
        &self,
        grant: &GrantId,
    ) -> impl Future<Output = Result<Option<GrantRecord>, StoreError>> + Send {
        (**self).load(grant)
    }

    fn load_page(
        &self,
        after: Option<&GrantId>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send {
        (**self).load_page(after, limit)
    }

    fn compare_and_swap(
        &self,
        record: &GrantRecord,
        replaces: Option<u64>,
    ) -> impl Future<Output = Result<WriteOutcome, StoreError>> + Send {
        (**self).compare_and_swap(record, replaces)
    }

    fn put(&self, record: &GrantRecord) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put(record)
    }

    fn delete(&self, grant: &GrantId) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).delete(grant)
    }

    fn claim_budget(
        &self,
        claim: &hoopai_oauth::BudgetClaim,
    ) -> impl Future<Output = Result<hoopai_oauth::ClaimOutcome, StoreError>> + Send {
        (**self).claim_budget(claim)
    }

    fn shared_webhook_ids(&self) -> Option<Arc<dyn WebhookIds>> {
        (**self).shared_webhook_ids()
    }
}

#[cfg(test)]
mod tests {
    use super::redact_quoted;

    #[test]
    fn long_quoted_values_are_redacted() {
        let m = r#"invalid type: string "access-placeholder-000000000000000000000000", expected u64 at line 1"#;
        assert_eq!(
            redact_quoted(m),
            r#"invalid type: string "acce…(43 chars)", expected u64 at line 1"#
        );
        assert_eq!(
            redact_quoted("missing field `tokens`"),
            "missing field `tokens`"
        );
        assert_eq!(redact_quoted("unbalanced \"quote"), "unbalanced \"quote");
    }
}
