//! A process dies in the middle of a refresh and a new one starts from the
//! store. The record saved before (or, in shared-store mode, the lease saved
//! at the start of) the refresh resumes correctly.

mod common;

use std::time::Duration;

use common::sim::{Fate, Sim, location};
use hoopai_oauth::{EngineSettings, GrantStatus, TokenStatus};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Single-process mode: the refresh request is lost and the process dies
/// before it times out. The restored engine refreshes with the stored token.
#[test]
fn single_process_restart_mid_refresh() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default());
    let grant = sim.install(a, &location("loc-1"));
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.fate(Fate::Drop);
    sim.run_until(due + secs(10));
    sim.restart(a);
    sim.run_until(due + secs(3600));
    assert!(matches!(sim.ask(a, grant.as_str()), TokenStatus::Ready(_)));
    assert_eq!(sim.fake.stats().refreshes, 1);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(sim.transcript());
}

/// Shared-store mode: the lease was written, the request lost, the process
/// died. The restored engine honours the lease until it ends, then leases
/// again and refreshes with the same token.
#[test]
fn shared_store_restart_from_a_leased_record() {
    let mut sim = Sim::new();
    let settings = EngineSettings::default()
        .request_timeout(secs(30))
        .shared_store("worker-1", secs(120));
    let a = sim.add_engine("a", settings);
    let grant = sim.install(a, &location("loc-1"));
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.fate(Fate::Drop);
    sim.run_until(due + secs(10));
    assert!(sim.store.records["loc-1"].lease.is_some());
    sim.restart(a);
    // Within the lease the old access token (still valid) is handed out.
    assert!(matches!(sim.ask(a, grant.as_str()), TokenStatus::Ready(_)));
    sim.run_until(due + secs(3600));
    let record = sim.store.records["loc-1"].clone();
    assert_eq!(record.status, GrantStatus::Active);
    assert!(record.lease.is_none());
    assert_eq!(sim.fake.stats().refreshes, 1);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(sim.transcript());
}

/// The limit no client can pass: the server spent the token and answered,
/// and the answer died with the process. The restored engine's refresh is
/// refused and the grant needs re-authorization.
#[test]
fn an_answer_lost_with_the_process_cannot_be_recovered() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default());
    let grant = sim.install(a, &location("loc-1"));
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.fate(Fate::Hold);
    sim.run_until(due + secs(10));
    sim.restart(a);
    sim.run_until(due + secs(3600));
    assert_eq!(
        sim.ask(a, grant.as_str()),
        TokenStatus::ReauthorizationNeeded
    );
    assert!(sim.check_nothing_lost().is_err());
    snap!(format!(
        "{}\n# violations\n{}",
        sim.transcript(),
        sim.violations().join("\n")
    ));
}
