//! Webhook deliveries as HighLevel makes them to an app behind a load
//! balancer: each INSTALL to a random instance, some repeated to another
//! instance, some with the answer lost (the connection closed unread) and
//! retried on another instance, every failure (no answer, a 5xx) retried
//! on another instance until one answers 2xx.
//!
//! The fake signs every delivery (`POST /_fake/webhooks`). A plain
//! delivery is the fake's own, to the instance drawn; for one whose answer
//! is lost, the fake delivers to a loopback sink of the orchestrator, which
//! answers `200` and keeps nothing: the orchestrator then sends the signed
//! body itself and closes the connection without reading the answer. Every
//! attempt is a line of `deliveries.log`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::journal::{Journal, Micros, now_micros};

/// One delivery attempt, a line of `deliveries.log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it was answered (or failed).
    pub t: Micros,
    /// The webhook's number in the plan (0, 1, …).
    pub n: usize,
    /// Its `webhookId`.
    pub webhook: String,
    /// The instance it went to.
    pub to: String,
    /// `fake` (the fake's own delivery), `dropped` (answer not read),
    /// `retry` (after a failure or a lost answer), `repeat` (a second
    /// delivery to another instance after a success).
    pub how: String,
    /// The status, if an answer was read.
    pub status: Option<u16>,
    /// The answer's first word (`accepted`, `duplicate`, …).
    pub answer: Option<String>,
    /// Why there was no answer.
    pub error: Option<String>,
}

/// The instances webhooks can go to now: `(instance, address)` per slot,
/// `None` while a slot's process is down.
pub type Targets = Arc<Mutex<Vec<Option<(String, SocketAddr)>>>>;

/// The plan of one run's deliveries.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The fake's base URL.
    pub fake: String,
    /// The Company of the bulk install.
    pub company: String,
    /// Each webhook's `locationIds`.
    pub batches: Vec<Vec<String>>,
    /// Time between two webhooks.
    pub gap: Duration,
    /// Chance that a webhook is repeated to another instance.
    pub p_repeat: f64,
    /// Chance that the answer of a webhook's first delivery is lost.
    pub p_drop: f64,
    /// Seed of the draws.
    pub seed: u64,
}

/// A loopback sink for the fake's deliveries of the webhooks whose answer
/// is to be lost: it reads each request and answers `200`.
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Sink {
    /// Listens on a loopback port, on a thread of its own.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub fn start() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("sink: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("sink: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    let _ = answer_ok(stream);
                }
            }
        });
        Ok(Sink { addr, stop })
    }

    /// Its URL.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Reads one request (headers and a `Content-Length` body) and answers 200.
fn answer_ok(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                break;
            }
        }
    }
    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into()
}

/// A signed delivery, as the fake made it.
struct Signed {
    body: String,
    signature: String,
    id: String,
}

/// What the fake answered of its own delivery.
struct FakeDelivery {
    signed: Signed,
    status: Option<u16>,
    error: Option<String>,
}

fn fake_deliver(
    agent: &ureq::Agent,
    plan: &Plan,
    batch: &[String],
    url: &str,
) -> Result<FakeDelivery, String> {
    let request = json!({
        "url": url,
        "event": "install-bulk",
        "companyId": plan.company,
        "locationIds": batch,
    });
    let mut answer = agent
        .post(&format!("{}/_fake/webhooks", plan.fake))
        .header("content-type", "application/json")
        .send(request.to_string().as_bytes())
        .map_err(|e| format!("/_fake/webhooks: {e}"))?;
    let text = answer
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("/_fake/webhooks: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("/_fake/webhooks: {e}"))?;
    let text = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let body = text("body").ok_or("/_fake/webhooks: no body")?;
    let signature = text("signature").ok_or("/_fake/webhooks: no signature")?;
    let id = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| {
            b.get("webhookId")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .ok_or("the fake's webhook has no webhookId")?;
    Ok(FakeDelivery {
        signed: Signed {
            body,
            signature,
            id,
        },
        status: value
            .get("status")
            .and_then(serde_json::Value::as_u64)
            .and_then(|s| u16::try_from(s).ok()),
        error: text("error"),
    })
}

/// Sends a signed body and reads the answer: its status and first word.
fn send(agent: &ureq::Agent, to: SocketAddr, signed: &Signed) -> Result<(u16, String), String> {
    let mut answer = agent
        .post(&format!("http://{to}/webhook"))
        .header("content-type", "application/json")
        .header(hoopai_oauth::SIGNATURE_HEADER, &signed.signature)
        .send(signed.body.as_bytes())
        .map_err(|e| e.to_string())?;
    let status = answer.status().as_u16();
    let text = answer
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, first_word(&text)))
}

fn first_word(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Sends a signed body and closes the connection without reading the
/// answer: the app may act on it, the sender never learns.
fn send_and_drop(to: SocketAddr, signed: &Signed) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    let head = format!(
        "POST /webhook HTTP/1.1\r\nhost: {to}\r\ncontent-type: application/json\r\n{}: {}\r\ncontent-length: {}\r\n\r\n",
        hoopai_oauth::SIGNATURE_HEADER,
        signed.signature,
        signed.body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(signed.body.as_bytes()))
        .map_err(|e| format!("write: {e}"))?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// Draws a live target, another than `not` if there is one.
fn pick(
    targets: &Targets,
    rng: &mut fastrand::Rng,
    not: Option<&str>,
) -> Option<(String, SocketAddr)> {
    for _ in 0..200 {
        let live: Vec<(String, SocketAddr)> = targets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .flatten()
            .cloned()
            .collect();
        let others: Vec<&(String, SocketAddr)> = live
            .iter()
            .filter(|(i, _)| Some(i.as_str()) != not)
            .collect();
        if let Some(choice) = (!others.is_empty()).then(|| others[rng.usize(..others.len())]) {
            return Some(choice.clone());
        }
        if !live.is_empty() && others.is_empty() {
            return Some(live[0].clone());
        }
        // Every instance is restarting: wait for one.
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Delivers every webhook of `plan` to `targets`, logging each attempt to
/// `log`; returns how many webhooks were delivered (answered 2xx at least
/// once).
///
/// # Errors
/// The fake refused to sign a webhook, or a webhook found no instance to
/// answer it 2xx within its attempts.
pub fn deliver_all(plan: &Plan, targets: &Targets, log: &Journal) -> Result<usize, String> {
    let agent = agent();
    let sink = Sink::start()?;
    let mut rng = fastrand::Rng::with_seed(plan.seed ^ 0x0de1_17e5);
    let began = std::time::Instant::now();
    for (n, batch) in plan.batches.iter().enumerate() {
        let at = plan.gap * u32::try_from(n).unwrap_or(u32::MAX);
        if let Some(wait) = at.checked_sub(began.elapsed()) {
            std::thread::sleep(wait);
        }
        let drop_answer = rng.f64() < plan.p_drop;
        let repeat = rng.f64() < plan.p_repeat;
        let (first, addr) = pick(targets, &mut rng, None).ok_or("no instance came up")?;
        let line = |to: &str, how: &str, id: &str| Attempt {
            t: now_micros(),
            n,
            webhook: id.to_owned(),
            to: to.to_owned(),
            how: how.to_owned(),
            status: None,
            answer: None,
            error: None,
        };
        let (signed, mut delivered) = if drop_answer {
            let made = fake_deliver(&agent, plan, batch, &sink.url())?;
            let mut attempt = line(&first, "dropped", &made.signed.id);
            attempt.error = send_and_drop(addr, &made.signed).err();
            log.write(&attempt);
            (made.signed, false)
        } else {
            let made = fake_deliver(&agent, plan, batch, &format!("http://{addr}/webhook"))?;
            let mut attempt = line(&first, "fake", &made.signed.id);
            attempt.status = made.status;
            attempt.error = made.error;
            log.write(&attempt);
            let ok = made.status.is_some_and(|s| (200..300).contains(&s));
            (made.signed, ok)
        };
        let mut last = first.clone();
        let mut tries = 0;
        while !delivered {
            tries += 1;
            if tries > 40 {
                return Err(format!(
                    "webhook {n} ({}) was never answered 2xx",
                    signed.id
                ));
            }
            let (to, addr) = pick(targets, &mut rng, Some(&last)).ok_or("no instance")?;
            let mut attempt = line(&to, "retry", &signed.id);
            match send(&agent, addr, &signed) {
                Ok((status, answer)) => {
                    delivered = (200..300).contains(&status);
                    attempt.status = Some(status);
                    attempt.answer = Some(answer);
                }
                Err(e) => attempt.error = Some(e),
            }
            attempt.t = now_micros();
            log.write(&attempt);
            last = to;
            if !delivered {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if repeat && let Some((to, addr)) = pick(targets, &mut rng, Some(&last)) {
            let mut attempt = line(&to, "repeat", &signed.id);
            match send(&agent, addr, &signed) {
                Ok((status, answer)) => {
                    attempt.status = Some(status);
                    attempt.answer = Some(answer);
                }
                Err(e) => attempt.error = Some(e),
            }
            attempt.t = now_micros();
            log.write(&attempt);
        }
    }
    Ok(plan.batches.len())
}
