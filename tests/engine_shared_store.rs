//! Two engines share one compare-and-swap store and the same grants. Each
//! refresh is preceded by a lease; the engine that loses the race waits for
//! the lease and adopts the winner's tokens. They never both refresh and
//! never lose a token, also when an answer comes late.

mod common;

use std::time::Duration;

use common::sim::{Fate, Sim, location};
use hoopai_oauth::{EngineSettings, TokenStatus};

fn settings(holder: &str) -> EngineSettings {
    EngineSettings::default()
        .request_timeout(Duration::from_secs(30))
        .backoff(Duration::from_secs(10), Duration::from_secs(600))
        .shared_store(holder, Duration::from_secs(90))
}

#[test]
fn two_engines_one_store() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", settings("a"));
    let b = sim.add_engine("b", settings("b"));
    let grant = sim.install(a, &location("loc-1"));
    sim.load(b);
    let day = Duration::from_secs(86_400);
    // Day 1: both come due at once; a wins the lease, b waits and adopts.
    sim.run_for(day);
    // Day 2: a's answer is late; a gives up, the late answer is still adopted.
    sim.fate(Fate::Late(Duration::from_secs(33)));
    sim.run_for(day);
    // Day 3: a's request is lost and a dies 5 s later. The restarted a and b
    // both wait out the dead lease; then one refreshes and the other adopts.
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.fate(Fate::Drop);
    sim.run_until(due + Duration::from_secs(5));
    sim.restart(a);
    sim.run_for(day);
    for node in [a, b] {
        assert!(matches!(
            sim.ask(node, grant.as_str()),
            TokenStatus::Ready(_)
        ));
    }
    assert_eq!(sim.ask(a, grant.as_str()), sim.ask(b, grant.as_str()));
    let stats = sim.fake.stats();
    // Day 4's refresh falls inside the last run.
    assert_eq!(stats.refreshes, 4);
    assert_eq!(stats.spent_refresh_token_reuses, 0);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(sim.transcript());
}

#[test]
fn many_grants_two_engines_a_month() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", settings("a"));
    let b = sim.add_engine("b", settings("b"));
    let grants: Vec<_> = (0..20)
        .map(|i| sim.install(i % 2, &location(&format!("loc-{i}"))))
        .collect();
    sim.load(a);
    sim.load(b);
    sim.set_quiet(true);
    for day in 0..30 {
        if day % 7 == 3 {
            sim.fate(Fate::Late(Duration::from_secs(35)));
        }
        sim.run_for(Duration::from_secs(86_400));
        for g in &grants {
            for node in [a, b] {
                assert!(matches!(
                    sim.ask_quietly(node, g.as_str()),
                    TokenStatus::Ready(_)
                ));
            }
        }
    }
    assert_eq!(sim.fake.stats().spent_refresh_token_reuses, 0);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    // One refresh per grant per ~23h50m, not two.
    assert!(
        sim.fake.stats().refreshes <= 20 * 31,
        "{:?}",
        sim.fake.stats()
    );
}
