//! Store I/O off the task's loop: every write, read and delete the engine
//! asks for runs as a task of its own, in order per grant (a lane), with a
//! deadline.
//!
//! - Per grant, one call at a time, in the order asked: a delete never
//!   overtakes the write before it, and writes of one grant reach the store
//!   in version order.
//! - Grants do not wait for each other: one grant's stuck call holds up only
//!   that grant's lane.
//! - Every call has a deadline ([`ServiceSettings::store_timeout`](crate::ServiceSettings::store_timeout))
//!   counted from when it was asked. Past it, the call is reported as failed
//!   with the store named ([`StoreFailure::timed_out`]); a call that was
//!   still waiting its turn is dropped (the engine writes again on its own
//!   backoff), one that was running keeps its lane until it returns, and
//!   what it returns late is reported too if it says something new (a write
//!   that went through after all, or lost to a newer record). Every write
//!   is a compare-and-swap, so a late write can never replace a newer one.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hoopai_oauth::{GrantId, GrantRecord, StoreFailure, WriteOutcome};
use tokio::task::JoinSet;

use crate::store::{GrantStore, StoreError};
use crate::telemetry;

/// A store call the engine asked for.
pub(super) enum Op {
    Write {
        record: Box<GrantRecord>,
        replaces: Option<u64>,
    },
    Load,
    /// A read for a discovery (a grant another process may have added):
    /// answered to the discovery only, never to the engine.
    Discover,
    Delete,
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Write { .. } => "write",
            Op::Load => "read",
            Op::Discover => "discovery read",
            Op::Delete => "delete",
        }
    }
}

/// What a store call returned.
// Moved once from the task to the loop.
#[allow(clippy::large_enum_variant)]
pub(super) enum Outcome {
    Write(WriteOutcome),
    Load(Result<Option<GrantRecord>, StoreFailure>),
    Discover(Result<Option<GrantRecord>, StoreFailure>),
    Delete(Result<bool, StoreError>),
}

/// A store call to report to the engine (or to the callers of a delete).
pub(super) struct Report {
    /// The call, as [`StoreIo::ask`] numbered it.
    pub(super) call: u64,
    pub(super) grant: GrantId,
    /// The record version of a write.
    pub(super) version: u64,
    pub(super) outcome: Outcome,
    /// The call's deadline passed before it returned (this is the report
    /// of the deadline, or the late return of a call reported so).
    pub(super) late: bool,
}

struct Pending {
    grant: GrantId,
    version: u64,
    kind: &'static str,
    deadline: Instant,
    /// Reported as timed out already.
    reported: bool,
}

#[derive(Default)]
struct Lane {
    running: Option<u64>,
    waiting: VecDeque<(u64, Op)>,
}

type Done = (u64, Outcome);

pub(super) struct StoreIo<S> {
    store: Arc<S>,
    timeout: Duration,
    lanes: HashMap<GrantId, Lane>,
    pending: HashMap<u64, Pending>,
    deadlines: BTreeSet<(Instant, u64)>,
    tasks: JoinSet<Done>,
    next: u64,
}

impl<S: GrantStore> StoreIo<S> {
    pub(super) fn new(store: Arc<S>, timeout: Duration) -> Self {
        StoreIo {
            store,
            timeout,
            lanes: HashMap::new(),
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
            tasks: JoinSet::new(),
            next: 0,
        }
    }

    /// Whether no call is running or waiting.
    pub(super) fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Asks for `op` on `grant`: started now if the grant's lane is free,
    /// else after the calls asked before it. Returns the call's number.
    pub(super) fn ask(&mut self, grant: GrantId, op: Op) -> u64 {
        self.next += 1;
        let id = self.next;
        let deadline = Instant::now() + self.timeout;
        let version = match &op {
            Op::Write { record, .. } => record.version,
            _ => 0,
        };
        self.pending.insert(
            id,
            Pending {
                grant: grant.clone(),
                version,
                kind: op.name(),
                deadline,
                reported: false,
            },
        );
        self.deadlines.insert((deadline, id));
        let lane = self.lanes.entry(grant.clone()).or_default();
        if lane.running.is_none() {
            lane.running = Some(id);
            self.spawn(id, grant, op);
        } else {
            lane.waiting.push_back((id, op));
        }
        id
    }

    fn spawn(&mut self, id: u64, grant: GrantId, op: Op) {
        let store = Arc::clone(&self.store);
        self.tasks.spawn(async move {
            let outcome = match op {
                Op::Write { record, replaces } => {
                    let began = Instant::now();
                    let result = store.compare_and_swap(&record, replaces).await;
                    let took = began.elapsed();
                    telemetry::store_write(took, &result);
                    match &result {
                        Err(e) => tracing::debug!(grant = %grant, version = record.version, error = %e, took_us = took.as_micros() as u64, "store write failed"),
                        Ok(WriteOutcome::Written) => tracing::debug!(grant = %grant, version = record.version, took_us = took.as_micros() as u64, "store write"),
                        Ok(_) => tracing::debug!(grant = %grant, version = record.version, took_us = took.as_micros() as u64, "store write lost its compare-and-swap"),
                    }
                    Outcome::Write(
                        result.unwrap_or_else(|e| WriteOutcome::Failed(StoreFailure::new(e))),
                    )
                }
                Op::Load => Outcome::Load(store.load(&grant).await.map_err(StoreFailure::new)),
                Op::Discover => {
                    Outcome::Discover(store.load(&grant).await.map_err(StoreFailure::new))
                }
                Op::Delete => Outcome::Delete(store.delete(&grant).await),
            };
            (id, outcome)
        });
    }

    /// The earliest deadline of a call not reported yet.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Waits for the next call to return (pending forever when none runs).
    pub(super) async fn next_done(&mut self) -> Option<Done> {
        if self.tasks.is_empty() {
            return std::future::pending().await;
        }
        match self.tasks.join_next().await {
            Some(Ok(done)) => Some(done),
            // A store call panicked: its lane stays taken; its deadline
            // reports it.
            Some(Err(_)) | None => None,
        }
    }

    /// A call returned: what to report, and the next call of its lane
    /// starts.
    pub(super) fn done(&mut self, (id, outcome): Done) -> Option<Report> {
        let pending = self.pending.remove(&id)?;
        self.deadlines.remove(&(pending.deadline, id));
        self.next_in_lane(&pending.grant, id);
        if pending.reported {
            // Reported failed at its deadline: only news is worth a report.
            let news = match &outcome {
                Outcome::Write(WriteOutcome::Failed(_))
                | Outcome::Load(Err(_))
                | Outcome::Discover(_) => false,
                Outcome::Write(_) | Outcome::Load(Ok(_)) => true,
                Outcome::Delete(_) => true,
            };
            if !news {
                return None;
            }
        }
        Some(Report {
            call: id,
            grant: pending.grant,
            version: pending.version,
            outcome,
            late: pending.reported,
        })
    }

    fn next_in_lane(&mut self, grant: &GrantId, finished: u64) {
        let Some(lane) = self.lanes.get_mut(grant) else {
            return;
        };
        if lane.running == Some(finished) {
            lane.running = None;
        }
        if lane.running.is_none() {
            match lane.waiting.pop_front() {
                Some((id, op)) => {
                    lane.running = Some(id);
                    self.spawn(id, grant.clone(), op);
                }
                None => {
                    self.lanes.remove(grant);
                }
            }
        }
    }

    /// Every call whose deadline passed by `now`, reported as failed (a
    /// write or read) or as not done (a delete). A call still waiting its
    /// turn is dropped, except a delete, which still runs.
    pub(super) fn expired(&mut self, now: Instant) -> Vec<Report> {
        let mut reports = Vec::new();
        while let Some(&(t, id)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.remove(&(t, id));
            let Some(pending) = self.pending.get_mut(&id) else {
                continue;
            };
            pending.reported = true;
            let grant = pending.grant.clone();
            let kind = pending.kind;
            telemetry::store_timed_out(kind);
            let version = pending.version;
            let failure = StoreFailure::new(format!(
                "the store did not complete a {kind} within {} ms",
                self.timeout.as_millis()
            ));
            let lane = self.lanes.get_mut(&grant);
            let waiting = lane.as_ref().is_some_and(|l| l.running != Some(id));
            if waiting && kind != "delete" {
                if let Some(lane) = lane {
                    lane.waiting.retain(|(w, _)| *w != id);
                }
                self.pending.remove(&id);
            }
            let outcome = match kind {
                "write" => Outcome::Write(WriteOutcome::Failed(failure)),
                "read" => Outcome::Load(Err(failure)),
                "discovery read" => Outcome::Discover(Err(failure)),
                _ => Outcome::Delete(Err(StoreError::Backend {
                    store: "store",
                    message: failure.to_string(),
                })),
            };
            reports.push(Report {
                call: id,
                grant,
                version,
                outcome,
                late: true,
            });
        }
        reports
    }

    /// Stops every call (shutdown): what is still running is abandoned.
    pub(super) fn abort(&mut self) {
        self.tasks.abort_all();
    }
}
