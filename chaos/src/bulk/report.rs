//! The checks of a fleet run, from what it left: the fake's request log and
//! counters, the apps' logs, the orchestrator's delivery log, the metrics
//! scraped, and the store's records.
//!
//! - no `429` from the fake;
//! - every location minted, and minted once, but for the mints a SIGKILL
//!   explains: a location a killed instance had accepted (in a webhook it
//!   acted on) and not written, minted again by the recovery;
//! - nothing lost: every location has a record in the store, minted from the
//!   Company grant, with a refresh token and a live access token;
//! - ready (every location's record holding its tokens) within 1.1 × the
//!   budget's floor; with kills, plus one lease and one budget window;
//! - every delivery (`webhookId`) acted on exactly once across the fleet,
//!   or never when it went to an instance killed before it could say so;
//!   repeats answered `duplicate`;
//! - no token the store holds at the end, nor the client secret, in any
//!   file of the run but the store's copy;
//! - the metrics against the logs: per surviving instance at the end,
//!   webhooks accepted and records written equal to its log, replays
//!   between the duplicates it answered and those plus the deliveries whose
//!   answer was lost; no 429 counted; per killed instance, its last scrape
//!   at most its log.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hoopai_oauth::{GrantId, GrantRecord};

use super::deliver::Attempt;
use super::scrape::Scrape;
use super::{BulkScenario, COMPANY, DELIVERIES_LOG, SCRAPES};
use crate::journal::{FleetLine, Micros, WorkerLine, read_lines};

/// What a run left for the checks, besides its folder.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// The run's folder.
    pub dir: PathBuf,
    /// When the first webhook went out.
    pub began: Micros,
    /// From the first webhook to the last location stored.
    pub ready_after: Option<Duration>,
    /// How long the run took, the recovery included.
    pub ran: Duration,
    /// Instances killed.
    pub kills: usize,
    /// Webhooks delivered.
    pub webhooks: usize,
    /// The instance restarted with an installed-locations sync, and when.
    pub synced_by: Option<(String, Micros)>,
    /// The last scrape of every instance running at the end.
    pub last_scrapes: Vec<Scrape>,
    /// The fake's `/_fake/stats`.
    pub fake_stats: serde_json::Value,
    /// The fake's request log.
    pub fake_log: Vec<serde_json::Value>,
    /// Every record of the store at the end.
    pub records: Vec<GrantRecord>,
}

/// One instance's log, counted.
#[derive(Debug, Default, Clone)]
struct Incarnation {
    /// `webhookId`s acted on.
    webhooks: Vec<String>,
    /// Location grants whose minted tokens it wrote, and when first.
    minted: BTreeMap<String, Micros>,
    /// Records written (won).
    written: u64,
    /// The sync's additions.
    synced: usize,
    killed: bool,
    failures: Vec<String>,
}

/// The numbers of a run and what failed.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// Locations installed.
    pub locations: usize,
    /// Webhooks delivered; delivery attempts in all; repeats; lost answers;
    /// retries.
    pub webhooks: usize,
    /// Every delivery attempt.
    pub attempts: usize,
    /// Second deliveries after a success, to another instance.
    pub repeats: usize,
    /// First deliveries whose answer was not read.
    pub dropped: usize,
    /// Deliveries after a failure or a lost answer.
    pub retries: usize,
    /// Attempts answered `duplicate`.
    pub duplicates: usize,
    /// Instances killed; incarnations started.
    pub kills: usize,
    /// Instances started, restarts included.
    pub starts: usize,
    /// Location-token mints the fake answered; of them, beyond one per
    /// location.
    pub mints: usize,
    /// Mints beyond one per location.
    pub extra_mints: usize,
    /// `429`s the fake answered.
    pub rate_limited: u64,
    /// Locations the recovery sync minted.
    pub synced: usize,
    /// Ready time and the budget's floor.
    pub ready_after: Option<Duration>,
    /// The budget's floor for the locations' mints.
    pub floor: Duration,
    /// The most `ready_after` may be: 1.1 × the floor; with kills, plus one
    /// lease and one budget window (a mint lost in flight with its instance
    /// is sent again only once its lease ends, and then waits for room in
    /// the budget).
    pub bound: Duration,
    /// How long the run took.
    pub ran: Duration,
    /// Metrics compared with the logs (one line per comparison).
    pub metrics: Vec<String>,
    /// What failed.
    pub failures: Vec<String>,
}

impl Report {
    /// Whether every check held.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: Option<Duration>| {
            d.map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
        };
        writeln!(
            f,
            "{}: {} locations in {} webhooks to {} instance starts ({} killed); \
             {} attempts: {} repeats, {} answers lost, {} retries, {} answered duplicate",
            self.name,
            self.locations,
            self.webhooks,
            self.starts,
            self.kills,
            self.attempts,
            self.repeats,
            self.dropped,
            self.retries,
            self.duplicates
        )?;
        writeln!(
            f,
            "  mints {} ({} beyond one per location, {} by the recovery sync), 429s {}; \
             ready after {} (floor {:.1} s, bound {:.1} s); run {:.1} s",
            self.mints,
            self.extra_mints,
            self.synced,
            self.rate_limited,
            secs(self.ready_after),
            self.floor.as_secs_f64(),
            self.bound.as_secs_f64(),
            self.ran.as_secs_f64()
        )?;
        for line in &self.metrics {
            writeln!(f, "  metrics: {line}")?;
        }
        if self.failures.is_empty() {
            writeln!(f, "  every check held")
        } else {
            for failure in &self.failures {
                writeln!(f, "  FAILED: {failure}")?;
            }
            Ok(())
        }
    }
}

fn read_incarnations(dir: &Path) -> Result<BTreeMap<String, Incarnation>, String> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(instance) = name
            .strip_prefix(crate::files::WORKER_PREFIX)
            .and_then(|n| n.strip_suffix(".log"))
        else {
            continue;
        };
        let (lines, _) = read_lines::<WorkerLine>(&entry.path()).map_err(|e| e.to_string())?;
        let mut inc = Incarnation::default();
        for line in lines {
            match line {
                WorkerLine::Webhook { id, .. } => inc.webhooks.push(id),
                WorkerLine::Write {
                    t, grant, fp, won, ..
                } if won => {
                    inc.written += 1;
                    // The first record of a location that holds tokens
                    // (a mint is preceded by one that holds only a lease).
                    if fp != "none" && grant != COMPANY {
                        inc.minted.entry(grant).or_insert(t);
                    }
                }
                WorkerLine::Synced { added, error, .. } => {
                    inc.synced += added;
                    if let Some(e) = error {
                        inc.failures.push(format!("sync: {e}"));
                    }
                }
                WorkerLine::Failure { what, .. } => inc.failures.push(what),
                _ => {}
            }
        }
        out.insert(instance.to_owned(), inc);
    }
    let (fleet, _) =
        read_lines::<FleetLine>(&dir.join(crate::files::FLEET_LOG)).map_err(|e| e.to_string())?;
    for line in fleet {
        if let FleetLine::Killed { instance, .. } = line
            && let Some(inc) = out.get_mut(&instance)
        {
            inc.killed = true;
        }
    }
    Ok(out)
}

/// From the first webhook to the last location stored: from the apps'
/// logs (the time of each location's first write) when they name every
/// location, else as the orchestrator saw it polling the store.
fn ready_after(
    incarnations: &BTreeMap<String, Incarnation>,
    locations: usize,
    facts: &RunFacts,
) -> Option<Duration> {
    let mut first: BTreeMap<&str, Micros> = BTreeMap::new();
    for inc in incarnations.values() {
        for (grant, t) in &inc.minted {
            let at = first.entry(grant.as_str()).or_insert(*t);
            *at = (*at).min(*t);
        }
    }
    match first.values().max() {
        Some(last) if first.len() >= locations => {
            Some(Duration::from_micros(last.saturating_sub(facts.began)))
        }
        _ => facts.ready_after,
    }
}

/// Checks a run.
///
/// # Errors
/// A log cannot be read.
pub fn check(s: &BulkScenario, facts: &RunFacts) -> Result<Report, String> {
    let incarnations = read_incarnations(&facts.dir)?;
    let (attempts, _) =
        read_lines::<Attempt>(&facts.dir.join(DELIVERIES_LOG)).map_err(|e| e.to_string())?;
    let (scrapes, _) = read_lines::<Scrape>(&facts.dir.join(SCRAPES)).map_err(|e| e.to_string())?;
    let ids = s.location_ids();
    let batches: Vec<Vec<String>> = ids.chunks(s.per_webhook).map(<[String]>::to_vec).collect();
    let mut r = Report {
        name: s.name.clone(),
        locations: s.locations,
        webhooks: facts.webhooks,
        attempts: attempts.len(),
        kills: facts.kills,
        starts: incarnations.len(),
        ready_after: ready_after(&incarnations, s.locations, facts),
        floor: s.floor(s.locations),
        bound: s.floor(s.locations).mul_f64(1.1)
            + if facts.kills > 0 {
                super::APP_LEASE + s.rate_interval + s.budget_margin
            } else {
                Duration::ZERO
            },
        ran: facts.ran,
        ..Report::default()
    };
    let how = |h: &str| attempts.iter().filter(|a| a.how == h).count();
    r.repeats = how("repeat");
    r.dropped = how("dropped");
    r.retries = how("retry");
    r.duplicates = attempts
        .iter()
        .filter(|a| a.answer.as_deref() == Some("duplicate"))
        .count();

    // No 429.
    r.rate_limited = facts
        .fake_stats
        .pointer("/fake/rateLimited")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(u64::MAX);
    if r.rate_limited != 0 {
        r.failures
            .push(format!("the fake answered {} requests 429", r.rate_limited));
    }

    // Each delivery acted on exactly once (never by an instance that lived).
    let mut acted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (instance, inc) in &incarnations {
        for id in &inc.webhooks {
            acted
                .entry(id.as_str())
                .or_default()
                .push(instance.as_str());
        }
    }
    let mut id_of = BTreeMap::new();
    for a in &attempts {
        id_of.entry(a.n).or_insert_with(|| a.webhook.clone());
    }
    // Locations each killed incarnation had taken on and not stored.
    let mut unfinished: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, batch) in batches.iter().enumerate() {
        let Some(id) = id_of.get(&n) else {
            r.failures.push(format!("webhook {n} was never delivered"));
            continue;
        };
        let by = acted.get(id.as_str()).cloned().unwrap_or_default();
        let owners: Vec<&str> = if by.is_empty() {
            // Acted on by none that logged it: it may have been accepted
            // by an instance killed before its log line.
            let killed_targets: Vec<&str> = attempts
                .iter()
                .filter(|a| a.n == n)
                .map(|a| a.to.as_str())
                .filter(|to| incarnations.get(*to).is_some_and(|i| i.killed))
                .collect();
            if killed_targets.is_empty() {
                r.failures
                    .push(format!("webhook {n} ({id}) was acted on by no instance"));
            }
            killed_targets
        } else {
            by.clone()
        };
        if by.len() > 1 {
            r.failures.push(format!(
                "webhook {n} ({id}) was acted on {} times: {by:?}",
                by.len()
            ));
        }
        for owner in owners {
            if let Some(inc) = incarnations.get(owner)
                && inc.killed
            {
                for location in batch {
                    if !inc.minted.contains_key(location) {
                        *unfinished.entry(location.as_str()).or_default() += 1;
                    }
                }
            }
        }
    }
    for a in attempts.iter().filter(|a| a.how == "repeat") {
        if a.error.is_none() && a.answer.as_deref() != Some("duplicate") {
            r.failures.push(format!(
                "a repeat of webhook {} was answered {:?} by {}",
                a.n, a.answer, a.to
            ));
        }
    }

    // Mints: once per location, but for what a kill explains.
    let mut mints: BTreeMap<String, usize> = BTreeMap::new();
    for entry in &facts.fake_log {
        let path = entry.get("path").and_then(|v| v.as_str()).unwrap_or("");
        let status = entry
            .get("status")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if path.ends_with("/oauth/locationToken") && (200..300).contains(&status) {
            let location = entry
                .get("locationId")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            *mints.entry(location.to_owned()).or_default() += 1;
        }
    }
    r.mints = mints.values().sum();
    r.synced = incarnations.values().map(|i| i.synced).sum();
    for location in &ids {
        let n = mints.get(location).copied().unwrap_or(0);
        if n == 0 {
            r.failures.push(format!("{location} was never minted"));
            continue;
        }
        let extra = n - 1;
        r.extra_mints += extra;
        let explained = unfinished.get(location.as_str()).copied().unwrap_or(0);
        if extra > explained {
            r.failures.push(format!(
                "{location} was minted {n} times; kills explain {explained} extra"
            ));
        }
    }
    let others = mints.keys().filter(|l| !ids.contains(l)).count();
    if others > 0 {
        r.failures.push(format!(
            "{others} locations minted that were never installed"
        ));
    }

    // Nothing lost: every location stored, usable.
    let now = SystemTime::now();
    let by_grant: BTreeMap<&str, &GrantRecord> = facts
        .records
        .iter()
        .map(|rec| (rec.grant.as_str(), rec))
        .collect();
    let company = GrantId::new(COMPANY);
    let mut lost = Vec::new();
    for location in &ids {
        match by_grant.get(location.as_str()) {
            Some(rec)
                if rec.minted_from.as_ref() == Some(&company)
                    && rec.refresh_token().is_some()
                    && rec.expires_at() > now => {}
            Some(_) => lost.push(format!("{location} (stored but not usable)")),
            None => lost.push(location.clone()),
        }
    }
    if !lost.is_empty() {
        r.failures.push(format!(
            "{} locations lost: {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        ));
    }

    // Ready within 1.1 × the floor; with kills, plus one lease and one
    // window. Every location a webhook adds has a record at once, so the
    // mints a killed instance had queued are taken up by the instances that
    // restore its records; one it had sent waits for its lease to end.
    let bound = r.bound;
    match r.ready_after {
        None => r.failures.push("the locations were never all ready".into()),
        Some(t) if t > bound => r.failures.push(format!(
            "ready after {:.1} s, over the bound ({:.1} s)",
            t.as_secs_f64(),
            bound.as_secs_f64()
        )),
        Some(_) => {}
    }
    if facts.synced_by.is_some() && facts.kills == 0 {
        r.failures
            .push("locations were missing without a kill: the recovery sync ran".into());
    }

    check_metrics(&mut r, &incarnations, &attempts, &scrapes, facts);

    // No token the store holds at the end (nor the client secret) in any
    // file of the run but the store's copy.
    let tokens: Vec<&str> = facts
        .records
        .iter()
        .flat_map(|rec| {
            [
                Some(rec.access_token().secret()),
                rec.refresh_token().map(|t| t.secret()),
            ]
        })
        .flatten()
        .collect();
    let (_, _, leaks) = crate::check::secrets::scan_for(&facts.dir, tokens)?;
    for leak in leaks {
        r.failures.push(format!(
            "a secret ({}) is in {}, {} times",
            leak.fp, leak.file, leak.count
        ));
    }
    for (instance, inc) in &incarnations {
        for what in inc.failures.iter().take(3) {
            r.failures.push(format!("{instance}: {what}"));
        }
    }
    Ok(r)
}

/// The metrics against the logs.
fn check_metrics(
    r: &mut Report,
    incarnations: &BTreeMap<String, Incarnation>,
    attempts: &[Attempt],
    scrapes: &[Scrape],
    facts: &RunFacts,
) {
    let mut last: BTreeMap<&str, &Scrape> = BTreeMap::new();
    for scrape in scrapes {
        last.insert(scrape.instance.as_str(), scrape);
    }
    let survivors: BTreeSet<&str> = facts
        .last_scrapes
        .iter()
        .map(|s| s.instance.as_str())
        .collect();
    let mut ok_requests = 0;
    for (instance, inc) in incarnations {
        let Some(scrape) = last.get(instance.as_str()) else {
            continue;
        };
        let accepted = scrape.count("hoopai_webhooks_total", &[("verdict", "accepted")]);
        let replays = scrape.count("hoopai_webhooks_total", &[("verdict", "replay")]);
        let written = scrape.count("hoopai_store_writes_total", &[("outcome", "written")]);
        let rate_limited = scrape.count("hoopai_requests_total", &[("answer", "rate_limited")]);
        ok_requests += scrape.count("hoopai_requests_total", &[("answer", "ok")]);
        let logged = inc.webhooks.len() as u64;
        let answered_dup = attempts
            .iter()
            .filter(|a| &a.to == instance && a.answer.as_deref() == Some("duplicate"))
            .count() as u64;
        let dropped_to = attempts
            .iter()
            .filter(|a| &a.to == instance && a.how == "dropped")
            .count() as u64;
        r.metrics.push(format!(
            "{instance}{}: accepted {accepted} (log {logged}), written {written} (log {}), \
             replay {replays} (answered duplicate {answered_dup}, answers lost {dropped_to}), 429 {rate_limited}",
            if inc.killed { " (killed)" } else { "" },
            inc.written
        ));
        if rate_limited != 0 {
            r.failures
                .push(format!("{instance} counted {rate_limited} 429s"));
        }
        if survivors.contains(instance.as_str()) {
            if accepted != logged || written != inc.written {
                r.failures.push(format!(
                    "{instance}: the metrics (accepted {accepted}, written {written}) differ from its log ({logged}, {})",
                    inc.written
                ));
            }
            if replays < answered_dup || replays > answered_dup + dropped_to {
                r.failures.push(format!(
                    "{instance}: {replays} replays counted, {answered_dup} answered duplicate and {dropped_to} answers lost"
                ));
            }
        } else if accepted > logged || written > inc.written {
            r.failures.push(format!(
                "{instance}: its last scrape (accepted {accepted}, written {written}) is past its log ({logged}, {})",
                inc.written
            ));
        }
    }
    r.metrics.push(format!(
        "mints answered ok, summed over the last scrapes: {ok_requests}; the fake's log: {}",
        r.mints
    ));
    if facts.kills == 0 && ok_requests != r.mints as u64 {
        r.failures.push(format!(
            "the apps counted {ok_requests} requests answered ok, the fake answered {} mints",
            r.mints
        ));
    }
}
