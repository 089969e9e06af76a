//! A location is suspended: the refresh is refused with "Location is not
//! active", the grant is persisted as suspended with the same refresh token,
//! tried again after the long interval, and back to normal once the location
//! is reactivated.

mod common;

use std::time::Duration;

use common::sim::{Sim, location};
use hoopai_oauth::{EngineSettings, GrantStatus, TokenStatus};

#[test]
fn suspended_then_reactivated() {
    let mut sim = Sim::new();
    let hour = Duration::from_secs(3600);
    let a = sim.add_engine("a", EngineSettings::default().suspended_retry(2 * hour));
    let grant = sim.install(a, &location("loc-1"));
    let first = sim.store.records["loc-1"].refresh_token().cloned();
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.fake.set_location_active("loc-1", false);
    sim.note("test", "loc-1 suspended");
    sim.run_until(due + hour);
    let record = sim.store.records["loc-1"].clone();
    assert!(matches!(record.status, GrantStatus::Suspended { .. }));
    assert_eq!(record.refresh_token().cloned(), first);
    assert!(matches!(
        sim.ask(a, grant.as_str()),
        TokenStatus::Suspended { .. }
    ));
    sim.run_until(due + 5 * hour);
    sim.fake.set_location_active("loc-1", true);
    sim.note("test", "loc-1 reactivated");
    sim.run_until(due + 8 * hour);
    assert!(matches!(sim.ask(a, grant.as_str()), TokenStatus::Ready(_)));
    let record = sim.store.records["loc-1"].clone();
    assert_eq!(record.status, GrantStatus::Active);
    // Tries at due, +2h, +4h (refused), +6h (accepted with the first token).
    assert_eq!(sim.sends, 4);
    assert_eq!(sim.fake.stats().refreshes, 1);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(sim.transcript());
}
