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
                in_flight: 0,
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

/// Acts on every queued output, in order. Once the worker is stopping,
/// returns `Some(outputs left unacted)` when the queue is empty or the drain
/// time is up; `None` otherwise.
fn drain(w: &mut Worker, stop_by: &mut Option<SystemTime>) -> Option<usize> {
    while let Some(step) = w.core.next_step(SystemTime::now()) {
        if w.stopping() && SystemTime::now() > *stop_by.get_or_insert(SystemTime::now() + w.drain())
        {
            let mut left = 1;
            while w.core.next_step(SystemTime::now()).is_some() {
                left += 1;
            }
            return Some(left);
        }
        match step {
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
