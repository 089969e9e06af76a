//! The simulated store: an in-memory compare-and-swap store, and the
//! engines' loads and writes against it (delayed, failed, stale).

use super::*;

/// An in-memory store with compare-and-swap on the record version.
#[derive(Debug, Default)]
pub struct Store {
    pub records: BTreeMap<String, GrantRecord>,
    /// The last few records written per grant, oldest first (the current
    /// one last): stale records for out-of-order notifications.
    pub history: BTreeMap<String, VecDeque<GrantRecord>>,
    pub writes: u64,
    pub conflicts: u64,
    /// Every refresh token ever written.
    pub ever_stored: HashSet<String>,
    /// The shared request budget: per key, the tokens granted (when, to
    /// whom, whether for counted requests, how many).
    pub budget: BTreeMap<String, Vec<Granted>>,
    /// Per key, who claimed last when.
    pub holders: BTreeMap<String, BTreeMap<String, SystemTime>>,
    /// Claims answered.
    pub claims: u64,
}

/// Tokens of the shared request budget granted by one claim.
#[derive(Debug, Clone)]
pub struct Granted {
    pub at: SystemTime,
    pub holder: String,
    pub others: bool,
    pub count: u32,
}

impl Store {
    /// Writes `record` if the stored version is `replaces` (`None`: only if
    /// nothing is stored); otherwise hands back the stored record, or the
    /// write's error when nothing is stored.
    pub fn cas(
        &mut self,
        replaces: Option<u64>,
        record: GrantRecord,
    ) -> Result<(), Option<Box<GrantRecord>>> {
        let key = record.grant.as_str().to_owned();
        let current = self.records.get(&key);
        if current.map(|r| r.version) == replaces {
            self.remember(&record);
            self.records.insert(key, record);
            self.writes += 1;
            Ok(())
        } else {
            self.conflicts += 1;
            Err(current.cloned().map(Box::new))
        }
    }

    pub(super) fn remember(&mut self, record: &GrantRecord) {
        if let Some(r) = record.refresh_token() {
            self.ever_stored.insert(r.secret().to_owned());
        }
        let h = self
            .history
            .entry(record.grant.as_str().to_owned())
            .or_default();
        if h.len() == 6 {
            h.pop_front();
        }
        h.push_back(record.clone());
    }

    /// Answers a claim on the shared request budget at `now`, as
    /// [`BudgetClaim`] specifies.
    pub fn claim(&mut self, claim: &BudgetClaim, now: SystemTime) -> ClaimOutcome {
        self.claims += 1;
        let entries = self.budget.entry(claim.key.clone()).or_default();
        entries.retain(|g| g.at + claim.window > now);
        let used: u32 = entries.iter().map(|g| g.count).sum();
        let used_others: u32 = entries.iter().filter(|g| g.others).map(|g| g.count).sum();
        let sends = claim.sends.min(claim.max.saturating_sub(used));
        let others = claim
            .others
            .min(claim.others_max.saturating_sub(used_others))
            .min(claim.max.saturating_sub(used + sends));
        for (count, others) in [(sends, false), (others, true)] {
            if count > 0 {
                entries.push(Granted {
                    at: now,
                    holder: claim.holder.clone(),
                    others,
                    count,
                });
            }
        }
        let seen = self.holders.entry(claim.key.clone()).or_default();
        seen.insert(claim.holder.clone(), now);
        let memory = claim.window * hoopai_oauth::HOLDERS_WINDOWS;
        seen.retain(|_, at| *at + memory > now);
        let holders: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
        let next_free_in = entries
            .iter()
            .map(|g| g.at + claim.window)
            .min()
            .and_then(|t| t.duration_since(now).ok())
            .unwrap_or_default();
        ClaimOutcome::Granted {
            sends,
            others,
            holders: u32::try_from(holders.len().max(1)).unwrap_or(u32::MAX),
            next_free_in,
        }
    }

    /// Overwrites (single-process mode).
    pub fn put(&mut self, record: GrantRecord) {
        self.remember(&record);
        self.writes += 1;
        self.records
            .insert(record.grant.as_str().to_owned(), record);
    }
}

/// How long a delayed write takes to reach the store: well within a lease,
/// with a late answer before it (a write slower than the lease lets another
/// engine take over while it is out, and no engine can help that).
pub const WRITE_DELAY: Duration = Duration::from_secs(20);

impl Sim {
    /// Answers engine `node`'s claim on the shared request budget (or
    /// fails it, if so scripted) and hands the answer back.
    pub(super) fn on_claim(&mut self, node: usize, claim: &BudgetClaim) {
        let name = self.nodes[node].name.clone();
        let outcome = if self.fail_claims > 0 {
            self.fail_claims -= 1;
            ClaimOutcome::Failed(StoreFailure::new("the store is down"))
        } else {
            self.store.claim(claim, self.now)
        };
        let answer = match &outcome {
            ClaimOutcome::Granted {
                sends,
                others,
                holders,
                next_free_in,
            } => format!(
                "granted sends={sends} others={others} holders={holders} next free in {} ms",
                next_free_in.as_millis()
            ),
            ClaimOutcome::Failed(_) => "failed".to_owned(),
            other => format!("{other:?}"),
        };
        self.note(
            &name,
            format!(
                "claim {} sends={} others={} -> {answer}",
                claim.key, claim.sends, claim.others
            ),
        );
        self.nodes[node]
            .engine
            .handle_claim(&claim.key, outcome, self.now)
            .expect("handle_claim");
    }

    /// Reads the record of `grant` for engine `node` at any time, as a
    /// change notification would (stale, if so scripted), and hands it back.
    pub fn reread(&mut self, node: usize, grant: &str) {
        self.on_load(node, GrantId::new(grant));
    }

    /// Reads the record for engine `node` (stale, if so scripted) and hands
    /// it back.
    pub(super) fn on_load(&mut self, node: usize, grant: GrantId) {
        let name = self.nodes[node].name.clone();
        let mut current = self.store.records.get(grant.as_str()).cloned();
        if self.stale_reads > 0 {
            self.stale_reads -= 1;
            let history = self.store.history.get(grant.as_str());
            if let Some(old) = history.and_then(|h| h.len().checked_sub(3).map(|i| h[i].clone())) {
                self.note(&name, "stale read");
                current = Some(old);
            }
        }
        let text = match &current {
            Some(r) => self.record_text(r),
            None => "none".to_owned(),
        };
        self.note(&name, format!("load {grant} -> {text}"));
        let result = self.nodes[node]
            .engine
            .handle_load(grant.as_str(), Ok(current), self.now);
        if let Err(e) = result {
            self.violations.push(format!(
                "{} {name}: handle_loaded of {grant} refused: {e}",
                rel(self.now)
            ));
        }
    }

    pub(super) fn on_persist(
        &mut self,
        node: usize,
        grant: GrantId,
        record: GrantRecord,
        replaces: Option<u64>,
    ) {
        let name = self.nodes[node].name.clone();
        let text = self.record_text(&record);
        let replaces_text = replaces.map_or("none".to_owned(), |v| format!("v{v}"));
        if !self.nodes[node].settings.is_shared() && self.fail_writes == 0 {
            self.note(
                &name,
                format!("persist {grant} {text} (replaces {replaces_text})"),
            );
            let version = record.version;
            self.store.put(record);
            self.report(node, &grant, version, WriteOutcome::Written);
            return;
        }
        if self.fail_writes > 0 {
            self.fail_writes -= 1;
            self.note(
                &name,
                format!("persist {grant} {text} (cas on {replaces_text}: store down)"),
            );
            let failure = StoreFailure::new("the simulated store is down");
            self.report(node, &grant, record.version, WriteOutcome::Failed(failure));
            return;
        }
        if self.hold_confirmations > 0 {
            self.hold_confirmations -= 1;
            self.note(
                &name,
                format!("persist {grant} {text} (cas on {replaces_text}: delayed)"),
            );
            self.delayed.push(Delayed {
                at: self.now + WRITE_DELAY,
                node,
                grant,
                record,
                replaces,
                report: true,
            });
            return;
        }
        self.write(node, grant, record, replaces, true);
    }

    /// A compare-and-swap, and its outcome reported to the engine.
    pub(super) fn write(
        &mut self,
        node: usize,
        grant: GrantId,
        record: GrantRecord,
        replaces: Option<u64>,
        report: bool,
    ) {
        let name = self.nodes[node].name.clone();
        let text = self.record_text(&record);
        let replaces_text = replaces.map_or("none".to_owned(), |v| format!("v{v}"));
        let version = record.version;
        let outcome = self.store.cas(replaces, record);
        if !report {
            let how = if outcome.is_ok() { "won" } else { "lost" };
            self.note(
                &name,
                format!("persist {grant} {text} (cas on {replaces_text}: {how}; not reported)"),
            );
            return;
        }
        match outcome {
            Ok(()) => {
                self.note(
                    &name,
                    format!("persist {grant} {text} (cas on {replaces_text}: won)"),
                );
                self.report(node, &grant, version, WriteOutcome::Written);
            }
            Err(None) => {
                // Nothing stored to hand back: the write failed, and the
                // engine waits for an outcome that never comes.
                self.violations.push(format!(
                    "{} {name}: write of {grant} replaces v{} but nothing is stored",
                    rel(self.now),
                    replaces.unwrap_or_default()
                ));
                self.note(
                    &name,
                    format!("persist {grant} {text} (cas on {replaces_text}: nothing stored)"),
                );
            }
            Err(Some(current)) => {
                let cur = self.record_text(&current);
                self.note(
                    &name,
                    format!("persist {grant} {text} (cas on {replaces_text}: lost to {cur})"),
                );
                self.report(node, &grant, version, WriteOutcome::Conflict(current));
            }
        }
    }

    /// Hands the outcome of a write to engine `node`; a refusal is a violation.
    fn report(&mut self, node: usize, grant: &GrantId, version: u64, outcome: WriteOutcome) {
        let what = format!("{outcome:?}");
        let what = what.split('(').next().unwrap_or_default().to_owned();
        let result =
            self.nodes[node]
                .engine
                .handle_write(grant.as_str(), version, outcome, self.now);
        if let Err(e) = result {
            let name = self.nodes[node].name.clone();
            self.violations.push(format!(
                "{} {name}: write outcome {what} of {grant} refused: {e}",
                rel(self.now)
            ));
        }
    }

    /// The writes held back reach the store now, in order, and their
    /// outcomes are reported.
    pub fn confirm(&mut self) {
        for d in std::mem::take(&mut self.delayed) {
            self.arrive(d);
        }
    }

    pub(super) fn arrive(&mut self, d: Delayed) {
        let name = self.nodes[d.node].name.clone();
        self.note(&name, format!("delayed write of {} arrives", d.grant));
        self.write(d.node, d.grant, d.record, d.replaces, d.report);
        self.pump(d.node);
    }

    /// The grant was removed from engine `node`: the outcomes of its writes
    /// still out are not reported (they still reach the store).
    pub fn forget_writes(&mut self, node: usize, grant: &str) {
        for d in &mut self.delayed {
            if d.node == node && d.grant.as_str() == grant {
                d.report = false;
            }
        }
    }

    /// Restores every stored record of a grant engine `node` does not hold.
    pub fn load(&mut self, node: usize) {
        let name = self.nodes[node].name.clone();
        let records: Vec<GrantRecord> = self.store.records.values().cloned().collect();
        for record in records {
            if self.nodes[node]
                .engine
                .grants()
                .get(record.grant.as_str())
                .is_some()
            {
                continue;
            }
            let text = self.record_text(&record);
            let grant = record.grant.clone();
            self.note(&name, format!("restore {grant} {text}"));
            self.nodes[node]
                .engine
                .restore(record, self.now)
                .expect("restore");
            self.pump(node);
        }
    }
}
