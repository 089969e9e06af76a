//! `chaos-fake`: the `hoopai-fake` command (the fake HighLevel server with
//! its rate limit, bulk installs, signed webhooks and admin API), built with
//! this package so that the fleet scenario can run it as a process.

fn main() -> std::process::ExitCode {
    hoopai_fake::main()
}
