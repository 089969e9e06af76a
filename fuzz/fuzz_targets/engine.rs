//! Drives one engine (or two sharing a compare-and-swap store) with
//! arbitrary sequences of operations and times, through the same
//! simulation and invariants as the property tests (`tests/common/`):
//! never a spent refresh token sent, never two refreshes in flight for one
//! grant, the newest refresh token always in the store or held unwritten,
//! an access token handed out only once its refresh token is written, and
//! every grant healthy once the faults stop.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run engine -- -max_total_time=30`

#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use hoopai_oauth::Config;
use hoopai_oauth::fake::Fault;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../tests/common/sim.rs"]
mod sim;

#[allow(dead_code)]
#[path = "../../tests/common/chaos.rs"]
mod chaos;

use chaos::{Action, GRANTS};
use sim::Fate;

/// The client the simulation's fake server knows (as in `tests/common`).
pub const CLIENT_ID: &str = "6578278e879ad2646715ba9c-lq3w8xd2";
/// A placeholder secret.
pub const CLIENT_SECRET: &str = "placeholder-client-secret";

/// The configuration the engines use.
pub fn config() -> Config {
    Config::builder(CLIENT_ID, CLIENT_SECRET)
        .redirect_uri("https://myapp.com/oauth/callback/hoopai")
        .build()
        .expect("test config")
}

/// 2026-01-01T00:00:00Z.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

#[derive(Debug, Arbitrary)]
enum Op {
    Ask {
        node: u8,
        grant: u8,
    },
    Advance {
        secs: u16,
    },
    Fault {
        fault: u8,
        retry_after: u8,
        times: u8,
    },
    Suspend {
        grant: u8,
    },
    Reactivate {
        grant: u8,
    },
    Fate {
        fate: u8,
        secs: u8,
    },
    Restart {
        node: u8,
    },
    Notify {
        node: u8,
        grant: u8,
    },
    NotifyStale {
        node: u8,
        grant: u8,
        back: u8,
    },
    RemoveRestore {
        node: u8,
        grant: u8,
        poll_between: bool,
    },
    HoldConfirmations {
        writes: u8,
    },
    Confirm,
    AskOnAnswer(bool),
    SlowDriver {
        millis: u16,
    },
    StaleReads {
        reads: u8,
    },
    FailWrites {
        writes: u8,
    },
    Reread {
        node: u8,
        grant: u8,
    },
    FailClaims {
        claims: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    shared: bool,
    ops: Vec<Op>,
}

fn action(op: &Op) -> Action {
    let g = |grant: &u8| usize::from(*grant) % GRANTS;
    let n = |node: &u8| usize::from(*node) % 2;
    match op {
        Op::Ask { node, grant } => Action::Ask {
            node: n(node),
            grant: g(grant),
        },
        Op::Advance { secs } => Action::Advance {
            secs: 1 + u64::from(*secs) % 900,
        },
        Op::Fault {
            fault,
            retry_after,
            times,
        } => Action::Fault {
            fault: match fault % 6 {
                0 => Fault::RateLimited {
                    retry_after_secs: Some(5 + u64::from(*retry_after) % 85),
                },
                1 => Fault::RateLimited {
                    retry_after_secs: None,
                },
                2 => Fault::ServerError,
                3 => Fault::BadGatewayHtml,
                _ => Fault::LocationNotActive,
            },
            times: 1 + usize::from(*times) % 3,
        },
        Op::Suspend { grant } => Action::Suspend { grant: g(grant) },
        Op::Reactivate { grant } => Action::Reactivate { grant: g(grant) },
        Op::Fate { fate, secs } => Action::NextFate(match fate % 4 {
            0 => Fate::Normal,
            1 => Fate::Drop,
            // After the engine gave up on the request, before its retry.
            2 => Fate::Late(Duration::from_secs(32 + u64::from(*secs) % 4)),
            _ => Fate::Late(Duration::from_secs(1 + u64::from(*secs) % 24)),
        }),
        Op::Restart { node } => Action::Restart { node: n(node) },
        Op::Notify { node, grant } => Action::Notify {
            node: n(node),
            grant: g(grant),
        },
        Op::NotifyStale { node, grant, back } => Action::NotifyStale {
            node: n(node),
            grant: g(grant),
            back: 1 + usize::from(*back) % 5,
        },
        Op::RemoveRestore {
            node,
            grant,
            poll_between,
        } => Action::RemoveRestore {
            node: n(node),
            grant: g(grant),
            poll_between: *poll_between,
        },
        Op::HoldConfirmations { writes } => Action::HoldConfirmations {
            writes: 1 + usize::from(*writes) % 3,
        },
        Op::Confirm => Action::Confirm,
        Op::AskOnAnswer(on) => Action::AskOnAnswer(*on),
        Op::SlowDriver { millis } => Action::SlowDriver {
            millis: u64::from(*millis) % 2500,
        },
        Op::StaleReads { reads } => Action::StaleReads {
            reads: 1 + usize::from(*reads) % 2,
        },
        Op::FailWrites { writes } => Action::FailWrites {
            writes: 1 + usize::from(*writes) % 2,
        },
        Op::Reread { node, grant } => Action::Reread {
            node: n(node),
            grant: g(grant),
        },
        Op::FailClaims { claims } => Action::FailClaims {
            claims: 1 + usize::from(*claims) % 3,
        },
    }
}

fuzz_target!(|input: Input| {
    // Long inputs add little beyond time; keep each run short.
    let actions: Vec<Action> = input.ops.iter().take(60).map(action).collect();
    if let Err(broken) = chaos::run(input.shared, &actions) {
        panic!("{broken}");
    }
});
