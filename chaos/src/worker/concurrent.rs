//! A driver that sends each request on its own thread: the engine stays on
//! the main thread, answers come back through a channel, and writes are made
//! as soon as they are polled. Once stopping, it sends nothing more and
//! waits for the engine's requests in flight to come back.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use super::Worker;
use super::engine::Step;
use crate::journal::{WorkerLine, now_micros};

/// The longest wait between two looks at the engine.
const NAP: Duration = Duration::from_millis(100);

/// A request's outcome, from its thread.
struct Done {
    id: u64,
    grant: String,
    result: Result<http::Response<Vec<u8>>, String>,
    received: SystemTime,
}

/// Runs until standard input closes and the requests in flight are
/// answered (or the drain time is up).
pub fn run(w: &mut Worker) {
    let (tx, rx) = mpsc::channel::<Done>();
    let mut in_flight: HashMap<u64, String> = HashMap::new();
    let mut stop_by: Option<SystemTime> = None;
    loop {
        drain(w, &tx, &mut in_flight);
        let now = SystemTime::now();
        if w.stopping() {
            let by = *stop_by.get_or_insert(now + w.drain());
            if (in_flight.is_empty() && w.core.in_flight() == 0) || now >= by {
                w.log.write(&WorkerLine::Stop {
                    t: now_micros(),
                    in_flight: in_flight.len().max(w.core.in_flight()),
                    queued: 0,
                });
                return;
            }
        }
        let next_ask = w.ask_if_due(now);
        drain(w, &tx, &mut in_flight);
        let wake = w.wake_at(now, next_ask, NAP);
        let wait = wake.duration_since(SystemTime::now()).unwrap_or_default();
        if let Ok(done) = rx.recv_timeout(wait) {
            finish(w, done, &mut in_flight);
            while let Ok(done) = rx.try_recv() {
                finish(w, done, &mut in_flight);
            }
        }
        if !w.stopping() {
            w.core.handle_timeout(SystemTime::now());
        }
    }
}

fn finish(w: &mut Worker, done: Done, in_flight: &mut HashMap<u64, String>) {
    in_flight.remove(&done.id);
    w.finish(done.id, done.grant, done.result, done.received);
}

/// Acts on every queued output, each polled at the time it is acted on:
/// writes, reads and events at once, each send handed to a thread of its
/// own (none once stopping).
fn drain(w: &mut Worker, tx: &mpsc::Sender<Done>, in_flight: &mut HashMap<u64, String>) {
    while let Some(step) = w.next_step(SystemTime::now()) {
        let now = SystemTime::now();
        match step {
            Step::Send(send) if w.stopping() || now > send.not_after => w.unsent(&send, now),
            Step::Send(send) => {
                w.log_send(&send);
                in_flight.insert(send.id, send.grant.clone());
                let (agent, instance, tx) =
                    (w.agent.clone(), w.settings.instance.clone(), tx.clone());
                std::thread::spawn(move || {
                    let result = super::send(&agent, &instance, send.id, send.request);
                    let _ = tx.send(Done {
                        id: send.id,
                        grant: send.grant,
                        result,
                        received: SystemTime::now(),
                    });
                });
            }
            other => w.act(other),
        }
    }
}
