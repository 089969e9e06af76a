//! 429 answers: the engine waits as long as `Retry-After` says, or for the
//! rate-limit window when the headers say it is used up, and retries with the
//! same refresh token.

mod common;

use std::time::Duration;

use common::sim::{Sim, location};
use hoopai_oauth::EngineSettings;
use hoopai_oauth::fake::Fault;

#[test]
fn waits_for_retry_after_then_for_the_window() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default());
    sim.install(a, &location("loc-1"));
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.fake.fail_next(
        Fault::RateLimited {
            retry_after_secs: Some(120),
        },
        1,
    );
    // The second 429 has no Retry-After: the X-RateLimit-* headers say the
    // 10-second window is used up.
    sim.fake.fail_next(
        Fault::RateLimited {
            retry_after_secs: None,
        },
        1,
    );
    sim.run_until(due + Duration::from_secs(3600));
    assert_eq!(sim.sends, 3);
    assert_eq!(sim.fake.stats().refreshes, 1);
    let record = &sim.store.records["loc-1"];
    // Sent at due + 120 s + 10 s.
    assert_eq!(record.expires_at(), due + Duration::from_secs(130 + 86_399));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(sim.transcript());
}
