//! The orchestrator: seeds the server and the store, starts the workers,
//! kills and restarts them at random, and stops everyone.
//!
//! Every child process is owned by a [`Fleet`], which kills and reaps all
//! of them when dropped, also when a test panics.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::journal::{FleetLine, Journal, now_micros};
use crate::service_store::{RunStore, StoreKind};
use crate::worker::Driver;
use crate::worker::engine::{code_exchange, installed_record};

/// The app's client id in every run.
pub const CLIENT_ID: &str = "6578278e879ad2646715c4a0-chaos";
/// The app's client secret in every run (a placeholder the fake accepts).
pub const CLIENT_SECRET: &str = "chaos-client-secret-placeholder-0001";

pub use crate::files;

/// The paths of the two binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `chaos-server`.
    pub server: PathBuf,
    /// `chaos-worker`.
    pub worker: PathBuf,
}

/// One scenario's parameters.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (also its folder).
    pub name: String,
    /// The driver of every worker.
    pub driver: Driver,
    /// Whether workers are killed and restarted at random.
    pub kills: bool,
    /// Grants installed at the start.
    pub grants: usize,
    /// Worker processes.
    pub workers: usize,
    /// How long the workers run.
    pub duration: Duration,
    /// Seed of the server's dice, the workers' jitter and the kills.
    pub seed: u64,
    /// `expires_in` of access tokens, in seconds.
    pub expires_in: u64,
    /// The request timeout of engines and HTTP clients.
    pub request_timeout: Duration,
    /// The lease the engines ask for.
    pub lease: Duration,
    /// The time between kills is drawn from this range.
    pub kill_gap: (Duration, Duration),
    /// The most kills in one run.
    pub max_kills: usize,
    /// The version of the seeded records (1: as written by an engine's
    /// `insert`; 0: `GrantRecord::new` rows as they come).
    pub seed_version: u64,
    /// Where the workers keep their grants.
    pub store: StoreKind,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Scenario {
    /// A scenario with the defaults, changed by the environment:
    /// `CHAOS_SECS` (30), `CHAOS_SEED`, `CHAOS_GRANTS` (50), `CHAOS_WORKERS` (4),
    /// `CHAOS_EXPIRES_IN` (6), `CHAOS_MAX_KILLS` (40), `CHAOS_SEED_VERSION` (1).
    #[must_use]
    pub fn from_env(name: &str, driver: Driver, kills: bool) -> Self {
        let default_seed = crate::fingerprint::fingerprint(name)
            .chars()
            .fold(0u64, |a, c| a.wrapping_mul(31).wrapping_add(u64::from(c)));
        Scenario {
            name: name.to_owned(),
            driver,
            kills,
            grants: env_u64("CHAOS_GRANTS").map_or(50, |v| v as usize),
            workers: env_u64("CHAOS_WORKERS").map_or(4, |v| v as usize).max(1),
            duration: Duration::from_secs(env_u64("CHAOS_SECS").unwrap_or(30)),
            seed: env_u64("CHAOS_SEED").unwrap_or(default_seed),
            expires_in: env_u64("CHAOS_EXPIRES_IN").unwrap_or(6),
            request_timeout: Duration::from_secs(2),
            lease: Duration::from_secs(4),
            kill_gap: (Duration::from_millis(1500), Duration::from_millis(4000)),
            max_kills: env_u64("CHAOS_MAX_KILLS").map_or(40, |v| v as usize),
            seed_version: env_u64("CHAOS_SEED_VERSION").unwrap_or(1),
            store: StoreKind::Harness,
        }
    }
}

/// What a run left for the checker, besides its folder.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// The run's folder.
    pub dir: PathBuf,
    /// Workers killed.
    pub kills: usize,
    /// Worker instances started.
    pub starts: usize,
    /// The server's newest refresh token of every grant (fingerprints).
    pub newest: BTreeMap<String, String>,
    /// How long the workers ran.
    pub ran: Duration,
}

impl RunFacts {
    /// Reads the facts of a finished run back from its folder (to check it
    /// again); `ran` is taken from the first start to the last stop.
    ///
    /// # Errors
    /// `newest.json` or the orchestrator's log cannot be read.
    pub fn read(dir: &Path) -> Result<Self, String> {
        let newest = std::fs::read(dir.join(files::NEWEST))
            .map_err(|e| format!("{}: {e}", files::NEWEST))?;
        let newest =
            serde_json::from_slice(&newest).map_err(|e| format!("{}: {e}", files::NEWEST))?;
        let (lines, _) = crate::journal::read_lines::<FleetLine>(&dir.join(files::FLEET_LOG))
            .map_err(|e| format!("{}: {e}", files::FLEET_LOG))?;
        let (mut kills, mut starts, mut first, mut last) = (0, 0, u64::MAX, 0);
        for line in &lines {
            match line {
                FleetLine::Started { t, .. } => {
                    starts += 1;
                    first = first.min(*t);
                }
                FleetLine::Killed { .. } => kills += 1,
                FleetLine::Stopped { t, .. } => last = last.max(*t),
                FleetLine::Exited { .. } => {}
            }
        }
        Ok(RunFacts {
            dir: dir.to_owned(),
            kills,
            starts,
            newest,
            ran: Duration::from_micros(last.saturating_sub(first)),
        })
    }
}

/// A worker slot: the process running in it now, if any.
#[derive(Debug)]
struct Slot {
    starts: usize,
    instance: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

/// Every child process of a run. Dropping it kills and reaps them all.
#[derive(Debug)]
pub struct Fleet {
    server: Option<Child>,
    slots: Vec<Slot>,
    log: Journal,
    /// The workers' arguments naming the store.
    store_args: Vec<OsString>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            slot.stdin = None;
            if let Some(mut child) = slot.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

fn output_file(dir: &Path, name: &str) -> Result<File, String> {
    File::create(dir.join(name)).map_err(|e| format!("{name}: {e}"))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Runs `scenario` in `dir` (emptied first) and returns what the checker
/// needs. Every process is stopped when it returns, also on error.
///
/// # Errors
/// A process could not be started, the server did not come up, or seeding
/// failed.
pub fn run(scenario: &Scenario, bins: &Binaries, dir: &Path) -> Result<RunFacts, String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = Journal::create(&dir.join(files::FLEET_LOG)).map_err(|e| e.to_string())?;
    let store = RunStore::prepare(&scenario.store, &scenario.name)?;
    let mut fleet = Fleet {
        server: None,
        slots: Vec::new(),
        log,
        store_args: store.worker_args(dir),
    };
    let base_url = fleet.start_server(scenario, bins, dir)?;
    store.seed(dir, &seed(scenario, &base_url)?)?;
    for index in 0..scenario.workers {
        fleet.slots.push(Slot {
            starts: 0,
            instance: String::new(),
            child: None,
            stdin: None,
        });
        fleet.start_worker(index, scenario, bins, dir, &base_url)?;
    }
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(scenario.seed ^ 0x0000_0c4a_05c4_11ed);
    let mut kills = 0;
    let mut next_kill = started + gap(&mut rng, scenario.kill_gap);
    while started.elapsed() < scenario.duration {
        std::thread::sleep(Duration::from_millis(50));
        fleet.notice_exits(scenario, bins, dir, &base_url)?;
        if scenario.kills && kills < scenario.max_kills && Instant::now() >= next_kill {
            let index = rng.usize(..fleet.slots.len());
            fleet.kill(index);
            kills += 1;
            std::thread::sleep(Duration::from_millis(rng.u64(100..=1000)));
            fleet.start_worker(index, scenario, bins, dir, &base_url)?;
            next_kill = Instant::now() + gap(&mut rng, scenario.kill_gap);
        }
    }
    let ran = started.elapsed();
    fleet.stop_workers(scenario);
    // Answers held by the server settle once the clients' timeout is over.
    std::thread::sleep(scenario.request_timeout + Duration::from_secs(1));
    let newest = fetch_newest(&base_url)?;
    std::fs::write(
        dir.join(files::NEWEST),
        serde_json::to_vec_pretty(&newest).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let starts = fleet.slots.iter().map(|s| s.starts).sum();
    drop(fleet);
    store.finish(dir)?;
    Ok(RunFacts {
        dir: dir.to_owned(),
        kills,
        starts,
        newest,
        ran,
    })
}

fn gap(rng: &mut fastrand::Rng, (lo, hi): (Duration, Duration)) -> Duration {
    let (lo, hi) = (
        lo.as_millis() as u64,
        hi.as_millis().max(lo.as_millis()) as u64,
    );
    Duration::from_millis(rng.u64(lo..=hi))
}

impl Fleet {
    fn start_server(
        &mut self,
        s: &Scenario,
        bins: &Binaries,
        dir: &Path,
    ) -> Result<String, String> {
        let addr_file = dir.join(files::ADDR);
        let child = Command::new(&bins.server)
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--log")
            .arg(dir.join(files::SERVER_LOG))
            .arg("--issued")
            .arg(dir.join(files::ISSUED))
            .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
            .args(["--seed", &s.seed.to_string()])
            .args(["--expires-in", &s.expires_in.to_string()])
            .args([
                "--client-timeout-ms",
                &s.request_timeout.as_millis().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(output_file(dir, "server.out")?)
            .stderr(output_file(dir, "server.err")?)
            .spawn()
            .map_err(|e| format!("chaos-server: {e}"))?;
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&addr_file) {
                return Ok(format!("http://{}", addr.trim()));
            }
            if let Some(server) = &mut self.server
                && let Ok(Some(status)) = server.try_wait()
            {
                return Err(format!("chaos-server exited at start-up: {status}"));
            }
            if Instant::now() > deadline {
                return Err("chaos-server did not come up within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn start_worker(
        &mut self,
        index: usize,
        s: &Scenario,
        bins: &Binaries,
        dir: &Path,
        base_url: &str,
    ) -> Result<(), String> {
        let slot = &mut self.slots[index];
        let instance = format!("w{}.{}", index + 1, slot.starts);
        slot.starts += 1;
        let seed = s.seed ^ ((index as u64 + 1) << 32) ^ slot.starts as u64;
        let mut child = Command::new(&bins.worker)
            .args(&self.store_args)
            .args(["--server", base_url])
            .args(["--instance", &instance])
            .args(["--driver", s.driver.name()])
            .arg("--log")
            .arg(dir.join(format!("{}{instance}.log", files::WORKER_PREFIX)))
            .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
            .args(["--seed", &seed.to_string()])
            .args([
                "--request-timeout-ms",
                &s.request_timeout.as_millis().to_string(),
            ])
            .args(["--lease-ms", &s.lease.as_millis().to_string()])
            .stdin(Stdio::piped())
            .stdout(output_file(dir, &format!("{instance}.out"))?)
            .stderr(output_file(dir, &format!("{instance}.err"))?)
            .spawn()
            .map_err(|e| format!("chaos-worker: {e}"))?;
        slot.stdin = child.stdin.take();
        self.log.write(&FleetLine::Started {
            t: now_micros(),
            instance: instance.clone(),
            pid: child.id(),
        });
        slot.child = Some(child);
        slot.instance = instance;
        Ok(())
    }

    /// SIGKILLs the worker in slot `index`.
    fn kill(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.stdin = None;
        if let Some(mut child) = slot.child.take() {
            let _ = child.kill();
            self.log.write(&FleetLine::Killed {
                t: now_micros(),
                instance: slot.instance.clone(),
            });
            let _ = child.wait();
        }
    }

    /// Restarts workers that exited by themselves, logging it.
    fn notice_exits(
        &mut self,
        s: &Scenario,
        bins: &Binaries,
        dir: &Path,
        base_url: &str,
    ) -> Result<(), String> {
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            let exited = match &mut slot.child {
                Some(child) => child.try_wait().ok().flatten(),
                None => None,
            };
            if let Some(status) = exited {
                slot.child = None;
                slot.stdin = None;
                self.log.write(&FleetLine::Exited {
                    t: now_micros(),
                    instance: slot.instance.clone(),
                    code: status.code(),
                });
                self.start_worker(index, s, bins, dir, base_url)?;
            }
        }
        Ok(())
    }

    /// Closes every worker's standard input, waits for them to drain and
    /// exit, and kills those still running after the grace period.
    fn stop_workers(&mut self, s: &Scenario) {
        for slot in &mut self.slots {
            slot.stdin = None;
        }
        let grace = Instant::now() + s.request_timeout * 3 + Duration::from_secs(5);
        for slot in &mut self.slots {
            let Some(mut child) = slot.child.take() else {
                continue;
            };
            let clean = loop {
                match child.try_wait() {
                    Ok(Some(_)) => break true,
                    Ok(None) if Instant::now() < grace => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break false;
                    }
                }
            };
            self.log.write(&FleetLine::Stopped {
                t: now_micros(),
                instance: slot.instance.clone(),
                clean,
            });
        }
    }
}

/// Installs the scenario's grants: each approved at the server's admin
/// endpoint, its code exchanged over HTTP; returns their records (JSON) to
/// write to the store.
fn seed(s: &Scenario, base_url: &str) -> Result<Vec<(String, String)>, String> {
    let agent = agent();
    let mut records = Vec::with_capacity(s.grants);
    for i in 0..s.grants {
        let grant = format!("loc-{i:03}");
        let code = agent
            .post(&format!("{base_url}/admin/approve?location={grant}"))
            .send_empty()
            .map_err(|e| format!("approve {grant}: {e}"))?
            .into_body()
            .read_to_string()
            .map_err(|e| format!("approve {grant}: {e}"))?;
        let request = code_exchange(CLIENT_ID, CLIENT_SECRET, base_url, &code)?;
        let sent_at = SystemTime::now();
        let response = crate::worker::send(&agent, "seeder", i as u64, request)?;
        let record = installed_record(&grant, response, sent_at, s.seed_version)?;
        records.push((grant, record));
    }
    Ok(records)
}

fn fetch_newest(base_url: &str) -> Result<BTreeMap<String, String>, String> {
    let body = agent()
        .get(&format!("{base_url}/admin/newest"))
        .call()
        .map_err(|e| format!("newest: {e}"))?
        .into_body()
        .read_to_string()
        .map_err(|e| format!("newest: {e}"))?;
    serde_json::from_str(&body).map_err(|e| format!("newest: {e}"))
}
