//! A refresh refused with a 401 that does not name the client credentials
//! ("Invalid token: access token is invalid", the official OpenAPI's own
//! example) concerns that grant alone: it keeps its refresh token, is parked
//! and persisted as unauthorized, is reported, and is tried again at growing
//! intervals while the other grants go on. Several distinct grants refused so
//! in a row, with no success in between, mean the client is rejected.

mod common;

use std::time::Duration;

use common::sim::{Sim, location};
use hoopai_oauth::fake::Fault;
use hoopai_oauth::{
    Config, EngineSettings, ErrorKind, GrantRecord, GrantStatus, SendOutcome, TokenStatus,
};
use serde_json::Value;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn invalid_token() -> Fault {
    Fault::Unauthorized {
        message: "Invalid token: access token is invalid".into(),
    }
}

fn redacted(record: &GrantRecord) -> String {
    let mut v = serde_json::to_value(record).unwrap();
    for field in ["access_token", "refresh_token"] {
        if let Some(t) = v["tokens"]["token"].get_mut(field) {
            *t = Value::String(format!("<{field}>"));
        }
    }
    serde_json::to_string_pretty(&v).unwrap()
}

/// Installs `loc-1`, `loc-2`, … ten minutes apart, so their refreshes come
/// due one at a time, in order.
fn staggered(sim: &mut Sim, node: usize, n: usize) {
    for i in 1..=n {
        sim.install(node, &location(&format!("loc-{i}")));
        sim.run_for(10 * MINUTE);
    }
}

fn due(sim: &Sim, node: usize) -> std::time::SystemTime {
    sim.nodes[node].engine.poll_timeout().unwrap()
}

#[test]
fn a_refused_grant_is_parked_and_the_others_go_on() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default());
    staggered(&mut sim, a, 3);
    let first_token = sim.store.records["loc-1"].refresh_token().cloned();

    // loc-1 is refused; loc-2 refreshes; loc-3 is refused: the success in
    // between breaks the run, so the client is not taken as rejected.
    sim.fake.fail_next(invalid_token(), 1);
    let t = due(&sim, a);
    sim.run_until(t);
    let t = due(&sim, a);
    sim.run_until(t);
    sim.fake.fail_next(invalid_token(), 1);
    let t = due(&sim, a);
    sim.run_until(t);
    assert!(!sim.nodes[a].engine.stats().halted);

    // loc-1: parked, its refresh token kept, persisted as unauthorized.
    let record = sim.store.records["loc-1"].clone();
    let GrantStatus::Unauthorized { until, reason } = &record.status else {
        panic!("{:?}", record.status);
    };
    assert!(reason.as_deref().unwrap().contains("Invalid token"));
    assert_eq!(record.refresh_token().cloned(), first_token);
    assert!(
        sim.fake
            .is_live_refresh_token(first_token.as_ref().unwrap().secret())
    );
    assert_eq!(
        sim.ask(a, "loc-1"),
        TokenStatus::Unauthorized { until: *until }
    );
    assert!(matches!(sim.ask(a, "loc-2"), TokenStatus::Ready(_)));
    let parked = redacted(&record);

    // A restart reads the status back and keeps the grant parked.
    sim.restart(a);
    assert_eq!(
        sim.ask(a, "loc-1"),
        TokenStatus::Unauthorized { until: *until }
    );

    // Its next try is refused again: it waits twice as long; then it works.
    sim.fake.fail_next(invalid_token(), 1);
    sim.run_until(*until);
    let GrantStatus::Unauthorized { until: next, .. } = sim.store.records["loc-1"].status else {
        panic!("{:?}", sim.store.records["loc-1"].status);
    };
    assert_eq!(next, *until + 2 * HOUR);
    sim.run_until(next + HOUR);
    for grant in ["loc-1", "loc-2", "loc-3"] {
        assert_eq!(
            sim.store.records[grant].status,
            GrantStatus::Active,
            "{grant}"
        );
        assert!(
            matches!(sim.ask(a, grant), TokenStatus::Ready(_)),
            "{grant}"
        );
    }
    assert_eq!(sim.fake.stats().faults_served, 3);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!("transcript", sim.transcript());
    snap!("parked_record", parked);
}

#[test]
fn distinct_grants_refused_in_a_row_mean_the_client_is_rejected() {
    let mut sim = Sim::new();
    // Short retries, so that loc-1 is refused three times before loc-2 is due:
    // the same grant counts once.
    let settings = EngineSettings::default().unauthorized_retry(2 * MINUTE, HOUR);
    let a = sim.add_engine("a", settings);
    staggered(&mut sim, a, 4);
    // Every request is refused until the third distinct grant is: loc-1
    // three times, loc-2 twice, loc-1, loc-2, then loc-3 (see the transcript).
    sim.fake.fail_next(invalid_token(), 8);
    let start = due(&sim, a);
    sim.run_until(start + 30 * MINUTE);
    assert_eq!(sim.fake.stats().faults_served, 8);
    assert!(sim.nodes[a].engine.stats().halted);
    // Nothing more is sent: loc-4's refresh came due and waits.
    let sends = sim.sends;
    sim.run_for(HOUR);
    assert_eq!(sim.sends, sends);
    sim.run_until(start + 86_400 * Duration::from_secs(1));
    assert_eq!(sim.ask(a, "loc-4"), TokenStatus::ConfigurationRejected);
    assert_eq!(sim.sends, sends);
    // Every refresh token is still the one stored, and live.
    for i in 1..=4 {
        let stored = sim.store.records[&format!("loc-{i}")]
            .refresh_token()
            .cloned()
            .unwrap();
        assert!(sim.fake.is_live_refresh_token(stored.secret()), "loc-{i}");
    }
    let halted_at = sim.transcript().len();

    // The operator fixes the app's configuration: every grant goes on.
    sim.note("test", "reconfigure");
    let fixed: Config = common::config();
    sim.nodes[a].engine.reconfigure(fixed, sim.now).unwrap();
    sim.pump(a);
    sim.run_for(3 * HOUR);
    for i in 1..=4 {
        let grant = format!("loc-{i}");
        assert_eq!(
            sim.store.records[&grant].status,
            GrantStatus::Active,
            "{grant}"
        );
        assert!(
            matches!(sim.ask(a, &grant), TokenStatus::Ready(_)),
            "{grant}"
        );
    }
    assert!(!sim.nodes[a].engine.stats().halted);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    assert!(
        sim.transcript()[..halted_at].contains("configuration rejected via loc-3 (invalid client)")
    );
    snap!(sim.transcript());
}

/// With the limit at 1, every such 401 is taken as the client's, as before
/// the distinction; the error keeps the server's answer.
#[test]
fn a_limit_of_one_halts_at_the_first_refusal() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default().unauthorized_halt_after(0));
    sim.install(a, &location("loc-1"));
    sim.fake.fail_next(invalid_token(), 1);
    let t = due(&sim, a);
    let mut rejected = None;
    sim.nodes[a].engine.handle_timeout(t).unwrap();
    while let Some(out) = sim.nodes[a].engine.poll_output(t) {
        if let hoopai_oauth::Output::Send { id, request, .. } = out {
            let response = sim.fake.handle(&request, t);
            sim.nodes[a]
                .engine
                .handle_send(id, SendOutcome::Response(response), t)
                .unwrap();
        } else if let hoopai_oauth::Output::Event(
            hoopai_oauth::EngineEvent::ConfigurationRejected { error, .. },
        ) = out
        {
            rejected = Some(error);
        }
    }
    let error = rejected.expect("the client is taken as rejected");
    assert_eq!(error.kind(), ErrorKind::InvalidClient);
    assert_eq!(error.status().map(|s| s.as_u16()), Some(401));
    assert_eq!(error.messages(), ["Invalid token: access token is invalid"]);
    assert!(sim.nodes[a].engine.stats().halted);
    snap!(format!("{error:#?}\n{error}"));
}
