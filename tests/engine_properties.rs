//! Property tests: random interleavings of asks, answers (on time, late, or
//! lost), server faults (grant 401s included), suspensions, store conflicts (two engines on one
//! compare-and-swap store), restarts, notifications of current and of stale
//! records, grants removed and restored (before or after the driver polls),
//! writes that reach the store late (their outcome reported late), claims on
//! the shared request budget that fail (shared-store runs draw on it), and asks
//! right after an answer, before its outputs are polled. Whatever happens:
//! - never two refreshes of one grant in flight;
//! - no spent refresh token is ever sent (checked at the fake when sent);
//! - every refresh token the fake issued is spent or is the one last
//!   persisted for its grant;
//! - an access token is handed out only once its refresh token is stored;
//! - nothing panics, and no answer is refused as unknown.
//!
//! The network model: a request is lost before it reaches the server, or is
//! served and its answer arrives on time or late (after the engine's timeout,
//! before its retry). An answer the server produced and that is lost forever
//! cannot be recovered by any client, so the model has none; see
//! `engine_restart.rs` for that limit.

mod common;

use std::time::Duration;

use common::chaos::{self, Action, GRANTS};
use common::sim::Fate;
use hoopai_oauth::fake::Fault;
use proptest::prelude::*;

fn action() -> impl Strategy<Value = Action> {
    let fault = prop_oneof![
        (5u64..90).prop_map(|s| Fault::RateLimited {
            retry_after_secs: Some(s)
        }),
        Just(Fault::RateLimited {
            retry_after_secs: None
        }),
        Just(Fault::ServerError),
        Just(Fault::BadGatewayHtml),
        Just(Fault::LocationNotActive),
        Just(Fault::Unauthorized {
            message: "Invalid token: access token is invalid".into()
        }),
    ];
    let fate = prop_oneof![
        Just(Fate::Normal),
        Just(Fate::Drop),
        (32u64..36).prop_map(|s| Fate::Late(Duration::from_secs(s))),
        (1u64..25).prop_map(|s| Fate::Late(Duration::from_secs(s))),
    ];
    prop_oneof![
        4 => (0..2usize, 0..GRANTS).prop_map(|(node, grant)| Action::Ask { node, grant }),
        6 => (1u64..900).prop_map(|secs| Action::Advance { secs }),
        2 => (fault, 1..4usize).prop_map(|(fault, times)| Action::Fault { fault, times }),
        1 => (0..GRANTS).prop_map(|grant| Action::Suspend { grant }),
        1 => (0..GRANTS).prop_map(|grant| Action::Reactivate { grant }),
        3 => fate.prop_map(Action::NextFate),
        1 => (0..2usize).prop_map(|node| Action::Restart { node }),
        1 => (0..2usize, 0..GRANTS).prop_map(|(node, grant)| Action::Notify { node, grant }),
        1 => (0..2usize, 0..GRANTS, 1..6usize)
            .prop_map(|(node, grant, back)| Action::NotifyStale { node, grant, back }),
        1 => (0..2usize, 0..GRANTS, any::<bool>())
            .prop_map(|(node, grant, poll_between)| Action::RemoveRestore { node, grant, poll_between }),
        2 => (1..4usize).prop_map(|writes| Action::HoldConfirmations { writes }),
        2 => Just(Action::Confirm),
        1 => any::<bool>().prop_map(Action::AskOnAnswer),
        1 => prop_oneof![Just(0u64), 1..2500u64].prop_map(|millis| Action::SlowDriver { millis }),
        1 => (1..3usize).prop_map(|reads| Action::StaleReads { reads }),
        1 => (1..3usize).prop_map(|writes| Action::FailWrites { writes }),
        1 => (1..4usize).prop_map(|claims| Action::FailClaims { claims }),
        1 => (0..2usize, 0..GRANTS).prop_map(|(node, grant)| Action::Reread { node, grant }),
    ]
}

fn run(shared: bool, actions: &[Action]) -> Result<(), TestCaseError> {
    chaos::run(shared, actions).map_err(TestCaseError::fail)
}

proptest! {
    // PROPTEST_CASES=5000 for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn single_process(actions in prop::collection::vec(action(), 1..60)) {
        run(false, &actions)?;
    }

    #[test]
    fn two_engines_shared_store(actions in prop::collection::vec(action(), 1..60)) {
        run(true, &actions)?;
    }
}
