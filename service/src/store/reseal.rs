//! Re-sealing every row under the keyring's newest key while the service
//! serves: page by page, each row rewritten only if it still holds exactly
//! what was read (same version, same text), so a concurrent write is never
//! overwritten.

use std::future::Future;

use hoopai_oauth::GrantId;

use super::rows::{PageEnd, RawRow};
use super::seal::Codec;
use super::{CorruptRecord, StoreError};

/// Rows read and rewritten per round trip.
pub(crate) const RESEAL_BATCH: usize = 256;

/// What a `reseal` of a store did (e.g.
/// [`SqliteStore::reseal`](crate::SqliteStore::reseal)). Every row is
/// counted once.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ResealReport {
    /// Rows rewritten as the store writes now: sealed under the newest
    /// key, or plain when the store writes plain records.
    pub resealed: usize,
    /// Rows already written that way (and readable): left alone.
    pub current: usize,
    /// Rows written by someone else between the read and the rewrite: left
    /// alone (that write is the newer record, and it was written as its
    /// writer seals).
    pub changed: usize,
    /// Rows that cannot be read (corrupt, sealed under a key the keyring
    /// does not hold, tampered): left alone, as at start-up.
    pub unreadable: Vec<CorruptRecord>,
}

/// A row with a readable key, version and text, owned.
#[derive(Debug)]
pub(crate) struct StoredRow {
    pub(crate) grant: String,
    pub(crate) version: u64,
    pub(crate) text: String,
}

/// Rewrite `grant` to `new` if it still holds `version` and exactly `old`.
#[derive(Debug)]
pub(crate) struct Rewrite {
    pub(crate) grant: String,
    pub(crate) version: u64,
    pub(crate) old: String,
    pub(crate) new: String,
}

/// One page of raw rows.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) rows: Vec<StoredRow>,
    pub(crate) unreadable: Vec<CorruptRecord>,
    pub(crate) next: Option<GrantId>,
}

impl Scan {
    /// Adds the next row; `true` when it ends the page.
    pub(crate) fn push(&mut self, row: &RawRow<'_>, end: &mut PageEnd) -> bool {
        match row.checked() {
            Ok((grant, version, text)) => self.rows.push(StoredRow {
                grant: grant.to_owned(),
                version,
                text: text.to_owned(),
            }),
            Err(corrupt) => self.unreadable.push(corrupt),
        }
        self.next = end.after(&row.key);
        self.next.is_some()
    }
}

/// What a store offers `reseal`.
pub(crate) trait RawRows: Sync {
    /// The rows of one page after `after`, paged as `load_page` pages.
    fn scan(
        &self,
        after: Option<GrantId>,
        limit: usize,
    ) -> impl Future<Output = Result<Scan, StoreError>> + Send;

    /// Applies each rewrite whose row is unchanged; how many were applied.
    fn rewrite(
        &self,
        rewrites: Vec<Rewrite>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// Rewrites every readable row that `codec` would write differently now.
pub(crate) async fn reseal<S: RawRows>(
    store: &S,
    codec: &Codec,
) -> Result<ResealReport, StoreError> {
    let mut report = ResealReport::default();
    let mut after: Option<GrantId> = None;
    loop {
        let scan = store.scan(after.take(), RESEAL_BATCH).await?;
        report.unreadable.extend(scan.unreadable);
        let codec = codec.clone();
        let rows = scan.rows;
        // Opening and sealing a page is CPU work: off the async runtime.
        let (rewrites, current, unreadable) = tokio::task::spawn_blocking(move || {
            let mut rewrites = Vec::new();
            let mut current = 0;
            let mut unreadable = Vec::new();
            for row in rows {
                // Rows already current are opened too: the report lists
                // every row the keyring cannot read.
                if codec.is_current(&row.text) {
                    match codec.decode(&row.grant, Some(row.version), &row.text) {
                        Ok(_) => current += 1,
                        Err(u) => unreadable.push(CorruptRecord::from(u)),
                    }
                    continue;
                }
                match codec.rewrite(&row.grant, row.version, &row.text) {
                    Ok(new) => rewrites.push(Rewrite {
                        grant: row.grant,
                        version: row.version,
                        old: row.text,
                        new,
                    }),
                    Err(u) => unreadable.push(CorruptRecord::from(u)),
                }
            }
            (rewrites, current, unreadable)
        })
        .await
        .map_err(|e| StoreError::backend("reseal", e))?;
        report.current += current;
        report.unreadable.extend(unreadable);
        let attempted = rewrites.len();
        let applied = if attempted == 0 {
            0
        } else {
            store.rewrite(rewrites).await?
        };
        report.resealed += applied;
        report.changed += attempted.saturating_sub(applied);
        match scan.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    for row in &report.unreadable {
        tracing::warn!(grant = %row.grant, reason = %row.reason, "reseal left an unreadable row alone");
    }
    tracing::info!(
        resealed = report.resealed,
        current = report.current,
        changed = report.changed,
        unreadable = report.unreadable.len(),
        "reseal done"
    );
    Ok(report)
}
