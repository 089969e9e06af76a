//! The rotation-safety promise across processes, one test per sequence that
//! once broke it: engines sharing one compare-and-swap store, driven by hand
//! one output at a time (as a blocking driver does), against the fake
//! server's strict single-use rotation.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{config, t0};
use hoopai_oauth::fake::{FakeServer, Install};
use hoopai_oauth::*;

/// A store with compare-and-swap on the record version.
#[derive(Default)]
struct Store(BTreeMap<String, GrantRecord>);

impl Store {
    #[allow(clippy::result_large_err)] // a test store
    fn cas(
        &mut self,
        replaces: Option<u64>,
        record: &GrantRecord,
    ) -> Result<(), Option<GrantRecord>> {
        let key = record.grant.as_str().to_owned();
        let current = self.0.get(&key);
        if current.map(|r| r.version) == replaces {
            self.0.insert(key, record.clone());
            Ok(())
        } else {
            Err(current.cloned())
        }
    }

    fn refresh(&self, grant: &str) -> String {
        self.0[grant].refresh_token().unwrap().secret().to_owned()
    }
}

/// The next output of `e` at `now`.
fn poll(e: &mut Engine, now: SystemTime) -> Option<Output> {
    e.poll_output(now)
}

/// Writes one persist with compare-and-swap and reports the outcome.
fn write(e: &mut Engine, store: &mut Store, out: &Output, now: SystemTime) {
    let Output::Persist {
        record, replaces, ..
    } = out
    else {
        panic!("not a persist: {out:?}")
    };
    let outcome = match store.cas(*replaces, record) {
        Ok(()) => WriteOutcome::Written,
        Err(Some(current)) => WriteOutcome::Conflict(Box::new(current)),
        Err(None) => WriteOutcome::NoRecord,
    };
    e.handle_write(record.grant.as_str(), record.version, outcome, now)
        .unwrap();
}

/// Acts on every output of `e` in order, as the README's blocking loop does:
/// writes go to the store, sends go to the fake and their answers come back
/// at once. Returns the events.
fn drive(
    e: &mut Engine,
    store: &mut Store,
    fake: &mut FakeServer,
    now: SystemTime,
) -> Vec<EngineEvent> {
    let mut events = vec![];
    while let Some(out) = poll(e, now) {
        match out {
            Output::Persist { .. } => write(e, store, &out, now),
            Output::Send { id, request, .. } => {
                let answer = fake.handle(&request, now);
                e.handle_send(id, SendOutcome::Response(answer), now)
                    .unwrap();
            }
            Output::Load { grant, .. } => {
                let current = store.0.get(grant.as_str()).cloned();
                e.handle_load(grant.as_str(), Ok(current), now).unwrap();
            }
            Output::Event(ev) => events.push(ev),
            other => panic!("{other:?}"),
        }
    }
    events
}

fn settings(holder: &str) -> EngineSettings {
    EngineSettings::default()
        .request_timeout(Duration::from_secs(30))
        .shared_store(holder, Duration::from_secs(90))
}

/// Installs `n` grants at the fake; returns their tokens.
fn installs(fake: &mut FakeServer, n: usize) -> Vec<(String, TokenSet)> {
    (0..n)
        .map(|i| {
            let loc = format!("loc-{i}");
            let code = fake.approve(&Install::location("company-1", &loc));
            let req = token_request(
                &config(),
                &TokenRequest::authorization_code(code).user_type(UserType::Location),
            )
            .unwrap();
            let token = parse_token_response(fake.handle(&req, t0())).unwrap();
            (loc, TokenSet::new(token, t0()))
        })
        .collect()
}

/// Two engines sharing one store and one grant, `b` having restored it:
/// at the grant's refresh time `due`, `a` has taken the lease (written).
struct Leased {
    fake: FakeServer,
    store: Store,
    grant: String,
    a: Engine,
    b: Engine,
    due: SystemTime,
}

fn leased_by_a() -> Leased {
    let mut fake = FakeServer::new(common::CLIENT_ID, common::CLIENT_SECRET);
    let mut store = Store::default();
    let (grant, tokens) = installs(&mut fake, 1).remove(0);
    let mut a = Engine::new(config(), settings("a"));
    let mut b = Engine::new(config(), settings("b"));
    a.insert(grant.as_str(), tokens, t0()).unwrap();
    drive(&mut a, &mut store, &mut fake, t0());
    b.restore(store.0[&grant].clone(), t0()).unwrap();
    let due = a.poll_timeout().unwrap();
    a.handle_timeout(due).unwrap();
    let lease = poll(&mut a, due).unwrap();
    write(&mut a, &mut store, &lease, due);
    Leased {
        fake,
        store,
        grant,
        a,
        b,
        due,
    }
}

/// Sequence 1: an engine that leased forty grants at once has the new refresh
/// token of the first one answered; whatever else is queued, the next thing
/// it asks for is the write of that token.
#[test]
fn a_new_refresh_token_is_written_before_anything_queued() {
    let mut fake = FakeServer::new(common::CLIENT_ID, common::CLIENT_SECRET);
    let mut store = Store::default();
    let mut e = Engine::new(config(), settings("a"));
    for (grant, tokens) in installs(&mut fake, 40) {
        e.insert(grant.as_str(), tokens, t0()).unwrap();
    }
    drive(&mut e, &mut store, &mut fake, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let mut answered = 0;
    while let Some(out) = poll(&mut e, due) {
        match out {
            Output::Persist { .. } => write(&mut e, &mut store, &out, due),
            Output::Send {
                id, request, grant, ..
            } => {
                let answer = fake.handle(&request, due);
                e.handle_send(id, SendOutcome::Response(answer), due)
                    .unwrap();
                answered += 1;
                // The very next output is the write of the new refresh token.
                let next = poll(&mut e, due);
                let Some(Output::Persist { record, .. }) = &next else {
                    panic!("after the answer for {grant}, {next:?} came before its write")
                };
                assert_eq!(record.grant, grant);
                assert!(fake.is_live_refresh_token(record.refresh_token().unwrap().secret()));
                write(&mut e, &mut store, next.as_ref().unwrap(), due);
            }
            _ => {}
        }
    }
    assert!(answered > 0);
}

/// A send handed out when its lease could no longer cover the request
/// timeout would let another engine take over while it is out.
#[test]
fn nothing_is_sent_that_its_lease_cannot_cover() {
    let mut fake = FakeServer::new(common::CLIENT_ID, common::CLIENT_SECRET);
    let mut store = Store::default();
    let mut e = Engine::new(config(), settings("a"));
    let (grant, tokens) = installs(&mut fake, 1).remove(0);
    e.insert(grant.as_str(), tokens, t0()).unwrap();
    drive(&mut e, &mut store, &mut fake, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let lease = poll(&mut e, due).unwrap();
    write(&mut e, &mut store, &lease, due);
    let until = store.0[&grant].lease.as_ref().unwrap().until;
    // The driver gets to the queued send only 70 s later: 20 s of lease left,
    // less than the 30 s request timeout.
    let late = due + Duration::from_secs(70);
    assert!(until < late + Duration::from_secs(30));
    let mut sends = 0;
    while let Some(out) = poll(&mut e, late) {
        match &out {
            Output::Send { not_after, .. } => {
                // Only under a new lease that covers it.
                let until = store.0[&grant].lease.as_ref().unwrap().until;
                assert!(*not_after >= late);
                assert!(
                    *not_after + Duration::from_secs(30) <= until,
                    "a send handed out at {late:?}, to be dispatched by {not_after:?}, with its lease ending at {until:?}"
                );
                sends += 1;
            }
            Output::Persist { record, .. } => {
                assert!(record.lease.as_ref().is_some_and(|l| l.until > until));
                write(&mut e, &mut store, &out, late);
            }
            _ => {}
        }
    }
    assert_eq!(sends, 1);
}

/// Sequence 2: an engine refused with "invalid grant" while another engine
/// rotated the token checks the store, adopts the newer token, and never
/// reports the healthy grant as lost.
#[test]
fn invalid_grant_is_checked_against_the_store() {
    let Leased {
        mut fake,
        mut store,
        grant,
        mut a,
        mut b,
        due,
    } = leased_by_a();
    // `a` refreshes; its answer is in, its write not yet done.
    let Some(Output::Send { id, request, .. }) = poll(&mut a, due) else {
        panic!("no send")
    };
    let answer = fake.handle(&request, due);
    a.handle_send(id, SendOutcome::Response(answer), due)
        .unwrap();
    b.handle_timeout(due).unwrap();
    drive(&mut b, &mut store, &mut fake, due);
    // `b` waits out the lease, then takes one and presents the spent token
    // (as it could when `a`'s write was slow).
    let later = due + Duration::from_secs(200);
    b.handle_timeout(later).unwrap();
    let mut b_events = vec![];
    let mut sent = false;
    while let Some(out) = poll(&mut b, later) {
        match out {
            Output::Send { id, request, .. } => {
                sent = true;
                let answer = fake.handle(&request, later);
                assert_eq!(answer.status(), 400);
                // Meanwhile `a` writes its new token.
                let mut events = drive(&mut a, &mut store, &mut fake, later);
                assert!(
                    events
                        .iter()
                        .all(|e| !matches!(e, EngineEvent::ReauthorizationNeeded { .. }))
                );
                events.clear();
                b.handle_send(id, SendOutcome::Response(answer), later)
                    .unwrap();
            }
            Output::Persist { .. } => write(&mut b, &mut store, &out, later),
            Output::Load { grant, .. } => {
                let current = store.0.get(grant.as_str()).cloned();
                b.handle_load(grant.as_str(), Ok(current), later).unwrap();
            }
            Output::Event(ev) => b_events.push(ev),
            other => panic!("{other:?}"),
        }
    }
    assert!(sent);
    assert!(
        !b_events
            .iter()
            .any(|e| matches!(e, EngineEvent::ReauthorizationNeeded { .. })),
        "{b_events:?}"
    );
    assert!(matches!(
        b.access_token(&grant, later).unwrap(),
        TokenStatus::Ready(_)
    ));
    assert!(fake.is_live_refresh_token(&store.refresh(&grant)));
    assert_eq!(store.0[&grant].status, GrantStatus::Active);
}

/// Sequence 2, the other half: an engine that did write "re-authorization
/// needed" over the spent token, which another engine then overwrote with the
/// newer one, finds out within seconds.
#[test]
fn an_engine_waiting_for_re_authorization_converges() {
    let mut fake = FakeServer::new(common::CLIENT_ID, common::CLIENT_SECRET);
    let mut store = Store::default();
    let (grant, tokens) = installs(&mut fake, 1).remove(0);
    let mut b = Engine::new(config(), settings("b"));
    // The store says the grant needs re-authorization, with a token `b` holds.
    let mut record = GrantRecord::new(grant.as_str(), tokens.clone());
    record.version = 3;
    record.status = GrantStatus::ReauthorizationNeeded { reason: None };
    store.0.insert(grant.clone(), record.clone());
    b.restore(record, t0()).unwrap();
    drive(&mut b, &mut store, &mut fake, t0());
    assert_eq!(
        b.access_token(&grant, t0()).unwrap(),
        TokenStatus::ReauthorizationNeeded
    );
    // Another engine writes the healthy record over it.
    let mut healthy = GrantRecord::new(grant.as_str(), tokens);
    healthy.version = 4;
    store.0.insert(grant.clone(), healthy);
    let mut now = t0();
    let end = t0() + Duration::from_secs(30);
    while let Some(next) = b.poll_timeout().filter(|t| *t <= end) {
        now = next;
        b.handle_timeout(now).unwrap();
        drive(&mut b, &mut store, &mut fake, now);
    }
    assert!(
        matches!(b.access_token(&grant, now).unwrap(), TokenStatus::Ready(_)),
        "still {:?} at {now:?}",
        b.access_token(&grant, now)
    );
}

/// Sequence 3: a store seeded with version-0 records (`GrantRecord::new`).
#[test]
fn version_zero_records_are_adopted_not_fought() {
    let mut fake = FakeServer::new(common::CLIENT_ID, common::CLIENT_SECRET);
    fake.set_access_lifetime(Duration::from_secs(60));
    let mut store = Store::default();
    let grants = installs(&mut fake, 3);
    for (grant, tokens) in &grants {
        store.0.insert(
            grant.clone(),
            GrantRecord::new(grant.as_str(), tokens.clone()),
        );
    }
    let mut engines: Vec<Engine> = ["a", "b"]
        .iter()
        .map(|h| Engine::new(config(), settings(h)))
        .collect();
    for e in &mut engines {
        for (grant, _) in &grants {
            e.restore(store.0[grant].clone(), t0()).unwrap();
        }
    }
    let end = t0() + Duration::from_secs(20 * 60);
    loop {
        let next = engines.iter().filter_map(Engine::poll_timeout).min();
        let Some(now) = next.filter(|t| *t <= end) else {
            break;
        };
        for e in &mut engines {
            e.handle_timeout(now).unwrap();
            drive(e, &mut store, &mut fake, now);
        }
    }
    assert!(fake.stats().refreshes >= 3 * 10, "{:?}", fake.stats());
    assert_eq!(fake.stats().spent_refresh_token_reuses, 0);
    for (grant, _) in &grants {
        assert!(fake.is_live_refresh_token(&store.refresh(grant)));
    }
}

/// Sequence 4: start-up with every grant due leases a few, not all.
#[test]
fn no_stampede_at_start_up() {
    let mut fake = FakeServer::new(common::CLIENT_ID, common::CLIENT_SECRET);
    let mut store = Store::default();
    let mut e = Engine::new(config(), settings("a"));
    let grants = installs(&mut fake, 200);
    let late = t0() + Duration::from_secs(2 * 86_400);
    for (grant, tokens) in grants {
        e.restore(GrantRecord::new(grant.as_str(), tokens), late)
            .unwrap();
    }
    e.handle_timeout(late).unwrap();
    let mut leases = 0;
    while let Some(out) = poll(&mut e, late) {
        if let Output::Persist { record, .. } = &out {
            assert!(record.lease.is_some());
            leases += 1;
            // Not confirmed: leases held stay held.
            let _ = store.cas(None, record);
        }
    }
    assert!(leases <= 32, "{leases} leases taken at once");
}

fn absurd_record(grant: &str) -> GrantRecord {
    let json = format!(
        r#"{{"schema":1,"grant":"{grant}","version":1,"status":{{"state":"active"}},
        "tokens":{{"obtained_at":{max},"expires_at":{max},
        "token":{{"access_token":"access-placeholder","refresh_token":"refresh-placeholder","expires_in":86399}}}}}}"#,
        max = i64::MAX
    );
    serde_json::from_str(&json).unwrap()
}

/// Sequence 5, as the fuzzer found it: a record with times at the end of
/// time is refused, with a typed error.
#[test]
fn a_record_at_the_end_of_time_is_refused() {
    let mut e = Engine::new(config(), EngineSettings::default());
    let err = e.restore(absurd_record("loc-1"), t0()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(e.grants().get("loc-1").is_none());
    assert_eq!(e.poll_timeout(), None);
}

/// Runs `f` on another thread; aborts the whole test binary if it does not
/// return within `secs` (a loop that never returns also eats memory fast).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(_) => {
            eprintln!("handle_timeout did not return within {secs} s");
            std::process::abort()
        }
    }
}

/// Sequence 5, the general rule: at the end of time, the crate docs' run
/// loop (sleep until `poll_timeout`, `handle_timeout`) terminates, and every
/// deadline is later than the one handled.
#[test]
fn handle_timeout_terminates_at_the_end_of_time() {
    for shared in [false, true] {
        within(10, move || {
            let end = UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 - 100);
            let settings = if shared {
                settings("a")
            } else {
                EngineSettings::default()
            };
            let mut e = Engine::new(config(), settings);
            let mut token = TokenResponse::new(AccessToken::new("access-placeholder"));
            token.refresh_token = Some(RefreshToken::new("refresh-placeholder"));
            token.expires_in = Some(86_399);
            e.insert("loc-1", TokenSet::new(token, end), end).unwrap();
            let mut now = end;
            let mut handled = None;
            for _ in 0..10_000 {
                while let Some(out) = e.poll_output(now) {
                    if let Output::Persist { record, .. } = out {
                        e.handle_write(
                            record.grant.as_str(),
                            record.version,
                            WriteOutcome::Written,
                            now,
                        )
                        .unwrap();
                    }
                    // Sends go unanswered: the request times out.
                }
                let Some(next) = e.poll_timeout() else { break };
                if let Some(h) = handled {
                    assert!(
                        next > h,
                        "deadline {next:?} not after the one handled {h:?}"
                    );
                }
                now = now.max(next);
                e.handle_timeout(now).unwrap();
                handled = Some(next);
            }
        });
    }
}

/// One grant inserted into a shared-store engine and written; returns the
/// engine, the store, the fake and the grant.
fn one_grant() -> (Engine, Store, FakeServer, String) {
    let mut fake = FakeServer::new(common::CLIENT_ID, common::CLIENT_SECRET);
    let mut store = Store::default();
    let mut e = Engine::new(config(), settings("a"));
    let (grant, tokens) = installs(&mut fake, 1).remove(0);
    e.insert(grant.as_str(), tokens, t0()).unwrap();
    let events = drive(&mut e, &mut store, &mut fake, t0());
    assert!(
        matches!(events.as_slice(), [EngineEvent::Durable { version: 1, .. }]),
        "{events:?}"
    );
    (e, store, fake, grant)
}

/// A driver that queues its sends drops one it could not dispatch in time
/// and says so: the refresh goes out again under a new lease.
#[test]
fn an_expired_send_is_leased_again() {
    let (mut e, mut store, mut fake, grant) = one_grant();
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let lease = poll(&mut e, due).unwrap();
    write(&mut e, &mut store, &lease, due);
    let Some(Output::Send { id, not_after, .. }) = poll(&mut e, due) else {
        panic!("no send")
    };
    assert_eq!(e.stats().in_flight, 1);
    let late = not_after + Duration::from_millis(1);
    e.handle_send(id, SendOutcome::NotDispatched, late).unwrap();
    assert_eq!(e.stats().in_flight, 0);
    // An answer to it cannot come: it never went out.
    assert_eq!(
        e.handle_send(id, SendOutcome::TransportError(String::new()), late)
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownRequest
    );
    let lease = poll(&mut e, late).unwrap();
    let Output::Persist { record, .. } = &lease else {
        panic!("{lease:?}")
    };
    assert!(record.lease.is_some());
    write(&mut e, &mut store, &lease, late);
    let Some(Output::Send { id, request, .. }) = poll(&mut e, late) else {
        panic!("no send")
    };
    e.handle_send(id, SendOutcome::Response(fake.handle(&request, late)), late)
        .unwrap();
    drive(&mut e, &mut store, &mut fake, late);
    assert_eq!(e.stats().in_flight, 0);
    assert!(fake.is_live_refresh_token(&store.refresh(&grant)));
    assert_eq!(fake.stats().spent_refresh_token_reuses, 0);
}

/// A compare-and-swap that finds no record: the grant was removed elsewhere.
#[test]
fn a_deleted_record_means_removed_elsewhere() {
    let (mut e, mut store, mut fake, grant) = one_grant();
    store.0.clear();
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let events = drive(&mut e, &mut store, &mut fake, due);
    assert!(
        matches!(events.as_slice(), [EngineEvent::RemovedElsewhere { grant: g }] if g.as_str() == grant),
        "{events:?}"
    );
    assert!(e.grants().get(&grant).is_none());
    assert_eq!(e.poll_timeout(), None);
    assert!(store.0.is_empty());
    // A read that finds nothing says the same.
    let (mut e, mut store, mut fake, grant) = one_grant();
    store.0.clear();
    e.handle_load(&grant, Ok(store.0.get(&grant).cloned()), t0())
        .unwrap();
    let events = drive(&mut e, &mut store, &mut fake, t0());
    assert!(matches!(
        events.as_slice(),
        [EngineEvent::RemovedElsewhere { .. }]
    ));
    assert!(e.grants().get(&grant).is_none());
}

/// Sends and writes name their refresh token by fingerprint, never in full.
#[test]
fn sends_and_writes_carry_fingerprints() {
    let (mut e, mut store, mut fake, grant) = one_grant();
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let mut seen = 0;
    while let Some(out) = poll(&mut e, due) {
        match &out {
            Output::Persist {
                record, refresh, ..
            } => {
                assert_eq!(*refresh, record.refresh_token().unwrap().fingerprint());
                assert!(!refresh.is_short());
                let shown = format!("{refresh} {out:?}");
                assert!(!shown.contains(record.refresh_token().unwrap().secret()));
                write(&mut e, &mut store, &out, due);
                seen += 1;
            }
            Output::Send {
                id,
                request,
                refresh,
                ..
            } => {
                assert_eq!(*refresh, Fingerprint::of(&store.refresh(&grant)));
                let answer = fake.handle(request, due);
                e.handle_send(*id, SendOutcome::Response(answer), due)
                    .unwrap();
                seen += 1;
            }
            _ => {}
        }
    }
    // The lease, the send, the new token.
    assert_eq!(seen, 3);
}

/// A write that fails is written again after a backoff; a lease that fails
/// is retried.
#[test]
fn a_failed_write_is_written_again() {
    let mut fake = FakeServer::new(common::CLIENT_ID, common::CLIENT_SECRET);
    let mut store = Store::default();
    let mut e = Engine::new(config(), settings("a"));
    let (grant, tokens) = installs(&mut fake, 1).remove(0);
    e.insert(grant.as_str(), tokens, t0()).unwrap();
    let Some(Output::Persist { record, .. }) = poll(&mut e, t0()) else {
        panic!()
    };
    let failure = StoreFailure::new("the store is down");
    e.handle_write(
        &grant,
        record.version,
        WriteOutcome::Failed(failure.clone()),
        t0(),
    )
    .unwrap();
    let retry = e.poll_timeout().unwrap();
    assert!(retry > t0() && retry < t0() + Duration::from_secs(10));
    let events: Vec<_> = std::iter::from_fn(|| poll(&mut e, t0())).collect();
    assert!(
        matches!(
            events.as_slice(),
            [Output::Event(EngineEvent::WriteFailed { failure: f, retry_at, .. })]
                if *f == failure && *retry_at == retry
        ),
        "{events:?}"
    );
    e.handle_timeout(retry).unwrap();
    let events = drive(&mut e, &mut store, &mut fake, retry);
    assert!(
        matches!(
            events.as_slice(),
            [
                EngineEvent::WriteRecovered { .. },
                EngineEvent::Durable { .. }
            ]
        ),
        "{events:?}"
    );
    assert_eq!(store.0[&grant].version, record.version);
    // A lease write that fails: retried with backoff.
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let Some(Output::Persist { record, .. }) = poll(&mut e, due) else {
        panic!()
    };
    assert!(record.lease.is_some());
    e.handle_write(
        &grant,
        record.version,
        WriteOutcome::Failed(StoreFailure::new("the store is down")),
        due,
    )
    .unwrap();
    let events: Vec<_> = std::iter::from_fn(|| poll(&mut e, due)).collect();
    assert!(
        matches!(
            events.as_slice(),
            [Output::Event(EngineEvent::RetryScheduled {
                failure: RefreshFailure::Store(_),
                ..
            })]
        ),
        "{events:?}"
    );
    let retry = e.poll_timeout().unwrap();
    e.handle_timeout(retry).unwrap();
    drive(&mut e, &mut store, &mut fake, retry);
    assert!(fake.is_live_refresh_token(&store.refresh(&grant)));
    assert_eq!(fake.stats().refreshes, 1);
}

/// A refresh token from an answer that came after its grant was removed is
/// kept by the engine; when the grant comes back with the refresh token that
/// answer spent, the kept one is adopted and written first. Back with any
/// other refresh token (a new authorization), it is dropped.
#[test]
fn a_rescued_refresh_token_is_adopted_and_written() {
    for back_with_spent in [true, false] {
        let (mut e, mut store, mut fake, grant) = one_grant();
        let due = e.poll_timeout().unwrap();
        e.handle_timeout(due).unwrap();
        let lease = poll(&mut e, due).unwrap();
        write(&mut e, &mut store, &lease, due);
        let Some(Output::Send { id, request, .. }) = poll(&mut e, due) else {
            panic!()
        };
        let answer = fake.handle(&request, due);
        // Released and added back from the store while the answer was out.
        let old = store.0[&grant].clone();
        e.remove(&grant, Removal::Released, due).unwrap();
        e.handle_send(id, SendOutcome::Response(answer), due)
            .unwrap();
        let events: Vec<_> = std::iter::from_fn(|| poll(&mut e, due)).collect();
        assert!(
            matches!(
                events.as_slice(),
                [Output::Event(EngineEvent::AnswerAfterRemoval {
                    refresh_token_kept: true,
                    ..
                })]
            ),
            "{events:?}"
        );
        assert_eq!(
            e.handle_load(&grant, Ok(Some(old.clone())), due)
                .unwrap_err()
                .kind(),
            ErrorKind::UnknownGrant
        );
        let live = fake.live_refresh_tokens();
        assert_eq!(live.len(), 1);
        if back_with_spent {
            e.restore(old.clone(), due).unwrap();
        } else {
            let (_, tokens) = installs(&mut fake, 1).remove(0);
            e.insert(grant.as_str(), tokens, due).unwrap();
        }
        let Some(Output::Persist { record, .. }) = poll(&mut e, due) else {
            panic!()
        };
        let written = record.refresh_token().unwrap().secret().to_owned();
        assert_eq!(written == live[0], back_with_spent, "{back_with_spent}");
        let rest: Vec<_> = std::iter::from_fn(|| poll(&mut e, due)).collect();
        let adopted = rest.iter().any(|o| {
            matches!(o, Output::Event(EngineEvent::RescuedTokenAdopted { grant: g }) if g.as_str() == grant)
        });
        assert_eq!(adopted, back_with_spent, "{rest:?}");
    }
}

/// Waiting out another engine's lease, the engine re-reads the store every
/// few seconds and adopts the other engine's tokens as soon as they are
/// written, not when the lease ends.
#[test]
fn a_lease_held_elsewhere_is_not_waited_out() {
    let Leased {
        mut fake,
        mut store,
        grant,
        mut a,
        mut b,
        due,
    } = leased_by_a();
    b.handle_timeout(due).unwrap();
    let events = drive(&mut b, &mut store, &mut fake, due);
    assert!(matches!(
        events.as_slice(),
        [EngineEvent::LeaseHeldElsewhere { .. }]
    ));
    // `a` answers and writes 2 s later.
    let Some(Output::Send { id, request, .. }) = poll(&mut a, due) else {
        panic!()
    };
    let answer = fake.handle(&request, due);
    let later = due + Duration::from_secs(2);
    a.handle_send(id, SendOutcome::Response(answer), later)
        .unwrap();
    drive(&mut a, &mut store, &mut fake, later);
    let next = b.poll_timeout().unwrap();
    assert_eq!(next, due + Duration::from_secs(5));
    b.handle_timeout(next).unwrap();
    let events = drive(&mut b, &mut store, &mut fake, next);
    assert!(
        matches!(events.as_slice(), [EngineEvent::Adopted { .. }]),
        "{events:?}"
    );
    assert_eq!(
        b.grants()
            .get(&grant)
            .map(|g| g.record())
            .unwrap()
            .refresh_token(),
        store.0[&grant].refresh_token()
    );
}
