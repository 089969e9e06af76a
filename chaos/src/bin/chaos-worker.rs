//! `chaos-worker`: one engine in shared-store mode over the shared SQLite
//! store. See `hoopai_oauth_chaos::worker`.

use std::process::ExitCode;

use clap::Parser;
use hoopai_oauth_chaos::worker::{WorkerSettings, run};

fn main() -> ExitCode {
    match run(WorkerSettings::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chaos-worker: {e}");
            ExitCode::FAILURE
        }
    }
}
