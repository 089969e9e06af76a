//! A hundred callers ask for the token of one grant while its refresh is in
//! flight: one request goes out, all are told to wait, and all get the new
//! token once it is persisted.

mod common;

use std::time::Duration;

use common::sim::{Fate, Sim, location};
use hoopai_oauth::TokenStatus;

#[test]
fn hundred_callers_one_refresh() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", hoopai_oauth::EngineSettings::default());
    let grant = sim.install(a, &location("loc-1"));
    // The process was paused for two days: the token has expired and no timer has fired.
    sim.now += Duration::from_secs(2 * 86_400);
    sim.note("test", "process resumes after two days; 100 callers ask");
    sim.fate(Fate::Hold);
    let mut pending = 0;
    for _ in 0..100 {
        match sim.ask_quietly(a, grant.as_str()) {
            TokenStatus::Pending => pending += 1,
            other => panic!("{other:?}"),
        }
    }
    sim.note("test", format!("{pending} of 100 asks -> pending"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.sends, 1);
    sim.note("test", "the answer arrives");
    sim.release();
    let mut ready = Vec::new();
    for _ in 0..100 {
        match sim.ask_quietly(a, grant.as_str()) {
            TokenStatus::Ready(t) => ready.push(t),
            other => panic!("{other:?}"),
        }
    }
    assert!(ready.windows(2).all(|w| w[0] == w[1]));
    let text = sim.status_text(&TokenStatus::Ready(ready[0].clone()));
    sim.note("test", format!("100 of 100 asks -> {text}"));
    assert_eq!(sim.sends, 1);
    assert_eq!(sim.fake.stats().refreshes, 1);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    snap!(sim.transcript());
}
