//! A storm of 5xx answers and proxy pages: exponential backoff with seeded
//! jitter up to the cap, always the same refresh token, and recovery when the
//! server is back.

mod common;

use std::time::Duration;

use common::sim::{Sim, location};
use hoopai_oauth::EngineSettings;
use hoopai_oauth::fake::Fault;

#[test]
fn backoff_through_a_storm() {
    let mut sim = Sim::new();
    let base = Duration::from_secs(2);
    let cap = Duration::from_secs(120);
    let a = sim.add_engine(
        "a",
        EngineSettings::default()
            .backoff(base, cap)
            .jitter_seed(0x5eed),
    );
    sim.install(a, &location("loc-1"));
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.fake.fail_next(Fault::ServerError, 6);
    sim.fake.fail_next(Fault::BadGatewayHtml, 4);
    sim.run_until(due + Duration::from_secs(3600));
    // Ten failures, then the eleventh try succeeds.
    assert_eq!(sim.sends, 11);
    assert_eq!(sim.fake.stats().refreshes, 1);
    assert_eq!(sim.fake.stats().spent_refresh_token_reuses, 0);
    // The waits between tries: within [half, all] of min(cap, base * 2^(n-1)).
    let sends: Vec<u64> = sim
        .transcript()
        .lines()
        .filter(|l| l.contains(" send #"))
        .map(|l| {
            let (d, hms) = l[1..].split_once("d ").unwrap();
            let hms: Vec<u64> = hms[..8].split(':').map(|x| x.parse().unwrap()).collect();
            d.parse::<u64>().unwrap() * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
        })
        .collect();
    for (n, w) in sends.windows(2).enumerate() {
        let full = (base * 2u32.pow(n as u32)).min(cap).as_secs();
        let wait = w[1] - w[0];
        // Whole seconds in the transcript: allow one second of rounding.
        assert!(
            wait + 1 >= full / 2 && wait <= full + 1,
            "wait {n}: {wait}s of {full}s"
        );
    }
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(sim.transcript());
}
