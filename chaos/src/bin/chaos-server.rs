//! `chaos-server`: the crate's fake token server on a loopback port, with
//! seeded latency and faults. See `hoopai_oauth_chaos::server`.

use std::process::ExitCode;

use clap::Parser;
use hoopai_oauth_chaos::server::{ServerSettings, http};

fn main() -> ExitCode {
    let settings = ServerSettings::parse();
    match http::run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chaos-server: {e}");
            ExitCode::FAILURE
        }
    }
}
