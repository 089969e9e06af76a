//! Refreshing on demand (after an API call was refused with 401): one refresh,
//! however often it is asked for, and never for a grant that cannot refresh.

mod common;

use std::time::Duration;

use common::sim::{Fate, Sim, location};
use hoopai_oauth::fake::Fault;
use hoopai_oauth::{EngineSettings, ErrorKind, TokenStatus};

#[test]
fn refresh_now_sends_one_refresh_and_the_new_token_follows() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default());
    let grant = sim.install(a, &location("loc-1"));
    let before = sim.ask(a, grant.as_str());
    // The answer takes 5 s; ten more requests to refresh meanwhile change nothing.
    sim.fate(Fate::Late(Duration::from_secs(5)));
    for _ in 0..10 {
        let now = sim.now;
        sim.nodes[a]
            .engine
            .refresh_now(grant.as_str(), None, now)
            .unwrap();
        sim.pump(a);
    }
    assert_eq!(sim.sends, 1);
    // The token held is handed out until the new one arrives.
    assert_eq!(sim.ask(a, grant.as_str()), before);
    sim.run_for(Duration::from_secs(5));
    let after = sim.ask(a, grant.as_str());
    assert!(matches!(after, TokenStatus::Ready(_)) && after != before);
    assert_eq!(sim.sends, 1);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(sim.transcript());
}

#[test]
fn refresh_now_leaves_a_suspended_grant_alone() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default());
    let grant = sim.install(a, &location("loc-1"));
    sim.fake.fail_next(Fault::LocationNotActive, 1);
    sim.run_for(Duration::from_secs(86_400));
    assert!(matches!(
        sim.ask(a, grant.as_str()),
        TokenStatus::Suspended { .. }
    ));
    let sends = sim.sends;
    let now = sim.now;
    sim.nodes[a]
        .engine
        .refresh_now(grant.as_str(), None, now)
        .unwrap();
    sim.pump(a);
    assert_eq!(sim.sends, sends);
}

#[test]
fn refresh_now_of_an_unknown_grant_is_a_typed_error() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default());
    let now = sim.now;
    let err = sim.nodes[a]
        .engine
        .refresh_now("nope", None, now)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownGrant);
}
