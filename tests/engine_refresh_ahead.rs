//! Refresh-ahead timing: the refresh goes out a margin before expiry (or at
//! half-life for short-lived tokens), callers keep the old token meanwhile,
//! and the new expiry counts from when the request was sent.

mod common;

use std::time::Duration;

use common::sim::{Fate, Sim, location};
use hoopai_oauth::{EngineSettings, TokenStatus};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn refresh_goes_out_a_margin_before_expiry() {
    let mut sim = Sim::new();
    sim.fake.set_access_lifetime(secs(3600));
    let a = sim.add_engine("a", EngineSettings::default().refresh_margin(secs(15 * 60)));
    let grant = sim.install(a, &location("loc-1"));
    let start = sim.now;
    assert_eq!(
        sim.nodes[a].engine.poll_timeout(),
        Some(start + secs(45 * 60))
    );
    // Just before the margin: nothing is sent, the token is handed out.
    sim.run_until(start + secs(45 * 60 - 1));
    assert_eq!(sim.sends, 0);
    let before = sim.ask(a, grant.as_str());
    // The refresh's answer takes 20 s; the old token is still handed out meanwhile.
    sim.fate(Fate::Late(secs(20)));
    sim.run_until(start + secs(45 * 60 + 10));
    assert_eq!(sim.sends, 1);
    assert_eq!(sim.ask(a, grant.as_str()), before);
    sim.run_until(start + secs(45 * 60 + 20));
    let after = sim.ask(a, grant.as_str());
    assert!(matches!(after, TokenStatus::Ready(_)) && after != before);
    // The new expiry counts from the send (45:00), not the answer (45:20).
    let record = sim.store.records[grant.as_str()].clone();
    assert_eq!(record.expires_at(), start + secs(45 * 60 + 3600));
    assert_eq!(
        sim.nodes[a].engine.poll_timeout(),
        Some(start + secs(45 * 60 + 45 * 60))
    );
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    snap!(sim.transcript());
}

#[test]
fn short_lived_tokens_refresh_at_half_life() {
    let mut sim = Sim::new();
    sim.fake.set_access_lifetime(secs(20 * 60));
    let a = sim.add_engine("a", EngineSettings::default().refresh_margin(secs(15 * 60)));
    sim.install(a, &location("loc-1"));
    let start = sim.now;
    sim.run_until(start + secs(35 * 60));
    // 20-minute tokens with a 15-minute margin: refreshed every 10 minutes.
    assert_eq!(sim.sends, 3);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    snap!(sim.transcript());
}
