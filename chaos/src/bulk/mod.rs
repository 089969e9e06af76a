//! The fleet scenario: three marketplace-app processes
//! ([`Driver::App`](crate::worker::Driver::App)) on one Postgres, the fake
//! HighLevel server (`chaos-fake`, the `hoopai-fake` command) on loopback
//! with its rate limit on, and a bulk install of many locations delivered
//! as INSTALL webhooks to random instances ([`deliver`]), some repeated to
//! another instance, some with the answer lost; with or without SIGKILLs
//! of random instances.
//!
//! The orchestrator seeds the Company grant (the code exchange, its record
//! written to the store) before the apps start, so that every instance
//! holds it; watches the store until every location is ready; scrapes every
//! instance's metrics ([`scrape`]) during the run and at the end; and
//! recovers what a kill lost the way an app does after missed deliveries:
//! once the fleet is idle with locations missing, one instance is restarted
//! with an installed-locations sync. [`report`] checks the run.

pub mod deliver;
pub mod report;
pub mod scrape;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::fleet::{CLIENT_ID, CLIENT_SECRET};
use crate::journal::{FleetLine, Journal, now_micros};
use crate::service_store::{RunStore, StoreKind};
use crate::worker::app::Ports;
use deliver::{Plan, Targets};
use report::RunFacts;
use scrape::Scrape;

/// The Company of the bulk install.
pub const COMPANY: &str = "company-1";
/// The lease the apps ask for.
pub const APP_LEASE: Duration = Duration::from_secs(6);
/// The orchestrator's log of delivery attempts.
pub const DELIVERIES_LOG: &str = "deliveries.log";
/// The scrapes of every instance's metrics.
pub const SCRAPES: &str = "scrapes.jsonl";

/// The paths of the binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `chaos-fake`.
    pub fake: PathBuf,
    /// `chaos-worker`.
    pub worker: PathBuf,
}

/// One fleet scenario's parameters.
#[derive(Debug, Clone)]
pub struct BulkScenario {
    /// Its name (also its folder).
    pub name: String,
    /// Whether instances are killed and restarted at random.
    pub kills: bool,
    /// Locations of the bulk install.
    pub locations: usize,
    /// Locations per INSTALL webhook.
    pub per_webhook: usize,
    /// App processes.
    pub apps: usize,
    /// The fake's rate limit (and every app's budget): requests per
    /// [`rate_interval`](Self::rate_interval).
    pub rate_max: u32,
    /// The rate limit's interval (whole seconds: the fake's flag).
    pub rate_interval: Duration,
    /// The budget's margin: a spent token comes back one interval and this
    /// after it was handed out.
    pub budget_margin: Duration,
    /// Time between two webhooks.
    pub gap: Duration,
    /// Chance that a webhook is repeated to another instance.
    pub p_repeat: f64,
    /// Chance that a webhook's first answer is lost.
    pub p_drop: f64,
    /// Seed of every draw.
    pub seed: u64,
    /// Time between kills, drawn from this range.
    pub kill_gap: (Duration, Duration),
    /// The most kills in a run.
    pub max_kills: usize,
    /// The Postgres server.
    pub postgres: String,
    /// The longest a run may take before it fails.
    pub limit: Duration,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl BulkScenario {
    /// The defaults: 1,000 locations in INSTALL webhooks of 50, one every
    /// 20 ms, to three apps; the fake's limit (and the apps' budget) 200
    /// requests per 8 s, the budget's margin 150 ms; 20% repeated, 15% with
    /// the answer lost; with kills, one every 2.5 to 5 s in the first four
    /// fifths of the floor, at most 4. The environment changes some:
    /// `FLEET_LOCATIONS`, `FLEET_SEED`.
    #[must_use]
    pub fn new(name: &str, kills: bool, postgres: String) -> Self {
        let seed = env_u64("FLEET_SEED").unwrap_or_else(|| {
            crate::fingerprint::fingerprint(name)
                .chars()
                .fold(7u64, |a, c| a.wrapping_mul(31).wrapping_add(u64::from(c)))
        });
        BulkScenario {
            name: name.to_owned(),
            kills,
            locations: env_u64("FLEET_LOCATIONS").map_or(1000, |v| v.max(1) as usize),
            per_webhook: 50,
            apps: 3,
            rate_max: 200,
            rate_interval: Duration::from_secs(8),
            budget_margin: Duration::from_millis(150),
            gap: Duration::from_millis(20),
            p_repeat: 0.2,
            p_drop: 0.15,
            seed,
            kill_gap: (Duration::from_millis(2500), Duration::from_millis(5000)),
            max_kills: 4,
            postgres,
            limit: Duration::from_secs(180),
        }
    }

    /// The budget's floor: the least time from the first request to the
    /// last that `requests` take under the budget, `max` per interval, each
    /// spent token back one interval and the margin after it was handed
    /// out: `(ceil(requests / max) - 1) × (interval + margin)`.
    #[must_use]
    pub fn floor(&self, requests: usize) -> Duration {
        let windows = requests.div_ceil(self.rate_max as usize).max(1) - 1;
        (self.rate_interval + self.budget_margin) * u32::try_from(windows).unwrap_or(u32::MAX)
    }

    /// The location ids, as the fake names a bulk install's sub-accounts.
    #[must_use]
    pub fn location_ids(&self) -> Vec<String> {
        (1..=self.locations)
            .map(|i| format!("{COMPANY}-loc-{i}"))
            .collect()
    }
}

/// An app slot: the process running in it now, if any.
#[derive(Debug, Default)]
struct Slot {
    starts: usize,
    instance: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    ports: Option<Ports>,
}

/// Every child process of a run; dropping it kills and reaps them all.
#[derive(Debug)]
struct Processes {
    fake: Option<(Child, Option<ChildStdin>)>,
    slots: Vec<Slot>,
    log: Journal,
    store_args: Vec<OsString>,
    base_url: String,
    webhook_key: String,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            slot.stdin = None;
            if let Some(mut child) = slot.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some((mut fake, stdin)) = self.fake.take() {
            drop(stdin);
            let _ = fake.kill();
            let _ = fake.wait();
        }
    }
}

fn output(dir: &Path, name: &str) -> Result<std::fs::File, String> {
    std::fs::File::create(dir.join(name)).map_err(|e| format!("{name}: {e}"))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

fn get_json(url: &str) -> Result<serde_json::Value, String> {
    let text = agent()
        .get(url)
        .call()
        .map_err(|e| format!("{url}: {e}"))?
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{url}: {e}"))
}

/// Starts the fake: the bulk install of `s.locations` approved, the rate
/// limit on; returns it with its handoff document.
fn start_fake(
    s: &BulkScenario,
    bins: &Binaries,
    dir: &Path,
) -> Result<((Child, Option<ChildStdin>), serde_json::Value), String> {
    let handoff = dir.join("fake.handoff.json");
    let mut child = Command::new(&bins.fake)
        .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
        .arg("--bulk")
        .arg(format!("{COMPANY}:{}", s.locations))
        .arg("--rate-limit")
        .arg(format!("{}/{}", s.rate_max, s.rate_interval.as_secs()))
        .args(["--log-capacity", "100000", "--max-connections", "512"])
        .args(["--exit-on-stdin-close", "--quiet"])
        .arg("--handoff")
        .arg(&handoff)
        .stdin(Stdio::piped())
        .stdout(output(dir, "fake.out")?)
        .stderr(output(dir, "fake.err")?)
        .spawn()
        .map_err(|e| format!("chaos-fake: {e}"))?;
    let stdin = child.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(&handoff)
            && let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text)
        {
            // It holds the client secret and the install's code: kept no
            // longer than read (the fake removes it only when it stops by
            // itself, and the run may end with a kill).
            let _ = std::fs::remove_file(&handoff);
            return Ok(((child, stdin), doc));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("chaos-fake exited at start-up: {status}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("chaos-fake did not come up within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Company grant's record: its code exchanged at the fake (`user_type`
/// Company), as the app's callback route would.
fn company_record(base_url: &str, code: &str) -> Result<String, String> {
    let config = hoopai_oauth::Config::builder(CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned())
        .base_url(base_url.to_owned())
        .build()
        .map_err(|e| e.to_string())?;
    let request = hoopai_oauth::token_request(
        &config,
        &hoopai_oauth::TokenRequest::authorization_code(code)
            .user_type(hoopai_oauth::UserType::Company),
    )
    .map_err(|e| e.to_string())?;
    let sent_at = SystemTime::now();
    let response = crate::worker::send(&agent(), "orchestrator", 0, request)?;
    crate::worker::engine::installed_record(COMPANY, response, sent_at, 1)
}

impl Processes {
    /// Starts the app of slot `index`, waits for its ports.
    fn start_app(
        &mut self,
        index: usize,
        s: &BulkScenario,
        bins: &Binaries,
        dir: &Path,
        sync: bool,
    ) -> Result<(), String> {
        let slot = &mut self.slots[index];
        let instance = format!("w{}.{}", index + 1, slot.starts);
        slot.starts += 1;
        let ports_file = dir.join(format!("{instance}.ports.json"));
        let seed = s.seed ^ ((index as u64 + 1) << 32) ^ slot.starts as u64;
        let mut command = Command::new(&bins.worker);
        command
            .args(&self.store_args)
            .args(["--server", &self.base_url])
            .args(["--instance", &instance])
            .args(["--driver", "app"])
            .arg("--log")
            .arg(dir.join(format!("{}{instance}.log", crate::files::WORKER_PREFIX)))
            .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
            .args(["--seed", &seed.to_string()])
            .args([
                "--request-timeout-ms",
                "3000",
                "--lease-ms",
                &APP_LEASE.as_millis().to_string(),
            ])
            .args(["--budget-max", &s.rate_max.to_string()])
            .args([
                "--budget-interval-ms",
                &s.rate_interval.as_millis().to_string(),
            ])
            .args([
                "--budget-margin-ms",
                &s.budget_margin.as_millis().to_string(),
            ])
            .args(["--webhook-key", &self.webhook_key])
            .arg("--ports-file")
            .arg(&ports_file);
        if sync {
            command.args(["--sync-company", COMPANY]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(output(dir, &format!("{instance}.out"))?)
            .stderr(output(dir, &format!("{instance}.err"))?)
            .spawn()
            .map_err(|e| format!("chaos-worker: {e}"))?;
        slot.stdin = child.stdin.take();
        self.log.write(&FleetLine::Started {
            t: now_micros(),
            instance: instance.clone(),
            pid: child.id(),
        });
        slot.child = Some(child);
        slot.instance = instance.clone();
        slot.ports = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports_file)
                && let Ok(ports) = serde_json::from_str::<Ports>(&text)
            {
                slot.ports = Some(ports);
                return Ok(());
            }
            if let Some(child) = &mut slot.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("{instance} exited at start-up: {status}"));
            }
            if Instant::now() > deadline {
                return Err(format!("{instance} did not listen within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the app of slot `index`.
    fn kill(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.stdin = None;
        slot.ports = None;
        if let Some(mut child) = slot.child.take() {
            let _ = child.kill();
            self.log.write(&FleetLine::Killed {
                t: now_micros(),
                instance: slot.instance.clone(),
            });
            let _ = child.wait();
        }
    }

    /// Closes the app's standard input and waits for it to exit (killing
    /// it after 30 s).
    fn stop(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.stdin = None;
        slot.ports = None;
        let Some(mut child) = slot.child.take() else {
            return;
        };
        let grace = Instant::now() + Duration::from_secs(30);
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

    /// The targets of deliveries now.
    fn targets(&self) -> Vec<Option<(String, SocketAddr)>> {
        self.slots
            .iter()
            .map(|s| s.ports.as_ref().map(|p| (s.instance.clone(), p.app)))
            .collect()
    }

    /// Scrapes every running app.
    fn scrape_all(&self) -> Vec<Result<Scrape, String>> {
        self.slots
            .iter()
            .filter_map(|s| {
                s.ports
                    .as_ref()
                    .map(|p| scrape::scrape(&s.instance, p.metrics))
            })
            .collect()
    }
}

/// Location records in the store now that hold a refresh token: ready
/// locations. (In shared-store mode a mint is preceded by a record that
/// holds only the lease of the instance minting.)
async fn ready_count(client: &tokio_postgres::Client) -> Result<usize, String> {
    let row = client
        .query_one(
            "SELECT count(*) FROM hoopai_grants WHERE grant_id <> $1 \
             AND (record::jsonb #>> '{tokens,token,refresh_token}') IS NOT NULL",
            &[&COMPANY],
        )
        .await
        .map_err(|e| format!("postgres: {e}"))?;
    let n: i64 = row.get(0);
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Runs `s` in `dir` (emptied first); every process is stopped when it
/// returns, also on error.
///
/// # Errors
/// A process could not start, the store or the fake failed, a webhook found
/// no instance, or the locations were not all ready within `s.limit`.
pub fn run(s: &BulkScenario, bins: &Binaries, dir: &Path) -> Result<RunFacts, String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = Journal::create(&dir.join(crate::files::FLEET_LOG)).map_err(|e| e.to_string())?;
    let kind = StoreKind::Postgres {
        url: s.postgres.clone(),
    };
    let store = RunStore::prepare(&kind, &s.name)?;
    let store_args = store.worker_args(dir);
    let schema = store.schema().unwrap_or_default().to_owned();
    let (fake, handoff) = start_fake(s, bins, dir)?;
    let text = |k: &str| -> Result<String, String> {
        handoff
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("the fake's handoff has no {k}"))
    };
    let base_url = text("baseUrl")?;
    let code = text("code")?;
    let webhook_key = handoff
        .pointer("/webhookPublicKey/spkiBase64")
        .and_then(|v| v.as_str())
        .ok_or("the fake's handoff has no webhook key")?
        .to_owned();
    let mut procs = Processes {
        fake: Some(fake),
        slots: (0..s.apps).map(|_| Slot::default()).collect(),
        log,
        store_args,
        base_url: base_url.clone(),
        webhook_key,
    };
    store.seed(
        dir,
        &[(COMPANY.to_owned(), company_record(&base_url, &code)?)],
    )?;
    for index in 0..s.apps {
        procs.start_app(index, s, bins, dir, false)?;
    }
    // The code exchange's request leaves the fake's window before the
    // first mint.
    std::thread::sleep(s.rate_interval);

    let targets: Targets = Arc::new(Mutex::new(procs.targets()));
    let plan = Plan {
        fake: base_url.clone(),
        company: COMPANY.to_owned(),
        batches: s
            .location_ids()
            .chunks(s.per_webhook)
            .map(<[String]>::to_vec)
            .collect(),
        gap: s.gap,
        p_repeat: s.p_repeat,
        p_drop: s.p_drop,
        seed: s.seed,
    };
    let deliveries =
        Journal::create(&dir.join(DELIVERIES_LOG)).map_err(|e| format!("deliveries: {e}"))?;
    let began = Instant::now();
    let began_at = now_micros();
    let courier = {
        let (plan, targets) = (plan.clone(), Arc::clone(&targets));
        std::thread::spawn(move || deliver::deliver_all(&plan, &targets, &deliveries))
    };
    let scrapes = Journal::create(&dir.join(SCRAPES)).map_err(|e| format!("scrapes: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let client = runtime.block_on(async {
        let mut config: tokio_postgres::Config = s.postgres.parse().map_err(|e| format!("{e}"))?;
        config.options(format!("-c search_path={schema}"));
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("postgres: {e}"))?;
        tokio::spawn(connection);
        Ok::<_, String>(client)
    })?;

    let mut rng = fastrand::Rng::with_seed(s.seed ^ 0x0000_0c4a_05c4_11ed);
    let mut kills = 0;
    let kill_until = began + s.floor(s.locations) * 4 / 5;
    // The first kill while the webhooks are still being delivered.
    let mut next_kill = began + Duration::from_millis(rng.u64(100..=500));
    let mut next_scrape = began;
    let mut courier = Some(courier);
    let mut delivered = None;
    let (mut ready, mut ready_at, mut last_change) = (0, None, Instant::now());
    let mut idle_scrapes = 0;
    let mut synced_by = None;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if began.elapsed() > s.limit {
            return Err(format!(
                "{ready} of {} locations ready after {:?}",
                s.locations, s.limit
            ));
        }
        if courier
            .as_ref()
            .is_some_and(std::thread::JoinHandle::is_finished)
            && let Some(handle) = courier.take()
        {
            delivered = Some(handle.join().map_err(|_| "the courier panicked")??);
        }
        let now_ready = runtime.block_on(ready_count(&client))?;
        if now_ready != ready {
            ready = now_ready;
            last_change = Instant::now();
        }
        if ready >= s.locations && ready_at.is_none() {
            ready_at = Some(began.elapsed());
        }
        let mut idle = None;
        if Instant::now() >= next_scrape {
            next_scrape = Instant::now() + Duration::from_secs(1);
            let mut busy = 0;
            for scraped in procs.scrape_all() {
                match scraped {
                    Ok(scrape) => {
                        busy += scrape.count("hoopai_sends_waiting_for_budget", &[])
                            + scrape.count("hoopai_requests_in_flight", &[])
                            + scrape.count("hoopai_records_unwritten", &[]);
                        scrapes.write(&scrape);
                    }
                    Err(_) => busy += 1,
                }
            }
            idle = Some(busy == 0);
        }
        if delivered.is_some() && ready >= s.locations {
            break;
        }
        if s.kills
            && kills < s.max_kills
            && Instant::now() < kill_until
            && Instant::now() >= next_kill
        {
            let index = rng.usize(..procs.slots.len());
            procs.kill(index);
            *targets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = procs.targets();
            kills += 1;
            std::thread::sleep(Duration::from_millis(rng.u64(200..=800)));
            procs.start_app(index, s, bins, dir, false)?;
            *targets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = procs.targets();
            next_kill = Instant::now() + gap(&mut rng, s.kill_gap);
        }
        // Locations missing, and the fleet idle for three scrapes with
        // nothing new stored: restart one instance with an
        // installed-locations sync, as an app does after missed deliveries.
        match idle {
            Some(true) => idle_scrapes += 1,
            Some(false) => idle_scrapes = 0,
            None => {}
        }
        if delivered.is_some()
            && synced_by.is_none()
            && idle_scrapes >= 3
            && last_change.elapsed() > Duration::from_secs(2)
        {
            procs.stop(0);
            procs.start_app(0, s, bins, dir, true)?;
            *targets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = procs.targets();
            synced_by = Some((procs.slots[0].instance.clone(), now_micros()));
            idle_scrapes = 0;
        }
    }
    let ran = began.elapsed();
    // Let the fleet settle (a mint of a killed instance's redelivery, a
    // late write), then the last scrape of every survivor.
    std::thread::sleep(Duration::from_secs(1));
    let last: Vec<Scrape> = procs.scrape_all().into_iter().collect::<Result<_, _>>()?;
    for scrape in &last {
        scrapes.write(scrape);
    }
    for index in 0..procs.slots.len() {
        procs.stop(index);
    }
    let stats = get_json(&format!("{base_url}/_fake/stats"))?;
    let fake_log = fetch_log(&base_url)?;
    let mut text = String::new();
    for entry in &fake_log {
        text.push_str(&entry.to_string());
        text.push('\n');
    }
    std::fs::write(dir.join("fake-log.jsonl"), text).map_err(|e| format!("fake-log: {e}"))?;
    drop(procs);
    let records = runtime.block_on(async {
        let store = crate::worker::service::connect_postgres(&s.postgres, Some(&schema)).await?;
        read_records(&store).await
    })?;
    drop(client);
    store.finish(dir)?;
    Ok(RunFacts {
        dir: dir.to_owned(),
        began: began_at,
        ready_after: ready_at,
        ran,
        kills,
        webhooks: delivered.unwrap_or(0),
        synced_by,
        last_scrapes: last,
        fake_stats: stats,
        fake_log,
        records,
    })
}

fn gap(rng: &mut fastrand::Rng, (lo, hi): (Duration, Duration)) -> Duration {
    let (lo, hi) = (
        lo.as_millis() as u64,
        hi.as_millis().max(lo.as_millis()) as u64,
    );
    Duration::from_millis(rng.u64(lo..=hi))
}

/// Every entry of the fake's request log, page by page, once each (by its
/// `seq`).
fn fetch_log(base_url: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut entries = std::collections::BTreeMap::new();
    let mut since = 0u64;
    loop {
        let page = get_json(&format!("{base_url}/_fake/log?since={since}&limit=10000"))?;
        if page.get("evicted").and_then(serde_json::Value::as_u64) != Some(0) {
            return Err("the fake's log evicted entries".into());
        }
        let list = page
            .get("entries")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        let before = entries.len();
        for entry in list {
            let seq = entry.get("seq").and_then(serde_json::Value::as_u64);
            if let Some(seq) = seq {
                since = since.max(seq);
                entries.insert(seq, entry);
            }
        }
        if entries.len() == before {
            return Ok(entries.into_values().collect());
        }
    }
}

async fn read_records<S: hoopai_oauth_service::GrantStore>(
    store: &S,
) -> Result<Vec<hoopai_oauth::GrantRecord>, String> {
    let mut records = Vec::new();
    let mut after: Option<hoopai_oauth::GrantId> = None;
    loop {
        let page = store
            .load_page(after.as_ref(), 1000)
            .await
            .map_err(|e| format!("store: {e}"))?;
        if let Some(corrupt) = page.corrupt.first() {
            return Err(format!("the store holds an unreadable row: {corrupt}"));
        }
        records.extend(page.records);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(records),
        }
    }
}
