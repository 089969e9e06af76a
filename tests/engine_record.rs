//! The persisted record's JSON schema (tokens redacted), for each status, and
//! its round trip.

mod common;

use std::time::Duration;

use common::sim::{Fate, Sim, location};
use hoopai_oauth::fake::Fault;
use hoopai_oauth::{Engine, EngineSettings, GrantRecord};
use serde_json::Value;

fn redacted(record: &GrantRecord) -> String {
    let mut v = serde_json::to_value(record).unwrap();
    for field in ["access_token", "refresh_token"] {
        if let Some(t) = v["tokens"]["token"].get_mut(field) {
            *t = Value::String(format!("<{field}>"));
        }
    }
    serde_json::to_string_pretty(&v).unwrap()
}

#[test]
fn record_json_for_each_state() {
    let mut sim = Sim::new();
    let a = sim.add_engine(
        "a",
        EngineSettings::default().shared_store("worker-1", Duration::from_secs(120)),
    );
    sim.install(a, &location("loc-1"));
    let mut out = String::new();
    let mut show = |title: &str, sim: &Sim| {
        let record = &sim.store.records["loc-1"];
        let back: GrantRecord =
            serde_json::from_str(&serde_json::to_string(record).unwrap()).unwrap();
        assert_eq!(&back, record);
        out.push_str(&format!("# {title}\n{}\n\n", redacted(record)));
    };
    show("active", &sim);
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.fate(Fate::Hold);
    sim.run_until(due);
    show("leased (mid-refresh)", &sim);
    sim.release();
    sim.fake.fail_next(Fault::LocationNotActive, 1);
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.run_until(due);
    show("suspended", &sim);
    sim.fake.set_location_active("loc-1", true);
    snap!(out);
    // A record restores into a fresh engine.
    let mut fresh = Engine::new(common::config(), EngineSettings::default());
    fresh
        .restore(sim.store.records["loc-1"].clone(), sim.now)
        .unwrap();
    assert!(fresh.grants().get("loc-1").is_some());
}

#[test]
fn engine_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Engine>();
    check::<hoopai_oauth::Output>();
}

#[test]
fn grant_ids_that_no_store_can_key_are_refused_at_every_door() {
    // A NUL byte cannot be stored in Postgres text (it was retried forever);
    // an id past MAX_GRANT_ID_BYTES is refused before it costs a row.
    let now = common::t0();
    let long = "l".repeat(hoopai_oauth::MAX_GRANT_ID_BYTES + 1);
    let fine = "l".repeat(hoopai_oauth::MAX_GRANT_ID_BYTES);
    let tokens = || {
        let mut t = hoopai_oauth::TokenResponse::new(hoopai_oauth::AccessToken::new("a"));
        t.refresh_token = Some(hoopai_oauth::RefreshToken::new("r"));
        t.expires_in = Some(86_399);
        hoopai_oauth::TokenSet::new(t, now)
    };
    let mut engine = Engine::new(common::config(), EngineSettings::default());
    for bad in ["", "loc\0x", long.as_str()] {
        let err = engine.insert(bad, tokens(), now).unwrap_err();
        assert_eq!(err.kind(), hoopai_oauth::ErrorKind::InvalidInput, "{err}");
        let record = GrantRecord::new(bad, tokens());
        let err = engine.restore(record, now).unwrap_err();
        assert_eq!(err.kind(), hoopai_oauth::ErrorKind::InvalidInput, "{err}");
        let request = hoopai_oauth::LocationTokenRequest::new("company", "loc");
        let err = engine
            .add_location(bad, "company-grant", &request, now)
            .unwrap_err();
        assert_eq!(err.kind(), hoopai_oauth::ErrorKind::InvalidInput, "{err}");
        // The error names the id's length, not a 257-byte id.
        assert!(err.to_string().len() < 200, "{err}");
    }
    engine.insert(fine.as_str(), tokens(), now).unwrap();
    assert_eq!(engine.grants().len(), 1);
}
