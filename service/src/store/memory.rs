//! The in-memory store, for tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use hoopai_oauth::{GrantId, GrantRecord};

use std::time::SystemTime;

use hoopai_oauth::{BudgetClaim, ClaimOutcome, WriteOutcome};

use super::budget::MemoryBudget;
use super::keys::Keyring;
use super::reseal::{RawRows, ResealReport, Rewrite, Scan, reseal};
use super::rows::{PageBuilder, PageEnd, RawRow, RowKey};
use super::seal::Codec;
use super::{GrantStore, Page, StoreError, check_write, page_limit};

/// A row: the version column and the record's text, as the other stores keep them.
#[derive(Debug, Clone)]
struct Row {
    version: u64,
    text: String,
}

impl Row {
    fn raw<'a>(&'a self, grant: &'a str) -> RawRow<'a> {
        RawRow {
            key: RowKey::Text(grant),
            version: Ok(self.version),
            text: Ok(&self.text),
        }
    }
}

/// A [`GrantStore`] in process memory, for tests: records are kept as the
/// same text the other stores write (JSON, or sealed with
/// [`with_keys`](Self::with_keys)), so a test of the service against it
/// sees the same round trip. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    rows: Mutex<BTreeMap<String, Row>>,
    budget: Mutex<MemoryBudget>,
    codec: Codec,
}

impl MemoryStore {
    /// An empty store writing plain JSON.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store sealing every record under the newest key of `keys`
    /// (see [`Keyring`]).
    #[must_use]
    pub fn with_keys(keys: Keyring) -> Self {
        MemoryStore {
            rows: Mutex::default(),
            budget: Mutex::default(),
            codec: Codec::new(Some(keys), true),
        }
    }

    /// Stores raw text as the row of `grant` at `version`, bypassing every
    /// check: for tests of corrupted rows.
    pub fn insert_raw(&self, grant: &str, version: u64, text: impl Into<String>) {
        self.rows().insert(
            grant.to_owned(),
            Row {
                version,
                text: text.into(),
            },
        );
    }

    /// The raw row of `grant` (version and text as stored), for tests.
    #[must_use]
    pub fn raw(&self, grant: &str) -> Option<(u64, String)> {
        self.rows()
            .get(grant)
            .map(|row| (row.version, row.text.clone()))
    }

    /// How many rows are stored.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows().len()
    }

    /// Whether no row is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows().is_empty()
    }

    /// Rewrites every readable row as the store writes now (sealed under
    /// the newest key), never replacing a row that changed since it was
    /// read; see [`SqliteStore::reseal`](crate::SqliteStore::reseal).
    ///
    /// # Errors
    /// None in practice; the signature matches the database stores.
    pub async fn reseal(&self) -> Result<ResealReport, StoreError> {
        reseal(self, &self.codec).await
    }

    fn rows(&self) -> MutexGuard<'_, BTreeMap<String, Row>> {
        // A panic while holding the lock cannot leave a half-written row:
        // every change is one map operation.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self, grant: &str, row: &Row) -> Result<GrantRecord, StoreError> {
        row.raw(grant).read(&self.codec).map_err(StoreError::from)
    }
}

impl GrantStore for MemoryStore {
    async fn load(&self, grant: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        let rows = self.rows();
        rows.get(grant.as_str())
            .map(|row| self.read(grant.as_str(), row))
            .transpose()
    }

    async fn load_page(&self, after: Option<&GrantId>, limit: usize) -> Result<Page, StoreError> {
        let limit = page_limit(limit);
        let rows = self.rows();
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.as_str()));
        let mut page = PageBuilder::new(&self.codec, limit);
        for (grant, row) in rows.range::<str, _>((start, Bound::Unbounded)) {
            if page.push(&row.raw(grant)) {
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
        let mut rows = self.rows();
        let key = record.grant.as_str();
        match (rows.get(key), replaces) {
            (None, None) => {}
            (None, Some(_)) => return Ok(WriteOutcome::NoRecord),
            (Some(row), Some(v)) if row.version == v => {}
            (Some(row), _) => return Ok(WriteOutcome::Conflict(Box::new(self.read(key, row)?))),
        }
        rows.insert(
            key.to_owned(),
            Row {
                version: record.version,
                text,
            },
        );
        Ok(WriteOutcome::Written)
    }

    async fn put(&self, record: &GrantRecord) -> Result<(), StoreError> {
        check_write(record, None)?;
        let text = self.codec.encode(record)?;
        self.rows().insert(
            record.grant.to_string(),
            Row {
                version: record.version,
                text,
            },
        );
        Ok(())
    }

    async fn delete(&self, grant: &GrantId) -> Result<bool, StoreError> {
        Ok(self.rows().remove(grant.as_str()).is_some())
    }

    async fn claim_budget(&self, claim: &BudgetClaim) -> Result<ClaimOutcome, StoreError> {
        let mut budget = self
            .budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(budget.claim(claim, SystemTime::now()))
    }
}

impl RawRows for MemoryStore {
    async fn scan(&self, after: Option<GrantId>, limit: usize) -> Result<Scan, StoreError> {
        let rows = self.rows();
        let start = after
            .as_ref()
            .map_or(Bound::Unbounded, |a| Bound::Excluded(a.as_str()));
        let mut scan = Scan::default();
        let mut end = PageEnd::new(limit);
        for (grant, row) in rows.range::<str, _>((start, Bound::Unbounded)) {
            if scan.push(&row.raw(grant), &mut end) {
                break;
            }
        }
        Ok(scan)
    }

    async fn rewrite(&self, rewrites: Vec<Rewrite>) -> Result<usize, StoreError> {
        let mut rows = self.rows();
        let mut applied = 0;
        for w in rewrites {
            if let Some(row) = rows.get_mut(&w.grant)
                && row.version == w.version
                && row.text == w.old
            {
                row.text = w.new;
                applied += 1;
            }
        }
        Ok(applied)
    }
}
