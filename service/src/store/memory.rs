//! The in-memory store, for tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use hoopai_oauth::{GrantId, GrantRecord};

use hoopai_oauth::WriteOutcome;

use super::{GrantStore, Page, StoreError, check_write, decode, encode, page_limit};

/// A row: the version column and the record's JSON, as the other stores keep them.
#[derive(Debug, Clone)]
struct Row {
    version: u64,
    text: String,
}

/// A [`GrantStore`] in process memory, for tests: records are kept as the
/// same JSON the other stores write, so a test of the service against it
/// sees the same round trip. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    rows: Mutex<BTreeMap<String, Row>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
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

    fn rows(&self) -> MutexGuard<'_, BTreeMap<String, Row>> {
        // A panic while holding the lock cannot leave a half-written row:
        // every change is one map operation.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn read(grant: &str, row: &Row) -> Result<GrantRecord, StoreError> {
    decode(grant, Some(row.version), &row.text).map_err(StoreError::Corrupt)
}

impl GrantStore for MemoryStore {
    async fn load(&self, grant: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        let rows = self.rows();
        rows.get(grant.as_str())
            .map(|row| read(grant.as_str(), row))
            .transpose()
    }

    async fn load_page(&self, after: Option<&GrantId>, limit: usize) -> Result<Page, StoreError> {
        let limit = page_limit(limit);
        let rows = self.rows();
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.as_str()));
        let mut page = Page::default();
        let mut count = 0;
        let mut last = None;
        for (grant, row) in rows.range::<str, _>((start, Bound::Unbounded)).take(limit) {
            match decode(grant, Some(row.version), &row.text) {
                Ok(record) => page.records.push(record),
                Err(corrupt) => page.corrupt.push(corrupt),
            }
            count += 1;
            last = Some(grant);
        }
        if count == limit {
            page.next = last.map(GrantId::new);
        }
        Ok(page)
    }

    async fn compare_and_swap(
        &self,
        record: &GrantRecord,
        replaces: Option<u64>,
    ) -> Result<WriteOutcome, StoreError> {
        check_write(record, replaces)?;
        let text = encode(record)?;
        let mut rows = self.rows();
        let key = record.grant.as_str();
        match (rows.get(key), replaces) {
            (None, None) => {}
            (None, Some(_)) => return Ok(WriteOutcome::NoRecord),
            (Some(row), Some(v)) if row.version == v => {}
            (Some(row), _) => return Ok(WriteOutcome::Conflict(Box::new(read(key, row)?))),
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
        let text = encode(record)?;
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
}
