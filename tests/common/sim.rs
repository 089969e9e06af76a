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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use hoopai_oauth::fake::{FakeServer, Install};
use hoopai_oauth::{
    Engine, EngineSettings, Error, Event, Failure, GrantId, GrantRecord, GrantStatus,
    InstallChanges, Output, RequestId, SeenWebhooks, TokenRequest, TokenSet, TokenStatus,
    WebhookVerifier, parse_token_response, token_request,
};

use super::{CLIENT_ID, CLIENT_SECRET, config, t0};

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

    fn remember(&mut self, record: &GrantRecord) {
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

    /// Overwrites (single-process mode).
    pub fn put(&mut self, record: GrantRecord) {
        self.remember(&record);
        self.writes += 1;
        self.records
            .insert(record.grant.as_str().to_owned(), record);
    }
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

/// How long a delayed write takes to reach the store: well within a lease,
/// with a late answer before it (a write slower than the lease lets another
/// engine take over while it is out, and no engine can help that).
pub const WRITE_DELAY: Duration = Duration::from_secs(20);

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
    /// have their outcome reported, only after [`WRITE_DELAY`] (or at
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
    /// When each grant was first refreshed or minted (its first
    /// [`Event::Refreshed`]).
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

/// `+Dd HH:MM:SS` since [`t0`].
pub fn rel(t: SystemTime) -> String {
    match t.duration_since(t0()) {
        Ok(d) => {
            let s = d.as_secs();
            format!(
                "+{}d {:02}:{:02}:{:02}",
                s / 86_400,
                s / 3600 % 24,
                s / 60 % 60,
                s % 60
            )
        }
        Err(e) => format!("-{}s", e.duration().as_secs()),
    }
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

    /// The transcript so far.
    pub fn transcript(&self) -> &str {
        &self.log
    }

    /// Invariant violations seen so far.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Stops (or resumes) writing the transcript; checks go on.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// Writes a line into the transcript.
    pub fn note(&mut self, who: &str, text: impl AsRef<str>) {
        if !self.quiet {
            let _ = writeln!(self.log, "{}  {:<5} {}", rel(self.now), who, text.as_ref());
        }
    }

    fn label(&mut self, kind: usize, secret: &str) -> String {
        if let Some(l) = self.labels.get(secret) {
            return l.clone();
        }
        self.counters[kind] += 1;
        let l = format!("{}{}", ["A", "R"][kind], self.counters[kind]);
        self.labels.insert(secret.to_owned(), l.clone());
        l
    }

    /// The label of a refresh token (`R…`).
    pub fn refresh_label(&mut self, secret: &str) -> String {
        self.label(1, secret)
    }

    /// The label of an access token (`A…`).
    pub fn access_label(&mut self, secret: &str) -> String {
        self.label(0, secret)
    }

    /// Forgets the scripted fates not used yet.
    pub fn clear_fates(&mut self) {
        self.fates.clear();
    }

    /// Scripts the fate of the next sends, in order; later sends are normal.
    pub fn fate(&mut self, fate: Fate) {
        self.fates.push_back(fate);
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

    /// A short text for a token status.
    pub fn status_text(&mut self, status: &TokenStatus) -> String {
        match status {
            TokenStatus::Ready(a) => format!("ready {}", self.access_label(a.secret())),
            TokenStatus::Pending => "pending".into(),
            TokenStatus::Suspended { until } => format!("suspended until {}", rel(*until)),
            TokenStatus::Unauthorized { until } => format!("unauthorized until {}", rel(*until)),
            TokenStatus::ReauthorizationNeeded => "re-authorization needed".into(),
            TokenStatus::ConfigurationRejected => "configuration rejected".into(),
            other => format!("{other:?}"),
        }
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
                    self.nodes[node].engine.handle_timeout(self.now);
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

    /// Delivers every held answer now.
    pub fn release(&mut self) {
        for reply in std::mem::take(&mut self.held) {
            self.deliver(reply);
        }
    }

    /// Whether answers are on their way to `node` (late or held).
    pub fn answers_pending(&self, node: usize) -> bool {
        self.downlink
            .iter()
            .chain(self.held.iter())
            .any(|r| r.node == node)
            || self.outbox.iter().any(|o| o.node == node)
    }

    fn deliver(&mut self, reply: Reply) {
        let name = self.nodes[reply.node].name.clone();
        if reply.late {
            self.note(&name, format!("late answer to {} arrives", reply.id));
        }
        let grant = self
            .flights
            .iter()
            .find(|f| f.node == reply.node && f.id == reply.id)
            .map(|f| f.grant.clone());
        self.flights
            .retain(|f| !(f.node == reply.node && f.id == reply.id));
        let result =
            self.nodes[reply.node]
                .engine
                .handle_response(reply.id, reply.response, self.now);
        if let (true, Some(grant)) = (self.ask_on_answer, grant.clone()) {
            // Before the outputs of the answer are polled.
            self.ask(reply.node, grant.as_str());
        }
        match (result, grant) {
            (Err(e), Some(g)) if self.deleted.contains(&g) => {
                let kept = if e.rescued_refresh_token().is_some() {
                    " (refresh token rescued in the error)"
                } else {
                    ""
                };
                self.note(
                    &name,
                    format!(
                        "answer to {} of deleted {g} refused: {}{kept}",
                        reply.id,
                        e.kind()
                    ),
                );
            }
            (Err(e), _) => self.violations.push(format!(
                "{} {name}: answer to {} refused: {e}",
                rel(self.now),
                reply.id
            )),
            _ => {}
        }
        self.pump(reply.node);
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
                    grant,
                    record,
                    replaces,
                    ..
                } => self.on_persist(node, grant, record, replaces),
                Output::Load { grant, .. } => self.on_load(node, grant),
                Output::Delete { grant, .. } => {
                    let name = self.nodes[node].name.clone();
                    self.note(&name, format!("delete {grant}"));
                    self.store.records.remove(grant.as_str());
                    self.deleted.insert(grant);
                }
                Output::Event(e) => self.on_event(node, e),
                other => panic!("unexpected output {other:?}"),
            }
        }
    }

    /// A queued send's turn: dispatched, or reported expired past its
    /// `not_after`.
    fn dispatch(&mut self, o: Outgoing) {
        let name = self.nodes[o.node].name.clone();
        if self.now > o.not_after {
            self.note(
                &name,
                format!("send {} {} expired in the queue", o.id, o.grant),
            );
            let result = self.nodes[o.node]
                .engine
                .handle_send_expired(o.id, self.now);
            if let Err(e) = result
                && e.kind() != hoopai_oauth::ErrorKind::UnknownRequest
            {
                self.violations.push(format!(
                    "{} {name}: handle_send_expired refused: {e}",
                    rel(self.now)
                ));
            }
        } else {
            self.on_send(o.node, o.id, o.grant, o.request);
        }
        self.pump(o.node);
    }

    /// Checks that each grant's newest refresh token, issued in an answer
    /// the engines were sent, is somewhere a client can still reach: the
    /// store, an engine, a write or an answer on its way.
    fn check_newest(&mut self) {
        let mut reachable: HashSet<String> = self
            .store
            .records
            .values()
            .filter_map(|r| r.refresh_token().map(|t| t.secret().to_owned()))
            .collect();
        for node in &self.nodes {
            for grant in self.store.records.keys() {
                if let Some(r) = node.engine.record(grant)
                    && let Some(t) = r.refresh_token()
                {
                    reachable.insert(t.secret().to_owned());
                }
            }
        }
        for d in &self.delayed {
            if let Some(t) = d.record.refresh_token() {
                reachable.insert(t.secret().to_owned());
            }
        }
        for r in self.downlink.iter().chain(self.held.iter()) {
            if let Ok(t) = serde_json::from_slice::<serde_json::Value>(r.response.body())
                && let Some(rt) = t.get("refresh_token").and_then(|v| v.as_str())
            {
                reachable.insert(rt.to_owned());
            }
        }
        // Tokens issued to someone else (a test spending one behind the
        // engines' back) are not the engines' to keep.
        let seen: HashSet<&String> = self.issued.values().collect();
        let lost: Vec<String> = self
            .fake
            .live_refresh_tokens()
            .into_iter()
            .filter(|t| seen.contains(t) && !reachable.contains(t))
            .collect();
        for live in lost {
            {
                let l = self.refresh_label(&live);
                self.violations.push(format!(
                    "{} the newest refresh token {l} is only at the server",
                    rel(self.now)
                ));
            }
        }
    }

    /// Reads the record for engine `node` (stale, if so scripted) and hands
    /// it back.
    fn on_load(&mut self, node: usize, grant: GrantId) {
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
            .handle_loaded(grant.as_str(), current, self.now);
        if let Err(e) = result {
            self.violations.push(format!(
                "{} {name}: handle_loaded of {grant} refused: {e}",
                rel(self.now)
            ));
        }
    }

    fn on_send(
        &mut self,
        node: usize,
        id: RequestId,
        grant: GrantId,
        request: http::Request<Vec<u8>>,
    ) {
        self.sends += 1;
        self.send_times.push(self.now);
        let name = self.nodes[node].name.clone();
        let path = request.uri().path();
        if path.ends_with("/oauth/locationToken") || path.ends_with("/oauth/location-token") {
            self.on_mint(node, id, grant, request);
            return;
        }
        let form: Vec<(String, String)> =
            serde_urlencoded::from_bytes(request.body()).unwrap_or_default();
        let refresh = form
            .iter()
            .find(|(k, _)| k == "refresh_token" || k == "refreshToken")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let r = self.refresh_label(&refresh);
        if !self.fake.is_live_refresh_token(&refresh) {
            self.violations.push(format!(
                "{} {name}: sent {r}, which is not live, for {grant}",
                rel(self.now)
            ));
        }
        if let Some(other) = self.flights.iter().find(|f| f.grant == grant) {
            let other = format!("{} of {}", other.id, self.nodes[other.node].name);
            self.violations.push(format!(
                "{} {name}: second refresh of {grant} while {other} is in flight",
                rel(self.now)
            ));
        }
        let fate = self.fates.pop_front().unwrap_or(Fate::Normal);
        let how = match fate {
            Fate::Normal => String::new(),
            Fate::Drop => " (lost on the way)".into(),
            Fate::Late(d) => format!(" (answer will take {}s)", d.as_secs()),
            Fate::Hold => " (answer held)".into(),
        };
        self.note(&name, format!("send {id} {grant} refresh={r}{how}"));
        self.flights.push(Flight {
            node,
            id,
            grant,
            dropped: fate == Fate::Drop,
        });
        if fate == Fate::Drop {
            return;
        }
        let response = self.fake.handle(&request, self.now);
        let summary = self.answer_text(&response);
        self.note("fake", format!("{id} -> {summary}"));
        let at = match fate {
            Fate::Late(d) => self.now + d,
            _ => self.now,
        };
        let reply = Reply {
            node,
            id,
            at,
            late: fate != Fate::Normal,
            response,
        };
        if fate == Fate::Hold {
            self.held.push(reply);
        } else {
            self.downlink.push(reply);
        }
    }

    /// A Location-token mint: presents the Company grant's access token, no
    /// refresh token. Answered at once.
    fn on_mint(
        &mut self,
        node: usize,
        id: RequestId,
        grant: GrantId,
        request: http::Request<Vec<u8>>,
    ) {
        let name = self.nodes[node].name.clone();
        let bearer = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let a = self.access_label(&bearer);
        if let Some(other) = self.flights.iter().find(|f| f.grant == grant) {
            let other = format!("{} of {}", other.id, self.nodes[other.node].name);
            self.violations.push(format!(
                "{} {name}: second request for {grant} while {other} is in flight",
                rel(self.now)
            ));
        }
        self.note(&name, format!("send {id} {grant} mint bearer={a}"));
        self.flights.push(Flight {
            node,
            id,
            grant,
            dropped: false,
        });
        let response = self.fake.handle(&request, self.now);
        let summary = self.answer_text(&response);
        self.note("fake", format!("{id} -> {summary}"));
        self.downlink.push(Reply {
            node,
            id,
            at: self.now,
            late: false,
            response,
        });
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

    fn answer_text(&mut self, response: &http::Response<Vec<u8>>) -> String {
        let copy = http::Response::builder()
            .status(response.status())
            .body(response.body().clone())
            .expect("copy");
        let mut with_headers = copy;
        *with_headers.headers_mut() = response.headers().clone();
        let status = response.status().as_u16();
        match parse_token_response(with_headers) {
            Ok(t) => {
                if let Some(r) = &t.refresh_token {
                    self.issued
                        .insert(t.access_token.secret().to_owned(), r.secret().to_owned());
                }
                let a = self.access_label(t.access_token.secret());
                let r = t
                    .refresh_token
                    .as_ref()
                    .map(|r| self.refresh_label(r.secret()))
                    .unwrap_or_else(|| "none".into());
                format!(
                    "{status} access={a} refresh={r} expires_in={}",
                    t.expires_in.unwrap_or_default()
                )
            }
            Err(e) => {
                let wait = e
                    .retry_after(self.now)
                    .map(|d| format!(" retry-after={}s", d.as_secs()))
                    .unwrap_or_default();
                format!("{status} {}{wait}", e.kind())
            }
        }
    }

    fn record_text(&mut self, record: &GrantRecord) -> String {
        let status = match &record.status {
            GrantStatus::Active => "active".to_owned(),
            GrantStatus::Suspended { until } => format!("suspended until {}", rel(*until)),
            GrantStatus::Unauthorized { until, .. } => {
                format!("unauthorized until {}", rel(*until))
            }
            GrantStatus::ReauthorizationNeeded { .. } => "re-authorization needed".to_owned(),
            other => format!("{other:?}"),
        };
        let a = match record.access_token().secret() {
            "" => "none".to_owned(),
            a => self.access_label(a),
        };
        let r = record
            .refresh_token()
            .map(|r| self.refresh_label(r.secret()))
            .unwrap_or_else(|| "none".to_owned());
        let lease = record
            .lease
            .as_ref()
            .map(|l| format!(" lease={}..{}", l.holder, rel(l.until)))
            .unwrap_or_default();
        format!(
            "v{} {status} access={a} refresh={r} expires={}{lease}",
            record.version,
            rel(record.expires_at())
        )
    }

    fn on_persist(
        &mut self,
        node: usize,
        grant: GrantId,
        record: GrantRecord,
        replaces: Option<u64>,
    ) {
        let name = self.nodes[node].name.clone();
        let text = self.record_text(&record);
        let replaces_text = replaces.map_or("none".to_owned(), |v| format!("v{v}"));
        if !self.nodes[node].settings.is_shared() {
            self.note(
                &name,
                format!("persist {grant} {text} (replaces {replaces_text})"),
            );
            self.store.put(record);
            return;
        }
        if self.fail_writes > 0 {
            self.fail_writes -= 1;
            self.note(
                &name,
                format!("persist {grant} {text} (cas on {replaces_text}: store down)"),
            );
            let result = self.nodes[node].engine.handle_persist_failed(
                grant.as_str(),
                record.version,
                self.now,
            );
            if let Err(e) = result {
                self.violations.push(format!(
                    "{} {name}: handle_persist_failed of {grant} refused: {e}",
                    rel(self.now)
                ));
            }
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
    fn write(
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
                let result =
                    self.nodes[node]
                        .engine
                        .handle_persisted(grant.as_str(), version, self.now);
                if let Err(e) = result {
                    self.violations.push(format!(
                        "{} {name}: handle_persisted of {grant} refused: {e}",
                        rel(self.now)
                    ));
                }
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
                let result = self.nodes[node].engine.handle_persist_conflict(
                    grant.as_str(),
                    *current,
                    self.now,
                );
                if let Err(e) = result {
                    self.violations.push(format!(
                        "{} {name}: handle_persist_conflict of {grant} refused: {e}",
                        rel(self.now)
                    ));
                }
            }
        }
    }

    fn on_event(&mut self, node: usize, event: Event) {
        let name = self.nodes[node].name.clone();
        let text = match &event {
            Event::TokenReady { grant, expires_at } => {
                format!("token ready {grant} expires={}", rel(*expires_at))
            }
            Event::Refreshed { grant, expires_at } => {
                self.ready_at.entry(grant.clone()).or_insert(self.now);
                format!("refreshed {grant} expires={}", rel(*expires_at))
            }
            Event::Adopted { grant, expires_at } => {
                format!("adopted {grant} expires={}", rel(*expires_at))
            }
            Event::LeaseHeldElsewhere {
                grant,
                holder,
                until,
            } => format!("lease of {grant} held by {holder} until {}", rel(*until)),
            Event::Suspended {
                grant,
                until,
                error,
            } => {
                format!("suspended {grant} until {} ({})", rel(*until), error.kind())
            }
            Event::Unauthorized {
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
            Event::ReauthorizationNeeded { grant, error } => {
                format!("re-authorization needed {grant} ({})", error.kind())
            }
            Event::ConfigurationRejected { grant, error } => {
                format!("configuration rejected via {grant} ({})", error.kind())
            }
            Event::RetryScheduled {
                grant,
                at,
                attempt,
                failure,
            } => {
                let why = match failure {
                    Failure::TimedOut => "timed out".to_owned(),
                    Failure::Transport => "transport error".to_owned(),
                    Failure::Answer(e) => e.kind().to_string(),
                    other => format!("{other:?}"),
                };
                if matches!(failure, Failure::TimedOut) {
                    // The engine gave up on its request: a lost one is no longer in flight.
                    self.flights
                        .retain(|f| !(f.node == node && f.grant == *grant && f.dropped));
                }
                format!("retry {grant} #{attempt} at {} ({why})", rel(*at))
            }
            Event::Durable { grant, version } => format!("durable {grant} v{version}"),
            Event::RemovedElsewhere { grant } => format!("removed elsewhere {grant}"),
            other => format!("{other:?}"),
        };
        self.note(&name, format!("event {text}"));
    }

    /// The writes held back reach the store now, in order, and their
    /// outcomes are reported.
    pub fn confirm(&mut self) {
        for d in std::mem::take(&mut self.delayed) {
            self.arrive(d);
        }
    }

    fn arrive(&mut self, d: Delayed) {
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

    /// Restores every stored record of a grant engine `node` does not hold.
    pub fn load(&mut self, node: usize) {
        let name = self.nodes[node].name.clone();
        let records: Vec<GrantRecord> = self.store.records.values().cloned().collect();
        for record in records {
            if self.nodes[node].engine.contains(record.grant.as_str()) {
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

    /// Checks that every refresh token the fake holds live is the one stored
    /// for its grant: nothing issued was lost.
    pub fn check_nothing_lost(&mut self) -> Result<(), String> {
        let stored: Vec<String> = self
            .store
            .records
            .values()
            .filter_map(|r| r.refresh_token().map(|t| t.secret().to_owned()))
            .collect();
        for live in self.fake.live_refresh_tokens() {
            if !stored.contains(&live) {
                let l = self.refresh_label(&live);
                return Err(format!("live refresh token {l} is in no stored record"));
            }
        }
        Ok(())
    }
}

/// A Location install of `location` in `company-1`.
pub fn location(location: &str) -> Install {
    Install::location("company-1", location)
}
