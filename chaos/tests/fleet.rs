//! The fleet scenario: three app processes on one Postgres, the fake
//! HighLevel server on loopback with its rate limit on, a bulk install of
//! 1,000 locations delivered as INSTALL webhooks to random instances (some
//! repeated to another instance, some with the answer lost), without and
//! with SIGKILLs of random instances; the checks of
//! `hoopai_oauth_chaos::bulk::report`. Each run's logs and report stay in
//! `target/tmp/chaos/<scenario>/`. See docs/chaos-test.md.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hoopai_oauth_chaos::bulk::{self, Binaries, BulkScenario};

/// The scenarios share the machine's cores: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run(name: &str, kills: bool) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // A Postgres database: `HOOPAI_TEST_POSTGRES_URL`, or a throwaway
    // server when PostgreSQL is installed; under CI none fails the test.
    let Some(url) = hoopai_test_postgres::database(name) else {
        return;
    };
    let scenario = BulkScenario::new(name, kills, url);
    let bins = Binaries {
        fake: PathBuf::from(env!("CARGO_BIN_EXE_chaos-fake")),
        worker: PathBuf::from(env!("CARGO_BIN_EXE_chaos-worker")),
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("chaos")
        .join(name);
    let facts = bulk::run(&scenario, &bins, &dir).unwrap_or_else(|e| panic!("{name}: {e}"));
    let report = bulk::report::check(&scenario, &facts).unwrap_or_else(|e| panic!("{name}: {e}"));
    let _ = std::fs::write(dir.join("report.txt"), report.to_string());
    eprintln!("logs: {}", dir.display());
    eprintln!("{report}");
    assert!(
        !kills || report.kills > 0,
        "a scenario with kills killed no instance"
    );
    assert!(report.passed(), "{report}");
}

#[test]
fn fleet_bulk_install_without_kills() {
    run("fleet", false);
}

#[test]
fn fleet_bulk_install_with_kills() {
    run("fleet-kills", true);
}
