//! Property tests: random interleavings of asks, answers (on time, late, or
//! lost), server faults (grant 401s included), suspensions, store conflicts (two engines on one
//! compare-and-swap store), restarts, notifications of current and of stale
//! records, grants removed and restored (before or after the driver polls),
//! writes that reach the store late (their outcome reported late), and asks
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

use common::sim::{Fate, Sim, location};
use hoopai_oauth::fake::Fault;
use hoopai_oauth::{EngineSettings, GrantStatus, TokenStatus};
use proptest::prelude::*;

const GRANTS: usize = 2;

#[derive(Debug, Clone)]
enum Action {
    Ask {
        node: usize,
        grant: usize,
    },
    Advance {
        secs: u64,
    },
    Fault {
        fault: Fault,
        times: usize,
    },
    Suspend {
        grant: usize,
    },
    Reactivate {
        grant: usize,
    },
    NextFate(Fate),
    Restart {
        node: usize,
    },
    Notify {
        node: usize,
        grant: usize,
    },
    /// An out-of-order notification: a record written `back` writes ago.
    NotifyStale {
        node: usize,
        grant: usize,
        back: usize,
    },
    /// The grant is removed, then restored from the store at once (with the
    /// outputs queued for it polled in between, or not).
    RemoveRestore {
        node: usize,
        grant: usize,
        poll_between: bool,
    },
    /// The next writes reach the store (and their outcome is reported) late,
    /// or at `Confirm` if sooner.
    HoldConfirmations {
        writes: usize,
    },
    Confirm,
    /// Whether to ask for a token right after an answer, before polling.
    AskOnAnswer(bool),
}

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
        (31u64..35).prop_map(|s| Fate::Late(Duration::from_secs(s))),
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
    ]
}

fn settings(holder: &str, shared: bool) -> EngineSettings {
    let s = EngineSettings::default()
        .refresh_margin(Duration::from_secs(120))
        .request_timeout(Duration::from_secs(30))
        .backoff(Duration::from_secs(10), Duration::from_secs(120))
        .rate_limit_wait(Duration::from_secs(20))
        .suspended_retry(Duration::from_secs(300))
        .unauthorized_retry(Duration::from_secs(60), Duration::from_secs(300))
        .jitter_seed(holder.len() as u64);
    if shared {
        s.shared_store(holder, Duration::from_secs(90))
    } else {
        s
    }
}

fn run(shared: bool, actions: &[Action]) -> Result<(), TestCaseError> {
    let mut sim = Sim::new();
    sim.fake.set_access_lifetime(Duration::from_secs(600));
    let nodes = if shared { 2 } else { 1 };
    for n in 0..nodes {
        let name = ["a", "b"][n];
        sim.add_engine(name, settings(name, shared));
    }
    let grants: Vec<String> = (0..GRANTS)
        .map(|g| {
            sim.install(g % nodes, &location(&format!("loc-{g}")))
                .as_str()
                .to_owned()
        })
        .collect();
    for n in 0..nodes {
        sim.load(n);
    }
    for a in actions {
        match a {
            Action::Ask { node, grant } => {
                sim.ask(node % nodes, &grants[*grant]);
            }
            Action::Advance { secs } => sim.run_for(Duration::from_secs(*secs)),
            Action::Fault { fault, times } => sim.fake.fail_next(fault.clone(), *times),
            Action::Suspend { grant } => sim.fake.set_location_active(&grants[*grant], false),
            Action::Reactivate { grant } => sim.fake.set_location_active(&grants[*grant], true),
            Action::NextFate(f) => sim.fate(*f),
            Action::HoldConfirmations { writes } => sim.hold_confirmations = *writes,
            Action::Confirm => sim.confirm(),
            Action::AskOnAnswer(on) => sim.ask_on_answer = *on,
            Action::Restart { node } => {
                if !sim.answers_pending(node % nodes) {
                    sim.restart(node % nodes);
                }
            }
            Action::Notify { node, grant } => {
                // The store tells an engine that a record changed.
                let record = sim.store.records[&grants[*grant]].clone();
                let _ = sim.nodes[node % nodes].engine.restore(record, sim.now);
                sim.pump(node % nodes);
            }
            Action::NotifyStale { node, grant, back } => {
                let history = &sim.store.history[&grants[*grant]];
                if let Some(record) = history
                    .len()
                    .checked_sub(1 + back)
                    .map(|i| history[i].clone())
                {
                    // Refused if not newer than what the engine holds; else adopted.
                    let _ = sim.nodes[node % nodes].engine.restore(record, sim.now);
                    sim.pump(node % nodes);
                }
            }
            Action::RemoveRestore {
                node,
                grant,
                poll_between,
            } => {
                let node = node % nodes;
                let g = &grants[*grant];
                let name = sim.nodes[node].name.clone();
                sim.note(&name, format!("remove {g}; restore it"));
                sim.nodes[node].engine.remove(g).expect("remove");
                sim.forget_writes(node, g);
                if *poll_between {
                    sim.pump(node);
                }
                let record = sim.store.records[g].clone();
                sim.nodes[node]
                    .engine
                    .restore(record, sim.now)
                    .expect("restore");
                sim.pump(node);
            }
        }
        prop_assert!(
            sim.violations().is_empty(),
            "{:?}\n{}",
            sim.violations(),
            sim.transcript()
        );
    }
    // Quiesce: the locations come back, the network heals.
    for g in &grants {
        sim.fake.set_location_active(g, true);
    }
    sim.clear_fates();
    sim.hold_confirmations = 0;
    sim.confirm();
    sim.run_for(Duration::from_secs(3600));
    prop_assert!(
        sim.violations().is_empty(),
        "{:?}\n{}",
        sim.violations(),
        sim.transcript()
    );
    if let Err(lost) = sim.check_nothing_lost() {
        prop_assert!(false, "{lost}\n{}", sim.transcript());
    }
    for g in &grants {
        prop_assert_eq!(&sim.store.records[g].status, &GrantStatus::Active);
        for n in 0..nodes {
            let status = sim.ask(n, g);
            prop_assert!(
                matches!(status, TokenStatus::Ready(_)),
                "{g} at {n}: {status:?}\n{}",
                sim.transcript()
            );
        }
    }
    prop_assert_eq!(sim.fake.stats().spent_refresh_token_reuses, 0);
    Ok(())
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
