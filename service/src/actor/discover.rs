//! Grants another process added: in shared-store mode a grant this process
//! does not hold may be in the store all the same (exchanged, minted or
//! restored by another process after this one started). Before a caller
//! is told the grant is unknown, or a webhook is applied without the grant
//! it names, its record is read and restored here.

use std::collections::HashMap;

use hoopai_oauth::GrantId;
use tokio::sync::oneshot;

/// The reads out for grants not held, and who waits for each.
#[derive(Default)]
pub(super) struct Discoveries {
    waiting: HashMap<GrantId, Vec<oneshot::Sender<bool>>>,
}

impl Discoveries {
    /// `reply` waits for the read of `grant`; `true` if no read is out for
    /// it yet (the caller starts one).
    pub(super) fn wait(&mut self, grant: GrantId, reply: oneshot::Sender<bool>) -> bool {
        let list = self.waiting.entry(grant).or_default();
        list.push(reply);
        list.len() == 1
    }

    /// Whether a read of `grant` is out for a discovery.
    pub(super) fn is_reading(&self, grant: &GrantId) -> bool {
        self.waiting.contains_key(grant)
    }

    /// The read of `grant` is done: tells every caller whether the grant is
    /// held now.
    pub(super) fn done(&mut self, grant: &GrantId, held: bool) {
        for reply in self.waiting.remove(grant).unwrap_or_default() {
            let _ = reply.send(held);
        }
    }
}
