//! The driving logic shared by the property tests and the engine fuzz
//! target: a list of actions (asks, time, faults, fates of requests and
//! writes, restarts, notifications, slow drivers, stale reads, failed
//! writes) played against one or two engines in a [`Sim`], with the
//! simulation's invariants checked after every action and at the end.

use std::time::Duration;

use hoopai_oauth::fake::Fault;
use hoopai_oauth::{EngineSettings, GrantStatus, Removal, TokenStatus};

use super::sim::{Fate, Sim, location};

/// How many grants the actions play with.
pub const GRANTS: usize = 2;

/// One step of a run.
#[derive(Debug, Clone)]
pub enum Action {
    Ask {
        node: usize,
        grant: usize,
    },
    Advance {
        secs: u64,
    },
    Fault {
        fault: Fault,
        times: usize,
    },
    Suspend {
        grant: usize,
    },
    Reactivate {
        grant: usize,
    },
    NextFate(Fate),
    Restart {
        node: usize,
    },
    Notify {
        node: usize,
        grant: usize,
    },
    /// An out-of-order notification: a record written `back` writes ago.
    NotifyStale {
        node: usize,
        grant: usize,
        back: usize,
    },
    /// The grant is removed, then restored from the store at once (with the
    /// outputs queued for it polled in between, or not).
    RemoveRestore {
        node: usize,
        grant: usize,
        poll_between: bool,
    },
    /// The next writes reach the store (and their outcome is reported) late,
    /// or at `Confirm` if sooner.
    HoldConfirmations {
        writes: usize,
    },
    Confirm,
    /// Whether to ask for a token right after an answer, before polling.
    AskOnAnswer(bool),
    /// The driver dispatches each send this long after it was handed out
    /// (zero: at once); one not dispatched by its `not_after` is reported
    /// expired. Longer than the dispatch window, a lease may end meanwhile.
    SlowDriver {
        millis: u64,
    },
    /// The next reads of the store return a record some writes old.
    StaleReads {
        reads: usize,
    },
    /// The next writes fail without reaching the store.
    FailWrites {
        writes: usize,
    },
    /// The next claims on the shared request budget fail.
    FailClaims {
        claims: usize,
    },
    /// The driver asks for a re-read of a grant.
    Reread {
        node: usize,
        grant: usize,
    },
}

/// The settings of each engine in a run.
pub fn settings(holder: &str, shared: bool) -> EngineSettings {
    let s = EngineSettings::default()
        .refresh_margin(Duration::from_secs(120))
        .request_timeout(Duration::from_secs(30))
        .backoff(Duration::from_secs(10), Duration::from_secs(120))
        .rate_limit_wait(Duration::from_secs(20))
        .suspended_retry(Duration::from_secs(300))
        .unauthorized_retry(Duration::from_secs(60), Duration::from_secs(300))
        .jitter_seed(holder.len() as u64);
    if shared {
        s.shared_store(holder, Duration::from_secs(90))
            .shared_budget(true)
    } else {
        s
    }
}

/// Plays `actions` against one engine (or two sharing a store); the first
/// invariant broken, with the transcript.
pub fn run(shared: bool, actions: &[Action]) -> Result<(), String> {
    let mut sim = Sim::new();
    sim.fake.set_access_lifetime(Duration::from_secs(600));
    let nodes = if shared { 2 } else { 1 };
    for n in 0..nodes {
        let name = ["a", "b"][n];
        sim.add_engine(name, settings(name, shared));
    }
    let grants: Vec<String> = (0..GRANTS)
        .map(|g| {
            sim.install(g % nodes, &location(&format!("loc-{g}")))
                .as_str()
                .to_owned()
        })
        .collect();
    for n in 0..nodes {
        sim.load(n);
    }
    for a in actions {
        match a {
            Action::Ask { node, grant } => {
                sim.ask(node % nodes, &grants[*grant]);
            }
            Action::Advance { secs } => sim.run_for(Duration::from_secs(*secs)),
            Action::Fault { fault, times } => sim.fake.fail_next(fault.clone(), *times),
            Action::Suspend { grant } => sim.fake.set_location_active(&grants[*grant], false),
            Action::Reactivate { grant } => sim.fake.set_location_active(&grants[*grant], true),
            Action::NextFate(f) => sim.fate(*f),
            Action::HoldConfirmations { writes } => sim.hold_confirmations = *writes,
            Action::Confirm => sim.confirm(),
            Action::AskOnAnswer(on) => sim.ask_on_answer = *on,
            Action::SlowDriver { millis } => sim.send_delay = Duration::from_millis(*millis),
            Action::StaleReads { reads } => sim.stale_reads = *reads,
            Action::FailWrites { writes } => sim.fail_writes = *writes,
            Action::FailClaims { claims } => sim.fail_claims = *claims,
            Action::Reread { node, grant } => {
                let node = node % nodes;
                sim.reread(node, &grants[*grant]);
                sim.pump(node);
            }
            Action::Restart { node } => {
                // A crash while an answer is on its way, or while a new
                // refresh token is only in memory (its write out or
                // failing), loses what no client can keep: not modelled.
                if !sim.answers_pending(node % nodes) && !sim.holds_unwritten(node % nodes) {
                    sim.restart(node % nodes);
                }
            }
            Action::Notify { node, grant } => {
                // The store tells an engine that a record changed.
                let record = sim.store.records[&grants[*grant]].clone();
                let _ = sim.nodes[node % nodes].engine.restore(record, sim.now);
                sim.pump(node % nodes);
            }
            Action::NotifyStale { node, grant, back } => {
                let history = &sim.store.history[&grants[*grant]];
                if let Some(record) = history
                    .len()
                    .checked_sub(1 + back)
                    .map(|i| history[i].clone())
                {
                    // Refused if not newer than what the engine holds; else adopted.
                    let _ = sim.nodes[node % nodes].engine.restore(record, sim.now);
                    sim.pump(node % nodes);
                }
            }
            Action::RemoveRestore {
                node,
                grant,
                poll_between,
            } => {
                let node = node % nodes;
                let g = &grants[*grant];
                let name = sim.nodes[node].name.clone();
                sim.note(&name, format!("remove {g}; restore it"));
                sim.nodes[node]
                    .engine
                    .remove(g, Removal::Released, sim.now)
                    .map_err(|e| e.to_string())?;
                sim.forget_writes(node, g);
                if *poll_between {
                    sim.pump(node);
                }
                let record = sim.store.records[g].clone();
                sim.nodes[node]
                    .engine
                    .restore(record, sim.now)
                    .map_err(|e| e.to_string())?;
                sim.pump(node);
            }
        }
        check(&sim)?;
    }
    // Quiesce: the locations come back, the network heals.
    for g in &grants {
        sim.fake.set_location_active(g, true);
    }
    sim.clear_fates();
    sim.hold_confirmations = 0;
    sim.stale_reads = 0;
    sim.fail_writes = 0;
    sim.send_delay = Duration::ZERO;
    sim.confirm();
    sim.run_for(Duration::from_secs(3600));
    check(&sim)?;
    if let Err(lost) = sim.check_nothing_lost() {
        return Err(format!("{lost}\n{}", sim.transcript()));
    }
    for g in &grants {
        let status = &sim.store.records[g].status;
        if *status != GrantStatus::Active {
            return Err(format!("{g} is {status:?}\n{}", sim.transcript()));
        }
        for n in 0..nodes {
            let status = sim.ask(n, g);
            if !matches!(status, TokenStatus::Ready(_)) {
                return Err(format!("{g} at {n}: {status:?}\n{}", sim.transcript()));
            }
        }
    }
    let reuses = sim.fake.stats().spent_refresh_token_reuses;
    if reuses != 0 {
        return Err(format!(
            "{reuses} spent tokens reused\n{}",
            sim.transcript()
        ));
    }
    Ok(())
}

fn check(sim: &Sim) -> Result<(), String> {
    if sim.violations().is_empty() {
        Ok(())
    } else {
        Err(format!("{:?}\n{}", sim.violations(), sim.transcript()))
    }
}
