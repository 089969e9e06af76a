//! The task that owns the engine: every call into [`Engine`] is in this
//! module, so that engine changes touch one file.
//!
//! One loop waits for whichever comes first: a command from a handle, the
//! answer to a refresh, or the next deadline (the engine's
//! [`Engine::poll_timeout`], a waiting caller's, a failed write's retry).
//! After each, it drains the engine's outputs in order:
//!
//! - [`Output::Persist`]: written before the next output is looked at
//!   (`put` in single-process mode, compare-and-swap in shared-store mode,
//!   with the outcome handed back). A failed write is reported to the
//!   engine ([`Engine::handle_persist_failed`]); see [`Failing`] for who
//!   writes it again.
//! - [`Output::Send`]: spawned; the answer comes back to the loop. A refresh
//!   token rescued from an answer the engine could not take goes back to it
//!   ([`Engine::handle_rescued`]) if the grant is held again with the very
//!   refresh token that request spent (see [`Rescued`]).
//! - [`Output::Load`]: read and handed back ([`Engine::handle_loaded`]).
//! - [`Output::Delete`]: the record of an uninstalled grant is deleted, and
//!   its callers are told it is unknown.
//! - [`Output::Event`]: broadcast, logged, and the grant's waiting callers
//!   asked again.
//!
//! Shutdown waits until [`Engine::in_flight`] is zero (every refresh out is
//! answered and its tokens written) or the grace period ends.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hoopai_oauth::{
    AccessToken, Config, Engine, ErrorKind, Event, Fingerprint, GrantId, GrantRecord,
    InstalledLocation, Output, RefreshToken, RequestId, TokenSet, TokenStatus, WebhookEvent,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::installs::GrantChanges;
use crate::service::{
    GrantInfo, ServiceError, ServiceEvent, ServiceSettings, ShutdownReport, StartReport, TokenError,
};
use crate::store::{CorruptRecord, GrantStore, StoreError};
use crate::transport::{HttpClient, TransportError};

mod installs;
mod writes;

/// What a handle asks of the task.
pub(crate) enum Command {
    Token {
        grant: GrantId,
        /// A token an API refused: answer with another one (after a refresh).
        rejected: Option<AccessToken>,
        deadline: Instant,
        reply: oneshot::Sender<Result<AccessToken, TokenError>>,
    },
    Add {
        grant: GrantId,
        tokens: Box<TokenSet>,
        reply: oneshot::Sender<Result<(), ServiceError>>,
    },
    Remove {
        grant: GrantId,
        reply: oneshot::Sender<Result<(), ServiceError>>,
    },
    List {
        reply: oneshot::Sender<Vec<GrantInfo>>,
    },
    /// A verified install webhook for the engine.
    Webhook {
        event: Box<WebhookEvent>,
        reply: oneshot::Sender<Result<GrantChanges, ServiceError>>,
    },
    /// The installed locations of a company, read from the server.
    SyncLocations {
        company_grant: GrantId,
        company_id: String,
        installed: Vec<InstalledLocation>,
        reply: oneshot::Sender<Result<GrantChanges, ServiceError>>,
    },
    /// A request sent outside the engine, for its request budget.
    CountRequest,
    /// A token of the request budget for a request about to be sent
    /// outside the engine: spent now (`None`), or when one is free.
    TakeBudget {
        reply: oneshot::Sender<Option<SystemTime>>,
    },
    Shutdown {
        reply: oneshot::Sender<ShutdownReport>,
    },
}

struct Waiter {
    rejected: Option<AccessToken>,
    deadline: Instant,
    asked_at: Instant,
    reply: oneshot::Sender<Result<AccessToken, TokenError>>,
}

use writes::Failing;

/// A refresh token from an answer for a grant no longer held, kept in case
/// the grant is added back with the refresh token that answer's request
/// presented (`spent`): that one is spent at the server, and `token` is the
/// live one. Added back with any other refresh token (a new authorization),
/// it is dropped, as the engine drops answers a new authorization supersedes.
struct Rescued {
    spent: Fingerprint,
    token: RefreshToken,
}

/// How many rescued refresh tokens are kept (see [`Rescued`]).
const RESCUED_MEMORY: usize = 1024;

type Answer = (
    RequestId,
    GrantId,
    Result<http::Response<Vec<u8>>, TransportError>,
);

struct Actor<S, H> {
    engine: Engine,
    store: S,
    http: Arc<H>,
    settings: ServiceSettings,
    shared: bool,
    events: broadcast::Sender<ServiceEvent>,
    grants: BTreeSet<GrantId>,
    waiters: HashMap<GrantId, Vec<Waiter>>,
    last_failure: HashMap<GrantId, String>,
    failing: HashMap<GrantId, Failing>,
    sends: JoinSet<Answer>,
    /// The requests out: their grant and the refresh token they present.
    in_flight: HashMap<RequestId, (GrantId, Fingerprint)>,
    rescued: HashMap<GrantId, Rescued>,
    /// Records of uninstalled grants whose delete failed, since the last
    /// install command took them.
    undeleted: Vec<(GrantId, StoreError)>,
    stopping: Option<Stopping>,
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
    let mut engine = Engine::new(config, settings.engine.clone());
    let mut grants = BTreeSet::new();
    let mut report = StartReport::default();
    let mut after: Option<GrantId> = None;
    loop {
        let page = store.load_page(after.as_ref(), settings.page_size).await?;
        let now = SystemTime::now();
        engine.reserve(page.records.len());
        for record in page.records {
            let grant = record.grant.clone();
            let version = record.version;
            match engine.restore(record, now) {
                Ok(()) => {
                    grants.insert(grant);
                    report.restored += 1;
                }
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
    let actor = Actor {
        shared: settings.engine.is_shared(),
        engine,
        store,
        http,
        settings,
        events,
        grants,
        waiters: HashMap::new(),
        last_failure: HashMap::new(),
        failing: HashMap::new(),
        sends: JoinSet::new(),
        in_flight: HashMap::new(),
        rescued: HashMap::new(),
        undeleted: Vec::new(),
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
            self.drain().await;
            if let Some(stopping) = &self.stopping
                && ((self.engine.in_flight() == 0
                    && self.sends.is_empty()
                    && self.failing.is_empty())
                    || Instant::now() >= stopping.deadline)
            {
                break;
            }
            let wake = self.next_wake();
            let stopping = self.stopping.is_some();
            tokio::select! {
                command = commands.recv(), if !stopping => match command {
                    Some(command) => self.command(command).await,
                    // Every handle dropped: stop as `shutdown` does.
                    None => self.begin_stop(None),
                },
                Some(joined) = self.sends.join_next(), if !self.sends.is_empty() => {
                    if let Ok(answer) = joined {
                        self.answer(answer);
                    }
                }
                () = sleep_until(wake) => self.tick().await,
            }
        }
        self.finish();
    }

    fn next_wake(&self) -> Option<Instant> {
        let engine = self.engine.poll_timeout().map(instant_at);
        let mut wake = match &self.stopping {
            Some(s) if self.engine_writes_at_stop() => {
                Some(engine.map_or(s.deadline, |e| e.min(s.deadline)))
            }
            Some(s) => Some(s.deadline),
            None => engine,
        };
        let mut consider = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        for waiters in self.waiters.values() {
            for w in waiters {
                consider(w.deadline);
            }
        }
        for f in self.failing.values() {
            if let Some(t) = f.retry_at {
                consider(t);
            }
        }
        wake
    }

    /// While stopping, the engine's timers still run in shared-store mode
    /// when a write failed: it schedules the write again. (Refreshes that
    /// come due meanwhile are not started: their lease writes are refused,
    /// see [`persist`](Self::persist).)
    fn engine_writes_at_stop(&self) -> bool {
        self.shared && !self.failing.is_empty()
    }

    async fn tick(&mut self) {
        if self.stopping.is_none() || self.engine_writes_at_stop() {
            self.engine.handle_timeout(SystemTime::now());
        }
        self.retry_failed_writes().await;
        self.expire_waiters();
    }

    // ---- commands -------------------------------------------------------------

    async fn command(&mut self, command: Command) {
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
            } => {
                tracing::info!(grant = %grant, "grant added");
                let added = tokens.refresh_token().map(RefreshToken::fingerprint);
                if let Err(e) = self
                    .engine
                    .insert(grant.clone(), *tokens, SystemTime::now())
                {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
                self.grants.insert(grant.clone());
                if let Some(rescued) = self.rescued.remove(&grant) {
                    if added == Some(rescued.spent) {
                        // Added back with a refresh token an answer already
                        // spent: the rescued one is the live one.
                        self.adopt_rescued(&grant, rescued.token);
                    } else {
                        tracing::info!(grant = %grant, "a new authorization supersedes the refresh token rescued for this grant");
                    }
                }
                self.drain().await;
                let outcome = match self.failing.contains_key(&grant) {
                    true => Err(ServiceError::WritePending(grant)),
                    false => Ok(()),
                };
                let _ = reply.send(outcome);
            }
            Command::Remove { grant, reply } => {
                if self.engine.remove(grant.as_str()).is_err() {
                    let _ = reply.send(Err(ServiceError::UnknownGrant(grant)));
                    return;
                }
                self.forget(&grant);
                let outcome = self
                    .store
                    .delete(&grant)
                    .await
                    .map(|_| ())
                    .map_err(Into::into);
                tracing::info!(grant = %grant, "grant removed");
                let _ = reply.send(outcome);
            }
            Command::List { reply } => {
                let list = self
                    .grants
                    .iter()
                    .filter_map(|g| self.engine.record(g.as_str()))
                    .map(|r| GrantInfo {
                        expires_at: r.expires_at(),
                        company_id: r.company_id().map(str::to_owned),
                        location_id: r.location_id().map(str::to_owned),
                        grant: r.grant.clone(),
                        status: r.status.clone(),
                        version: r.version,
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::Webhook { event, reply } => {
                let outcome = self.webhook(&event).await;
                let _ = reply.send(outcome);
            }
            Command::SyncLocations {
                company_grant,
                company_id,
                installed,
                reply,
            } => {
                let changes = self.sync(&company_grant, &company_id, &installed).await;
                let _ = reply.send(Ok(changes));
            }
            Command::CountRequest => self.engine.count_request(SystemTime::now()),
            Command::TakeBudget { reply } => {
                let now = SystemTime::now();
                let budget = self.engine.request_budget();
                let free = (budget.available(now) == 0).then(|| budget.next_available_at(now));
                if free.is_none() {
                    self.engine.count_request(now);
                }
                let _ = reply.send(free);
            }
            Command::Shutdown { reply } => self.begin_stop(Some(reply)),
        }
    }

    /// Drops what the service keeps about a grant no longer held.
    pub(super) fn forget(&mut self, grant: &GrantId) {
        self.grants.remove(grant);
        self.failing.remove(grant);
        self.last_failure.remove(grant);
        for w in self.waiters.remove(grant).unwrap_or_default() {
            let _ = w.reply.send(Err(TokenError::UnknownGrant(grant.clone())));
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
        let mut waiter = Waiter {
            rejected,
            deadline,
            asked_at: Instant::now(),
            reply,
        };
        if let Some(rejected) = &waiter.rejected {
            // Refresh only if the refused token is still the one held: if
            // another caller's refresh replaced it, the new one is the answer.
            if let Ok(TokenStatus::Ready(held)) =
                self.engine.access_token(grant.as_str(), SystemTime::now())
                && held.secret() == rejected.secret()
            {
                let _ = self.engine.refresh_now(grant.as_str(), SystemTime::now());
            }
        }
        match self.evaluate(&grant, &waiter) {
            Some(answer) => {
                let _ = waiter.reply.send(answer);
            }
            None => {
                waiter.asked_at = Instant::now();
                self.waiters.entry(grant).or_default().push(waiter);
            }
        }
    }

    /// The answer for a caller now, or `None` to keep waiting.
    fn evaluate(
        &mut self,
        grant: &GrantId,
        waiter: &Waiter,
    ) -> Option<Result<AccessToken, TokenError>> {
        if !self.shared && self.failing.contains_key(grant) {
            // Its newest record is not written yet: hand nothing out until it
            // is (see `Failing`; in shared-store mode the engine sees to it).
            return None;
        }
        let status = match self.engine.access_token(grant.as_str(), SystemTime::now()) {
            Ok(status) => status,
            Err(_) => return Some(Err(TokenError::UnknownGrant(grant.clone()))),
        };
        Some(match status {
            TokenStatus::Ready(token) => {
                if waiter
                    .rejected
                    .as_ref()
                    .is_some_and(|r| r.secret() == token.secret())
                {
                    return None;
                }
                Ok(token)
            }
            TokenStatus::Pending => return None,
            TokenStatus::Suspended { until } => Err(TokenError::Suspended {
                grant: grant.clone(),
                until,
            }),
            TokenStatus::ReauthorizationNeeded => Err(TokenError::ReauthorizationNeeded {
                grant: grant.clone(),
            }),
            TokenStatus::ConfigurationRejected => Err(TokenError::ConfigurationRejected {
                grant: grant.clone(),
            }),
            _ => return None,
        })
    }

    /// Asks again for every caller waiting on `grant`.
    fn wake_waiters(&mut self, grant: &GrantId) {
        let Some(waiters) = self.waiters.remove(grant) else {
            return;
        };
        let mut still = Vec::new();
        for w in waiters {
            if w.reply.is_closed() {
                continue;
            }
            match self.evaluate(grant, &w) {
                Some(answer) => {
                    let _ = w.reply.send(answer);
                }
                None => still.push(w),
            }
        }
        if !still.is_empty() {
            self.waiters.insert(grant.clone(), still);
        }
    }

    fn expire_waiters(&mut self) {
        let now = Instant::now();
        let last_failure = &self.last_failure;
        self.waiters.retain(|grant, waiters| {
            waiters.retain_mut(|w| {
                if w.reply.is_closed() {
                    return false;
                }
                if w.deadline > now {
                    return true;
                }
                // Take the sender out by swapping in a closed one.
                let (dummy, _) = oneshot::channel();
                let reply = std::mem::replace(&mut w.reply, dummy);
                let _ = reply.send(Err(TokenError::TimedOut {
                    grant: grant.clone(),
                    waited: now.duration_since(w.asked_at),
                    last_failure: last_failure.get(grant).cloned(),
                }));
                false
            });
            !waiters.is_empty()
        });
    }

    // ---- outputs --------------------------------------------------------------

    async fn drain(&mut self) {
        while let Some(output) = self.engine.poll_output(SystemTime::now()) {
            match output {
                Output::Persist {
                    grant,
                    record,
                    replaces,
                    ..
                } => self.persist(grant, record, replaces).await,
                Output::Send {
                    id,
                    grant,
                    request,
                    not_after,
                    refresh,
                    ..
                } => self.send(id, grant, request, not_after, refresh),
                Output::Load { grant, .. } => self.load(grant).await,
                Output::Delete { grant, .. } => self.delete(grant).await,
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
        refresh: Fingerprint,
    ) {
        if SystemTime::now() > not_after {
            // Too late for the lease that covers it: never sent, so not spent.
            tracing::debug!(grant = %grant, request = %id, "refresh expired before dispatch");
            let _ = self.engine.handle_send_expired(id, SystemTime::now());
            return;
        }
        if self.stopping.is_some() || (!self.shared && self.failing.contains_key(&grant)) {
            // Not sent, so not spent: the engine retries it later. (A grant
            // whose write is failing, single-process mode: see `Failing`.)
            tracing::debug!(grant = %grant, request = %id, "refresh held back");
            let _ = self.engine.handle_transport_error(id, SystemTime::now());
            return;
        }
        let http = Arc::clone(&self.http);
        let timeout = self.settings.engine.timeout();
        let span = tracing::info_span!("refresh", grant = %grant, request = %id);
        self.in_flight.insert(id, (grant.clone(), refresh));
        self.sends.spawn(
            async move {
                let answer = match tokio::time::timeout(timeout, http.send(request)).await {
                    Ok(answer) => answer,
                    Err(_) => Err(TransportError::TimedOut),
                };
                match &answer {
                    Ok(r) => tracing::debug!(status = r.status().as_u16(), "answered"),
                    Err(e) => tracing::warn!(error = %e, "no answer"),
                }
                (id, grant, answer)
            }
            .instrument(span),
        );
    }

    fn answer(&mut self, (id, grant, answer): Answer) {
        let presented = self.in_flight.remove(&id).map(|(_, f)| f);
        if let Some(s) = &mut self.stopping {
            s.finished += 1;
        }
        let now = SystemTime::now();
        let handed = match answer {
            Ok(response) => self.engine.handle_response(id, response, now),
            Err(_) => self.engine.handle_transport_error(id, now),
        };
        if let Err(e) = handed {
            if e.kind() == ErrorKind::UnknownRequest {
                let rescued = e.rescued_refresh_token().cloned();
                if let Some(token) = rescued.clone() {
                    if self.engine.contains(grant.as_str()) {
                        // Held (again): the engine decides whether the token
                        // is newer than the one it holds.
                        self.adopt_rescued(&grant, token);
                        return;
                    }
                    if let Some(spent) = presented {
                        if self.rescued.len() >= RESCUED_MEMORY
                            && let Some(old) = self.rescued.keys().next().cloned()
                        {
                            self.rescued.remove(&old);
                        }
                        self.rescued.insert(grant.clone(), Rescued { spent, token });
                    }
                }
                let rescued = rescued.is_some();
                tracing::warn!(grant = %grant, request = %id, rescued, "answer for a grant no longer held");
                let _ = self
                    .events
                    .send(ServiceEvent::AnswerForRemovedGrant { grant, rescued });
            } else {
                tracing::warn!(grant = %grant, error = %e, "the engine refused an answer");
            }
        }
    }

    /// Hands a rescued refresh token to the engine, which writes it ahead of
    /// everything else if it is not the one held.
    fn adopt_rescued(&mut self, grant: &GrantId, token: RefreshToken) {
        match self
            .engine
            .handle_rescued(grant.as_str(), token, SystemTime::now())
        {
            Ok(()) => {
                tracing::warn!(grant = %grant, "refresh token rescued from an answer for an earlier hold of the grant");
                let _ = self.events.send(ServiceEvent::RescuedTokenAdopted {
                    grant: grant.clone(),
                });
            }
            Err(e) => tracing::error!(grant = %grant, error = %e, "rescued refresh token refused"),
        }
    }

    fn event(&mut self, event: Event) {
        let grant = event.grant().clone();
        match &event {
            Event::RetryScheduled { failure, .. } => {
                tracing::warn!(grant = %grant, "{event}");
                self.last_failure.insert(grant.clone(), failure.to_string());
            }
            Event::ReauthorizationNeeded { .. } | Event::ConfigurationRejected { .. } => {
                tracing::error!(grant = %grant, "{event}");
            }
            Event::Refreshed { .. } | Event::Adopted { .. } => {
                tracing::info!(grant = %grant, "{event}");
                self.last_failure.remove(&grant);
            }
            _ => tracing::info!(grant = %grant, "{event}"),
        }
        let _ = self.events.send(ServiceEvent::Engine(event));
        self.wake_waiters(&grant);
    }

    // ---- shutdown --------------------------------------------------------------

    fn begin_stop(&mut self, reply: Option<oneshot::Sender<ShutdownReport>>) {
        tracing::info!(in_flight = self.engine.in_flight(), "shutting down");
        for (_, waiters) in self.waiters.drain() {
            for w in waiters {
                let _ = w.reply.send(Err(TokenError::Stopped));
            }
        }
        self.stopping = Some(Stopping {
            deadline: Instant::now() + self.settings.shutdown_grace,
            reply,
            finished: 0,
        });
    }

    fn finish(mut self) {
        self.sends.abort_all();
        let Some(mut stopping) = self.stopping.take() else {
            return;
        };
        let abandoned: Vec<GrantId> = self.in_flight.drain().map(|(_, (g, _))| g).collect();
        let unwritten: Vec<GrantRecord> = self.failing.drain().map(|(_, f)| f.record).collect();
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

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
