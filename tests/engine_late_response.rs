//! A refresh whose answer arrives after the engine gave up on it (timed out):
//! its tokens are adopted and persisted all the same, never dropped.

mod common;

use std::time::Duration;

use common::sim::{Fate, Sim, location};
use hoopai_oauth::{EngineSettings, GrantStatus, TokenStatus};

fn settings() -> EngineSettings {
    EngineSettings::default()
        .request_timeout(Duration::from_secs(30))
        .backoff(Duration::from_secs(10), Duration::from_secs(600))
}

#[test]
fn late_answer_before_the_retry_is_adopted() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", settings());
    let grant = sim.install(a, &location("loc-1"));
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    // The answer takes 33 s: the engine gives up at 30 s and schedules a
    // retry (at least 5 s later); the answer arrives before it.
    sim.fate(Fate::Late(Duration::from_secs(33)));
    sim.run_until(due + Duration::from_secs(3600));
    assert_eq!(sim.sends, 1);
    assert!(matches!(sim.ask(a, grant.as_str()), TokenStatus::Ready(_)));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(sim.transcript());
}

/// The answer is so late that the retry went out first. The retry presents a
/// token the server has already spent (no client can tell a lost request from
/// a slow answer), and is refused; the late answer still restores the grant.
#[test]
fn late_answer_after_the_retry_still_wins() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", settings());
    let grant = sim.install(a, &location("loc-1"));
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.fate(Fate::Hold);
    sim.run_until(due + Duration::from_secs(60));
    assert_eq!(sim.sends, 2);
    assert!(matches!(
        sim.store.records["loc-1"].status,
        GrantStatus::ReauthorizationNeeded { .. }
    ));
    sim.note("test", "the first answer finally arrives");
    sim.release();
    assert_eq!(sim.store.records["loc-1"].status, GrantStatus::Active);
    assert!(matches!(sim.ask(a, grant.as_str()), TokenStatus::Ready(_)));
    sim.check_nothing_lost().unwrap();
    sim.run_for(Duration::from_secs(2 * 86_400));
    assert_eq!(sim.fake.stats().refreshes, 3);
    // The retry presented a spent token while the first request was still on its way.
    assert_eq!(sim.violations().len(), 2, "{:?}", sim.violations());
    snap!(format!(
        "{}\n# violations\n{}",
        sim.transcript(),
        sim.violations().join("\n")
    ));
}
