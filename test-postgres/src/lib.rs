//! The Postgres server of the workspace's tests.
//!
//! [`database`] hands a test the URL of a database to use:
//!
//! - with `HOOPAI_TEST_POSTGRES_URL` set (CI sets it: `.ci/run` starts a
//!   server with `.ci/postgres.sh`), that URL, as it is; the tests isolate
//!   themselves in schemas of their own;
//! - else, when PostgreSQL is installed (`initdb` and `postgres` on the
//!   `PATH`, or in Debian's `/usr/lib/postgresql/<version>/bin`), a fresh
//!   database (`CREATE DATABASE` with a unique name) on a throwaway server
//!   this process starts on the first call: a cluster in a temporary
//!   folder (`initdb --no-sync`, trust authentication), listening on a free
//!   loopback port and a unix socket in that folder, without `fsync`;
//! - else `None`, after one line saying which program was missing and how
//!   to set the URL. Under CI (`CI` set) that fails the test instead.
//!
//! **The server never outlives the test process.** It runs under a small
//! shell watchdog that checks every 200 ms that the test process is alive;
//! once it is gone (the tests ended, failed, or were killed, even with
//! `SIGKILL`), the watchdog stops the server (`SIGQUIT`: immediate
//! shutdown) and deletes the folder. Ctrl-C reaches the server too (same
//! process group). A folder left by a watchdog that was itself killed is
//! removed, and its server stopped, by the next test process that starts
//! one.
//!
//! PostgreSQL refuses to run as root: as root, the cluster belongs to the
//! `postgres` user (or `nobody` when there is none), and `initdb` and the
//! server run through `runuser`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The variable naming a server of your own.
pub const URL_VAR: &str = "HOOPAI_TEST_POSTGRES_URL";

/// The prefix of the temporary folders of the servers started here.
const DIR_PREFIX: &str = "hoopai-pg-";

/// The URL of a database for `test`, or `None` (with one printed line)
/// when there is no server: see the [crate docs](crate).
///
/// # Panics
/// Under CI (`CI` set) when there is no server; when PostgreSQL is
/// installed but its server cannot be started (with its log).
#[must_use]
pub fn database(test: &str) -> Option<String> {
    if let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    match server() {
        Ok(server) => Some(server.create_database(test)),
        Err(missing) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{URL_VAR} is not set under CI, and {missing}; `.ci/run` starts a server and sets it"
            );
            eprintln!(
                "SKIPPED {test}: {missing}; install PostgreSQL, or set {URL_VAR}=postgres://user@host:port/database"
            );
            None
        }
    }
}

/// Why there is no server: which program is missing.
type Missing = String;

/// The server of this process, started on the first call.
fn server() -> Result<&'static Server, Missing> {
    static SERVER: OnceLock<Result<Server, Missing>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            // Off any async runtime the caller runs in.
            std::thread::spawn(Server::start)
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A throwaway server on loopback.
struct Server {
    port: u16,
    /// Serializes `CREATE DATABASE`s.
    admin: Mutex<()>,
    databases: AtomicU32,
    /// The watchdog: it stops the server when this process is gone.
    _watchdog: Mutex<Child>,
}

impl Server {
    fn start() -> Result<Server, Missing> {
        let bin = binaries()?;
        let user = RunAs::current()?;
        let temp = user.temp_dir();
        remove_stale(&temp);
        let began = Instant::now();
        for attempt in 1..=3 {
            let dir = temp.join(format!(
                "{DIR_PREFIX}{}-{}-{attempt}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
            ));
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            user.give(&dir);
            let data = dir.join("data");
            let initdb = user
                .command(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
                .args(["--no-locale", "--no-sync"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.join("initdb").display()));
            if !initdb.status.success() {
                let _ = std::fs::remove_dir_all(&dir);
                panic!(
                    "initdb failed ({}):\n{}{}",
                    initdb.status,
                    String::from_utf8_lossy(&initdb.stdout),
                    String::from_utf8_lossy(&initdb.stderr)
                );
            }
            let initdb_took = began.elapsed();
            let port = free_port();
            let mut watchdog = watchdog(&user, &bin, &dir, port);
            match wait_ready(port, &mut watchdog, &dir) {
                Ok(()) => {
                    eprintln!(
                        "hoopai-test-postgres: PostgreSQL ({}) on 127.0.0.1:{port}, in {} (initdb {:.1} s, ready after {:.1} s); stopped when this process exits",
                        bin.display(),
                        dir.display(),
                        initdb_took.as_secs_f64(),
                        began.elapsed().as_secs_f64()
                    );
                    return Ok(Server {
                        port,
                        admin: Mutex::new(()),
                        databases: AtomicU32::new(0),
                        _watchdog: Mutex::new(watchdog),
                    });
                }
                // Another process took the port first: again, elsewhere.
                Err(log) if attempt < 3 && log.contains("already in use") => {}
                Err(log) => panic!("the PostgreSQL server did not start:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// A new database, with a name made of `test`, and its URL.
    fn create_database(&self, test: &str) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let mut name: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(48)
            .collect();
        name = format!("t{n}_{name}");
        let port = self.port;
        let _one = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let sql = format!("CREATE DATABASE {name}");
        std::thread::spawn(move || run_sql(port, "postgres", &sql))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        format!("postgres://postgres@127.0.0.1:{port}/{name}")
    }
}

/// Runs `sql` in `database` of the server on `port`.
fn run_sql(port: u16, database: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the admin connection");
    runtime.block_on(async {
        let (client, connection) = config(port, database)
            .connect(tokio_postgres::NoTls)
            .await?;
        let driver = tokio::spawn(connection);
        let done = client.batch_execute(sql).await;
        drop(client);
        let _ = driver.await;
        done
    })
}

fn config(port: u16, database: &str) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname(database)
        .connect_timeout(Duration::from_secs(5));
    config
}

/// The folder holding `initdb` and `postgres`: the `PATH`'s, else the
/// newest of `/usr/lib/postgresql/*/bin`.
fn binaries() -> Result<PathBuf, Missing> {
    let holds = |dir: &Path, name: &str| dir.join(name).is_file();
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    // Symbolic links into a version's folder (`/usr/local/bin/initdb`):
    // that folder, which holds the rest.
    let linked: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::canonicalize(d.join("initdb")).ok())
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    dirs.splice(0..0, linked);
    let mut debian: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let version = e
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|p| p.parse().unwrap_or(0))
                .collect();
            (version, e.path().join("bin"))
        })
        .collect();
    debian.sort();
    dirs.extend(debian.into_iter().rev().map(|(_, dir)| dir));
    if let Some(dir) = dirs
        .iter()
        .find(|d| holds(d, "initdb") && holds(d, "postgres"))
    {
        return Ok(dir.clone());
    }
    let missing = if dirs.iter().any(|d| holds(d, "initdb")) {
        "postgres"
    } else {
        "initdb"
    };
    Err(format!(
        "no PostgreSQL server to start (`{missing}` is neither on the PATH nor in /usr/lib/postgresql/*/bin)"
    ))
}

/// Who runs the server: this process's user, or another one when it is root.
struct RunAs {
    /// `Some((name, uid, gid))` when running as root.
    other: Option<(String, u32, u32)>,
}

impl RunAs {
    fn current() -> Result<RunAs, Missing> {
        let uid = std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid());
        if uid != 0 {
            return Ok(RunAs { other: None });
        }
        if !Path::new("/usr/sbin/runuser").exists() && !Path::new("/sbin/runuser").exists() {
            return Err(
                "PostgreSQL refuses to run as root and `runuser` was not found to run it as another user"
                    .to_owned(),
            );
        }
        for name in ["postgres", "nobody"] {
            let id = |flag: &str| -> Option<u32> {
                let out = Command::new("id").args([flag, name]).output().ok()?;
                String::from_utf8(out.stdout).ok()?.trim().parse().ok()
            };
            if let (Some(uid), Some(gid)) = (id("-u"), id("-g")) {
                return Ok(RunAs {
                    other: Some((name.to_owned(), uid, gid)),
                });
            }
        }
        Err("PostgreSQL refuses to run as root and there is no `postgres` or `nobody` user to run it as".to_owned())
    }

    /// `program`, run as this user.
    fn command(&self, program: &Path) -> Command {
        match &self.other {
            None => Command::new(program),
            Some((name, _, _)) => {
                let mut command = Command::new("runuser");
                command.args(["-u", name, "--"]).arg(program);
                command
            }
        }
    }

    /// Makes `path` this user's.
    fn give(&self, path: &Path) {
        if let Some((_, uid, gid)) = &self.other {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
        }
    }

    /// A temporary folder the user can reach.
    fn temp_dir(&self) -> PathBuf {
        let temp = std::env::temp_dir();
        let open_to_all = std::fs::metadata(&temp).is_ok_and(|m| m.mode() & 0o001 != 0);
        if self.other.is_some() && !open_to_all {
            PathBuf::from("/tmp")
        } else {
            temp
        }
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The watchdog's script: starts the server (the rest of its arguments) in
/// the background, then waits for this process (`$1`) or the server to
/// end, stops the server and deletes its folder (`$2`). A server that
/// ended by itself leaves its log beside the folder, as `<folder>.log`.
const WATCHDOG: &str = r#"
parent=$1; dir=$2; shift 2
"$@" >"$dir/server.log" 2>&1 &
pg=$!
stop() {
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
    if [ -n "$pid" ]; then kill -QUIT "$pid" 2>/dev/null; fi
    kill -QUIT "$pg" 2>/dev/null
    wait "$pg" 2>/dev/null
    if [ -n "$pid" ]; then
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
    rm -rf "$dir"
    exit 0
}
trap stop TERM INT HUP
while kill -0 "$parent" 2>/dev/null && kill -0 "$pg" 2>/dev/null; do sleep 0.2; done
if kill -0 "$parent" 2>/dev/null; then cp "$dir/server.log" "$dir.log" 2>/dev/null; fi
stop
"#;

/// Starts the server on `port` under the watchdog.
fn watchdog(user: &RunAs, bin: &Path, dir: &Path, port: u16) -> Child {
    let postgres = user.command(&bin.join("postgres"));
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(dir)
        .arg(postgres.get_program())
        .args(postgres.get_args())
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.spawn().expect("start the server's watchdog (sh)")
}

/// Waits until the server on `port` takes connections; its log if it ends
/// first or takes over a minute.
fn wait_ready(port: u16, watchdog: &mut Child, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(_)) = watchdog.try_wait() {
            let beside = dir.with_extension("log");
            let mut log = String::new();
            let _ = std::fs::File::open(&beside).and_then(|mut f| f.read_to_string(&mut log));
            let _ = std::fs::remove_file(&beside);
            return Err(log);
        }
        if run_sql(port, "postgres", "SELECT 1").is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let mut log = String::new();
            let _ = std::fs::File::open(dir.join("server.log"))
                .and_then(|mut f| f.read_to_string(&mut log));
            return Err(format!("not ready after 60 s\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes the folders of servers whose test process is gone, stopping
/// their server if it still runs (its watchdog was killed).
fn remove_stale(temp: &Path) {
    let alive = |pid: &str| Path::new("/proc").join(pid).exists();
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
            continue;
        };
        let owner = rest.split('-').next().unwrap_or("");
        if owner.is_empty() || alive(owner) {
            continue;
        }
        let dir = entry.path();
        if let Ok(pid) = std::fs::read_to_string(dir.join("data/postmaster.pid"))
            && let Some(pid) = pid.lines().next()
        {
            // Only a postgres of that folder (the pid may be reused).
            let cmdline =
                std::fs::read(Path::new("/proc").join(pid).join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("postgres") && cmdline.contains(&*dir.to_string_lossy()) {
                let _ = Command::new("kill").args(["-QUIT", pid]).status();
                let until = Instant::now() + Duration::from_secs(10);
                while alive(pid) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(dir.with_extension("log"));
    }
}
