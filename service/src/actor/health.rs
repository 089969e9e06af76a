//! The store probe of the readiness check, off the task's loop: a delete of
//! a grant id no store can hold, so that it takes the store's write path
//! (a SQLite file locked by another writer fails it, where a read would
//! still pass) and can never touch a record.
//!
//! One probe runs at a time: while one has not returned (a stuck store),
//! the next asks are answered [`StoreProbe::TimedOut`] without calling the
//! store again. How often probes are asked at all is bounded by the cache
//! of [`TokenService::readiness`](crate::TokenService::readiness).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hoopai_oauth::GrantId;
use tokio::sync::oneshot;

use crate::reports::{Readiness, StoreProbe};
use crate::store::{GrantStore, MAX_GRANT_ID_BYTES};

/// The grant id the probe deletes: `hoopai-readiness-probe-` and dashes,
/// longer than [`MAX_GRANT_ID_BYTES`], so no store ever wrote a record of it.
fn probe_grant() -> GrantId {
    let mut id = String::from("hoopai-readiness-probe-");
    while id.len() <= MAX_GRANT_ID_BYTES {
        id.push('-');
    }
    GrantId::new(id)
}

pub(super) struct Prober<S> {
    store: Arc<S>,
    timeout: Duration,
    running: Arc<AtomicBool>,
    grant: GrantId,
}

impl<S: GrantStore> Prober<S> {
    pub(super) fn new(store: Arc<S>, timeout: Duration) -> Self {
        Prober {
            store,
            timeout,
            running: Arc::new(AtomicBool::new(false)),
            grant: probe_grant(),
        }
    }

    /// Probes the store and answers `reply` by the timeout; the call goes
    /// on to its end in its task, holding off the next probe meanwhile.
    pub(super) fn probe(&self, reply: oneshot::Sender<Readiness>) {
        let answer = |store| Readiness {
            running: true,
            store,
        };
        if self.running.swap(true, Ordering::AcqRel) {
            let _ = reply.send(answer(StoreProbe::TimedOut));
            return;
        }
        let store = Arc::clone(&self.store);
        let running = Arc::clone(&self.running);
        let grant = self.grant.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            // Lets the next probe run once this one ends, however it ends.
            let _running = Running(running);
            let call = store.delete(&grant);
            tokio::pin!(call);
            tokio::select! {
                result = &mut call => {
                    let probe = match result {
                        Ok(_) => StoreProbe::Answered,
                        Err(e) => {
                            tracing::warn!(error = %e, "readiness: the store probe failed");
                            StoreProbe::Failed
                        }
                    };
                    let _ = reply.send(answer(probe));
                }
                () = tokio::time::sleep(timeout) => {
                    tracing::warn!(
                        timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                        "readiness: the store did not answer its probe in time"
                    );
                    let _ = reply.send(answer(StoreProbe::TimedOut));
                    let _ = call.await;
                }
            }
        });
    }
}

/// Clears the flag of the probe running when dropped.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
