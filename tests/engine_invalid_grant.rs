//! The refresh token was spent elsewhere (another tool refreshed with it): the
//! engine's refresh gets "Invalid grant", the grant is persisted as needing
//! re-authorization, nothing is retried, and a new install recovers it.

mod common;

use std::time::Duration;

use common::sim::{Sim, location};
use hoopai_oauth::{
    EngineSettings, GrantStatus, TokenRequest, TokenStatus, UserType, parse_token_response,
    token_request,
};

#[test]
fn invalid_grant_needs_reauthorization() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default());
    let grant = sim.install(a, &location("loc-1"));
    // Someone else spends the stored refresh token.
    let stored = sim.store.records["loc-1"].refresh_token().cloned().unwrap();
    let req = token_request(
        &common::config(),
        &TokenRequest::refresh_token(stored).user_type(UserType::Location),
    )
    .unwrap();
    parse_token_response(sim.fake.handle(&req, sim.now)).unwrap();
    sim.note("test", "another tool spends R1");
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.run_until(due + Duration::from_secs(3 * 86_400));
    // One refused refresh, no retry loop.
    assert_eq!(sim.sends, 1);
    assert!(matches!(
        sim.store.records["loc-1"].status,
        GrantStatus::ReauthorizationNeeded { .. }
    ));
    assert_eq!(sim.nodes[a].engine.poll_timeout(), None);
    assert_eq!(
        sim.ask(a, grant.as_str()),
        TokenStatus::ReauthorizationNeeded
    );
    // The user re-installs the app.
    sim.install(a, &location("loc-1"));
    assert!(matches!(sim.ask(a, grant.as_str()), TokenStatus::Ready(_)));
    sim.run_for(Duration::from_secs(86_400));
    assert_eq!(sim.sends, 2);
    assert!(sim.violations().len() == 1, "{:?}", sim.violations());
    snap!(format!(
        "{}\n# violations\n{}",
        sim.transcript(),
        sim.violations().join("\n")
    ));
}
