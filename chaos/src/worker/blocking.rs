//! The README's run loop: drain the engine's outputs in order, sending each
//! request and waiting for its answer before the next output; ask for a
//! token now and then; sleep until the next deadline.

use std::time::{Duration, SystemTime};

use super::Worker;
use super::engine::Step;
use crate::journal::{WorkerLine, now_micros};

/// The longest sleep between two looks at the engine.
const NAP: Duration = Duration::from_millis(100);

/// Runs until standard input closes and the queue is drained.
pub fn run(w: &mut Worker) {
    let mut stop_by: Option<SystemTime> = None;
    loop {
        if let Some(left) = drain(w, &mut stop_by) {
            w.log.write(&WorkerLine::Stop {
                t: now_micros(),
                in_flight: w.core.in_flight(),
                queued: left,
            });
            return;
        }
        let now = SystemTime::now();
        let next_ask = w.ask_if_due(now);
        if drain(w, &mut stop_by).is_some() {
            continue;
        }
        let wake = w.wake_at(now, next_ask, NAP);
        std::thread::sleep(wake.duration_since(SystemTime::now()).unwrap_or_default());
        if !w.stopping() {
            w.core.handle_timeout(SystemTime::now());
        }
    }
}

/// Acts on every queued output, in order, each polled at the time it is
/// acted on. Once the worker is stopping, no more requests go out (each is
/// reported back unsent), every write and read is still made, and this
/// returns `Some(outputs left unacted)` when the queue is empty or the drain
/// time is up; `None` otherwise. Only sends and events are ever left: a
/// write is always made.
fn drain(w: &mut Worker, stop_by: &mut Option<SystemTime>) -> Option<usize> {
    while let Some(step) = w.next_step(SystemTime::now()) {
        let now = SystemTime::now();
        if w.stopping() && now > *stop_by.get_or_insert(now + w.drain()) {
            let mut left = 0;
            let mut step = Some(step);
            while let Some(s) = step {
                match s {
                    // Written whatever the time: it may hold a new token.
                    Step::Write(_) => w.act(s),
                    Step::Send(send) => w.unsent(&send, SystemTime::now()),
                    _ => left += 1,
                }
                step = w.next_step(SystemTime::now());
            }
            return Some(left);
        }
        match step {
            Step::Send(send) if w.stopping() || now > send.not_after => w.unsent(&send, now),
            Step::Send(send) => {
                w.log_send(&send);
                let result = super::send(&w.agent, &w.settings.instance, send.id, send.request);
                w.finish(send.id, send.grant, result, SystemTime::now());
            }
            other => w.act(other),
        }
    }
    w.stopping().then_some(0)
}
