//! Everything a run left, read back: the server's log, every worker's log,
//! the orchestrator's log and the store.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::files;
use crate::journal::{FleetLine, Micros, ServerLine, WorkerLine, read_lines};
use crate::store::Store;
use crate::worker::engine::stored_state;

/// One refresh as the server logged it.
#[derive(Debug, Clone)]
pub struct Refresh {
    /// The server's request number.
    pub req: u64,
    /// The sending worker instance.
    pub worker: Option<String>,
    /// The worker's request id.
    pub wreq: Option<u64>,
    /// The grant of the token presented.
    pub grant: Option<String>,
    /// Fingerprint of the token presented.
    pub fp: String,
    /// When it arrived.
    pub arrived: Micros,
    /// When the token was spent (rotations).
    pub spent_at: Option<Micros>,
    /// When it settled.
    pub settled: Micros,
    /// What happened.
    pub outcome: crate::journal::Outcome,
    /// The fault injected.
    pub fault: Option<crate::journal::FaultKind>,
    /// The new token (rotations).
    pub new: Option<String>,
    /// Whether the answer went out.
    pub delivery: crate::journal::Delivery,
}

/// What one worker instance logged.
#[derive(Debug, Clone, Default)]
pub struct Instance {
    /// Its sends, by request id: time, grant, token presented.
    pub sends: HashMap<u64, (Micros, String, String)>,
    /// Its answers, by request id: time, new token (if any), refusal by the engine.
    pub answers: HashMap<u64, (Micros, Option<String>, Option<String>)>,
    /// Its requests that got no answer, by request id: time.
    pub transport: HashMap<u64, Micros>,
    /// Its `reauthorization_needed` events: time, grant.
    pub reauths: Vec<(Micros, String)>,
    /// Its failures (engine refusals, store errors).
    pub failures: Vec<String>,
    /// Its asks, by status.
    pub asks: BTreeMap<String, u64>,
    /// Writes made, won and lost.
    pub writes: (u64, u64),
    /// When it logged `stop`, and what it left.
    pub stopped: Option<(Micros, usize, usize)>,
    /// Lines that could not be read (a torn last line after a kill).
    pub unreadable: usize,
}

/// A stored grant at the end.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Fingerprint of its refresh token.
    pub fp: Option<String>,
    /// Its status.
    pub status: &'static str,
    /// Its version.
    pub version: u64,
}

/// Everything read back from a run's folder.
#[derive(Debug, Clone, Default)]
pub struct RunLogs {
    /// Every refresh, by arrival.
    pub refreshes: Vec<Refresh>,
    /// Each grant's first refresh token.
    pub installed: HashMap<String, String>,
    /// Every worker instance's log.
    pub instances: BTreeMap<String, Instance>,
    /// The first won write of each refresh token: time, instance.
    pub first_write: HashMap<String, (Micros, String)>,
    /// When each killed instance was killed.
    pub killed: HashMap<String, Micros>,
    /// Instances that exited by themselves, with their exit code.
    pub exited: Vec<(String, Option<i32>)>,
    /// Instances killed at the end because they did not stop in time.
    pub forced: HashMap<String, Micros>,
    /// The store at the end, by grant.
    pub store: BTreeMap<String, Stored>,
    /// Unreadable server and orchestrator lines.
    pub unreadable: usize,
}

/// Reads a run's folder.
///
/// # Errors
/// A log or the store cannot be read.
pub fn read(dir: &Path) -> Result<RunLogs, String> {
    let mut logs = RunLogs::default();
    let (server, bad) = read_lines::<ServerLine>(&dir.join(files::SERVER_LOG))
        .map_err(|e| format!("{}: {e}", files::SERVER_LOG))?;
    logs.unreadable += bad;
    for line in server {
        match line {
            ServerLine::Installed { grant, fp, .. } => {
                logs.installed.insert(grant, fp);
            }
            ServerLine::Refresh {
                req,
                worker,
                wreq,
                grant,
                fp,
                arrived,
                spent_at,
                settled,
                outcome,
                fault,
                new,
                delivery,
            } => logs.refreshes.push(Refresh {
                req,
                worker,
                wreq,
                grant,
                fp,
                arrived,
                spent_at,
                settled,
                outcome,
                fault,
                new,
                delivery,
            }),
            ServerLine::Listening { .. } => {}
        }
    }
    logs.refreshes.sort_by_key(|r| (r.arrived, r.req));
    let (fleet, bad) = read_lines::<FleetLine>(&dir.join(files::FLEET_LOG))
        .map_err(|e| format!("{}: {e}", files::FLEET_LOG))?;
    logs.unreadable += bad;
    for line in fleet {
        match line {
            FleetLine::Killed { t, instance } => {
                logs.killed.insert(instance, t);
            }
            FleetLine::Exited { instance, code, .. } => logs.exited.push((instance, code)),
            FleetLine::Stopped {
                t,
                instance,
                clean: false,
            } => {
                logs.forced.insert(instance, t);
            }
            FleetLine::Started { .. } | FleetLine::Stopped { .. } => {}
        }
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(instance) = name
            .strip_prefix(files::WORKER_PREFIX)
            .and_then(|n| n.strip_suffix(".log"))
        else {
            continue;
        };
        let (lines, bad) =
            read_lines::<WorkerLine>(&entry.path()).map_err(|e| format!("{name}: {e}"))?;
        let mut inst = Instance {
            unreadable: bad,
            ..Instance::default()
        };
        for line in lines {
            read_worker_line(&mut inst, &mut logs.first_write, instance, line);
        }
        logs.instances.insert(instance.to_owned(), inst);
    }
    let store = Store::open(&dir.join(files::STORE)).map_err(|e| format!("store: {e}"))?;
    for row in store.all().map_err(|e| format!("store: {e}"))? {
        let (fp, status) = stored_state(&row.record)?;
        logs.store.insert(
            row.grant,
            Stored {
                fp,
                status,
                version: row.version,
            },
        );
    }
    Ok(logs)
}

fn read_worker_line(
    inst: &mut Instance,
    first_write: &mut HashMap<String, (Micros, String)>,
    instance: &str,
    line: WorkerLine,
) {
    match line {
        WorkerLine::Send {
            t, grant, id, fp, ..
        } => {
            inst.sends.insert(id, (t, grant, fp));
        }
        WorkerLine::Answer {
            t,
            id,
            new,
            refused,
            ..
        } => {
            inst.answers.insert(id, (t, new, refused));
        }
        WorkerLine::Transport { t, id, .. } => {
            inst.transport.insert(id, t);
        }
        WorkerLine::Write {
            t, fp, won, failed, ..
        } => {
            if won {
                inst.writes.0 += 1;
                let entry = first_write
                    .entry(fp)
                    .or_insert_with(|| (t, instance.to_owned()));
                if t < entry.0 {
                    *entry = (t, instance.to_owned());
                }
            } else if !failed {
                inst.writes.1 += 1;
            }
        }
        WorkerLine::Event { t, grant, kind, .. } => {
            if kind == "reauthorization_needed" {
                inst.reauths.push((t, grant));
            }
        }
        WorkerLine::Ask { status, .. } => *inst.asks.entry(status).or_default() += 1,
        WorkerLine::Failure { what, .. } => inst.failures.push(what),
        WorkerLine::Stop {
            t,
            in_flight,
            queued,
        } => inst.stopped = Some((t, in_flight, queued)),
        WorkerLine::Start { .. }
        | WorkerLine::Unsent { .. }
        | WorkerLine::Load { .. }
        | WorkerLine::Webhook { .. }
        | WorkerLine::Synced { .. } => {}
    }
}
