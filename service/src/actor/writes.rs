//! The store side of the task: writing the engine's records, reporting each
//! outcome, reading records back, and writing again after a failure.

use std::time::{Duration, Instant, SystemTime};

use hoopai_oauth::{GrantId, GrantRecord};

use super::Actor;
use crate::service::ServiceEvent;
use crate::store::{GrantStore, StoreError, Swap};
use crate::transport::HttpClient;

/// A grant whose last write failed.
///
/// Who writes it again depends on the mode:
///
/// - Shared-store mode: the engine. [`Engine::handle_persist_failed`] makes
///   it write the record again after a backoff (an [`Output::Persist`] like
///   any other), and a failed lease write is a refresh retried later
///   ([`hoopai_oauth::Failure::Store`]). The engine sends a refresh only
///   under a lease whose compare-and-swap won, and that lease record carries
///   the newest refresh token; it hands out an access token only once its
///   record is confirmed. `retry_at` is `None`: the service only keeps the
///   record, to report it (and hand it back at shutdown).
/// - Single-process mode: the service. There the engine counts a record as
///   written as soon as it is polled (nothing is confirmed), so
///   [`Engine::handle_persist_failed`] has nothing to retry, and the engine
///   would hand out the new access token and send the next refresh at once.
///   That next refresh would spend the only refresh token that reached the
///   store, for one that exists only in memory: a crash then loses the
///   grant. So the service writes the newest record again with its own
///   backoff (`retry_at`), hands back the grant's refreshes unsent
///   ([`Engine::handle_transport_error`]: never sent, so not spent), and
///   answers none of its callers until the write goes through.
pub(super) struct Failing {
    /// The newest record that failed to be written.
    pub(super) record: GrantRecord,
    pub(super) attempt: u32,
    /// Single-process mode: when the service writes `record` again.
    pub(super) retry_at: Option<Instant>,
}

impl<S: GrantStore, H: HttpClient> Actor<S, H> {
    pub(super) async fn persist(
        &mut self,
        grant: GrantId,
        record: GrantRecord,
        replaces: Option<u64>,
    ) {
        if !self.shared
            && let Some(failing) = self.failing.get_mut(&grant)
        {
            // Plain overwrites: the newest record is all that counts; it is
            // written on the grant's retry timer.
            failing.record = record;
            return;
        }
        if self.stopping.is_some() && record.lease.is_some() {
            // No refresh starts while stopping: the lease is not written
            // (it would keep other processes from the grant until it ends).
            // Reported as a write that never reached the store.
            let _ = self.engine.handle_persist_failed(
                grant.as_str(),
                record.version,
                SystemTime::now(),
            );
            return;
        }
        match self.write(&record, replaces).await {
            Ok(()) => {
                if self.shared && self.failing.remove(&grant).is_some() {
                    self.recovered(&grant);
                }
            }
            Err(error) => {
                let now = SystemTime::now();
                if let Err(e) =
                    self.engine
                        .handle_persist_failed(grant.as_str(), record.version, now)
                {
                    tracing::warn!(grant = %grant, error = %e, "write failure refused");
                }
                let (retry_in, attempt) = match (self.shared, self.failing.get(&grant)) {
                    (true, f) => (None, f.map_or(1, |f| f.attempt.saturating_add(1))),
                    (false, _) => (Some(self.settings.write_retry.0), 1),
                };
                self.write_failed(&grant, error, retry_in);
                self.failing.insert(
                    grant,
                    Failing {
                        record,
                        attempt,
                        retry_at: retry_in.map(|d| Instant::now() + d),
                    },
                );
            }
        }
    }

    pub(super) fn recovered(&mut self, grant: &GrantId) {
        tracing::info!(grant = %grant, "store writes recovered");
        let _ = self.events.send(ServiceEvent::StoreWriteRecovered {
            grant: grant.clone(),
        });
        self.wake_waiters(grant);
    }

    fn write_failed(&self, grant: &GrantId, error: StoreError, retry_in: Option<Duration>) {
        let retry_in_ms = retry_in.map(|d| d.as_millis() as u64);
        tracing::error!(grant = %grant, error = %error, retry_in_ms, "store write failed");
        let _ = self.events.send(ServiceEvent::StoreWriteFailed {
            grant: grant.clone(),
            error,
            retry_in,
        });
    }

    /// One write, its outcome handed to the engine.
    async fn write(
        &mut self,
        record: &GrantRecord,
        replaces: Option<u64>,
    ) -> Result<(), StoreError> {
        let grant = record.grant.clone();
        let now = || SystemTime::now();
        if !self.shared {
            self.store.put(record).await?;
            let _ = self
                .engine
                .handle_persisted(grant.as_str(), record.version, now());
            return Ok(());
        }
        match self.store.compare_and_swap(record, replaces).await? {
            Swap::Written => {
                if let Err(e) = self
                    .engine
                    .handle_persisted(grant.as_str(), record.version, now())
                {
                    tracing::warn!(grant = %grant, error = %e, "confirmation refused");
                }
            }
            Swap::Conflict(current) => {
                tracing::debug!(grant = %grant, stored = current.version, "compare-and-swap lost");
                if let Err(e) = self
                    .engine
                    .handle_persist_conflict(grant.as_str(), *current, now())
                {
                    tracing::warn!(grant = %grant, error = %e, "conflict refused");
                }
            }
            Swap::Missing => {
                tracing::warn!(grant = %grant, "record deleted elsewhere; dropping the grant");
                let _ = self.engine.handle_record_deleted(grant.as_str(), now());
                self.forget(&grant);
                let _ = self.events.send(ServiceEvent::RemovedElsewhere { grant });
            }
        }
        Ok(())
    }

    /// The engine uninstalled a grant (an UNINSTALL webhook): its record
    /// goes from the store, and its callers are told it is unknown.
    pub(super) async fn delete(&mut self, grant: GrantId) {
        if let Err(error) = self.store.delete(&grant).await {
            // The tokens are wiped in the engine either way; a record left
            // behind holds a refresh token the server has revoked.
            tracing::warn!(grant = %grant, error = %error, "deleting an uninstalled grant's record failed");
            self.undeleted.push((grant.clone(), error));
        }
        self.forget(&grant);
    }

    /// The engine asks for the stored record (to check a refusal against
    /// the store, or to converge while waiting): read it and hand it back.
    pub(super) async fn load(&mut self, grant: GrantId) {
        match self.store.load(&grant).await {
            Ok(record) => {
                if let Err(e) = self
                    .engine
                    .handle_loaded(grant.as_str(), record, SystemTime::now())
                {
                    tracing::warn!(grant = %grant, error = %e, "stored record refused");
                }
            }
            Err(error) => {
                // Asked again on the engine's re-read timer.
                tracing::warn!(grant = %grant, error = %error, "store read failed");
            }
        }
    }

    /// Single-process mode: writes again the newest record of each grant
    /// whose write failed and whose retry is due (see [`Failing`]).
    pub(super) async fn retry_failed_writes(&mut self) {
        let now = Instant::now();
        let due: Vec<(GrantId, GrantRecord)> = self
            .failing
            .iter()
            .filter(|(_, f)| f.retry_at.is_some_and(|t| t <= now))
            .map(|(g, f)| (g.clone(), f.record.clone()))
            .collect();
        for (grant, record) in due {
            match self.write(&record, None).await {
                Ok(()) => {
                    self.failing.remove(&grant);
                    self.recovered(&grant);
                }
                Err(error) => {
                    let (base, cap) = self.settings.write_retry;
                    let Some(f) = self.failing.get_mut(&grant) else {
                        continue;
                    };
                    f.attempt = f.attempt.saturating_add(1);
                    let retry_in = base
                        .saturating_mul(1u32 << f.attempt.min(20).saturating_sub(1))
                        .min(cap);
                    f.retry_at = Some(Instant::now() + retry_in);
                    self.write_failed(&grant, error, Some(retry_in));
                }
            }
        }
    }
}
