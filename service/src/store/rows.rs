//! Reading stored rows whatever they hold: a key that is not text, a
//! version that is not a number, a record that is not UTF-8. Each such row
//! becomes a [`CorruptRecord`] naming what it can; none stops a page.

use hoopai_oauth::{GrantId, GrantRecord};

use super::seal::{Codec, Unreadable};
use super::{CorruptRecord, GrantName, MAX_GRANT_ID_BYTES, Page};

/// A row's key as the database holds it.
#[derive(Debug, Clone)]
pub(crate) enum RowKey<'a> {
    /// UTF-8 text: a grant id, and a paging cursor that compares as the
    /// database compares the column (byte order).
    Text(&'a str),
    /// Text that is not UTF-8.
    NotUtf8(&'a [u8]),
    /// Another type (SQLite only: a BLOB, an integer, …), shown as `name`.
    Other {
        /// The value as text, lossily.
        name: String,
        /// Why it is no grant id.
        why: &'static str,
    },
}

impl RowKey<'_> {
    /// The key as raw bytes the database sorts as text.
    pub(crate) fn from_text_bytes(bytes: &[u8]) -> RowKey<'_> {
        match std::str::from_utf8(bytes) {
            Ok(s) => RowKey::Text(s),
            Err(_) => RowKey::NotUtf8(bytes),
        }
    }

    /// The key as a paging cursor, if it can be one.
    pub(crate) fn cursor(&self) -> Option<&str> {
        match self {
            RowKey::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The grant a corrupt row is reported under: the key itself when it
    /// is a grant id this build writes, else its lossy text, redacted if
    /// long.
    fn name(&self) -> GrantId {
        match self {
            RowKey::Text(s) if storable(s).is_ok() => GrantId::new(s),
            RowKey::Text(s) => GrantId::new(GrantName(s).to_string()),
            RowKey::NotUtf8(b) => GrantId::new(GrantName(&String::from_utf8_lossy(b)).to_string()),
            RowKey::Other { name, .. } => GrantId::new(GrantName(name).to_string()),
        }
    }
}

/// A row as read, before decoding.
#[derive(Debug)]
pub(crate) struct RawRow<'a> {
    /// The `grant_id` column.
    pub(crate) key: RowKey<'a>,
    /// The `version` column, or why it is not a version.
    pub(crate) version: Result<u64, &'static str>,
    /// The `record` column, or why it is not text.
    pub(crate) text: Result<&'a str, &'static str>,
}

impl<'a> RawRow<'a> {
    /// A `record` column read as bytes the database holds as text.
    pub(crate) fn text_from_bytes(bytes: &'a [u8]) -> Result<&'a str, &'static str> {
        std::str::from_utf8(bytes).map_err(|_| "the record column is not UTF-8 text")
    }

    /// A `version` column read as a signed 64-bit integer.
    pub(crate) fn version_from_i64(v: i64) -> Result<u64, &'static str> {
        u64::try_from(v).map_err(|_| "the version column is negative")
    }

    /// The grant id, version and text, or why the row has none of them.
    pub(crate) fn checked(&self) -> Result<(&'a str, u64, &'a str), CorruptRecord> {
        let corrupt = |reason: String| CorruptRecord {
            grant: self.key.name(),
            version: self.version.ok(),
            reason,
        };
        let grant = match &self.key {
            RowKey::Text(s) => *s,
            RowKey::NotUtf8(_) => return Err(corrupt("the grant id is not UTF-8 text".into())),
            RowKey::Other { why, .. } => return Err(corrupt((*why).to_owned())),
        };
        storable(grant).map_err(corrupt)?;
        let version = self.version.map_err(|why| corrupt(why.to_owned()))?;
        let text = self.text.map_err(|why| corrupt(why.to_owned()))?;
        Ok((grant, version, text))
    }

    /// The record, or why the row is not one.
    pub(crate) fn read(&self, codec: &Codec) -> Result<GrantRecord, Unreadable> {
        let (grant, version, text) = self.checked().map_err(Unreadable::Corrupt)?;
        codec.decode(grant, Some(version), text)
    }
}

/// Whether a store can hold `grant` as a key (and so write its record):
/// at most [`MAX_GRANT_ID_BYTES`](hoopai_oauth::MAX_GRANT_ID_BYTES) bytes and no NUL byte (Postgres text
/// cannot hold one).
pub(crate) fn storable(grant: &str) -> Result<(), String> {
    if grant.len() > MAX_GRANT_ID_BYTES {
        return Err(format!(
            "the grant id is {} bytes, longer than the {MAX_GRANT_ID_BYTES} a store keeps",
            grant.len()
        ));
    }
    if grant.contains('\0') {
        return Err("the grant id holds a NUL byte, which a store cannot keep".to_owned());
    }
    Ok(())
}

/// Where a page ends: at the first row, from the `limit`-th on, whose key
/// can be a cursor. A page never ends on a key that cannot be handed back
/// as `after` (not UTF-8, not text), so such rows are neither skipped nor
/// read twice; a run of them can make a page longer than `limit`.
#[derive(Debug)]
pub(crate) struct PageEnd {
    limit: usize,
    count: usize,
}

impl PageEnd {
    pub(crate) fn new(limit: usize) -> Self {
        PageEnd { limit, count: 0 }
    }

    /// Counts `key`'s row; the cursor of the next page if it ends this one.
    pub(crate) fn after(&mut self, key: &RowKey<'_>) -> Option<GrantId> {
        self.count += 1;
        if self.count >= self.limit {
            key.cursor().map(GrantId::new)
        } else {
            None
        }
    }
}

/// Builds one page of [`GrantStore::load_page`](super::GrantStore::load_page)
/// from rows in key order (see [`PageEnd`]).
pub(crate) struct PageBuilder<'c> {
    codec: &'c Codec,
    end: PageEnd,
    page: Page,
}

impl<'c> PageBuilder<'c> {
    pub(crate) fn new(codec: &'c Codec, limit: usize) -> Self {
        PageBuilder {
            codec,
            end: PageEnd::new(limit),
            page: Page::default(),
        }
    }

    /// Adds the next row; `true` when it ends the page.
    pub(crate) fn push(&mut self, row: &RawRow<'_>) -> bool {
        match row.read(self.codec) {
            Ok(record) => self.page.records.push(record),
            Err(unreadable) => self.page.corrupt.push(unreadable.into()),
        }
        self.page.next = self.end.after(&row.key);
        self.page.next.is_some()
    }

    /// The page; its `next` is `None` unless a row ended it.
    pub(crate) fn finish(self) -> Page {
        self.page
    }
}

/// Whether `rows` (in key order, the first `fetched` rows after the
/// cursor, of which the query asked `asked`) hold a full page: a row from
/// the `limit`-th on with a cursor key, or the end of the table.
pub(crate) fn holds_page(cursors: impl Iterator<Item = bool>, limit: usize, asked: usize) -> bool {
    let mut n = 0;
    for usable in cursors {
        n += 1;
        if n >= limit && usable {
            return true;
        }
    }
    n < asked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_end_on_a_cursor_key() {
        // limit 2: rows 2.. are candidates; unusable keys push the end on.
        assert!(holds_page([true, true].into_iter(), 2, 2));
        assert!(!holds_page([true, false].into_iter(), 2, 2));
        assert!(holds_page([true, false, true].into_iter(), 2, 4));
        // Fewer rows than asked: the end of the table.
        assert!(holds_page([false].into_iter(), 2, 2));
        assert!(holds_page(std::iter::empty(), 2, 2));
    }

    #[test]
    fn names_of_unusable_keys() {
        let long = "k".repeat(300);
        assert_eq!(
            RowKey::Text(&long).name().as_str(),
            "kkkkkkkkkkkkkkkk…(300 bytes)"
        );
        assert_eq!(RowKey::NotUtf8(b"loc-\xff").name().as_str(), "loc-\u{fffd}");
        assert_eq!(RowKey::Text("a\0b").name().as_str(), "a\\0b");
    }
}
