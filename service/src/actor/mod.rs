//! The task that owns the engine. It only drives it: it moves the bytes the
//! engine's outputs ask for and hands back their outcomes, and every
//! decision (what to refresh, when, what to write, what a caller gets) is
//! the engine's.
//!
//! One loop waits for whichever comes first: a command from a handle, the
//! answer to a request, a store call returning, or the next deadline (the
//! engine's [`Engine::poll_timeout`], a waiting caller's, a store call's).
//! Nothing in the loop awaits I/O: after each wake-up it drains the
//! engine's outputs at once:
//!
//! - [`Output::Persist`], [`Output::Load`], [`Output::Delete`]: asked of the
//!   store, off the loop, in order per grant and with a deadline (see
//!   `store_io`); each outcome goes back through [`Engine::handle_write`] or
//!   [`Engine::handle_load`] when it comes.
//! - [`Output::Send`]: spawned with the request timeout; its outcome goes
//!   back through [`Engine::handle_send`].
//! - [`Output::Claim`]: a claim on the shared request budget, asked of the
//!   store off the loop with the store's deadline (see `claims`); the
//!   answer, or the failure, goes back through [`Engine::handle_claim`].
//! - [`Output::Event`]: logged, broadcast, and the grant's callers asked
//!   again.
//!
//! Shutdown is the engine's [`Engine::shut_down`]: no refresh starts, and
//! the task waits until no request is out and every record is written, or
//! the grace period ends.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hoopai_oauth::{
    AccessToken, Config, Engine, EngineEvent, GrantId, GrantRecord, Output, RequestId, SendOutcome,
    StoreFailure,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::command::Command;
use crate::errors::{ServiceError, TokenError};
use crate::reports::{GrantInfo, Readiness, ServiceEvent, ShutdownReport, StartReport, StoreProbe};
use crate::settings::ServiceSettings;
use crate::store::{CorruptRecord, GrantStore, StoreError};
use crate::telemetry::{self, Gauges};
use crate::transport::{HttpClient, TransportError};

mod callers;
mod claims;
mod discover;
mod health;
mod installs;
mod store_io;

use crate::command::Discovered;
use callers::{Callers, Deleting, Waiter};
use claims::Claims;
use discover::{Discoveries, Joined};
use store_io::{Op, Outcome, Report, StoreIo};

/// A send's outcome: `None` if it was not dispatched by its `not_after`.
type Answer = (
    RequestId,
    GrantId,
    Option<Result<http::Response<Vec<u8>>, TransportError>>,
);

struct Actor<S, H> {
    engine: Engine,
    http: Arc<H>,
    settings: ServiceSettings,
    events: broadcast::Sender<ServiceEvent>,
    callers: Callers,
    discoveries: Discoveries,
    sends: JoinSet<Answer>,
    claims: Claims<S>,
    io: StoreIo<S>,
    stopping: Option<Stopping>,
    gauges: Gauges,
    prober: health::Prober<S>,
}

struct Stopping {
    deadline: Instant,
    reply: Option<oneshot::Sender<ShutdownReport>>,
    finished: usize,
}

/// `t` as a tokio instant (now if past).
fn instant_at(t: SystemTime) -> Instant {
    let now = SystemTime::now();
    Instant::now() + t.duration_since(now).unwrap_or_default()
}

/// Restores the store into a new engine, then spawns the task.
pub(crate) async fn start<S: GrantStore, H: HttpClient>(
    config: Config,
    settings: ServiceSettings,
    store: S,
    http: Arc<H>,
    events: broadcast::Sender<ServiceEvent>,
) -> Result<(mpsc::Sender<Command>, StartReport), ServiceError> {
    let began = Instant::now();
    let store = Arc::new(store);
    let mut engine = Engine::new(config, settings.engine.clone());
    let mut report = StartReport::default();
    let mut after: Option<GrantId> = None;
    loop {
        let page = tokio::time::timeout(
            settings.store_timeout,
            store.load_page(after.as_ref(), settings.page_size),
        )
        .await
        .map_err(|_| {
            StoreError::backend(
                "store",
                format!(
                    "reading the grants did not complete within {} ms",
                    settings.store_timeout.as_millis()
                ),
            )
        })??;
        let now = SystemTime::now();
        for record in page.records {
            let grant = record.grant.clone();
            let version = record.version;
            match engine.restore(record, now) {
                Ok(()) => report.restored += 1,
                Err(e) => report.corrupt.push(CorruptRecord {
                    grant,
                    version: Some(version),
                    reason: e.to_string(),
                }),
            }
        }
        report.corrupt.extend(page.corrupt);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    report.elapsed = began.elapsed();
    for corrupt in &report.corrupt {
        tracing::error!(grant = %corrupt.grant, reason = %corrupt.reason, "unreadable grant record left in the store");
        let _ = events.send(ServiceEvent::CorruptRecord(corrupt.clone()));
    }
    tracing::info!(
        restored = report.restored,
        corrupt = report.corrupt.len(),
        elapsed_ms = report.elapsed.as_millis() as u64,
        "grants restored"
    );
    let (tx, rx) = mpsc::channel(1024);
    telemetry::describe();
    let actor = Actor {
        gauges: Gauges::new(&engine),
        prober: health::Prober::new(Arc::clone(&store), settings.probe_timeout),
        engine,
        claims: Claims::new(Arc::clone(&store), settings.store_timeout),
        io: StoreIo::new(store, settings.store_timeout),
        http,
        settings,
        events,
        callers: Callers::default(),
        discoveries: Discoveries::default(),
        sends: JoinSet::new(),
        stopping: None,
    };
    tokio::spawn(
        actor
            .run(rx)
            .instrument(tracing::info_span!("hoopai_token_service")),
    );
    Ok((tx, report))
}

impl<S: GrantStore, H: HttpClient> Actor<S, H> {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            self.drain();
            self.gauges.update(&self.engine);
            if let Some(stopping) = &self.stopping {
                let stats = self.engine.stats();
                let done = stats.in_flight == 0 && stats.unwritten == 0 && self.io.is_idle();
                if done || Instant::now() >= stopping.deadline {
                    break;
                }
            }
            let wake = self.next_wake();
            let stopping = self.stopping.is_some();
            tokio::select! {
                command = commands.recv(), if !stopping => match command {
                    Some(command) => self.command(command),
                    // Every handle dropped: stop as `shutdown` does.
                    None => self.begin_stop(None),
                },
                Some(joined) = self.sends.join_next(), if !self.sends.is_empty() => {
                    if let Ok(answer) = joined {
                        self.answer(answer);
                    }
                }
                Some(joined) = self.claims.next(), if !self.claims.is_empty() => {
                    if let Ok((key, outcome)) = joined {
                        let _ = self.engine.handle_claim(&key, outcome, SystemTime::now());
                    }
                }
                Some(done) = self.io.next_done() => {
                    if let Some(report) = self.io.done(done) {
                        self.store_report(report);
                    }
                }
                () = sleep_until(wake) => self.tick(),
            }
        }
        self.finish();
    }

    fn next_wake(&self) -> Option<Instant> {
        [
            self.engine.poll_timeout().map(instant_at),
            self.callers.next_deadline(),
            self.io.next_deadline(),
            self.stopping.as_ref().map(|s| s.deadline),
            self.gauges.next_wake(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn tick(&mut self) {
        let now = Instant::now();
        for report in self.io.expired(now) {
            self.store_report(report);
        }
        let _ = self.engine.handle_timeout(SystemTime::now());
        self.callers.expire(&mut self.engine, now);
    }

    // ---- commands -------------------------------------------------------------

    fn command(&mut self, command: Command) {
        let now = SystemTime::now();
        self.gauges.touch();
        match command {
            Command::Token {
                grant,
                rejected,
                deadline,
                reply,
            } => self.ask(grant, rejected, deadline, reply),
            Command::Add {
                grant,
                tokens,
                reply,
            } => match self.engine.insert(grant.clone(), *tokens, now) {
                Ok(()) => {
                    tracing::info!(grant = %grant, "grant added");
                    self.callers.add(grant, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Remove { grant, reply } => {
                match self
                    .engine
                    .remove(grant.as_str(), hoopai_oauth::Removal::Uninstalled, now)
                {
                    Ok(removed) => {
                        tracing::info!(grant = %grant, removed = removed.len(), "grant removed");
                        for g in &removed {
                            self.callers.gone(g);
                        }
                        self.callers.deleting(&removed, Deleting::Remove(reply));
                    }
                    Err(_) => {
                        let _ = reply.send(Err(ServiceError::UnknownGrant(grant)));
                    }
                }
            }
            Command::List { reply } => {
                let mut list: Vec<GrantInfo> = self
                    .engine
                    .grants()
                    .iter()
                    .map(|g| {
                        let r = g.record();
                        GrantInfo {
                            expires_at: r.expires_at(),
                            company_id: r.company_id().map(str::to_owned),
                            location_id: r.location_id().map(str::to_owned),
                            grant: r.grant.clone(),
                            status: r.status.clone(),
                            version: r.version,
                        }
                    })
                    .collect();
                list.sort_by(|a, b| a.grant.cmp(&b.grant));
                let _ = reply.send(list);
            }
            Command::Webhook { event, reply } => self.webhook(&event, reply),
            Command::SyncLocations {
                company_grant,
                company_id,
                installed,
                reply,
            } => self.sync(&company_grant, &company_id, &installed, reply),
            Command::TakeBudget { reply } => {
                let free = self.engine.count_request(None, now).unwrap_or(None);
                if free.is_none() {
                    self.gauges.sent();
                }
                let _ = reply.send(free);
            }
            Command::Discover { grant, reply } => self.discover(grant, reply),
            Command::CountedAnswer { status, headers } => {
                if let Ok(Some(clamped)) = self
                    .engine
                    .handle_counted_answer(None, status, &headers, now)
                {
                    tracing::warn!(
                        ?clamped,
                        "an answer's rate-limit figures were over their caps"
                    );
                }
            }
            Command::Shutdown { reply } => self.begin_stop(Some(reply)),
            Command::Health { probe_store, reply } => {
                if probe_store {
                    self.prober.probe(reply);
                } else {
                    let _ = reply.send(Readiness {
                        running: self.stopping.is_none(),
                        store: StoreProbe::NotAsked,
                    });
                }
            }
        }
    }

    fn holds(&self, grant: &GrantId) -> bool {
        self.engine.grants().get(grant.as_str()).is_some()
    }

    /// Shared-store mode: reads the record of a grant this process does not
    /// hold (another process may have added it) and restores it; replies
    /// whether the grant is held then, or the store's failure.
    fn discover(&mut self, grant: GrantId, reply: oneshot::Sender<Discovered>) {
        if self.holds(&grant) {
            let _ = reply.send(Ok(true));
            return;
        }
        if self.stopping.is_some() || !self.settings.engine.is_shared() {
            let _ = reply.send(Ok(false));
            return;
        }
        if let Joined::Start = self.discoveries.join(grant.clone(), reply) {
            let call = self.io.ask(grant.clone(), Op::Discover);
            self.discoveries.started(&grant, call);
        }
    }

    /// The read of a discovery returned: the record is restored unless the
    /// grant is held by now (added here meanwhile: what this process holds
    /// is newer than any read made before), there is none, or it cannot be
    /// served (no refresh token, another schema).
    fn discovered(
        &mut self,
        grant: &GrantId,
        call: u64,
        read: Result<Option<GrantRecord>, StoreFailure>,
        now: SystemTime,
    ) {
        let callers = self.discoveries.answered(grant, call);
        let answer = match read {
            _ if self.holds(grant) => Ok(true),
            Ok(None) => Ok(false),
            Ok(Some(record)) => {
                match self.engine.restore(record, now) {
                    Ok(()) => {
                        tracing::info!(grant = %grant, "grant found in the store, added elsewhere")
                    }
                    Err(e) => {
                        tracing::debug!(grant = %grant, error = %e, "a stored grant could not be restored")
                    }
                }
                Ok(self.holds(grant))
            }
            Err(e) => {
                tracing::warn!(grant = %grant, error = %e, "store read failed");
                Err(e.to_string())
            }
        };
        for reply in callers {
            let _ = reply.send(answer.clone());
        }
    }

    fn ask(
        &mut self,
        grant: GrantId,
        rejected: Option<AccessToken>,
        deadline: Instant,
        reply: oneshot::Sender<Result<AccessToken, TokenError>>,
    ) {
        if self.stopping.is_some() {
            let _ = reply.send(Err(TokenError::Stopped));
            return;
        }
        if let Some(rejected) = &rejected {
            // The engine refreshes only if that token is still the one
            // handed out, and never hands it out again.
            let _ = self
                .engine
                .refresh_now(grant.as_str(), Some(rejected), SystemTime::now());
        }
        match callers::answer(&mut self.engine, &grant) {
            Some(answer) => {
                let _ = reply.send(answer);
            }
            None => self.callers.wait(
                grant,
                Waiter {
                    deadline,
                    asked_at: Instant::now(),
                    reply,
                },
            ),
        }
    }

    // ---- outputs --------------------------------------------------------------

    fn drain(&mut self) {
        while let Some(output) = self.engine.poll_output(SystemTime::now()) {
            self.gauges.touch();
            match output {
                Output::Persist {
                    record, replaces, ..
                } => {
                    let grant = record.grant.clone();
                    let record = Box::new(record);
                    let _ = self.io.ask(grant, Op::Write { record, replaces });
                }
                Output::Load { grant, .. } => {
                    let _ = self.io.ask(grant, Op::Load);
                }
                Output::Delete { grant, .. } => {
                    let _ = self.io.ask(grant, Op::Delete);
                }
                Output::Send {
                    id,
                    grant,
                    request,
                    not_after,
                    ..
                } => {
                    self.gauges.sent();
                    self.send(id, grant, request, not_after);
                }
                Output::Claim(claim) => self.claims.ask(claim),
                Output::Event(event) => self.event(event),
                _ => {}
            }
        }
    }

    fn send(
        &mut self,
        id: RequestId,
        grant: GrantId,
        request: http::Request<Vec<u8>>,
        not_after: SystemTime,
    ) {
        let http = Arc::clone(&self.http);
        let timeout = self.settings.engine.timeout();
        let span = tracing::info_span!("refresh", grant = %grant, request = %id);
        self.sends.spawn(
            async move {
                // Checked here, as the request goes out: a task that started
                // late must not send what its lease (and the request budget's
                // margin) no longer covers.
                if SystemTime::now() > not_after {
                    return (id, grant, None);
                }
                let began = Instant::now();
                let answer = match tokio::time::timeout(timeout, http.send(request)).await {
                    Ok(answer) => answer,
                    Err(_) => Err(TransportError::TimedOut),
                };
                telemetry::answered(began.elapsed(), &answer);
                match &answer {
                    Ok(r) => tracing::debug!(status = r.status().as_u16(), "answered"),
                    Err(e) => tracing::warn!(error = %e, "no answer"),
                }
                (id, grant, Some(answer))
            }
            .instrument(span),
        );
    }

    fn answer(&mut self, (id, grant, answer): Answer) {
        let Some(answer) = answer else {
            // Too late for the lease that covers it: never sent, so not spent.
            tracing::debug!(grant = %grant, request = %id, "refresh not dispatched in time");
            telemetry::not_dispatched();
            let _ = self
                .engine
                .handle_send(id, SendOutcome::NotDispatched, SystemTime::now());
            return;
        };
        if let Some(s) = &mut self.stopping {
            s.finished += 1;
        }
        self.gauges.touch();
        let outcome = match answer {
            Ok(response) => {
                self.gauges.answered(&response);
                SendOutcome::Response(response)
            }
            Err(e) => SendOutcome::TransportError(e.to_string()),
        };
        if let Err(e) = self.engine.handle_send(id, outcome, SystemTime::now()) {
            let kept = e.rescued_refresh_token().is_some();
            tracing::error!(grant = %grant, request = %id, error = %e, refresh_token_in_answer = kept, "the engine refused an answer");
        }
    }

    fn store_report(&mut self, report: Report) {
        let Report {
            call,
            grant,
            version,
            outcome,
            late,
        } = report;
        let now = SystemTime::now();
        self.gauges.touch();
        match outcome {
            Outcome::Write(outcome) => {
                if late {
                    tracing::warn!(grant = %grant, version, outcome = ?WriteName(&outcome), "store write past its deadline");
                }
                if let Err(e) = self
                    .engine
                    .handle_write(grant.as_str(), version, outcome, now)
                {
                    tracing::debug!(grant = %grant, error = %e, "write outcome not taken");
                }
            }
            Outcome::Load(read) => {
                if let Err(e) = &read {
                    tracing::warn!(grant = %grant, error = %e, "store read failed");
                }
                if let Err(e) = self.engine.handle_load(grant.as_str(), read, now) {
                    tracing::debug!(grant = %grant, error = %e, "stored record not taken");
                }
            }
            Outcome::Discover(read) => self.discovered(&grant, call, read, now),
            Outcome::Delete(result) => {
                if let Err(e) = &result {
                    // The tokens are wiped in the engine either way; a
                    // record left behind holds a refresh token the server
                    // has revoked.
                    tracing::warn!(grant = %grant, error = %e, "deleting a removed grant's record failed");
                }
                self.callers.deleted(&grant, result);
            }
        }
        self.callers.wake(&mut self.engine, &grant);
    }

    fn event(&mut self, event: EngineEvent) {
        telemetry::event(&event);
        let Some(grant) = event.grant().cloned() else {
            // About the engine as a whole (the shared request budget).
            match &event {
                EngineEvent::SharedBudgetFallback { .. } => tracing::warn!("{event}"),
                _ => tracing::info!("{event}"),
            }
            let _ = self.events.send(ServiceEvent::Engine(event));
            return;
        };
        match &event {
            EngineEvent::RetryScheduled { .. }
            | EngineEvent::WriteFailed { .. }
            | EngineEvent::AnswerAfterRemoval { .. }
            | EngineEvent::RateLimitClamped { .. } => {
                tracing::warn!(grant = %grant, "{event}");
            }
            EngineEvent::ReauthorizationNeeded { .. }
            | EngineEvent::ConfigurationRejected { .. } => {
                tracing::error!(grant = %grant, "{event}");
            }
            _ => tracing::info!(grant = %grant, "{event}"),
        }
        match &event {
            EngineEvent::Durable { .. } => self.callers.added(&grant),
            EngineEvent::WriteFailed { failure, .. } => {
                self.callers.add_failed(&grant, failure.message());
            }
            EngineEvent::RemovedElsewhere { .. } => self.callers.gone(&grant),
            _ => {}
        }
        let _ = self.events.send(ServiceEvent::Engine(event));
        self.callers.wake(&mut self.engine, &grant);
    }

    // ---- shutdown --------------------------------------------------------------

    fn begin_stop(&mut self, reply: Option<oneshot::Sender<ShutdownReport>>) {
        tracing::info!(in_flight = self.engine.stats().in_flight, "shutting down");
        let _ = self.engine.shut_down(SystemTime::now());
        self.callers.stop();
        self.stopping = Some(Stopping {
            deadline: Instant::now() + self.settings.shutdown_grace,
            reply,
            finished: 0,
        });
    }

    fn finish(mut self) {
        self.gauges.stopped(&self.engine);
        self.sends.abort_all();
        self.io.abort();
        self.callers.stop();
        let Some(mut stopping) = self.stopping.take() else {
            return;
        };
        let abandoned: Vec<GrantId> = self
            .engine
            .grants()
            .iter()
            .filter(|g| g.request_out())
            .map(|g| g.id().clone())
            .collect();
        let unwritten: Vec<_> = self
            .engine
            .grants()
            .iter()
            .filter(|g| !g.is_written())
            .map(|g| g.record())
            .collect();
        for grant in &abandoned {
            tracing::warn!(grant = %grant, "refresh abandoned at shutdown");
        }
        for record in &unwritten {
            tracing::error!(grant = %record.grant, "record unwritten at shutdown; handed back");
        }
        tracing::info!(
            finished = stopping.finished,
            abandoned = abandoned.len(),
            unwritten = unwritten.len(),
            "stopped"
        );
        if let Some(reply) = stopping.reply.take() {
            let _ = reply.send(ShutdownReport {
                finished: stopping.finished,
                abandoned,
                unwritten,
            });
        }
    }
}

/// A write outcome's name, for logs (no record in it).
struct WriteName<'a>(&'a hoopai_oauth::WriteOutcome);

impl std::fmt::Debug for WriteName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            hoopai_oauth::WriteOutcome::Written => "written",
            hoopai_oauth::WriteOutcome::Conflict(_) => "lost to a newer record",
            hoopai_oauth::WriteOutcome::NoRecord => "no record",
            hoopai_oauth::WriteOutcome::Failed(_) => "failed",
            _ => "other",
        })
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
