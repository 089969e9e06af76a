//! The shared store: one SQLite file, one row per grant, written by
//! compare-and-swap on the record version inside a transaction.
//!
//! WAL mode lets readers and the one writer work at once; a busy timeout
//! makes writers queue for the lock instead of failing. Records are the
//! engine's JSON, kept as text: this module knows nothing of their content.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// How long a writer waits for another's lock before the write fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A row: the grant, its record version and the record (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The grant.
    pub grant: String,
    /// The record version.
    pub version: u64,
    /// The record, as JSON. Secret: it holds the tokens.
    pub record: String,
}

/// The outcome of a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cas {
    /// The record was written.
    Won,
    /// The stored version was not the one replaced; here is what is stored
    /// (`None`: no row, while the write expected one).
    Lost(Option<Row>),
}

/// A connection to the store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (and creates if needed) the store at `path`.
    ///
    /// # Errors
    /// SQLite could not open the file or set it up.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS grants (
                 grant   TEXT PRIMARY KEY NOT NULL,
                 version INTEGER NOT NULL,
                 record  TEXT NOT NULL
             ) STRICT;",
        )?;
        Ok(Store { conn })
    }

    /// Writes `record` at `version` if the stored version is `replaces`
    /// (`None`: only if the grant has no row), in one immediate transaction.
    ///
    /// # Errors
    /// SQLite failed (the lock was busy past the timeout, the disk…).
    pub fn compare_and_swap(
        &mut self,
        grant: &str,
        replaces: Option<u64>,
        version: u64,
        record: &str,
    ) -> rusqlite::Result<Cas> {
        let version_sql = to_sql_version(version)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stored = read_row(&tx, grant)?;
        let won = match (&stored, replaces) {
            (None, None) => {
                tx.execute(
                    "INSERT INTO grants (grant, version, record) VALUES (?1, ?2, ?3)",
                    params![grant, version_sql, record],
                )?;
                true
            }
            (Some(row), Some(expected)) if row.version == expected => {
                tx.execute(
                    "UPDATE grants SET version = ?2, record = ?3 WHERE grant = ?1",
                    params![grant, version_sql, record],
                )?;
                true
            }
            _ => false,
        };
        tx.commit()?;
        Ok(if won { Cas::Won } else { Cas::Lost(stored) })
    }

    /// The stored row of `grant`, if any.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn get(&self, grant: &str) -> rusqlite::Result<Option<Row>> {
        read_row(&self.conn, grant)
    }

    /// Every row, by grant.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn all(&self) -> rusqlite::Result<Vec<Row>> {
        let mut stmt = self
            .conn
            .prepare("SELECT grant, version, record FROM grants ORDER BY grant")?;
        let rows = stmt.query_map([], |r| {
            Ok(Row {
                grant: r.get(0)?,
                version: from_sql_version(r.get(1)?),
                record: r.get(2)?,
            })
        })?;
        rows.collect()
    }
}

fn read_row(conn: &Connection, grant: &str) -> rusqlite::Result<Option<Row>> {
    conn.query_row(
        "SELECT grant, version, record FROM grants WHERE grant = ?1",
        params![grant],
        |r| {
            Ok(Row {
                grant: r.get(0)?,
                version: from_sql_version(r.get(1)?),
                record: r.get(2)?,
            })
        },
    )
    .optional()
}

fn to_sql_version(version: u64) -> rusqlite::Result<i64> {
    i64::try_from(version).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(1, i64::MAX))
}

fn from_sql_version(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{Cas, Store};

    #[test]
    fn compare_and_swap_on_the_version() {
        let dir = std::env::temp_dir().join(format!("chaos-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.sqlite");
        let _ = std::fs::remove_file(&path);
        let mut a = Store::open(&path).unwrap();
        let mut b = Store::open(&path).unwrap();
        assert_eq!(a.compare_and_swap("g", None, 1, "{1}").unwrap(), Cas::Won);
        // A second create-only write loses and sees the first.
        let Cas::Lost(Some(row)) = b.compare_and_swap("g", None, 1, "{x}").unwrap() else {
            panic!("a create over a row must lose");
        };
        assert_eq!((row.version, row.record.as_str()), (1, "{1}"));
        assert_eq!(
            b.compare_and_swap("g", Some(1), 2, "{2}").unwrap(),
            Cas::Won
        );
        // `a` still thinks version 1 is stored.
        assert!(matches!(
            a.compare_and_swap("g", Some(1), 2, "{y}").unwrap(),
            Cas::Lost(Some(r)) if r.record == "{2}"
        ));
        // Replacing a row that is not there.
        assert_eq!(
            a.compare_and_swap("h", Some(3), 4, "{h}").unwrap(),
            Cas::Lost(None)
        );
        assert_eq!(a.all().unwrap().len(), 1);
        assert_eq!(a.get("g").unwrap().unwrap().version, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
