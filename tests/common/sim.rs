//! A deterministic simulation for engine tests: a simulated clock, the fake
//! server in-process, a network with scripted fates, an in-memory
//! compare-and-swap store, and a transcript of everything that happens.
//!
//! The transcript names tokens by labels (`A1`, `R1`, …) in order of
//! appearance, so no secret is ever written into a snapshot.
//!
//! Invariants are checked as the simulation runs and collected in
//! [`Sim::violations`]:
//! - at every send, the refresh token presented is live at the fake (never spent);
//! - at every send, no other refresh of the same grant is in flight (from any engine);
//! - an access token handed out as ready was issued with a refresh token
//!   that is (or was) in the store.
//!
//! Laid out by concern: `sim/network.rs` (fates, flights, answers),
//! `sim/store.rs` (the compare-and-swap store, loads and writes),
//! `sim/transcript.rs` (labels and lines), `sim/checks.rs` (invariants over
//! the whole simulation); driving the engines is here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use hoopai_oauth::fake::{FakeServer, Install};
use hoopai_oauth::{
    BudgetClaim, ClaimOutcome, Engine, EngineEvent, EngineSettings, Error, GrantId, GrantRecord,
    GrantStatus, InstallChanges, Output, RefreshFailure, RequestId, SeenWebhooks, SendOutcome,
    StoreFailure, TokenRequest, TokenSet, TokenStatus, WebhookVerifier, WriteOutcome,
    parse_token_response, token_request,
};

use super::{CLIENT_ID, CLIENT_SECRET, config, t0};

// Explicit paths: this file is also included by path from outside this
// folder (the engine fuzz target), where the default would not find them.
#[path = "sim/checks.rs"]
mod checks;
#[path = "sim/network.rs"]
mod network;
#[path = "sim/store.rs"]
mod store;
#[path = "sim/transcript.rs"]
mod transcript;

pub use store::Store;
pub use transcript::rel;

/// What happens to the next request sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Served at once, answered at once.
    Normal,
    /// Lost before it reaches the server.
    Drop,
    /// Served at once; the answer arrives after this delay.
    Late(Duration),
    /// Served at once; the answer is held until [`Sim::release`].
    Hold,
}

/// One engine and its settings.
pub struct Node {
    pub name: String,
    pub engine: Engine,
    pub settings: EngineSettings,
}

struct Reply {
    node: usize,
    id: RequestId,
    at: SystemTime,
    late: bool,
    response: http::Response<Vec<u8>>,
}

/// A write on its way to the store (shared-store mode).
struct Delayed {
    at: SystemTime,
    node: usize,
    grant: GrantId,
    record: GrantRecord,
    replaces: Option<u64>,
    /// Whether the outcome is reported (not once the grant was removed).
    report: bool,
}

/// A send handed out and not yet dispatched by a slow driver.
struct Outgoing {
    at: SystemTime,
    node: usize,
    id: RequestId,
    grant: GrantId,
    not_after: SystemTime,
    request: http::Request<Vec<u8>>,
}

struct Flight {
    node: usize,
    id: RequestId,
    grant: GrantId,
    dropped: bool,
}

/// The simulation.
pub struct Sim {
    pub now: SystemTime,
    pub fake: FakeServer,
    pub store: Store,
    pub nodes: Vec<Node>,
    downlink: Vec<Reply>,
    held: Vec<Reply>,
    fates: VecDeque<Fate>,
    flights: Vec<Flight>,
    labels: HashMap<String, String>,
    counters: [u32; 2],
    log: String,
    quiet: bool,
    violations: Vec<String>,
    pub sends: u64,
    /// How many of the next writes (shared-store mode) reach the store, and
    /// have their outcome reported, only after [`store::WRITE_DELAY`] (or at
    /// [`Sim::confirm`]).
    pub hold_confirmations: usize,
    delayed: Vec<Delayed>,
    /// Whether to ask for the token of a grant right after handing in an
    /// answer for it, before its outputs are polled.
    pub ask_on_answer: bool,
    /// The refresh token issued with each access token.
    issued: HashMap<String, String>,
    /// How long after being handed out each send is dispatched.
    pub send_delay: Duration,
    outbox: Vec<Outgoing>,
    /// How many of the next reads of the store return an older record.
    pub stale_reads: usize,
    /// How many of the next writes fail without reaching the store.
    pub fail_writes: usize,
    /// How many of the next claims on the shared request budget fail.
    pub fail_claims: usize,
    /// When each grant was first refreshed or minted (its first
    /// [`EngineEvent::Refreshed`]).
    pub ready_at: HashMap<GrantId, SystemTime>,
    /// Every request's send time, in order (for rate figures).
    pub send_times: Vec<SystemTime>,
    /// The seen-set of the app's webhook endpoint.
    pub seen: SeenWebhooks,
    /// Grants deleted ([`Output::Delete`]): answers for them are refused.
    pub deleted: HashSet<GrantId>,
    /// The webhook key the app trusts: the fake's at the start.
    pub trusted_key: hoopai_oauth::WebhookKey,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    /// A simulation at [`t0`] with a fake that knows the test client.
    pub fn new() -> Self {
        let fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
        Sim {
            now: t0(),
            trusted_key: fake.webhook_key(),
            fake,
            store: Store::default(),
            nodes: Vec::new(),
            downlink: Vec::new(),
            held: Vec::new(),
            fates: VecDeque::new(),
            flights: Vec::new(),
            labels: HashMap::new(),
            counters: [0; 2],
            log: String::new(),
            quiet: false,
            violations: Vec::new(),
            sends: 0,
            hold_confirmations: 0,
            delayed: Vec::new(),
            ask_on_answer: false,
            issued: HashMap::new(),
            send_delay: Duration::ZERO,
            outbox: Vec::new(),
            stale_reads: 0,
            fail_writes: 0,
            fail_claims: 0,
            ready_at: HashMap::new(),
            send_times: Vec::new(),
            seen: SeenWebhooks::default(),
            deleted: HashSet::new(),
        }
    }

    /// Adds an engine named `name`.
    pub fn add_engine(&mut self, name: &str, settings: EngineSettings) -> usize {
        self.nodes.push(Node {
            name: name.to_owned(),
            engine: Engine::new(config(), settings.clone()),
            settings,
        });
        self.nodes.len() - 1
    }

    /// Approves `install` at the fake, exchanges the code, and inserts the
    /// grant (named by its location id, else company id) into engine `node`.
    pub fn install(&mut self, node: usize, install: &Install) -> GrantId {
        let code = self.fake.approve(install);
        let req = token_request(
            &config(),
            &TokenRequest::authorization_code(code).user_type(install.user_type.clone()),
        )
        .expect("code exchange request");
        let sent = self.now;
        let token = parse_token_response(self.fake.handle(&req, sent)).expect("code exchange");
        let grant = GrantId::from(
            install
                .location_id
                .clone()
                .unwrap_or_else(|| install.company_id.clone()),
        );
        let refresh = token.refresh_token.as_ref().map(|r| r.secret().to_owned());
        if let Some(r) = &refresh {
            self.issued
                .insert(token.access_token.secret().to_owned(), r.clone());
        }
        let r = refresh.map(|r| self.refresh_label(&r)).unwrap_or_default();
        let name = self.nodes[node].name.clone();
        self.note(&name, format!("insert {grant} (code exchange) refresh={r}"));
        self.nodes[node]
            .engine
            .insert(grant.clone(), TokenSet::new(token, sent), self.now)
            .expect("insert");
        self.pump(node);
        grant
    }

    /// Asks engine `node` for the access token of `grant`, and logs the answer.
    pub fn ask(&mut self, node: usize, grant: &str) -> TokenStatus {
        let status = self.ask_quietly(node, grant);
        let name = self.nodes[node].name.clone();
        let text = self.status_text(&status);
        self.note(&name, format!("ask {grant} -> {text}"));
        status
    }

    /// [`ask`](Self::ask) without a transcript line.
    pub fn ask_quietly(&mut self, node: usize, grant: &str) -> TokenStatus {
        let status = self.nodes[node]
            .engine
            .access_token(grant, self.now)
            .expect("access_token");
        if let TokenStatus::Ready(a) = &status
            && let Some(r) = self.issued.get(a.secret())
            && !self.store.ever_stored.contains(r)
        {
            let (a, r) = (a.secret().to_owned(), r.clone());
            let (a, r) = (self.access_label(&a), self.refresh_label(&r));
            let name = self.nodes[node].name.clone();
            self.violations.push(format!(
                "{} {name}: {grant} handed out {a} while its refresh token {r} is not stored",
                rel(self.now)
            ));
        }
        self.pump(node);
        status
    }

    /// Runs until `end`: delivers answers, fires engine deadlines, drains outputs.
    pub fn run_until(&mut self, end: SystemTime) {
        loop {
            self.settle();
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.engine.poll_timeout())
                .chain(self.downlink.iter().map(|r| r.at))
                .chain(self.delayed.iter().map(|d| d.at))
                .chain(self.outbox.iter().map(|o| o.at))
                .min();
            match next {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => {
                    self.now = self.now.max(end);
                    self.settle();
                    return;
                }
            }
        }
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Everything due at `now`, until nothing changes.
    pub fn settle(&mut self) {
        for _ in 0..100_000 {
            let mut progressed = false;
            while let Some(i) = self.downlink.iter().position(|r| r.at <= self.now) {
                let reply = self.downlink.remove(i);
                self.deliver(reply);
                progressed = true;
            }
            while let Some(i) = self.delayed.iter().position(|d| d.at <= self.now) {
                let d = self.delayed.remove(i);
                self.arrive(d);
                progressed = true;
            }
            while let Some(i) = self.outbox.iter().position(|o| o.at <= self.now) {
                let o = self.outbox.remove(i);
                self.dispatch(o);
                progressed = true;
            }
            for node in 0..self.nodes.len() {
                if self.nodes[node]
                    .engine
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    self.nodes[node]
                        .engine
                        .handle_timeout(self.now)
                        .expect("handle_timeout");
                    self.pump(node);
                    progressed = true;
                }
            }
            if !progressed {
                self.check_newest();
                return;
            }
        }
        panic!("the simulation does not settle at {}", rel(self.now));
    }

    /// Drains engine `node`'s outputs and acts on each.
    pub fn pump(&mut self, node: usize) {
        while let Some(out) = self.nodes[node].engine.poll_output(self.now) {
            match out {
                Output::Send {
                    id,
                    grant,
                    request,
                    not_after,
                    ..
                } => {
                    if self.send_delay.is_zero() {
                        self.on_send(node, id, grant, request);
                    } else {
                        let name = self.nodes[node].name.clone();
                        let d = self.send_delay.as_millis();
                        self.note(
                            &name,
                            format!("queue send {id} {grant} (dispatch in {d} ms)"),
                        );
                        self.outbox.push(Outgoing {
                            at: self.now + self.send_delay,
                            node,
                            id,
                            grant,
                            not_after,
                            request,
                        });
                    }
                }
                Output::Persist {
                    record, replaces, ..
                } => self.on_persist(node, record.grant.clone(), record, replaces),
                Output::Load { grant, .. } => self.on_load(node, grant),
                Output::Delete { grant, .. } => {
                    let name = self.nodes[node].name.clone();
                    self.note(&name, format!("delete {grant}"));
                    self.store.records.remove(grant.as_str());
                    self.deleted.insert(grant);
                }
                Output::Event(e) => self.on_event(node, e),
                Output::Claim(claim) => self.on_claim(node, &claim),
                other => panic!("unexpected output {other:?}"),
            }
        }
    }

    /// Verifies a webhook delivery from the fake (with the fake's key) at
    /// `now`, and hands the event to engine `node`.
    pub fn webhook(
        &mut self,
        node: usize,
        delivery: &http::Request<Vec<u8>>,
    ) -> Result<InstallChanges, Error> {
        let name = self.nodes[node].name.clone();
        let verifier = WebhookVerifier::new(&config()).add_key(self.trusted_key);
        let event = match verifier.verify_request(delivery, self.now, &mut self.seen) {
            Ok(event) => event,
            Err(e) => {
                self.note(&name, format!("webhook refused: {}", e.kind()));
                return Err(e);
            }
        };
        let changes = self.nodes[node]
            .engine
            .handle_webhook(&event, self.now)
            .expect("handle_webhook");
        let list = |g: &[GrantId]| match g.len() {
            0 => "none".to_owned(),
            1..=3 => g.iter().map(GrantId::as_str).collect::<Vec<_>>().join(","),
            n => format!("{n} grants"),
        };
        self.note(
            &name,
            format!(
                "webhook {} -> added {} removed {} needs code exchange {}",
                event.event_type,
                list(&changes.added),
                list(&changes.removed),
                list(&changes.needs_code_exchange)
            ),
        );
        self.pump(node);
        Ok(changes)
    }

    fn on_event(&mut self, node: usize, event: EngineEvent) {
        let name = self.nodes[node].name.clone();
        let text = match &event {
            EngineEvent::TokenReady { grant, expires_at } => {
                format!("token ready {grant} expires={}", rel(*expires_at))
            }
            EngineEvent::Refreshed { grant, expires_at } => {
                self.ready_at.entry(grant.clone()).or_insert(self.now);
                format!("refreshed {grant} expires={}", rel(*expires_at))
            }
            EngineEvent::Adopted { grant, expires_at } => {
                format!("adopted {grant} expires={}", rel(*expires_at))
            }
            EngineEvent::LeaseHeldElsewhere {
                grant,
                holder,
                until,
            } => format!("lease of {grant} held by {holder} until {}", rel(*until)),
            EngineEvent::Suspended {
                grant,
                until,
                error,
            } => {
                format!("suspended {grant} until {} ({})", rel(*until), error.kind())
            }
            EngineEvent::Unauthorized {
                grant,
                until,
                error,
            } => {
                format!(
                    "unauthorized {grant} until {} ({})",
                    rel(*until),
                    error.kind()
                )
            }
            EngineEvent::ReauthorizationNeeded { grant, error } => {
                format!("re-authorization needed {grant} ({})", error.kind())
            }
            EngineEvent::ConfigurationRejected { grant, error } => {
                format!("configuration rejected via {grant} ({})", error.kind())
            }
            EngineEvent::RetryScheduled {
                grant,
                at,
                attempt,
                failure,
            } => {
                let why = match failure {
                    RefreshFailure::TimedOut => "timed out".to_owned(),
                    RefreshFailure::Transport(_) => "transport error".to_owned(),
                    RefreshFailure::Answer(e) => e.kind().to_string(),
                    RefreshFailure::Store(_) => "Store".to_owned(),
                    other => format!("{other:?}"),
                };
                if matches!(failure, RefreshFailure::TimedOut) {
                    // The engine gave up on its request: a lost one is no longer in flight.
                    self.flights
                        .retain(|f| !(f.node == node && f.grant == *grant && f.dropped));
                }
                format!("retry {grant} #{attempt} at {} ({why})", rel(*at))
            }
            EngineEvent::Durable { grant, version } => format!("durable {grant} v{version}"),
            EngineEvent::RemovedElsewhere { grant } => format!("removed elsewhere {grant}"),
            EngineEvent::WriteFailed {
                grant,
                version,
                retry_at,
                ..
            } => format!(
                "write failed {grant} v{version}, again at {}",
                rel(*retry_at)
            ),
            EngineEvent::WriteRecovered { grant, version } => {
                format!("write recovered {grant} v{version}")
            }
            EngineEvent::AnswerAfterRemoval {
                grant,
                refresh_token_kept,
            } => format!("answer after removal {grant} refresh token kept={refresh_token_kept}"),
            EngineEvent::RescuedTokenAdopted { grant } => format!("rescued token adopted {grant}"),
            EngineEvent::RateLimitClamped { grant, clamped } => format!(
                "rate limit clamped {grant} retry-after={} interval={}",
                clamped.retry_after, clamped.interval
            ),
            EngineEvent::SharedBudgetFallback { share, .. } => {
                format!("shared budget unavailable, local share {share}")
            }
            EngineEvent::SharedBudgetRecovered => "shared budget recovered".to_owned(),
            other => format!("{other:?}"),
        };
        self.note(&name, format!("event {text}"));
    }

    /// Kills engine `node` (its lost requests die with it) and starts a new
    /// one with the same settings that restores every stored record.
    pub fn restart(&mut self, node: usize) {
        let name = self.nodes[node].name.clone();
        self.flights.retain(|f| f.node != node);
        self.downlink.retain(|r| r.node != node);
        self.held.retain(|r| r.node != node);
        self.delayed.retain(|d| d.node != node);
        self.outbox.retain(|o| o.node != node);
        let settings = self.nodes[node].settings.clone();
        self.note(&name, "crash; restart from the store");
        self.nodes[node].engine = Engine::new(config(), settings);
        self.load(node);
    }
}

/// A Location install of `location` in `company-1`.
pub fn location(location: &str) -> Install {
    Install::location("company-1", location)
}
