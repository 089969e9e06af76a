//! Thirty simulated days of one healthy grant: a refresh ahead of every
//! expiry, each new refresh token persisted before the refresh is reported,
//! and a valid access token whenever anyone asks.

mod common;

use std::time::Duration;

use common::sim::{Sim, location};
use hoopai_oauth::{EngineSettings, TokenStatus};

#[test]
fn thirty_days_of_refreshes() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default());
    let grant = sim.install(a, &location("loc-1"));
    let day = Duration::from_secs(86_400);
    for d in 0..30 {
        // Someone uses the token every six hours.
        for _ in 0..4 {
            sim.run_for(day / 4);
            let status = sim.ask_quietly(a, grant.as_str());
            assert!(
                matches!(status, TokenStatus::Ready(_)),
                "day {d}: {status:?}"
            );
        }
        let status = sim.ask(a, grant.as_str());
        assert!(matches!(status, TokenStatus::Ready(_)));
    }
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    let stats = sim.fake.stats();
    // One refresh per ~23h50m: 30 days hold 30 of them.
    assert_eq!(stats.refreshes, 30);
    assert_eq!(stats.spent_refresh_token_reuses, 0);
    snap!(sim.transcript());
}
