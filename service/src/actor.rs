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
//!   with the outcome handed back). A failed write blocks only its grant:
//!   its writes are retried with backoff, in order, and its refreshes are
//!   handed back unsent ([`Engine::handle_transport_error`]) meanwhile, so a
//!   refresh token is never spent before the one that replaces it is stored.
//! - [`Output::Send`]: spawned; the answer comes back to the loop.
//! - [`Output::Event`]: broadcast, logged, and the grant's waiting callers
//!   asked again.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hoopai_oauth::{
    AccessToken, Config, Engine, ErrorKind, Event, GrantId, GrantRecord, Output, RequestId,
    TokenSet, TokenStatus,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::service::{
    GrantInfo, ServiceError, ServiceEvent, ServiceSettings, ShutdownReport, StartReport, TokenError,
};
use crate::store::{CorruptRecord, GrantStore, StoreError, Swap};
use crate::transport::{HttpClient, TransportError};

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

/// A grant whose writes failed: retried in order.
struct Blocked {
    writes: VecDeque<(GrantRecord, Option<u64>)>,
    attempt: u32,
    retry_at: Instant,
}

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
    blocked: HashMap<GrantId, Blocked>,
    sends: JoinSet<Answer>,
    in_flight: HashMap<RequestId, GrantId>,
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
        blocked: HashMap::new(),
        sends: JoinSet::new(),
        in_flight: HashMap::new(),
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
                && ((self.sends.is_empty() && self.blocked.is_empty())
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
        let mut wake = match &self.stopping {
            Some(s) => Some(s.deadline),
            None => self.engine.poll_timeout().map(instant_at),
        };
        let mut consider = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        for waiters in self.waiters.values() {
            for w in waiters {
                consider(w.deadline);
            }
        }
        for b in self.blocked.values() {
            consider(b.retry_at);
        }
        wake
    }

    async fn tick(&mut self) {
        if self.stopping.is_none() {
            self.engine.handle_timeout(SystemTime::now());
        }
        self.retry_blocked().await;
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
                if let Err(e) = self
                    .engine
                    .insert(grant.clone(), *tokens, SystemTime::now())
                {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
                self.grants.insert(grant.clone());
                self.drain().await;
                let outcome = match self.blocked.contains_key(&grant) {
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
                        grant: r.grant.clone(),
                        status: r.status.clone(),
                        version: r.version,
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::Shutdown { reply } => self.begin_stop(Some(reply)),
        }
    }

    /// Drops what the service keeps about a grant no longer held.
    fn forget(&mut self, grant: &GrantId) {
        self.grants.remove(grant);
        self.blocked.remove(grant);
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
        if self.blocked.contains_key(grant) {
            // Its newest record is not written yet: hand nothing out until it is.
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
                    ..
                } => self.send(id, grant, request, not_after),
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
    ) {
        if SystemTime::now() > not_after {
            // Too late for the lease that covers it: never sent, so not spent.
            tracing::debug!(grant = %grant, request = %id, "refresh expired before dispatch");
            let _ = self.engine.handle_send_expired(id, SystemTime::now());
            return;
        }
        if self.stopping.is_some() || self.blocked.contains_key(&grant) {
            // Not sent, so not spent: the engine retries it later.
            tracing::debug!(grant = %grant, request = %id, "refresh held back");
            let _ = self.engine.handle_transport_error(id, SystemTime::now());
            return;
        }
        let http = Arc::clone(&self.http);
        let timeout = self.settings.engine.timeout();
        let span = tracing::info_span!("refresh", grant = %grant, request = %id);
        self.in_flight.insert(id, grant.clone());
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
        self.in_flight.remove(&id);
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
                let rescued = e.rescued_refresh_token().is_some();
                tracing::warn!(grant = %grant, request = %id, rescued, "answer for a grant no longer held");
                let _ = self
                    .events
                    .send(ServiceEvent::AnswerForRemovedGrant { grant, rescued });
            } else {
                tracing::warn!(grant = %grant, error = %e, "the engine refused an answer");
            }
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

    // ---- the store -------------------------------------------------------------

    async fn persist(&mut self, grant: GrantId, record: GrantRecord, replaces: Option<u64>) {
        if let Some(blocked) = self.blocked.get_mut(&grant) {
            if !self.shared {
                // Plain overwrites: the newest record is all that counts.
                blocked.writes.clear();
            }
            blocked.writes.push_back((record, replaces));
            return;
        }
        if let Err(error) = self.write(&record, replaces).await {
            let retry_in = self.settings.write_retry.0;
            self.write_failed(&grant, error, retry_in);
            self.blocked.insert(
                grant,
                Blocked {
                    writes: VecDeque::from([(record, replaces)]),
                    attempt: 1,
                    retry_at: Instant::now() + retry_in,
                },
            );
        }
    }

    fn write_failed(&self, grant: &GrantId, error: StoreError, retry_in: Duration) {
        tracing::error!(grant = %grant, error = %error, retry_in_ms = retry_in.as_millis() as u64, "store write failed");
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
    async fn delete(&mut self, grant: GrantId) {
        if let Err(error) = self.store.delete(&grant).await {
            // The tokens are wiped in the engine either way; a record left
            // behind holds a refresh token the server has revoked.
            tracing::warn!(grant = %grant, error = %error, "deleting an uninstalled grant's record failed");
        }
        self.forget(&grant);
    }

    /// The engine asks for the stored record (to check a refusal against
    /// the store, or to converge while waiting): read it and hand it back.
    async fn load(&mut self, grant: GrantId) {
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

    async fn retry_blocked(&mut self) {
        let now = Instant::now();
        let due: Vec<GrantId> = self
            .blocked
            .iter()
            .filter(|(_, b)| b.retry_at <= now)
            .map(|(g, _)| g.clone())
            .collect();
        for grant in due {
            loop {
                let Some((record, replaces)) = self
                    .blocked
                    .get(&grant)
                    .and_then(|b| b.writes.front().cloned())
                else {
                    break;
                };
                match self.write(&record, replaces).await {
                    Ok(()) => {
                        let done = self.blocked.get_mut(&grant).is_none_or(|b| {
                            b.writes.pop_front();
                            b.writes.is_empty()
                        });
                        if done {
                            self.blocked.remove(&grant);
                            tracing::info!(grant = %grant, "store writes recovered");
                            let _ = self.events.send(ServiceEvent::StoreWriteRecovered {
                                grant: grant.clone(),
                            });
                            self.wake_waiters(&grant);
                            break;
                        }
                    }
                    Err(error) => {
                        let (base, cap) = self.settings.write_retry;
                        let Some(b) = self.blocked.get_mut(&grant) else {
                            break;
                        };
                        b.attempt = b.attempt.saturating_add(1);
                        let retry_in = base
                            .saturating_mul(1u32 << b.attempt.min(20).saturating_sub(1))
                            .min(cap);
                        b.retry_at = Instant::now() + retry_in;
                        self.write_failed(&grant, error, retry_in);
                        break;
                    }
                }
            }
        }
    }

    // ---- shutdown --------------------------------------------------------------

    fn begin_stop(&mut self, reply: Option<oneshot::Sender<ShutdownReport>>) {
        tracing::info!(in_flight = self.sends.len(), "shutting down");
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
        let abandoned: Vec<GrantId> = self.in_flight.drain().map(|(_, g)| g).collect();
        let unwritten: Vec<GrantRecord> = self
            .blocked
            .drain()
            .flat_map(|(_, b)| b.writes.into_iter().map(|(r, _)| r))
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

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
