//! `hoopai-fake`: the crate's fake HighLevel server as one command, for
//! testing apps in any language. See docs/fake-server.md.
//!
//! The library holds the whole command ([`main`]), so that another
//! package's binary (a test harness that needs the fake as a process of its
//! own) can run it without building this package's binary.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod cli;
mod faults;
mod handoff;
mod journal;
mod keys;
mod seed;
mod server;
mod settings;
mod state;
mod webhook;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use hoopai_oauth::fake::{FakeRateLimit, FakeServer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::faults::Faults;
use crate::journal::{Counters, Journal};
use crate::keys::KeyForms;
use crate::settings::Settings;
use crate::state::{Clock, State};

/// Runs the `hoopai-fake` command: its settings from the process's
/// command line (see docs/fake-server.md), until it is stopped.
#[must_use]
pub fn main() -> ExitCode {
    let settings = match Settings::from_cli(cli::Cli::parse()) {
        Ok(settings) => settings,
        Err(why) => {
            eprintln!("hoopai-fake: {why}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hoopai-fake: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("hoopai-fake: {why}");
            ExitCode::FAILURE
        }
    }
}

/// The fake as the settings describe it, with its seeded installs.
fn build_fake(settings: &Settings) -> (FakeServer, Vec<seed::Seeded>) {
    let mut fake = FakeServer::new(&settings.client_id, &settings.client_secret);
    if let Some(lifetime) = settings.access_token_lifetime {
        fake.set_access_lifetime(lifetime);
    }
    if let Some(limit) = settings.rate_limit {
        let mut rule = FakeRateLimit::new(limit.max, Duration::from_millis(limit.interval_ms));
        if limit.retry_after {
            rule = rule.with_retry_after();
        }
        fake.set_rate_limit(Some(rule));
    }
    fake.set_location_refresh_tokens(settings.location_refresh_tokens);
    let installs: Vec<seed::Seeded> = settings
        .installs
        .iter()
        .map(|seed| seed.apply(&mut fake))
        .collect();
    // The consent page approves an install like the first Location install
    // (without one, the fake's own default: company-1/loc-1).
    let consent = settings
        .installs
        .iter()
        .find(|s| matches!(s, seed::Seed::Location { .. }));
    if let Some(seed::Seed::Location {
        company_id,
        location_id,
        scope,
        ..
    }) = consent.cloned()
    {
        let mut install = hoopai_oauth::fake::Install::location(&company_id, &location_id);
        if let Some(scope) = scope {
            install.scope = scope;
        }
        fake.set_consent_install(install);
    }
    (fake, installs)
}

async fn run(settings: Settings) -> Result<(), String> {
    let (fake, installs) = build_fake(&settings);
    let listener = TcpListener::bind(SocketAddr::new(settings.bind, settings.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", settings.bind, settings.port))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let host = if local.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if local.is_ipv6() {
        format!("[{}]", local.ip())
    } else {
        local.ip().to_string()
    };
    if !local.ip().is_loopback() {
        eprintln!(
            "hoopai-fake: listening on {}, beyond loopback: anyone who reaches it can use the admin API",
            local.ip()
        );
    }
    let base_url = format!("http://{host}:{}", local.port());
    let key = KeyForms::of(&fake.webhook_key());
    let handoff = handoff::document(&settings, &base_url, fake.app_id(), &installs, &key);
    let state = Arc::new(State {
        fake: Mutex::new(fake),
        faults: Mutex::new(Faults::default()),
        journal: Mutex::new(Journal::new(settings.log_capacity)),
        counters: Counters::default(),
        clock: Clock::new(),
        sender: webhook::Sender::new(),
        webhook_url: Mutex::new(settings.webhook_url.clone()),
        handoff: handoff.clone(),
        key,
        max_body_bytes: settings.max_body_bytes,
        quiet: settings.quiet,
        shutdown: Notify::new(),
    });
    let stop = Arc::new(Notify::new());
    let server = tokio::spawn(server::serve(
        listener,
        state.clone(),
        settings.max_connections,
        stop.clone(),
    ));
    if let Some(path) = &settings.handoff {
        handoff::write_private(path, &handoff)?;
    }
    println!("listening {base_url}");

    let why = stopped(&settings, &state).await;
    stop.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    let mut line = String::from("stats");
    for (name, value) in admin::fake_counters(&state) {
        line.push_str(&format!(" {name}={value}"));
    }
    line.push_str(&format!(
        " connections_dropped={} webhooks_delivered={} webhooks_failed={} stopped_by={why}",
        Counters::get(&state.counters.connections_dropped),
        Counters::get(&state.counters.webhooks_delivered),
        Counters::get(&state.counters.webhooks_failed),
    ));
    println!("{line}");
    if let Some(path) = &settings.handoff {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Waits for whatever stops the fake first; returns its name.
async fn stopped(settings: &Settings, state: &State) -> &'static str {
    let stdin_closed = async {
        if !settings.exit_on_stdin_close {
            return std::future::pending().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut sink = [0u8; 256];
        while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let timeout = async {
        match settings.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = stdin_closed => "stdin_closed",
        () = timeout => "timeout",
        () = state.shutdown.notified() => "admin_shutdown",
        () = signal() => "signal",
    }
}

#[cfg(unix)]
async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn signal() {
    let _ = tokio::signal::ctrl_c().await;
}
