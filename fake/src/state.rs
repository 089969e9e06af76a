//! What the handlers share: the fake, its faults, its log and counters,
//! the clock, and how an answer is made.

use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use hoopai_oauth::fake::FakeServer;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::Value;
use tokio::sync::Notify;

use crate::faults::Faults;
use crate::journal::{Counters, Journal};
use crate::keys::KeyForms;
use crate::webhook;

/// A clock that never goes backwards: the wall clock at start plus the
/// monotonic time since.
#[derive(Debug)]
pub struct Clock {
    wall: SystemTime,
    start: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            wall: SystemTime::now(),
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> SystemTime {
        self.wall + self.start.elapsed()
    }
}

/// Everything the handlers share.
pub struct State {
    pub fake: Mutex<FakeServer>,
    pub faults: Mutex<Faults>,
    pub journal: Mutex<Journal>,
    pub counters: Counters,
    pub clock: Clock,
    pub sender: webhook::Sender,
    pub webhook_url: Mutex<Option<String>>,
    pub handoff: Value,
    pub key: KeyForms,
    pub max_body_bytes: usize,
    pub quiet: bool,
    /// Notified by `POST /_fake/shutdown`.
    pub shutdown: Notify,
}

/// Locks a mutex, also after a panic elsewhere (the data stays usable:
/// every critical section leaves it consistent).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An answer of the server.
pub type Answer = Response<Full<Bytes>>;

/// A JSON answer.
pub fn json(status: StatusCode, value: &Value) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(value.to_string())));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    answer
}
