//! The checker: reads a run's logs and store ([`logs`]) and checks the
//! rotation-safety invariants, attributing every lost refresh token to its
//! cause.
//!
//! A refresh token is *lost* when the server issued it (a rotation) and it
//! was never written to the store nor presented again. Two causes are ones
//! no client can prevent, and excuse what follows from them (sends of the
//! spent token, a re-authorization, a dead grant):
//! - the answer was lost in transit after the server spent the token: the
//!   connection dropped unanswered, the answer held past the client's
//!   timeout, or the client gave up before it came;
//! - the worker was killed between the server spending the token and the
//!   store holding its successor (while the request was out, or after the
//!   answer came and before the write), or killed at the end for not
//!   stopping in time.
//!
//! The invariants, each counted with a few examples in the [`Report`]:
//! 1. no spent refresh token is sent, except after an excused loss;
//! 2. at the end the store holds the newest issued refresh token of every
//!    grant without an excused loss;
//! 3. never two refreshes in flight for one grant, as the server saw them;
//! 4. no re-authorization for a grant that lost nothing;
//! 5. every grant without an excused loss is live (active, newest token)
//!    and was refreshed at least once;
//! 6. no token or secret in any output;
//! 7. a kill loses a token only within one request plus one write: a
//!    kill may catch a request in flight, but a received token waits
//!    unwritten no longer than one write (at most [`WRITE_WINDOW`]), and
//!    no kill loses a token more than the request timeout plus
//!    [`WRITE_WINDOW`] after the server spent the one before it;
//! 8. the engine never drops a token it received, and no worker crashes;
//! 9. the engine's fingerprint of every send and write names the token it
//!    comes with.

pub mod logs;
pub mod secrets;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use logs::{Refresh, RunLogs};

use crate::fleet::{RunFacts, Scenario};
use crate::journal::{Delivery, FaultKind, Micros, Outcome, duration_micros};

/// The longest a received refresh token may wait for its write: one
/// SQLite write on a busy, shared machine.
pub const WRITE_WINDOW: Duration = Duration::from_secs(1);

/// How many examples are kept per invariant.
const EXAMPLES: usize = 5;

/// Why a refresh token was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The server spent the token and closed the connection unanswered.
    DroppedAfterSpend,
    /// The server spent the token and held the answer past the client's timeout.
    HeldAfterSpend,
    /// The server answered, but the client had given up (its timeout or a
    /// connection error) before it came.
    ClientGaveUp,
    /// The worker was killed while the request was out.
    KilledInFlight,
    /// The worker was killed after the answer came, before the write.
    KilledBeforeWrite,
    /// The worker did not stop in time at the end and was killed.
    ForcedStop,
    /// The engine refused the answer and dropped the token in it.
    EngineRefusedAnswer,
    /// The answer came, the worker lived on, and the token was never written.
    NeverWritten,
}

impl Cause {
    /// Whether no client could have prevented it.
    #[must_use]
    pub fn excused(self) -> bool {
        !matches!(self, Cause::EngineRefusedAnswer | Cause::NeverWritten)
    }

    /// Lost in transit (as opposed to a kill).
    #[must_use]
    pub fn in_transit(self) -> bool {
        matches!(
            self,
            Cause::DroppedAfterSpend | Cause::HeldAfterSpend | Cause::ClientGaveUp
        )
    }
}

/// One lost refresh token.
#[derive(Debug, Clone)]
pub struct Loss {
    /// The grant.
    pub grant: String,
    /// The server's number of the rotation that issued it.
    pub req: u64,
    /// The worker instance that sent that rotation.
    pub worker: String,
    /// When the server spent the token before it.
    pub spent_at: Micros,
    /// Why it was lost.
    pub cause: Cause,
    /// For a kill after the answer: how long the token had waited unwritten.
    pub waited: Option<Micros>,
    /// For a kill: the time from the server spending the token to the kill,
    /// the window in which the kill lost the grant.
    pub spend_to_kill: Option<Micros>,
}

/// The counts and examples of one invariant's violations.
#[derive(Debug, Clone, Default)]
pub struct Violations {
    /// How many.
    pub count: usize,
    /// A few, described.
    pub examples: Vec<String>,
}

impl Violations {
    fn add(&mut self, example: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example());
        }
    }
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// How many samples.
    pub samples: usize,
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest.
    pub max: f64,
}

impl Percentiles {
    fn of(mut micros: Vec<Micros>) -> Option<Self> {
        if micros.is_empty() {
            return None;
        }
        micros.sort_unstable();
        let at = |q: f64| {
            let i = ((micros.len() as f64 - 1.0) * q).round() as usize;
            micros[i.min(micros.len() - 1)] as f64 / 1000.0
        };
        Some(Percentiles {
            samples: micros.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

/// What a run showed.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The scenario.
    pub scenario: String,
    /// How long the workers ran, in seconds.
    pub ran_secs: f64,
    /// Worker processes killed.
    pub kills: usize,
    /// Worker processes started (kills and crashes restart one).
    pub starts: usize,
    /// Grants.
    pub grants: usize,
    /// Refresh requests the server saw.
    pub requests: usize,
    /// Refreshes that rotated a token.
    pub rotations: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
    /// Requests that presented an already spent refresh token.
    pub spent_sends: usize,
    /// Of those, how many each excused cause explains.
    pub spent_excused: BTreeMap<String, usize>,
    /// Every lost refresh token.
    pub losses: Vec<Loss>,
    /// Grants live at the end (active, newest token stored).
    pub live: usize,
    /// `reauthorization_needed` events logged by workers.
    pub reauth_events: usize,
    /// Tokens presented again before they were written.
    pub used_before_written: usize,
    /// Time from receiving a refresh token to its won write, same worker.
    pub receive_to_write: Option<Percentiles>,
    /// For tokens lost to a kill after their answer came: how long they had
    /// waited unwritten.
    pub kill_window: Option<Percentiles>,
    /// For every token lost to a kill: the time from the spend to the kill.
    pub spend_to_kill: Option<Percentiles>,
    /// Engine refusals and store failures logged by workers.
    pub worker_failures: usize,
    /// A few of them.
    pub failure_examples: Vec<String>,
    /// The app's asks, by status.
    pub asks: BTreeMap<String, u64>,
    /// Secrets searched for, and files scanned.
    pub secret_scan: (usize, usize),
    /// Violations by invariant.
    pub violations: BTreeMap<&'static str, Violations>,
}

impl Report {
    /// Whether every invariant held.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.values().all(|v| v.count == 0)
    }

    fn violation(&mut self, invariant: &'static str, example: impl FnOnce() -> String) {
        self.violations.entry(invariant).or_default().add(example);
    }

    /// Losses by cause.
    #[must_use]
    pub fn losses_by_cause(&self) -> BTreeMap<String, usize> {
        let mut by = BTreeMap::new();
        for loss in &self.losses {
            *by.entry(format!("{:?}", loss.cause)).or_default() += 1;
        }
        by
    }
}

/// The invariant names, as reported.
pub mod invariant {
    /// 1.
    pub const SPENT_SENT: &str = "1. spent refresh token sent (not excused)";
    /// 2.
    pub const STORE_NOT_NEWEST: &str = "2. store lacks the newest refresh token";
    /// 3.
    pub const OVERLAP: &str = "3. two refreshes in flight for one grant";
    /// 4.
    pub const SPURIOUS_REAUTH: &str = "4. re-authorization for a healthy grant";
    /// 5.
    pub const NOT_LIVE: &str = "5. grant not live at the end (not excused)";
    /// 5.
    pub const NO_PROGRESS: &str = "5. grant never refreshed";
    /// 6.
    pub const LEAK: &str = "6. secret in an output";
    /// 7.
    pub const WINDOW: &str = "7. kill lost a received token that waited unwritten over 1 s";
    /// 7.
    pub const KILL_WINDOW: &str =
        "7. kill lost a token outside one request plus one write after its spend";
    /// 8.
    pub const ENGINE_LOST: &str = "8. received token never written (engine)";
    /// 8.
    pub const CRASH: &str = "8. worker exited by itself";
    /// 9.
    pub const FINGERPRINT: &str = "9. engine fingerprint names another token";
    /// 0.
    pub const LOGS: &str = "0. logs incomplete";
}

fn ms(us: Micros) -> f64 {
    us as f64 / 1000.0
}

fn fault_name(f: FaultKind) -> String {
    format!("{f:?}")
}

/// Checks a finished run.
///
/// # Errors
/// The run's files cannot be read.
pub fn check(scenario: &Scenario, facts: &RunFacts) -> Result<Report, String> {
    let logs = logs::read(&facts.dir)?;
    let mut report = Report {
        scenario: scenario.name.clone(),
        ran_secs: facts.ran.as_secs_f64(),
        kills: facts.kills,
        starts: facts.starts,
        grants: logs.installed.len(),
        requests: logs.refreshes.len(),
        ..Report::default()
    };
    let window = duration_micros(WRITE_WINDOW);
    // The rotation that spent each token, and every token presented.
    let mut spender: HashMap<&str, &Refresh> = HashMap::new();
    let mut presented: HashSet<&str> = HashSet::new();
    let mut rotations_of: HashMap<&str, usize> = HashMap::new();
    for r in &logs.refreshes {
        presented.insert(r.fp.as_str());
        if let Some(f) = r.fault {
            *report.faults.entry(fault_name(f)).or_default() += 1;
        }
        if r.outcome == Outcome::Rotated {
            report.rotations += 1;
            spender.insert(r.fp.as_str(), r);
            if let Some(g) = &r.grant {
                *rotations_of.entry(g.as_str()).or_default() += 1;
            }
        }
    }
    // The fate of every token issued by a rotation.
    let mut loss_of: HashMap<&str, usize> = HashMap::new();
    let mut latencies = Vec::new();
    for r in logs
        .refreshes
        .iter()
        .filter(|r| r.outcome == Outcome::Rotated)
    {
        let Some(new) = r.new.as_deref() else {
            continue;
        };
        let worker = r.worker.clone().unwrap_or_default();
        let answer = r
            .wreq
            .and_then(|id| logs.instances.get(&worker)?.answers.get(&id).cloned());
        if let Some((t_write, by)) = logs.first_write.get(new) {
            if let Some((t_answer, _, _)) = &answer
                && *by == worker
            {
                latencies.push(t_write.saturating_sub(*t_answer));
            }
            continue;
        }
        if presented.contains(new) {
            report.used_before_written += 1;
            continue;
        }
        let (cause, waited) = cause_of(&logs, r, &worker, answer.as_ref());
        let spend_to_kill = matches!(cause, Cause::KilledInFlight | Cause::KilledBeforeWrite)
            .then(|| logs.killed.get(&worker))
            .flatten()
            .map(|k| k.saturating_sub(r.spent_at.unwrap_or(r.arrived)));
        loss_of.insert(new, report.losses.len());
        report.losses.push(Loss {
            grant: r.grant.clone().unwrap_or_default(),
            req: r.req,
            worker,
            spent_at: r.spent_at.unwrap_or(r.arrived),
            cause,
            waited,
            spend_to_kill,
        });
    }
    report.receive_to_write = Percentiles::of(latencies);
    report.kill_window = Percentiles::of(report.losses.iter().filter_map(|l| l.waited).collect());
    report.spend_to_kill = Percentiles::of(
        report
            .losses
            .iter()
            .filter_map(|l| l.spend_to_kill)
            .collect(),
    );
    // One request (the client's timeout) plus one write.
    let request_and_write = duration_micros(scenario.request_timeout) + window;
    for loss in report.losses.clone() {
        if !loss.cause.excused() {
            report.violation(invariant::ENGINE_LOST, || {
                format!(
                    "{}: token from rotation #{} received by {} ({:?})",
                    loss.grant, loss.req, loss.worker, loss.cause
                )
            });
        }
        if let Some(w) = loss.spend_to_kill
            && w > request_and_write
        {
            report.violation(invariant::KILL_WINDOW, || {
                format!(
                    "{}: {} was killed {:.0} ms after the server spent the token of rotation #{}",
                    loss.grant,
                    loss.worker,
                    ms(w),
                    loss.req
                )
            });
        }
        if let (Cause::KilledBeforeWrite, Some(waited)) = (loss.cause, loss.waited)
            && waited > window
        {
            report.violation(invariant::WINDOW, || {
                format!(
                    "{}: {} held the token from rotation #{} unwritten for {:.0} ms, then was killed",
                    loss.grant,
                    loss.worker,
                    loss.req,
                    ms(waited)
                )
            });
        }
    }
    let losses = report.losses.clone();
    let excused_loss = |grant: &str, before: Micros| {
        losses
            .iter()
            .any(|l| l.grant == grant && l.cause.excused() && l.spent_at <= before)
    };
    let any_loss = |grant: &str, before: Micros| {
        losses
            .iter()
            .any(|l| l.grant == grant && l.spent_at <= before)
    };
    // 1. Spent tokens sent.
    let mut spent_examples = Vec::new();
    for s in &logs.refreshes {
        if s.outcome == Outcome::RefusedUnknown {
            spent_examples.push((
                invariant::SPENT_SENT,
                format!("req #{} by {:?}: a token never issued", s.req, s.worker),
            ));
            continue;
        }
        let Some(r) = spender.get(s.fp.as_str()) else {
            continue;
        };
        let spent_before = r.req != s.req && r.spent_at.is_some_and(|t| t <= s.arrived);
        if s.outcome != Outcome::RefusedSpent && !spent_before {
            continue;
        }
        report.spent_sends += 1;
        let successor = r.new.as_deref().unwrap_or("");
        if let Some(&i) = loss_of.get(successor) {
            let cause = report.losses[i].cause;
            if cause.excused() {
                *report
                    .spent_excused
                    .entry(format!("{cause:?}"))
                    .or_default() += 1;
                continue;
            }
        }
        let grant = s.grant.clone().unwrap_or_default();
        let sender = s.worker.clone().unwrap_or_default();
        let why = match logs.first_write.get(successor) {
            Some((tw, by)) if *tw <= s.arrived => format!(
                "its successor (rotation #{} by {}) was stored by {by} {:.0} ms before: stale view",
                r.req,
                r.worker.as_deref().unwrap_or("?"),
                ms(s.arrived - tw)
            ),
            Some((tw, by)) => format!(
                "its successor (rotation #{} by {}) was stored by {by} only {:.0} ms later: write queued",
                r.req,
                r.worker.as_deref().unwrap_or("?"),
                ms(tw - s.arrived)
            ),
            None => format!(
                "its successor (rotation #{} by {}) was never stored",
                r.req,
                r.worker.as_deref().unwrap_or("?")
            ),
        };
        spent_examples.push((
            invariant::SPENT_SENT,
            format!(
                "{grant}: req #{} by {sender} ({:?}): {why}",
                s.req, s.outcome
            ),
        ));
    }
    for (inv, example) in spent_examples {
        report.violation(inv, || example);
    }
    // 3. Overlaps, per grant, as the server saw them.
    let mut by_grant: BTreeMap<&str, Vec<&Refresh>> = BTreeMap::new();
    for r in &logs.refreshes {
        if let Some(g) = &r.grant {
            by_grant.entry(g.as_str()).or_default().push(r);
        }
    }
    let mut overlaps = Vec::new();
    for (grant, list) in &by_grant {
        let mut open: Option<&Refresh> = None;
        for r in list {
            if let Some(o) = open
                && r.arrived < o.settled
            {
                overlaps.push(format!(
                    "{grant}: req #{} by {} in flight {:.0}–{:.0} ms, req #{} by {} arrived at {:.0} ms",
                    o.req,
                    o.worker.as_deref().unwrap_or("?"),
                    0.0,
                    ms(o.settled - o.arrived),
                    r.req,
                    r.worker.as_deref().unwrap_or("?"),
                    ms(r.arrived - o.arrived)
                ));
            }
            if open.is_none_or(|o| r.settled > o.settled) {
                open = Some(r);
            }
        }
    }
    for example in overlaps {
        report.violation(invariant::OVERLAP, || example);
    }
    // 4. Re-authorizations.
    let mut reauths = Vec::new();
    for (instance, inst) in &logs.instances {
        for (t, grant) in &inst.reauths {
            report.reauth_events += 1;
            if !any_loss(grant, *t) {
                reauths.push(format!("{grant}: {instance} said re-authorization needed"));
            }
        }
    }
    for example in reauths {
        report.violation(invariant::SPURIOUS_REAUTH, || example);
    }
    // 2 and 5. The end state.
    let mut end = Vec::new();
    for grant in logs.installed.keys() {
        let newest = facts.newest.get(grant);
        let stored = logs.store.get(grant);
        let holds_newest = stored.is_some_and(|s| s.fp.as_ref() == newest);
        let active = stored.is_some_and(|s| s.status == "active");
        let live = holds_newest && active;
        if live {
            report.live += 1;
        }
        let excused = excused_loss(grant, Micros::MAX);
        if !holds_newest && !excused {
            end.push((
                invariant::STORE_NOT_NEWEST,
                format!(
                    "{grant}: store v{} holds another token than the server's newest",
                    stored.map_or(0, |s| s.version)
                ),
            ));
        }
        if !live && !excused {
            end.push((
                invariant::NOT_LIVE,
                format!(
                    "{grant}: stored status {}, newest token {}",
                    stored.map_or("missing", |s| s.status),
                    if holds_newest { "stored" } else { "not stored" }
                ),
            ));
        }
        if rotations_of.get(grant.as_str()).copied().unwrap_or(0) == 0 && !excused {
            end.push((
                invariant::NO_PROGRESS,
                format!("{grant}: no rotation in {:.0} s", report.ran_secs),
            ));
        }
    }
    for (inv, example) in end {
        report.violation(inv, || example);
    }
    // 6. Secrets.
    let (searched, scanned, leaks) = secrets::scan(&facts.dir)?;
    report.secret_scan = (searched, scanned);
    for leak in leaks {
        report.violation(invariant::LEAK, || {
            format!(
                "{}: secret {} found {} times",
                leak.file, leak.fp, leak.count
            )
        });
    }
    // 8. Crashes, and what workers logged.
    for (instance, code) in &logs.exited {
        report.violation(invariant::CRASH, || {
            format!("{instance} exited with {code:?}")
        });
    }
    for (instance, inst) in &logs.instances {
        report.worker_failures += inst.failures.len();
        for f in &inst.failures {
            if f.contains(crate::worker::engine::FINGERPRINT_DISAGREES) {
                report.violation(invariant::FINGERPRINT, || format!("{instance}: {f}"));
            }
            if report.failure_examples.len() < EXAMPLES {
                report.failure_examples.push(format!("{instance}: {f}"));
            }
        }
        for (status, n) in &inst.asks {
            *report.asks.entry(status.clone()).or_default() += n;
        }
    }
    // 0. The logs account for every token the server issued, and only a
    // killed process leaves a torn line.
    let issued: HashSet<&str> = logs
        .installed
        .values()
        .map(String::as_str)
        .chain(logs.refreshes.iter().filter_map(|r| r.new.as_deref()))
        .collect();
    for (grant, fp) in &facts.newest {
        if !issued.contains(fp.as_str()) {
            report.violation(invariant::LOGS, || {
                format!("{grant}: the server's newest token is in no log line")
            });
        }
    }
    if logs.unreadable > 0 {
        let n = logs.unreadable;
        report.violation(invariant::LOGS, || {
            format!("{n} unreadable server or fleet lines")
        });
    }
    for (instance, inst) in &logs.instances {
        if inst.unreadable > 0 && !logs.killed.contains_key(instance) {
            let n = inst.unreadable;
            report.violation(invariant::LOGS, || {
                format!("{instance}: {n} unreadable lines")
            });
        }
    }
    for inv in [
        invariant::LOGS,
        invariant::SPENT_SENT,
        invariant::STORE_NOT_NEWEST,
        invariant::OVERLAP,
        invariant::SPURIOUS_REAUTH,
        invariant::NOT_LIVE,
        invariant::NO_PROGRESS,
        invariant::LEAK,
        invariant::WINDOW,
        invariant::KILL_WINDOW,
        invariant::ENGINE_LOST,
        invariant::CRASH,
        invariant::FINGERPRINT,
    ] {
        report.violations.entry(inv).or_default();
    }
    Ok(report)
}

/// Why the token issued by rotation `r` was never stored.
fn cause_of(
    logs: &RunLogs,
    r: &Refresh,
    worker: &str,
    answer: Option<&(Micros, Option<String>, Option<String>)>,
) -> (Cause, Option<Micros>) {
    match r.delivery {
        Delivery::Dropped => return (Cause::DroppedAfterSpend, None),
        Delivery::Held => return (Cause::HeldAfterSpend, None),
        Delivery::Sent => {}
    }
    let inst = logs.instances.get(worker);
    let killed = logs.killed.get(worker).copied();
    let forced = logs.forced.get(worker).copied();
    match answer {
        Some((_, _, Some(_))) => (Cause::EngineRefusedAnswer, None),
        Some((t_answer, _, None)) => match (killed, forced) {
            (Some(k), _) if k >= *t_answer => (Cause::KilledBeforeWrite, Some(k - t_answer)),
            (_, Some(f)) if f >= *t_answer => (Cause::ForcedStop, Some(f - t_answer)),
            _ => (Cause::NeverWritten, None),
        },
        None => {
            let gave_up = r
                .wreq
                .is_some_and(|id| inst.is_some_and(|i| i.transport.contains_key(&id)));
            if gave_up {
                (Cause::ClientGaveUp, None)
            } else if killed.is_some() {
                (Cause::KilledInFlight, None)
            } else if forced.is_some() {
                (Cause::ForcedStop, None)
            } else {
                (Cause::NeverWritten, None)
            }
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== chaos scenario {}: {}",
            self.scenario,
            if self.passed() { "PASSED" } else { "FAILED" }
        )?;
        writeln!(
            f,
            "ran {:.1} s; {} grants; {} worker starts, {} kills",
            self.ran_secs, self.grants, self.starts, self.kills
        )?;
        writeln!(
            f,
            "server: {} refresh requests, {} rotations; faults {:?}",
            self.requests, self.rotations, self.faults
        )?;
        let in_transit = self.losses.iter().filter(|l| l.cause.in_transit()).count();
        let excused = self.losses.iter().filter(|l| l.cause.excused()).count();
        writeln!(
            f,
            "losses: {} ({} in transit, {} by kills, {} not excused) {:?}",
            self.losses.len(),
            in_transit,
            excused - in_transit,
            self.losses.len() - excused,
            self.losses_by_cause()
        )?;
        writeln!(
            f,
            "spent-token sends: {} ({} excused: {:?})",
            self.spent_sends,
            self.spent_excused.values().sum::<usize>(),
            self.spent_excused
        )?;
        writeln!(
            f,
            "grants live at the end: {}/{}; re-authorization events: {}",
            self.live, self.grants, self.reauth_events
        )?;
        match &self.receive_to_write {
            Some(p) => writeln!(
                f,
                "receive → write: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} tokens)",
                p.p50, p.p99, p.max, p.samples
            )?,
            None => writeln!(f, "receive → write: no sample")?,
        }
        if let Some(p) = &self.spend_to_kill {
            writeln!(
                f,
                "tokens lost to kills, spend → kill (0: killed before the spend): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} tokens)",
                p.p50, p.p99, p.max, p.samples
            )?;
        }
        if let Some(p) = &self.kill_window {
            writeln!(
                f,
                "tokens killed unwritten had waited: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} tokens)",
                p.p50, p.p99, p.max, p.samples
            )?;
        }
        writeln!(
            f,
            "asks: {:?}; tokens used before written: {}; secrets searched {} in {} files",
            self.asks, self.used_before_written, self.secret_scan.0, self.secret_scan.1
        )?;
        writeln!(f, "worker failures logged: {}", self.worker_failures)?;
        for e in &self.failure_examples {
            writeln!(f, "    {e}")?;
        }
        writeln!(f, "invariants:")?;
        for (name, v) in &self.violations {
            let mark = if v.count == 0 { "ok  " } else { "FAIL" };
            writeln!(f, "  {mark} {name}: {}", v.count)?;
            for e in &v.examples {
                writeln!(f, "         {e}")?;
            }
        }
        Ok(())
    }
}

/// Writes the report next to the logs, as `report.txt`.
///
/// # Errors
/// The file cannot be written.
pub fn save(report: &Report, dir: &Path) -> Result<(), String> {
    std::fs::write(dir.join("report.txt"), report.to_string()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
