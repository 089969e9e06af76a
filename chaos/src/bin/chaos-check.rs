//! `chaos-check DIR`: checks a kept run folder again (e.g.
//! `target/tmp/chaos/blocking`) and prints its report. Exits non-zero if an
//! invariant failed.

use std::path::PathBuf;
use std::process::ExitCode;

use hoopai_oauth_chaos::check;
use hoopai_oauth_chaos::fleet::{RunFacts, Scenario};
use hoopai_oauth_chaos::worker::Driver;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: chaos-check DIR");
        return ExitCode::FAILURE;
    };
    let name = dir
        .file_name()
        .map_or_else(|| "run".to_owned(), |n| n.to_string_lossy().into_owned());
    let driver = if name.starts_with("concurrent") {
        Driver::Concurrent
    } else if name.starts_with("service") {
        Driver::Service
    } else {
        Driver::Blocking
    };
    let scenario = Scenario::from_env(&name, driver, name.ends_with("kills"));
    let report = RunFacts::read(&dir).and_then(|facts| check::check(&scenario, &facts));
    match report {
        Ok(report) => {
            print!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("chaos-check: {e}");
            ExitCode::FAILURE
        }
    }
}
