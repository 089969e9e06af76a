//! Who waits for what: callers of `access_token` waiting for a token, `add`
//! calls waiting for their record to be written, and calls whose records
//! are being deleted. The answers are the engine's: every caller is asked
//! again, through [`Engine::access_token`], when the engine says something
//! about its grant.

use std::collections::{HashMap, HashSet};
use std::time::{Instant, SystemTime};

use hoopai_oauth::{AccessToken, Engine, GrantId, TokenStatus};
use tokio::sync::oneshot;

use crate::errors::{ServiceError, TokenError};
use crate::reports::GrantChanges;
use crate::store::StoreError;
use crate::telemetry;

/// A caller of `access_token` waiting for a token.
pub(super) struct Waiter {
    pub(super) deadline: Instant,
    pub(super) asked_at: Instant,
    pub(super) reply: oneshot::Sender<Result<AccessToken, TokenError>>,
}

/// A call answered once the records of some grants are deleted.
pub(super) enum Deleting {
    Remove(oneshot::Sender<Result<(), ServiceError>>),
    Changes(
        GrantChanges,
        oneshot::Sender<Result<GrantChanges, ServiceError>>,
    ),
}

struct Deletes {
    call: Deleting,
    waiting: HashSet<GrantId>,
    undeleted: Vec<(GrantId, StoreError)>,
}

#[derive(Default)]
pub(super) struct Callers {
    waiters: HashMap<GrantId, Vec<Waiter>>,
    adds: HashMap<GrantId, Vec<oneshot::Sender<Result<(), ServiceError>>>>,
    deletes: Vec<Deletes>,
}

/// The answer for a caller of `grant` now, or `None` to keep waiting (a
/// refresh or a write is on its way). At the end of the wait (`expired`),
/// a caller gets what the engine says then: a store still failing is named.
/// Every status the engine can give has its answer here: the match has no
/// wildcard, so a new status cannot fall through to "keep waiting".
fn decide(
    engine: &mut Engine,
    grant: &GrantId,
    expired: bool,
) -> Option<Result<AccessToken, TokenError>> {
    let status = match engine.access_token(grant.as_str(), SystemTime::now()) {
        Ok(status) => status,
        Err(_) => return Some(Err(TokenError::UnknownGrant(grant.clone()))),
    };
    let grant = grant.clone();
    Some(match status {
        TokenStatus::Ready(token) => Ok(token),
        TokenStatus::Pending => return None,
        TokenStatus::StoreFailing(_) if !expired => return None,
        TokenStatus::StoreFailing(failure) => Err(TokenError::StoreFailing {
            grant,
            message: failure.to_string(),
        }),
        TokenStatus::Suspended { until } => Err(TokenError::Suspended { grant, until }),
        TokenStatus::Unauthorized { until } => Err(TokenError::Unauthorized { grant, until }),
        TokenStatus::ReauthorizationNeeded => Err(TokenError::ReauthorizationNeeded { grant }),
        TokenStatus::ConfigurationRejected => Err(TokenError::ConfigurationRejected { grant }),
    })
}

/// The answer for a caller of `grant` now, or `None` to keep waiting.
pub(super) fn answer(
    engine: &mut Engine,
    grant: &GrantId,
) -> Option<Result<AccessToken, TokenError>> {
    decide(engine, grant, false)
}

impl Callers {
    pub(super) fn wait(&mut self, grant: GrantId, waiter: Waiter) {
        self.waiters.entry(grant).or_default().push(waiter);
    }

    /// Asks again for every caller waiting on `grant`.
    pub(super) fn wake(&mut self, engine: &mut Engine, grant: &GrantId) {
        let Some(waiters) = self.waiters.remove(grant) else {
            return;
        };
        let waiters: Vec<Waiter> = waiters
            .into_iter()
            .filter(|w| !w.reply.is_closed())
            .collect();
        if waiters.is_empty() {
            return;
        }
        match answer(engine, grant) {
            Some(result) => {
                let outcome = if result.is_ok() { "ready" } else { "error" };
                for w in waiters {
                    telemetry::token_wait(w.asked_at.elapsed(), outcome);
                    let _ = w.reply.send(result.clone());
                }
            }
            None => {
                self.waiters.insert(grant.clone(), waiters);
            }
        }
    }

    /// The earliest deadline of a waiting caller.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.waiters
            .values()
            .flat_map(|ws| ws.iter().map(|w| w.deadline))
            .min()
    }

    /// Answers the callers whose wait ended: what the engine says now (a
    /// failing store is named), else that no token came in time, with the
    /// grant's last failure.
    pub(super) fn expire(&mut self, engine: &mut Engine, now: Instant) {
        let grants: Vec<GrantId> = self
            .waiters
            .iter()
            .filter(|(_, ws)| ws.iter().any(|w| w.deadline <= now || w.reply.is_closed()))
            .map(|(g, _)| g.clone())
            .collect();
        for grant in grants {
            let Some(waiters) = self.waiters.remove(&grant) else {
                continue;
            };
            let mut kept = Vec::new();
            for w in waiters {
                if w.reply.is_closed() {
                    continue;
                }
                if w.deadline > now {
                    kept.push(w);
                    continue;
                }
                let answer = decide(engine, &grant, true);
                let outcome = match &answer {
                    Some(Ok(_)) => "ready",
                    Some(Err(_)) => "error",
                    None => "timed_out",
                };
                telemetry::token_wait(now.duration_since(w.asked_at), outcome);
                let answer = answer.unwrap_or_else(|| {
                    let last_failure = engine
                        .grants()
                        .get(grant.as_str())
                        .and_then(|g| g.last_failure())
                        .map(|f| f.to_string());
                    Err(TokenError::TimedOut {
                        grant: grant.clone(),
                        waited: now.duration_since(w.asked_at),
                        last_failure,
                    })
                });
                let _ = w.reply.send(answer);
            }
            if !kept.is_empty() {
                self.waiters.insert(grant, kept);
            }
        }
    }

    /// Tells every caller of `grant` that it is gone.
    pub(super) fn gone(&mut self, grant: &GrantId) {
        for w in self.waiters.remove(grant).unwrap_or_default() {
            let _ = w.reply.send(Err(TokenError::UnknownGrant(grant.clone())));
        }
        for a in self.adds.remove(grant).unwrap_or_default() {
            let _ = a.send(Err(ServiceError::UnknownGrant(grant.clone())));
        }
    }

    /// Answers every waiting caller with `Stopped` (shutdown).
    pub(super) fn stop(&mut self) {
        for (_, waiters) in self.waiters.drain() {
            for w in waiters {
                let _ = w.reply.send(Err(TokenError::Stopped));
            }
        }
        for (_, adds) in self.adds.drain() {
            for a in adds {
                let _ = a.send(Err(ServiceError::Stopped));
            }
        }
        for d in self.deletes.drain(..) {
            match d.call {
                Deleting::Remove(reply) => {
                    let _ = reply.send(Err(ServiceError::Stopped));
                }
                Deleting::Changes(_, reply) => {
                    let _ = reply.send(Err(ServiceError::Stopped));
                }
            }
        }
    }

    /// An `add` of `grant`, answered once its record is written.
    pub(super) fn add(&mut self, grant: GrantId, reply: oneshot::Sender<Result<(), ServiceError>>) {
        self.adds.entry(grant).or_default().push(reply);
    }

    /// The new authorization of `grant` is written.
    pub(super) fn added(&mut self, grant: &GrantId) {
        for a in self.adds.remove(grant).unwrap_or_default() {
            let _ = a.send(Ok(()));
        }
    }

    /// A write of `grant` failed: an `add` waiting for it learns so (the
    /// grant is held; the engine writes again).
    pub(super) fn add_failed(&mut self, grant: &GrantId, message: &str) {
        for a in self.adds.remove(grant).unwrap_or_default() {
            let _ = a.send(Err(ServiceError::WritePending {
                grant: grant.clone(),
                message: message.to_owned(),
            }));
        }
    }

    /// A call answered once the records of `grants` are deleted (at once
    /// if there are none).
    pub(super) fn deleting(&mut self, grants: &[GrantId], call: Deleting) {
        let d = Deletes {
            call,
            waiting: grants.iter().cloned().collect(),
            undeleted: Vec::new(),
        };
        if d.waiting.is_empty() {
            finish(d);
        } else {
            self.deletes.push(d);
        }
    }

    /// The delete of `grant`'s record is done (or failed, or timed out).
    pub(super) fn deleted(&mut self, grant: &GrantId, result: Result<bool, StoreError>) {
        let mut done = Vec::new();
        for (i, d) in self.deletes.iter_mut().enumerate() {
            if d.waiting.remove(grant) {
                if let Err(e) = &result {
                    d.undeleted.push((grant.clone(), e.clone()));
                }
                if d.waiting.is_empty() {
                    done.push(i);
                }
            }
        }
        for i in done.into_iter().rev() {
            finish(self.deletes.remove(i));
        }
    }
}

fn finish(d: Deletes) {
    match d.call {
        Deleting::Remove(reply) => {
            let result = match d.undeleted.into_iter().next() {
                Some((_, e)) => Err(ServiceError::Store(e)),
                None => Ok(()),
            };
            let _ = reply.send(result);
        }
        Deleting::Changes(mut changes, reply) => {
            changes.undeleted = d.undeleted;
            let _ = reply.send(Ok(changes));
        }
    }
}
