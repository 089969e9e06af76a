//! Running the `hoopai-fake` binary as a process of its own and talking to it
//! over loopback HTTP (ureq), as an app under test would.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hoopai_oauth::Config;
use serde_json::Value;

/// Insta settings that put every snapshot in the repository's top-level
/// `snapshots/` folder.
pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    s.set_prepend_module_to_snapshot(true);
    s.set_omit_expression(true);
    s
}

/// `insta::assert_snapshot!` with [`settings`].
#[macro_export]
macro_rules! snap {
    ($($t:tt)*) => {
        $crate::common::settings().bind(|| insta::assert_snapshot!($($t)*))
    };
}

/// A running `hoopai-fake`.
pub struct Fake {
    child: Child,
    stdin: Option<ChildStdin>,
    dir: tempfile::TempDir,
    /// The handoff file as written.
    pub handoff: Value,
    pub base: String,
    pub agent: ureq::Agent,
}

/// What the process printed once it stopped.
pub struct Exited {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Fake {
    /// Starts the binary with `args`, plus a handoff file and
    /// `--exit-on-stdin-close`, and waits for its handoff file.
    pub fn start(args: &[&str]) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let handoff_path = dir.path().join("fake.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hoopai-fake"))
            .args(args)
            .arg("--handoff")
            .arg(&handoff_path)
            .arg("--exit-on-stdin-close")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let handoff = loop {
            if let Ok(text) = std::fs::read_to_string(&handoff_path) {
                break serde_json::from_str::<Value>(&text).unwrap();
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("hoopai-fake exited ({status}) before its handoff: {err}");
            }
            assert!(Instant::now() < deadline, "no handoff file within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        let base = handoff["baseUrl"].as_str().unwrap().to_owned();
        let stdin = child.stdin.take();
        Fake {
            child,
            stdin,
            dir,
            handoff,
            base,
            agent: agent(),
        }
    }

    /// Stops the fake (closes its standard input) and returns what it printed.
    pub fn stop(mut self) -> Exited {
        drop(self.stdin.take());
        let (tx, rx) = mpsc::channel();
        let mut out = self.child.stdout.take().unwrap();
        let mut err = self.child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let (mut o, mut e) = (String::new(), String::new());
            out.read_to_string(&mut o).unwrap();
            err.read_to_string(&mut e).unwrap();
            tx.send((o, e)).unwrap();
        });
        let (stdout, stderr) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the fake did not stop");
        let code = self.child.wait().unwrap().code();
        Exited {
            code,
            stdout,
            stderr,
        }
    }

    /// The path of the handoff file.
    pub fn handoff_path(&self) -> PathBuf {
        self.dir.path().join("fake.json")
    }

    /// A config for the crate's request builders, aimed at the fake.
    pub fn config(&self) -> Config {
        Config::builder(
            self.handoff["clientId"].as_str().unwrap(),
            self.handoff["clientSecret"].as_str().unwrap(),
        )
        .base_url(&self.base)
        .build()
        .unwrap()
    }

    /// Sends a request built by the crate (or by hand) with ureq.
    pub fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, ureq::Error> {
        let response = self.agent.run(request)?;
        let (parts, mut body) = response.into_parts();
        let bytes = body.with_config().limit(1 << 20).read_to_vec()?;
        Ok(http::Response::from_parts(parts, bytes))
    }

    /// An admin call: `(status, JSON body)`.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}/_fake/{path}", self.base))
            .header("content-type", "application/json")
            .body(body.map_or_else(Vec::new, |b| b.to_string().into_bytes()))
            .unwrap();
        let response = self.send(request).unwrap();
        let value = serde_json::from_slice(response.body()).unwrap();
        (response.status().as_u16(), value)
    }

    /// The code of install `i` in the handoff.
    pub fn code(&self, i: usize) -> String {
        self.handoff["installs"][i]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with `args` (for startup errors).
pub fn run(args: &[&str]) -> Exited {
    let output = Command::new(env!("CARGO_BIN_EXE_hoopai-fake"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Exited {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A ureq agent that hands every status back and follows no redirect.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// The JSON body of an answer.
pub fn body(response: &http::Response<Vec<u8>>) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

/// A webhook receiver on a loopback port: every delivery's headers and
/// body, answered `200`.
pub struct Receiver {
    pub url: String,
    pub deliveries: mpsc::Receiver<(http::HeaderMap, Vec<u8>)>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut headers = http::HeaderMap::new();
                for h in request.headers() {
                    headers.append(
                        http::HeaderName::from_bytes(h.field.as_str().as_str().as_bytes()).unwrap(),
                        http::HeaderValue::from_str(h.value.as_str()).unwrap(),
                    );
                }
                let mut bytes = Vec::new();
                request.as_reader().read_to_end(&mut bytes).unwrap();
                let _ = request.respond(tiny_http::Response::from_string("ok"));
                if tx.send((headers, bytes)).is_err() {
                    break;
                }
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/webhooks/highlevel"),
            deliveries: rx,
        }
    }

    pub fn next(&self) -> (http::HeaderMap, Vec<u8>) {
        self.deliveries
            .recv_timeout(Duration::from_secs(10))
            .expect("no webhook delivered")
    }
}
