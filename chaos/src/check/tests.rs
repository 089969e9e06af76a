//! The checker on a hand-written run: each invariant it must catch, and
//! each loss it must excuse.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::{Cause, check, invariant};
use crate::fingerprint::fingerprint;
use crate::fleet::{RunFacts, Scenario, files};
use crate::journal::{Delivery, FaultKind, FleetLine, Journal, Outcome, ServerLine, WorkerLine};
use crate::store::Store;
use crate::worker::Driver;
use crate::worker::engine::installed_record;

const A: &str = "rt-00000000000a-aaaaaaaaaaaaaaaa";
const B: &str = "rt-00000000000b-bbbbbbbbbbbbbbbb";
const C: &str = "rt-00000000000c-cccccccccccccccc";
const D: &str = "rt-00000000000d-dddddddddddddddd";

fn record(grant: &str, refresh: &str, version: u64, status: &str) -> String {
    let body = format!(
        r#"{{"access_token":"at-{refresh}","refresh_token":"{refresh}","expires_in":60,"locationId":"{grant}","userType":"Location"}}"#
    );
    let response = http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.into_bytes())
        .unwrap();
    let sent_at = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    installed_record(grant, response, sent_at, version)
        .unwrap()
        .replace(
            r#"{"state":"active"}"#,
            &format!(r#"{{"state":"{status}"}}"#),
        )
}

#[allow(clippy::too_many_arguments)]
fn refresh(
    req: u64,
    worker: &str,
    wreq: u64,
    grant: &str,
    token: &str,
    arrived: u64,
    settled: u64,
    outcome: Outcome,
    new: Option<&str>,
) -> ServerLine {
    ServerLine::Refresh {
        req,
        worker: Some(worker.to_owned()),
        wreq: Some(wreq),
        grant: Some(grant.to_owned()),
        fp: fingerprint(token),
        arrived,
        spent_at: (outcome == Outcome::Rotated).then_some(arrived + 10),
        settled,
        outcome,
        fault: (outcome == Outcome::FaultBeforeSpend).then_some(FaultKind::ServerError),
        new: new.map(fingerprint),
        delivery: Delivery::Sent,
    }
}

fn write_run(dir: &Path) {
    let server = Journal::create(&dir.join(files::SERVER_LOG)).unwrap();
    for (grant, token) in [("loc-1", A), ("loc-2", C)] {
        server.write(&ServerLine::Installed {
            t: 1,
            grant: grant.into(),
            fp: fingerprint(token),
        });
    }
    // loc-1: w1.0 rotates A → B, gets the answer, is killed before writing
    // it; w2.0 then sends A: excused, and so is its re-authorization.
    server.write(&refresh(
        1,
        "w1.0",
        11,
        "loc-1",
        A,
        90,
        99,
        Outcome::Rotated,
        Some(B),
    ));
    server.write(&refresh(
        2,
        "w2.0",
        21,
        "loc-1",
        A,
        300,
        310,
        Outcome::RefusedSpent,
        None,
    ));
    // loc-2: w1.0 rotates C → D and writes D at 120; w2.0 sends C at 200.
    server.write(&refresh(
        3,
        "w1.0",
        12,
        "loc-2",
        C,
        95,
        110,
        Outcome::Rotated,
        Some(D),
    ));
    server.write(&refresh(
        4,
        "w2.0",
        22,
        "loc-2",
        C,
        200,
        210,
        Outcome::RefusedSpent,
        None,
    ));
    // Two requests for loc-2 in flight at once.
    server.write(&refresh(
        5,
        "w1.0",
        13,
        "loc-2",
        D,
        400,
        600,
        Outcome::FaultBeforeSpend,
        None,
    ));
    server.write(&refresh(
        6,
        "w2.0",
        23,
        "loc-2",
        D,
        500,
        550,
        Outcome::FaultBeforeSpend,
        None,
    ));

    let w1 = Journal::create(&dir.join("worker-w1.0.log")).unwrap();
    w1.write(&WorkerLine::Answer {
        t: 100,
        grant: "loc-1".into(),
        id: 11,
        status: 200,
        new: Some(fingerprint(B)),
        error: None,
        refused: None,
    });
    w1.write(&WorkerLine::Answer {
        t: 111,
        grant: "loc-2".into(),
        id: 12,
        status: 200,
        new: Some(fingerprint(D)),
        error: None,
        refused: None,
    });
    w1.write(&WorkerLine::Write {
        t: 120,
        grant: "loc-2".into(),
        version: 3,
        replaces: Some(2),
        fp: fingerprint(D),
        efp: hoopai_oauth::Fingerprint::of(D).to_string(),
        status: "active".into(),
        lease: false,
        won: true,
        failed: false,
        stored: None,
    });
    let w2 = Journal::create(&dir.join("worker-w2.0.log")).unwrap();
    for (t, grant) in [(250, "loc-2"), (350, "loc-1")] {
        w2.write(&WorkerLine::Event {
            t,
            grant: grant.into(),
            kind: "reauthorization_needed".into(),
            detail: String::new(),
        });
    }
    let fleet = Journal::create(&dir.join(files::FLEET_LOG)).unwrap();
    fleet.write(&FleetLine::Killed {
        t: 150,
        instance: "w1.0".into(),
    });
    // A token printed where it must not be.
    std::fs::write(dir.join("w2.0.err"), format!("oops {D}\n")).unwrap();
    std::fs::write(dir.join(files::ISSUED), format!("{A}\n{B}\n{C}\n{D}\n")).unwrap();
    let mut store = Store::open(&dir.join(files::STORE)).unwrap();
    let r1 = record("loc-1", A, 4, "reauthorization_needed");
    let r2 = record("loc-2", D, 3, "active");
    store.compare_and_swap("loc-1", None, 4, &r1).unwrap();
    store.compare_and_swap("loc-2", None, 3, &r2).unwrap();
}

#[test]
fn catches_each_violation_and_excuses_kills() {
    let dir = std::env::temp_dir().join(format!("chaos-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_run(&dir);
    let scenario = Scenario::from_env("unit", Driver::Blocking, true);
    let facts = RunFacts {
        dir: dir.clone(),
        kills: 1,
        starts: 2,
        newest: BTreeMap::from([
            ("loc-1".to_owned(), fingerprint(B)),
            ("loc-2".to_owned(), fingerprint(D)),
        ]),
        ran: Duration::from_secs(1),
    };
    let report = check(&scenario, &facts).unwrap();
    let count = |name: &str| report.violations.get(name).map_or(0, |v| v.count);
    assert_eq!(report.losses.len(), 1, "{report}");
    assert_eq!(report.losses[0].cause, Cause::KilledBeforeWrite);
    assert_eq!(report.losses[0].waited, Some(50));
    // Spent at 100, killed at 150: well within one request plus one write.
    assert_eq!(report.losses[0].spend_to_kill, Some(50));
    assert_eq!(count(invariant::KILL_WINDOW), 0, "{report}");
    assert_eq!(report.spent_sends, 2);
    assert_eq!(report.spent_excused.get("KilledBeforeWrite"), Some(&1));
    assert_eq!(count(invariant::SPENT_SENT), 1, "{report}");
    assert!(report.violations[invariant::SPENT_SENT].examples[0].contains("stale view"));
    assert_eq!(count(invariant::SPURIOUS_REAUTH), 1, "{report}");
    assert_eq!(count(invariant::OVERLAP), 1, "{report}");
    assert_eq!(count(invariant::LEAK), 1, "{report}");
    assert_eq!(count(invariant::STORE_NOT_NEWEST), 0, "{report}");
    assert_eq!(count(invariant::NOT_LIVE), 0, "{report}");
    assert_eq!(count(invariant::ENGINE_LOST), 0, "{report}");
    assert_eq!(count(invariant::LOGS), 0, "{report}");
    assert_eq!(report.live, 1);
    assert!(!report.passed());
    // The report names secrets only by fingerprint.
    let text = report.to_string();
    for secret in [A, B, C, D] {
        assert!(!text.contains(secret));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
