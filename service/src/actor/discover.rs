//! Grants another process added: in shared-store mode a grant this process
//! does not hold may be in the store all the same (exchanged, minted or
//! restored by another process after this one started). Before a caller
//! is told the grant is unknown, or a webhook is applied without the grant
//! it names, its record is read and restored here.
//!
//! Each discovery has a read of its own ([`Op::Discover`](super::store_io::Op)),
//! answered to it only: a read the engine asked for never answers a
//! discovery, and a discovery's read never reaches the engine (a "no
//! record" read before this process added the grant must not remove it).

use std::collections::HashMap;

use hoopai_oauth::GrantId;
use tokio::sync::oneshot;

use crate::command::Discovered;

/// At most this many grants are read for discoveries at once; past it a
/// caller is told the store is busy (ids an app passes on from its users
/// cannot fill the store's connections with reads).
pub(super) const MAX_DISCOVERIES: usize = 256;

/// The reads out for grants not held, and who waits for each.
#[derive(Default)]
pub(super) struct Discoveries {
    reads: HashMap<GrantId, Read>,
}

struct Read {
    /// The store call that answers these callers.
    call: Option<u64>,
    waiting: Vec<oneshot::Sender<Discovered>>,
}

/// What to do for a new caller.
pub(super) enum Joined {
    /// A read of the grant is out: the caller waits for it.
    Waiting,
    /// No read is out: start one and hand its number to [`Discoveries::started`].
    Start,
    /// Too many reads are out: the caller was told so.
    Busy,
}

impl Discoveries {
    /// `reply` waits for a read of `grant`.
    pub(super) fn join(&mut self, grant: GrantId, reply: oneshot::Sender<Discovered>) -> Joined {
        if let Some(read) = self.reads.get_mut(&grant) {
            read.waiting.push(reply);
            return Joined::Waiting;
        }
        if self.reads.len() >= MAX_DISCOVERIES {
            let _ = reply.send(Err(format!(
                "{MAX_DISCOVERIES} grants are being read from the store already"
            )));
            return Joined::Busy;
        }
        self.reads.insert(
            grant,
            Read {
                call: None,
                waiting: vec![reply],
            },
        );
        Joined::Start
    }

    /// The store call `call` reads `grant` for its discovery.
    pub(super) fn started(&mut self, grant: &GrantId, call: u64) {
        if let Some(read) = self.reads.get_mut(grant) {
            read.call = Some(call);
        }
    }

    /// The callers the store call `call` answers (none if it is not the
    /// discovery's read of `grant`), taken.
    pub(super) fn answered(
        &mut self,
        grant: &GrantId,
        call: u64,
    ) -> Vec<oneshot::Sender<Discovered>> {
        match self.reads.get(grant) {
            Some(read) if read.call == Some(call) => self
                .reads
                .remove(grant)
                .map(|r| r.waiting)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}
