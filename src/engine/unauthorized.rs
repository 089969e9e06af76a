//! Refreshes refused with a 401 that does not name the client credentials
//! ([`ErrorKind::GrantUnauthorized`]).
//!
//! Such a refusal concerns one grant: it keeps its refresh token, is parked
//! with its own status and tried again at growing intervals, and the other
//! grants go on. A run of them across distinct grants, with no successful
//! refresh in between, means the client is rejected after all: the engine
//! halts as for [`ErrorKind::InvalidClient`].

use std::collections::HashSet;
use std::time::Duration;

use super::record::GrantId;

/// The distinct grants refused so since the last successful refresh.
#[derive(Debug, Default)]
pub(crate) struct Streak {
    grants: HashSet<GrantId>,
}

impl Streak {
    /// Counts a refusal of `grant`; returns how many distinct grants have
    /// been refused in a row now.
    pub(crate) fn refused(&mut self, grant: &GrantId) -> usize {
        if !self.grants.contains(grant) {
            self.grants.insert(grant.clone());
        }
        self.grants.len()
    }

    /// A refresh succeeded, or the configuration changed: the run is over.
    pub(crate) fn reset(&mut self) {
        if !self.grants.is_empty() {
            // A new set, not `clear`: clearing costs the old capacity on
            // every later success.
            self.grants = HashSet::new();
        }
    }
}

/// The wait before the next try after refusal number `n` (1-based) in a row:
/// `first · 2^(n-1)`, capped at `cap`.
pub(crate) fn retry_delay(first: Duration, cap: Duration, n: u32) -> Duration {
    let exp = n.saturating_sub(1).min(31);
    first.checked_mul(1 << exp).unwrap_or(cap).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_the_cap() {
        let (first, cap) = (Duration::from_secs(3600), Duration::from_secs(86_400));
        let delays: Vec<u64> = (1..=7)
            .map(|n| retry_delay(first, cap, n).as_secs() / 3600)
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 24, 24]);
        assert_eq!(retry_delay(first, cap, u32::MAX), cap);
        assert_eq!(retry_delay(Duration::MAX, Duration::MAX, 40), Duration::MAX);
    }

    #[test]
    fn the_streak_counts_distinct_grants() {
        let mut s = Streak::default();
        assert_eq!(s.refused(&GrantId::new("a")), 1);
        assert_eq!(s.refused(&GrantId::new("a")), 1);
        assert_eq!(s.refused(&GrantId::new("b")), 2);
        s.reset();
        assert_eq!(s.refused(&GrantId::new("b")), 1);
    }
}
