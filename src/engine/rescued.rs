//! Refresh tokens rescued from answers that came for grants no longer held.
//!
//! A refresh answered after its grant was removed carries the grant's only
//! live refresh token: the server spent the one the request presented. The
//! engine keeps it (bounded), keyed by the grant and the spent token, and
//! adopts it if the grant comes back holding that spent token. A grant that
//! comes back with any other refresh token (a new authorization) drops it.

use std::collections::{HashMap, VecDeque};

use crate::secret::RefreshToken;

use super::record::GrantId;

/// How many rescued refresh tokens are kept; past it the oldest goes.
pub const RESCUED_MEMORY: usize = 1024;

/// The rescued tokens, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Rescued {
    /// Grant -> (the key of the spent refresh token, the live one).
    kept: HashMap<GrantId, (u64, RefreshToken)>,
    /// Grants in the order kept (may name grants taken since).
    order: VecDeque<GrantId>,
}

impl Rescued {
    /// Keeps `token`, the live refresh token of `grant`, issued for the one
    /// of key `spent`.
    pub(crate) fn keep(&mut self, grant: GrantId, spent: u64, token: RefreshToken) {
        while self.kept.len() >= RESCUED_MEMORY {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.kept.remove(old.as_str());
        }
        if self.kept.insert(grant.clone(), (spent, token)).is_none() {
            self.order.push_back(grant);
        }
        if self.order.len() > 2 * RESCUED_MEMORY {
            let kept = &self.kept;
            self.order.retain(|g| kept.contains_key(g.as_str()));
        }
    }

    /// The live token kept for `grant` if the grant is back with the spent
    /// token (key `key`); whatever was kept for it is dropped either way.
    pub(crate) fn take(&mut self, grant: &GrantId, key: u64) -> Option<RefreshToken> {
        match self.kept.remove(grant.as_str()) {
            Some((spent, token)) if spent == key => Some(token),
            _ => None,
        }
    }
}
