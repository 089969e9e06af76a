//! The logs of a run: JSON, one line per fact, each written with one `write`
//! call so that a process killed at any instant leaves only whole lines.
//!
//! Times are microseconds since the Unix epoch ([`micros`]); every process of
//! a run reads the same clock. Refresh tokens appear only as fingerprints.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch.
pub type Micros = u64;

/// `t` in microseconds since the Unix epoch (0 before it).
#[must_use]
pub fn micros(t: SystemTime) -> Micros {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The time now, in microseconds since the Unix epoch.
#[must_use]
pub fn now_micros() -> Micros {
    micros(SystemTime::now())
}

/// `d` in microseconds.
#[must_use]
pub fn duration_micros(d: Duration) -> Micros {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// An append-only log of JSON lines, shared between threads.
#[derive(Debug)]
pub struct Journal {
    file: Mutex<File>,
}

impl Journal {
    /// Creates (or appends to) the log at `path`.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Journal {
            file: Mutex::new(file),
        })
    }

    /// Writes one line, in one `write` call, straight to the operating system.
    /// A failure to log is reported on stderr and otherwise ignored: the run
    /// goes on, and the checker sees the gap.
    pub fn write<L: Serialize>(&self, line: &L) {
        let Ok(mut text) = serde_json::to_vec(line) else {
            eprintln!("journal: a line could not be serialized");
            return;
        };
        text.push(b'\n');
        let mut file = match self.file.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = file.write_all(&text) {
            eprintln!("journal: write failed: {e}");
        }
    }
}

/// Reads every whole line of a log. A torn last line (a process killed
/// mid-write) and unreadable lines are counted, not fatal.
///
/// # Errors
/// The file cannot be read.
pub fn read_lines<L: DeserializeOwned>(path: &Path) -> io::Result<(Vec<L>, usize)> {
    let reader = BufReader::new(File::open(path)?);
    let mut lines = Vec::new();
    let mut unreadable = 0;
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(l) => lines.push(l),
            Err(_) => unreadable += 1,
        }
    }
    Ok((lines, unreadable))
}

/// One line of a worker's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum WorkerLine {
    /// The worker started and restored its grants.
    Start {
        /// When.
        t: Micros,
        /// This process's name in the run, e.g. `w2.3` (worker 2, third start).
        instance: String,
        /// `blocking` or `concurrent`.
        driver: String,
        /// Grants restored from the store.
        grants: usize,
    },
    /// A refresh request left.
    Send {
        /// When.
        t: Micros,
        /// The grant.
        grant: String,
        /// The engine's request id.
        id: u64,
        /// Fingerprint of the refresh token presented.
        fp: String,
        /// The engine's fingerprint of the same token (`fp:…`).
        #[serde(default)]
        efp: String,
    },
    /// A send the engine handed out was not dispatched: its `not_after`
    /// had passed, or the worker was stopping.
    Unsent {
        /// When.
        t: Micros,
        /// The grant.
        grant: String,
        /// The engine's request id.
        id: u64,
        /// `expired` (reported to the engine as such) or `stopping`.
        why: String,
    },
    /// A record read at the engine's request (`Load`).
    Load {
        /// When the read finished.
        t: Micros,
        /// The grant.
        grant: String,
        /// The stored version (`None`: no record).
        version: Option<u64>,
        /// Fingerprint of the stored refresh token.
        fp: Option<String>,
    },
    /// An answer to a refresh request arrived and was handed to the engine.
    Answer {
        /// When.
        t: Micros,
        /// The grant.
        grant: String,
        /// The engine's request id.
        id: u64,
        /// The HTTP status.
        status: u16,
        /// Fingerprint of the new refresh token in the answer, if any.
        new: Option<String>,
        /// The classified error kind, for a failure.
        error: Option<String>,
        /// The engine refused the answer (e.g. an unknown request), if so.
        refused: Option<String>,
    },
    /// A refresh request got no answer (connection closed, timeout…).
    Transport {
        /// When.
        t: Micros,
        /// The grant.
        grant: String,
        /// The engine's request id.
        id: u64,
        /// What the HTTP client said.
        why: String,
    },
    /// A compare-and-swap write of a record.
    Write {
        /// When the write finished.
        t: Micros,
        /// The grant.
        grant: String,
        /// The record's version.
        version: u64,
        /// The version it replaces (`None`: only if nothing is stored).
        replaces: Option<u64>,
        /// Fingerprint of the record's refresh token.
        fp: String,
        /// The engine's fingerprint of the same token (`fp:…`).
        #[serde(default)]
        efp: String,
        /// `active`, `suspended` or `reauthorization_needed`.
        status: String,
        /// Whether the record holds a lease.
        lease: bool,
        /// Whether the compare-and-swap won.
        won: bool,
        /// Whether the store failed (the write did not happen; `won` is false).
        #[serde(default)]
        failed: bool,
        /// The stored version, when it lost.
        stored: Option<u64>,
    },
    /// An engine event.
    Event {
        /// When.
        t: Micros,
        /// The grant.
        grant: String,
        /// The event's kind, e.g. `reauthorization_needed`.
        kind: String,
        /// The event, as the engine displays it (no secrets).
        detail: String,
    },
    /// An app asked for an access token.
    Ask {
        /// When.
        t: Micros,
        /// The grant.
        grant: String,
        /// `ready`, `pending`, `suspended`, `reauthorization_needed`, …
        status: String,
    },
    /// The engine refused an input, or the store failed.
    Failure {
        /// When.
        t: Micros,
        /// What went wrong (no secrets).
        what: String,
    },
    /// The worker stopped on request, after draining its requests in flight.
    Stop {
        /// When.
        t: Micros,
        /// Requests still unanswered when it gave up waiting.
        in_flight: usize,
        /// Outputs still queued in the engine when it gave up waiting.
        queued: usize,
    },
    /// The webhook route accepted a delivery and the service acted on it
    /// (`ServiceEvent::Webhook`).
    Webhook {
        /// When the service published it.
        t: Micros,
        /// Its `webhookId`.
        id: String,
        /// Grants it added (Location grants to mint).
        added: usize,
        /// Grants it removed.
        removed: usize,
        /// Company grants it needs a code exchange for.
        needs_code_exchange: usize,
    },
    /// An installed-locations sync ended (`TokenService::sync_installed_locations`).
    Synced {
        /// When.
        t: Micros,
        /// The Company grant.
        company: String,
        /// Location grants it added (each a mint).
        added: usize,
        /// Location grants it removed.
        removed: usize,
        /// Why it failed, if it did.
        error: Option<String>,
    },
}

/// What the server did with a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The token was spent and a new one issued.
    Rotated,
    /// Refused: the token presented was already spent.
    RefusedSpent,
    /// Refused: the token presented was never issued.
    RefusedUnknown,
    /// A fault was served before anything was spent.
    FaultBeforeSpend,
}

/// A fault the server injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `500` with a NestJS body.
    ServerError,
    /// `429` with `Retry-After`.
    RateLimited,
    /// `502` with an HTML page.
    BadGatewayHtml,
    /// The connection closed without an answer, nothing spent.
    DropBeforeSpend,
    /// The token spent, then the connection closed without an answer.
    DropAfterSpend,
    /// The token spent, then the answer held past the client's timeout.
    HoldAfterSpend,
}

/// Whether the answer went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Written to the connection.
    Sent,
    /// The connection was closed without an answer.
    Dropped,
    /// Held past the client's timeout, then written (to a client gone).
    Held,
}

/// One line of the server's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum ServerLine {
    /// The server listens.
    Listening {
        /// When.
        t: Micros,
        /// `127.0.0.1:port`.
        addr: String,
    },
    /// A grant was installed: its first refresh token.
    Installed {
        /// When.
        t: Micros,
        /// The grant (its location id).
        grant: String,
        /// Fingerprint of its first refresh token.
        fp: String,
    },
    /// One refresh request, logged once it is settled.
    Refresh {
        /// The server's request number.
        req: u64,
        /// The worker instance that sent it (its `x-chaos-worker` header).
        worker: Option<String>,
        /// The worker's request id (its `x-chaos-request` header).
        wreq: Option<u64>,
        /// The grant of the token presented, if it was ever issued.
        grant: Option<String>,
        /// Fingerprint of the refresh token presented.
        fp: String,
        /// When it arrived (body read).
        arrived: Micros,
        /// When the token was spent, for a rotation.
        spent_at: Option<Micros>,
        /// When its answer was written or dropped; for a held answer, when
        /// the client's timeout ran out (it can no longer be received).
        settled: Micros,
        /// What happened to the token.
        outcome: Outcome,
        /// The fault injected, if any.
        fault: Option<FaultKind>,
        /// Fingerprint of the new refresh token, for a rotation.
        new: Option<String>,
        /// Whether the answer went out.
        delivery: Delivery,
    },
}

/// One line of the orchestrator's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum FleetLine {
    /// A worker process started.
    Started {
        /// When.
        t: Micros,
        /// Its instance name.
        instance: String,
        /// Its process id.
        pid: u32,
    },
    /// A worker process was sent SIGKILL.
    Killed {
        /// When.
        t: Micros,
        /// Its instance name.
        instance: String,
    },
    /// A worker exited by itself while it should have been running.
    Exited {
        /// When it was found gone.
        t: Micros,
        /// Its instance name.
        instance: String,
        /// Its exit code, if it had one.
        code: Option<i32>,
    },
    /// A worker was asked to stop and exited (or was killed after the grace period).
    Stopped {
        /// When.
        t: Micros,
        /// Its instance name.
        instance: String,
        /// Whether it exited by itself within the grace period.
        clean: bool,
    },
}
